"""`mixedclf check`: compare a report with a baseline and gate on cost regressions (for CI).

Exit codes (documented in docs/ci.md):

* 0 - within every limit (warnings allowed)
* 1 - a regression beyond a limit
* 2 - unreadable or incompatible inputs: missing file, not JSON, wrong schema version, different kind,
      model, mode, pricing profile, work-changing settings or a partial (resumed) run (these are only warnings
      with ``allow_mismatch``)

The verdict rests on counted work (tokens, micro-batches, model FLOPs) priced at one calibrated rate when every
report carries it; measured seconds are shown beside it (see docs/ci.md).

Pure module: no torch, no pools.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from mixedclf.costs.accounting import SCHEMA_VERSION, clean
from mixedclf.costs.fmt import fmt_money
from mixedclf.costs.monthly import MonthlyProjection, project_monthly
from mixedclf.costs.pricing import CostInputError
from mixedclf.costs.report import ClassifyReport, load_report

EXIT_OK = 0
EXIT_REGRESSION = 1

Metric = Literal["cost_per_1k", "gpu_seconds_per_1k", "throughput"]
Basis = Literal["pay-per-use", "provisioned"]
METRICS: tuple[str, ...] = ("cost_per_1k", "gpu_seconds_per_1k", "throughput")
BASES: tuple[str, ...] = ("pay-per-use", "provisioned")
COMMENT_MARKER = "<!-- mixedclf-cost-check -->"

METRIC_UNITS = {"cost_per_1k": "$ / 1k", "gpu_seconds_per_1k": "GPU s / 1k", "throughput": "rows/s"}
METRIC_LABELS = {
    "cost_per_1k": "cost per 1,000 items",
    "gpu_seconds_per_1k": "GPU seconds per 1,000 items",
    "throughput": "throughput (items/s)",
}


#: The gate applied when no limit is given: cost per 1,000 rows may rise by at most this many percent.
DEFAULT_MAX_INCREASE_PCT = 10.0

#: Settings that change the work itself: reports that differ in one are refused without --allow-mismatch.
WORK_SETTINGS = ("device", "precision", "chunk_rows", "batch_size", "max_batch_tokens", "dedup", "clean")
#: Settings that change only how fast the work is done: listed as warnings.
SPEED_SETTINGS = ("cpu_workers", "torch_threads", "engine")

Verdict = Literal["work", "measured", "estimate"]


class CheckLimits(BaseModel):
    max_increase_pct: float | None = DEFAULT_MAX_INCREASE_PCT
    max_increase_abs: float | None = None
    budget_per_1k: float | None = None
    warn_pct: float | None = None


class CompareRow(BaseModel):
    name: str
    unit: str
    baseline: float | None  # median over the baseline reports
    current: float | None  # median over the current reports
    diff: float | None
    diff_pct: float | None
    gated: bool = False  # the row the limits apply to
    baseline_range: tuple[float, float] | None = None  # min, max when there are several reports
    current_range: tuple[float, float] | None = None


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


def _pct(new: float, old: float) -> float | None:
    if old == 0:
        return None if new != 0 else 0.0
    return clean((new - old) / abs(old) * 100)


def _spread(values: list[float]) -> tuple[float, tuple[float, float] | None]:
    """Median, and (min, max) when there is more than one value."""
    med = clean(statistics.median(values))
    return med, ((min(values), max(values)) if len(values) > 1 else None)


def _row(name: str, unit: str, old: list[float] | float | None, new: list[float] | float | None,
         gated: bool = False) -> CompareRow:
    def side(v):
        if v is None or (isinstance(v, list) and not v):
            return None, None
        return _spread(v if isinstance(v, list) else [v])

    (b, b_range), (c, c_range) = side(old), side(new)
    diff = clean(c - b) if b is not None and c is not None else None
    dp = _pct(c, b) if b is not None and c is not None else None
    return CompareRow(name=name, unit=unit, baseline=b, current=c, diff=diff, diff_pct=dp, gated=gated,
                      baseline_range=b_range, current_range=c_range)


def _check_metric(metric: str, basis: str) -> None:
    if metric not in METRICS:
        raise CostInputError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
    if basis not in BASES:
        raise CostInputError(f"unknown basis {basis!r}; choose one of: {', '.join(BASES)}")


def metric_value(report, metric: str, basis: str = "pay-per-use") -> float:
    """The measured number of a classify report, or the projected number of an estimate report."""
    _check_metric(metric, basis)
    if isinstance(report, ClassifyReport):
        c = report.cost
        if metric == "cost_per_1k":
            return c.totals(basis).mixed_per_1k
        if metric == "gpu_seconds_per_1k":
            return c.gpu_busy_s_per_1k if basis == "pay-per-use" else c.gpu_held_s_per_1k
        return c.throughput
    # estimate
    if metric == "cost_per_1k":
        return report.mixed_per_1k
    if metric == "gpu_seconds_per_1k":
        return report.gpu_seconds_per_1k
    raise CostInputError("metric 'throughput' needs classify reports (an estimate has no measured throughput)")


def has_work(report) -> bool:
    return getattr(report, "work", None) is not None and getattr(report, "calibration", None) is not None


def work_seconds_per_1k(report, s_per_gflop: float) -> float:
    """Device seconds per 1,000 rows the counted work takes at one calibrated rate."""
    return clean(report.work.gflop_per_1k * s_per_gflop)


def work_value(report, metric: str, s_per_gflop: float) -> float:
    """The gated number computed from counted work: cost and GPU seconds per 1,000 rows, or rows per work-second."""
    secs = work_seconds_per_1k(report, s_per_gflop)
    if metric == "cost_per_1k":
        return clean(secs * report.pricing.gpu_per_sec)
    if metric == "gpu_seconds_per_1k":
        return secs
    return clean(1000.0 / secs) if secs > 0 else 0.0


def _stage_per_1k(rep) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in rep.cost.stages:
        if s.pay_per_use:
            out[s.name] = out.get(s.name, 0.0) + s.cost
    n = rep.cost.items
    return {k: clean(v / n * 1000) if n else 0.0 for k, v in out.items()}


def _classify_rows(bases, curs, metric: str, basis: str, verdict: str, rate: float | None) -> list[CompareRow]:
    rows: list[CompareRow] = []

    def both(fn):
        return [fn(r) for r in bases], [fn(r) for r in curs]

    if verdict == "work" and rate is not None:
        rows.append(_row("rows classified", "rows", *both(lambda r: float(r.work.rows))))
        for name, field in (("real tokens per 1k", "real_tokens"), ("padded tokens per 1k", "padded_tokens"),
                            ("micro-batches per 1k", "micro_batches")):
            rows.append(_row(name, "count / 1k", *both(lambda r, f=field: clean(r.work.per_1k(getattr(r.work, f))))))
        rows.append(_row("model GFLOP per 1k", "GFLOP / 1k", *both(lambda r: clean(r.work.gflop_per_1k))))
        rows.append(_row("encoder layers", "count", *both(lambda r: float(r.work.shape.layers))))
        rows.append(_row("CPU workers", "count", *both(lambda r: float(r.work.cpu_workers))))
        rows.append(_row("work cost per 1k (verdict)", "$ / 1k",
                         *both(lambda r: work_value(r, "cost_per_1k", rate)), metric == "cost_per_1k"))
        rows.append(_row("work GPU seconds per 1k (verdict)", "s / 1k",
                         *both(lambda r: work_value(r, "gpu_seconds_per_1k", rate)), metric == "gpu_seconds_per_1k"))
        rows.append(_row("work rows per second (verdict)", "rows/s",
                         *both(lambda r: work_value(r, "throughput", rate)), metric == "throughput"))
        rows.append(_row("calibration", "s / GFLOP", *both(lambda r: r.calibration.s_per_gflop)))
    measured = verdict == "measured"
    names = list(dict.fromkeys(n for r in [*bases, *curs] for n in _stage_per_1k(r)))
    for name in names:
        rows.append(_row(f"stage {name} (measured)", "$ / 1k",
                         [v for r in bases if (v := _stage_per_1k(r).get(name)) is not None],
                         [v for r in curs if (v := _stage_per_1k(r).get(name)) is not None]))
    rows.append(_row("mixed total (measured)", "$ / 1k", *both(lambda r: r.cost.totals(basis).mixed_per_1k),
                     measured and metric == "cost_per_1k"))
    rows.append(_row("GPU-only total (measured)", "$ / 1k", *both(lambda r: r.cost.totals(basis).gpu_only_per_1k)))
    if all(r.cost.savings_claim for r in [*bases, *curs]):
        rows.append(_row("savings vs GPU-only", "%", *both(lambda r: r.cost.totals(basis).savings_pct)))
    rows.append(_row("GPU seconds per 1k (measured)", "s / 1k", *both(lambda r: metric_value(r, "gpu_seconds_per_1k",
                     basis)), measured and metric == "gpu_seconds_per_1k"))
    rows.append(_row("GPU utilization", "%", *both(lambda r: clean(r.cost.gpu_utilization * 100))))
    rows.append(_row("throughput (measured)", "rows/s", *both(lambda r: r.cost.throughput),
                     measured and metric == "throughput"))
    return rows


def _estimate_rows(bases, curs, metric: str) -> list[CompareRow]:
    rows: list[CompareRow] = []
    names = list(dict.fromkeys(ln.name for r in [*bases, *curs] for ln in r.lines))

    def line(r, name):
        return next((clean(ln.mixed * 1000) for ln in r.lines if ln.name == name), None)

    for name in names:
        b = [v for r in bases if (v := line(r, name)) is not None]
        c = [v for r in curs if (v := line(r, name)) is not None]
        if not any(b) and not any(c):
            continue
        rows.append(_row(name, "$ / 1k", b, c))

    def both(fn):
        return [fn(r) for r in bases], [fn(r) for r in curs]

    rows.append(_row("mixed total", "$ / 1k", *both(lambda r: r.mixed_per_1k), metric == "cost_per_1k"))
    rows.append(_row("GPU-only total", "$ / 1k", *both(lambda r: r.gpu_only_per_1k)))
    rows.append(_row("mixed per month", "$", *both(lambda r: r.mixed_per_month)))
    rows.append(_row("savings vs GPU-only", "%", *both(lambda r: r.savings_pct)))
    rows.append(_row("GPU seconds per 1k", "s / 1k", *both(lambda r: r.gpu_seconds_per_1k),
                     metric == "gpu_seconds_per_1k"))
    return rows


def _pair_mismatches(base, cur, where: str) -> tuple[list[str], list[str]]:
    """(refused, warned) differences between two reports; ``where`` names them in the messages."""
    hard: list[str] = []
    soft: list[str] = []
    if base.kind != cur.kind:
        hard.append(f"report kinds differ{where}: baseline {base.kind}, current {cur.kind}")
    bp, cp = base.pricing, cur.pricing
    if bp.name != cp.name:
        hard.append(f"pricing profiles differ{where}: baseline {bp.name!r}, current {cp.name!r}")
    elif (bp.cpu_per_sec, bp.gpu_per_sec) != (cp.cpu_per_sec, cp.gpu_per_sec):
        hard.append(
            f"pricing profile {bp.name!r} has different rates{where}: baseline CPU {bp.cpu_per_sec:g} GPU "
            f"{bp.gpu_per_sec:g}, current CPU {cp.cpu_per_sec:g} GPU {cp.gpu_per_sec:g} $/s"
        )
    bm, cm = getattr(base, "model", None), getattr(cur, "model", None)
    if bm is not None and cm is not None and bm != cm:
        hard.append(f"models differ{where}: baseline {bm!r}, current {cm!r}")
    if not (base.kind == cur.kind == "classify"):
        return hard, soft
    if base.mode != cur.mode:
        hard.append(f"modes differ{where}: baseline {base.mode}, current {cur.mode}")
    for label, rep in (("baseline", base), ("current", cur)):
        if rep.resumed is not None:
            hard.append(f"{label} is a partial run{where} ({rep.resumed.describe()})")
    for key in WORK_SETTINGS:
        b, c = base.settings.get(key), cur.settings.get(key)
        if b != c and not (b is None or c is None):
            hard.append(f"setting {key} differs{where}: baseline {b!r}, current {c!r}")
    for key in SPEED_SETTINGS:
        b, c = base.settings.get(key), cur.settings.get(key)
        if b != c and not (b is None or c is None):
            soft.append(f"setting {key} differs{where}: baseline {b!r}, current {c!r} (changes measured seconds)")
    return hard, soft


def mismatch_lists(bases: list, curs: list) -> tuple[list[str], list[str]]:
    """Why the reports are not like for like: every report against the first baseline. (refused, warned)."""
    hard: list[str] = []
    soft: list[str] = []
    ref = bases[0]
    many = len(bases) + len(curs) > 2
    for i, rep in enumerate(bases[1:], start=2):
        h, s_ = _pair_mismatches(ref, rep, f" (baseline 1 vs baseline {i})")
        hard += h
        soft += s_
    for i, rep in enumerate(curs, start=1):
        h, s_ = _pair_mismatches(ref, rep, f" (current {i})" if many else "")
        hard += h
        soft += s_
    return list(dict.fromkeys(hard)), list(dict.fromkeys(soft))


def mismatches(base, cur) -> list[str]:
    """Why two reports are not like for like (empty when they are)."""
    return mismatch_lists([base], [cur])[0]


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
    _check_metric(metric, basis)
    limits = limits or CheckLimits()
    for name in ("max_increase_pct", "max_increase_abs", "budget_per_1k", "warn_pct"):
        v = getattr(limits, name)
        if v is not None and (not math.isfinite(v) or v < 0):
            raise CostInputError(f"--{name.replace('_', '-')} must be a number >= 0")
    bases, curs = _as_list(base), _as_list(cur)
    if not bases or not curs:
        raise CostInputError("check needs at least one current and one baseline report")
    b_paths = _as_list(baseline_path) if isinstance(baseline_path, list) else [baseline_path] * len(bases)
    c_paths = _as_list(current_path) if isinstance(current_path, list) else [current_path] * len(curs)
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
    b_val, _ = _spread(b_vals)
    c_val, _ = _spread(c_vals)
    change = clean(c_val - b_val)
    change_pct = _pct(c_val, b_val)
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
        cost_now = min(cost_vals) if verdict == "measured" else _spread(cost_vals)[0]
        if cost_now > limits.budget_per_1k + eps * max(1.0, limits.budget_per_1k):
            what = "work cost" if verdict == "work" else "cost"
            violations.append(
                f"{what} per 1,000 items {fmt_money(cost_now)} is over the budget {fmt_money(limits.budget_per_1k)}"
            )
    if not violations and limits.warn_pct is not None and worse_pct is not None and worse_pct > limits.warn_pct + eps:
        warnings.append(f"{label} {direction} {format_pct(worse_pct)} (warning above {limits.warn_pct:g}%)")
    if verdict == "work" and pct_limit is not None:
        warnings += _measured_warnings(bases, curs, metric, basis, pct_limit)

    if classify:
        rows = _classify_rows(bases, curs, metric, basis, verdict, rate)
    elif same_kind:
        rows = _estimate_rows(bases, curs, metric)
    else:  # different kinds, compared anyway (--allow-mismatch): the gated number only
        rows = [_row(METRIC_LABELS[metric], METRIC_UNITS[metric], b_vals, c_vals, True)]
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
    )


def _measured_warnings(bases, curs, metric: str, basis: str, pct_limit: float) -> list[str]:
    """Measured seconds beside a work verdict: a warning when they moved past the limit, never a failure."""
    b_vals = [metric_value(r, metric, basis) for r in bases]
    c_vals = [metric_value(r, metric, basis) for r in curs]
    label = f"measured {METRIC_LABELS[metric]}"
    direction = "fell" if metric == "throughput" else "rose"
    _, median_pct = _worse(metric, _spread(b_vals)[0], _spread(c_vals)[0])
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


# ------------------------------------------------------------------------------------ renderings


def format_pct(p: float) -> str:
    return "∞%" if math.isinf(p) else f"{p:.1f}%"


def format_value(metric_or_unit: str, v: float | None) -> str:
    if v is None:
        return "—"
    if metric_or_unit in ("cost_per_1k", "$ / 1k", "$"):
        return fmt_money(v)
    if metric_or_unit in ("throughput", "rows/s"):
        return f"{v:,.1f} rows/s"
    if metric_or_unit in ("gpu_seconds_per_1k", "GPU s / 1k", "s / 1k"):
        return f"{v:,.4g} s"
    if metric_or_unit == "%":
        return f"{v:.1f}%"
    return f"{v:,.6g}"
