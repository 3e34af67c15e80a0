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
  orchestrator, simulated over seeded arrivals (mixedclf.costs.runpod). Every report carries its block.

Sweeps over request rates and the --plot image: mixedclf.costs.sweep; tables and markdown:
mixedclf.render.estimate.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Literal

from pydantic import BaseModel, Field, model_validator

from mixedclf.costs.accounting import DAYS_PER_MONTH, SCHEMA_VERSION, clean, pct
from mixedclf.costs.pricing import CostInputError, PricingProfile
from mixedclf.costs.runpod import DEFAULT_SPEND_LIMIT_PER_HOUR, RunpodBill, runpod_bill
from mixedclf.costs.runpod_sim import DEFAULT_IDLE_TIMEOUT_S, DEFAULT_MAX_WORKERS, DEFAULT_MIN_WORKERS, Arrivals

if TYPE_CHECKING:  # pragma: no cover
    from mixedclf.costs.report import ClassifyReport

#: The original design's per-request stage seconds.
DEFAULT_PRE_SEC = 0.05
DEFAULT_GPU_SEC = 0.2
DEFAULT_POST_SEC = 0.03
MIXED_HOPS = 2  # CPU -> GPU -> CPU
BILLINGS = ("ideal", "runpod")
Billing = Literal["ideal", "runpod"]


def _version() -> str:
    try:
        from mixedclf import __version__

        return str(__version__)
    except Exception:  # pragma: no cover
        return "unknown"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# ------------------------------------------------------------------------------------- models


class EstimateInputs(BaseModel):
    requests_per_day: float = Field(ge=0)
    pre_sec: float = Field(default=DEFAULT_PRE_SEC, ge=0)
    gpu_sec: float = Field(default=DEFAULT_GPU_SEC, ge=0)
    post_sec: float = Field(default=DEFAULT_POST_SEC, ge=0)
    overhead_sec: float = Field(default=0.0, ge=0)  # per hop, paid by each side
    billing: Billing = "ideal"
    # runpod model: per endpoint, the same inputs
    cold_start_sec: float = Field(default=0.0, ge=0)  # GPU worker (container start + model load)
    cold_start_cpu_sec: float | None = Field(default=None, ge=0)  # CPU worker; independent of the GPU's (None: 0)
    idle_timeout_cpu: float | None = Field(default=None, ge=0)  # both CPU endpoints, unless set one by one
    idle_timeout_pre: float | None = Field(default=None, ge=0)
    idle_timeout_gpu: float | None = Field(default=None, ge=0)
    idle_timeout_post: float | None = Field(default=None, ge=0)
    gpu_workers: tuple[int, int] = (DEFAULT_MIN_WORKERS, DEFAULT_MAX_WORKERS)  # (min = active, max)
    cpu_workers: tuple[int, int] = (DEFAULT_MIN_WORKERS, DEFAULT_MAX_WORKERS)
    orchestrator_workers: int = Field(default=1, ge=0)  # always-on CPU workers in front of the mixed stages
    arrivals: Arrivals = "poisson"
    seed: int = 0
    sim_requests: int = Field(default=10_000, ge=100, le=1_000_000)  # per simulated pass
    spend_limit_per_hour: float = Field(default=DEFAULT_SPEND_LIMIT_PER_HOUR, gt=0)
    active_hours: float = Field(default=24.0, gt=0, le=24)
    days_per_month: int = Field(default=DAYS_PER_MONTH, gt=0)
    source: str = "defaults"  # "defaults", "options", or "report:PATH"

    @model_validator(mode="after")
    def _check(self) -> "EstimateInputs":
        for k, v in self.model_dump().items():
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{k} must be a finite number")
        for k in ("gpu_workers", "cpu_workers"):
            lo, hi = getattr(self, k)
            if not (0 <= lo <= hi and 1 <= hi <= 1000):
                raise ValueError(f"{k} must be MIN:MAX with 0 <= MIN <= MAX and 1 <= MAX <= 1000, got {lo}:{hi}")
        return self

    @property
    def idle_pre(self) -> float:
        return _first(self.idle_timeout_pre, self.idle_timeout_cpu, DEFAULT_IDLE_TIMEOUT_S)

    @property
    def idle_post(self) -> float:
        return _first(self.idle_timeout_post, self.idle_timeout_cpu, DEFAULT_IDLE_TIMEOUT_S)

    @property
    def idle_gpu(self) -> float:
        return _first(self.idle_timeout_gpu, DEFAULT_IDLE_TIMEOUT_S)

    @property
    def arrival_rate(self) -> float:
        """lambda: requests per second during active hours."""
        return self.requests_per_day / (self.active_hours * 3600.0)


def _first(*values: float | None) -> float:
    return next(v for v in values if v is not None)


class WorkerBill(BaseModel):
    """Seconds one worker type is busy per request under the ideal model, and what they cost."""

    worker: Literal["cpu", "gpu"]
    rate: float
    busy_s: float
    overhead_s: float = 0.0
    billed_s: float = 0.0
    cost: float = 0.0  # per request


class EstimateLine(BaseModel):
    """A per-request cost line of the ideal model (used by `check` for per-line diffs)."""

    name: str
    mixed: float  # $ per request
    gpu_only: float  # $ per request


class SweepRow(BaseModel):
    """One request rate: the headline figures under the report's billing model, and both models per month."""

    requests_per_day: float
    mixed_per_day: float
    gpu_only_per_day: float
    mixed_per_month: float
    gpu_only_per_month: float
    savings_per_month: float
    savings_pct: float
    ideal_mixed_per_month: float = 0.0
    ideal_gpu_only_per_month: float = 0.0
    runpod_mixed_per_month: float = 0.0
    runpod_gpu_only_per_month: float = 0.0


class EstimateNumbers(BaseModel):
    mixed_cpu: WorkerBill
    mixed_gpu: WorkerBill
    gpu_only_gpu: WorkerBill
    lines: list[EstimateLine]
    mixed_per_request: float
    gpu_only_per_request: float
    mixed_per_1k: float
    gpu_only_per_1k: float
    mixed_per_day: float
    mixed_per_month: float
    gpu_only_per_day: float
    gpu_only_per_month: float
    savings_per_day: float
    savings_per_month: float
    savings_pct: float
    mean_gap_s: float | None  # 1 / lambda


class EstimateReport(BaseModel):
    kind: Literal["estimate"] = "estimate"
    schema_version: int = SCHEMA_VERSION
    mixedclf_version: str = Field(default_factory=_version)
    created_at: str = Field(default_factory=_now)
    billing: Billing = "ideal"  # the model of the headline numbers below
    pricing: PricingProfile
    inputs: EstimateInputs
    # headline numbers (dollars) under `billing`, named as in the original design
    mixed_per_day: float
    mixed_per_month: float
    gpu_only_per_day: float
    gpu_only_per_month: float
    savings_per_day: float
    savings_per_month: float
    savings_pct: float
    mixed_per_request: float
    gpu_only_per_request: float
    mixed_per_1k: float
    gpu_only_per_1k: float
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

    @property
    def gpu_seconds_per_1k(self) -> float:
        return clean(self.mixed_gpu.billed_s * 1000.0)


# ------------------------------------------------------------------------------- the arithmetic


def compute(inputs: EstimateInputs, cpu_rate: float, gpu_rate: float) -> EstimateNumbers:
    """The ideal model: busy seconds x rate (docs/cost-model.md, "Estimate")."""
    i = inputs
    o = i.overhead_sec
    m_cpu = _bill("cpu", cpu_rate, i.pre_sec + i.post_sec, MIXED_HOPS * o)
    m_gpu = _bill("gpu", gpu_rate, i.gpu_sec, MIXED_HOPS * o)
    go = _bill("gpu", gpu_rate, i.pre_sec + i.gpu_sec + i.post_sec, 0.0)
    lines = [
        EstimateLine(name="pre", mixed=clean(i.pre_sec * cpu_rate), gpu_only=clean(i.pre_sec * gpu_rate)),
        EstimateLine(name="inference", mixed=clean(i.gpu_sec * gpu_rate), gpu_only=clean(i.gpu_sec * gpu_rate)),
        EstimateLine(name="post", mixed=clean(i.post_sec * cpu_rate), gpu_only=clean(i.post_sec * gpu_rate)),
        EstimateLine(name="hop overhead", mixed=clean(MIXED_HOPS * o * (cpu_rate + gpu_rate)), gpu_only=0.0),
    ]
    mixed_pr = clean(m_cpu.cost + m_gpu.cost)
    go_pr = clean(go.cost)
    r, days = i.requests_per_day, i.days_per_month
    m_day, g_day = clean(mixed_pr * r), clean(go_pr * r)
    m_month, g_month = clean(m_day * days), clean(g_day * days)
    lam = i.arrival_rate
    return EstimateNumbers(
        mixed_cpu=m_cpu, mixed_gpu=m_gpu, gpu_only_gpu=go, lines=lines,
        mixed_per_request=mixed_pr, gpu_only_per_request=go_pr,
        mixed_per_1k=clean(mixed_pr * 1000), gpu_only_per_1k=clean(go_pr * 1000),
        mixed_per_day=m_day, mixed_per_month=m_month, gpu_only_per_day=g_day, gpu_only_per_month=g_month,
        savings_per_day=clean(g_day - m_day), savings_per_month=clean(g_month - m_month),
        savings_pct=pct(go_pr - mixed_pr, go_pr), mean_gap_s=clean(1.0 / lam) if lam > 0 else None,
    )


def _bill(worker: str, rate: float, busy: float, overhead: float) -> WorkerBill:
    billed = busy + overhead
    return WorkerBill(worker=worker, rate=rate, busy_s=clean(busy), overhead_s=clean(overhead),  # type: ignore[arg-type]
                      billed_s=clean(billed), cost=clean(billed * rate))


def headline(inputs: EstimateInputs, rp: RunpodBill | None, ideal: EstimateNumbers) -> dict[str, float]:
    """The headline figures under inputs.billing (the runpod ones from its bill)."""
    keys = ("mixed_per_request", "gpu_only_per_request", "mixed_per_day", "gpu_only_per_day", "mixed_per_month",
            "gpu_only_per_month", "savings_per_day", "savings_per_month", "savings_pct")
    src = rp if inputs.billing == "runpod" and rp is not None else ideal
    out = {k: getattr(src, k) for k in keys}
    out["mixed_per_1k"] = clean(out["mixed_per_request"] * 1000)
    out["gpu_only_per_1k"] = clean(out["gpu_only_per_request"] * 1000)
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
    from mixedclf.costs.sweep import sweep, sweep_points  # not at the top: sweep imports compute from here

    c, g = pricing.cpu_per_sec, pricing.gpu_per_sec
    n = compute(inputs, c, g)
    rp = runpod_bill(inputs, pricing)
    be_o, be_o_note = break_even_overhead(inputs, c, g)
    if inputs.billing == "runpod":
        be_r, be_r_note = rp.break_even_requests_per_day, rp.break_even_requests_note
    else:
        be_r, be_r_note = break_even_requests(inputs, c, g)
    rows = sweep(inputs, pricing, sweep_points(*sweep_range, sweep_count)) if sweep_range else []
    notes = list(notes or [])
    stale = pricing.staleness()
    if stale:
        notes.append(stale)
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
    gpu = m.stage_busy("inference") / m.items
    post = m.stage_busy("postprocess") / m.items
    notes = [
        f"per-request seconds measured over {m.items:,} rows ({report.mode} run on {report.device}): "
        f"pre {pre:.6f} s, inference {gpu:.6f} s (batched), post {post:.6f} s; file read/write excluded."
    ]
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
