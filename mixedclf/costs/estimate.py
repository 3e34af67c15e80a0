"""`mixedclf estimate`: project serverless cost per day / month without running anything.

Pure module (no torch, no pools). Formulas, assumptions and a worked example: docs/cost-model.md.

Architectures compared, per request:

* mixed: CPU worker (pre) -> GPU worker (inference) -> CPU worker (post): two hops.
* GPU-only: one GPU worker runs pre + inference + post: no hop.

Serverless extras, all "off" by default so the defaults reproduce the original design's table:

* ``overhead_sec``: orchestration overhead per hop, paid by both sides of each hop.
* ``cold_start_sec`` / ``cold_start_cpu_sec``: seconds billed each time a worker starts cold.
* ``idle_timeout_cpu`` / ``idle_timeout_gpu``: a worker stays billed this long after its last request;
  the expected idle seconds and cold starts per request are in mixedclf.costs.serverless.

Sweeps over request rates and the --plot image: mixedclf.costs.sweep; tables and markdown:
mixedclf.costs.estimate_render.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Literal

from pydantic import BaseModel, Field, model_validator

from mixedclf.costs.accounting import DAYS_PER_MONTH, SCHEMA_VERSION, clean, pct
from mixedclf.costs.fmt import fmt_num
from mixedclf.costs.pricing import CostInputError, PricingProfile
from mixedclf.costs.serverless import cold_starts_per_request, idle_per_request

if TYPE_CHECKING:  # pragma: no cover
    from mixedclf.report import ClassifyReport

#: The original design's per-request stage seconds.
DEFAULT_PRE_SEC = 0.05
DEFAULT_GPU_SEC = 0.2
DEFAULT_POST_SEC = 0.03
MIXED_HOPS = 2  # CPU -> GPU -> CPU


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
    cold_start_sec: float = Field(default=0.0, ge=0)  # GPU worker (model load)
    cold_start_cpu_sec: float | None = Field(default=None, ge=0)  # CPU worker; None = cold_start_sec
    idle_timeout_cpu: float = Field(default=0.0, ge=0)
    idle_timeout_gpu: float = Field(default=0.0, ge=0)
    active_hours: float = Field(default=24.0, gt=0, le=24)
    days_per_month: int = Field(default=DAYS_PER_MONTH, gt=0)
    source: str = "defaults"  # "defaults", "options", or "report:PATH"

    @model_validator(mode="after")
    def _finite(self) -> "EstimateInputs":
        for k, v in self.model_dump().items():
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{k} must be a finite number")
        return self

    @property
    def cpu_cold_start(self) -> float:
        return self.cold_start_sec if self.cold_start_cpu_sec is None else self.cold_start_cpu_sec

    @property
    def arrival_rate(self) -> float:
        """lambda: requests per second during active hours."""
        return self.requests_per_day / (self.active_hours * 3600.0)

    @property
    def extras_on(self) -> bool:
        return any(
            (self.overhead_sec, self.cold_start_sec, self.cpu_cold_start, self.idle_timeout_cpu, self.idle_timeout_gpu)
        )


class WorkerBill(BaseModel):
    """Seconds one worker type is billed per request, and what they cost."""

    worker: Literal["cpu", "gpu"]
    rate: float
    busy_s: float
    overhead_s: float = 0.0
    idle_s: float = 0.0  # includes the CPU worker's wait while the GPU works, when kept warm
    cold_starts: float = 0.0  # expected cold starts per request
    cold_start_s: float = 0.0  # cold_starts x cold-start seconds
    billed_s: float = 0.0
    cost: float = 0.0  # per request


class EstimateLine(BaseModel):
    """A per-request cost line (used by `check` for per-line diffs)."""

    name: str
    mixed: float  # $ per request
    gpu_only: float  # $ per request


class SweepRow(BaseModel):
    requests_per_day: float
    mixed_per_day: float
    gpu_only_per_day: float
    mixed_per_month: float
    gpu_only_per_month: float
    savings_per_month: float
    savings_pct: float


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
    pricing: PricingProfile
    inputs: EstimateInputs
    # headline numbers (dollars), named as in the issue
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
    mixed_cpu: WorkerBill
    mixed_gpu: WorkerBill
    gpu_only_gpu: WorkerBill
    lines: list[EstimateLine]
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
    """All estimate numbers for one set of inputs (docs/cost-model.md, "Estimate")."""
    i = inputs
    lam = i.arrival_rate
    o = i.overhead_sec
    cs_gpu, cs_cpu = i.cold_start_sec, i.cpu_cold_start

    # mixed, CPU worker: pre and post, one side of each of the two hops, and the wait between them
    cpu_busy = i.pre_sec + i.post_sec + MIXED_HOPS * o
    wait = i.gpu_sec + 2 * o  # the CPU worker's gap between pre and post (GPU side of both hops + inference)
    wait_idle = min(wait, i.idle_timeout_cpu)
    wait_cold = 1.0 if wait > i.idle_timeout_cpu else 0.0
    cpu_idle = wait_idle + idle_per_request(lam, i.idle_timeout_cpu, cpu_busy)
    cpu_cold = cold_starts_per_request(lam, i.idle_timeout_cpu, cpu_busy) + wait_cold
    cpu_cold_s = cpu_cold * cs_cpu
    m_cpu, m_cpu_cost = _bill("cpu", cpu_rate, i.pre_sec + i.post_sec, MIXED_HOPS * o, cpu_idle, cpu_cold, cpu_cold_s)

    # mixed, GPU worker: inference, the other side of both hops
    gpu_busy = i.gpu_sec + MIXED_HOPS * o
    g_idle = idle_per_request(lam, i.idle_timeout_gpu, gpu_busy)
    g_cold = cold_starts_per_request(lam, i.idle_timeout_gpu, gpu_busy)
    m_gpu, m_gpu_cost = _bill("gpu", gpu_rate, i.gpu_sec, MIXED_HOPS * o, g_idle, g_cold, g_cold * cs_gpu)

    # GPU-only: one GPU worker, every stage, no hop
    go_busy = i.pre_sec + i.gpu_sec + i.post_sec
    go_idle = idle_per_request(lam, i.idle_timeout_gpu, go_busy)
    go_cold = cold_starts_per_request(lam, i.idle_timeout_gpu, go_busy)
    go, go_cost = _bill("gpu", gpu_rate, go_busy, 0.0, go_idle, go_cold, go_cold * cs_gpu)

    lines = [
        EstimateLine(name="pre", mixed=clean(i.pre_sec * cpu_rate), gpu_only=clean(i.pre_sec * gpu_rate)),
        EstimateLine(name="inference", mixed=clean(i.gpu_sec * gpu_rate), gpu_only=clean(i.gpu_sec * gpu_rate)),
        EstimateLine(name="post", mixed=clean(i.post_sec * cpu_rate), gpu_only=clean(i.post_sec * gpu_rate)),
        EstimateLine(name="hop overhead", mixed=clean(MIXED_HOPS * o * (cpu_rate + gpu_rate)), gpu_only=0.0),
        EstimateLine(name="idle", mixed=clean(m_cpu.idle_s * cpu_rate + m_gpu.idle_s * gpu_rate),
                     gpu_only=clean(go.idle_s * gpu_rate)),
        EstimateLine(name="cold starts", mixed=clean(m_cpu.cold_start_s * cpu_rate + m_gpu.cold_start_s * gpu_rate),
                     gpu_only=clean(go.cold_start_s * gpu_rate)),
    ]

    mixed_pr = clean(m_cpu_cost + m_gpu_cost)
    go_pr = clean(go_cost)
    r, days = i.requests_per_day, i.days_per_month
    m_day, g_day = clean(mixed_pr * r), clean(go_pr * r)
    m_month, g_month = clean(m_day * days), clean(g_day * days)
    return EstimateNumbers(
        mixed_cpu=m_cpu,
        mixed_gpu=m_gpu,
        gpu_only_gpu=go,
        lines=lines,
        mixed_per_request=mixed_pr,
        gpu_only_per_request=go_pr,
        mixed_per_1k=clean(mixed_pr * 1000),
        gpu_only_per_1k=clean(go_pr * 1000),
        mixed_per_day=m_day,
        mixed_per_month=m_month,
        gpu_only_per_day=g_day,
        gpu_only_per_month=g_month,
        savings_per_day=clean(g_day - m_day),
        savings_per_month=clean(g_month - m_month),
        savings_pct=pct(go_pr - mixed_pr, go_pr),
        mean_gap_s=clean(1.0 / lam) if lam > 0 else None,
    )


def _bill(worker, rate, busy, overhead, idle, cold, cold_s) -> tuple[WorkerBill, float]:
    """The bill of one worker type per request, and its unrounded cost."""
    billed = busy + overhead + idle + cold_s
    return WorkerBill(
        worker=worker,
        rate=rate,
        busy_s=clean(busy),
        overhead_s=clean(overhead),
        idle_s=clean(idle),
        cold_starts=clean(cold),
        cold_start_s=clean(cold_s),
        billed_s=clean(billed),
        cost=clean(billed * rate),
    ), billed * rate


def _diff(inputs: EstimateInputs, c: float, g: float) -> float:
    """mixed - GPU-only, $ per request (negative: mixed is cheaper)."""
    n = compute(inputs, c, g)
    return n.mixed_per_request - n.gpu_only_per_request


def _bisect(f: Callable[[float], float], lo: float, hi: float, *, log: bool = False, iters: int = 200) -> float:
    """Root of a monotone f between lo and hi (f(lo), f(hi) of opposite signs)."""
    flo = f(lo)
    for _ in range(iters):
        mid = math.sqrt(lo * hi) if log else (lo + hi) / 2
        fm = f(mid)
        if (fm < 0) == (flo < 0):
            lo, flo = mid, fm
        else:
            hi = mid
        if (hi - lo) <= 1e-12 * max(1.0, abs(hi)):
            break
    return (lo + hi) / 2 if not log else math.sqrt(lo * hi)


def break_even_overhead(inputs: EstimateInputs, c: float, g: float) -> tuple[float | None, str]:
    """The per-hop overhead at which mixed stops being cheaper (at inputs.requests_per_day)."""

    def f(o: float) -> float:
        return _diff(inputs.model_copy(update={"overhead_sec": o}), c, g)

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
    """The requests/day at which mixed and GPU-only cost the same (at inputs.overhead_sec).

    Without idle timeouts and cold starts both costs are proportional to the rate, so there is no
    crossing. With them, the difference is scanned on a log grid (1e-3 .. 1e12 requests/day) and
    each sign change is refined by bisection; the first crossing is returned.
    """

    def f(r: float) -> float:
        return _diff(inputs.model_copy(update={"requests_per_day": r}), c, g)

    grid = [10 ** (k / 10) for k in range(-30, 121)]
    vals = [f(r) for r in grid]
    tol = 1e-15
    crossings: list[tuple[float, str]] = []
    for (r0, v0), (r1, v1) in zip(zip(grid, vals), zip(grid[1:], vals[1:])):
        if (v0 >= -tol) != (v1 >= -tol):
            r = float(f"{_bisect(f, r0, r1, log=True):.4g}")
            crossings.append((r, "above" if v1 < -tol else "below"))
    if not crossings:
        if all(v < -tol for v in vals):
            return None, "mixed is cheaper at every request rate"
        return None, "mixed is not cheaper at any request rate"
    r, side = crossings[0]
    note = f"mixed is cheaper {side} {fmt_num(r)} requests/day"
    if len(crossings) > 1:
        note += "; " + "; ".join(f"{s} {fmt_num(x)}" for x, s in crossings[1:])
    return r, note


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
    """Build an EstimateReport (the JSON of `mixedclf estimate`)."""
    from mixedclf.costs.sweep import sweep, sweep_points  # not at the top: sweep imports compute from here

    c, g = pricing.cpu_per_sec, pricing.gpu_per_sec
    n = compute(inputs, c, g)
    be_o, be_o_note = break_even_overhead(inputs, c, g)
    be_r, be_r_note = break_even_requests(inputs, c, g)
    rows = sweep(inputs, c, g, sweep_points(*sweep_range, sweep_count)) if sweep_range else []
    notes = list(notes or [])
    if c > g:
        notes.append("the CPU rate is above the GPU rate in this profile: mixed cannot save money.")
    fields = n.model_dump()
    return EstimateReport(
        pricing=pricing,
        inputs=inputs,
        **fields,
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
    if load > 0 and not overrides.get("cold_start_sec"):
        notes.append(f"measured model load {load:.2f} s: pass --cold-start-sec {load:.2f} to count GPU cold starts.")
    values = dict(pre_sec=clean(pre), gpu_sec=clean(gpu), post_sec=clean(post))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return EstimateInputs(**values), notes
