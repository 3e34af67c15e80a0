"""An engine's result: the run's measurements in the cost package's terms, its counts and its settings, assembled
in one place for every engine (`run_stats`; `local_result` for the local engine, engines/ray/report.py for Ray)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mixedclf.core.pipeline import DeviceWork
from mixedclf.core.postprocess import LabelTally
from mixedclf.core.run import RunSettings, RunStats
from mixedclf.core.stats import RunCounts, StageClock
from mixedclf.costs import RunMeasurements, StageMeasurement
from mixedclf.models.spec import ModelSpec

if TYPE_CHECKING:
    from mixedclf.costs.runpod_jobs import RunpodJobBill
    from mixedclf.engines.local_plan import LocalPlan
    from mixedclf.models.backend import LoadedModel


def stage_measurement(clock: StageClock) -> StageMeasurement:
    return StageMeasurement(name=clock.name, billing=clock.billing, device=clock.device, items=clock.items,
                            busy_s=clock.busy_s, wall_s=clock.wall_s, workers=clock.workers,
                            cpu_s=clock.cpu_s)


@dataclass
class RunResult:
    spec: ModelSpec
    device: str
    measurements: RunMeasurements
    tally: LabelTally
    rows_in: int
    rows_out: int
    rows_errored: int
    settings: RunSettings
    extra: RunStats
    stopped: Exception | None = None  # the run stopped early (at --max-cost): raised once the report is written
    # time.monotonic() moments in this process, from an in-process engine (registry.Engine.in_process): the model
    # load's start, and the first micro-batch reaching the device (None: none did)
    load_started_at: float | None = None
    first_batch_at: float | None = None
    work_counted: bool = True  # False: the device stage ran on remote workers, which count no tokens here
    runpod_bill: RunpodJobBill | None = None  # --engine runpod: what Runpod bills for the run's jobs


def run_stats(work: DeviceWork, tally: LabelTally, *, duplicate_ids: int, startup_s: float | None,
              pool_restarts: int = 0, resumed_from_chunk: int = 0, rows_before_resume: int = 0,
              **engine: Any) -> RunStats:
    """The run statistics every engine reports: the stage contract's device and dedup figures (summed over its
    workers), the tally's truncations, and what the engine adds (faults, resume, start-up; Ray's own figures)."""
    return RunStats(**work.report(), truncated_rows=tally.truncated, pool_restarts=pool_restarts,
                    duplicate_ids=duplicate_ids, resumed_from_chunk=resumed_from_chunk,
                    rows_before_resume=rows_before_resume, startup_s=startup_s, **engine)


@dataclass
class LocalTimes:
    """time.monotonic() moments of a local run."""

    start: float
    pool_started: float
    load_start: float
    load_end: float
    pool_released: float | None  # every chunk preprocessed and the pool let go; None without a pool
    end: float
    load_cpu_s: float | None = None  # this process's CPU seconds during the model load


def local_result(opts, plan: LocalPlan, model: LoadedModel, clocks: dict[str, StageClock], work: DeviceWork,
                 tally: LabelTally, counts: RunCounts, times: LocalTimes, *, pool_restarts: int, duplicate_ids: int,
                 budget: dict[str, Any] | None = None, stopped: Exception | None = None) -> RunResult:
    """A local run's result: its stage measurements (the model load first), settings and statistics."""
    o, dev, t = opts, str(plan.device), times
    device = work.device
    last_batch = device.last if device.last is not None else t.load_end
    stages = [StageMeasurement(name="model_load", billing="gpu", device=dev, items=0,
                               busy_s=t.load_end - t.load_start, wall_s=t.load_end - t.load_start, workers=1,
                               cpu_s=t.load_cpu_s)]
    stages += [stage_measurement(c) for c in clocks.values()]
    measurements = RunMeasurements(
        mode=o.mode, items=clocks["inference"].items, stages=stages, wall_s=t.end - t.start,
        gpu_held_s=(last_batch - t.load_start) if plan.mixed else (t.end - t.load_start),
        cpu_pool_held_s=((t.pool_released or t.end) - t.pool_started) if plan.mixed else 0.0,
        cpu_pool_workers=plan.workers, startup_s=t.load_start - t.start,  # from this call; the caller knows more
    )
    settings = RunSettings(
        mode=o.mode, device=dev, precision=model.precision.name, precision_reason=model.precision.reason,
        backend=model.backend, cpu_workers=plan.workers, torch_threads=model.threads, batch_size=plan.batch[0],
        max_batch_tokens=plan.batch[1], chunk_rows=plan.run.chunks.most, first_chunk_rows=plan.run.chunks.first,
        clean=o.clean, dedup=o.dedup, input_format=plan.io.in_fmt, output_format=plan.io.out_fmt,
    )
    checkpoint = plan.checkpoint
    extra = run_stats(
        work, tally, duplicate_ids=duplicate_ids, pool_restarts=pool_restarts,
        resumed_from_chunk=checkpoint.chunks_done if checkpoint else 0,
        rows_before_resume=checkpoint.rows_in if checkpoint else 0,
        startup_s=(device.first - t.start) if device.first is not None else None, budget=budget,
    )
    return RunResult(plan.spec, dev, measurements, tally, counts.rows_in, counts.rows_out, counts.rows_errored,
                     settings, extra, stopped=stopped, load_started_at=t.load_start, first_batch_at=device.first)
