"""Device stage: micro-batches of token ids in, logits out. The only stage that touches the model.

A model is a torch module, or any callable with `numpy_io = True` (an onnxruntime session) that takes the
int64 numpy ids and mask and gives numpy logits. torch is imported only for a torch module: a run on the other
kind never pays for it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mixedclf.core.batching import batch_limits, fill_padded, plan_micro_batches
from mixedclf.core.preprocess import PreprocessedBatch
from mixedclf.core.stats import Clock


@dataclass
class InferenceStats(Clock):
    """The device stage's clock (busy_s: device time in forward passes; on CUDA GPU time between events around
    each pass) and what it computed."""

    batches: int = 0
    rows: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    token_width_sum: int = 0  # sum of rows x width^2 over micro-batches: the attention term of the FLOPs count
    forward_s: float = 0.0  # host time inside the model's call (on CUDA: launching its kernels)
    loop_s: float = 0.0  # host time inside logits(), all of it
    wait_s: float = 0.0  # host time blocked on the device (on CUDA: slot waits and the chunk's synchronize)
    oom_splits: int = 0
    # Rows of each forward pass: kept for one call only (InferenceRunner.call_stats); a running total holds none,
    # so a run's or a server's memory does not grow with its micro-batches.
    batch_sizes: list[int] = field(default_factory=list)

    ADDITIVE = ("busy_s", "batches", "rows", "real_tokens", "padded_tokens", "token_width_sum", "forward_s", "loop_s",
                "wait_s", "oom_splits")

    def merge(self, other: InferenceStats) -> None:
        """Add another call's figures to this running total (its per-pass sizes are not kept)."""
        for name in self.ADDITIVE:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.first is not None:
            self.first = other.first if self.first is None else min(self.first, other.first)
        if other.last is not None:
            self.last = other.last if self.last is None else max(self.last, other.last)

    @property
    def host_overhead_s(self) -> float:
        """Host time per run spent neither in the model's call nor waiting for the device: padding, copies,
        bookkeeping. Divided by `batches`, the cost every micro-batch adds on the host."""
        return max(self.loop_s - self.forward_s - self.wait_s, 0.0)


class _HostBuffers:
    """Reused int64 buffers for one micro-batch's ids, mask and gather positions, grown only when too small."""

    def __init__(self):
        self._flat = np.empty(0, dtype=np.int64)
        self._capacity = 0

    def views(self, rows: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = rows * width
        if n > self._capacity:
            self._capacity = 1 << max(n - 1, 1).bit_length()
            self._flat = np.empty(3 * self._capacity, dtype=np.int64)
        c = self._capacity
        return (self._flat[:n].reshape(rows, width), self._flat[c : c + n].reshape(rows, width),
                self._flat[2 * c : 2 * c + n].reshape(rows, width))


class InferenceRunner:
    """Runs a loaded module on micro-batches planned by length; keeps the stage's timings.

    On CUDA the micro-batches of a call are pipelined (cuda_feed.PipelinedFeed: pinned buffers, copies on a
    side stream, one synchronize per call); elsewhere each runs in turn from reused host buffers.
    `device` is a torch.device or anything with its `.type` and `str()` (models.device.Device).
    """

    def __init__(self, module, device, num_labels: int, pad_id: int = 0,
                 on_batch: Callable[[int], None] | None = None):
        self.module = module
        self.on_batch = on_batch  # told the rows of each micro-batch as it is run (on CUDA: launched)
        self.num_labels = num_labels
        self.pad_id = pad_id
        self.stats = InferenceStats()  # every call's figures, summed
        self.call_stats = InferenceStats()  # the current (or last) call's own figures
        self.batch_size, self.max_batch_tokens = batch_limits(device.type)
        self._numpy = bool(getattr(module, "numpy_io", False))
        if self._numpy and device.type != "cpu":
            raise ValueError(f"a numpy model runs on the CPU, not on {device}")
        self._torch = None
        if not self._numpy:
            import torch

            self._torch = torch
            device = torch.device(str(device))
        self.device = device
        # The out-of-memory fallback on CUDA copies through pinned memory, as the pipelined feed does.
        self._pin = self.device.type == "cuda"
        self._feed = None
        if self.device.type == "cuda":
            from mixedclf.core.cuda_feed import PipelinedFeed

            self._feed = PipelinedFeed(self.device)
        self._host = _HostBuffers()

    def _synchronize(self) -> None:
        torch = self._torch
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()

    def _forward_numpy(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        started = time.monotonic()
        logits = self.module(input_ids=ids, attention_mask=mask)
        self.call_stats.forward_s += time.monotonic() - started
        return np.asarray(logits, dtype=np.float32)

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        torch = self._torch
        input_ids = torch.from_numpy(ids)
        attention_mask = torch.from_numpy(mask)
        if self._pin:
            input_ids, attention_mask = input_ids.pin_memory(), attention_mask.pin_memory()
            input_ids = input_ids.to(self.device, non_blocking=True)
            attention_mask = attention_mask.to(self.device, non_blocking=True)
        elif self.device.type != "cpu":
            # A blocking copy: the host buffers are reused by the next micro-batch.
            input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        started = time.monotonic()
        logits = self.module(input_ids=input_ids, attention_mask=attention_mask)
        self.call_stats.forward_s += time.monotonic() - started
        if logits.dtype != torch.float32:
            logits = logits.float()
        return (logits if logits.device.type == "cpu" else logits.cpu()).numpy()

    def _forward_splitting(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Forward, halving the batch on CUDA out-of-memory until it fits (one row that cannot fit still fails)."""
        if self._numpy:
            return self._forward_numpy(ids, mask)
        torch = self._torch
        try:
            return self._forward(ids, mask)
        except torch.cuda.OutOfMemoryError:
            if len(ids) == 1:
                raise
            torch.cuda.empty_cache()
            self.call_stats.oom_splits += 1
            half = len(ids) // 2
            return np.concatenate(
                [self._forward_splitting(ids[:half], mask[:half]), self._forward_splitting(ids[half:], mask[half:])]
            )

    def logits(self, batch: PreprocessedBatch, batch_size: int | None = None,
               max_batch_tokens: int | None = None) -> np.ndarray:
        """Logits (float32, rows in the batch's own order) for every row of a preprocessed batch.

        `batch_size` and `max_batch_tokens` left as None take the device's defaults (batching.BATCH_DEFAULTS).
        """
        entered = time.monotonic()
        self.call_stats = call = InferenceStats()
        try:
            return self._logits(batch, batch_size, max_batch_tokens)
        finally:
            call.loop_s += time.monotonic() - entered
            self.stats.merge(call)

    def _logits(self, batch: PreprocessedBatch, batch_size: int | None,
                max_batch_tokens: int | None) -> np.ndarray:
        batch_size, max_batch_tokens = batch_limits(self.device.type, batch_size, max_batch_tokens)
        n = len(batch)
        out = np.empty((n, self.num_labels), dtype=np.float32)
        plan = plan_micro_batches(batch.lengths, batch_size, max_batch_tokens)
        if plan:
            # Rows are planned longest first, so each micro-batch's first row sets its width.
            widths = [max(int(batch.lengths[rows[0]]), 1) for rows in plan]
            tokens = batch.token_ids.astype(np.int64) if batch.token_ids.size else np.zeros(1, dtype=np.int64)
            offsets = batch.offsets
            with self._torch.inference_mode() if self._torch is not None else contextlib.nullcontext():
                if self._feed is not None:
                    self._feed.run(self, tokens, offsets, batch.lengths, plan, widths, out)
                else:
                    self._run_in_turn(tokens, offsets, batch.lengths, plan, widths, out)
        return out

    def _run_in_turn(self, tokens, offsets, lengths, plan, widths, out) -> None:
        for rows, width in zip(plan, widths):
            ids, mask, scratch = self._host.views(len(rows), width)
            fill_padded(tokens, offsets, lengths, rows, self.pad_id, ids, mask, scratch)
            start = time.monotonic()
            out[rows] = self._forward_splitting(ids, mask)
            if self.device.type != "cpu":
                self._synchronize()
            end = time.monotonic()
            self.call_stats.time(start, end)
            self._count(len(rows), int(lengths[rows].sum()), ids.size, width)

    def _count(self, rows: int, real: int, padded: int, width: int) -> None:
        s = self.call_stats
        s.batches += 1
        s.rows += rows
        s.real_tokens += real
        s.padded_tokens += padded
        s.token_width_sum += padded * width
        s.batch_sizes.append(rows)
        if self.on_batch is not None:
            self.on_batch(rows)
