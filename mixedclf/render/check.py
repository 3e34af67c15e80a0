"""Renderings of a `mixedclf check` result: the terminal table, the markdown PR comment and the JSON."""

from __future__ import annotations

import math

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mixedclf.costs.check import COMMENT_MARKER, CheckResult
from mixedclf.costs.check_cpu import CpuGate
from mixedclf.costs.check_metrics import METRIC_LABELS
from mixedclf.costs.check_rows import CompareRow
from mixedclf.costs.fmt import fmt_money, format_value
from mixedclf.render.tables import TABLE_STYLE, md_table, print_table


def _fmt_diff(row: CompareRow) -> str:
    if row.diff is None:
        return "—"
    if row.unit == "%":
        return f"{row.diff:+.1f} pt"
    if row.diff == 0:
        return "0"
    return ("+" if row.diff > 0 else "-") + format_value(row.unit, abs(row.diff))


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
        limits.append(f"max +{format_value(r.metric, r.limits.max_increase_abs)}")
    if r.limits.budget_per_1k is not None:
        limits.append(f"budget {fmt_money(r.limits.budget_per_1k)}/1k")
    lim = f"; limits: {', '.join(limits)}" if limits else "; no limit set"
    counts = (f"; median of {len(r.baseline_paths)} baseline / {len(r.current_paths)} current reports"
              if len(r.baseline_paths) > 1 or len(r.current_paths) > 1 else "")
    verdict = (f"{format_value(r.metric, r.baseline_value)} -> {format_value(r.metric, r.current_value)} ({cp})")
    measured = _measured_row(r)
    if r.verdict_on == "work" and measured is not None:
        # the measured figure leads (what the runs cost); the work-priced one the verdict rests on is beside it
        return (f"{METRIC_LABELS[r.metric]}, {r.basis}, measured: {_cell(measured.unit, measured.baseline, None)} -> "
                f"{_cell(measured.unit, measured.current, None)} ({_fmt_diff_pct(measured)}); work-priced "
                f"({_VERDICT['work']}): {verdict}{lim}{counts}")
    return f"{METRIC_LABELS[r.metric]} ({_VERDICT[r.verdict_on].format(basis=r.basis)}): {verdict}{lim}{counts}"


_MEASURED_ROW = {"cost_per_1k": "mixed total (measured)", "gpu_seconds_per_1k": "GPU seconds per 1k (measured)",
                 "throughput": "throughput (measured)"}


def _measured_row(r: CheckResult) -> CompareRow | None:
    return next((row for row in r.rows if row.name == _MEASURED_ROW[r.metric]), None)


_VERDICT = {
    "work": "verdict on counted work, priced at one calibrated rate",
    "measured": "verdict on measured seconds, {basis}",
    "estimate": "estimate, {basis}",
}


def _cell(unit: str, value: float | None, spread: tuple[float, float] | None) -> str:
    text = format_value(unit, value)
    if spread is not None and spread[0] != spread[1]:
        text += f" ({format_value(unit, spread[0])}–{format_value(unit, spread[1])})"
    return text


def _table_title(r: CheckResult) -> str:
    spread = "; median (min–max) over several reports" if any(
        row.baseline_range or row.current_range for row in r.rows) else ""
    return f"({r.basis}; mixed unless named{spread})"


def _cpu_title(g: CpuGate) -> str:
    test = (f"{g.test}, alpha {g.alpha:g} ({g.alpha_per_figure:.2g} per gated figure)"
            if g.alpha_per_figure is not None else "not tested")
    return (f"CPU-time gate: median (min–max) of {g.baseline_reports} baseline / {g.current_reports} current runs; "
            f"{test}")


def _cpu_rows(g: CpuGate) -> list[list[str]]:
    rows = []
    for f in g.figures:
        b = _cell(f.unit, f.baseline_median, (min(f.baseline), max(f.baseline)))
        c = _cell(f.unit, f.current_median, (min(f.current), max(f.current)))
        change = "—" if f.change_pct is None else f"{f.change_pct:+.1f}%"
        limit = "not gated" if f.limit_pct is None else f"+{f.limit_pct:g}%"
        p = "—" if f.p_value is None else f"{f.p_value:.2g}"
        verdict = "❌" if f.failed else ("✅" if f.p_value is not None and f.limit_pct is not None else "")
        rows.append([f.name, f.unit, b, c, change, limit, p, verdict])
    return rows


_CPU_COLUMNS = ["figure", "unit", "baseline", "current", "change", "limit", "p", ""]


def render_check(r: CheckResult, console: Console) -> None:
    style = {"ok": "green", "warn": "yellow", "regression": "red"}[r.status]
    console.print(f"[bold {style}]{_TITLE[r.status]}[/bold {style}] · {escape(headline(r))}")
    if r.monthly is not None:
        console.print(escape(r.monthly.line()))
    t = Table(title=f"{escape(r.baseline_path)} → {escape(r.current_path)} {escape(_table_title(r))}",
              title_justify="left", **TABLE_STYLE)
    for col, j in (("", "left"), ("unit", "left"), ("baseline", "right"), ("current", "right"), ("diff", "right"),
                   ("diff %", "right")):
        t.add_column(col, justify=j)  # type: ignore[arg-type]
    for row in r.rows:
        name = f"[bold]{escape(row.name)}[/bold]" if row.gated else escape(row.name)
        t.add_row(name, row.unit, _cell(row.unit, row.baseline, row.baseline_range),
                  _cell(row.unit, row.current, row.current_range), _fmt_diff(row), _fmt_diff_pct(row))
    print_table(console, t)
    if r.cpu is not None:
        ct = Table(title=escape(_cpu_title(r.cpu)), title_justify="left", **TABLE_STYLE)
        for i, col in enumerate(_CPU_COLUMNS):
            ct.add_column(col, justify="left" if i < 2 else "right")
        for row in _cpu_rows(r.cpu):
            ct.add_row(*(escape(x) for x in row))
        print_table(console, ct)
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
        *([r.monthly.line() + ".", ""] if r.monthly is not None else []),
    ]
    rows = [
        [f"**{row.name}**" if row.gated else row.name, row.unit, _cell(row.unit, row.baseline, row.baseline_range),
         _cell(row.unit, row.current, row.current_range), _fmt_diff(row), _fmt_diff_pct(row)]
        for row in r.rows
    ]
    out += [md_table([_table_title(r), "unit", "baseline", "current", "diff", "diff %"], rows,
                     ["l", "l", "r", "r", "r", "r"]), ""]
    if r.cpu is not None:
        out += [f"**{_cpu_title(r.cpu)}**", "", md_table(_CPU_COLUMNS, _cpu_rows(r.cpu), ["l", "l", "r", "r", "r", "r",
                                                                                    "r", "l"]), ""]
    out += [f"- ❌ {v}" for v in r.violations]
    out += [f"- ⚠️ {w}" for w in r.warnings]
    if r.violations or r.warnings:
        out.append("")
    model = f", model `{r.model}`" if r.model else ""
    rate = (f" Work is priced at {r.s_per_gflop:.4g} s/GFLOP (the median calibration of all the reports)."
            if r.s_per_gflop is not None else "")
    out.append(
        f"<sub>{r.report_kind} reports, pricing `{r.profile}`{model}; baseline `{r.baseline_path}`, "
        f"current `{r.current_path}`.{rate} Exit codes: 0 ok, 1 regression, 2 unreadable/incompatible.</sub>"
    )
    return "\n".join(out) + "\n"


def check_to_json(r: CheckResult) -> str:
    # inf is not JSON: write it as null with the status saying why
    data = r.model_dump(mode="json")
    if r.worsening_pct is not None and math.isinf(r.worsening_pct):
        data["worsening_pct"] = None
    import json

    return json.dumps(data, indent=2)
