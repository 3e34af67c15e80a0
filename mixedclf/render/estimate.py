"""`mixedclf estimate` renderings: the rich tables, markdown for PR comments, and the summary line."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mixedclf.costs.estimate import EstimateReport
from mixedclf.costs.fmt import fmt_money, fmt_num, fmt_pct, fmt_rate
from mixedclf.render.tables import TABLE_STYLE, md_table, print_table

NOT_SERVABLE = "not servable"


def _money(x: float | None, digits: int | None = None) -> str:
    if x is None:
        return NOT_SERVABLE
    return fmt_money(x, digits) if digits is not None else fmt_money(x)


def _runpod_settings(r: EstimateReport) -> str:
    i, rp = r.inputs, r.runpod
    assert rp is not None
    gap = f"mean gap {r.mean_gap_s:,.2f} s" if r.mean_gap_s else "no requests"
    start = ("each worker's start billed (Runpod's pricing page)" if i.start_billed else
             "workers' start not billed (Runpod's workers page; --start-billed for the pricing page's rule)")
    front = ("both pipelines pay it" if i.orchestrator_for == "both" else
             "mixed only: GPU-only is called directly, with no front end (--orchestrator-for both to give it one)")
    return (
        f"Runpod model ({i.defaults} defaults: idle {i.default_idle:g} s, workers "
        f"{'0:3' if i.defaults == 'console' else '0:1'} where unset): idle timeout pre {i.idle_pre:g} s, GPU "
        f"{i.idle_gpu:g} s, post {i.idle_post:g} s; cold start GPU {i.cold_start_sec:g} s, CPU "
        f"{i.cold_start_cpu_sec or 0:g} s, {start}; workers GPU {i.gpu_workers[0]}:{i.gpu_workers[1]}, CPU "
        f"{i.cpu_workers[0]}:{i.cpu_workers[1]} (min:max) on {i.cpu_instance} ({i.cpu_vcpus} vCPU); orchestrator "
        f"{i.orchestrator_workers} always-on on {i.orchestrator_instance} ({i.orchestrator_vcpus} vCPU), {front}; "
        f"{rp.arrivals} arrivals over {i.active_hours:g} h/day ({gap}), seed {rp.seed}, {rp.simulated_requests:,} "
        "requests a pass (cost = two passes minus one); every worker run rounded up to the whole second."
    )


def _runpod_rows(r: EstimateReport) -> list[list[str]]:
    rp = r.runpod
    assert rp is not None
    rows = []
    for arch, bills in (("mixed", rp.mixed), ("GPU-only", rp.gpu_only)):
        for e in bills:
            ok = rp.mixed_servable if arch == "mixed" else rp.gpu_only_servable
            where = e.worker.upper()
            rows.append([
                f"{arch} ({where})" if e.name == "gpu-only" else f"{arch} {e.name} ({where})", f"{e.exec_s:.4g}",
                f"{e.min_workers}:{e.max_workers}",
                f"{e.utilization:.0%}" + ("" if e.servable else f" (needs {e.workers_needed})"),
                f"{e.runs_per_request:.3f}", f"{e.billed_s_per_request:.3f}",
                f"{e.mean_wait_s:.3f}/{e.p95_wait_s:.3f}", fmt_money(e.per_day, 2) if ok else NOT_SERVABLE,
            ])
    if rp.orchestrator_workers:
        who = "both" if rp.orchestrator_for == "both" else "mixed"
        rows.append([f"{who} orchestrator (CPU)", "", f"{rp.orchestrator_workers} on", "",
                     "", "", "", fmt_money(rp.orchestrator_per_day, 2)])
    return rows


_RUNPOD_HEADER = ["endpoint", "exec s", "workers", "util", "runs/req", "billed s/req", "wait s mean/p95", "$/day"]


#: Where an estimate's GPU seconds are a CPU's (--from-report of a CPU run): no saving is shown or claimed.
NO_CLAIM = "no saving claimed (the GPU seconds per request are a CPU's: give --gpu-sec)"


def _sv(r: EstimateReport, text: str) -> str:
    return text if r.savings_claim else "—"


def _runpod_totals(r: EstimateReport) -> list[list[str]]:
    rp = r.runpod
    assert rp is not None
    return [
        ["per day", _money(rp.mixed_per_day, 2), _money(rp.gpu_only_per_day, 2),
         _sv(r, _money(rp.savings_per_day, 2))],
        [f"per month ({r.inputs.days_per_month} days)", _money(rp.mixed_per_month, 2),
         _money(rp.gpu_only_per_month, 2), _sv(r, _money(rp.savings_per_month, 2))],
        ["latency s mean/p95", f"{rp.mixed_latency_mean_s:.3f}/{rp.mixed_latency_p95_s:.3f}",
         f"{rp.gpu_only_latency_mean_s:.3f}/{rp.gpu_only_latency_p95_s:.3f}", ""],
    ]


def runpod_summary_line(r: EstimateReport) -> str:
    rp = r.runpod
    assert rp is not None

    def side(name: str, day: float | None, month: float | None, needed: str) -> str:
        if day is None:
            return f"{name} cannot serve this traffic ({needed}): no $ figure"
        return f"{name} {fmt_money(day, 2)}/day = {fmt_money(month, 2)}/month"

    def needs(bills) -> str:
        return ", ".join(f"{e.name} needs {e.workers_needed}+ workers" for e in bills if not e.servable)

    text = (f"Runpod would bill: {side('mixed', rp.mixed_per_day, rp.mixed_per_month, needs(rp.mixed))}, "
            f"{side('GPU-only', rp.gpu_only_per_day, rp.gpu_only_per_month, needs(rp.gpu_only))}")
    if rp.savings_per_day is None or rp.savings_pct is None:
        return text
    verdict = "mixed is cheaper" if rp.savings_per_day > 0 else "mixed is NOT cheaper than GPU-only"
    verdict = f"{verdict} ({fmt_pct(rp.savings_pct)})" if r.savings_claim else NO_CLAIM
    return f"{text}: {verdict}"


def _totals_rows(r: EstimateReport) -> list[list[str]]:
    def diff(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a - b

    return [
        ["per request", _money(r.mixed_per_request), _money(r.gpu_only_per_request),
         _sv(r, _money(diff(r.gpu_only_per_request, r.mixed_per_request)))],
        ["per 1,000 requests", _money(r.mixed_per_1k), _money(r.gpu_only_per_1k),
         _sv(r, _money(diff(r.gpu_only_per_1k, r.mixed_per_1k)))],
        ["per day", _money(r.mixed_per_day, 2), _money(r.gpu_only_per_day, 2), _sv(r, _money(r.savings_per_day, 2))],
        [f"per month ({r.inputs.days_per_month} days)", _money(r.mixed_per_month, 2),
         _money(r.gpu_only_per_month, 2), _sv(r, _money(r.savings_per_month, 2))],
    ]


def _line_rows(r: EstimateReport) -> list[list[str]]:
    i = r.inputs
    secs = {"pre": i.pre_sec, "inference": i.gpu_sec, "post": i.post_sec}
    billed = {"pre": "CPU", "inference": "GPU", "post": "CPU", "hop overhead": "CPU+GPU"}
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
    cpu_flag = " illustrative" if p.illustrative or p.cpu_illustrative else ""
    gpu_flag = " illustrative" if p.illustrative else ""
    whole = " · ILLUSTRATIVE rates, not a price list" if p.illustrative else ""
    if r.inputs.cache_hit_rate:
        whole += f" · cache hit rate {r.inputs.cache_hit_rate:g} (GPU s/request x {1 - r.inputs.cache_hit_rate:g})"
    return (
        f"mixedclf estimate · {fmt_num(r.inputs.requests_per_day)} requests/day · billing {r.billing} · "
        f"pricing {p.name} "
        f"(CPU{cpu_flag} {fmt_rate(p.cpu_per_sec)}, GPU{gpu_flag} {fmt_rate(p.gpu_per_sec)}){whole}{src}"
    )


def _sweep_rows(r: EstimateReport) -> list[list[str]]:
    runpod = r.billing == "runpod"
    return [
        [fmt_num(s.requests_per_day), fmt_money(s.ideal_mixed_per_month, 2), fmt_money(s.ideal_gpu_only_per_month, 2),
         *([_money(s.runpod_mixed_per_month, 2), _money(s.runpod_gpu_only_per_month, 2)] if runpod else []),
         _sv(r, fmt_pct(s.savings_pct)) if s.savings_pct is not None else NOT_SERVABLE]
        for s in r.sweep
    ]


_SWEEP_HEADER = ["requests/day", "ideal mixed / month", "ideal GPU-only / month", "Runpod mixed / month",
                 "Runpod GPU-only / month", "savings % (headline)"]


def _sweep_header(r: EstimateReport) -> list[str]:
    """Runpod's columns only where something was simulated (runpod billing)."""
    return _SWEEP_HEADER if r.billing == "runpod" else [h for h in _SWEEP_HEADER if not h.startswith("Runpod")]


def _sweep_title(r: EstimateReport) -> str:
    return "Sweep over request rates (" + ("both billing models" if r.billing == "runpod" else "ideal billing") + ")"


NOT_SIMULATED = "Runpod billing not simulated under ideal billing: pass --billing runpod to see what Runpod would bill."


def _table(console: Console, title: str, header: list[str], rows: list[list[str]], left: int = 1) -> None:
    t = Table(title=title, title_justify="left", **TABLE_STYLE)
    for k, col in enumerate(header):
        t.add_column(col, justify="left" if k < left else "right")
    for row in rows:
        t.add_row(*[escape(c) for c in row])
    print_table(console, t)


def render_estimate(r: EstimateReport, console: Console, *, advice: bool = True) -> None:
    console.print(f"[bold]{escape(_header(r))}[/bold]")
    _table(console, "Per request (ideal: busy seconds x rate)", ["line", "mixed billed at", "seconds", "mixed",
                                                                  "GPU-only"], _line_rows(r), left=2)
    _table(console, f"Mixed vs GPU-only ({r.billing})", ["", "mixed", "GPU-only", "savings"], _totals_rows(r))
    console.print(f"[bold]{escape(estimate_summary_line(r))}[/bold]")
    if r.savings_claim:
        console.print(f"break-even: {escape(r.break_even_overhead_note)}; {escape(r.break_even_requests_note)}.")
    if r.runpod is not None:
        _table(console, "What Runpod would bill (same inputs)", _RUNPOD_HEADER, _runpod_rows(r))
        _table(console, "", ["Runpod", "mixed", "GPU-only", "savings"], _runpod_totals(r))
        console.print(f"[bold]{escape(runpod_summary_line(r))}[/bold]")
        console.print(escape(_runpod_settings(r)))
        if r.savings_claim:
            console.print(f"break-even: {escape(r.runpod.break_even_requests_note)}.")
        for w in r.runpod.warnings:
            console.print(f"[yellow]warning: {escape(w)}[/yellow]")
    else:
        console.print(escape(NOT_SIMULATED))
    if r.sweep:
        _table(console, _sweep_title(r), _sweep_header(r), _sweep_rows(r), left=0)
    for note in r.notes:
        console.print(f"[dim]note: {escape(note)}[/dim]")
    for a in _advice(r) if advice else []:
        console.print(f"advice: {escape(a.title)} — {escape(a.claim_text())}: {escape(a.detail)}")


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
    if r.savings_claim:
        out += [f"Break-even: {r.break_even_overhead_note}; {r.break_even_requests_note}.", ""]
    if r.runpod is not None:
        out += ["### What Runpod would bill (same inputs)", ""]
        out += [md_table(_RUNPOD_HEADER, _runpod_rows(r), ["l"] + ["r"] * (len(_RUNPOD_HEADER) - 1)), ""]
        out += [md_table(["Runpod", "mixed", "GPU-only", "savings"], _runpod_totals(r), ["l", "r", "r", "r"]), ""]
        out += [f"**{runpod_summary_line(r)}**", "", _runpod_settings(r), ""]
        if r.savings_claim:
            out += [f"Break-even: {r.runpod.break_even_requests_note}.", ""]
        out += [f"> warning: {w}" for w in r.runpod.warnings] + ([""] if r.runpod.warnings else [])
    else:
        out += [NOT_SIMULATED, ""]
    if r.sweep:
        header = _sweep_header(r)
        out += [md_table(header, _sweep_rows(r), ["r"] * len(header)), ""]
    out += [f"> note: {n}" for n in r.notes]
    adv = _advice(r) if advice else []
    if adv:
        out += ["", "### Advice", ""] + [f"- **{a.title}** ({a.claim_text()}): {a.detail}" for a in adv]
    return "\n".join(out).rstrip() + "\n"


def estimate_summary_line(r: EstimateReport) -> str:
    if r.mixed_per_day is None or r.gpu_only_per_day is None or r.savings_pct is None:
        return f"{fmt_num(r.inputs.requests_per_day)} requests/day ({r.billing} billing): " + (
            runpod_summary_line(r).removeprefix("Runpod would bill: ") if r.runpod is not None else "no $ figure")
    return (
        f"{fmt_num(r.inputs.requests_per_day)} requests/day ({r.billing} billing): mixed {fmt_money(r.mixed_per_day, 2)}/day "
        f"= {fmt_money(r.mixed_per_month, 2)}/month, GPU-only {fmt_money(r.gpu_only_per_day, 2)}/day "
        f"= {fmt_money(r.gpu_only_per_month, 2)}/month, "
        + (f"savings {fmt_money(r.savings_per_month, 2)}/month ({fmt_pct(r.savings_pct)})" if r.savings_claim
           else NO_CLAIM)
    )
