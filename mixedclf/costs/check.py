"""`mixedclf check`: the verdict. Load the reports, compare them with their baselines and gate on cost regressions
(for CI); the limits and the result models. The numbers compared are in check_metrics, the like-for-like rules in
check_mismatch, the table rows in check_rows.

Exit codes (documented in docs/ci.md):

* 0 - within every limit (warnings allowed)
* 1 - a regression beyond a limit
* 2 - unreadable or incompatible inputs: missing file, not JSON, wrong schema version, different kind,
      model, mode, pricing profile, work-changing settings or a partial (resumed) run (these are only warnings
      with ``allow_mismatch``)

Two gates, both applied: counted work (tokens, micro-batches, model FLOPs) priced at one calibrated rate, which is
deterministic and sees a bigger model; and each stage's CPU seconds per 1,000 rows over several interleaved runs
per side, compared with a rank test (check_cpu), which sees the same work done slower (see docs/ci.md).

Pure module: no torch, no pools.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from mixedclf.costs.accounting import SCHEMA_VERSION, clean
from mixedclf.costs.check_cpu import DEFAULT_ALPHA, DEFAULT_MAX_STAGE_INCREASE_PCT, CpuGate, cpu_gate, has_cpu
from mixedclf.costs.check_metrics import (
    METRIC_LABELS,
    METRIC_UNITS,
    Basis,
    Metric,
    has_work,
    metric_value,
    validate_metric,
    work_value,
)
from mixedclf.costs.check_mismatch import mismatch_lists, unusable
from mixedclf.costs.check_rows import CompareRow, classify_rows, compare_row, estimate_rows, pct_change, spread
from mixedclf.costs.fmt import fmt_money, format_pct, format_value
from mixedclf.costs.monthly import MonthlyProjection, project_monthly
from mixedclf.costs.pricing import CostInputError
from mixedclf.costs.report import ClassifyReport, load_report

EXIT_OK = 0
EXIT_REGRESSION = 1

COMMENT_MARKER = "<!-- mixedclf-cost-check -->"

#: The gate applied when no limit is given: cost per 1,000 rows may rise by at most this many percent.
DEFAULT_MAX_INCREASE_PCT = 10.0

Verdict = Literal["work", "measured", "estimate"]


class CheckLimits(BaseModel):
    max_increase_pct: float | None = DEFAULT_MAX_INCREASE_PCT
    max_increase_abs: float | None = None
    budget_per_1k: float | None = None
    warn_pct: float | None = None
    max_stage_increase_pct: float | None = DEFAULT_MAX_STAGE_INCREASE_PCT  # any stage's CPU seconds per 1k
    alpha: float = DEFAULT_ALPHA  # significance of the CPU-time gate (family-wise)


class CheckResult(BaseModel):
    kind: Literal["check"] = "check"
    schema_version: int = SCHEMA_VERSION
    status: Literal["ok", "warn", "regression"]
    exit_code: int
    metric: Metric
    basis: Basis
    verdict_on: Verdict  # what the pass/fail rests on
    report_kind: str
    baseline_path: str
    current_path: str
    baseline_paths: list[str] = []
    current_paths: list[str] = []
    baseline_value: float  # median
    current_value: float  # median
    change: float  # current - baseline, in the metric's unit
    change_pct: float | None  # signed; None when the baseline is 0
    worsening_pct: float | None  # positive = worse (throughput: a drop); inf when baseline 0 and worse
    limits: CheckLimits
    s_per_gflop: float | None = None  # the one rate every report's work is priced at (work verdict)
    violations: list[str] = []
    warnings: list[str] = []
    mismatches: list[str] = []
    rows: list[CompareRow] = []
    profile: str = ""
    model: str | None = None
    monthly: MonthlyProjection | None = None  # each side's $/month under a usage file (shown, not gated)
    cpu: CpuGate | None = None  # the CPU-time gate over several interleaved runs per side (classify reports)


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _worse(metric: str, old: float, new: float) -> tuple[float, float | None]:
    """(how much worse, in the metric's unit; the same in % of old). Positive = worse."""
    worse = clean(old - new) if metric == "throughput" else clean(new - old)
    if old != 0:
        return worse, clean(worse / abs(old) * 100)
    return worse, (math.inf if worse > 0 else 0.0)


def compare(
    base,
    cur,
    *,
    metric: str = "cost_per_1k",
    basis: str = "pay-per-use",
    limits: CheckLimits | None = None,
    allow_mismatch: bool = False,
    baseline_path: str | list[str] = "baseline",
    current_path: str | list[str] = "current",
) -> CheckResult:
    """Compare reports (one or several per side). Incompatible (and not allowed) -> CostInputError (exit 2).

    The verdict rests on counted work when every report carries it (classify reports of schema 2): each report's
    work, priced at one rate (the median of all the reports' calibrations), compared by the medians of each
    side. Measured numbers are shown beside it and only warn, and only outside their measured spread.
    """
    validate_metric(metric, basis)
    limits = limits or CheckLimits()
    for name in ("max_increase_pct", "max_increase_abs", "budget_per_1k", "warn_pct", "max_stage_increase_pct"):
        v = getattr(limits, name)
        if v is not None and (not math.isfinite(v) or v < 0):
            raise CostInputError(f"--{name.replace('_', '-')} must be a number >= 0")
    if not (0 < limits.alpha < 1):
        raise CostInputError("--alpha must be between 0 and 1")
    bases, curs = _as_list(base), _as_list(cur)
    if not bases or not curs:
        raise CostInputError("check needs at least one current and one baseline report")
    b_paths = _as_list(baseline_path) if isinstance(baseline_path, list) else [baseline_path] * len(bases)
    c_paths = _as_list(current_path) if isinstance(current_path, list) else [current_path] * len(curs)
    for path, rep in zip([*b_paths, *c_paths], [*bases, *curs]):
        if (problem := unusable(rep)) is not None:
            raise CostInputError(f"{path}: {problem}")
    hard, soft = mismatch_lists(bases, curs)
    if hard and not allow_mismatch:
        more = f" (+{len(hard) - 1} more)" if len(hard) > 1 else ""
        raise CostInputError(f"reports are not comparable: {hard[0]}{more} (use --allow-mismatch to compare anyway)")

    everyone = [*bases, *curs]
    same_kind = len({r.kind for r in everyone}) == 1
    classify = same_kind and all(isinstance(r, ClassifyReport) for r in everyone)
    rate: float | None = None
    warnings: list[str] = [f"mismatch allowed: {m}" for m in hard] + soft
    if classify and all(has_work(r) for r in everyone):
        verdict: Verdict = "work"
        rate = clean(statistics.median(r.calibration.s_per_gflop for r in everyone))
        b_vals = [work_value(r, metric, rate) for r in bases]
        c_vals = [work_value(r, metric, rate) for r in curs]
    else:
        verdict = "estimate" if same_kind and bases[0].kind == "estimate" else "measured"
        b_vals = [metric_value(r, metric, basis) for r in bases]
        c_vals = [metric_value(r, metric, basis) for r in curs]
        if verdict == "measured" and classify:
            old = [p for p, r in zip([*b_paths, *c_paths], everyone) if not has_work(r)]
            warnings.append(
                f"no work counts in {', '.join(dict.fromkeys(old))} (a version-1 report, or the Ray engine): the "
                "verdict rests on measured seconds, which move with machine load"
            )
    b_val, _ = spread(b_vals)
    c_val, _ = spread(c_vals)
    change = clean(c_val - b_val)
    change_pct = pct_change(c_val, b_val)
    worse, worse_pct = _worse(metric, b_val, c_val)
    gate_worse, gate_worse_pct = worse, worse_pct
    if verdict == "measured" and (len(bases) > 1 or len(curs) > 1):
        # measured numbers count only outside their spread: the current's best against the baseline's worst
        best_cur = max(c_vals) if metric == "throughput" else min(c_vals)
        worst_base = min(b_vals) if metric == "throughput" else max(b_vals)
        gate_worse, gate_worse_pct = _worse(metric, worst_base, best_cur)

    label = METRIC_LABELS[metric] + (" (work)" if verdict == "work" else "")
    direction = "fell" if metric == "throughput" else "rose"
    eps = 1e-9
    violations: list[str] = []
    pct_limit = limits.max_increase_pct
    if pct_limit is not None and gate_worse_pct is not None and gate_worse_pct > pct_limit + eps:
        outside = " outside the measured spread" if gate_worse_pct != worse_pct else ""
        violations.append(
            f"{label} {direction} {format_pct(gate_worse_pct)}{outside} (limit {pct_limit:g}%): "
            f"{format_value(metric, b_val)} -> {format_value(metric, c_val)}"
        )
    if limits.max_increase_abs is not None and gate_worse > limits.max_increase_abs + eps * max(1.0, abs(b_val)):
        violations.append(
            f"{label} {direction} by {format_value(metric, abs(gate_worse))} "
            f"(limit {format_value(metric, limits.max_increase_abs)})"
        )
    if limits.budget_per_1k is not None:
        cost_vals = ([work_value(r, "cost_per_1k", rate) for r in curs] if verdict == "work" and rate is not None
                     else [metric_value(r, "cost_per_1k", basis) for r in curs])
        cost_now = min(cost_vals) if verdict == "measured" else spread(cost_vals)[0]
        if cost_now > limits.budget_per_1k + eps * max(1.0, limits.budget_per_1k):
            what = "work cost" if verdict == "work" else "cost"
            violations.append(
                f"{what} per 1,000 items {fmt_money(cost_now)} is over the budget {fmt_money(limits.budget_per_1k)}"
            )
    if not violations and limits.warn_pct is not None and worse_pct is not None and worse_pct > limits.warn_pct + eps:
        warnings.append(f"{label} {direction} {format_pct(worse_pct)} (warning above {limits.warn_pct:g}%)")
    cpu = cpu_gate(bases, curs, max_increase_pct=pct_limit, max_stage_increase_pct=limits.max_stage_increase_pct,
                   alpha=limits.alpha) if classify else None
    if cpu is not None:
        violations += cpu.violations
        if cpu.note:
            warnings.append(cpu.note)
    elif classify:
        old = [p for p, r in zip([*b_paths, *c_paths], everyone) if not has_cpu(r)]
        warnings.append(f"no CPU seconds per stage in {', '.join(dict.fromkeys(old))} (made before they were "
                        "recorded, or by the Ray engine): the CPU-time gate did not run, so the same work done "
                        "slower is not seen")
    if verdict == "work" and pct_limit is not None and (cpu is None or cpu.alpha_per_figure is None):
        warnings += _measured_warnings(bases, curs, metric, basis, pct_limit)

    if classify:
        rows = classify_rows(bases, curs, metric, basis, verdict, rate)
    elif same_kind:
        rows = estimate_rows(bases, curs, metric)
    else:  # different kinds, compared anyway (--allow-mismatch): the gated number only
        rows = [compare_row(METRIC_LABELS[metric], METRIC_UNITS[metric], b_vals, c_vals, True)]
    status: Literal["ok", "warn", "regression"] = "regression" if violations else "warn" if warnings else "ok"
    return CheckResult(
        status=status,
        exit_code=EXIT_REGRESSION if violations else EXIT_OK,
        metric=metric,  # type: ignore[arg-type]
        basis=basis,  # type: ignore[arg-type]
        verdict_on=verdict,
        report_kind=curs[0].kind if same_kind else "/".join(dict.fromkeys(r.kind for r in everyone)),
        baseline_path=", ".join(dict.fromkeys(b_paths)),
        current_path=", ".join(dict.fromkeys(c_paths)),
        baseline_paths=b_paths,
        current_paths=c_paths,
        baseline_value=b_val,
        current_value=c_val,
        change=change,
        change_pct=change_pct,
        worsening_pct=worse_pct,
        limits=limits,
        s_per_gflop=rate,
        violations=violations,
        warnings=warnings,
        mismatches=hard,
        rows=rows,
        profile=curs[0].pricing.name,
        model=getattr(curs[0], "model", None),
        cpu=cpu,
    )


def _measured_warnings(bases, curs, metric: str, basis: str, pct_limit: float) -> list[str]:
    """Measured seconds beside a work verdict: a warning when they moved past the limit, never a failure."""
    b_vals = [metric_value(r, metric, basis) for r in bases]
    c_vals = [metric_value(r, metric, basis) for r in curs]
    label = f"measured {METRIC_LABELS[metric]}"
    direction = "fell" if metric == "throughput" else "rose"
    _, median_pct = _worse(metric, spread(b_vals)[0], spread(c_vals)[0])
    if median_pct is None or median_pct <= pct_limit:
        return []
    if len(bases) < 2 or len(curs) < 2:
        return [f"{label} {direction} {format_pct(median_pct)}, but with one report on a side its spread is "
                "unknown, so it is not gated (give several reports per side to see it)"]
    best_cur = max(c_vals) if metric == "throughput" else min(c_vals)
    worst_base = min(b_vals) if metric == "throughput" else max(b_vals)
    _, outside = _worse(metric, worst_base, best_cur)
    if outside is not None and outside > pct_limit:
        return [f"{label} {direction} {format_pct(outside)} outside its measured spread while the work did not "
                "change as much: look for slower code outside the model (not gated: the verdict rests on work)"]
    return [f"{label} {direction} {format_pct(median_pct)} (medians) but within its measured spread: noise"]


def check_files(
    current: str | Path | list,
    baseline: str | Path | list,
    usage_file=None,
    **kwargs,
) -> CheckResult:
    """Load every report and compare them (load errors -> CostInputError, exit 2). With a usage file
    (mixedclf.costs.usage.UsageFile), each side's $/month under it is added (`monthly`)."""
    b_paths = [str(p) for p in _as_list(baseline)]
    c_paths = [str(p) for p in _as_list(current)]
    bases = [load_report(p) for p in b_paths]
    curs = [load_report(p) for p in c_paths]
    result = compare(bases, curs, baseline_path=b_paths, current_path=c_paths, **kwargs)
    if usage_file is not None:
        result.monthly = project_monthly(bases, curs, usage_file)
    return result
