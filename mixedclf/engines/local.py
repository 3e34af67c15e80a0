"""The default engine: reader -> CPU process pool (preprocess; the two are the feed, feed.py) -> device loop
(inference) -> writer thread (postprocess + write + checkpoint). While the device runs chunk k the pool prepares
chunks k+1.., and the writer flushes chunk k-1. Queues are bounded, so memory stays flat whatever the input size.

`mode="gpu-only"` runs the baseline architecture for real: every stage, one after another, in this process.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from mixedclf.core.batching import batch_limits
from mixedclf.core.dedup import logits_with_dedup
from mixedclf.core.options import chunk_rows_for, chunk_sizes_for
from mixedclf.core.postprocess import LabelTally, label_columns
from mixedclf.core.preprocess import PreprocessedBatch, make_tokenizer
from mixedclf.core.run import RunSettings, RunStats
from mixedclf.core.stats import IdRepeats, RunCounts, StageClock
from mixedclf.costs import RunMeasurements, StageMeasurement
from mixedclf.costs.budget import already_spent_message
from mixedclf.engines.budget import BudgetStop, CostMeter
from mixedclf.engines.cpu_time import CpuExcept
from mixedclf.engines.feed import ChunkFeed
from mixedclf.engines.progress import source_rows
from mixedclf.engines.result import RunResult, stage_measurement
from mixedclf.errors import EXIT_BUDGET, InputError, Interrupted, RowError
from mixedclf.io.checkpoint import (
    Checkpoint,
    checkpoint_path,
    finish_commit,
    remove_checkpoint,
    run_fingerprint,
    verify_resumable,
)
from mixedclf.io.jsonvalues import python_values
from mixedclf.io.runio import RunIO, resolve_io
from mixedclf.io.sinks import open_error_log, open_writer, write_rows
from mixedclf.models.spec import ModelSpec, resolve_model
from mixedclf.runtime.control import StopSignals, call_with_timeout
from mixedclf.runtime.device import default_cpu_workers

# Options that change the bytes of the output: a checkpoint only resumes a run that had the same ones.
OUTPUT_SHAPING = ("model", "clean", "text_field", "id_field", "chunk_rows", "first_chunk_rows", "batch_size",
                  "max_batch_tokens", "all_scores", "keep_text", "dedup", "on_error", "precision", "backend",
                  "output_format", "input_format")


@dataclass
class _Run:
    """What one run's stream works with, set up by LocalEngine.run()."""

    in_fmt: str
    out_fmt: str
    spec: ModelSpec
    runner: Any  # core.inference.InferenceRunner
    tokenizer: Any  # this process's tokenizer in gpu-only mode, else None
    clocks: dict[str, StageClock]
    checkpoint: Checkpoint | None
    fingerprint: str
    tally: LabelTally = field(default_factory=LabelTally)
    counts: RunCounts = field(default_factory=RunCounts)


class LocalEngine:
    def __init__(self, opts, on_rows: Callable[[int], None] | None = None, meter: CostMeter | None = None):
        self.opts = opts
        self.meter = meter  # prices the run chunk by chunk: the checkpoint's spend and --max-cost
        self.budget_stop: str | None = None  # set when --max-cost stops the run before a chunk
        self.on_rows = on_rows or (lambda n: None)
        self.signals = StopSignals()
        self._reported = 0  # rows of the current chunk already passed to on_rows
        self.first_batch_at: float | None = None  # time.monotonic() when the first micro-batch reached the device
        self.feed: ChunkFeed | None = None  # the input, chunk by chunk, preprocessed; set by run()
        self._model_run = ""  # backend, precision and device the rows are computed with; set by run()
        # Set by run() for the one run an engine makes.
        self.io: RunIO | None = None  # where rows come from and go to
        self._batch: tuple[int, int] = (0, 0)  # micro-batch caps (rows, padded tokens) for the device
        self.load_started_at: float | None = None  # time.monotonic() when the model load began
        self.duplicate_ids = 0
        self._id_repeats = IdRepeats()
        self._spend_checkpoint = False  # a budget stop inside a chunk: record the spend in a checkpoint

    @property
    def pool_restarts(self) -> int:  # worker pools started again after a worker died
        return self.feed.restarts if self.feed is not None else 0

    def _batch_done(self, rows: int) -> None:
        self._reported += rows
        self.on_rows(rows)
        if self.meter is not None:
            self.meter.batch_done(rows)  # raises BudgetStop when finishing the chunk would pass --max-cost

    def _fingerprint(self, in_fmt: str, out_fmt: str, spec: ModelSpec) -> str:
        settings = {k: getattr(self.opts, k) for k in OUTPUT_SHAPING}
        sizes = chunk_sizes_for(self.opts)  # the chunk boundaries: a resumed run must cut the input the same way
        settings.update(chunk_rows=sizes.most, first_chunk_rows=sizes.first, chunk_schedule=sizes.SCHEDULE,
                        input_format=in_fmt, output_format=out_fmt, model=str(spec.path), batch_size=self._batch[0],
                        max_batch_tokens=self._batch[1])
        source = self.io.source
        (only,) = source.files if len(source.files) == 1 else (None,)
        if not source.many and only is not None and only.local is not None and only.compression is None:
            return run_fingerprint(only.local, settings)
        # Several files, a compressed or a remote one: each named with its size and modification time.
        return source.fingerprint({**settings, "rows_per_file": self.opts.rows_per_file,
                                   "output_layout": self.io.out_kind})

    def run(self) -> RunResult:
        # torch is imported by the model load, and only on the torch backend (or by asking torch which device
        # `auto` means where an accelerator driver is present): the pool starts before it.
        from mixedclf.core.inference import InferenceRunner
        from mixedclf.models.backend import load_model, model_run, model_threads, precision_of, resolve_backend
        from mixedclf.models.device import resolve_device
        from mixedclf.models.tokenizer import tokenizer_json_and_pad_id

        o = self.opts
        t_start = time.monotonic()
        self.io = resolve_io(o)
        in_fmt, out_fmt = self.io.in_fmt, self.io.out_fmt
        spec = resolve_model(o.model)
        backend = resolve_backend(o.precision, o.backend)
        device = resolve_device(o.device, backend)
        self._batch = batch_limits(device.type, o.batch_size, o.max_batch_tokens)
        fingerprint = self._fingerprint(in_fmt, out_fmt, spec) if self.io.resumable else ""
        checkpoint = self._load_checkpoint(fingerprint) if self.io.resumable else None
        if self.meter is not None:
            if checkpoint is not None:
                self.meter.resumed(checkpoint.spent_usd, checkpoint.rows_in, checkpoint.spent_s, checkpoint.runs)
            if self.meter.budget_spent:  # before the model loads: nothing is spent on a run that cannot start
                raise Interrupted(already_spent_message(self.meter.spent_before, self.meter.max_cost, str(o.output)),
                                  EXIT_BUDGET)
            if self.meter.max_cost is not None:  # the stop message projects the whole job
                self.meter.expected_rows = source_rows(self.io.source).rows
        mixed = o.mode == "mixed"
        workers = (o.cpu_workers or default_cpu_workers(device.type)) if mixed else 0
        cpu_billing, dev = ("cpu" if mixed else "gpu"), str(device)
        clocks = {
            "read": StageClock("read", cpu_billing, "cpu"),
            "preprocess": StageClock("preprocess", cpu_billing, "cpu", workers=max(workers, 1)),
            "inference": StageClock("inference", "gpu", dev),
            "postprocess": StageClock("postprocess", cpu_billing, "cpu"),
            "write": StageClock("write", cpu_billing, "cpu"),
        }
        tokenizer_json, pad_id = tokenizer_json_and_pad_id(spec)
        self.feed = ChunkFeed(o, self.io.source, in_fmt, clocks, self.signals,
                              skip_chunks=checkpoint.chunks_done if checkpoint else 0)
        if mixed:
            self.feed.start_pool(workers, tokenizer_json, spec.max_length)  # workers start while the model loads
        pool_started = time.monotonic()
        try:
            if mixed and not (checkpoint is not None and checkpoint.committed):
                # The first chunks are read and preprocessed while the model loads.
                self.feed.fill()
            load_start, load_cpu = time.monotonic(), time.process_time()
            module = load_model(spec, device, o.precision, backend, threads=o.torch_threads)
            load_end, load_cpu = time.monotonic(), time.process_time() - load_cpu
            self._model_run = model_run(module, device, o.precision)
            if checkpoint is not None:
                checkpoint.verify_model_run(self._model_run, o.output)
            runner = InferenceRunner(module, device, len(spec.labels), pad_id, on_batch=self._batch_done)
            tokenizer = None if mixed else make_tokenizer(tokenizer_json, spec.max_length)
            if self.meter is not None:
                self.meter.model_loaded(mode=o.mode, device=dev, load_start=load_start, load_end=load_end,
                                        pool_started=pool_started, workers=workers, inference=clocks["inference"],
                                        pool_released=lambda: self.feed.released)
            job = _Run(in_fmt, out_fmt, spec, runner, tokenizer, clocks, checkpoint, fingerprint)
            stopped: Interrupted | None = None
            with self.signals:
                try:
                    tally, counts = self._stream(job)
                except Interrupted as exc:
                    if self.budget_stop is None:
                        raise
                    # a stop at the budget still reports what was written: the caller writes the report, then
                    # ends with the stop's exit code
                    stopped, tally, counts = exc, job.tally, job.counts
            self.first_batch_at = runner.stats.first
        finally:
            self.feed.close()
        t_end = time.monotonic()

        stats = runner.stats
        last_batch = stats.last if stats.last is not None else load_end
        stages = [StageMeasurement(name="model_load", billing="gpu", device=dev, items=0,
                                   busy_s=load_end - load_start, wall_s=load_end - load_start, workers=1,
                                   cpu_s=load_cpu)]
        stages += [stage_measurement(c) for c in clocks.values()]
        measurements = RunMeasurements(
            mode=o.mode, items=clocks["inference"].items, stages=stages, wall_s=t_end - t_start,
            gpu_held_s=(last_batch - load_start) if mixed else (t_end - load_start),
            cpu_pool_held_s=((self.feed.released or t_end) - pool_started) if mixed else 0.0,
            cpu_pool_workers=workers, startup_s=load_start - t_start,  # from this call; the caller knows more
        )
        self.load_started_at = load_start
        choice = precision_of(module, device, o.precision)
        settings = RunSettings(
            mode=o.mode, device=dev, precision=choice.name, precision_reason=choice.reason,
            backend=getattr(module, "backend", "torch"), cpu_workers=workers, torch_threads=model_threads(module),
            batch_size=self._batch[0], max_batch_tokens=self._batch[1], chunk_rows=chunk_rows_for(o),
            first_chunk_rows=chunk_sizes_for(o).first, clean=o.clean, dedup=o.dedup, input_format=in_fmt,
            output_format=out_fmt,
        )
        extra = RunStats(
            micro_batches=stats.batches,
            mean_batch_rows=(stats.rows / stats.batches) if stats.batches else 0.0,
            padding_fraction=(1 - stats.real_tokens / stats.padded_tokens) if stats.padded_tokens else 0.0,
            tokens=stats.real_tokens,
            padded_tokens=stats.padded_tokens,
            token_width_sum=stats.token_width_sum,
            device_busy_s=stats.busy_s,
            device_forward_s=stats.forward_s,
            host_overhead_ms_per_batch=1e3 * stats.host_overhead_s / stats.batches if stats.batches else None,
            truncated_rows=tally.truncated,
            oom_splits=stats.oom_splits,
            pool_restarts=self.pool_restarts,
            duplicate_fraction=counts.dedup_hits / counts.dedup_lookups if counts.dedup_lookups else 0.0,
            dedup_hit_rate=counts.dedup_hits / counts.dedup_lookups if counts.dedup_lookups and o.dedup else 0.0,
            duplicate_ids=self.duplicate_ids,
            resumed_from_chunk=checkpoint.chunks_done if checkpoint else 0,
            rows_before_resume=checkpoint.rows_in if checkpoint else 0,
            startup_s=(stats.first - t_start) if stats.first is not None else None,
        )
        if self.meter is not None and self.meter.max_cost is not None:
            extra.budget = {"max_cost": self.meter.max_cost, "spent_before": self.meter.spent_before,
                            "first_projection": self.meter.first_projection}
        return RunResult(spec, dev, measurements, tally, counts.rows_in, counts.rows_out, counts.rows_errored,
                         settings, extra, stopped=stopped)

    def _load_checkpoint(self, fingerprint: str) -> Checkpoint | None:
        output = self.opts.output
        if not self.opts.resume:
            remove_checkpoint(output)
            return None
        checkpoint = Checkpoint.load(output)
        if checkpoint is None:
            return None
        if checkpoint.fingerprint != fingerprint:
            raise InputError(f"{checkpoint_path(output)} was made for another input file or other options",
                             hint="rerun with the same input and options, or without --resume")
        verify_resumable(checkpoint, output)
        return checkpoint

    def _stream(self, job: _Run) -> tuple[LabelTally, RunCounts]:
        o = self.opts
        io, resumable = self.io, self.io.resumable
        checkpoint, fingerprint, runner = job.checkpoint, job.fingerprint, job.runner
        if checkpoint:
            job.tally = LabelTally(**checkpoint.tally)
            job.counts = RunCounts(checkpoint.rows_in, checkpoint.rows_out, checkpoint.rows_errored,
                                   checkpoint.chunks_done)
        tally, counts = job.tally, job.counts
        self._id_repeats = IdRepeats()
        if checkpoint is not None and checkpoint.committed:
            finish_commit(checkpoint, o.output)  # every row was written: only the renames into place were left
            self.duplicate_ids = 0
            return tally, counts
        writer = open_writer(o.output, job.out_fmt, io.out_kind, io.rows_per_file,
                             resume_at=checkpoint.output_bytes if checkpoint else None)
        errors = open_error_log(o.output, io.out_kind, resume_at=checkpoint.errors.size if checkpoint else None)
        out_queue: queue.Queue = queue.Queue(maxsize=2)  # the writer needs little slack; each chunk is 16k rows
        failure: list[BaseException] = []

        def write_loop() -> None:
            while (item := out_queue.get()) is not None:
                if failure:
                    continue  # keep draining so the producer never blocks after a failure
                try:
                    self._postprocess_and_write(*item, job, writer, errors)
                    if resumable:
                        self._save_checkpoint(writer, errors, tally, counts, fingerprint)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
                    failure.append(exc)

        writer_thread = threading.Thread(target=write_loop, name="mixedclf-writer", daemon=True)
        writer_thread.start()
        device_cpu = CpuExcept(writer_thread)  # the device stage's CPU: this process's, less the writer's

        def infer(prep: PreprocessedBatch) -> np.ndarray:
            return runner.logits(prep, *self._batch)

        completed = False
        try:
            for chunk, prep in self.feed.prepared(job.tokenizer):
                if failure:
                    raise failure[0]
                if chunk.problems and o.on_error == "fail":
                    p = chunk.problems[0]
                    where = f"row {p.row}" + (f" (line {p.line})" if p.line else "")
                    raise RowError(f"{p.file or io.source.spec}: {where}: {p.reason}",
                                   hint="fix the row, or use --on-error skip")
                if self._over_budget(len(chunk.texts)):
                    break
                start, cpu_mark = time.monotonic(), device_cpu.now()
                self._reported = 0
                if self.meter is not None:
                    self.meter.chunk_started(len(chunk.texts))
                try:
                    if o.dedup:
                        logits, hits = call_with_timeout(lambda: logits_with_dedup(prep, infer),
                                                         o.stage_timeout_gpu, f"inference on chunk {chunk.index}")
                    else:
                        logits = call_with_timeout(lambda: infer(prep), o.stage_timeout_gpu,
                                                   f"inference on chunk {chunk.index}")
                        hits = len(prep) - len(set(prep.cleaned))  # what dedup would have skipped, for the advice
                except BudgetStop as stop:
                    # the chunk is dropped unwritten; what the job spent (the probe included) goes in the checkpoint
                    self.budget_stop = stop.check.message(str(o.output))
                    self._spend_checkpoint = resumable
                    break
                job.clocks["inference"].add(start, time.monotonic(), len(chunk.texts), device_cpu.now() - cpu_mark)
                # Rows no micro-batch carried (repeats answered by dedup, rows with problems) count here.
                self.on_rows(chunk.rows_in - self._reported)
                counts.dedup_hits += hits
                counts.dedup_lookups += len(chunk.texts)
                self._put(out_queue, (chunk, prep, logits), writer_thread, failure)
                if self.signals.signum is not None:
                    break
            out_queue.put(None)
            writer_thread.join()
            if failure:
                raise failure[0]
            if self._spend_checkpoint:  # the job's spend so far is kept even when no chunk was completed
                self._save_checkpoint(writer, errors, tally, counts, fingerprint)
            self.signals.raise_if_stopped(o.output)
            if self.budget_stop is not None:
                raise Interrupted(self.budget_stop, EXIT_BUDGET)
            # Seal, record that in the checkpoint, then rename: a kill at any point leaves either a checkpoint
            # that resumes the chunks, or one that --resume finishes by renaming (never a shorter output).
            writer.seal()
            errors.seal()
            if resumable and io.out_kind == "file":  # a folder is renamed whole: its staged chunks resume it
                self._save_checkpoint(writer, errors, tally, counts, fingerprint, committed=True)
            errors.commit()
            writer.commit()
            if resumable:
                remove_checkpoint(o.output)
            completed = True
        except Interrupted as exc:
            if not resumable:  # a pipe cannot be continued: what was staged for a file output goes
                writer.abort()
                errors.abort()
                raise Interrupted(str(exc).split(";")[0] + "; the run read stdin or wrote stdout, so it cannot "
                                  "be resumed", exc.exit_code) from None
            writer.suspend()
            errors.suspend()
            raise
        finally:
            if not completed and writer_thread.is_alive():
                failure.append(RuntimeError("aborted"))
                try:
                    out_queue.put_nowait(None)
                except queue.Full:
                    pass
                writer_thread.join(timeout=30)
            if not completed and self.signals.signum is None and self.budget_stop is None:
                writer.abort()
                errors.abort()
                if resumable:
                    remove_checkpoint(o.output)
        self.duplicate_ids = self._id_repeats.count()
        return tally, counts

    def _save_checkpoint(self, writer, errors, tally, counts, fingerprint, committed: bool = False) -> None:
        writer.flush()
        errors.flush()
        Checkpoint(fingerprint=fingerprint, model_run=self._model_run, chunks_done=counts.chunks_done,
                   rows_in=counts.rows_in, rows_out=counts.rows_out, rows_errored=counts.rows_errored,
                   output=writer.files(),
                   errors=errors.state(), committed=committed, tally=asdict(tally),
                   spent_usd=self.meter.job_spent() if self.meter is not None else 0.0,
                   spent_s=self.meter.job_seconds() if self.meter is not None else 0.0,
                   runs=(self.meter.runs_before if self.meter is not None else 0) + 1).save(self.opts.output)

    def _over_budget(self, next_rows: int) -> bool:
        """With --max-cost: stop before a chunk that would take the job's bill past the budget (the chunks before
        it are written and checkpointed as on SIGINT)."""
        check = self.meter.check(next_rows) if self.meter is not None else None
        if check is None or not check.over:
            return False
        self.budget_stop = check.message(str(self.opts.output))
        return True

    @staticmethod
    def _put(out_queue, item, writer_thread, failure) -> None:
        while True:
            try:
                out_queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if failure or not writer_thread.is_alive():
                    raise failure[0] if failure else RuntimeError("writer thread stopped") from None

    def _postprocess_and_write(self, chunk, prep, logits, job: _Run, writer, errors) -> None:
        o = self.opts
        spec, tally, clocks, counts = job.spec, job.tally, job.clocks, job.counts
        start, cpu0 = time.monotonic(), time.thread_time()
        columns = label_columns(logits, spec.labels, spec.activation, prep, spec.name, o.all_scores)
        table = chunk.passthrough
        if o.keep_text:
            table = table.append_column(o.text_field, pa.array(chunk.texts, type=pa.string()))
        for name, values in columns.items():
            if name in table.column_names:
                table = table.drop_columns([name])  # the classifier's columns win over same-named input columns
            table = table.append_column(name, values)
        tally.add(columns)
        ids = python_values(table.column(o.id_field))
        self._id_repeats.add(ids)
        mid, cpu1 = time.monotonic(), time.thread_time()
        clocks["postprocess"].add(start, mid, table.num_rows, cpu1 - cpu0)
        write_rows(writer, table, chunk.source)
        errors.write([p.as_dict() for p in chunk.problems])
        clocks["write"].add(mid, time.monotonic(), table.num_rows, time.thread_time() - cpu1)
        counts.rows_in += chunk.rows_in
        counts.rows_out += table.num_rows
        counts.rows_errored += len(chunk.problems)
        counts.chunks_done = chunk.index + 1
