"""Rows answered without the device: the seam a prediction cache plugs into.

The stage contract asks an `AnswerStore` for the logits of rows it has answered before and hands it the logits it
computes, so a row found there never reaches the device. A key decides the answer: it digests the run key (every
setting that changes a row's logits: model content, head overlay, backend, precision, clean mode, tokenizer,
max length) with the cleaned text the tokenizer saw, through that text's `text_digest`: a stage that has only the
digest (the Ray engine ships it instead of the text) makes the same key as one that has the text.

A store also keeps each row's token count, so that an `AnswerReader` in a CPU worker can answer a row before it is
tokenized: a cron job's rerun then pays neither the device nor the tokenizer for the rows it has seen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

KEY_BYTES = 16  # 128 bits: no collision expected below ~10^18 stored rows


class AnswerStore(Protocol):
    def lookup(self, keys: Sequence[bytes]) -> dict[int, np.ndarray]:
        """The stored logits (float32, one vector per hit) by position in `keys`, for the keys held."""
        ...

    def store(self, keys: Sequence[bytes], logits: np.ndarray, tokens: np.ndarray | None = None) -> None:
        """Remember `logits[i]` as the answer for `keys[i]`, and `tokens[i]` as its token count (-1: unknown, or
        truncated, so a reader must tokenize the row again to report it)."""
        ...

    def record_hits(self, keys: Sequence[bytes]) -> None:
        """Rows an `AnswerReader` of this store answered before they got here: counted and their use recorded as a
        look-up's hits are."""
        ...


@dataclass
class HeldAnswers:
    """Rows of a batch answered before, found by a reader: positions in the batch, their logits (float32, one
    vector per row) and token counts."""

    rows: np.ndarray
    logits: np.ndarray
    tokens: np.ndarray


class AnswerReader(Protocol):
    """Read-only access to an AnswerStore's answers under one run key, for the rows -> sequences step (a CPU
    worker): rows it answers skip the tokenizer. Never fails: a reader that cannot read answers nothing."""

    def read(self, cleaned: Sequence[str]) -> HeldAnswers | None:
        ...


def run_key(**settings: object) -> bytes:
    """A digest of the settings that decide a row's logits, in a stable order."""
    text = "\0".join(f"{name}={settings[name]!r}" for name in sorted(settings))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=32).digest()


def text_digest(text: str) -> bytes:
    """A 128-bit digest of a cleaned text: what dedup compares and the answer key is made of, without the text."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=KEY_BYTES).digest()


def answer_keys(key: bytes, cleaned: Sequence[str | bytes]) -> list[bytes]:
    """One key per row under the run key `key`: of its cleaned text, or of that text's `text_digest` (bytes)."""
    return [
        hashlib.blake2b(t if isinstance(t, bytes) else text_digest(t), digest_size=KEY_BYTES, key=key).digest()
        for t in cleaned
    ]
