"""`mixedclf train`: fit a classification head (optionally with the top encoder layers) on a sentence encoder.

What is written is a head folder that `resolve_model` / `build_module` load (format: mixedclf.models.head_io).
Reading the labeled file: mixedclf.io.labeled; the held-out split: mixedclf.models.train_data; the frozen encoder pass:
mixedclf.models.train_encode; the fitting: mixedclf.models.train_fit. This module is the entry point, `train_head`.

How it trains, cheaply on a CPU:
1. Texts are cleaned with the same `clean_text` inference uses, and tokenized with the encoder's fast
   tokenizer exactly as the preprocess stage does (truncation to max_length, no padding).
2. A held-out split is drawn, by group (e.g. movie) when groups are given, else by row; seeded.
3. One pass of the frozen encoder over every text, in length-sorted batches, caches the mean-pooled output
   (for the linear head) and, with train_top_layers=k, the hidden states that enter the top k layers.
4. Baseline: a linear head on the frozen pooled output, fit to convergence (L-BFGS, L2-regularized).
5. With k > 0: the top k layers plus the head (warm-started from the baseline) are fine-tuned with AdamW on
   the cached hidden states, so an epoch costs k/num_layers of an encoder pass forward and backward.
   The cache holds texts x tokens x hidden float32 values (~0.5 GB for 12,800 short reviews on MiniLM).
6. Held-out accuracy is measured on exactly the weights that are saved (after the float16 round trip).

Deterministic for a given seed, data and thread count (torch.set_num_threads(num_threads) while it runs).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mixedclf.models.head_io import classifier_tensors, encoder_reference, head_config, overlay_tensors, write_head
from mixedclf.models.spec import PACKAGED_ENCODER, _max_length, packaged_encoder_dir
from mixedclf.models.train_data import TrainingDataError, sorted_labels, split_indices
from mixedclf.models.train_encode import encode, layer_list, tokenize, top_stack
from mixedclf.models.train_fit import TopModel, finetune, fit_linear, predict_top

# ----------------------------------------------------------------------------------------------- the result


@dataclass
class TrainResult:
    out_dir: Path
    labels: list[str]
    accuracy: float | None  # held-out accuracy of the saved model (None without a held-out split)
    baseline_accuracy: float | None  # frozen encoder + linear head, same split
    train_accuracy: float
    n_train: int
    n_test: int
    split: str  # "group", "random" or "none"
    n_test_groups: int | None
    train_top_layers: int
    trained_layers: list[int]
    epochs: int
    lr: float
    seed: int
    seconds: float
    encode_seconds: float
    files: dict[str, int] = field(default_factory=dict)  # file name -> bytes
    test_indices: list[int] = field(default_factory=list, repr=False)  # rows of the input, in order
    test_predictions: list[str] = field(default_factory=list, repr=False)  # label per test_indices row

# --------------------------------------------------------------------------------------------------- main


@contextlib.contextmanager
def _torch_settings(num_threads: int | None, seed: int):
    """Fixed thread count and a seeded RNG while training; the caller's settings and RNG state come back after."""
    previous = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(previous)


def _resolve_encoder(encoder: str | Path) -> Path:
    if str(encoder) == PACKAGED_ENCODER:
        return packaged_encoder_dir()
    path = Path(encoder).expanduser().resolve()
    if not (path / "config.json").exists():
        raise TrainingDataError(f"encoder folder {path} has no config.json")
    return path


def percent(value: float | None) -> str:
    """An accuracy as people read it (61.7%), or why there is none."""
    return "n/a (no held-out rows)" if value is None else f"{value:.1%}"


def _accuracy(pred: torch.Tensor, target: torch.Tensor) -> float | None:
    return float((pred == target).float().mean()) if len(target) else None


def train_head(
    texts: Sequence[str],
    labels: Sequence[str],
    out_dir: str | Path,
    *,
    groups: Sequence[str] | None = None,
    encoder: str | Path = PACKAGED_ENCODER,
    train_top_layers: int = 0,
    epochs: int = 3,
    lr: float = 3e-4,
    head_lr: float = 1e-3,
    weight_decay: float = 0.01,
    l2: float = 1e-3,
    batch_size: int = 32,
    seed: int = 0,
    test_fraction: float = 0.2,
    max_length: int | None = None,
    max_train_rows: int | None = None,
    normalize: bool = False,
    label_names: Sequence[str] | None = None,
    clean: bool = True,
    overlay_dtype: torch.dtype = torch.float16,
    num_threads: int | None = 2,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Fit a head (and optionally the top `train_top_layers` encoder layers) and write it to `out_dir`.

    `epochs`, `lr` (top layers), `head_lr`, `weight_decay` and `batch_size` drive the
    fine-tuning; the linear head alone (train_top_layers=0, and the baseline) is fit to convergence with
    L-BFGS and L2 penalty `l2`. The held-out split (`test_fraction`, whole `groups` when given) is drawn
    before `max_train_rows` subsamples the training rows, so the test set is never shrunk.
    """
    started = time.perf_counter()
    texts, labels = list(texts), [str(x) for x in labels]
    if len(texts) != len(labels):
        raise TrainingDataError(f"{len(texts)} texts but {len(labels)} labels")
    if groups is not None and len(groups) != len(texts):
        raise TrainingDataError(f"{len(texts)} texts but {len(groups)} groups")
    names = list(label_names) if label_names else sorted_labels(labels)
    unknown = sorted(set(labels) - set(names))
    if unknown:
        raise TrainingDataError(f"labels not in label_names: {unknown[:5]}")
    if len(names) < 2:
        raise TrainingDataError(f"training needs at least two labels; found {names}")
    if train_top_layers < 0 or epochs < 0 or batch_size < 1:
        raise TrainingDataError("train_top_layers and epochs must be >= 0 and batch_size >= 1")
    encoder_dir = _resolve_encoder(encoder)

    with _torch_settings(num_threads, seed):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel

        from mixedclf.models.quiet import quiet_transformers

        quiet_transformers()
        say = log or (lambda _msg: None)
        config = json.loads((encoder_dir / "config.json").read_text(encoding="utf-8"))
        max_length = int(max_length or _max_length(encoder_dir, config))

        train_rows, test_rows, split, n_test_groups = split_indices(len(texts), groups, test_fraction, seed)
        if max_train_rows is not None and len(train_rows) > max_train_rows:
            keep = np.random.default_rng(seed + 1).choice(len(train_rows), size=max_train_rows, replace=False)
            train_rows = np.sort(train_rows[keep])
        if len(train_rows) == 0:
            raise TrainingDataError("no training rows left after the held-out split")
        present = {labels[i] for i in train_rows}
        if len(present) < 2:
            raise TrainingDataError(f"the training split holds only the label(s) {sorted(present)}")
        used = np.concatenate([train_rows, test_rows])
        say(f"{len(train_rows)} training rows, {len(test_rows)} held out ({split} split)")

        if clean:
            from mixedclf.core.preprocess import clean_text

            cleaned = {int(i): clean_text(texts[i]) for i in used}
        else:
            cleaned = {int(i): texts[i] for i in used}
        ids_list, pad_id = tokenize(encoder_dir, [cleaned[int(i)] for i in used], max_length)
        position = {int(i): p for p, i in enumerate(used)}  # input row -> index into the encoded arrays
        tr = np.array([position[int(i)] for i in train_rows], dtype=np.int64)
        te = np.array([position[int(i)] for i in test_rows], dtype=np.int64)
        index = {name: j for j, name in enumerate(names)}
        y = torch.tensor([index[labels[i]] for i in used], dtype=torch.long)

        model = AutoModel.from_pretrained(encoder_dir, local_files_only=True, add_pooling_layer=False).eval()
        prefix, layers = layer_list(model) if train_top_layers else ("", [])
        if train_top_layers > len(layers):
            raise TrainingDataError(f"train_top_layers={train_top_layers} but the encoder has {len(layers)} layers")
        top = top_stack(model, train_top_layers) if train_top_layers else None  # fails before the long pass

        t0 = time.perf_counter()
        pooled, cached = encode(model, ids_list, train_top_layers, max(batch_size, 64), log, pad_id)
        encode_seconds = time.perf_counter() - t0
        say(f"encoded {len(ids_list)} texts in {encode_seconds:.1f}s")
        features = nn.functional.normalize(pooled, dim=-1) if normalize else pooled

        fitted = fit_linear(features[tr], y[tr], len(names), l2)
        head = fitted.folded()
        with torch.no_grad():
            base_test = head(features[te]).argmax(-1)
            base_train = head(features[tr]).argmax(-1)
        baseline_accuracy = _accuracy(base_test, y[te])
        if train_top_layers:  # without fine-tuning this head is the model itself, not a baseline to beat
            say(f"frozen encoder + linear head (baseline): held-out accuracy {percent(baseline_accuracy)}")

        tensors: dict[str, torch.Tensor] = {}
        trained_layers: list[int] = []
        if train_top_layers:
            top_model = TopModel(top, fitted, normalize)
            finetune(
                top_model, cached, tr, y, epochs=epochs, lr=lr, head_lr=head_lr, weight_decay=weight_decay,
                batch_size=batch_size, seed=seed, log=log,
            )
            first = len(layers) - train_top_layers
            trained_layers = list(range(first, len(layers)))
            # evaluate exactly what is saved: the overlay after its dtype round trip
            tensors.update(overlay_tensors(top_model.top.encoder.layer, prefix, first, overlay_dtype))
            head = fitted.folded()  # evaluate the folded head too: it is what is saved
            top_model.head = head
            test_pred = predict_top(top_model, cached, te, batch_size * 2)
            train_pred = predict_top(top_model, cached, tr, batch_size * 2)
        else:
            test_pred, train_pred = base_test, base_train
        accuracy = _accuracy(test_pred, y[te])
        train_accuracy = _accuracy(train_pred, y[tr]) or 0.0
        tensors.update(classifier_tensors(head))

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        seconds = time.perf_counter() - started
        head_json = head_config(
            labels=names,
            encoder=encoder_reference(encoder, encoder_dir, out_dir),
            max_length=max_length,
            normalize=normalize,
            trained_layers=trained_layers,
            overlay_dtype=overlay_dtype,
            metrics={
                "accuracy": accuracy,
                "baseline_accuracy": baseline_accuracy,
                "baseline": "frozen encoder + linear head (L-BFGS), same split",
                "train_accuracy": train_accuracy,
                "n_train": int(len(train_rows)),
                "n_test": int(len(test_rows)),
                "split": split,
                "n_test_groups": n_test_groups,
                "test_fraction": test_fraction,
            },
            training={
                "train_top_layers": train_top_layers,
                "epochs": epochs,
                "lr": lr,
                "head_lr": head_lr,
                "weight_decay": weight_decay,
                "l2": l2,
                "batch_size": batch_size,
                "seed": seed,
                "clean": "standard" if clean else "none",
                "max_train_rows": max_train_rows,
                "seconds": round(seconds, 1),
                "encode_seconds": round(encode_seconds, 1),
                "threads": torch.get_num_threads(),
            },
        )
        files = write_head(out_dir, tensors, head_json)
        baseline = f" (baseline {percent(baseline_accuracy)})" if train_top_layers else ""
        say(f"held-out accuracy {percent(accuracy)}{baseline}; wrote {out_dir} in {seconds:.0f}s")

        return TrainResult(
            out_dir=out_dir,
            labels=names,
            accuracy=accuracy,
            baseline_accuracy=baseline_accuracy,
            train_accuracy=train_accuracy,
            n_train=int(len(train_rows)),
            n_test=int(len(test_rows)),
            split=split,
            n_test_groups=n_test_groups,
            train_top_layers=train_top_layers,
            trained_layers=trained_layers,
            epochs=epochs,
            lr=lr,
            seed=seed,
            seconds=seconds,
            encode_seconds=encode_seconds,
            files=files,
            test_indices=[int(i) for i in test_rows],
            test_predictions=[names[int(p)] for p in test_pred],
        )
