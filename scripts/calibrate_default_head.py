"""Calibrate the default model's scores: fit a temperature on a validation split and fold it into the classifier.

    python scripts/calibrate_default_head.py [--head DIR]

The default head is trained with 20% of the Rotten Tomatoes movies held out (scripts/make_default_head.py,
seed 0). Those held-out movies are split again by movie, half and half (seed 0): the temperature T is fitted
on the validation half (the T that minimises the negative log-likelihood of softmax(logits / T)); the expected
calibration error (15 equal-width confidence bins) is measured on the other half, which chose nothing. T is
folded into the classifier layer (weight / T, bias / T), so every backend (torch, the ONNX export, serve, Ray)
computes calibrated scores with no code of its own, and the labels (the argmax) do not change. head.json records
T and the errors before and after; docs/default-model.md reports them. Re-running starts again from the
uncalibrated layer (the recorded T is multiplied back first).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

BINS = 15


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    p = softmax(logits / temperature)
    return float(-np.log(np.clip(p[np.arange(len(labels)), labels], 1e-12, None)).mean())


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """Sum over equal-width confidence bins of |accuracy - mean confidence| weighted by the bin's share."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in pairwise(edges):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The NLL-minimising T: a log-spaced scan, then golden-section refinement around the best point."""
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 200))
    best = int(np.argmin([nll(logits, labels, t) for t in grid]))
    lo, hi = np.log(grid[max(best - 1, 0)]), np.log(grid[min(best + 1, len(grid) - 1)])
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(60):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if nll(logits, labels, np.exp(a)) < nll(logits, labels, np.exp(b)):
            hi = b
        else:
            lo = a
    return float(np.exp((lo + hi) / 2))


def default_logits(texts: list[str], head_dir: Path) -> np.ndarray:
    from mixedclf.core.inference import InferenceRunner
    from mixedclf.core.preprocess import make_tokenizer, preprocess_texts
    from mixedclf.models import backend
    from mixedclf.models.device import CPU
    from mixedclf.models.spec import _resolve_head
    from mixedclf.models.tokenizer import tokenizer_json_and_pad_id

    spec = _resolve_head(head_dir, "default")
    tokenizer_json, pad_id = tokenizer_json_and_pad_id(spec)
    batch = preprocess_texts(texts, make_tokenizer(tokenizer_json, spec.max_length))
    runner = InferenceRunner(backend.load_model(spec, CPU, "fp32"), CPU, len(spec.labels), pad_id)
    return runner.logits(batch, 64, 8192).astype(np.float64)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head", type=Path, default=REPO / "mixedclf" / "assets" / "default_head")
    args = parser.parse_args(argv)

    import pandas as pd
    from fetch_training_data import fetch
    from make_default_head import SETTINGS
    from safetensors.numpy import load_file, save

    from mixedclf.models.train_data import split_indices

    head = json.loads((args.head / "head.json").read_text(encoding="utf-8"))
    data = pd.read_parquet(fetch())
    movies = data["movie"].astype(str).tolist()
    seed = int(head.get("training", {}).get("seed", 0))
    _, held_out, _, _ = split_indices(len(data), movies, SETTINGS["test_fraction"], seed)
    val_pos, test_pos, _, _ = split_indices(len(held_out), [movies[i] for i in held_out], 0.5, seed)
    val, test = held_out[val_pos], held_out[test_pos]
    labels = np.array([head["labels"].index(v) for v in data["label"]])
    texts = data["text"].tolist()

    old_t = float(head.get("calibration", {}).get("temperature", 1.0))
    logits = default_logits([texts[i] for i in held_out], args.head) * old_t  # back to the uncalibrated layer
    where = {int(row): k for k, row in enumerate(held_out)}
    val_logits, test_logits = logits[[where[int(i)] for i in val]], logits[[where[int(i)] for i in test]]
    t = fit_temperature(val_logits, labels[val])
    report = {
        "temperature": round(t, 4),
        "method": "temperature scaling: T minimises the NLL on the validation half of the held-out movies; "
                  "folded into the classifier (weight / T, bias / T)",
        "validation_rows": len(val), "test_rows": len(test), "bins": BINS,
        "ece_before": round(expected_calibration_error(softmax(test_logits), labels[test]), 4),
        "ece_after": round(expected_calibration_error(softmax(test_logits / t), labels[test]), 4),
        "nll_before": round(nll(test_logits, labels[test], 1.0), 4),
        "nll_after": round(nll(test_logits, labels[test], t), 4),
        "test_accuracy": round(float((test_logits.argmax(axis=1) == labels[test]).mean()), 4),
        "created_with": "scripts/calibrate_default_head.py",
    }
    tensors = load_file(str(args.head / "head.safetensors"))
    for name in ("classifier.weight", "classifier.bias"):
        tensors[name] = (tensors[name].astype(np.float64) * old_t / t).astype(np.float32)
    (args.head / "head.safetensors").write_bytes(save(tensors, metadata={"format": "pt"}))
    head["calibration"] = report
    (args.head / "head.json").write_text(json.dumps(head, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
