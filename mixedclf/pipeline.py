"""One call from options to a labelled file and a priced report; shared by the CLI, benchmarks and tests."""

from __future__ import annotations

import os
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from mixedclf.config import ClassifyOptions
from mixedclf.costs import CostInputError, load_pricing
from mixedclf.errors import InputError
from mixedclf.report import ClassifyReport, LabelAggregate, build_classify_report


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


def write_json_atomically(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.partial")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


def classify_file(opts: ClassifyOptions, progress: bool = False, engine_factory=None) -> ClassifyResult:
    """Run the pipeline on opts.input; write opts.output (and opts.report); return the priced report."""
    from mixedclf.engines.local import LocalEngine

    try:
        pricing = load_pricing(opts.pricing, opts.profile)
    except CostInputError as exc:
        raise InputError(str(exc)) from None
    if opts.report is not None and not opts.report.parent.is_dir():
        raise InputError(f"{opts.report}: folder {opts.report.parent} does not exist")
    bar = _progress_bar(opts) if progress else nullcontext()
    with bar:
        on_rows = bar.update if progress else None
        engine = (engine_factory or LocalEngine)(opts, on_rows=on_rows)
        run = engine.run()
    tally = run.tally
    report = build_classify_report(
        model=run.spec.name,
        input_path=str(opts.input),
        output_path=str(opts.output),
        mode=opts.mode,
        engine=getattr(engine, "name", "local"),
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
        write_json_atomically(opts.report, report.model_dump_json(indent=2))
    return ClassifyResult(report, opts.output, opts.output.with_name(opts.output.name + ".errors.jsonl"))
