"""Shared fixtures: offline, CPU-only, small models built in temp folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Converted models and calibrations go to a folder of this test session, never to the user's cache.
os.environ["MIXEDCLF_CACHE_DIR"] = tempfile.mkdtemp(prefix="mixedclf-test-cache-")
# The prediction cache is off unless a test turns it on (tests/test_cache_runs.py): one session-wide cache would
# answer a test's rows from an earlier test's run and change the device figures that test checks.
os.environ["MIXEDCLF_NO_CACHE"] = "1"

REPO = Path(__file__).resolve().parents[1]
SAMPLE_JSONL = REPO / "sample_data" / "reviews.jsonl"
# The synthetic review generator is a benchmark tool, not part of the package; tests use it too.
sys.path.insert(0, str(REPO / "benchmarks"))

_WORDS = (
    "good great excellent love wonderful perfect happy fine best amazing bad awful terrible hate broken poor "
    "worst boring slow refund the a it was is and but not very really phone food movie room app service staff"
).split()


def build_tiny_classifier(folder: Path, labels=("NEGATIVE", "POSITIVE"), seed: int = 0, problem_type=None,
                          layers: int = 2) -> Path:
    """A randomly initialised BERT sequence classifier (2 layers unless told) with a real fast tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(_WORDS)) + list("abcdefghijklmnopqrstuvwxyz")
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(str(folder / "vocab.txt"), do_lower_case=True, model_max_length=64)  # positional: transformers 5 ignores vocab_file=
    tokenizer.save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=37,
        max_position_embeddings=64, num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)},
    )
    if problem_type:
        config.problem_type = problem_type
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    return folder


PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
# multiprocessing's resource tracker serves this process until it exits, then exits itself: not a stray.
_OWN_HELPERS = ("multiprocessing.resource_tracker",)
STRAY_GRACE_S = 10.0


@pytest.fixture(scope="session", autouse=True)
def no_stray_child_processes():
    """The suite ends with no process left that a test started (a worker, a server, a Ray node): each one found
    is named, ended, and fails the session. On Linux the test process is made a subreaper, so a process
    orphaned by a test's killed subprocess (a classify run's worker) is re-parented here and found too."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    yield
    import psutil

    me = psutil.Process()
    children = []
    for child in me.children(recursive=True):
        try:
            if not any(helper in " ".join(child.cmdline()) for helper in _OWN_HELPERS):
                children.append(child)
        except psutil.Error:
            pass  # already gone
    _gone, alive = psutil.wait_procs(children, timeout=STRAY_GRACE_S)  # a pool shut down without waiting
    strays = []
    for proc in alive:
        try:
            strays.append(f"{proc.pid}: {' '.join(proc.cmdline())[:200]}")
            proc.kill()
        except psutil.Error:
            pass
    if strays:
        pytest.fail(f"{len(strays)} child process(es) outlived the test session:\n" + "\n".join(strays),
                    pytrace=False)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_classifier(tmp_path_factory.mktemp("tiny") / "tiny-bert")


@pytest.fixture(scope="module")
def cli():
    """The cost commands (`estimate`, `check`, `report`) on a bare typer app: cli(*args) -> the CliRunner result."""
    import typer
    from typer.testing import CliRunner

    from mixedclf.cli.costs import register
    from mixedclf.cli.errors import AppGroup

    app = typer.Typer(cls=AppGroup)
    register(app)

    def invoke(*args):
        return CliRunner().invoke(app, [str(a) for a in args], terminal_width=160)

    return invoke


def classify_process(*args, wait: bool = True, timeout: float = 300, env: dict | None = None,
                     launcher: tuple[str, ...] = ("-m", "mixedclf"), in_process: bool = False, **popen):
    """`python -m mixedclf classify ARGS` as a real process, offline and unbuffered: the one way the tests start
    one. wait=True: run it to the end (stdout, stderr captured as text) and return the CompletedProcess;
    wait=False: return the Popen (stdout, stderr piped unless `popen` says otherwise), for tests that signal,
    kill or watch it. `env` adds to the environment; `launcher` replaces `-m mixedclf` (`-c CODE`: a wrapper that
    runs mixedclf with sys.argv[1:] and reports on the run). in_process=True: the same command through the typer
    app in this process (no interpreter start or torch import to pay: what the fast tier can afford), returned as
    a CompletedProcess too."""
    if in_process:
        from typer.testing import CliRunner

        from mixedclf.cli.app import app

        argv = ["classify", *map(str, args)]
        result = CliRunner().invoke(app, argv, env={"HF_HUB_OFFLINE": "1", **(env or {})})
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return subprocess.CompletedProcess(["mixedclf", *argv], result.exit_code, result.stdout, result.stderr)
    command = [sys.executable, *launcher, "classify", *map(str, args)]
    full_env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", **(env or {}))
    if wait:
        return subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=timeout, **popen)
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(command, env=full_env, text=True, **popen)


def write_classify_report(path: Path, run=None, **over) -> Path:
    """A classify report of the example run (mixedclf.costs.examples; `run` and `over` replace parts), at path."""
    from mixedclf.costs.examples import classify_fields
    from mixedclf.costs.report import build_classify_report, write_report

    return write_report(build_classify_report(**classify_fields(run=run, **over)), path)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path
