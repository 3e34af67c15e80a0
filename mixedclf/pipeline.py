"""One call from options to a labelled file and a priced report; shared by the CLI, benchmarks and tests."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from mixedclf.config import ClassifyOptions
from mixedclf.costs import CostInputError, load_pricing
from mixedclf.errors import InputError
from mixedclf.io.lock import output_lock
from mixedclf.io.writers import check_writable, errors_path_for, resolve_output
from mixedclf.report import ClassifyReport, LabelAggregate, build_classify_report, write_report


@dataclass
class ClassifyResult:
    report: ClassifyReport
    output_path: Path
    errors_path: Path


def _progress_bar(opts: ClassifyOptions):
    from tqdm import tqdm

    from mixedclf.io.readers import count_rows_hint

    total = count_rows_hint(opts.input, opts.input_format or opts.input.suffix.lstrip(".").lower())
    return tqdm(total=total, unit=" rows", unit_scale=True, file=sys.stderr, dynamic_ncols=True, desc="classify")


def engine_class(name: str):
    if name == "ray":
        from mixedclf.engines.ray import RayEngine

        return RayEngine
    from mixedclf.engines.local import LocalEngine

    return LocalEngine


def classify_file(opts: ClassifyOptions, progress: bool = False) -> ClassifyResult:
    """Run the pipeline on opts.input; write opts.output (and opts.report); return the priced report."""

    try:
        pricing = load_pricing(opts.pricing, opts.profile)
    except CostInputError as exc:
        raise InputError(str(exc)) from None
    if opts.report is not None and not opts.report.parent.is_dir():
        raise InputError(f"{opts.report}: folder {opts.report.parent} does not exist")
    opts = opts.model_copy(update={"output": resolve_output(opts.output)})
    check_writable(opts.output)
    bar = _progress_bar(opts) if progress else nullcontext()
    with output_lock(opts.output), bar:
        on_rows = bar.update if progress else None
        engine = engine_class(opts.engine)(opts, on_rows=on_rows)
        run = engine.run()
    tally = run.tally
    report = build_classify_report(
        model=run.spec.name,
        input_path=str(opts.input),
        output_path=str(opts.output),
        mode=opts.mode,
        engine=opts.engine,
        device=run.device,
        rows_in=run.rows_in,
        rows_out=run.rows_out,
        rows_errored=run.rows_errored,
        settings=run.settings,
        pricing=pricing,
        measurements=run.measurements,
        aggregate=LabelAggregate(
            label_counts=tally.label_counts, mean_confidence=tally.mean_confidence, bucket_counts=tally.bucket_counts
        ),
        extra=run.extra,
        requests_per_day=opts.requests_per_day,
    )
    if opts.report is not None:
        write_report(report, opts.report)
    return ClassifyResult(report, opts.output, errors_path_for(opts.output))
