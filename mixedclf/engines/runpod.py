"""`classify --engine runpod --deploy SPEC`: the local engine's loop with the device step replaced by Runpod jobs.

The input is read chunk by chunk here (the local engine's feed, its chunks as read); each chunk's texts go out as
micro-batch jobs on the deployed stage endpoints (pre -> infer -> post, or the one `all` endpoint) through the data
plane (io/runpod_jobs.py: `/run`, then `/status` until done; a failed, timed-out or unsendable job is sent again
with backoff), at most `target.in_flight` jobs at once, the next chunk's jobs sent while the current one finishes.
The answers become output rows here with the same columns as a local run's (core.postprocess), and the writer
thread, durable output and checkpoint are the local engine's: --resume, the errors file, the atomic commit and the
exit codes hold as they do locally. A job that still fails after its retries stops the run like a signal does:
the chunks written so far stay checkpointed, and --resume continues from them.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar, Literal

import pyarrow as pa

from mixedclf.core.columns import check_option_names, output_table
from mixedclf.core.options import chunk_rows_for, chunk_sizes_for
from mixedclf.core.pipeline import DeviceWork
from mixedclf.core.postprocess import LabelTally, columns_from_predictions
from mixedclf.core.run import RunSettings
from mixedclf.core.stats import IdRepeats, RunCounts, StageClock
from mixedclf.costs import RunMeasurements, StageMeasurement
from mixedclf.costs.runpod_jobs import EndpointRate, RunpodJobBill, endpoint_bill, job_bill
from mixedclf.engines.durable import DurableOutput, ending
from mixedclf.engines.feed import ChunkFeed, refuse_bad_rows
from mixedclf.engines.local_plan import load_checkpoint, run_fingerprint_of
from mixedclf.engines.plan import RunPlan
from mixedclf.engines.registry import RunHooks
from mixedclf.engines.result import RunResult, run_stats, stage_measurement
from mixedclf.engines.writer_thread import WriterThread
from mixedclf.errors import InputError, Interrupted, MixedclfError
from mixedclf.io.checkpoint import finish_commit
from mixedclf.io.jsonvalues import python_values
from mixedclf.io.readers import InputChunk
from mixedclf.io.runpod_jobs import DataPlane, JobFailed, RunpodTarget
from mixedclf.runtime.control import StopSignals

# Rows per job unless --batch-size says otherwise: one /run body (Runpod takes up to 10 MB) and one device
# micro-batch's worth for the infer worker, which merges the jobs it holds at once into its own batches.
JOB_ROWS = 256
# Characters of text per job at most: a job's sequences (token ids as JSON) stay well under the 10 MB body limit.
JOB_CHARS = 1_000_000


class RemoteJobError(MixedclfError):
    """A Runpod endpoint could not be reached, or a job failed after its retries (exit 1): the chunks written
    before it are checkpointed (--resume continues), nothing is committed."""


def job_slices(texts: list[str], rows: int, chars: int = JOB_CHARS) -> list[tuple[int, int]]:
    """[start, end) of each job: at most `rows` texts and (beyond its first text) `chars` characters."""
    bounds, start, size = [], 0, 0
    for i, text in enumerate(texts):
        if i > start and (i - start >= rows or size + len(text) > chars):
            bounds.append((start, i))
            start, size = i, 0
        size += len(text)
    if start < len(texts):
        bounds.append((start, len(texts)))
    return bounds


@dataclass
class _Sent:
    chunk: InputChunk
    jobs: list[Future]


class RunpodEngine:
    def __init__(self, opts, on_rows: Callable[[int], None] | None = None, target: RunpodTarget | None = None,
                 plane: DataPlane | None = None):
        if target is None:
            raise InputError("--engine runpod needs --deploy SPEC", hint="mixedclf deploy init writes one")
        self.opts, self.target = opts, target
        self.on_rows = on_rows or (lambda n: None)
        self.plane = plane or DataPlane(target.base_url(), target.key, timeout_s=target.job_timeout_s,
                                         backoff_s=target.backoff_s, sync=False)
        self.signals = StopSignals()
        self.bill: RunpodJobBill | None = None
        self.duplicate_ids = 0
        self.load_started_at: float | None = None  # nothing loads here: the caller's start-up figures stay unset
        self.first_batch_at: float | None = None

    # --- one job: the stage chain -------------------------------------------------------------------------
    def _job(self, texts: list[str]) -> list[dict]:
        t, plane = self.target, self.plane
        payload: dict = {"texts": texts, "clean": self.opts.clean}
        for role in t.chain:
            payload = plane.run(t.endpoints[role].id, payload, name=role)
        results = payload.get("results")
        if not isinstance(results, list) or len(results) != len(texts):
            raise JobFailed(502, f"{t.chain[-1]}: answered {len(results) if isinstance(results, list) else 'no'} "
                                 f"results for {len(texts)} texts")
        return results

    def _send(self, pool: ThreadPoolExecutor, chunk: InputChunk, rows: int) -> _Sent:
        texts = chunk.texts
        return _Sent(chunk, [pool.submit(self._job, texts[a:b]) for a, b in job_slices(texts, rows)])

    def _check_reachable(self) -> None:
        ids = [e.id for e in self.target.endpoints.values()]
        if not self.plane.healthy(ids):
            raise RemoteJobError(f"{self.target.spec}: the endpoints at {self.plane.base_url} do not answer",
                                 hint="is deploy local running, or deploy apply done? nothing was written")

    # --- the run ------------------------------------------------------------------------------------------
    def run(self, plan: RunPlan) -> RunResult:
        o, t = self.opts, self.target
        t_start = time.monotonic()
        io, spec = plan.io, plan.spec
        check_option_names(o.id_field, o.text_field, o.keep_text, spec.labels, o.all_scores, o.output_prefix)
        rows = o.batch_size or JOB_ROWS
        fingerprint = run_fingerprint_of(plan, (rows, 0)) if io.resumable else ""
        checkpoint = load_checkpoint(o, fingerprint) if io.resumable else None
        self._check_reachable()
        clocks = {"read": StageClock("read", "cpu", "cpu"), "preprocess": StageClock("preprocess", "cpu", "cpu"),
                  "write": StageClock("write", "cpu", "cpu")}
        tally, counts = LabelTally(), RunCounts()
        if checkpoint is not None:
            tally = LabelTally(**checkpoint.tally)
            counts = RunCounts(checkpoint.rows_in, checkpoint.rows_out, checkpoint.rows_errored,
                               checkpoint.chunks_done)
        model_run = f"runpod:{t.model}:{t.precision}"
        if checkpoint is not None:
            checkpoint.verify_model_run(model_run, o.output)
        feed = ChunkFeed(plan, clocks, self.signals,
                         skip_chunks=checkpoint.chunks_done if checkpoint else 0)
        ids = IdRepeats()

        def write(item) -> None:
            chunk, columns = item
            start = time.monotonic()
            text = (o.text_field, pa.array(chunk.texts, type=pa.string())) if o.keep_text else None
            table = output_table(chunk.passthrough, columns, id_field=chunk.passthrough.column_names[0],
                                 text_field=text[0] if text else "", texts=text[1] if text else None,
                                 prefix=o.output_prefix)
            tally.add(columns)
            ids.add(python_values(table.column(o.id_field)))
            sink.write(table, chunk.source, [p.as_dict() for p in chunk.problems])
            counts.rows_in += chunk.rows_in
            counts.rows_out += table.num_rows
            counts.rows_errored += len(chunk.problems)
            counts.chunks_done = chunk.index + 1
            sink.save_checkpoint(tally, counts)
            clocks["write"].add(start, time.monotonic(), table.num_rows)

        with self.signals:
            if checkpoint is not None and checkpoint.committed:
                finish_commit(checkpoint, o.output)  # every row was written: only the renames were left
            else:
                sink = DurableOutput(io, checkpoint, fingerprint, model_run)
                self._stream(feed.chunks(), WriterThread(write), sink, spec, rows, tally, counts)
        self.duplicate_ids = ids.count()
        end = time.monotonic()
        self.bill = self._bill()
        return self._result(spec, clocks, tally, counts, checkpoint, rows, t_start, end, io)

    def _stream(self, chunks: Iterator[InputChunk], writer: WriterThread, sink: DurableOutput, spec, rows: int,
                tally: LabelTally, counts: RunCounts) -> None:
        o = self.opts
        pool = ThreadPoolExecutor(self.target.in_flight, thread_name_prefix="mixedclf-job")
        sent: deque[_Sent] = deque()
        with ending(sink, writer, kept=lambda: self.signals.signum is not None, stops=(Interrupted, RemoteJobError)):
            try:
                for chunk in chunks:
                    refuse_bad_rows(chunk, o.on_error, sink.io.source.spec)
                    sent.append(self._send(pool, chunk, rows))
                    if len(sent) > 1:  # the next chunk's jobs are out while this one's are written
                        self._collect(sent.popleft(), writer, spec)
                    if self.signals.signum is not None:
                        break
                while sent and self.signals.signum is None:
                    self._collect(sent.popleft(), writer, spec)
            except JobFailed as exc:
                raise RemoteJobError(f"{exc}; completed chunks are saved: rerun with --resume to continue into "
                                     f"{o.output}") from None
            finally:
                pool.shutdown(wait=True, cancel_futures=True)  # answers of a chunk not written are dropped
            writer.close()
            self.signals.raise_if_stopped(o.output)
            sink.commit(tally, counts)

    def _collect(self, sent: _Sent, writer: WriterThread, spec) -> None:
        results: list[dict] = []
        for job in sent.jobs:
            results.extend(job.result())
        try:
            columns = columns_from_predictions(results, spec.labels, spec.name, self.opts.all_scores)
        except ValueError as exc:
            raise JobFailed(502, f"{self.target.chain[-1]}: {exc}") from None
        self.on_rows(sent.chunk.rows_in)
        writer.put((sent.chunk, columns))

    # --- what it cost, and the result ---------------------------------------------------------------------
    def _bill(self) -> RunpodJobBill:
        bills = []
        for role, ep in self.target.endpoints.items():
            times = self.plane.times.get(role)
            rate = EndpointRate(role=role, endpoint_id=ep.id, worker=ep.worker, rate_per_s=ep.rate_per_s,
                                rate_source=ep.rate_source, idle_timeout_s=ep.idle_timeout_s)
            bills.append(endpoint_bill(rate, jobs=times.jobs if times else 0, failed=times.failed if times else 0,
                                       sends=times.attempts if times else 0,
                                       delay_ms=times.delay_ms if times else 0.0,
                                       by_worker=times.by_worker if times else {}))
        return job_bill(bills)

    def _remote_stage(self, name: str, role: str, billing: Literal["cpu", "gpu"], items: int) -> StageMeasurement:
        """A stage run by an endpoint: busy is its jobs' executionTime, as the endpoint reported it."""
        bill = next((e for e in self.bill.endpoints if e.rate.role == role), None) if self.bill else None
        busy = bill.execution_s if bill else 0.0
        return StageMeasurement(name=name, billing=billing, device=f"runpod:{role}", items=items if bill else 0,
                                busy_s=busy, wall_s=busy, workers=max(1, len(bill.workers)) if bill else 1)

    def _result(self, spec, clocks, tally, counts, checkpoint, rows, t_start, end, io) -> RunResult:
        o, t = self.opts, self.target
        items = counts.rows_out - (checkpoint.rows_out if checkpoint else 0)
        split = "all" not in t.endpoints
        stages = [stage_measurement(clocks["read"]),
                  self._remote_stage("preprocess", "pre", "cpu", items) if split else stage_measurement(
                      clocks["preprocess"]),
                  self._remote_stage("inference", "infer" if split else "all", "gpu", items)]
        if split:
            stages.append(self._remote_stage("postprocess", "post", "cpu", items))
        stages.append(stage_measurement(clocks["write"]))
        gpu = sum(s.busy_s for s in stages if s.billing == "gpu")
        cpu = sum(s.busy_s for s in stages if s.device in ("runpod:pre", "runpod:post"))
        measurements = RunMeasurements(mode=o.mode, items=items, stages=stages, wall_s=end - t_start,
                                       gpu_held_s=gpu, cpu_pool_held_s=cpu, cpu_pool_workers=1 if cpu else 0)
        device = f"runpod ({t.target}: {', '.join(f'{r} {e.id}' for r, e in t.endpoints.items())})"
        settings = RunSettings(mode=o.mode, device=device, precision=t.precision, backend="remote", cpu_workers=0,
                               torch_threads=None, batch_size=rows, max_batch_tokens=0, chunk_rows=chunk_rows_for(o),
                               first_chunk_rows=chunk_sizes_for(o).first, clean=o.clean, dedup=o.dedup,
                               input_format=io.in_fmt, output_format=io.out_fmt, engine="runpod")
        work = DeviceWork()
        infer = self.plane.times.get("infer" if split else "all")
        work.device.batches, work.device.rows = (infer.jobs if infer else 0), items
        extra = run_stats(work, tally, duplicate_ids=self.duplicate_ids, startup_s=None,
                          resumed_from_chunk=checkpoint.chunks_done if checkpoint else 0,
                          rows_before_resume=checkpoint.rows_in if checkpoint else 0)
        return RunResult(spec, device, measurements, tally, counts.rows_in, counts.rows_out, counts.rows_errored,
                         settings, extra, work_counted=False, runpod_bill=self.bill)


class RunpodRunner:
    """The Runpod engine behind the Engine protocol (engines/registry.py): its workers are the deployed endpoints'."""

    in_process: ClassVar[bool] = False
    deployed: ClassVar[bool] = True

    @classmethod
    def cache_refusal(cls, opts) -> str | None:
        return ("the prediction cache is not used with --engine runpod: every row runs on the deployed endpoints "
                "(docs/cache.md)")

    def run(self, plan: RunPlan, hooks: RunHooks) -> RunResult:
        return RunpodEngine(plan.opts, on_rows=hooks.on_rows, target=hooks.target).run(plan)
