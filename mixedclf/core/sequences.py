"""The sequences a batch of rows becomes: what the rows -> sequences step of the stage contract
(core.pipeline) makes, and what its sequences -> logits step takes. Imports neither torch nor pyarrow: the CPU
worker processes load it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mixedclf.core.answers import AnswerReader
from mixedclf.core.preprocess import PreprocessedBatch, concat_batches, preprocess_texts


@dataclass
class Sequences:
    """What the preprocess step makes of a batch of rows: the sequences the device sees, and whose they are.

    `row_of_sequence[i]` is the row sequence i belongs to (non-decreasing: a row's sequences are adjacent);
    None means one sequence per row. For a row of several sequences the counts of its first sequence stand for
    the row, its token count is the sum, and it is truncated if any of them is.
    """

    batch: PreprocessedBatch
    row_of_sequence: np.ndarray | None = None

    def __len__(self) -> int:
        """Rows, not sequences."""
        if self.row_of_sequence is None:
            return len(self.batch)
        return int(self.row_of_sequence[-1]) + 1 if len(self.row_of_sequence) else 0

    def rows(self) -> PreprocessedBatch:
        """One entry per row: what the output step reports for each row (counts, tokens, truncation)."""
        if self.row_of_sequence is None:
            return self.batch
        b, owner, n = self.batch, self.row_of_sequence, len(self)
        first = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]]) if len(owner) else np.zeros(0, np.int64)
        return PreprocessedBatch(
            [b.cleaned[i] for i in first], np.zeros(0, np.int32),
            np.bincount(owner, weights=b.lengths, minlength=n).astype(np.int32),
            np.bincount(owner, weights=b.truncated, minlength=n) > 0,
            b.word_count[first], b.sentence_count[first], b.char_count[first],
        )

    def reduce(self, logits: np.ndarray) -> np.ndarray:
        """Per-sequence logits to per-row logits: the mean over each row's sequences."""
        if self.row_of_sequence is None:
            return logits
        owner, n = self.row_of_sequence, len(self)
        sums = np.zeros((n, logits.shape[1]), dtype=np.float64)
        np.add.at(sums, owner, logits)
        return (sums / np.bincount(owner, minlength=n)[:, None]).astype(np.float32)


def to_sequences(texts: list[str], tokenizer, clean: str = "standard", reader: AnswerReader | None = None
                 ) -> Sequences:
    """The rows -> sequences step for a batch of texts: one sequence per row (rows `reader` answers untokenized)."""
    return Sequences(preprocess_texts(texts, tokenizer, clean, reader))


def concat_sequences(parts: list[Sequences]) -> Sequences:
    """One Sequences holding the rows of several, in order (slices preprocessed by different workers, or the
    requests of one device batch)."""
    if len(parts) == 1:
        return parts[0]
    batch = concat_batches([p.batch for p in parts])
    if all(p.row_of_sequence is None for p in parts):
        return Sequences(batch)
    owners, base = [], 0
    for p in parts:
        own = p.row_of_sequence if p.row_of_sequence is not None else np.arange(len(p.batch))
        owners.append(own + base)
        base += len(p)
    return Sequences(batch, np.concatenate(owners).astype(np.int64))


def slice_rows(seqs: Sequences, start: int, stop: int) -> Sequences:
    """Rows start..stop of seqs (a contiguous range, in order), with their sequences: a piece of a chunk."""
    if start == 0 and stop == len(seqs):
        return seqs
    b, owner = seqs.batch, seqs.row_of_sequence
    first, last = (start, stop) if owner is None else (int(np.searchsorted(owner, start, "left")),
                                                       int(np.searchsorted(owner, stop, "left")))
    offsets = b.offsets
    batch = PreprocessedBatch(b.cleaned[first:last], b.token_ids[offsets[first]:offsets[last]],
                              b.lengths[first:last], b.truncated[first:last], b.word_count[first:last],
                              b.sentence_count[first:last], b.char_count[first:last],
                              None if b.held is None else b.held[first:last],
                              None if b.held_logits is None else b.held_logits[first:last])
    return Sequences(batch, None if owner is None else (owner[first:last] - start).astype(np.int64))


def sequences_without_tokens(lengths: np.ndarray, truncated: np.ndarray, words: np.ndarray,
                             sentences: np.ndarray, chars: np.ndarray) -> Sequences:
    """Rows known only by their counts (a stage that received the counts, not the token ids): enough for the
    output step."""
    return Sequences(PreprocessedBatch([""] * len(lengths), np.zeros(0, np.int32), lengths, truncated, words,
                                       sentences, chars))


def keyed_sequences(keys: Sequence[Any], token_ids: np.ndarray, lengths: np.ndarray, truncated: np.ndarray
                    ) -> Sequences:
    """Rows known only by their token ids, truncation and a comparable key each (a digest of the cleaned text):
    enough for the sequences -> logits step, whose dedup compares the keys and whose answer store keeps the
    token counts of untruncated rows."""
    zeros = np.zeros(len(lengths), np.int32)
    return Sequences(PreprocessedBatch(list(keys), token_ids, lengths, truncated.astype(bool), zeros, zeros, zeros))
