"""Shared fixtures: offline, CPU-only, small models built in temp folders."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Converted models and calibrations go to a folder of this test session, never to the user's cache.
os.environ["MIXEDCLF_CACHE_DIR"] = tempfile.mkdtemp(prefix="mixedclf-test-cache-")

REPO = Path(__file__).resolve().parents[1]
SAMPLE_JSONL = REPO / "sample_data" / "reviews.jsonl"

_WORDS = (
    "good great excellent love wonderful perfect happy fine best amazing bad awful terrible hate broken poor "
    "worst boring slow refund the a it was is and but not very really phone food movie room app service staff"
).split()


def build_tiny_classifier(folder: Path, labels=("NEGATIVE", "POSITIVE"), seed: int = 0, problem_type=None) -> Path:
    """A randomly initialised 2-layer BERT sequence classifier with a real fast tokenizer, saved to folder."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(_WORDS)) + list("abcdefghijklmnopqrstuvwxyz")
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(str(folder / "vocab.txt"), do_lower_case=True, model_max_length=64)  # positional: transformers 5 ignores vocab_file=
    tokenizer.save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        max_position_embeddings=64, num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)},
    )
    if problem_type:
        config.problem_type = problem_type
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_classifier(tmp_path_factory.mktemp("tiny") / "tiny-bert")


@pytest.fixture(scope="module")
def cli():
    """The cost commands (`estimate`, `check`, `report`) on a bare typer app: cli(*args) -> the CliRunner result."""
    import typer
    from typer.testing import CliRunner

    from mixedclf.cli_costs import register

    app = typer.Typer()
    register(app)

    def invoke(*args):
        return CliRunner().invoke(app, [str(a) for a in args], terminal_width=160)

    return invoke


def write_classify_report(path: Path, run=None, **over) -> Path:
    """A classify report of the example run (mixedclf.costs.examples; `run` and `over` replace parts), at path."""
    from mixedclf.costs.examples import classify_fields
    from mixedclf.report import build_classify_report, write_report

    return write_report(build_classify_report(**classify_fields(run=run, **over)), path)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path
