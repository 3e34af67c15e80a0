"""The stage contract's JSON form: what one stage sends the next when they run in different places (a Runpod
job's input and output, `mixedclf serve` calling remote stages).

sequences: {"ids": [[token ids] per row], "cleaned", "truncated", "word_count", "sentence_count", "char_count"};
scored: the same counts without the ids, plus "token_count" and "logits" ([[float] per row]). Each decoder checks
every column against the row count, so a bad payload is one line (StageInputError), never a wrong answer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mixedclf.core.preprocess import PreprocessedBatch
from mixedclf.core.sequences import Sequences, sequences_without_tokens

COUNTS = ("word_count", "sentence_count", "char_count")


class StageInputError(ValueError):
    """A stage's input is not what the stage takes: the job fails with this one line, the worker lives on."""


def encode_sequences(seqs: Sequences) -> dict[str, list]:
    """One sequence per row on the wire (what `to_sequences` makes): a row of several would need its owner list."""
    prep = seqs.batch
    offsets = prep.offsets
    return {
        "ids": [prep.token_ids[offsets[i]:offsets[i + 1]].tolist() for i in range(len(prep))],
        "cleaned": list(prep.cleaned),
        "truncated": prep.truncated.tolist(),
        **{name: getattr(prep, name).tolist() for name in COUNTS},
    }


def column(payload: dict, name: str, rows: int, where: str = "sequences") -> list:
    values = payload.get(name)
    if not isinstance(values, list) or len(values) != rows:
        raise StageInputError(f"{where}.{name} must be a list of {rows} values")
    return values


def decode_sequences(payload: Any) -> Sequences:
    """The pre stage's output back into the contract's sequences; every column checked against the row count."""
    if not isinstance(payload, dict) or not isinstance(payload.get("ids"), list):
        raise StageInputError('input needs "sequences": {"ids": [[...], ...], ...} (the pre stage\'s output)')
    ids = payload["ids"]
    rows = len(ids)
    try:
        lengths = np.fromiter((len(r) for r in ids), dtype=np.int32, count=rows)
        flat = np.fromiter((int(t) for r in ids for t in r), dtype=np.int32, count=int(lengths.sum()))
    except (TypeError, ValueError):
        raise StageInputError("sequences.ids must be lists of token ids (integers)") from None
    cleaned = payload.get("cleaned") or [""] * rows
    return Sequences(PreprocessedBatch(
        list(column({"cleaned": cleaned}, "cleaned", rows)), flat, lengths,
        np.asarray(column(payload, "truncated", rows), dtype=bool),
        *(np.asarray(column(payload, name, rows), dtype=np.int32) for name in COUNTS),
    ))


def encode_scored(seqs: Sequences, logits: np.ndarray) -> dict[str, list]:
    """The infer stage's output: each row's counts (not its tokens) beside its logits."""
    prep = seqs.rows()
    return {
        "cleaned": list(prep.cleaned),
        "truncated": prep.truncated.tolist(),
        **{name: getattr(prep, name).tolist() for name in COUNTS},
        "token_count": prep.lengths.tolist(),
        "logits": np.asarray(logits, dtype=np.float32).tolist(),
    }


def decode_scored(payload: Any, labels: int) -> tuple[Sequences, np.ndarray]:
    """The infer stage's output back into rows known by their counts and their logits (rows x labels)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("logits"), list):
        raise StageInputError('input needs "scored": {"logits": [[...]], ...} (the infer stage\'s output)')
    rows = len(payload["logits"])
    try:
        logits = np.asarray(payload["logits"], dtype=np.float32).reshape(rows, labels)
    except (TypeError, ValueError):
        raise StageInputError(f"scored.logits must be {rows} lists of {labels} numbers") from None
    seqs = sequences_without_tokens(
        np.asarray(column(payload, "token_count", rows, "scored"), dtype=np.int32),
        np.asarray(column(payload, "truncated", rows, "scored"), dtype=bool),
        *(np.asarray(column(payload, name, rows, "scored"), dtype=np.int32) for name in COUNTS),
    )
    return seqs, logits
