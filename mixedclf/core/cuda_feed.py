"""Feeding a CUDA device without stalling it: one chunk of micro-batches, pipelined.

While the GPU runs batch i, the host pads batch i+1 into a pinned buffer and a side stream copies it to the
device, so the copy overlaps the forward. Logits stay on the device until the chunk ends; then one copy back
and one synchronize for the whole chunk. CUDA events time each forward on the GPU's own clock.

Buffers are reused, never reallocated per batch, in SLOTS rotating slots. Two hazards, two events per slot:
- `copied[s]` is recorded on the side stream after slot s's host-to-device copy. The compute stream waits on
  it before the forward reads the device slot, and the host waits on it before it pads a later batch into
  the same pinned slot (the copy may still be reading it).
- `consumed[s]` is recorded on the compute stream after the forward that read device slot s. The side stream
  waits on it before a later copy overwrites that device slot.
An event never recorded is a no-op to wait on, so the first SLOTS batches start at once.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from mixedclf.core.batching import fill_padded

# Three slots let the host pad and copy two batches ahead of the one on the GPU; the host blocks only when it
# is that far ahead, which is when the GPU, not the host, is the bottleneck.
SLOTS = 3


class TorchCudaOps:
    """The CUDA calls the pipelined loop makes, in one place (a test substitutes a CPU stand-in)."""

    def __init__(self, device: torch.device):
        self.device = device

    def pinned(self, numel: int, dtype: torch.dtype) -> torch.Tensor:
        return torch.empty(numel, dtype=dtype, pin_memory=True)

    def device_empty(self, numel: int, dtype: torch.dtype) -> torch.Tensor:
        return torch.empty(numel, dtype=dtype, device=self.device)

    def new_stream(self):
        return torch.cuda.Stream(device=self.device)

    def current_stream(self):
        return torch.cuda.current_stream(self.device)

    def new_event(self, timing: bool = False):
        return torch.cuda.Event(enable_timing=timing)

    def on(self, stream):
        return torch.cuda.stream(stream)

    def copy(self, dst: torch.Tensor, src: torch.Tensor) -> None:
        """Asynchronous copy on the current stream (the source or destination is pinned)."""
        dst.copy_(src, non_blocking=True)

    def empty_cache(self) -> None:
        torch.cuda.empty_cache()


class _Slot:
    def __init__(self, ops, capacity: int):
        # ids, mask and gather scratch share one pinned block; ids and mask are copied, scratch never is.
        self.host = ops.pinned(3 * capacity, torch.int64)
        self.dev = ops.device_empty(2 * capacity, torch.int64)
        self.capacity = capacity
        self.copied = ops.new_event()
        self.consumed = ops.new_event()

    def views(self, rows: int, width: int):
        n, c = rows * width, self.capacity
        host_ids, host_mask = self.host[:n].view(rows, width), self.host[c : c + n].view(rows, width)
        scratch = self.host[2 * c : 2 * c + n].numpy().reshape(rows, width)
        dev_ids, dev_mask = self.dev[:n].view(rows, width), self.dev[c : c + n].view(rows, width)
        return host_ids, host_mask, scratch, dev_ids, dev_mask


class PipelinedFeed:
    """Runs one chunk's micro-batches on a CUDA device; owns the reused buffers, streams and events."""

    def __init__(self, device: torch.device, ops=None):
        self.device = device
        self._ops = ops
        self._slots: list[_Slot] = []
        self._side = None
        self._timers: list = []
        self._out_host: torch.Tensor | None = None

    @property
    def ops(self):
        if self._ops is None:  # created on first use: building a runner must not touch the driver
            self._ops = TorchCudaOps(self.device)
        return self._ops

    def _ensure(self, capacity: int, batches: int, out_numel: int) -> None:
        ops = self.ops
        if self._side is None:
            self._side = ops.new_stream()
        if not self._slots or self._slots[0].capacity < capacity:
            # Only between chunks, after the chunk's synchronize: no copy or forward still uses the old slots.
            capacity = 1 << max(capacity - 1, 1).bit_length()
            self._slots = [_Slot(ops, capacity) for _ in range(SLOTS)]
        while len(self._timers) < batches:
            self._timers.append((ops.new_event(timing=True), ops.new_event(timing=True)))
        if self._out_host is None or self._out_host.numel() < out_numel:
            self._out_host = ops.pinned(1 << max(out_numel - 1, 1).bit_length(), torch.float32)

    def run(self, runner, tokens: np.ndarray, offsets: np.ndarray, lengths: np.ndarray,
            plan: list[np.ndarray], widths: list[int], out: np.ndarray) -> None:
        """Fill `out` (rows x labels, float32, chunk order) with the logits of every micro-batch in `plan`."""
        ops, stats = self.ops, runner.call_stats
        n, labels = out.shape
        self._ensure(max(len(r) * w for r, w in zip(plan, widths)), len(plan), n * labels)
        compute, side = ops.current_stream(), self._side
        logits_dev = ops.device_empty(n * labels, torch.float32).view(n, labels)  # rows in plan order
        try:
            self._launch(runner, tokens, offsets, lengths, plan, widths, compute, side, logits_dev)
        except BaseException:
            # Nothing may still write a buffer once the caller moves on (or a later chunk reallocates the slots).
            side.synchronize()
            compute.synchronize()
            raise
        host = self._out_host[: n * labels].view(n, labels)
        ops.copy(host, logits_dev)
        done = ops.new_event()
        done.record(compute)
        wait = time.monotonic()
        done.synchronize()  # the one synchronize of the chunk
        stats.last = time.monotonic()
        stats.wait_s += stats.last - wait
        stats.busy_s += sum(s.elapsed_time(e) for s, e in self._timers[: len(plan)]) / 1e3
        out[np.concatenate(plan)] = host.numpy()

    def _launch(self, runner, tokens, offsets, lengths, plan, widths, compute, side, logits_dev) -> None:
        """Queue every micro-batch's copy and forward; returns as soon as the last one is launched."""
        ops, stats = self.ops, runner.call_stats
        position = 0
        for i, (rows, width) in enumerate(zip(plan, widths)):
            slot, k = self._slots[i % SLOTS], len(rows)
            wait = time.monotonic()
            slot.copied.synchronize()  # the copy that last read this pinned slot is done
            stats.wait_s += time.monotonic() - wait
            host_ids, host_mask, scratch, dev_ids, dev_mask = slot.views(k, width)
            fill_padded(tokens, offsets, lengths, rows, runner.pad_id, host_ids.numpy(), host_mask.numpy(), scratch)
            side.wait_event(slot.consumed)  # the forward that last read this device slot is done
            with ops.on(side):
                ops.copy(dev_ids, host_ids)
                ops.copy(dev_mask, host_mask)
                slot.copied.record(side)
            compute.wait_event(slot.copied)
            start, end = self._timers[i]
            start.record(compute)
            if stats.first is None:
                stats.first = time.monotonic()
            logits = self._forward(runner, dev_ids, dev_mask, host_ids, host_mask)
            logits_dev[position : position + k].copy_(logits)
            end.record(compute)
            slot.consumed.record(compute)
            runner._count(k, int(lengths[rows].sum()), k * width, width)
            position += k

    def _forward(self, runner, dev_ids, dev_mask, host_ids, host_mask) -> torch.Tensor:
        started = time.monotonic()
        try:
            logits = runner.module(input_ids=dev_ids, attention_mask=dev_mask)
        except torch.cuda.OutOfMemoryError:
            if len(dev_ids) == 1:
                raise
            # The pinned slot still holds this batch: it is only reused after a later batch's wait.
            self.ops.empty_cache()
            runner.call_stats.oom_splits += 1
            ids, mask = host_ids.numpy().copy(), host_mask.numpy().copy()
            half = len(ids) // 2
            halves = [runner._forward_splitting(ids[:half], mask[:half]),
                      runner._forward_splitting(ids[half:], mask[half:])]
            return torch.from_numpy(np.concatenate(halves)).to(self.device)
        runner.call_stats.forward_s += time.monotonic() - started
        return logits
