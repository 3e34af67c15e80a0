"""One call from options to a labelled file and a priced report; shared by the CLI, benchmarks and tests."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from mixedclf.core.options import ClassifyOptions
from mixedclf.costs import CostInputError, load_pricing
from mixedclf.costs.accounting import clean
from mixedclf.costs.report import (
    ClassifyReport,
    JobTotals,
    LabelAggregate,
    ResumeInfo,
    build_classify_report,
    write_report,
)
from mixedclf.costs.work import ModelShape, WorkCounts, count_work
from mixedclf.engines.plan import RunPlan, plan_classify
from mixedclf.engines.progress import RowProgress, rows_already_done
from mixedclf.engines.registry import RunHooks, engine_class
from mixedclf.errors import InputError
from mixedclf.io.lock import output_lock
from mixedclf.io.runpod_jobs import RunpodTarget


@dataclass
class ClassifyResult:
    report: ClassifyReport
    output_path: Path  # `-`: stdout
    errors_path: Path | str  # "<stderr>" when the output is stdout


def _progress_bar(plan: RunPlan, meter) -> RowProgress:
    opts = plan.opts
    return RowProgress(plan.input_rows, initial=rows_already_done(opts.output, opts.resume),
                       spent=meter.job_spent if meter is not None else None, max_cost=opts.max_cost)


def _input_text(opts: ClassifyOptions) -> str:
    return opts.input if isinstance(opts.input, str) else " ".join(opts.input)


def _work(run) -> WorkCounts | None:
    """The run's work counts; None when the model's config names no encoder shape."""
    from mixedclf.models.shape import model_shape

    stats = run.extra
    dims = model_shape(run.spec)
    if dims is None:
        return None
    return count_work(rows=run.measurements.items, real_tokens=stats.tokens, padded_tokens=stats.padded_tokens,
                      token_width_sum=stats.token_width_sum, micro_batches=stats.micro_batches,
                      cpu_workers=run.settings.cpu_workers, shape=ModelShape(**dims._asdict()))


def _warn(line: str) -> None:
    sys.stderr.write(f"warning: {line}\n")


def open_cache(opts: ClassifyOptions, warn: Callable[[str], None]):
    """The prediction cache this run reads and fills (io/prediction_cache.py); None with --no-cache, and when the
    engine cannot use it: the run says why in one line when a cache was named (--cache, MIXEDCLF_CACHE), and
    stays quiet about the default one (a cron job's -q run of such an engine would otherwise mail it daily)."""
    if opts.no_cache:
        return None
    refusal = engine_class(opts.engine).cache_refusal(opts)
    if refusal is not None:
        if opts.cache is not None:
            warn(refusal)
        return None
    from mixedclf.io.prediction_cache import PredictionCache
    from mixedclf.models.cache import prediction_cache_path

    path = opts.cache or prediction_cache_path()
    for named in ([opts.input] if isinstance(opts.input, str) else list(opts.input)) + [opts.output]:
        if _same_file(path, named):  # a cache opened there would set the user's file aside as "not a cache"
            warn(f"prediction cache off for this run: --cache {path} is this run's input or output file")
            return None
    return PredictionCache(path, opts.cache_max_bytes, warn=warn)


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # either not an existing local file (a URI, "-", a new output)
        return False


def _cache_savings(cache, run, pricing, cost):
    from mixedclf.costs.cache import cache_savings

    work = run.extra
    st = cache.stats
    return cache_savings(path=str(cache.path), hits=st.hits, misses=st.misses, stored=st.stored, evicted=st.evicted,
                         disabled=st.disabled, device_busy_s=work.device_busy_s,
                         computed_rows=round(work.mean_batch_rows * work.micro_batches), pricing=pricing, cost=cost,
                         untokenized=st.untokenized)


def classify_file(opts: ClassifyOptions, progress: bool = False, started_at: float | None = None,
                  warn: Callable[[str], None] | None = None, target: RunpodTarget | None = None) -> ClassifyResult:
    """Run the pipeline on opts.input; write opts.output (and opts.report); return the priced report.

    ``warn``: where a line about the input that does not stop the run goes (links passed over) [stderr].
    ``target``: with --engine runpod, the deployment the jobs go to (io.runpod_jobs.RunpodTarget; the CLI builds
    it from --deploy with cloud.batch.runpod_target).
    ``started_at``: the time.monotonic() reading at which the process started (the command line passes it, so the
    bill covers interpreter start and imports); a library call is billed from this call.
    """
    called = time.monotonic()
    started_at = called if started_at is None else min(started_at, called)
    try:
        pricing = load_pricing(opts.pricing, opts.profile)
    except CostInputError as exc:
        raise InputError(str(exc)) from None
    if opts.report is not None and not opts.report.parent.is_dir():
        raise InputError(f"{opts.report}: folder {opts.report.parent} does not exist")
    engine = engine_class(opts.engine)
    if target is not None:
        target.check_model(opts.model)
    meter = None
    if engine.in_process:
        from mixedclf.engines.budget import CostMeter

        meter = CostMeter(pricing, started_at=started_at, idle_timeout_s=opts.idle_timeout,
                          gpu_speedup=opts.gpu_speedup, max_cost=opts.max_cost)
    elif opts.max_cost is not None:
        raise InputError("--max-cost needs --engine local",
                         hint=f"the {opts.engine.capitalize()} engine's workers are not this process")
    plan = plan_classify(opts, warn or _warn)
    opts = plan.opts
    bar = _progress_bar(plan, meter) if progress else nullcontext()
    cache = open_cache(opts, warn or _warn)
    try:
        with (output_lock(opts.output) if plan.io.out_kind != "stdout" else nullcontext()), bar:
            hooks = RunHooks(on_rows=bar.advance if progress else None, meter=meter, answers=cache,
                             on_work=bar if progress else None, warn=warn or _warn, target=target)
            run = engine().run(plan, hooks)
    finally:
        if cache is not None:
            cache.close()
    measurements = run.measurements
    if engine.in_process:  # this process is the GPU worker: held from its start to its end
        measurements = measurements.model_copy(update={
            "process_s": time.monotonic() - started_at,
            "startup_s": max(0.0, (run.load_started_at or started_at) - started_at),
            "cold_start_s": (max(0.0, run.first_batch_at - started_at) if run.first_batch_at is not None else None),
        })
    from mixedclf.engines.calibrate import calibrate

    tally = run.tally
    resumed = None
    if run.extra.resumed_from_chunk:
        resumed = ResumeInfo(from_chunk=run.extra.resumed_from_chunk, rows_before=run.extra.rows_before_resume,
                             rows_this_run=measurements.items)
    report = build_classify_report(
        model=run.spec.name,
        input_path=_input_text(opts),
        output_path=str(opts.output),
        mode=opts.mode,
        engine=opts.engine,
        device=run.device,
        rows_in=run.rows_in,
        rows_out=run.rows_out,
        rows_errored=run.rows_errored,
        settings=run.settings.as_report(),
        pricing=pricing,
        measurements=measurements,
        aggregate=LabelAggregate(
            label_counts=tally.label_counts, mean_confidence=tally.mean_confidence, bucket_counts=tally.bucket_counts
        ),
        extra=run.extra.as_report(),
        requests_per_day=opts.requests_per_day,
        idle_timeout_s=opts.idle_timeout,
        gpu_speedup=opts.gpu_speedup,
        work=_work(run) if run.work_counted else None,
        calibration=calibrate(),
        resumed=resumed,
        stopped=str(run.stopped) if run.stopped is not None else None,
    )
    report.runpod = run.runpod_bill
    if cache is not None:
        report.cache = _cache_savings(cache, run, pricing, report.cost)
    if meter is not None and meter.runs_before:
        bill = report.cost.provisioned.mixed if opts.mode == "mixed" else report.cost.provisioned.gpu_only
        report.job = JobTotals(runs=meter.runs_before + 1, rows_in=report.rows_in, rows_out=report.rows_out,
                               rows_errored=report.rows_errored,
                               process_s=clean(meter.seconds_before + (measurements.process_s or 0.0)),
                               provisioned_usd=clean(meter.spent_before + bill))
    if opts.report is not None:
        write_report(report, opts.report)
    if run.stopped is not None:
        raise run.stopped
    from mixedclf.io.sinks import errors_path

    kind = plan.io.out_kind
    errors = errors_path(opts.output, kind)
    return ClassifyResult(report, opts.output, errors if kind == "stdout" else Path(errors))
