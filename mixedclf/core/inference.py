"""Device stage: micro-batches of token ids in, logits out. The only stage that touches the model."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from mixedclf.core.batching import plan_micro_batches
from mixedclf.core.preprocess import PreprocessedBatch


@dataclass
class InferenceStats:
    batches: int = 0
    rows: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    token_width_sum: int = 0  # sum of rows x width^2 over micro-batches: the attention term of the FLOPs count
    busy_s: float = 0.0
    oom_splits: int = 0
    first_start: float | None = None
    last_end: float | None = None
    batch_sizes: list[int] = field(default_factory=list)


class InferenceRunner:
    """Runs a loaded module on micro-batches planned by length; keeps the stage's timings."""

    def __init__(self, module: nn.Module, device: torch.device, num_labels: int, pad_id: int = 0,
                 on_batch: Callable[[int], None] | None = None):
        self.module = module
        # Told the rows of each finished micro-batch: progress moves with the device, not once per chunk.
        self.on_batch = on_batch
        self.device = device
        self.num_labels = num_labels
        self.pad_id = pad_id
        self.stats = InferenceStats()
        # Pinned host memory lets the copy to the GPU run asynchronously.
        self._pin = device.type == "cuda"

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        input_ids = torch.from_numpy(ids)
        attention_mask = torch.from_numpy(mask)
        if self._pin:
            input_ids, attention_mask = input_ids.pin_memory(), attention_mask.pin_memory()
        input_ids = input_ids.to(self.device, non_blocking=True)
        attention_mask = attention_mask.to(self.device, non_blocking=True)
        with torch.inference_mode():
            logits = self.module(input_ids=input_ids, attention_mask=attention_mask)
        return logits.float().cpu().numpy()

    def _forward_splitting(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Forward, halving the batch on CUDA out-of-memory until it fits (one row that cannot fit still fails)."""
        try:
            return self._forward(ids, mask)
        except torch.cuda.OutOfMemoryError:
            if len(ids) == 1:
                raise
            torch.cuda.empty_cache()
            self.stats.oom_splits += 1
            half = len(ids) // 2
            return np.concatenate(
                [self._forward_splitting(ids[:half], mask[:half]), self._forward_splitting(ids[half:], mask[half:])]
            )

    def logits(self, batch: PreprocessedBatch, batch_size: int, max_batch_tokens: int) -> np.ndarray:
        """Logits (float32, rows in the batch's own order) for every row of a preprocessed batch."""
        n = len(batch)
        out = np.empty((n, self.num_labels), dtype=np.float32)
        offsets = batch.offsets
        tokens = batch.token_ids if batch.token_ids.size else np.zeros(1, dtype=np.int32)
        for rows in plan_micro_batches(batch.lengths, batch_size, max_batch_tokens):
            lengths = batch.lengths[rows].astype(np.int64)
            width = max(int(lengths.max()), 1)
            # Gather every row's ids into a padded matrix in one vectorized step (no Python loop per row).
            columns = np.arange(width)
            mask = columns < lengths[:, None]
            positions = np.minimum(offsets[rows][:, None] + columns, tokens.size - 1)
            ids = np.where(mask, tokens[positions], self.pad_id).astype(np.int64)
            mask = mask.astype(np.int64)
            start = time.monotonic()
            out[rows] = self._forward_splitting(ids, mask)
            self._synchronize()
            end = time.monotonic()
            self._record(start, end, len(rows), int(lengths.sum()), ids.size, width)
            if self.on_batch is not None:
                self.on_batch(len(rows))
        return out

    def _record(self, start: float, end: float, rows: int, real: int, padded: int, width: int = 0) -> None:
        s = self.stats
        s.busy_s += end - start
        s.first_start = start if s.first_start is None else s.first_start
        s.last_end = end
        s.batches += 1
        s.rows += rows
        s.real_tokens += real
        s.padded_tokens += padded
        s.token_width_sum += padded * width
        s.batch_sizes.append(rows)
