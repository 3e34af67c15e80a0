"""The device stage of the server: the preprocessed texts of several requests in, their logits out.

`DeviceStage.run_batch` is what the micro-batcher runs in its one device thread. It joins the requests'
preprocessed batches into one, lets `InferenceRunner` plan length-sorted forward passes over it (token
budget, `max_batch_size` rows), then splits the logits back per request, with each request's share of the
device seconds (by its share of the batch's tokens: a long text costs more than a short one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixedclf.core.preprocess import PreprocessedBatch, concat_batches
from mixedclf.serve.batcher import BatchOutcome


@dataclass
class DeviceShare:
    """One request's part of a device batch."""

    logits: np.ndarray  # (rows, labels) float32
    busy_s: float  # its share of the batch's device busy seconds


class DeviceStage:
    """Owns the InferenceRunner; only ever called from the batcher's single device thread."""

    def __init__(self, runner, max_batch_size: int, max_batch_tokens: int):
        self.runner = runner
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens

    def run_batch(self, preps: list[PreprocessedBatch]) -> BatchOutcome:
        merged = concat_batches(preps)
        stats = self.runner.stats
        busy_before = stats.busy_s
        logits = self.runner.logits(merged, self.max_batch_size, self.max_batch_tokens)
        busy = stats.busy_s - busy_before
        micro = list(stats.batch_sizes)
        stats.batch_sizes.clear()  # a server runs for weeks: keep the runner's list from growing
        tokens = [max(int(p.lengths.sum()), len(p)) for p in preps]
        total = sum(tokens) or 1
        results, start = [], 0
        for prep, tok in zip(preps, tokens):
            n = len(prep)
            results.append(DeviceShare(logits[start : start + n], busy * tok / total))
            start += n
        return BatchOutcome(results, busy, micro)
