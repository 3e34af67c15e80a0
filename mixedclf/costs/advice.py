"""Advice: from a report, the few changes that would cut cost most, each with an estimated saving.

Answers the original design's operating questions from numbers: is the CPU pool sized right (GPU
starved or pool idle), is the GPU idle timeout right, can repeated work be skipped (dedup), does
a stage belong on the other device, is the mixed design worth it at this traffic.

Pure module: no torch, no pools. Each rule is a plain function of the report; the estimated
saving is what the same measurements would cost after the change (docs/cost-model.md, "Advice").
"""

from __future__ import annotations

import math

from pydantic import BaseModel

from mixedclf.costs.check import DEFAULT_MAX_INCREASE_PCT
from mixedclf.costs.fmt import fmt_money, format_pct
from mixedclf.costs.runpod import mixed_bill, orchestrator_per_day

#: ``extra`` key of a classify report for the dedup rule: the fraction 0..1 of rows whose text repeats an earlier
#: row of their chunk. With ``settings["dedup"]`` true: no advice.
DUPLICATE_KEY = "duplicate_fraction"
#: ``extra`` key: share of the padded tokens the device computed that were padding (0..1).
PADDING_KEY = "padding_fraction"


class GateEffect(BaseModel):
    """What `mixedclf check` would see after a classify advice is followed, in the figures it compares: the
    measured cost per 1,000 rows, and the work-priced one its verdict rests on when the reports count work
    (costs/check.py). An advice whose measured change is below what check resolves, or whose work-priced change
    differs from it by as much (cutting padding cuts counted FLOPs more than seconds), says its effect must be
    measured with `mixedclf check run`: the one comparison of measured CPU seconds over interleaved runs."""

    basis: str  # the billing model of the measured figure (the advice's own)
    per_1k_now: float  # the run's measured cost per 1,000 rows, of the architecture it ran
    change_pct: float  # its predicted change (negative: cheaper)
    work_per_1k_now: float | None = None  # the work-priced cost per 1,000 rows; None: the report counts no work
    work_change_pct: float | None = None  # its predicted change (an upper bound where the saving is one)
    resolves_pct: float = DEFAULT_MAX_INCREASE_PCT  # the smallest change check tells from noise: its threshold
    check_run: bool = False  # the effect must be measured with `mixedclf check run`

    def text(self) -> str:
        measured = (f"measured cost per 1,000 rows {format_pct(self.change_pct)} (from {fmt_money(self.per_1k_now)}, "
                    f"{self.basis})")
        work = ""
        if self.work_per_1k_now is not None and self.work_change_pct is not None:
            moved = "unchanged" if self.work_change_pct == 0 else format_pct(self.work_change_pct)
            work = f", work-priced {moved} (from {fmt_money(self.work_per_1k_now)}; the verdict rests on it)"
        line = f"check would see: {measured}{work}"
        if not self.check_run:
            return line
        if abs(self.change_pct) < self.resolves_pct:
            why = f"below the {self.resolves_pct:g}% that check resolves"
        else:
            why = "the work-priced verdict would not match the seconds it saves"
        return f"{line}; {why}: measure its effect with `mixedclf check run`"


class Advice(BaseModel):
    key: str  # stable id of the rule, for tests and tooling
    title: str
    detail: str
    saving: float  # dollars, in the unit below
    per: str  # "per 1,000 rows" | "per month"
    basis: str  # "provisioned" | "pay-per-use" | "runpod"
    # False when the saving would rest on CPU seconds priced as GPU seconds (inference ran on a CPU, no
    # --gpu-speedup): the advice stands, no dollar figure is claimed for it
    claimed: bool = True
    gate: GateEffect | None = None  # classify advice: the effect in the figures `mixedclf check` compares

    def saving_text(self) -> str:
        return f"{fmt_money(self.saving)} {self.per}"

    def claim_text(self) -> str:
        """"saves ~$0.0012 per 1,000 rows (pay-per-use, derived); check would see: ...", or why no saving is
        claimed."""
        if not self.claimed:
            text = "no saving claimed: inference ran on a CPU, so its seconds are not a GPU's"
            return text + ("; measure its effect with `mixedclf check run`" if self.gate is not None else "")
        text = f"saves ~{self.saving_text()} ({self.basis}, derived)"
        return text if self.gate is None else f"{text}; {self.gate.text()}"


def advise(report, limit: int = 4) -> list[Advice]:
    """Advice for a ClassifyReport or an EstimateReport, largest saving first."""
    if report.kind == "estimate" and not getattr(report, "savings_claim", True):
        return []  # its GPU seconds are a CPU's: every saving it could advise would be CPU-seconds arithmetic
    items = _advise_estimate(report) if report.kind == "estimate" else _advise_classify(report)
    items = [a for a in items if a.saving > 0 and math.isfinite(a.saving)]
    if report.kind == "classify":
        items = [a.model_copy(update={"gate": gate_effect(report, a)}) for a in items]
    items.sort(key=lambda a: -a.saving)
    if (not report.cost.savings_claim) if report.kind == "classify" else (not getattr(report, "savings_claim", True)):
        items = [a.model_copy(update={"claimed": False}) for a in items]
    return items[:limit]


# ------------------------------------------------------------------------------------- classify

def _work_change(report, key: str) -> float:
    """How a classify rule changes the counted work per 1,000 rows (what check's work verdict compares), as a
    fraction of it: rules not named here leave it as it is (the same rows through the same model, only elsewhere
    or with other workers). The padding and dedup figures are upper bounds, as their savings are."""
    if key == "deduplicate":
        return -float(report.extra.get(DUPLICATE_KEY) or 0.0)
    if key == "cut-padding":
        return -float(report.extra.get(PADDING_KEY) or 0.0)
    return 0.0


def gate_effect(report, advice: Advice) -> GateEffect:
    """The advice's expected effect in the figures `mixedclf check` compares (see GateEffect)."""
    from mixedclf.costs.check_metrics import has_work, work_value

    t = report.cost.totals(advice.basis)
    now = t.mixed_per_1k if report.mode == "mixed" else t.gpu_only_per_1k
    change = -advice.saving / now * 100 if now > 0 else 0.0
    work_now = work_change = None
    if has_work(report):
        work_now = work_value(report, "cost_per_1k", report.calibration.s_per_gflop)
        work_change = _work_change(report, advice.key) * 100
    effect = GateEffect(basis=advice.basis, per_1k_now=now, change_pct=change, work_per_1k_now=work_now,
                        work_change_pct=work_change)
    unresolved = abs(change) < effect.resolves_pct
    # the work-priced verdict would show a change the seconds do not (or hide one they do)
    misjudged = work_change is not None and work_change != 0 and abs(work_change - change) >= effect.resolves_pct
    return effect.model_copy(update={"check_run": unresolved or misjudged or not report.cost.savings_claim})


def _advise_classify(report) -> list[Advice]:
    m = report.measurements
    cost = report.cost
    n = m.items
    if n <= 0:
        return []
    c, g = cost.cpu_per_sec, cost.gpu_per_sec
    k = 1000.0 / n  # per run -> per 1,000 rows
    per = "per 1,000 rows"
    out: list[Advice] = []

    load = m.stage_busy("model_load")
    inf = m.stage_busy("inference")
    pre = m.stage_busy("preprocess")
    main = m.stage_busy("read") + m.stage_busy("postprocess") + m.stage_busy("write")
    w, held_pool, held_gpu = m.cpu_pool_workers, m.cpu_pool_held_s, m.gpu_held_s

    if m.mode == "mixed" and w > 0 and inf > 0:
        per_worker = pre / w
        # A: the pool cannot keep up, the GPU waits (raise --cpu-workers)
        if cost.gpu_utilization < 0.7 and per_worker > inf * 1.05:
            w2 = max(w + 1, math.ceil(pre / inf))
            gain = per_worker - max(inf, pre / w2)  # seconds the GPU stops waiting
            g2 = max(load + inf, held_gpu - gain)
            p2 = max(pre / w2, held_pool - gain)
            # the GPU is released `held_gpu - g2` seconds sooner; each extra worker also pays its idle tail
            saving = (w * held_pool - w2 * p2) * c + (held_gpu - g2) * g - (w2 - w) * cost.idle_timeout_s * c
            out.append(
                Advice(
                    key="raise-cpu-workers",
                    title=f"raise --cpu-workers from {w} to {w2}",
                    detail=(
                        f"GPU utilization is {cost.gpu_utilization:.0%}: {w} workers need {per_worker:.2f} s each "
                        f"for {pre:.2f} s of preprocessing while inference needs {inf:.2f} s, so the GPU waits; "
                        f"{w2} workers keep it fed (if the host has the cores)."
                    ),
                    saving=saving * k,
                    per=per,
                    basis="provisioned",
                )
            )
        # B: the pool mostly waits on the GPU (lower --cpu-workers)
        util = cost.cpu_pool_utilization
        if util is not None and util < 0.5 and per_worker < inf:
            w2 = max(1, math.ceil(pre / inf))
            if w2 < w:
                out.append(
                    Advice(
                        key="lower-cpu-workers",
                        title=f"lower --cpu-workers from {w} to {w2}",
                        detail=(
                            f"the CPU pool is {util:.0%} busy ({pre:.2f} s of work over {w} × {held_pool:.2f} s held); "
                            f"{w2} workers still keep up with {inf:.2f} s of inference."
                        ),
                        saving=(w - w2) * held_pool * c * k,
                        per=per,
                        basis="provisioned",
                    )
                )
        # C: CPU work in the main process holds the GPU host
        if main > 0.1 * held_gpu and cost.gpu_utilization < 0.9 and g > c:
            movable = min(main, max(0.0, held_gpu - load - inf))
            out.append(
                Advice(
                    key="move-main-process-work",
                    title="move read/postprocess/write off the GPU host's critical path",
                    detail=(
                        f"{main:.2f} s of CPU work (read, postprocess, write) runs in the process that drives the GPU "
                        f"({main / held_gpu:.0%} of the {held_gpu:.2f} s the GPU is held); overlapping it with "
                        "inference (a writer thread, postprocess in the pool) frees the GPU sooner."
                    ),
                    saving=movable * (g - c) * k,
                    per=per,
                    basis="provisioned",
                )
            )
        # D: model load dominates the GPU's held time
        if held_gpu > 0 and load / held_gpu > 0.25:
            out.append(
                Advice(
                    key="amortize-model-load",
                    title="classify more rows per run (or keep a warm worker)",
                    detail=(
                        f"loading the model takes {load:.2f} s, {load / held_gpu:.0%} of the GPU's held time; "
                        "twice the rows per run halves its cost per row."
                    ),
                    saving=load * g / 2 * k,
                    per=per,
                    basis="provisioned",
                )
            )

    # E: repeated texts that deduplication would skip
    dup = report.extra.get(DUPLICATE_KEY)
    dedup_on = bool(report.settings.get("dedup"))
    if isinstance(dup, (int, float)) and 0.02 < dup <= 1 and not dedup_on:
        rows = {r.name: r for r in cost.stages}
        skip = sum(rows[s].cost for s in ("preprocess", "inference") if s in rows)
        out.append(
            Advice(
                key="deduplicate",
                title="skip repeated texts (deduplicate before preprocessing)",
                detail=f"{dup:.0%} of rows repeat an earlier text; their preprocessing and inference can be skipped.",
                saving=dup * skip * k,
                per=per,
                basis="pay-per-use",
            )
        )

    # E2: padding the device computes for nothing
    padding = report.extra.get(PADDING_KEY)
    if isinstance(padding, (int, float)) and 0.2 < padding < 1:
        inf_cost = sum(r.cost for r in cost.stages if r.name == "inference")
        out.append(
            Advice(
                key="cut-padding",
                title="cut padding: smaller --max-batch-tokens / --batch-size, or a larger --chunk-rows window",
                detail=(
                    f"{padding:.0%} of the tokens the device computed were padding; inference time grows with padded "
                    "tokens, so tighter length-sorted batches cut it (upper bound shown)."
                ),
                saving=padding * inf_cost * k,
                per=per,
                basis="pay-per-use",
            )
        )

    # F: a stage that would be cheaper on the other device
    for s in cost.stages:
        if s.pay_per_use and s.billing == "cpu" and c > g and s.seconds > 0:
            out.append(
                Advice(
                    key=f"stage-to-gpu:{s.name}",
                    title=f"run {s.name} on the GPU worker",
                    detail=(
                        f"in profile {cost.profile!r} a CPU second (${c:g}) costs more than a GPU second (${g:g}); "
                        f"{s.seconds:.2f} s of {s.name} is cheaper on the GPU worker, even at the same speed."
                    ),
                    saving=s.seconds * (c - g) * k,
                    per=per,
                    basis="pay-per-use",
                )
            )

    # G: a gpu-only run that the mixed design would make cheaper
    if m.mode == "gpu-only" and cost.provisioned.savings > 0:
        out.append(
            Advice(
                key="use-mixed",
                title="run with --mode mixed",
                detail=(
                    f"this GPU-only run held the GPU {m.wall_s:.2f} s; with text work on CPU workers the GPU would be "
                    f"needed for about {load + inf:.2f} s ({cost.provisioned.savings_pct:.0f}% cheaper, ideal overlap)."
                ),
                saving=cost.provisioned.savings * k,
                per=per,
                basis="provisioned",
            )
        )
    return out


# ------------------------------------------------------------------------------------- estimate


def _advise_estimate(r) -> list[Advice]:
    """Serverless advice under the runpod model: each change re-simulated with the same arrivals (same seed); the
    endpoints a change does not reach come from the report's own simulations (mixedclf.costs.runpod_chain.MEMO). None
    under ideal billing, which simulates nothing."""
    i, p = r.inputs, r.pricing
    rp = r.runpod
    if rp is None or rp.mixed_per_month is None:
        return []  # not servable: the warnings say what is needed, no saving can be priced
    days = i.days_per_month
    gap = r.mean_gap_s
    out: list[Advice] = []
    per = "per month"

    def mixed_month(**update) -> float:
        alt = i.model_copy(update=update)
        return (sum(b.per_day for b in mixed_bill(alt, p)[0]) + orchestrator_per_day(alt, p)) * days

    now = rp.mixed_per_month
    stages = (("pre", "idle_timeout_pre", i.idle_pre, 0), ("GPU", "idle_timeout_gpu", i.idle_gpu, 1),
              ("post", "idle_timeout_post", i.idle_post, 2))
    for name, field, t, k in stages:
        if gap is None or t <= 3 * gap:
            continue
        new_t = float(max(1, round(gap)))
        alt_bills, alt_month = mixed_bill(i.model_copy(update={field: new_t}), p)
        if alt_month is None:
            continue
        saving = now - alt_month
        was, then = rp.mixed[k], alt_bills[k]
        out.append(
            Advice(
                key=f"idle-timeout-{name.lower()}",
                title=f"shorten the {name} endpoint's idle timeout from {t:g} s to about {new_t:g} s",
                detail=(
                    f"requests arrive every {gap:.1f} s on average, so a {t:g} s idle timeout keeps the {name} worker "
                    f"running, and billed, {was.billed_s_per_request:.1f} s per request; at {new_t:g} s it is "
                    f"{then.billed_s_per_request:.1f} s with {then.runs_per_request:.2f} cold starts per request, and "
                    f"requests wait {then.mean_queue_s:.2f} s on average for a worker (now {was.mean_queue_s:.2f} s)."
                ),
                saving=saving,
                per=per,
                basis="runpod",
            )
        )

    if rp.orchestrator_workers and rp.orchestrator_per_day > 0:
        out.append(
            Advice(
                key="drop-orchestrator",
                title="call the three endpoints from the client (no always-on orchestrator)",
                detail=(
                    f"{rp.orchestrator_workers} always-on orchestrator worker(s) cost "
                    f"{fmt_money(rp.orchestrator_per_day, 2)} a day whatever the traffic."
                ),
                saving=rp.orchestrator_per_day * days,
                per=per,
                basis="runpod",
            )
        )

    if rp.savings_per_month is not None and rp.savings_per_month < 0:
        out.append(
            Advice(
                key="use-gpu-only",
                title="serve GPU-only at this traffic",
                detail=(
                    f"at {i.requests_per_day:,.0f} requests/day Runpod would bill the mixed design's three endpoints "
                    f"more than one GPU endpoint ({rp.break_even_requests_note or 'no break-even computed'})."
                ),
                saving=-rp.savings_per_month,
                per=per,
                basis="runpod",
            )
        )
    if i.overhead_sec > 0:
        saving = now - mixed_month(overhead_sec=0.0)
        out.append(
            Advice(
                key="cut-hop-overhead",
                title="cut the per-hop overhead (co-locate or batch the hand-offs)",
                detail=(
                    f"{i.overhead_sec * 1000:.0f} ms per hop, paid by both sides of two hops, costs "
                    f"{fmt_money(saving, 2)} a month under Runpod billing."
                ),
                saving=saving,
                per=per,
                basis="runpod",
            )
        )
    return out
