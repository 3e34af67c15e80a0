"""`mixedclf estimate` renderings: the rich tables, markdown for PR comments, and the summary line."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mixedclf.costs.estimate import MIXED_HOPS, EstimateReport
from mixedclf.costs.fmt import TABLE_STYLE, fmt_money, fmt_num, fmt_pct, fmt_rate, md_table, print_table


def _extras_line(r: EstimateReport) -> str | None:
    i = r.inputs
    if not i.extras_on:
        return None
    gap = f"mean gap between requests {r.mean_gap_s:,.2f} s" if r.mean_gap_s else "no requests"
    return (
        f"serverless extras: overhead {i.overhead_sec * 1000:.1f} ms/hop × {MIXED_HOPS} hops; "
        f"cold start GPU {i.cold_start_sec:g} s, CPU {i.cpu_cold_start:g} s; "
        f"idle timeout CPU {i.idle_timeout_cpu:g} s, GPU {i.idle_timeout_gpu:g} s; "
        f"active {i.active_hours:g} h/day, {gap}. Per request: CPU idle {r.mixed_cpu.idle_s:.3f} s, "
        f"GPU idle {r.mixed_gpu.idle_s:.3f} s, cold starts CPU {r.mixed_cpu.cold_starts:.3f}, "
        f"GPU {r.mixed_gpu.cold_starts:.3f}."
    )


def _totals_rows(r: EstimateReport) -> list[list[str]]:
    return [
        ["per request", fmt_money(r.mixed_per_request), fmt_money(r.gpu_only_per_request),
         fmt_money(r.gpu_only_per_request - r.mixed_per_request)],
        ["per 1,000 requests", fmt_money(r.mixed_per_1k), fmt_money(r.gpu_only_per_1k),
         fmt_money(r.gpu_only_per_1k - r.mixed_per_1k)],
        ["per day", fmt_money(r.mixed_per_day, 2), fmt_money(r.gpu_only_per_day, 2), fmt_money(r.savings_per_day, 2)],
        [f"per month ({r.inputs.days_per_month} days)", fmt_money(r.mixed_per_month, 2),
         fmt_money(r.gpu_only_per_month, 2), fmt_money(r.savings_per_month, 2)],
    ]


def _line_rows(r: EstimateReport) -> list[list[str]]:
    i = r.inputs
    secs = {"pre": i.pre_sec, "inference": i.gpu_sec, "post": i.post_sec}
    billed = {"pre": "CPU", "inference": "GPU", "post": "CPU", "hop overhead": "CPU+GPU", "idle": "CPU+GPU",
              "cold starts": "CPU+GPU"}
    rows = []
    for ln in r.lines:
        if ln.name not in secs and ln.mixed == 0 and ln.gpu_only == 0:
            continue
        rows.append([ln.name, billed.get(ln.name, ""), f"{secs[ln.name]:.4g}" if ln.name in secs else "",
                     fmt_money(ln.mixed), fmt_money(ln.gpu_only)])
    return rows


def _header(r: EstimateReport) -> str:
    p = r.pricing
    src = f" · from {r.source_report}" if r.source_report else ""
    return (
        f"mixedclf estimate · {fmt_num(r.inputs.requests_per_day)} requests/day · pricing {p.name} "
        f"(CPU {fmt_rate(p.cpu_per_sec)}, GPU {fmt_rate(p.gpu_per_sec)}){src}"
    )


def _sweep_rows(r: EstimateReport) -> list[list[str]]:
    return [
        [fmt_num(s.requests_per_day), fmt_money(s.mixed_per_month, 2), fmt_money(s.gpu_only_per_month, 2),
         fmt_money(s.savings_per_month, 2), fmt_pct(s.savings_pct)]
        for s in r.sweep
    ]


_SWEEP_HEADER = ["requests/day", "mixed / month", "GPU-only / month", "savings / month", "savings %"]


def render_estimate(r: EstimateReport, console: Console, *, advice: bool = True) -> None:
    console.print(f"[bold]{escape(_header(r))}[/bold]")
    t = Table(title="Per request", title_justify="left", **TABLE_STYLE)
    for col, j in (("line", "left"), ("mixed billed at", "left"), ("seconds", "right"), ("mixed", "right"),
                   ("GPU-only", "right")):
        t.add_column(col, justify=j)  # type: ignore[arg-type]
    for row in _line_rows(r):
        t.add_row(*[escape(c) for c in row])
    print_table(console, t)
    t = Table(title="Mixed vs GPU-only", title_justify="left", **TABLE_STYLE)
    for col, j in (("", "left"), ("mixed", "right"), ("GPU-only", "right"), ("savings", "right")):
        t.add_column(col, justify=j)  # type: ignore[arg-type]
    for row in _totals_rows(r):
        t.add_row(*row)
    print_table(console, t)
    console.print(f"[bold]{escape(estimate_summary_line(r))}[/bold]")
    extras = _extras_line(r)
    if extras:
        console.print(escape(extras))
    console.print(f"break-even: {escape(r.break_even_overhead_note)}; {escape(r.break_even_requests_note)}.")
    if r.sweep:
        t = Table(title="Sweep over request rates", title_justify="left", **TABLE_STYLE)
        for col in _SWEEP_HEADER:
            t.add_column(col, justify="right")
        for row in _sweep_rows(r):
            t.add_row(*row)
        print_table(console, t)
    for note in r.notes:
        console.print(f"[dim]note: {escape(note)}[/dim]")
    for a in _advice(r) if advice else []:
        console.print(f"advice: {escape(a.title)} — saves ~{escape(a.saving_text())}: {escape(a.detail)}")


def _advice(r: EstimateReport) -> list:
    try:
        from mixedclf.costs.advice import advise

        return advise(r)
    except Exception:  # pragma: no cover - advice never breaks a rendering
        return []


def estimate_to_markdown(r: EstimateReport, *, advice: bool = True) -> str:
    out = [f"## {_header(r)}", ""]
    out += [md_table(["line", "mixed billed at", "seconds", "mixed", "GPU-only"], _line_rows(r),
                     ["l", "l", "r", "r", "r"]), ""]
    out += [md_table(["", "mixed", "GPU-only", "savings"], _totals_rows(r), ["l", "r", "r", "r"]), ""]
    out += [f"**{estimate_summary_line(r)}**", ""]
    extras = _extras_line(r)
    if extras:
        out += [extras, ""]
    out += [f"Break-even: {r.break_even_overhead_note}; {r.break_even_requests_note}.", ""]
    if r.sweep:
        out += [md_table(_SWEEP_HEADER, _sweep_rows(r), ["r"] * 5), ""]
    out += [f"> note: {n}" for n in r.notes]
    adv = _advice(r) if advice else []
    if adv:
        out += ["", "### Advice", ""] + [f"- **{a.title}** (saves ~{a.saving_text()}): {a.detail}" for a in adv]
    return "\n".join(out).rstrip() + "\n"


def estimate_summary_line(r: EstimateReport) -> str:
    return (
        f"{fmt_num(r.inputs.requests_per_day)} requests/day: mixed {fmt_money(r.mixed_per_day, 2)}/day "
        f"= {fmt_money(r.mixed_per_month, 2)}/month, GPU-only {fmt_money(r.gpu_only_per_day, 2)}/day "
        f"= {fmt_money(r.gpu_only_per_month, 2)}/month, savings {fmt_money(r.savings_per_month, 2)}/month "
        f"({fmt_pct(r.savings_pct)})"
    )
