"""Micro-batch planning: which rows of a window go to the device together. Pure; no torch."""

from __future__ import annotations

import numpy as np


def plan_micro_batches(lengths: np.ndarray, batch_size: int, max_batch_tokens: int) -> list[np.ndarray]:
    """Row indices of each micro-batch, longest rows first.

    Sorting the window by length means each batch pads to a length close to its rows' own, so the device
    computes little padding. Longest-first puts the biggest batch first, so an out-of-memory shows at once.
    A batch holds at most `batch_size` rows and at most `max_batch_tokens` padded tokens (rows × longest row);
    a single row longer than the budget still gets a batch of its own.
    """
    if batch_size < 1 or max_batch_tokens < 1:
        raise ValueError("batch_size and max_batch_tokens must be at least 1")
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    batches = []
    start = 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)
        size = max(1, min(batch_size, max_batch_tokens // longest))
        batches.append(order[start : start + size])
        start += size
    return batches


def padded_tokens(lengths: np.ndarray, batches: list[np.ndarray]) -> int:
    """Tokens the device computes for a plan, padding included."""
    return int(sum(len(b) * int(np.max(lengths[b])) for b in batches if len(b)))
