"""The `runpod` billing model of `mixedclf estimate`: what Runpod serverless would bill for the same traffic.

One endpoint per stage (mixed: pre on CPU, inference on GPU, post on CPU; GPU-only: one GPU endpoint), each
with its own idle timeout, cold start and min/max workers, simulated request by request
(mixedclf.costs.runpod_sim) over seeded arrivals. Flex worker runs are billed start to full stop, rounded up
to the whole second, at the flex rate; active (min) workers and the always-on orchestrator are billed around
the clock at the active rate. Formulas, sources and worked examples: docs/cost-model.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from mixedclf.costs.accounting import clean, pct
from mixedclf.costs.fmt import fmt_num
from mixedclf.costs.pricing import CostInputError
from mixedclf.costs.runpod_chain import ChainStep, Load, chain_runs, load_arrivals
from mixedclf.costs.runpod_sim import EndpointRun, EndpointSpec, percentile

if TYPE_CHECKING:  # pragma: no cover
    from mixedclf.costs.per_request import EstimateInputs
    from mixedclf.costs.pricing import PricingProfile

DAY_S = 86400.0
#: Runpod's default account spend limit, dollars per hour (serverless pricing page, "Account limits").
DEFAULT_SPEND_LIMIT_PER_HOUR = 80.0
#: The fewest requests simulated (low rates span many days), and the fewest for sweeps and break-even scans.
MIN_SIM_REQUESTS = 2000
SCAN_SIM_REQUESTS = 2000  # per pass (each simulation runs one pass and two passes: three in all)
#: The slowest traffic the simulation takes: one request in 1,000 days (below, its clock overflows floats).
MIN_SIM_REQUESTS_PER_DAY = 1e-3


class EndpointBill(BaseModel):
    """One simulated endpoint: its settings, what it billed per day, and how long requests waited."""

    name: str  # pre | inference | post | gpu-only
    worker: Literal["cpu", "gpu"]
    instance: str = ""  # a CPU endpoint's Runpod instance id (priced per vCPU)
    vcpus: int | None = None
    exec_s: float
    cold_start_s: float
    start_billed: bool = True
    idle_timeout_s: float
    min_workers: int
    max_workers: int
    flex_rate: float
    active_rate: float
    load_workers: float  # offered load: requests/s x exec seconds (workers needed on average)
    utilization: float = 0.0  # load_workers / max_workers: servable only below 1
    servable: bool = True
    workers_needed: int = 1  # the fewest max workers that keep utilization below 1
    saturated: bool  # not servable: the queue grows without bound
    runs_per_request: float  # flex worker runs (cold starts) per request
    run_s_per_request: float  # flex worker seconds per request, unrounded
    billed_s_per_request: float  # the same, each run rounded up to the whole second
    idle_s_per_request: float  # billed flex seconds that neither start a worker nor execute a request
    day_edge_billed_s: int = 0  # billed seconds a day of the morning's first start and the evening's last idle
    flex_per_day: float
    active_per_day: float
    per_day: float
    mean_queue_s: float  # waiting for a busy worker
    p95_queue_s: float
    max_queue_s: float
    mean_wait_s: float = 0.0  # arrival to execution start: queueing and cold starts
    p95_wait_s: float = 0.0
    cold_start_waits_per_request: float
    capped_per_request: float  # share of requests that waited because max workers were running
    peak_workers: int


class Saturation(BaseModel):
    """Where a pipeline stops being servable: its first endpoint to reach utilization 1."""

    pipeline: Literal["mixed", "GPU-only"]
    endpoint: str
    max_workers: int
    requests_per_day: float

    @property
    def text(self) -> str:
        kind = "GPU" if self.endpoint == "gpu-only" else self.endpoint
        return (f"{self.pipeline} needs {self.max_workers + 1}+ {kind} workers above "
                f"{fmt_num(float(f'{self.requests_per_day:.3g}'))} requests/day")


class BreakEven(BaseModel):
    """The requests/day where mixed and GPU-only cost the same under Runpod billing, over several seeds."""

    requests_per_day: float | None = None  # the first crossing of the seed-mean curves
    crossings: list[float] = []  # every crossing of the mean curves, with the side mixed is cheaper on
    sides: list[Literal["above", "below"]] = []
    seeds: list[int] = []
    per_seed: list[float | None] = []  # the first crossing's bracket refined on each seed's own curve
    spread: tuple[float, float] | None = None  # min and max of per_seed
    scanned: tuple[float, float] = (0.0, 0.0)  # the servable range searched
    points: int = 0  # request rates evaluated per seed
    full_points: int = 0  # of them, those seen at the full scan (the others' sign settled coarser: BREAK_EVEN_LEVELS)
    saturation: list[Saturation] = []
    note: str = ""


class RunpodBill(BaseModel):
    arrivals: str
    seed: int
    simulated_requests: int
    mixed: list[EndpointBill]
    gpu_only: list[EndpointBill]
    orchestrator_workers: int
    orchestrator_instance: str = ""
    orchestrator_for: str = "mixed"
    orchestrator_per_day: float
    start_billed: bool = True
    defaults: str = "console"
    # servability: a pipeline with any endpoint at utilization >= 1 gets no $ figure (None)
    mixed_servable: bool = True
    gpu_only_servable: bool = True
    mixed_per_request: float | None
    gpu_only_per_request: float | None
    mixed_per_day: float | None
    gpu_only_per_day: float | None
    mixed_per_month: float | None
    gpu_only_per_month: float | None
    savings_per_day: float | None
    savings_per_month: float | None
    savings_pct: float | None
    mixed_spend_per_hour: float | None  # mean over active hours
    gpu_only_spend_per_hour: float | None
    # end-to-end latency per request (arrival to the last stage's end; the orchestrator's own time not counted)
    mixed_latency_mean_s: float = 0.0
    mixed_latency_p95_s: float = 0.0
    gpu_only_latency_mean_s: float = 0.0
    gpu_only_latency_p95_s: float = 0.0
    break_even_requests_per_day: float | None = None
    break_even_requests_note: str = ""
    break_even: BreakEven | None = None
    warnings: list[str] = []


# ------------------------------------------------------------------------------------- endpoints


class Stage(BaseModel):
    """One endpoint of a pipeline: its name, billing class, instance and simulated settings."""

    name: str
    worker: Literal["cpu", "gpu"]
    exec_s: float
    cold_start_s: float
    idle_timeout_s: float
    min_workers: int
    max_workers: int
    instance: str = ""
    vcpus: int | None = None
    start_billed: bool = True

    @property
    def spec(self) -> EndpointSpec:
        return EndpointSpec(self.name, self.exec_s, self.cold_start_s, self.idle_timeout_s, self.min_workers,
                            self.max_workers, self.start_billed)

    def rates(self, p: "PricingProfile") -> tuple[float, float]:
        """(flex, active) $/s of one worker of this endpoint."""
        if self.worker == "cpu":
            return p.cpu_rate(self.vcpus), p.cpu_rate(self.vcpus, active=True)
        return p.rate("gpu"), p.active_rate("gpu")


def pipelines(i: "EstimateInputs") -> tuple[list[Stage], list[Stage]]:
    """(mixed stages in order, GPU-only's one stage).

    A hop's overhead is execution time on both sides: pre sends, inference receives and sends, post receives.
    """
    o = i.overhead_sec
    cmin, cmax = i.cpu_workers
    gmin, gmax = i.gpu_workers
    cold_cpu = i.cold_start_cpu_sec or 0.0
    cpu: dict[str, Any] = dict(instance=i.cpu_instance, vcpus=i.cpu_vcpus, start_billed=i.start_billed, cold_start_s=cold_cpu,
               min_workers=cmin, max_workers=cmax, worker="cpu")
    gpu: dict[str, Any] = dict(cold_start_s=i.cold_start_sec, start_billed=i.start_billed, min_workers=gmin, max_workers=gmax,
               worker="gpu", idle_timeout_s=i.idle_gpu)
    mixed = [
        Stage(name="pre", exec_s=i.pre_sec + o, idle_timeout_s=i.idle_pre, **cpu),
        Stage(name="inference", exec_s=i.gpu_sec + 2 * o, **gpu),
        Stage(name="post", exec_s=i.post_sec + o, idle_timeout_s=i.idle_post, **cpu),
    ]
    go = [Stage(name="gpu-only", exec_s=i.pre_sec + i.gpu_sec + i.post_sec, **gpu)]
    return mixed, go


def endpoint_specs(i: "EstimateInputs") -> tuple[list[tuple[str, str, EndpointSpec]], tuple[str, str, EndpointSpec]]:
    """(mixed: [(name, worker, spec)] in pipeline order, GPU-only: (name, worker, spec))."""
    mixed, go = pipelines(i)
    return [(s.name, s.worker, s.spec) for s in mixed], (go[0].name, go[0].worker, go[0].spec)


def utilization(stage: Stage, arrival_rate: float) -> float:
    """Offered load per allowed worker: the endpoint can serve the traffic only below 1."""
    return arrival_rate * stage.exec_s / stage.max_workers


def workers_needed(stage: Stage, arrival_rate: float) -> int:
    """The fewest max workers with utilization below 1."""
    return max(1, math.floor(arrival_rate * stage.exec_s) + 1)


def servable(stages: list[Stage], arrival_rate: float) -> bool:
    return all(utilization(s, arrival_rate) < 1 for s in stages)


def saturation_rate(stages: list[Stage], active_hours: float) -> tuple[float, Stage]:
    """The requests/day at which the pipeline's first endpoint reaches utilization 1 (inf when none can)."""
    best, first = math.inf, stages[0]
    for s in stages:
        r = s.max_workers / s.exec_s * active_hours * 3600.0 if s.exec_s > 0 else math.inf
        if r < best:
            best, first = r, s
    return best, first


def sim_size(requests_per_day: float, cap: int) -> int:
    """Requests per simulated pass: a day's worth, at least MIN_SIM_REQUESTS (low rates span many days), at most
    cap."""
    return max(1, min(cap, max(MIN_SIM_REQUESTS, math.ceil(requests_per_day))))


def _bill(st: Stage, one: EndpointRun, two: EndpointRun, i: "EstimateInputs", p: "PricingProfile") -> EndpointBill:
    """One endpoint's bill from two simulations of the same arrival pattern: once, and twice back to back.

    Their difference is what one more pass costs with the workers already in their usual state, free of the
    simulation's own edges (the first cold start, the last idle tail). Those edges are real once a day when
    requests stop overnight (active hours < 24) and a pass is shorter than a day: then they are added per day.
    A day's flex seconds are bounded by what the endpoint's flex workers can run in a day.
    """
    flex_rate, active_rate = st.rates(p)
    spec = st.spec
    n = max(one.requests, 1)
    r = i.requests_per_day
    runs = max(0, two.runs - one.runs)
    run_s = max(0.0, two.run_seconds - one.run_seconds)
    billed = max(0, two.billed_seconds - one.billed_seconds)
    busy = max(0.0, two.busy_flex_seconds - one.busy_flex_seconds)
    edges = 0
    if i.active_hours < 24 and r > 0 and n / i.arrival_rate < i.active_hours * 3600.0:
        edges = max(0, 2 * one.billed_seconds - two.billed_seconds)
    lam = i.arrival_rate
    load = lam * spec.exec_s
    util = load / spec.max_workers
    ok = util < 1 or r == 0
    idle = max(0.0, run_s - (runs * spec.cold_start_s if spec.start_billed else 0.0) - busy)
    flex_s_day = min(billed / n * r + edges, (spec.max_workers - spec.min_workers) * DAY_S)
    flex_day = flex_s_day * flex_rate
    active_day = spec.min_workers * DAY_S * active_rate
    delays = two.queue_delays[one.requests:]
    waits = two.waits[one.requests:]
    return EndpointBill(
        name=st.name, worker=st.worker, instance=st.instance, vcpus=st.vcpus, exec_s=clean(spec.exec_s),
        cold_start_s=spec.cold_start_s, start_billed=spec.start_billed,
        idle_timeout_s=spec.idle_timeout_s, min_workers=spec.min_workers, max_workers=spec.max_workers,
        flex_rate=flex_rate, active_rate=active_rate, load_workers=clean(load), utilization=clean(util),
        servable=ok, workers_needed=workers_needed(st, lam), saturated=not ok,
        runs_per_request=clean(runs / n), run_s_per_request=clean(run_s / n),
        billed_s_per_request=clean(billed / n), idle_s_per_request=clean(idle / n),
        day_edge_billed_s=edges, flex_per_day=clean(flex_day), active_per_day=clean(active_day),
        per_day=clean(flex_day + active_day), mean_queue_s=clean(sum(delays) / n),
        p95_queue_s=clean(percentile(delays, 95)), max_queue_s=clean(max(delays, default=0.0)),
        mean_wait_s=clean(sum(waits) / n), p95_wait_s=clean(percentile(waits, 95)),
        cold_start_waits_per_request=clean(max(0, two.cold_waits - one.cold_waits) / n),
        capped_per_request=clean(max(0, two.cap_waits - one.cap_waits) / n), peak_workers=two.peak_workers,
    )


def run_pipeline(stages: list[Stage], load: Load, *, keep: bool = True) -> tuple[list[ChainStep], tuple[float, float]]:
    """Each stage's simulation, and the (mean, p95) end-to-end latency of the two-pass run's second pass (arrival
    to the last stage's end)."""
    steps = chain_runs(tuple(st.spec for st in stages), load, keep=keep)
    n = load.n
    if not steps or n == 0:
        return steps, (0.0, 0.0)
    arrivals = load_arrivals(load, keep)
    last = steps[-1]
    done = [0.0] * len(arrivals)
    for m, rid in enumerate(last.ids):
        done[rid] = last.served.two_out[m]
    steady = [done[k] - arrivals[k] for k in range(n, len(arrivals))]
    return steps, (clean(sum(steady) / max(n, 1)), clean(percentile(steady, 95)))


class _Sim(BaseModel):
    mixed: list[EndpointBill]
    gpu_only: list[EndpointBill]
    n: int
    latency: dict[str, tuple[float, float]]  # pipeline -> (mean, p95) seconds


def check_requests_per_day(r: float) -> None:
    """The slowest traffic an estimate takes (both billing models, so that one input means the same under each)."""
    if 0 < r < MIN_SIM_REQUESTS_PER_DAY:
        raise CostInputError(f"requests per day must be 0 or at least {MIN_SIM_REQUESTS_PER_DAY:g} (one request in "
                             f"{1 / MIN_SIM_REQUESTS_PER_DAY:,.0f} days), got {r:g}")


def _load(i: "EstimateInputs", cap: int) -> Load:
    check_requests_per_day(i.requests_per_day)
    n = sim_size(i.requests_per_day, cap) if i.requests_per_day > 0 else 0
    return Load(i.requests_per_day, i.active_hours, n, i.arrivals, i.seed)


def _simulate(i: "EstimateInputs", p: "PricingProfile", cap: int, *, keep: bool = True) -> _Sim:
    mixed, go = pipelines(i)
    load = _load(i, cap)
    latency = {}

    def run(name: str, stages: list[Stage]) -> list[EndpointBill]:
        steps, latency[name] = run_pipeline(stages, load, keep=keep)
        return [_bill(st, s.one, s.two, i, p) for st, s in zip(stages, steps)]

    return _Sim(mixed=run("mixed", mixed), gpu_only=run("gpu_only", go), n=load.n, latency=latency)


class PipelineRun(BaseModel):
    """One pipeline of given endpoints under `i`'s traffic: its bills, $/day and end-to-end latency."""

    bills: list[EndpointBill]
    servable: bool
    per_day: float  # the endpoints only (an orchestrator is the caller's to add)
    latency_mean_s: float
    latency_p95_s: float
    spend_per_hour: float  # flex over the active hours plus active around the clock


def simulate_stages(i: "EstimateInputs", p: "PricingProfile", stages: list[Stage],
                    cap: int = SCAN_SIM_REQUESTS) -> PipelineRun:
    """Simulate any chain of endpoints (the planner's candidates) as the estimate simulates its two pipelines."""
    if 0 < i.requests_per_day < MIN_SIM_REQUESTS_PER_DAY:
        raise CostInputError(f"requests per day must be 0 or at least {MIN_SIM_REQUESTS_PER_DAY:g}")
    steps, (lat_mean, lat_p95) = run_pipeline(stages, _load(i, cap))
    bills = [_bill(st, s.one, s.two, i, p) for st, s in zip(stages, steps)]
    flex = sum(b.flex_per_day for b in bills)
    active = sum(b.active_per_day for b in bills)
    return PipelineRun(bills=bills, servable=all(b.servable for b in bills), per_day=clean(flex + active),
                       latency_mean_s=lat_mean, latency_p95_s=lat_p95,
                       spend_per_hour=clean(flex / i.active_hours + active / 24))


def orchestrator_per_day(i: "EstimateInputs", p: "PricingProfile") -> float:
    """The always-on front end: its workers around the clock on their own instance, at the active rate."""
    return clean(i.orchestrator_workers * DAY_S * p.cpu_rate(i.orchestrator_vcpus, active=True))


def mixed_bill(i: "EstimateInputs", p: "PricingProfile") -> tuple[list[EndpointBill], float | None]:
    """The mixed endpoints' bills and $/month (None where not servable), as runpod_bill computes them, without
    GPU-only or latency: what a what-if on the mixed pipeline needs (advice)."""
    mixed, _ = pipelines(i)
    steps = chain_runs(tuple(st.spec for st in mixed), _load(i, i.sim_requests))
    bills = [_bill(st, s.one, s.two, i, p) for st, s in zip(mixed, steps)]
    if not all(b.servable for b in bills):
        return bills, None
    return bills, clean(clean(sum(b.per_day for b in bills) + orchestrator_per_day(i, p)) * i.days_per_month)


def totals(i: "EstimateInputs", p: "PricingProfile", cap: int = SCAN_SIM_REQUESTS, *,
           keep: bool = True) -> tuple[float, float]:
    """(mixed $/day, GPU-only $/day) as simulated under the runpod model, servable or not (callers check
    `servable`): what sweeps, advice what-ifs and break-even scans evaluate (`keep`: chain_runs)."""
    sim = _simulate(i, p, cap, keep=keep)
    orch = orchestrator_per_day(i, p)
    go_orch = orch if i.orchestrator_for == "both" else 0.0
    return sum(b.per_day for b in sim.mixed) + orch, sum(b.per_day for b in sim.gpu_only) + go_orch


# ------------------------------------------------------------------------------------- the bill


def runpod_bill(i: "EstimateInputs", p: "PricingProfile", *, break_even: bool = True) -> RunpodBill:
    """What Runpod would bill per day and month for `i` at `p`'s rates; no $ figure for a pipeline that cannot
    serve the traffic."""
    sim = _simulate(i, p, i.sim_requests)
    mixed, go = sim.mixed, sim.gpu_only
    orch = orchestrator_per_day(i, p)
    go_orch = orch if i.orchestrator_for == "both" else 0.0
    m_ok, g_ok = all(b.servable for b in mixed), all(b.servable for b in go)
    m_day = clean(sum(b.per_day for b in mixed) + orch) if m_ok else None
    g_day = clean(sum(b.per_day for b in go) + go_orch) if g_ok else None
    r, days = i.requests_per_day, i.days_per_month
    hours = i.active_hours

    def spend_per_hour(bills: list[EndpointBill], always_on: float) -> float:
        return clean(sum(b.flex_per_day for b in bills) / hours + (sum(b.active_per_day for b in bills) + always_on) / 24)

    def per(x: float | None, k: float) -> float | None:
        return None if x is None else clean(x * k)

    bill = RunpodBill(
        arrivals=i.arrivals, seed=i.seed, simulated_requests=sim.n, mixed=mixed, gpu_only=go,
        orchestrator_workers=i.orchestrator_workers, orchestrator_instance=i.orchestrator_instance,
        orchestrator_for=i.orchestrator_for, orchestrator_per_day=orch, start_billed=i.start_billed,
        defaults=i.defaults, mixed_servable=m_ok, gpu_only_servable=g_ok,
        mixed_per_request=(clean(m_day / r) if r > 0 else 0.0) if m_day is not None else None,
        gpu_only_per_request=(clean(g_day / r) if r > 0 else 0.0) if g_day is not None else None,
        mixed_per_day=m_day, gpu_only_per_day=g_day, mixed_per_month=per(m_day, days),
        gpu_only_per_month=per(g_day, days),
        savings_per_day=clean(g_day - m_day) if g_day is not None and m_day is not None else None,
        savings_per_month=clean((g_day - m_day) * days) if g_day is not None and m_day is not None else None,
        savings_pct=pct(g_day - m_day, g_day) if g_day is not None and m_day is not None else None,
        mixed_spend_per_hour=spend_per_hour(mixed, orch) if m_ok else None,
        gpu_only_spend_per_hour=spend_per_hour(go, go_orch) if g_ok else None,
        mixed_latency_mean_s=sim.latency["mixed"][0], mixed_latency_p95_s=sim.latency["mixed"][1],
        gpu_only_latency_mean_s=sim.latency["gpu_only"][0], gpu_only_latency_p95_s=sim.latency["gpu_only"][1],
    )
    bill.warnings = _warnings(bill, i)
    if break_even:
        be = break_even_search(i, p)
        bill.break_even, bill.break_even_requests_per_day, bill.break_even_requests_note = be, be.requests_per_day, be.note
    return bill


def unservable_line(arch: str, e: EndpointBill, simulated: int) -> str:
    return (f"{arch} {e.name} endpoint cannot serve this traffic: it needs {e.load_workers:.2f} workers on average "
            f"(utilization {e.utilization:.0%} of max {e.max_workers}); set max workers to {e.workers_needed} or more. "
            f"No $ figure for {arch}: the queue would grow without bound (requests time out instead of being billed).")


def _warnings(b: RunpodBill, i: "EstimateInputs") -> list[str]:
    out = []
    for arch, bills in (("mixed", b.mixed), ("GPU-only", b.gpu_only)):
        for e in bills:
            if not e.servable:
                out.append(unservable_line(arch, e, b.simulated_requests))
            elif e.capped_per_request > 0:
                out.append(
                    f"{arch} {e.name} endpoint: all {e.max_workers} workers busy at times: "
                    f"{e.capped_per_request:.1%} of requests queue at the cap; waits {e.mean_queue_s:.3f} s on "
                    f"average, p95 {e.p95_queue_s:.3f} s, max {e.max_queue_s:.3f} s."
                )
    limit = i.spend_limit_per_hour
    for arch, spend in (("mixed", b.mixed_spend_per_hour), ("GPU-only", b.gpu_only_spend_per_hour)):
        if spend is not None and spend > limit:
            out.append(
                f"{arch} spends ${spend:,.2f}/hour on average over the active hours, above the ${limit:g}/hour spend "
                "limit (Runpod's default account limit): Runpod stops workers at the limit; ask support to raise it."
            )
    return out


#: The break-even search: seeds per point, grid points per decade, bisections per bracket, and its range.
BREAK_EVEN_SEEDS = 3
BREAK_EVEN_PER_DECADE = 4
BREAK_EVEN_BISECTIONS = 8
BREAK_EVEN_RANGE = (0.1, 1e7)
#: Requests a pass at which the search first looks at a grid point, coarse to fine; the last is the full scan
#: (SCAN_SIM_REQUESTS). A coarser look settles the point's sign only when every seed agrees with the mean and the
#: mean is further from 0 than the seeds' spread; crossings are always bracketed and refined at the full scan.
BREAK_EVEN_LEVELS = (50, 250, SCAN_SIM_REQUESTS)


def saturations(i: "EstimateInputs") -> list[Saturation]:
    """Where each pipeline stops being servable (only the finite ones)."""
    mixed, go = pipelines(i)
    out = []
    named: tuple[tuple[Literal["mixed", "GPU-only"], list[Stage]], ...] = (("mixed", mixed), ("GPU-only", go))
    for arch, stages in named:
        r, st = saturation_rate(stages, i.active_hours)
        if math.isfinite(r):
            out.append(Saturation(pipeline=arch, endpoint=st.name, max_workers=st.max_workers, requests_per_day=r))
    return out


def break_even_search(i: "EstimateInputs", p: "PricingProfile") -> BreakEven:
    """The requests/day at which mixed and GPU-only cost the same under the runpod model, searched only where
    both pipelines can serve the traffic.

    The per-request difference (mixed - GPU-only $/day) / r is simulated at BREAK_EVEN_PER_DECADE log-spaced
    rates a decade over the servable range, on BREAK_EVEN_SEEDS seeds (i.seed, i.seed + 1, ...), coarse to fine
    (BREAK_EVEN_LEVELS: few requests a pass where that settles the sign, the full scan where it does not and at
    both ends of every sign change); every sign change of the seed mean is a crossing, refined by bisection on
    the mean at the full scan; the first one is also refined on each seed's
    own curve, and their min..max is the spread. A pipeline's saturation point is reported as such, never as a
    break-even. docs/cost-model.md, "Break-even".
    """
    lo, hi = BREAK_EVEN_RANGE
    sats = saturations(i)
    top = min([hi, *(s.requests_per_day * (1 - 1e-6) for s in sats)])
    seeds = [i.seed + k for k in range(BREAK_EVEN_SEEDS)]
    be = BreakEven(seeds=seeds, saturation=sats, scanned=(lo, clean(top)))
    sat_text = "; ".join(s.text for s in sats)
    if top <= lo:
        be.note = f"no servable request rate above {fmt_num(lo)}/day to compare ({sat_text})"
        return be

    full = BREAK_EVEN_LEVELS[-1]
    values: dict[tuple[float, int, int], float] = {}  # each (rate, seed, requests a pass) simulated once

    def f(r: float, seed: int, n: int = full) -> float:
        key = (r, seed, n)
        if key not in values:
            m, g = totals(i.model_copy(update={"requests_per_day": r, "seed": seed}), p, cap=n, keep=False)
            values[key] = (m - g) / r
        return values[key]

    def mean(r: float, n: int = full) -> float:
        return sum(f(r, s, n) for s in seeds) / len(seeds)

    def look(r: float, levels: tuple[int, ...] = BREAK_EVEN_LEVELS) -> tuple[float, int]:
        """(the seed mean at r, the requests a pass it was settled at): coarse to fine."""
        for n in levels:
            per = [f(r, s, n) for s in seeds]
            m = sum(per) / len(per)
            if n == full or (all((v >= 0) == (m >= 0) for v in per) and abs(m) > max(per) - min(per)):
                return m, n
        raise AssertionError("the last level is the full scan")  # pragma: no cover

    steps = max(1, math.ceil(math.log10(top / lo) * BREAK_EVEN_PER_DECADE))
    grid = [lo * (top / lo) ** (k / steps) for k in range(steps + 1)]
    looked = [look(r) for r in grid]
    # a sign change is a crossing only between two points seen at the full scan: promote both ends until stable
    changed = True
    while changed:
        changed = False
        for k in range(len(grid) - 1):
            (v0, n0), (v1, n1) = looked[k], looked[k + 1]
            if (v0 >= 0) != (v1 >= 0) and (n0 != full or n1 != full):
                looked[k], looked[k + 1] = (mean(grid[k]), full), (mean(grid[k + 1]), full)
                changed = True
    vals = [v for v, _ in looked]
    be.points = len(grid)
    be.full_points = sum(n == full for _, n in looked)

    def bisect(g: Callable[[float], float], a: float, b: float, fa: float) -> float:
        for _ in range(BREAK_EVEN_BISECTIONS):
            mid = math.sqrt(a * b)
            fm = g(mid)
            if (fm >= 0) == (fa >= 0):
                a, fa = mid, fm
            else:
                b = mid
        return math.sqrt(a * b)

    brackets = []
    for (r0, v0), (r1, v1) in zip(zip(grid, vals), zip(grid[1:], vals[1:])):
        if (v0 >= 0) != (v1 >= 0):
            brackets.append((r0, r1, v0))
            be.crossings.append(float(f"{bisect(mean, r0, r1, v0):.3g}"))
            be.sides.append("above" if v1 < 0 else "below")
    where = f"from {fmt_num(lo)} to {fmt_num(float(f'{top:.3g}'))}/day"
    tail = f" ({sat_text})" if sats else ""
    if not be.crossings:
        cheaper = "cheaper" if all(v < 0 for v in vals) else "dearer"
        be.note = (f"no break-even: under Runpod billing mixed is {cheaper} at every servable rate {where} "
                   f"(mean of seeds {seeds[0]}..{seeds[-1]}){tail}")
        return be
    def curve(seed: int) -> Callable[[float], float]:
        return lambda r: f(r, seed)

    r0, r1, _ = brackets[0]
    per_seed: list[float | None] = []
    for s in seeds:
        a, b = f(r0, s), f(r1, s)
        per_seed.append(float(f"{bisect(curve(s), r0, r1, a):.3g}") if (a >= 0) != (b >= 0) else None)
    be.per_seed = per_seed
    found = [x for x in per_seed if x is not None]
    be.spread = (min(found), max(found)) if found else None
    be.requests_per_day = be.crossings[0]
    spread = (f", seeds {fmt_num(be.spread[0])}..{fmt_num(be.spread[1])}" if be.spread else "")
    if len(found) < len(seeds):
        spread += f"; {len(seeds) - len(found)} of {len(seeds)} seeds do not cross in that bracket"
    be.note = (f"under Runpod billing mixed is cheaper {be.sides[0]} {fmt_num(be.requests_per_day)} requests/day "
               f"(mean of seeds {seeds[0]}..{seeds[-1]}{spread})")
    if len(be.crossings) > 1:
        be.note += "; then " + "; ".join(f"{s} {fmt_num(x)}" for x, s in zip(be.crossings[1:], be.sides[1:]))
    be.note += f"; searched {where}{tail}"
    return be


def break_even_requests(i: "EstimateInputs", p: "PricingProfile") -> tuple[float | None, str]:
    """(requests/day, note) of break_even_search."""
    be = break_even_search(i, p)
    return be.requests_per_day, be.note
