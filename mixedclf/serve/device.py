"""The device stage of the server: the sequences of several requests in, their logits out.

`DeviceStage.run_batch` is what the micro-batcher runs in its one device thread. It joins the requests'
sequences into one batch, runs the stage contract's sequences -> logits step on it (core.pipeline.StagePipeline:
length-sorted forward passes under the token budget, `max_batch_size` rows each), then splits the logits back per
request, with each request's share of the device seconds (by its share of the batch's tokens: a long text costs
more than a short one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixedclf.core.pipeline import StagePipeline
from mixedclf.core.sequences import Sequences, concat_sequences
from mixedclf.serve.batcher import BatchOutcome


@dataclass
class DeviceShare:
    """One request's part of a device batch."""

    logits: np.ndarray  # (rows, labels) float32
    busy_s: float  # its share of the batch's device busy seconds
    rows: list[dict] | None = None  # its output rows, where the device stage made them too (a remote `all` stage)


class DeviceStage:
    """Drives the stage contract's device step; only ever called from the batcher's single device thread."""

    def __init__(self, pipeline: StagePipeline):
        self.pipeline = pipeline

    def run_batch(self, parts: list[Sequences]) -> BatchOutcome:
        inferred = self.pipeline.infer(concat_sequences(parts))
        device = inferred.work.device  # this call's figures: the pipeline keeps the running totals
        return share_batch(parts, inferred.logits, device.busy_s, list(device.batch_sizes))


def share_batch(parts: list[Sequences], logits: np.ndarray, busy_s: float, micro_batches: list[int]) -> BatchOutcome:
    """A batch's logits split back per request, each with its share of the device seconds by its tokens."""
    tokens = [max(int(p.batch.lengths.sum()), len(p)) for p in parts]
    total = sum(tokens) or 1
    results, start = [], 0
    for part, tok in zip(parts, tokens):
        n = len(part)
        results.append(DeviceShare(logits[start : start + n], busy_s * tok / total))
        start += n
    return BatchOutcome(results, busy_s, micro_batches)
