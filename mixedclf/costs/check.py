"""`mixedclf check`: compare a report with a baseline and gate on cost regressions (for CI).

Exit codes (documented in docs/ci.md):

* 0 - within every limit (warnings allowed)
* 1 - a regression beyond a limit
* 2 - unreadable or incompatible inputs: missing file, not JSON, wrong schema version, different kind,
      model, mode or pricing profile (the last four are only warnings with ``allow_mismatch``)

Pure module: no torch, no pools.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mixedclf.costs.accounting import SCHEMA_VERSION, clean
from mixedclf.costs.fmt import TABLE_STYLE, fmt_money, md_table, print_table
from mixedclf.costs.pricing import CostInputError

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_INCOMPATIBLE = 2

Metric = Literal["cost_per_1k", "gpu_seconds_per_1k", "throughput"]
Basis = Literal["pay-per-use", "provisioned"]
METRICS: tuple[str, ...] = ("cost_per_1k", "gpu_seconds_per_1k", "throughput")
BASES: tuple[str, ...] = ("pay-per-use", "provisioned")
COMMENT_MARKER = "<!-- mixedclf-cost-check -->"

_UNITS = {"cost_per_1k": "$ / 1k", "gpu_seconds_per_1k": "GPU s / 1k", "throughput": "rows/s"}
_LABELS = {
    "cost_per_1k": "cost per 1,000 items",
    "gpu_seconds_per_1k": "GPU seconds per 1,000 items",
    "throughput": "throughput (items/s)",
}


class CheckLimits(BaseModel):
    max_increase_pct: float | None = None
    max_increase_abs: float | None = None
    budget_per_1k: float | None = None
    warn_pct: float | None = None


class CompareRow(BaseModel):
    name: str
    unit: str
    baseline: float | None
    current: float | None
    diff: float | None
    diff_pct: float | None
    gated: bool = False  # the row the limits apply to


class CheckResult(BaseModel):
    kind: Literal["check"] = "check"
    schema_version: int = SCHEMA_VERSION
    status: Literal["ok", "warn", "regression"]
    exit_code: int
    metric: Metric
    basis: Basis
    report_kind: str
    baseline_path: str
    current_path: str
    baseline_value: float
    current_value: float
    change: float  # current - baseline, in the metric's unit
    change_pct: float | None  # signed; None when the baseline is 0
    worsening_pct: float | None  # positive = worse (throughput: a drop); inf when baseline 0 and worse
    limits: CheckLimits
    violations: list[str] = []
    warnings: list[str] = []
    mismatches: list[str] = []
    rows: list[CompareRow] = []
    profile: str = ""
    model: str | None = None


def _pct(new: float, old: float) -> float | None:
    if old == 0:
        return None if new != 0 else 0.0
    return clean((new - old) / abs(old) * 100)


def _row(name: str, unit: str, old: float | None, new: float | None, gated: bool = False) -> CompareRow:
    diff = clean(new - old) if old is not None and new is not None else None
    dp = _pct(new, old) if old is not None and new is not None else None
    return CompareRow(name=name, unit=unit, baseline=old, current=new, diff=diff, diff_pct=dp, gated=gated)


def metric_value(report, metric: str, basis: str = "pay-per-use") -> float:
    """The gated number of a classify or estimate report."""
    from mixedclf.report import ClassifyReport

    if metric not in METRICS:
        raise CostInputError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
    if basis not in BASES:
        raise CostInputError(f"unknown basis {basis!r}; choose one of: {', '.join(BASES)}")
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


def _rows(base, cur, metric: str, basis: str) -> list[CompareRow]:
    from mixedclf.report import ClassifyReport

    rows: list[CompareRow] = []
    if isinstance(base, ClassifyReport) and isinstance(cur, ClassifyReport):

        def stage_per_1k(rep) -> dict[str, float]:
            out: dict[str, float] = {}
            for s in rep.cost.stages:
                if s.pay_per_use:
                    out[s.name] = out.get(s.name, 0.0) + s.cost
            n = rep.cost.items
            return {k: clean(v / n * 1000) if n else 0.0 for k, v in out.items()}

        b, c = stage_per_1k(base), stage_per_1k(cur)
        for name in list(dict.fromkeys([*b, *c])):
            rows.append(_row(f"stage {name}", "$ / 1k", b.get(name), c.get(name)))
        bt, ct = base.cost.totals(basis), cur.cost.totals(basis)
        rows.append(_row("mixed total", "$ / 1k", bt.mixed_per_1k, ct.mixed_per_1k,
                         metric == "cost_per_1k"))
        rows.append(_row("GPU-only total", "$ / 1k", bt.gpu_only_per_1k, ct.gpu_only_per_1k))
        rows.append(_row("savings vs GPU-only", "%", bt.savings_pct, ct.savings_pct))
        rows.append(_row("GPU seconds per 1k", "s / 1k", metric_value(base, "gpu_seconds_per_1k", basis),
                         metric_value(cur, "gpu_seconds_per_1k", basis), metric == "gpu_seconds_per_1k"))
        rows.append(_row("GPU utilization", "%", clean(base.cost.gpu_utilization * 100),
                         clean(cur.cost.gpu_utilization * 100)))
        rows.append(_row("throughput", "rows/s", base.cost.throughput, cur.cost.throughput, metric == "throughput"))
        return rows
    if base.kind == "estimate" and cur.kind == "estimate":
        b = {ln.name: clean(ln.mixed * 1000) for ln in base.lines}
        c = {ln.name: clean(ln.mixed * 1000) for ln in cur.lines}
        for name in list(dict.fromkeys([*b, *c])):
            if b.get(name, 0) == 0 and c.get(name, 0) == 0:
                continue
            rows.append(_row(name, "$ / 1k", b.get(name), c.get(name)))
        rows.append(_row("mixed total", "$ / 1k", base.mixed_per_1k, cur.mixed_per_1k, metric == "cost_per_1k"))
        rows.append(_row("GPU-only total", "$ / 1k", base.gpu_only_per_1k, cur.gpu_only_per_1k))
        rows.append(_row("mixed per month", "$", base.mixed_per_month, cur.mixed_per_month))
        rows.append(_row("savings vs GPU-only", "%", base.savings_pct, cur.savings_pct))
        rows.append(_row("GPU seconds per 1k", "s / 1k", base.gpu_seconds_per_1k, cur.gpu_seconds_per_1k,
                         metric == "gpu_seconds_per_1k"))
        return rows
    # different kinds, compared anyway (--allow-mismatch): the gated number only
    rows.append(_row(_LABELS[metric], _UNITS[metric], metric_value(base, metric, basis),
                     metric_value(cur, metric, basis), True))
    return rows


def mismatches(base, cur) -> list[str]:
    """Why two reports are not like for like (empty when they are)."""
    out: list[str] = []
    if base.kind != cur.kind:
        out.append(f"report kinds differ: baseline {base.kind}, current {cur.kind}")
    bp, cp = base.pricing, cur.pricing
    if bp.name != cp.name:
        out.append(f"pricing profiles differ: baseline {bp.name!r}, current {cp.name!r}")
    elif (bp.cpu_per_sec, bp.gpu_per_sec) != (cp.cpu_per_sec, cp.gpu_per_sec):
        out.append(
            f"pricing profile {bp.name!r} has different rates: baseline CPU {bp.cpu_per_sec:g} GPU "
            f"{bp.gpu_per_sec:g}, current CPU {cp.cpu_per_sec:g} GPU {cp.gpu_per_sec:g} $/s"
        )
    bm, cm = getattr(base, "model", None), getattr(cur, "model", None)
    if bm is not None and cm is not None and bm != cm:
        out.append(f"models differ: baseline {bm!r}, current {cm!r}")
    if base.kind == cur.kind == "classify" and base.mode != cur.mode:
        out.append(f"modes differ: baseline {base.mode}, current {cur.mode}")
    return out


def compare(
    base,
    cur,
    *,
    metric: str = "cost_per_1k",
    basis: str = "pay-per-use",
    limits: CheckLimits | None = None,
    allow_mismatch: bool = False,
    baseline_path: str = "baseline",
    current_path: str = "current",
) -> CheckResult:
    """Compare two loaded reports. Incompatible (and not allowed) -> CostInputError (exit 2)."""
    limits = limits or CheckLimits()
    for name in ("max_increase_pct", "max_increase_abs", "budget_per_1k", "warn_pct"):
        v = getattr(limits, name)
        if v is not None and (not math.isfinite(v) or v < 0):
            raise CostInputError(f"--{name.replace('_', '-')} must be a number >= 0")
    mm = mismatches(base, cur)
    if mm and not allow_mismatch:
        raise CostInputError(f"reports are not comparable: {mm[0]} (use --allow-mismatch to compare anyway)")
    b_val = metric_value(base, metric, basis)
    c_val = metric_value(cur, metric, basis)
    change = clean(c_val - b_val)
    change_pct = _pct(c_val, b_val)
    worse = -change if metric == "throughput" else change
    if b_val != 0:
        worse_pct: float | None = clean(worse / abs(b_val) * 100)
    else:
        worse_pct = math.inf if worse > 0 else 0.0

    label = _LABELS[metric]
    direction = "fell" if metric == "throughput" else "rose"
    eps = 1e-9
    violations: list[str] = []
    warnings: list[str] = [f"mismatch allowed: {m}" for m in mm]
    if limits.max_increase_pct is not None and worse_pct is not None and worse_pct > limits.max_increase_pct + eps:
        violations.append(
            f"{label} {direction} {_fmt_pct_abs(worse_pct)} (limit {limits.max_increase_pct:g}%): "
            f"{_fmt_val(metric, b_val)} -> {_fmt_val(metric, c_val)}"
        )
    if limits.max_increase_abs is not None and worse > limits.max_increase_abs + eps * max(1.0, abs(b_val)):
        violations.append(
            f"{label} {direction} by {_fmt_val(metric, abs(worse))} (limit {_fmt_val(metric, limits.max_increase_abs)})"
        )
    if limits.budget_per_1k is not None:
        cost_now = metric_value(cur, "cost_per_1k", basis)
        if cost_now > limits.budget_per_1k + eps * max(1.0, limits.budget_per_1k):
            violations.append(
                f"cost per 1,000 items {fmt_money(cost_now)} is over the budget {fmt_money(limits.budget_per_1k)}"
            )
    if not violations and limits.warn_pct is not None and worse_pct is not None and worse_pct > limits.warn_pct + eps:
        warnings.append(f"{label} {direction} {_fmt_pct_abs(worse_pct)} (warning above {limits.warn_pct:g}%)")

    status: Literal["ok", "warn", "regression"] = "regression" if violations else "warn" if warnings else "ok"
    return CheckResult(
        status=status,
        exit_code=EXIT_REGRESSION if violations else EXIT_OK,
        metric=metric,  # type: ignore[arg-type]
        basis=basis,  # type: ignore[arg-type]
        report_kind=cur.kind if base.kind == cur.kind else f"{base.kind}/{cur.kind}",
        baseline_path=baseline_path,
        current_path=current_path,
        baseline_value=b_val,
        current_value=c_val,
        change=change,
        change_pct=change_pct,
        worsening_pct=worse_pct,
        limits=limits,
        violations=violations,
        warnings=warnings,
        mismatches=mm,
        rows=_rows(base, cur, metric, basis),
        profile=cur.pricing.name,
        model=getattr(cur, "model", None),
    )


def check_files(
    current: str | Path,
    baseline: str | Path,
    **kwargs,
) -> CheckResult:
    """Load both reports and compare them (load errors -> CostInputError, exit 2)."""
    from mixedclf.report import load_report

    base = load_report(baseline)
    cur = load_report(current)
    return compare(base, cur, baseline_path=str(baseline), current_path=str(current), **kwargs)


# ------------------------------------------------------------------------------------ renderings


def _fmt_pct_abs(p: float) -> str:
    return "∞%" if math.isinf(p) else f"{p:.1f}%"


def _fmt_val(metric_or_unit: str, v: float | None) -> str:
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


def _fmt_diff(row: CompareRow) -> str:
    if row.diff is None:
        return "—"
    if row.unit == "%":
        return f"{row.diff:+.1f} pt"
    if row.diff == 0:
        return "0"
    return ("+" if row.diff > 0 else "-") + _fmt_val(row.unit, abs(row.diff))


def _fmt_diff_pct(row: CompareRow) -> str:
    if row.unit == "%":
        return ""
    if row.diff_pct is None:
        return "new" if row.baseline in (None, 0) and row.current else "—"
    return f"{row.diff_pct:+.1f}%"


_ICON = {"ok": "✅", "warn": "⚠️", "regression": "❌"}
_TITLE = {"ok": "within limits", "warn": "within limits, with warnings", "regression": "cost regression"}


def headline(r: CheckResult) -> str:
    cp = "n/a" if r.change_pct is None else f"{r.change_pct:+.1f}%"
    limits = []
    if r.limits.max_increase_pct is not None:
        limits.append(f"max +{r.limits.max_increase_pct:g}%")
    if r.limits.max_increase_abs is not None:
        limits.append(f"max +{_fmt_val(r.metric, r.limits.max_increase_abs)}")
    if r.limits.budget_per_1k is not None:
        limits.append(f"budget {fmt_money(r.limits.budget_per_1k)}/1k")
    lim = f"; limits: {', '.join(limits)}" if limits else "; no limit set"
    return (
        f"{_LABELS[r.metric]} ({r.basis}): {_fmt_val(r.metric, r.baseline_value)} -> "
        f"{_fmt_val(r.metric, r.current_value)} ({cp}){lim}"
    )


def render_check(r: CheckResult, console: Console) -> None:
    style = {"ok": "green", "warn": "yellow", "regression": "red"}[r.status]
    console.print(f"[bold {style}]{_TITLE[r.status]}[/bold {style}] · {escape(headline(r))}")
    t = Table(title=f"{escape(r.baseline_path)} → {escape(r.current_path)} ({r.basis}, mixed unless named)",
              title_justify="left", **TABLE_STYLE)
    for col, j in (("", "left"), ("unit", "left"), ("baseline", "right"), ("current", "right"), ("diff", "right"),
                   ("diff %", "right")):
        t.add_column(col, justify=j)  # type: ignore[arg-type]
    for row in r.rows:
        name = f"[bold]{escape(row.name)}[/bold]" if row.gated else escape(row.name)
        t.add_row(name, row.unit, _fmt_val(row.unit, row.baseline), _fmt_val(row.unit, row.current),
                  _fmt_diff(row), _fmt_diff_pct(row))
    print_table(console, t)
    for v in r.violations:
        console.print(f"[red]regression:[/red] {escape(v)}")
    for w in r.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}")


def check_to_markdown(r: CheckResult) -> str:
    out = [
        COMMENT_MARKER,
        f"### {_ICON[r.status]} mixedclf cost check: {_TITLE[r.status]}",
        "",
        headline(r) + ".",
        "",
    ]
    rows = [
        [f"**{row.name}**" if row.gated else row.name, row.unit, _fmt_val(row.unit, row.baseline),
         _fmt_val(row.unit, row.current), _fmt_diff(row), _fmt_diff_pct(row)]
        for row in r.rows
    ]
    out += [md_table([f"({r.basis}; mixed unless named)", "unit", "baseline", "current", "diff", "diff %"], rows,
                     ["l", "l", "r", "r", "r", "r"]), ""]
    out += [f"- ❌ {v}" for v in r.violations]
    out += [f"- ⚠️ {w}" for w in r.warnings]
    if r.violations or r.warnings:
        out.append("")
    model = f", model `{r.model}`" if r.model else ""
    out.append(
        f"<sub>{r.report_kind} reports, pricing `{r.profile}`{model}; baseline `{r.baseline_path}`, "
        f"current `{r.current_path}`. Exit codes: 0 ok, 1 regression, 2 unreadable/incompatible.</sub>"
    )
    return "\n".join(out) + "\n"


def check_to_json(r: CheckResult) -> str:
    # inf is not JSON: write it as null with the status saying why
    data = r.model_dump(mode="json")
    if r.worsening_pct is not None and math.isinf(r.worsening_pct):
        data["worsening_pct"] = None
    import json

    return json.dumps(data, indent=2)
