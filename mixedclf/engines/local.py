"""The default engine: reader -> CPU process pool (preprocess) -> device loop (inference) -> writer thread
(postprocess + write). While the device runs chunk k the pool prepares chunks k+1.., and the writer flushes
chunk k-1. Queues are bounded, so memory stays flat whatever the input size.

`mode="gpu-only"` runs the baseline architecture for real: every stage, one after another, in this process.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa

from mixedclf.costs import RunMeasurements, StageMeasurement
from mixedclf.engines.workers import init_worker, preprocess_task
from mixedclf.errors import InputError, RowError, StageTimeout
from mixedclf.io.formats import detect_format
from mixedclf.io.readers import InputChunk, iter_chunks
from mixedclf.io.writers import ChunkWriter, ErrorLog, check_writable
from mixedclf.models.spec import ModelSpec, resolve_model
from mixedclf.stages.postprocess import LabelTally, label_columns
from mixedclf.stages.preprocess import PreprocessedBatch, make_tokenizer, preprocess_texts, select_rows

# Rows whose cleaned text was seen recently reuse its logits instead of a second trip through the model.
DEDUP_CACHE_ROWS = 200_000


@dataclass
class StageClock:
    """Busy seconds and the first-start / last-end window of one stage."""

    name: str
    billing: str
    device: str
    workers: int = 1
    items: int = 0
    busy_s: float = 0.0
    first: float | None = None
    last: float | None = None

    def add(self, start: float, end: float, items: int) -> None:
        self.busy_s += end - start
        self.items += items
        self.first = start if self.first is None else min(self.first, start)
        self.last = end if self.last is None else max(self.last, end)

    def measurement(self) -> StageMeasurement:
        wall = (self.last - self.first) if self.first is not None else 0.0
        return StageMeasurement(
            name=self.name, billing=self.billing, device=self.device, items=self.items,
            busy_s=self.busy_s, wall_s=wall, workers=self.workers,
        )


@dataclass
class RunResult:
    spec: ModelSpec
    device: str
    measurements: RunMeasurements
    tally: LabelTally
    rows_in: int
    rows_out: int
    rows_errored: int
    settings: dict
    extra: dict = field(default_factory=dict)


def default_cpu_workers(device_type: str) -> int:
    """On an accelerator every core but the one feeding it preprocesses; on a CPU the model needs the cores."""
    cores = os.cpu_count() or 1
    return max(1, cores - 1) if device_type in ("cuda", "mps") else max(1, cores // 4)


class DedupCache:
    """Logits keyed by cleaned text, least recently used out first."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._logits: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = 0
        self.lookups = 0

    def logits_for(self, prep: PreprocessedBatch, infer: Callable[[PreprocessedBatch], np.ndarray]) -> np.ndarray:
        keys = prep.cleaned
        self.lookups += len(keys)
        first_of: dict[str, int] = {}
        todo = []
        for i, key in enumerate(keys):
            if key not in self._logits and key not in first_of:
                first_of[key] = len(todo)
                todo.append(i)
        fresh = infer(select_rows(prep, np.asarray(todo, dtype=np.int64)) if len(todo) < len(keys) else prep) if todo else None
        out = []
        for key in keys:
            if key in first_of:
                out.append(fresh[first_of[key]])
            else:
                out.append(self._logits[key])
                self._logits.move_to_end(key)
        self.hits += len(keys) - len(todo)
        for key, j in first_of.items():
            self._logits[key] = fresh[j]
        while len(self._logits) > self.capacity:
            self._logits.popitem(last=False)
        return np.stack(out) if out else np.zeros((0, 0), np.float32)


class LocalEngine:
    def __init__(self, opts, on_rows: Callable[[int], None] | None = None):
        self.opts = opts
        self.on_rows = on_rows or (lambda n: None)
        self.pool_restarts = 0

    # --- set-up -------------------------------------------------------------------------------------------
    def _validate_paths(self) -> tuple[str, str]:
        o = self.opts
        in_fmt = detect_format(o.input, o.input_format, "input")
        out_fmt = detect_format(o.output, o.output_format, "output")
        if not o.input.exists():
            raise InputError(f"{o.input}: no such file", hint="check the input path")
        if o.output.resolve() == o.input.resolve():
            raise InputError(f"{o.output}: output is the input file", hint="write to another path")
        check_writable(o.output)
        return in_fmt, out_fmt

    # --- run ------------------------------------------------------------------------------------------------
    def run(self) -> RunResult:
        import torch  # deferred: `mixedclf estimate` and friends never pay for it

        from mixedclf.models.loading import load_model, resolve_device
        from mixedclf.models.tokenizer import tokenizer_json_and_pad_id
        from mixedclf.stages.inference import InferenceRunner

        o = self.opts
        in_fmt, out_fmt = self._validate_paths()
        spec = resolve_model(o.model)
        device = resolve_device(o.device)
        if o.torch_threads:
            torch.set_num_threads(o.torch_threads)
        mixed = o.mode == "mixed"
        workers = (o.cpu_workers or default_cpu_workers(device.type)) if mixed else 0
        cpu_billing = "cpu" if mixed else "gpu"
        dev = str(device)
        clocks = {
            "read": StageClock("read", cpu_billing, "cpu"),
            "preprocess": StageClock("preprocess", cpu_billing, "cpu", workers=max(workers, 1)),
            "inference": StageClock("inference", "gpu", dev),
            "postprocess": StageClock("postprocess", cpu_billing, "cpu"),
            "write": StageClock("write", cpu_billing, "cpu"),
        }
        t_start = time.monotonic()
        tokenizer_json, pad_id = tokenizer_json_and_pad_id(spec)
        pool = self._start_pool(workers, tokenizer_json, spec.max_length) if mixed else None
        pool_started = time.monotonic()
        try:
            load_start = time.monotonic()
            module = load_model(spec, device, o.precision)
            load_end = time.monotonic()
            runner = InferenceRunner(module, device, len(spec.labels), pad_id)
            tokenizer = None if mixed else make_tokenizer(tokenizer_json, spec.max_length)
            result = self._stream(in_fmt, out_fmt, spec, runner, pool, tokenizer, clocks, workers, tokenizer_json)
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        pool_ended = time.monotonic()
        t_end = time.monotonic()

        stats = runner.stats
        last_batch = stats.last_end if stats.last_end is not None else load_end
        stages = [StageMeasurement(name="model_load", billing="gpu", device=dev, items=0,
                                   busy_s=load_end - load_start, wall_s=load_end - load_start, workers=1)]
        stages += [c.measurement() for c in clocks.values()]
        tally, rows_in, rows_out, rows_errored, dedup = result
        measurements = RunMeasurements(
            mode=o.mode, items=rows_out, stages=stages, wall_s=t_end - t_start,
            gpu_held_s=(last_batch - load_start) if mixed else (t_end - load_start),
            cpu_pool_held_s=(pool_ended - pool_started) if mixed else 0.0,
            cpu_pool_workers=workers,
        )
        settings = {
            "mode": o.mode, "device": dev, "precision": o.precision, "cpu_workers": workers,
            "torch_threads": torch.get_num_threads(), "batch_size": o.batch_size,
            "max_batch_tokens": o.max_batch_tokens, "chunk_rows": o.chunk_rows, "clean": o.clean,
            "dedup": o.dedup, "input_format": in_fmt, "output_format": out_fmt,
        }
        extra = {
            "micro_batches": stats.batches,
            "mean_batch_rows": (stats.rows / stats.batches) if stats.batches else 0.0,
            "padding_fraction": (1 - stats.real_tokens / stats.padded_tokens) if stats.padded_tokens else 0.0,
            "tokens": stats.real_tokens,
            "truncated_rows": tally.truncated,
            "oom_splits": stats.oom_splits,
            "device_busy_s": stats.busy_s,
            "pool_restarts": self.pool_restarts,
            "dedup_hit_rate": (dedup.hits / dedup.lookups) if dedup and dedup.lookups else 0.0,
            "startup_s": (stats.first_start - t_start) if stats.first_start is not None else None,
        }
        return RunResult(spec, dev, measurements, tally, rows_in, rows_out, rows_errored, settings, extra)

    def _start_pool(self, workers: int, tokenizer_json: str, max_length: int) -> ProcessPoolExecutor:
        # spawn, not fork: the parent holds torch's thread pools, which a forked child would inherit broken.
        return ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker,
            initargs=(tokenizer_json, max_length, self.opts.clean),
        )

    def _stream(self, in_fmt, out_fmt, spec, runner, pool, tokenizer, clocks, workers, tokenizer_json):
        o = self.opts
        writer = ChunkWriter(o.output, out_fmt)
        errors = ErrorLog(o.output)
        tally = LabelTally()
        dedup = DedupCache(DEDUP_CACHE_ROWS) if o.dedup else None
        counts = {"in": 0, "out": 0, "errored": 0}
        out_queue: queue.Queue = queue.Queue(maxsize=4)
        failure: list[BaseException] = []

        def write_loop() -> None:
            while (item := out_queue.get()) is not None:
                if failure:
                    continue  # drain so the producer never blocks after a failure
                chunk, prep, logits = item
                try:
                    self._postprocess_and_write(chunk, prep, logits, spec, writer, errors, tally, clocks, counts)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
                    failure.append(exc)

        writer_thread = threading.Thread(target=write_loop, name="mixedclf-writer", daemon=True)
        writer_thread.start()
        infer = lambda prep: runner.logits(prep, o.batch_size, o.max_batch_tokens)  # noqa: E731
        clock = clocks["inference"]
        try:
            for chunk, prep in self._prepared_chunks(
                in_fmt, pool, tokenizer, clocks, workers, tokenizer_json, spec.max_length
            ):
                if failure:
                    raise failure[0]
                if chunk.problems and o.on_error == "fail":
                    p = chunk.problems[0]
                    raise RowError(f"{o.input}: row {p.row}" + (f" (line {p.line})" if p.line else "")
                                   + f": {p.reason}", hint="fix the row, or use --on-error skip")
                start = time.monotonic()
                logits = dedup.logits_for(prep, infer) if dedup else infer(prep)
                clock.add(start, time.monotonic(), len(chunk.texts))
                self._put(out_queue, (chunk, prep, logits), writer_thread, failure)
            out_queue.put(None)
            writer_thread.join()
            if failure:
                raise failure[0]
            writer.commit(empty_schema=None)
            errors.commit()
        except BaseException:
            if writer_thread.is_alive():
                failure.append(RuntimeError("aborted"))
                try:
                    out_queue.put_nowait(None)
                except queue.Full:
                    pass
                writer_thread.join(timeout=30)
            writer.abort()
            errors.abort()
            raise
        return tally, counts["in"], counts["out"], counts["errored"], dedup

    @staticmethod
    def _put(out_queue, item, writer_thread, failure) -> None:
        while True:
            try:
                out_queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if failure or not writer_thread.is_alive():
                    raise failure[0] if failure else RuntimeError("writer thread stopped")

    def _prepared_chunks(self, in_fmt, pool, tokenizer, clocks, workers, tokenizer_json, max_length):
        """(chunk, preprocessed batch) in input order. With a pool, keeps a few chunks in flight ahead."""
        o = self.opts
        chunks = iter_chunks(o.input, in_fmt, o.text_field, o.id_field, o.chunk_rows)
        read = clocks["read"]
        pre = clocks["preprocess"]

        def next_chunk() -> InputChunk | None:
            start = time.monotonic()
            chunk = next(chunks, None)
            if chunk is not None:
                read.add(start, time.monotonic(), chunk.rows_in)
            return chunk

        if pool is None:
            while (chunk := next_chunk()) is not None:
                start = time.monotonic()
                prep = preprocess_texts(chunk.texts, tokenizer, o.clean)
                pre.add(start, time.monotonic(), len(chunk.texts))
                yield chunk, prep
            return

        in_flight: deque = deque()
        ahead = max(2, 2 * workers)
        exhausted = False
        while True:
            while not exhausted and len(in_flight) < ahead:
                chunk = next_chunk()
                if chunk is None:
                    exhausted = True
                else:
                    in_flight.append([chunk, pool.submit(preprocess_task, chunk.texts)])
            if not in_flight:
                return
            chunk, future = in_flight[0]
            try:
                prep, start, end, _pid = future.result(timeout=o.stage_timeout_cpu)
            except FutureTimeout:
                raise StageTimeout(
                    f"preprocessing chunk {chunk.index} took longer than --stage-timeout-cpu {o.stage_timeout_cpu}s"
                ) from None
            except BrokenProcessPool:
                # A worker died (killed, out of memory): start a fresh pool and resubmit what was in flight.
                pool.shutdown(wait=False, cancel_futures=True)
                pool = self._start_pool(workers, tokenizer_json, max_length)
                self.pool_restarts += 1
                for entry in in_flight:
                    entry[1] = pool.submit(preprocess_task, entry[0].texts)
                continue
            in_flight.popleft()
            pre.add(start, end, len(chunk.texts))
            yield chunk, prep

    def _postprocess_and_write(self, chunk, prep, logits, spec, writer, errors, tally, clocks, counts) -> None:
        o = self.opts
        start = time.monotonic()
        columns = label_columns(logits, spec.labels, spec.activation, prep, spec.name, o.all_scores)
        table = chunk.passthrough
        if o.keep_text:
            table = table.append_column(o.text_field, pa.array(chunk.texts, type=pa.string()))
        for name, values in columns.items():
            if name in table.column_names:
                table = table.drop_columns([name])  # the classifier's columns win over same-named input columns
            table = table.append_column(name, values)
        tally.add(columns)
        mid = time.monotonic()
        clocks["postprocess"].add(start, mid, table.num_rows)
        writer.write(table)
        errors.write([p.as_dict() for p in chunk.problems])
        clocks["write"].add(mid, time.monotonic(), table.num_rows)
        counts["in"] += chunk.rows_in
        counts["out"] += table.num_rows
        counts["errored"] += len(chunk.problems)
        self.on_rows(chunk.rows_in)
