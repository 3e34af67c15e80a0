"""`mixedclf train`: fitting, the head folder round trip through resolve_model/build_module, splits, data errors.

Everything runs on a tiny randomly initialised BERT encoder built in a temp folder (offline, a few seconds).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from mixedclf.models.train import train_head  # noqa: E402
from mixedclf.io.labeled import load_labeled  # noqa: E402
from mixedclf.models.train_data import TrainingDataError, split_indices  # noqa: E402

POSITIVE = ["good", "great", "love", "wonderful", "excellent"]
NEGATIVE = ["bad", "awful", "hate", "terrible", "boring"]
FILLER = ["the", "movie", "film", "was", "a", "plot", "story", "actor", "and", "it", "really", "very"]


def build_tiny_encoder(folder: Path, seed: int = 0) -> Path:
    """A 2-layer, hidden-32 BertModel with random weights and a real fast tokenizer, saved to folder."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(POSITIVE + NEGATIVE + FILLER))
    vocab += list("abcdefghijklmnopqrstuvwxyz")
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # The vocab path goes in positionally: transformers 4 calls it vocab_file, 5 calls it vocab (and ignores
    # vocab_file=, leaving a 5-token vocabulary that maps every word to [UNK]).
    tokenizer = BertTokenizerFast(str(folder / "vocab.txt"), do_lower_case=True, model_max_length=64)
    assert tokenizer.tokenize("good film") == ["good", "film"]
    tokenizer.save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        max_position_embeddings=64,
    )
    BertModel(config, add_pooling_layer=False).eval().save_pretrained(folder)
    return folder


def synthetic(n: int = 72, seed: int = 0):
    """Texts whose label shows in the words used; 12 groups ('movies') of mixed labels."""
    rng = random.Random(seed)
    texts, labels, groups = [], [], []
    for i in range(n):
        label = "positive" if i % 2 else "negative"
        cue = POSITIVE if label == "positive" else NEGATIVE
        words = rng.sample(FILLER, 4) + rng.sample(cue, 2)
        rng.shuffle(words)
        texts.append(" ".join(words) + (" <b>!</b>" if i % 5 == 0 else ""))  # some HTML for clean_text
        labels.append(label)
        groups.append(f"movie{i % 12}")
    return texts, labels, groups


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("train") / "tiny_bert")


def _predict_like_inference(out_dir: Path, texts: list[str]) -> list[str]:
    """Load the head folder the way `classify` does and predict: preprocess stage, then the built module."""
    from mixedclf.core.preprocess import make_tokenizer, preprocess_texts
    from mixedclf.models import resolve_model
    from mixedclf.models.loading import build_module
    from mixedclf.models.tokenizer import tokenizer_json_and_pad_id

    spec = resolve_model(out_dir)
    assert spec.kind == "head"
    tokenizer_json, pad_id = tokenizer_json_and_pad_id(spec)
    batch = preprocess_texts(texts, make_tokenizer(tokenizer_json, spec.max_length), clean="standard")
    rows = [torch.tensor(batch.row_ids(i), dtype=torch.long) for i in range(len(batch))]
    longest = max(len(r) for r in rows)
    ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    module = build_module(spec).eval()
    with torch.inference_mode():
        logits = module(ids, mask)
    return [spec.labels[i] for i in logits.argmax(-1).tolist()]


def _train(tiny_encoder: Path, out_dir: Path, **kwargs):
    texts, labels, groups = synthetic()
    # one thread: the tiny model is all small ops, which two threads on a busy 2-core machine make slow
    options = dict(groups=groups, encoder=tiny_encoder, epochs=3, lr=1e-3, batch_size=8, seed=0, test_fraction=0.25,
                   num_threads=1)
    options.update(kwargs)
    return texts, labels, groups, train_head(texts, labels, out_dir, **options)


def test_linear_head_learns_and_round_trips(tiny_encoder, tmp_path):
    out_dir = tmp_path / "head"
    texts, labels, groups, result = _train(tiny_encoder, out_dir)

    assert result.labels == ["negative", "positive"]
    assert result.split == "group" and result.n_test > 0 and result.n_train + result.n_test == len(texts)
    assert result.accuracy is not None and result.accuracy >= 0.9, result
    assert result.accuracy == result.baseline_accuracy  # no layer trained: the model is the baseline
    assert result.trained_layers == []

    head = json.loads((out_dir / "head.json").read_text())
    assert head["format"] == "mixedclf-head" and head["version"] == 1
    assert head["labels"] == ["negative", "positive"]
    assert (out_dir / head["encoder"]).resolve() == tiny_encoder.resolve()  # relative path from the head folder
    assert head["metrics"]["accuracy"] == result.accuracy and head["metrics"]["split"] == "group"
    assert set(result.files) == {"head.json", "head.safetensors"}

    from safetensors.torch import load_file

    assert set(load_file(str(out_dir / "head.safetensors"))) == {"classifier.weight", "classifier.bias"}

    test_texts = [texts[i] for i in result.test_indices]
    assert _predict_like_inference(out_dir, test_texts) == result.test_predictions
    truth = [labels[i] for i in result.test_indices]
    assert sum(p == t for p, t in zip(result.test_predictions, truth)) / len(truth) == pytest.approx(result.accuracy)


def test_top_layer_overlay_round_trips(tiny_encoder, tmp_path):
    from safetensors.torch import load_file

    out_dir = tmp_path / "overlay"
    texts, _, _, result = _train(tiny_encoder, out_dir, train_top_layers=1)

    assert result.trained_layers == [1]
    assert result.baseline_accuracy is not None and result.accuracy is not None and result.accuracy >= 0.9
    state = load_file(str(out_dir / "head.safetensors"))
    overlay = {k: v for k, v in state.items() if k.startswith("encoder.")}
    assert overlay and all(k.startswith("encoder.encoder.layer.1.") for k in overlay)
    assert all(v.dtype == torch.float16 for v in overlay.values())
    assert state["classifier.weight"].dtype == torch.float32

    # the overlay really changed the top layer, and build_module puts it over the base encoder
    from transformers import AutoModel

    from mixedclf.models import resolve_model
    from mixedclf.models.loading import build_module

    base = AutoModel.from_pretrained(tiny_encoder, add_pooling_layer=False).state_dict()
    key = "encoder.encoder.layer.1.attention.self.query.weight"
    assert not torch.allclose(overlay[key].float(), base[key.removeprefix("encoder.")])
    loaded = build_module(resolve_model(out_dir)).state_dict()
    assert torch.equal(loaded[key], overlay[key].float())
    assert torch.equal(loaded["encoder.encoder.layer.0.attention.self.query.weight"],
                       base["encoder.layer.0.attention.self.query.weight"])

    test_texts = [texts[i] for i in result.test_indices]
    assert _predict_like_inference(out_dir, test_texts) == result.test_predictions


def test_training_is_deterministic(tiny_encoder, tmp_path):
    from safetensors.torch import load_file

    _, _, _, first = _train(tiny_encoder, tmp_path / "a", train_top_layers=1, epochs=1)
    _, _, _, second = _train(tiny_encoder, tmp_path / "b", train_top_layers=1, epochs=1)
    a, b = load_file(str(tmp_path / "a" / "head.safetensors")), load_file(str(tmp_path / "b" / "head.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert first.test_indices == second.test_indices and first.test_predictions == second.test_predictions


def test_group_split_keeps_groups_apart_and_is_seeded():
    _, _, groups = synthetic()
    train, test, kind, n_groups = split_indices(len(groups), groups, 0.25, seed=3)
    assert kind == "group" and n_groups and len(test) > 0
    assert not {groups[i] for i in train} & {groups[i] for i in test}
    assert sorted([*train, *test]) == list(range(len(groups)))
    again = split_indices(len(groups), groups, 0.25, seed=3)
    assert again[1].tolist() == test.tolist()
    other = split_indices(len(groups), groups, 0.25, seed=4)
    assert other[1].tolist() != test.tolist()
    train, test, kind, _ = split_indices(40, None, 0.25, seed=0)
    assert kind == "random" and len(test) == 10 and not set(train) & set(test)


def test_max_train_rows_subsamples_training_only(tiny_encoder, tmp_path):
    _, _, _, full = _train(tiny_encoder, tmp_path / "full")
    _, _, _, small = _train(tiny_encoder, tmp_path / "small", max_train_rows=20)
    assert small.n_train == 20 and small.test_indices == full.test_indices


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_load_labeled_reads_each_format(tmp_path, suffix):
    import pandas as pd

    frame = pd.DataFrame({"review": ["a fine film", "dull", None], "stars": [1, 0, 1], "movie": ["x", "y", "z"]})
    path = tmp_path / f"data{suffix}"
    if suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    data = load_labeled(path, "review", "stars", group_field="movie")
    assert data.texts == ["a fine film", "dull"] and data.labels == ["1", "0"]
    assert data.groups == ["x", "y"] and data.dropped == 1


def test_missing_label_column_is_a_clear_error(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "fine", "sentiment": "pos"}\n{"text": "bad", "sentiment": "neg"}\n')
    with pytest.raises(ValueError) as info:
        load_labeled(path, "text", "label")
    message = str(info.value)
    assert "'label'" in message and "sentiment" in message and "--label-field" in message
    assert isinstance(info.value, TrainingDataError)


def test_single_label_is_refused(tiny_encoder, tmp_path):
    with pytest.raises(ValueError, match="two labels"):
        train_head(["a", "b", "c"], ["x", "x", "x"], tmp_path / "h", encoder=tiny_encoder)


def test_cli_train(tiny_encoder, tmp_path):
    import typer
    from typer.testing import CliRunner

    from mixedclf.cli.errors import AppGroup
    from mixedclf.cli.train import register

    app = typer.Typer(cls=AppGroup)
    register(app)

    @app.callback()
    def _root() -> None:  # keep `train` a subcommand, as in the real app
        pass

    texts, labels, groups = synthetic()
    data = tmp_path / "labeled.jsonl"
    data.write_text("".join(json.dumps({"review": t, "y": l, "movie": g}) + "\n"
                            for t, l, g in zip(texts, labels, groups)))
    runner = CliRunner()
    out_dir = tmp_path / "cli_head"
    ok = runner.invoke(app, ["train", str(data), "--out", str(out_dir), "--text-field", "review", "--label-field",
                             "y", "--group-field", "movie", "--encoder", str(tiny_encoder), "--quiet"])
    assert ok.exit_code == 0, ok.output
    assert "held-out accuracy" in ok.output and (out_dir / "head.safetensors").exists()

    bad = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "x"), "--encoder", str(tiny_encoder)])
    assert bad.exit_code == 2
    assert "no column 'text'" in bad.output and "Traceback" not in bad.output
