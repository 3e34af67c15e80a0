"""Renderings of a run report: rich tables for the terminal, markdown for PR comments, one summary line."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mixedclf.costs.accounting import CostBreakdown, CostTotals, RunMeasurements
from mixedclf.costs.budget import budget_line
from mixedclf.costs.estimate import EstimateReport
from mixedclf.costs.fmt import fmt_money, fmt_pct, fmt_rate, fmt_s, money_digits
from mixedclf.costs.report import AnyReport, ClassifyReport, LabelAggregate
from mixedclf.render.estimate import estimate_summary_line, estimate_to_markdown, render_estimate
from mixedclf.render.runpod_bill import bill_lines, bill_markdown, bill_table
from mixedclf.render.tables import TABLE_STYLE, md_table, print_table


def _savings_pct_text(t: CostTotals, cost: CostBreakdown | None = None) -> str:
    if cost is not None and not cost.savings_claim:
        return "—"
    return fmt_pct(t.savings_pct) if t.gpu_only > 0 else "—"


def _verdict_pct(t: CostTotals) -> str:
    """The size of a "saves" / "costs more by" verdict, of the GPU-only cost: the verb carries the sign."""
    return fmt_pct(abs(t.savings_pct)) if t.gpu_only > 0 else "—"


def _savings_text(t: CostTotals, cost: CostBreakdown, digits: int | None = None) -> str:
    return fmt_money(t.savings, digits) if cost.savings_claim else "—"


def gpu_seconds_label(cost: CostBreakdown) -> str | None:
    """What the GPU-priced seconds are when they are not a GPU's: None on an accelerator."""
    if not cost.inference_on_cpu:
        return None
    if cost.gpu_speedup is not None:
        return f"CPU seconds ÷ {cost.gpu_speedup:g} (--gpu-speedup) priced at the GPU rate"
    return "CPU seconds priced at the GPU rate"


def _column_titles(cost: CostBreakdown) -> tuple[str, str]:
    # every dollar column says whether its seconds were measured or derived (a counterfactual from them)
    m = "mixed" + (" (derived)" if cost.mixed_is == "counterfactual" else " (measured)")
    g = "GPU-only" + (" (measured)" if cost.gpu_only_is == "measured" else " (derived)")
    if cost.inference_on_cpu:
        g += " (CPU s ÷ %g at GPU rate)" % cost.gpu_speedup if cost.gpu_speedup else " (CPU s at GPU rate)"
    return m, g


def headline(report: ClassifyReport) -> str:
    """The one sentence that compares mixed with GPU-only, or says why it does not."""
    cost = report.cost
    ppu = cost.pay_per_use
    if not cost.savings_claim:
        return (f"mixed {fmt_money(ppu.mixed)} vs GPU-only {fmt_money(ppu.gpu_only)} (pay-per-use; "
                f"{gpu_seconds_label(cost)}): no saving is claimed from CPU seconds; give --gpu-speedup X or "
                f"compare with a report measured on a GPU. Cost per 1,000 rows {fmt_money(ppu.mixed_per_1k)}")
    verdict = "saves" if ppu.savings >= 0 else "costs more by"
    scaled = f"; {gpu_seconds_label(cost)}" if cost.inference_on_cpu else ""
    prov = cost.provisioned
    # the headline never contradicts the provisioned bill printed under it: where the two billing models
    # disagree, it says so
    other = ""
    if (prov.savings >= 0) != (ppu.savings >= 0):
        p_verdict = "saves" if prov.savings >= 0 else "costs more by"
        other = (f"; on the provisioned bill mixed {p_verdict} {fmt_money(abs(prov.savings))} "
                 f"({_verdict_pct(prov)})")
    return (f"mixed {fmt_money(ppu.mixed)} vs GPU-only {fmt_money(ppu.gpu_only)} (pay-per-use{scaled}): "
            f"mixed {verdict} {fmt_money(abs(ppu.savings))} ({_verdict_pct(ppu)}){other}; "
            f"cost per 1,000 rows {fmt_money(ppu.mixed_per_1k)} vs {fmt_money(ppu.gpu_only_per_1k)}")


def bill_line(report: ClassifyReport) -> str:
    """What the provisioned bill measured: which workers, held from when, the idle tail, the rounding."""
    cost, m = report.cost, report.measurements
    parts = cost.provisioned_parts
    if not parts.billed_gpu_worker_s:  # a version-1 report: held windows without idle tail or rounding
        return "provisioned: held windows as measured (no idle tail, no rounding: a version-1 report)"
    idle = f"+ {cost.idle_timeout_s:g} s idle tail, rounded up per worker"
    if cost.mode == "mixed" and m.process_s is not None:
        gpu = f"GPU worker {parts.billed_gpu_worker_s[0]:,} s (process start to end {fmt_s(parts.gpu_held_s)} s"
    elif cost.mode == "mixed":
        gpu = f"GPU worker {parts.billed_gpu_worker_s[0]:,} s (model load to last batch {fmt_s(parts.gpu_held_s)} s"
    else:
        gpu = f"GPU worker {parts.billed_gpu_worker_s[0]:,} s (counterfactual {fmt_s(parts.gpu_held_s)} s"
    cpu = ""
    if parts.billed_cpu_worker_s:
        cpu = f"; CPU {len(parts.billed_cpu_worker_s)} × " + "/".join(
            f"{b:,}" for b in sorted(set(parts.billed_cpu_worker_s))) + " s"
    return (f"provisioned bill: {gpu} {idle}){cpu}; GPU-only {parts.billed_gpu_only_s or 0:,} s "
            f"(start-up {fmt_s(m.startup_s)} s + every stage in series {idle.replace('+ ', '+ the ')})")


def run_budget_line(report: ClassifyReport) -> str | None:
    """With --max-cost: the budget against the job's bill (this run's measured provisioned column)."""
    prov = report.cost.provisioned
    return budget_line(report.extra, prov.mixed if report.cost.mixed_is == "measured" else prov.gpu_only)


def startup_line(report: ClassifyReport) -> str | None:
    """Process start to the first micro-batch, split where it went: paid again by every cold start."""
    m = report.measurements
    if m.cold_start_s is None:
        return None
    load = m.stage_busy("model_load")
    rest = max(0.0, m.cold_start_s - m.startup_s - load)
    return (f"start-up {fmt_s(m.cold_start_s)} s to the first micro-batch (paid by every cold start): "
            f"{fmt_s(m.startup_s)} s before the model load (imports, checks, first reads), {fmt_s(load)} s model "
            f"load, {fmt_s(rest)} s more until the first chunk was preprocessed")


def work_line(report: ClassifyReport) -> str | None:
    w, cal = report.work, report.calibration
    if w is None:
        return None
    text = (f"work: {w.rows:,} rows, {w.real_tokens:,} real / {w.padded_tokens:,} padded tokens, "
            f"{w.micro_batches:,} micro-batches, {w.gflop:,.4g} GFLOP ({w.shape.layers} layers × {w.shape.hidden} "
            f"hidden)")
    if cal is not None:
        text += (f"; calibration {cal.s_per_gflop:.4g} s/GFLOP → {w.gflop * cal.s_per_gflop:,.4g} s of work "
                 f"(inference measured {fmt_s(report.measurements.stage_busy('inference'))} s)")
    return text


# -------------------------------------------------------------------------------- rich rendering


def _device_text(r) -> str:
    return f"{r.device} ×{r.workers}" if r.workers > 1 else r.device


def _rate_text(r) -> str:
    return f"{r.billing.upper()} {r.rate:.6g}"


def _stage_table(cost: CostBreakdown) -> Table:
    t = Table(
        title="Per stage (pay-per-use: busy seconds × rate; model load is in the provisioned totals)",
        title_justify="left",
        **TABLE_STYLE,
    )
    for col in ("stage", "device", "items", "busy s", "wall s", "$/s", "cost", "GPU-only"):
        t.add_column(col, justify="left" if col in ("stage", "device", "$/s") else "right", no_wrap=True)
    d = money_digits([x for r in cost.stages for x in (r.cost, r.gpu_only_cost)])
    for r in cost.stages:
        t.add_row(
            escape(r.name),
            escape(_device_text(r)),
            f"{r.items:,}",
            fmt_s(r.seconds),
            fmt_s(r.wall_s),
            _rate_text(r),
            fmt_money(r.cost, d) if r.pay_per_use else "—",
            fmt_money(r.gpu_only_cost, d) if r.pay_per_use else "—",
        )
    return t


def _totals_table(cost: CostBreakdown) -> Table:
    mixed_t, gpu_t = _column_titles(cost)
    t = Table(title="Mixed vs GPU-only", title_justify="left", **TABLE_STYLE)
    t.add_column("billing", no_wrap=True)
    for col in (mixed_t, gpu_t, "savings", "%", "mixed /1k", "GPU-only /1k"):
        t.add_column(col, justify="right")
    tots = (("pay-per-use", cost.pay_per_use), ("provisioned", cost.provisioned))
    d = money_digits([x for _, tot in tots for x in (tot.mixed, tot.gpu_only, tot.savings)])
    d1k = money_digits([x for _, tot in tots for x in (tot.mixed_per_1k, tot.gpu_only_per_1k)])
    for label, tot in tots:
        t.add_row(
            label,
            fmt_money(tot.mixed, d),
            fmt_money(tot.gpu_only, d),
            _savings_text(tot, cost, d),
            _savings_pct_text(tot, cost),
            fmt_money(tot.mixed_per_1k, d1k),
            fmt_money(tot.gpu_only_per_1k, d1k),
        )
    return t


def _projection_line(cost: CostBreakdown) -> str | None:
    if cost.requests_per_day is None or cost.pay_per_use.mixed_per_month is None:
        return None
    parts = []
    for label, tot in (("pay-per-use", cost.pay_per_use), ("provisioned", cost.provisioned)):
        parts.append(
            f"{label} mixed {fmt_money(tot.mixed_per_month, 2)} vs GPU-only {fmt_money(tot.gpu_only_per_month, 2)}"
        )
    return (
        f"at {cost.requests_per_day:,.0f} rows/day ({cost.days_per_month}-day month): " + "; ".join(parts)
    )


def _labels_table(agg: LabelAggregate, rows: int) -> Table:
    t = Table(title="Labels", title_justify="left", **TABLE_STYLE)
    t.add_column("label")
    t.add_column("rows", justify="right")
    t.add_column("share", justify="right")
    total = sum(agg.label_counts.values()) or rows or 1
    for label, n in sorted(agg.label_counts.items(), key=lambda kv: (-kv[1], kv[0])):
        t.add_row(escape(str(label)), f"{n:,}", f"{n / total * 100:.1f}%")
    return t


def model_device_name(m: RunMeasurements) -> str:
    """What the model ran on, in words that fit it: "GPU" on an accelerator, "CPU (GPU-priced)" on a CPU, whose
    seconds the cost model bills at the GPU rate."""
    devices = {s.device.split(":")[0] for s in m.stages if s.name == "inference"}
    if devices and devices <= {"cpu"}:
        return "CPU (GPU-priced)"
    return "MPS" if devices == {"mps"} else "GPU"


def _utilization_line(cost: CostBreakdown, m: RunMeasurements) -> str:
    parts = [
        f"{model_device_name(m)} utilization {cost.gpu_utilization * 100:.1f}% "
        f"(inference busy {fmt_s(m.stage_busy('inference'))} s / model load to last batch {fmt_s(m.gpu_held_s)} s)"
    ]
    if cost.cpu_pool_utilization is not None:
        parts.append(
            f"CPU pool utilization {cost.cpu_pool_utilization * 100:.1f}% "
            f"({m.cpu_pool_workers} workers × {fmt_s(m.cpu_pool_held_s)} s)"
        )
    parts.append(f"throughput {cost.throughput:,.1f} rows/s")
    return " · ".join(parts)


def _buckets_text(agg: LabelAggregate) -> str:
    order = ["high", "medium", "low"]
    keys = order + sorted(k for k in agg.bucket_counts if k not in order)
    return ", ".join(f"{k} {agg.bucket_counts[k]:,}" for k in keys if k in agg.bucket_counts)


def _advice_for(report: ClassifyReport) -> list:
    try:
        from mixedclf.costs.advice import advise

        return advise(report)
    except Exception:  # advice is a hint; never let it break a report
        return []


def precision_text(report: ClassifyReport) -> str:
    """"precision bf16 (CPU has AVX512_BF16, measured 1.96x fp32) on torch", from the run's settings."""
    s = report.settings
    if "precision" not in s:
        return ""
    reason = str(s.get("precision_reason") or "").removeprefix(f"{s['precision']}: ")
    return f"precision {s['precision']}" + (f" ({reason})" if reason else "") + (
        f" on {s['backend']}" if s.get("backend") else "")


def render_classify(report: ClassifyReport, console: Console, *, advice: bool = True) -> None:
    cost = report.cost
    p = report.pricing
    if report.resumed is not None:
        console.print(f"[bold yellow]{escape(report.resumed.describe())}[/bold yellow]")
    if report.stopped is not None:
        console.print(f"[bold yellow]partial run: {escape(report.stopped)}[/bold yellow]")
    if report.job is not None:
        console.print(escape(report.job.describe()))
    console.print(
        f"[bold]mixedclf classify[/bold] · model {escape(report.model)} · mode {report.mode} · "
        f"device {escape(report.device)} · engine {escape(report.engine)}"
    )
    if report.cache is not None:
        console.print(escape(report.cache.describe()))
    if precision_text(report):
        console.print(escape(precision_text(report)), highlight=False, soft_wrap=True)
    console.print(
        f"rows {report.rows_in:,} in → {report.rows_out:,} out"
        + (f" ({report.rows_errored:,} errored)" if report.rows_errored else "")
        + f" in {report.measurements.wall_s:,.2f} s · pricing [bold]{escape(p.name)}[/bold] "
        f"(CPU {fmt_rate(p.cpu_per_sec)} {escape(p.cpu_desc)}; GPU {fmt_rate(p.gpu_per_sec)} {escape(p.gpu_desc)})"
    )
    print_table(console, _stage_table(cost))
    print_table(console, _totals_table(cost))
    console.print(f"[bold]{escape(headline(report))}[/bold]")
    console.print(escape(bill_line(report)))
    startup = startup_line(report)
    if startup:
        console.print(escape(startup))
    budget = run_budget_line(report)
    if budget:
        console.print(escape(budget))
    work = work_line(report)
    if work:
        console.print(escape(work))
    projection = _projection_line(cost)
    if projection:
        console.print(projection)
    console.print(_utilization_line(cost, report.measurements))
    if report.runpod is not None:
        print_table(console, bill_table(report.runpod))
        for line in bill_lines(report.runpod):
            console.print(escape(line), highlight=False, soft_wrap=True)
    if report.aggregate.label_counts:
        print_table(console, _labels_table(report.aggregate, report.rows_out))
    if report.aggregate.label_counts or report.aggregate.bucket_counts:
        console.print(
            f"mean confidence {report.aggregate.mean_confidence:.3f}; "
            f"confidence buckets: {_buckets_text(report.aggregate) or '—'}"
        )
    for note in cost.notes:
        console.print(f"[dim]note: {escape(note)}[/dim]")
    if advice:
        items = _advice_for(report)
        if items:
            console.print("[bold]Advice[/bold] (largest estimated saving first)")
            for a in items:
                console.print(f"  • {escape(a.title)} — {escape(a.claim_text())}: {escape(a.detail)}")


def render_report(report: AnyReport, console: Console, *, advice: bool = True) -> None:
    """Print a classify or estimate report as rich tables."""
    if isinstance(report, EstimateReport):
        render_estimate(report, console, advice=advice)
    else:
        render_classify(report, console, advice=advice)


# ----------------------------------------------------------------------------------- markdown


def classify_to_markdown(report: ClassifyReport, *, advice: bool = True) -> str:
    cost, p, m = report.cost, report.pricing, report.measurements
    out = [
        f"## mixedclf classify: {report.model}",
        "",
        *([f"> **{report.resumed.describe()}**", ""] if report.resumed is not None else []),
        *([f"> **partial run: {report.stopped}**", ""] if report.stopped is not None else []),
        *([report.job.describe() + ".", ""] if report.job is not None else []),
        f"{report.rows_out:,} rows in {m.wall_s:,.2f} s ({cost.throughput:,.1f} rows/s), mode `{report.mode}`, "
        f"device `{report.device}`, pricing `{p.name}` (CPU {fmt_rate(p.cpu_per_sec)}, GPU {fmt_rate(p.gpu_per_sec)}).",
        "",
        *([precision_text(report) + ".", ""] if precision_text(report) else []),
        *([report.cache.describe() + ".", ""] if report.cache is not None else []),
        *(bill_markdown(report.runpod) if report.runpod is not None else []),
        md_table(
            ["stage", "billed", "device", "workers", "items", "busy s", "wall s", "rate", "cost", "GPU-only"],
            [
                [
                    r.name,
                    r.billing.upper(),
                    f"`{r.device}`",
                    str(r.workers),
                    f"{r.items:,}",
                    fmt_s(r.seconds),
                    fmt_s(r.wall_s),
                    fmt_rate(r.rate),
                    fmt_money(r.cost) if r.pay_per_use else "provisioned",
                    fmt_money(r.gpu_only_cost) if r.pay_per_use else "provisioned",
                ]
                for r in cost.stages
            ],
            ["l", "l", "l", "r", "r", "r", "r", "r", "r", "r"],
        ),
        "",
    ]
    mixed_t, gpu_t = _column_titles(cost)
    header = ["billing", mixed_t, gpu_t, "savings", "savings %", "mixed / 1k", "GPU-only / 1k"]
    monthly = cost.requests_per_day is not None and cost.pay_per_use.mixed_per_month is not None
    if monthly:
        header += [f"mixed / month @ {cost.requests_per_day:,.0f}/day", "GPU-only / month"]
    rows = []
    for label, tot in (("pay-per-use", cost.pay_per_use), ("provisioned", cost.provisioned)):
        row = [
            label,
            fmt_money(tot.mixed),
            fmt_money(tot.gpu_only),
            _savings_text(tot, cost),
            _savings_pct_text(tot, cost),
            fmt_money(tot.mixed_per_1k),
            fmt_money(tot.gpu_only_per_1k),
        ]
        if monthly:
            row += [fmt_money(tot.mixed_per_month, 2), fmt_money(tot.gpu_only_per_month, 2)]
        rows.append(row)
    out += [md_table(header, rows, ["l"] + ["r"] * (len(header) - 1)), ""]
    out += [headline(report) + ".", "", bill_line(report) + ".", ""]
    startup = startup_line(report)
    if startup:
        out += [startup + ".", ""]
    budget = run_budget_line(report)
    if budget:
        out += [budget + ".", ""]
    work = work_line(report)
    if work:
        out += [work + ".", ""]
    out += [_utilization_line(cost, m), ""]
    agg = report.aggregate
    if agg.label_counts:
        total = sum(agg.label_counts.values()) or 1
        out += [
            md_table(
                ["label", "rows", "share"],
                [
                    [str(k), f"{v:,}", f"{v / total * 100:.1f}%"]
                    for k, v in sorted(agg.label_counts.items(), key=lambda kv: (-kv[1], kv[0]))
                ],
                ["l", "r", "r"],
            ),
            "",
            f"Mean confidence {agg.mean_confidence:.3f}; buckets: {_buckets_text(agg) or '—'}.",
            "",
        ]
    for note in cost.notes:
        out.append(f"> note: {note}")
    if advice:
        items = _advice_for(report)
        if items:
            out += ["", "### Advice", ""]
            out += [f"- **{a.title}** ({a.claim_text()}): {a.detail}" for a in items]
    return "\n".join(out).rstrip() + "\n"


def report_to_markdown(report: AnyReport, *, advice: bool = True) -> str:
    if isinstance(report, EstimateReport):
        return estimate_to_markdown(report, advice=advice)
    return classify_to_markdown(report, advice=advice)


def summary_line(report: AnyReport) -> str:
    """One line for --quiet / cron: each dollar figure names its billing model and whether it was measured."""
    if isinstance(report, EstimateReport):
        return estimate_summary_line(report)
    from mixedclf.costs.summary import labelled_totals

    m = report.measurements
    ppu, prov = labelled_totals(report.cost, "pay-per-use"), labelled_totals(report.cost, "provisioned")
    rate = report.rows_out / m.wall_s if m.wall_s > 0 else 0.0
    err = f", {report.rows_errored:,} errored" if report.rows_errored else ""
    partial = " PARTIAL (resumed run: cost covers this process's rows only);" if report.resumed else ""
    if report.stopped:
        partial += " PARTIAL (stopped at the cost budget: the rows written before the stop);"
    if report.job is not None:
        partial += f" {report.job.describe()};"
    claim = f"savings {_savings_pct_text(report.cost.pay_per_use)}" if ppu.savings_claimed else "no saving claimed"
    return (
        f"{report.rows_out:,} rows{err} in {m.wall_s:,.2f} s ({rate:,.1f} rows/s);{partial} "
        f"pay-per-use: mixed {fmt_money(ppu.mixed)} {ppu.mixed_is} ({fmt_money(ppu.mixed_per_1k)}/1k rows) vs "
        f"GPU-only {fmt_money(ppu.gpu_only)} {ppu.gpu_only_is} ({ppu.gpu_seconds_are}; {claim}); "
        f"provisioned: mixed {fmt_money(prov.mixed)} {prov.mixed_is} ({fmt_money(prov.mixed_per_1k)}/1k rows)"
    )
