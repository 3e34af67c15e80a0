"""CPU stage 3: logits to labelled rows, confidence buckets and a running aggregate. Pure; no torch."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from mixedclf.core.preprocess import PreprocessedBatch

# The original design's confidence buckets.
HIGH_CONFIDENCE = 0.8
MEDIUM_CONFIDENCE = 0.5
BUCKETS = ("high", "medium", "low")


def scores_from_logits(logits: np.ndarray, activation: str) -> np.ndarray:
    """Probabilities as transformers' text-classification pipeline makes them (softmax, or sigmoid)."""
    logits = logits.astype(np.float64)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def confidence_bucket(scores: np.ndarray) -> np.ndarray:
    return np.where(scores > HIGH_CONFIDENCE, "high", np.where(scores > MEDIUM_CONFIDENCE, "medium", "low"))


def label_columns(
    logits: np.ndarray,
    labels: tuple[str, ...],
    activation: str,
    prep: PreprocessedBatch,
    model_name: str,
    all_scores: bool = False,
) -> dict[str, pa.Array]:
    """The columns mixedclf adds to each row, in the batch's row order."""
    probs = scores_from_logits(logits, activation)
    best = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    score = probs[np.arange(len(probs)), best] if len(probs) else np.zeros(0)
    columns: dict[str, pa.Array] = {
        "label": pa.array(np.asarray(labels, dtype=object)[best] if len(best) else [], type=pa.string()),
        "score": pa.array(score, type=pa.float64()),
        "confidence": pa.array(confidence_bucket(score) if len(score) else [], type=pa.string()),
    }
    if all_scores:
        for i, name in enumerate(labels):
            columns[f"score_{name}"] = pa.array(probs[:, i], type=pa.float64())
    columns.update(
        word_count=pa.array(prep.word_count, type=pa.int32()),
        sentence_count=pa.array(prep.sentence_count, type=pa.int32()),
        char_count=pa.array(prep.char_count, type=pa.int32()),
        token_count=pa.array(prep.lengths, type=pa.int32()),
        truncated=pa.array(prep.truncated, type=pa.bool_()),
        model=pa.array([model_name] * len(best), type=pa.string()),
    )
    return columns


def prediction_rows(
    logits: np.ndarray, prep: PreprocessedBatch, labels: tuple[str, ...], activation: str
) -> list[dict]:
    """label_columns as one dict per text, every label's score under "scores" (the server's JSON shape)."""
    columns = label_columns(logits, labels, activation, prep, model_name="", all_scores=True)
    score_columns = {f"score_{name}": name for name in labels}
    rows = []
    for row in pa.table(columns).drop_columns(["model"]).to_pylist():
        scores = {name: row.pop(column) for column, name in score_columns.items()}
        rows.append({"label": row.pop("label"), "score": row.pop("score"), "confidence": row.pop("confidence"),
                     "scores": scores, **row})
    return rows


PREDICTION_COUNTS = ("word_count", "sentence_count", "char_count", "token_count")


def columns_from_predictions(rows: list[dict], labels: tuple[str, ...], model_name: str,
                             all_scores: bool = False) -> dict[str, pa.Array]:
    """prediction_rows' dicts (a remote stage's answer) back into label_columns' columns, same names, types and
    order, so rows labelled elsewhere are written exactly as rows labelled here. ValueError names the first
    field that is missing or of the wrong kind."""
    try:
        columns: dict[str, pa.Array] = {
            "label": pa.array([r["label"] for r in rows], type=pa.string()),
            "score": pa.array([r["score"] for r in rows], type=pa.float64()),
            "confidence": pa.array([r["confidence"] for r in rows], type=pa.string()),
        }
        if all_scores:
            for name in labels:
                columns[f"score_{name}"] = pa.array([r["scores"][name] for r in rows], type=pa.float64())
        for name in PREDICTION_COUNTS:
            columns[name] = pa.array([r[name] for r in rows], type=pa.int32())
        columns["truncated"] = pa.array([r["truncated"] for r in rows], type=pa.bool_())
    except (KeyError, TypeError, pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValueError(f"a prediction lacks a field or has one of the wrong type ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    columns["model"] = pa.array([model_name] * len(rows), type=pa.string())
    return columns


@dataclass
class LabelTally:
    """Running aggregate over all labelled rows: counts per label and bucket, mean confidence."""

    label_counts: dict[str, int] = field(default_factory=dict)
    bucket_counts: dict[str, int] = field(default_factory=lambda: {b: 0 for b in BUCKETS})
    score_sum: float = 0.0
    rows: int = 0
    truncated: int = 0

    def add(self, columns: dict[str, pa.Array]) -> None:
        for name, count in zip(*np.unique(columns["label"].to_numpy(zero_copy_only=False), return_counts=True)):
            self.label_counts[str(name)] = self.label_counts.get(str(name), 0) + int(count)
        for name, count in zip(*np.unique(columns["confidence"].to_numpy(zero_copy_only=False), return_counts=True)):
            self.bucket_counts[str(name)] += int(count)
        scores = columns["score"].to_numpy()
        self.score_sum += float(scores.sum())
        self.rows += len(scores)
        self.truncated += int(columns["truncated"].to_numpy(zero_copy_only=False).sum())

    @property
    def mean_confidence(self) -> float:
        return self.score_sum / self.rows if self.rows else 0.0
