"""The default engine: reader -> CPU process pool (preprocess; the two are the feed, feed.py) -> device loop
(inference) -> writer thread (postprocess + write + checkpoint). While the device runs chunk k the pool prepares
chunks k+1.., and the writer flushes chunk k-1. Queues are bounded, so memory stays flat whatever the input size.

`mode="gpu-only"` runs the baseline architecture for real: every stage, one after another, in this process.

This module is the pipeline loop. Its other jobs each have a module: the set-up (local_plan.py), the stage
contract it drives (core/pipeline.py), the writer thread (writer_thread.py), the durable output and its commit
(durable.py), the report (result.py).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

from mixedclf.core.answers import AnswerStore
from mixedclf.core.pipeline import StagePipeline
from mixedclf.core.postprocess import LabelTally
from mixedclf.core.preprocess import make_tokenizer
from mixedclf.core.sequences import slice_rows
from mixedclf.core.stats import IdRepeats, RunCounts, StageClock
from mixedclf.costs.budget import already_spent_message
from mixedclf.engines.budget import BudgetStop, CostMeter
from mixedclf.engines.cpu_time import CpuExcept
from mixedclf.engines.durable import DurableOutput, ending
from mixedclf.engines.feed import ChunkFeed, refuse_bad_rows
from mixedclf.engines.local_plan import LocalPlan, plan_local
from mixedclf.engines.plan import RunPlan, plan_classify
from mixedclf.engines.progress import WorkListener
from mixedclf.engines.registry import RunHooks
from mixedclf.engines.result import LocalTimes, RunResult, local_result
from mixedclf.engines.writer_thread import WriterThread
from mixedclf.errors import EXIT_BUDGET, Interrupted
from mixedclf.io.checkpoint import finish_commit
from mixedclf.io.chunks import chunk_piece, valid_range
from mixedclf.io.jsonvalues import python_values
from mixedclf.io.prediction_cache import PredictionCache
from mixedclf.io.runio import RunIO
from mixedclf.runtime.control import StopSignals, call_with_timeout


@dataclass
class _Run:
    """What one run's stream works with, set up by LocalEngine.run()."""

    plan: LocalPlan
    pipeline: StagePipeline
    tokenizer: Any  # this process's tokenizer in gpu-only mode, else None
    clocks: dict[str, StageClock]
    model_run: str  # what the model computes as: recorded in each checkpoint
    tally: LabelTally = field(default_factory=LabelTally)
    counts: RunCounts = field(default_factory=RunCounts)


@dataclass
class _MeteredAnswers:
    """An AnswerStore that tells the cost meter how many rows of the chunk it answered."""

    inner: AnswerStore
    meter: CostMeter

    def lookup(self, keys):
        held = self.inner.lookup(keys)
        self.meter.answered(len(held))
        return held

    def store(self, keys, logits, tokens=None) -> None:
        self.inner.store(keys, logits, tokens)

    def record_hits(self, keys) -> None:
        self.inner.record_hits(keys)
        self.meter.answered(len(keys))


class LocalEngine:
    def __init__(self, opts, on_rows: Callable[[int], None] | None = None, meter: CostMeter | None = None,
                 answers: AnswerStore | None = None, on_work: WorkListener | None = None):
        self.opts = opts
        self.on_work = on_work  # told each chunk's tokens, each micro-batch's, and the rows answered apart (ETA)
        self._tokens_told = 0  # of the current device call
        # rows answered without the device (a prediction cache), when given; the meter is told how many, so
        # --max-cost projects only the rows that run
        self.answers = _MeteredAnswers(answers, meter) if answers is not None and meter is not None else answers
        self.cache = answers
        self.meter = meter  # prices the run chunk by chunk: the checkpoint's spend and --max-cost
        self.budget_stop: str | None = None  # set when --max-cost stops the run before a chunk
        self.on_rows = on_rows or (lambda n: None)
        self.signals = StopSignals()
        self._reported = 0  # rows of the current chunk already passed to on_rows
        self.first_batch_at: float | None = None  # time.monotonic() when the first micro-batch reached the device
        self.feed: ChunkFeed | None = None  # the input, chunk by chunk, preprocessed; set by run()
        self.io: RunIO | None = None  # where rows come from and go to; set by run()
        self.load_started_at: float | None = None  # time.monotonic() when the model load began
        self.duplicate_ids = 0
        self._id_repeats = IdRepeats()
        self._runner = None  # the device stage (its per-call counters feed on_work), once the model is loaded
        self._spend_checkpoint = False  # a budget stop inside a chunk: record the spend in a checkpoint

    @property
    def pool_restarts(self) -> int:  # worker pools started again after a worker died
        return self.feed.restarts if self.feed is not None else 0

    def _batch_done(self, rows: int) -> None:
        self._reported += rows
        self.on_rows(rows)
        if self.meter is not None:
            self.meter.batch_done(rows)  # raises BudgetStop when finishing the chunk would pass --max-cost
        if self.on_work is not None and self._runner is not None:
            tokens = self._runner.call_stats.real_tokens  # counted before the runner calls this
            self.on_work.computed(rows, tokens - self._tokens_told)
            self._tokens_told = tokens

    def run(self, run_plan: RunPlan | None = None) -> RunResult:
        """run_plan: the run resolved from self.opts (plan_classify), resolved here when not given."""
        # torch is imported by the model load, and only on the torch backend: the pool starts before it.
        from mixedclf.models.backend import answer_run_key, load_model
        from mixedclf.models.tokenizer import tokenizer_json_and_pad_id

        t_start = time.monotonic()
        plan = plan_local(run_plan if run_plan is not None else plan_classify(self.opts))
        o = self.opts = plan.run.opts
        self.io = plan.io
        checkpoint = plan.checkpoint
        if self.meter is not None:
            if checkpoint is not None:
                self.meter.resumed(checkpoint.spent_usd, checkpoint.rows_in, checkpoint.spent_s, checkpoint.runs,
                                   checkpoint.probe_usd)
            if self.meter.budget_spent:  # before the model loads: nothing is spent on a run that cannot start
                raise Interrupted(already_spent_message(self.meter.spent_before, self.meter.max_cost, str(o.output),
                                                        self.meter.probe_before), EXIT_BUDGET)
            if self.meter.max_cost is not None:  # the stop message projects the whole job
                self.meter.expected_rows = plan.run.input_rows.rows
        spec, mixed, workers = plan.spec, plan.mixed, plan.workers
        clocks = plan.clocks()
        tokenizer_json, pad_id = tokenizer_json_and_pad_id(spec)
        self.feed = ChunkFeed(plan.run, clocks, self.signals, skip_chunks=checkpoint.chunks_done if checkpoint else 0,
                              skip_rows=checkpoint.chunk_rows_done if checkpoint else 0)
        if mixed:
            self.feed.start_pool(workers, tokenizer_json, spec.max_length)  # workers start while the model loads
        pool_started = time.monotonic()
        try:
            if mixed and not (checkpoint is not None and checkpoint.committed):
                # The first chunks are read and preprocessed while the model loads.
                self.feed.fill()
            load_start, load_cpu = time.monotonic(), time.process_time()
            model = load_model(spec, plan.device, o.precision, plan.backend, threads=o.torch_threads)
            load_end, load_cpu = time.monotonic(), time.process_time() - load_cpu
            if checkpoint is not None:
                checkpoint.verify_model_run(model.run, o.output)
            key = answer_run_key(spec, model, o.clean, tokenizer_json) if self.answers is not None else b""
            if isinstance(self.cache, PredictionCache):
                cache = self.cache
                self.feed.reader = lambda: cache.reader(key, len(spec.labels))  # rows it answered are not tokenized
            pipeline = StagePipeline(model.module, plan.device, spec, pad_id, batch_size=plan.batch[0],
                                     max_batch_tokens=plan.batch[1], dedup=o.dedup, all_scores=o.all_scores,
                                     answers=self.answers, run_key=key, output_prefix=o.output_prefix,
                                     on_batch=self._batch_done)
            self._runner = pipeline.runner
            tokenizer = None if mixed else make_tokenizer(tokenizer_json, spec.max_length)
            if self.meter is not None:
                self.meter.model_loaded(mode=o.mode, device=str(plan.device), load_start=load_start,
                                        load_end=load_end, pool_started=pool_started, workers=workers,
                                        inference=clocks["inference"], pool_released=lambda: self.feed.released)
            job = _Run(plan, pipeline, tokenizer, clocks, model.run)
            stopped: Interrupted | None = None
            with self.signals:
                try:
                    self._stream(job)
                except Interrupted as exc:
                    if self.budget_stop is None:
                        raise
                    # a stop at the budget still reports what was written: the caller writes the report, then
                    # ends with the stop's exit code
                    stopped = exc
            self.first_batch_at = pipeline.work.device.first
        finally:
            self.feed.close()
        self.load_started_at = load_start
        budget = None
        if self.meter is not None and self.meter.max_cost is not None:
            budget = {"max_cost": self.meter.max_cost, "spent_before": self.meter.spent_before,
                      "first_projection": self.meter.first_projection}
        times = LocalTimes(start=t_start, pool_started=pool_started, load_start=load_start, load_end=load_end,
                           pool_released=self.feed.released, end=time.monotonic(), load_cpu_s=load_cpu)
        return local_result(o, plan, model, clocks, pipeline.work, job.tally, job.counts, times,
                            pool_restarts=self.pool_restarts, duplicate_ids=self.duplicate_ids, budget=budget,
                            stopped=stopped)

    def _stream(self, job: _Run) -> None:
        """Every chunk through the stage contract, written and checkpointed by the writer thread, then the
        commit."""
        o = self.opts
        plan = job.plan
        io, checkpoint = plan.io, plan.checkpoint
        if checkpoint:
            job.tally = LabelTally(**checkpoint.tally)
            job.counts = RunCounts(checkpoint.rows_in, checkpoint.rows_out, checkpoint.rows_errored,
                                   checkpoint.chunks_done, checkpoint.chunk_rows_done)
        tally, counts = job.tally, job.counts
        self._id_repeats = IdRepeats()
        if checkpoint is not None and checkpoint.committed:
            finish_commit(checkpoint, o.output)  # every row was written: only the renames into place were left
            self.duplicate_ids = 0
            return
        meter = self.meter
        sink = DurableOutput(io, checkpoint, plan.fingerprint, job.model_run,
                             spent=meter.job_spent if meter is not None else (lambda: 0.0),
                             spent_s=meter.job_seconds if meter is not None else (lambda: 0.0),
                             runs=(meter.runs_before if meter is not None else 0) + 1,
                             probe=meter.probe_cost if meter is not None else (lambda: 0.0))

        def write(item) -> None:
            chunk, seqs, logits = item
            self._write_chunk(chunk, seqs, logits, job, sink)
            sink.save_checkpoint(tally, counts)

        writer = WriterThread(write)
        device_cpu = CpuExcept(writer.thread)  # the device stage's CPU: this process's, less the writer's
        with ending(sink, writer, kept=lambda: self.signals.signum is not None or self.budget_stop is not None):
            for chunk, seqs in self.feed.prepared(job.tokenizer):
                writer.raise_failure()
                refuse_bad_rows(chunk, o.on_error, io.source.spec)
                done = 0  # input rows of the chunk run so far: a chunk near the budget runs in pieces
                while done < chunk.rows_in and self.signals.signum is None:
                    rows = self._piece_rows(chunk, done, plan.batch[0])
                    if rows == 0:
                        break
                    piece = chunk_piece(chunk, done, done + rows)
                    if not self._run_piece(piece, slice_rows(seqs, *valid_range(chunk, done, done + rows)), job,
                                           writer, device_cpu):
                        break
                    done += rows
                if self.budget_stop is not None or self.signals.signum is not None:
                    break
            writer.close()
            if self._spend_checkpoint:  # the job's spend so far is kept even when no chunk was completed
                sink.save_checkpoint(tally, counts)
            self.signals.raise_if_stopped(o.output)
            if self.budget_stop is not None:
                raise Interrupted(self.budget_stop, EXIT_BUDGET)
            sink.commit(tally, counts)
        self.duplicate_ids = self._id_repeats.count()

    def _piece_rows(self, chunk, done: int, min_rows: int) -> int:
        """With --max-cost: the input rows of the chunk to run next, from row `done` on: all that are left unless
        they would take the job's bill past the budget; then a piece the budget covers (costs.budget.next_piece),
        or 0 (budget_stop set) where not even one micro-batch's worth fits. What was run before is written and
        checkpointed as on SIGINT."""
        left = chunk.rows_in - done
        first, last = valid_range(chunk, done, chunk.rows_in)  # the rows of them the device runs
        check = self.meter.check(last - first) if self.meter is not None else None
        if check is None or not check.over:
            return left
        # Rows with problems cost no device time: counting them as rows to run keeps the piece within the budget.
        rows = self.meter.piece_rows(left, min_rows)
        if rows == 0:
            self.budget_stop = check.message(str(self.opts.output))
        return rows

    def _run_piece(self, piece, seqs, job: _Run, writer: WriterThread, device_cpu: CpuExcept) -> bool:
        """One chunk, or a piece of one, through the device and on to the writer thread. False when the budget
        stopped it inside (nothing of it written)."""
        o = self.opts
        start, cpu_mark = time.monotonic(), device_cpu.now()
        self._reported = self._tokens_told = 0
        if self.on_work is not None:
            self.on_work.chunk_started(piece.rows_in, int(seqs.batch.lengths.sum()))
        if self.meter is not None:
            self.meter.chunk_started(len(piece.texts))
        try:
            inferred = call_with_timeout(functools.partial(job.pipeline.infer, seqs), o.stage_timeout_gpu,
                                         f"inference on chunk {piece.index}")
        except BudgetStop as stop:
            # the piece is dropped unwritten; what the job spent (the probe included) goes in the checkpoint
            self.budget_stop = stop.check.message(str(o.output))
            self._spend_checkpoint = job.plan.io.resumable
            return False
        job.clocks["inference"].add(start, time.monotonic(), len(piece.texts), device_cpu.now() - cpu_mark)
        # Rows no micro-batch carried (repeats answered by dedup, rows with problems) count here.
        self.on_rows(piece.rows_in - self._reported)
        if self.on_work is not None:
            self.on_work.answered(piece.rows_in - self._reported)
        writer.put((piece, seqs, inferred.logits))
        return True

    def _write_chunk(self, chunk, seqs, logits, job: _Run, sink: DurableOutput) -> None:
        """The chunk's output rows (the contract's logits -> output rows step), tallied and written."""
        o = self.opts
        tally, clocks, counts = job.tally, job.clocks, job.counts
        start, cpu0 = time.monotonic(), time.thread_time()
        text = (o.text_field, pa.array(chunk.texts, type=pa.string())) if o.keep_text else None
        table, columns = job.pipeline.output_table(seqs, logits, chunk.passthrough, text)
        tally.add(columns)
        self._id_repeats.add(python_values(table.column(o.id_field)))
        mid, cpu1 = time.monotonic(), time.thread_time()
        clocks["postprocess"].add(start, mid, table.num_rows, cpu1 - cpu0)
        sink.write(table, chunk.source, [p.as_dict() for p in chunk.problems])
        clocks["write"].add(mid, time.monotonic(), table.num_rows, time.thread_time() - cpu1)
        counts.rows_in += chunk.rows_in
        counts.rows_out += table.num_rows
        counts.rows_errored += len(chunk.problems)
        # a piece that ends its chunk completes it; an earlier piece leaves the resume inside the chunk
        counts.chunks_done = chunk.index + 1 if chunk.ends_chunk else chunk.index
        counts.chunk_rows_done = 0 if chunk.ends_chunk else chunk.offset + chunk.rows_in


class LocalRunner:
    """The local engine behind the Engine protocol (engines/registry.py): the device stage is this process."""

    in_process: ClassVar[bool] = True
    deployed: ClassVar[bool] = False

    @classmethod
    def cache_refusal(cls, opts) -> str | None:
        return None

    def run(self, plan: RunPlan, hooks: RunHooks) -> RunResult:
        engine = LocalEngine(plan.opts, on_rows=hooks.on_rows, meter=hooks.meter, answers=hooks.answers,
                             on_work=hooks.on_work)
        return engine.run(plan)
