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


# Micro-batch limits when the run does not set them: (most rows, most padded tokens). On a CPU every padded
# token costs its full price and a batch of 64 rows already keeps the cores busy. An accelerator runs a pass
# of 64k tokens in about the time the host needs to launch one of 8k, so it gets fewer, bigger passes:
# with ~60-token reviews that is ~1,000 rows a pass instead of 64.
BATCH_DEFAULTS = {"cpu": (64, 8192), "mps": (64, 8192), "cuda": (1024, 65536)}


def batch_limits(device_type: str, batch_size: int | None = None,
                 max_batch_tokens: int | None = None) -> tuple[int, int]:
    """(rows, tokens) per micro-batch: the values given, else the device's defaults (unknown devices: CPU's)."""
    rows, tokens = BATCH_DEFAULTS.get(device_type, BATCH_DEFAULTS["cpu"])
    return batch_size or rows, max_batch_tokens or tokens


def fill_padded(tokens: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, rows: np.ndarray, pad_id: int,
                ids_out: np.ndarray, mask_out: np.ndarray, scratch: np.ndarray) -> None:
    """Write the padded (rows x width) id and mask matrices of one micro-batch into caller-owned int64 buffers.

    `tokens` is every row's ids concatenated (int64, at least one element), `offsets` where each row starts;
    `scratch` is an int64 buffer of the same shape for the gather positions. A handful of vectorized steps
    and no allocation of the matrices' size: this runs once per micro-batch on the path that feeds the device.
    """
    width = ids_out.shape[1]
    columns = np.arange(width)
    np.less(columns, lengths[rows][:, None], out=mask_out)
    np.add(offsets[rows][:, None], columns, out=scratch)
    np.take(tokens, scratch, out=ids_out, mode="clip")  # positions past the last token are masked below
    if pad_id == 0:
        np.multiply(ids_out, mask_out, out=ids_out)
    else:
        np.copyto(ids_out, pad_id, where=mask_out == 0)


class ChunkSizes:
    """Rows in each chunk (the window sorted by length), by chunk index: `first`, then `most` from the second on.

    The device waits for the whole first window to be read and preprocessed, so a small first window starts it
    sooner; every later window is full size, because a length sort over fewer rows pads more (doubling from
    1,024 rows padded 8.5% of a 5,000-row input's device tokens, this 5.3%, one full window 3.0%). While the
    device runs the first window the workers prepare the second, which on a CPU takes a fraction of that time.
    Chunk boundaries depend only on the input and these two numbers (and SCHEDULE, part of the resume
    fingerprint), so an interrupted run resumes on the same boundaries.
    """

    SCHEDULE = "first, then most"

    def __init__(self, most: int, first: int | None = None):
        if most < 1 or (first is not None and first < 1):
            raise ValueError("chunk sizes must be at least 1")
        self.most = most
        self.first = min(first or most, most)

    def __call__(self, index: int) -> int:
        return self.first if index == 0 else self.most

    def __repr__(self) -> str:
        return f"ChunkSizes(most={self.most}, first={self.first})"
