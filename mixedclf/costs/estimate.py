"""`mixedclf estimate`: project serverless cost per day / month without running anything.

Pure module (no torch, no pools). Formulas, assumptions and worked examples: docs/cost-model.md.

Architectures compared, per request:

* mixed: CPU worker (pre) -> GPU worker (inference) -> CPU worker (post): two hops.
* GPU-only: one GPU worker runs pre + inference + post: no hop.

Two billing models, always named:

* ``ideal``: busy seconds x rate, nothing else (``overhead_sec`` per hop, paid by both sides, is busy time):
  the original design's arithmetic, kept to the cent.
* ``runpod``: what Runpod serverless bills: one endpoint per stage with its own idle timeout, cold start and
  min/max workers, per-second rounding of every worker run, flex vs active rates and the always-on
  orchestrator, simulated over seeded arrivals (mixedclf.costs.runpod). Only a runpod report carries its
  block: under ideal billing nothing is simulated (no Runpod block, break-even or sweep columns).

Sweeps over request rates and the --plot image: mixedclf.costs.sweep; tables and markdown:
mixedclf.render.estimate.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Literal

from pydantic import BaseModel, Field

from mixedclf.costs.accounting import SCHEMA_VERSION, clean
from mixedclf.costs.per_request import (  # noqa: F401 - estimate is where callers find them
    BILLINGS,
    DEFAULT_GPU_SEC,
    DEFAULT_POST_SEC,
    DEFAULT_PRE_SEC,
    MIXED_HOPS,
    Billing,
    EstimateInputs,
    EstimateLine,
    EstimateNumbers,
    SweepRow,
    WorkerBill,
    compute,
)
from mixedclf.costs.pricing import CostInputError, PricingProfile
from mixedclf.costs.runpod import RunpodBill, check_requests_per_day, runpod_bill
from mixedclf.costs.sweep import sweep, sweep_points

if TYPE_CHECKING:  # pragma: no cover
    from mixedclf.costs.report import ClassifyReport



def _version() -> str:
    try:
        from mixedclf import __version__

        return str(__version__)
    except Exception:  # pragma: no cover
        return "unknown"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# ------------------------------------------------------------------------------------- models














class EstimateReport(BaseModel):
    kind: Literal["estimate"] = "estimate"
    schema_version: int = SCHEMA_VERSION
    mixedclf_version: str = Field(default_factory=_version)
    created_at: str = Field(default_factory=_now)
    billing: Billing = "ideal"  # the model of the headline numbers below
    pricing: PricingProfile
    inputs: EstimateInputs
    # headline numbers (dollars) under `billing`, named as in the original design; None where the runpod model
    # finds the pipeline cannot serve the traffic (runpod.mixed_servable / gpu_only_servable)
    mixed_per_day: float | None
    mixed_per_month: float | None
    gpu_only_per_day: float | None
    gpu_only_per_month: float | None
    savings_per_day: float | None
    savings_per_month: float | None
    savings_pct: float | None
    mixed_per_request: float | None
    gpu_only_per_request: float | None
    mixed_per_1k: float | None
    gpu_only_per_1k: float | None
    # the ideal model's per-request breakdown (whatever `billing` is)
    mixed_cpu: WorkerBill
    mixed_gpu: WorkerBill
    gpu_only_gpu: WorkerBill
    lines: list[EstimateLine]
    ideal: EstimateNumbers | None = None
    runpod: RunpodBill | None = None  # what Runpod would bill for the same inputs
    mean_gap_s: float | None = None
    break_even_overhead_sec: float | None = None
    break_even_overhead_note: str = ""
    break_even_requests_per_day: float | None = None
    break_even_requests_note: str = ""
    sweep: list[SweepRow] = []
    model: str | None = None  # the classify report's model, with --from-report
    source_report: str | None = None
    notes: list[str] = []
    # False: the GPU seconds are CPU seconds (--from-report of a run whose inference ran on a CPU), so the savings
    # figures are arithmetic, not a saving: every rendering shows none and says why
    savings_claim: bool = True

    @property
    def gpu_seconds_per_1k(self) -> float:
        return clean(self.mixed_gpu.billed_s * 1000.0)


# ------------------------------------------------------------------------------- the arithmetic






def headline(inputs: EstimateInputs, rp: RunpodBill | None, ideal: EstimateNumbers) -> dict[str, float | None]:
    """The headline figures under inputs.billing (the runpod ones from its bill; None where not servable)."""
    keys = ("mixed_per_request", "gpu_only_per_request", "mixed_per_day", "gpu_only_per_day", "mixed_per_month",
            "gpu_only_per_month", "savings_per_day", "savings_per_month", "savings_pct")
    src = rp if inputs.billing == "runpod" and rp is not None else ideal
    out = {k: getattr(src, k) for k in keys}
    for arch in ("mixed", "gpu_only"):
        per = out[f"{arch}_per_request"]
        out[f"{arch}_per_1k"] = None if per is None else clean(per * 1000)
    return out


def _bisect(f: Callable[[float], float], lo: float, hi: float, *, iters: int = 200) -> float:
    """Root of a monotone f between lo and hi (f(lo), f(hi) of opposite signs)."""
    flo = f(lo)
    for _ in range(iters):
        mid = (lo + hi) / 2
        fm = f(mid)
        if (fm < 0) == (flo < 0):
            lo, flo = mid, fm
        else:
            hi = mid
        if (hi - lo) <= 1e-12 * max(1.0, abs(hi)):
            break
    return (lo + hi) / 2


def break_even_overhead(inputs: EstimateInputs, c: float, g: float) -> tuple[float | None, str]:
    """The per-hop overhead at which mixed stops being cheaper under the ideal model."""

    def f(o: float) -> float:
        n = compute(inputs.model_copy(update={"overhead_sec": o}), c, g)
        return n.mixed_per_request - n.gpu_only_per_request

    if f(0.0) >= 0:
        return None, "mixed is not cheaper even with zero hop overhead"
    hi = 1.0
    while f(hi) < 0:
        hi *= 2
        if hi > 1e9:
            return None, "mixed stays cheaper at any hop overhead"
    o = clean(_bisect(f, 0.0, hi))
    return o, f"mixed stops being cheaper above {o * 1000:.1f} ms of overhead per hop"


def break_even_requests(inputs: EstimateInputs, c: float, g: float) -> tuple[float | None, str]:
    """Under the ideal model both costs are proportional to the request rate: the lines never cross."""
    n = compute(inputs.model_copy(update={"requests_per_day": 1.0}), c, g)
    d = n.mixed_per_request - n.gpu_only_per_request
    if d < 0:
        return None, "ideal: mixed is cheaper at every request rate (both costs grow in proportion)"
    if d > 0:
        return None, "ideal: mixed is not cheaper at any request rate (both costs grow in proportion)"
    return None, "ideal: mixed and GPU-only cost the same at every request rate"


def estimate(
    inputs: EstimateInputs,
    pricing: PricingProfile,
    *,
    sweep_range: tuple[float, float] | None = None,
    sweep_count: int = 10,
    model: str | None = None,
    source_report: str | None = None,
    notes: list[str] | None = None,
) -> EstimateReport:
    """Build an EstimateReport (the JSON of `mixedclf estimate`): both billing models, headline per inputs.billing."""

    check_requests_per_day(inputs.requests_per_day)
    c, g = pricing.cpu_per_sec, pricing.gpu_per_sec
    n = compute(inputs, c, g)
    rp = runpod_bill(inputs, pricing) if inputs.billing == "runpod" else None
    be_o, be_o_note = break_even_overhead(inputs, c, g)
    if rp is not None:
        be_r, be_r_note = rp.break_even_requests_per_day, rp.break_even_requests_note
    else:
        be_r, be_r_note = break_even_requests(inputs, c, g)
    rows = sweep(inputs, pricing, sweep_points(*sweep_range, sweep_count)) if sweep_range else []
    notes = list(notes or [])
    if not pricing.illustrative and pricing.read_on is not None:
        notes.append(f"pricing profile {pricing.name!r}: rates its source ({pricing.source or 'unnamed'}) still shows: "
                     f"{', '.join(pricing.shown_rates()) or 'none'} (read on {pricing.read_on.isoformat()}).")
    for line in (pricing.staleness(), pricing.unshown()):
        if line:
            notes.append(line)
    if pricing.cpu_source:
        notes.append(f"CPU rate of profile {pricing.name!r}: {pricing.cpu_source}.")
    if c > g:
        notes.append("the CPU rate is above the GPU rate in this profile: mixed cannot save money.")
    return EstimateReport(
        billing=inputs.billing,
        pricing=pricing,
        inputs=inputs,
        **headline(inputs, rp, n),
        mixed_cpu=n.mixed_cpu,
        mixed_gpu=n.mixed_gpu,
        gpu_only_gpu=n.gpu_only_gpu,
        lines=n.lines,
        ideal=n,
        runpod=rp,
        mean_gap_s=n.mean_gap_s,
        break_even_overhead_sec=be_o,
        break_even_overhead_note=be_o_note,
        break_even_requests_per_day=be_r,
        break_even_requests_note=be_r_note,
        sweep=rows,
        model=model,
        source_report=source_report,
        notes=notes,
    )


def inputs_from_report(report: "ClassifyReport", **overrides: Any) -> tuple[EstimateInputs, list[str]]:
    """Per-item stage seconds measured in a classify report (batched GPU time per item)."""
    m = report.measurements
    if m.items <= 0:
        raise CostInputError("--from-report: the report classified no rows, so it has no per-item seconds")
    pre = m.stage_busy("preprocess") / m.items
    # Rows the prediction cache answered took no device time: the GPU seconds per request are those of the rows
    # that ran, and --cache-hit-rate prices a cache for the traffic (with_cache_hit_rate).
    hits = report.cache.hits if report.cache is not None else 0
    if m.items - hits <= 0:
        raise CostInputError("--from-report: the prediction cache answered every row of the report, so it has no "
                             "per-request GPU seconds; use a report of a run with --no-cache")
    gpu = m.stage_busy("inference") / (m.items - hits)
    post = m.stage_busy("postprocess") / m.items
    notes = [
        f"per-request seconds measured over {m.items:,} rows ({report.mode} run on {report.device}): "
        f"pre {pre:.6f} s, inference {gpu:.6f} s (batched), post {post:.6f} s; file read/write excluded."
    ]
    if hits:
        notes.append(f"inference seconds per request over the {m.items - hits:,} rows that ran: the {hits:,} the "
                     "prediction cache answered are left out (give --cache-hit-rate to price a cache)")
    load = m.stage_busy("model_load")
    if m.cold_start_s and not overrides.get("cold_start_sec"):
        notes.append(f"measured start-up {m.cold_start_s:.2f} s (process start to the first micro-batch; model load "
                     f"{load:.2f} s of it): pass --cold-start-sec {m.cold_start_s:.2f} plus the container's own start "
                     "to count GPU cold starts.")
    elif load > 0 and not overrides.get("cold_start_sec"):
        notes.append(f"measured model load {load:.2f} s: pass --cold-start-sec {load:.2f} to count GPU cold starts.")
    values = dict(pre_sec=clean(pre), gpu_sec=clean(gpu), post_sec=clean(post))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return EstimateInputs(**values), notes
