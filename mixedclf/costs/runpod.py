"""The `runpod` billing model of `mixedclf estimate`: what Runpod serverless would bill for the same traffic.

One endpoint per stage (mixed: pre on CPU, inference on GPU, post on CPU; GPU-only: one GPU endpoint), each
with its own idle timeout, cold start and min/max workers, simulated request by request
(mixedclf.costs.runpod_sim) over seeded arrivals. Flex worker runs are billed start to full stop, rounded up
to the whole second, at the flex rate; active (min) workers and the always-on orchestrator are billed around
the clock at the active rate. Formulas, sources and worked examples: docs/cost-model.md.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import TYPE_CHECKING, Literal, NamedTuple

from pydantic import BaseModel

from mixedclf.costs.accounting import clean, pct
from mixedclf.costs.fmt import fmt_num
from mixedclf.costs.runpod_sim import (
    EndpointRun,
    EndpointSpec,
    arrival_times,
    percentile,
    simulate_endpoint,
    simulate_endpoint_marked,
)

if TYPE_CHECKING:  # pragma: no cover
    from mixedclf.costs.per_request import EstimateInputs
    from mixedclf.costs.pricing import PricingProfile

DAY_S = 86400.0
#: Runpod's default account spend limit, dollars per hour (serverless pricing page, "Account limits").
DEFAULT_SPEND_LIMIT_PER_HOUR = 80.0
#: The fewest requests simulated (low rates span many days), and the fewest for sweeps and break-even scans.
MIN_SIM_REQUESTS = 2000
SCAN_SIM_REQUESTS = 2000  # per pass (each simulation runs one pass and two passes: three in all)


class EndpointBill(BaseModel):
    """One simulated endpoint: its settings, what it billed per day, and how long requests waited."""

    name: str  # pre | inference | post | gpu-only
    worker: Literal["cpu", "gpu"]
    exec_s: float
    cold_start_s: float
    idle_timeout_s: float
    min_workers: int
    max_workers: int
    flex_rate: float
    active_rate: float
    load_workers: float  # offered load: requests/s x exec seconds (workers needed on average)
    saturated: bool  # the load needs more workers than max: the queue grows without bound
    runs_per_request: float  # flex worker runs (cold starts) per request
    run_s_per_request: float  # flex worker seconds per request, unrounded
    billed_s_per_request: float  # the same, each run rounded up to the whole second
    idle_s_per_request: float  # billed flex seconds that neither start a worker nor execute a request
    day_edge_billed_s: int = 0  # billed seconds a day of the morning's first start and the evening's last idle
    flex_per_day: float
    active_per_day: float
    per_day: float
    mean_queue_s: float
    p95_queue_s: float
    max_queue_s: float
    cold_start_waits_per_request: float
    capped_per_request: float  # share of requests that waited because max workers were running
    peak_workers: int


class RunpodBill(BaseModel):
    arrivals: str
    seed: int
    simulated_requests: int
    mixed: list[EndpointBill]
    gpu_only: list[EndpointBill]
    orchestrator_workers: int
    orchestrator_per_day: float
    mixed_per_request: float
    gpu_only_per_request: float
    mixed_per_day: float
    gpu_only_per_day: float
    mixed_per_month: float
    gpu_only_per_month: float
    savings_per_day: float
    savings_per_month: float
    savings_pct: float
    mixed_spend_per_hour: float  # mean over active hours
    gpu_only_spend_per_hour: float
    break_even_requests_per_day: float | None = None
    break_even_requests_note: str = ""
    warnings: list[str] = []


# ------------------------------------------------------------------------------------- endpoints


def endpoint_specs(i: "EstimateInputs") -> tuple[list[tuple[str, str, EndpointSpec]], tuple[str, str, EndpointSpec]]:
    """(mixed: [(name, worker, spec)] in pipeline order, GPU-only: (name, worker, spec)).

    A hop's overhead is execution time on both sides: pre sends, inference receives and sends, post receives.
    """
    o = i.overhead_sec
    cmin, cmax = i.cpu_workers
    gmin, gmax = i.gpu_workers
    cold_cpu = i.cold_start_cpu_sec or 0.0
    mixed = [
        ("pre", "cpu", EndpointSpec("pre", i.pre_sec + o, cold_cpu, i.idle_pre, cmin, cmax)),
        ("inference", "gpu", EndpointSpec("inference", i.gpu_sec + 2 * o, i.cold_start_sec, i.idle_gpu, gmin, gmax)),
        ("post", "cpu", EndpointSpec("post", i.post_sec + o, cold_cpu, i.idle_post, cmin, cmax)),
    ]
    go = ("gpu-only", "gpu", EndpointSpec("gpu-only", i.pre_sec + i.gpu_sec + i.post_sec, i.cold_start_sec,
                                          i.idle_gpu, gmin, gmax))
    return mixed, go


def sim_size(requests_per_day: float, cap: int) -> int:
    """Requests per simulated pass: a day's worth, at least MIN_SIM_REQUESTS (low rates span many days), at most
    cap."""
    return max(1, min(cap, max(MIN_SIM_REQUESTS, math.ceil(requests_per_day))))


def _bill(name: str, worker: str, spec: EndpointSpec, one: EndpointRun, two: EndpointRun, i: "EstimateInputs",
          flex_rate: float, active_rate: float) -> EndpointBill:
    """One endpoint's bill from two simulations of the same arrival pattern: once, and twice back to back.

    Their difference is what one more pass costs with the workers already in their usual state, free of the
    simulation's own edges (the first cold start, the last idle tail). Those edges are real once a day when
    requests stop overnight (active hours < 24) and a pass is shorter than a day: then they are added per day.
    """
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
    idle = max(0.0, run_s - runs * spec.cold_start_s - busy)
    flex_day = (billed / n * r + edges) * flex_rate
    active_day = spec.min_workers * DAY_S * active_rate
    delays = two.queue_delays[one.requests:]
    return EndpointBill(
        name=name, worker=worker, exec_s=clean(spec.exec_s), cold_start_s=spec.cold_start_s,  # type: ignore[arg-type]
        idle_timeout_s=spec.idle_timeout_s, min_workers=spec.min_workers, max_workers=spec.max_workers,
        flex_rate=flex_rate, active_rate=active_rate, load_workers=clean(load),
        saturated=load >= spec.max_workers and r > 0,
        runs_per_request=clean(runs / n), run_s_per_request=clean(run_s / n),
        billed_s_per_request=clean(billed / n), idle_s_per_request=clean(idle / n),
        day_edge_billed_s=edges, flex_per_day=clean(flex_day), active_per_day=clean(active_day),
        per_day=clean(flex_day + active_day), mean_queue_s=clean(sum(delays) / n),
        p95_queue_s=clean(percentile(delays, 95)), max_queue_s=clean(max(delays, default=0.0)),
        cold_start_waits_per_request=clean(max(0, two.cold_waits - one.cold_waits) / n),
        capped_per_request=clean(max(0, two.cap_waits - one.cap_waits) / n), peak_workers=two.peak_workers,
    )


class Load(NamedTuple):
    """What an endpoint chain's arrivals depend on: with the chain's specs, the key of a memoized simulation."""

    requests_per_day: float
    active_hours: float
    n: int  # requests per pass
    arrivals: str
    seed: int


class _Memo:
    """Least recently used results up to a budget of simulated requests, so a long --sim-requests cannot fill
    memory: a result heavier than the whole budget is computed and not kept."""

    def __init__(self, budget: int) -> None:
        self.budget, self.held = budget, 0
        self.items: OrderedDict[object, tuple[object, int]] = OrderedDict()

    def get(self, key: object) -> object | None:
        hit = self.items.get(key)
        if hit is None:
            return None
        self.items.move_to_end(key)
        return hit[0]

    def put(self, key: object, value: object, weight: int) -> None:
        if weight > self.budget or key in self.items:
            return
        self.items[key] = (value, weight)
        self.held += weight
        while self.held > self.budget:
            self.held -= self.items.popitem(last=False)[1][1]

    def clear(self) -> None:
        self.items.clear()
        self.held = 0


#: Weights count requests kept (departures, waits, arrival keys): 1.5 M is a few tens of MB, and every figure of
#: one estimate at the default 10,000 requests per pass (headline, advice, break-even scan) fits.
MEMO = _Memo(budget=1_500_000)


def _arrivals(load: Load) -> list[float]:
    """The seeded arrivals twice back to back; the first `load.n` are the one-pass arrivals (read-only: shared)."""
    key = ("arrivals", load)
    hit = MEMO.get(key)
    if hit is None:
        hit = arrival_times(load.requests_per_day, load.active_hours, load.n, load.arrivals,  # type: ignore[arg-type]
                            load.seed, repeat=2)
        MEMO.put(key, hit, 2 * load.n)
    return hit  # type: ignore[return-value]


def _passes(spec: EndpointSpec, one_in: list[float], two_in: list[float]) -> tuple[EndpointRun, EndpointRun]:
    """The endpoint over one pass and over two: one simulation where the one-pass arrivals open the two-pass
    ones (always at the first endpoint; downstream when no second-pass request leaves before a first-pass one)."""
    if two_in[: len(one_in)] == one_in:
        return simulate_endpoint_marked(two_in, spec, len(one_in))
    return simulate_endpoint(one_in, spec), simulate_endpoint(two_in, spec)


def chain_runs(chain: tuple[EndpointSpec, ...], load: Load) -> list[tuple[EndpointRun, EndpointRun]]:
    """Each endpoint of `chain` fed by the one before it, simulated once and over two passes (read-only results).

    Memoized per (endpoint, arrivals): the simulation is deterministic, so a figure that changes one endpoint (an
    advice's idle timeout) re-simulates only what that changes, and no figure simulates again what another
    already did (GPU-only, the unchanged stages, a sweep rate the break-even scan also visits). The first
    endpoint's arrivals are named by their load; the others' by their values (the departures before them).
    """
    out: list[tuple[EndpointRun, EndpointRun]] = []
    for k, spec in enumerate(chain):
        if k == 0:
            key: tuple = ("first", spec, load)
        else:
            one_in, two_in = sorted(out[-1][0].departures), sorted(out[-1][1].departures)
            key = ("after", spec, tuple(one_in), tuple(two_in))
        runs = MEMO.get(key)
        if runs is None:
            if k == 0:
                two_in = _arrivals(load)
                one_in = two_in[: load.n]
            runs = _passes(spec, one_in, two_in)
            MEMO.put(key, runs, 4 * load.n)
        out.append(runs)  # type: ignore[arg-type]
    return out


def _load(i: "EstimateInputs", cap: int) -> Load:
    n = sim_size(i.requests_per_day, cap) if i.requests_per_day > 0 else 0
    return Load(i.requests_per_day, i.active_hours, n, i.arrivals, i.seed)


def _chain_bills(pipeline: list[tuple[str, str, EndpointSpec]], i: "EstimateInputs", p: "PricingProfile",
                 load: Load) -> list[EndpointBill]:
    runs = chain_runs(tuple(spec for _, _, spec in pipeline), load)
    return [_bill(name, worker, spec, one, two, i, p.rate(worker), p.active_rate(worker))
            for (name, worker, spec), (one, two) in zip(pipeline, runs, strict=True)]


def _simulate(i: "EstimateInputs", p: "PricingProfile", cap: int) -> tuple[list[EndpointBill], list[EndpointBill], int]:
    mixed, go = endpoint_specs(i)
    load = _load(i, cap)
    return _chain_bills(mixed, i, p, load), _chain_bills([go], i, p, load), load.n


def mixed_per_day(i: "EstimateInputs", p: "PricingProfile", cap: int) -> tuple[list[EndpointBill], float]:
    """The mixed endpoints' bills and $/day (orchestrator included, rounded as runpod_bill rounds) alone: what a
    mixed-only what-if needs."""
    bills = _chain_bills(endpoint_specs(i)[0], i, p, _load(i, cap))
    return bills, clean(sum(b.per_day for b in bills) + clean(i.orchestrator_workers * DAY_S * p.active_rate("cpu")))


def totals(i: "EstimateInputs", p: "PricingProfile", cap: int = SCAN_SIM_REQUESTS) -> tuple[float, float]:
    """(mixed $/day, GPU-only $/day) under the runpod model: what sweeps and break-even scans evaluate."""
    mixed, go, _ = _simulate(i, p, cap)
    orch = i.orchestrator_workers * DAY_S * p.active_rate("cpu")
    return sum(b.per_day for b in mixed) + orch, sum(b.per_day for b in go)


# ------------------------------------------------------------------------------------- the bill


def runpod_bill(i: "EstimateInputs", p: "PricingProfile", *, break_even: bool = True) -> RunpodBill:
    """What Runpod would bill per day and month for `i` at `p`'s flex and active rates."""
    mixed, go, n = _simulate(i, p, i.sim_requests)
    orch = clean(i.orchestrator_workers * DAY_S * p.active_rate("cpu"))
    m_day = clean(sum(b.per_day for b in mixed) + orch)
    g_day = clean(sum(b.per_day for b in go))
    r, days = i.requests_per_day, i.days_per_month
    hours = i.active_hours

    def spend_per_hour(bills: list[EndpointBill], always_on: float) -> float:
        return clean(sum(b.flex_per_day for b in bills) / hours + (sum(b.active_per_day for b in bills) + always_on) / 24)

    bill = RunpodBill(
        arrivals=i.arrivals, seed=i.seed, simulated_requests=n, mixed=mixed, gpu_only=go,
        orchestrator_workers=i.orchestrator_workers, orchestrator_per_day=orch,
        mixed_per_request=clean(m_day / r) if r > 0 else 0.0, gpu_only_per_request=clean(g_day / r) if r > 0 else 0.0,
        mixed_per_day=m_day, gpu_only_per_day=g_day, mixed_per_month=clean(m_day * days),
        gpu_only_per_month=clean(g_day * days), savings_per_day=clean(g_day - m_day),
        savings_per_month=clean((g_day - m_day) * days), savings_pct=pct(g_day - m_day, g_day),
        mixed_spend_per_hour=spend_per_hour(mixed, orch), gpu_only_spend_per_hour=spend_per_hour(go, 0.0),
    )
    bill.warnings = _warnings(bill, i)
    if break_even:
        bill.break_even_requests_per_day, bill.break_even_requests_note = break_even_requests(i, p)
    return bill


def _warnings(b: RunpodBill, i: "EstimateInputs") -> list[str]:
    out = []
    for arch, bills in (("mixed", b.mixed), ("GPU-only", b.gpu_only)):
        for e in bills:
            if e.saturated:
                out.append(
                    f"{arch} {e.name} endpoint: the traffic needs {e.load_workers:.2f} workers on average but max "
                    f"workers is {e.max_workers}; requests queue without bound (p95 wait {e.p95_queue_s:,.0f} s over "
                    f"{b.simulated_requests:,} simulated requests): raise max workers."
                )
            elif e.capped_per_request > 0:
                out.append(
                    f"{arch} {e.name} endpoint: all {e.max_workers} workers busy at times: "
                    f"{e.capped_per_request:.1%} of requests queue at the cap; waits {e.mean_queue_s:.3f} s on "
                    f"average, p95 {e.p95_queue_s:.3f} s, max {e.max_queue_s:.3f} s."
                )
    limit = i.spend_limit_per_hour
    for arch, spend in (("mixed", b.mixed_spend_per_hour), ("GPU-only", b.gpu_only_spend_per_hour)):
        if spend > limit:
            out.append(
                f"{arch} spends ${spend:,.2f}/hour on average over the active hours, above the ${limit:g}/hour spend "
                "limit (Runpod's default account limit): Runpod stops workers at the limit; ask support to raise it."
            )
    return out


def break_even_requests(i: "EstimateInputs", p: "PricingProfile") -> tuple[float | None, str]:
    """The requests/day at which mixed and GPU-only cost the same under the runpod model.

    Scanned over 0.1 .. 10^7 requests/day (one point a decade, SCAN_SIM_REQUESTS requests each, the same seed
    throughout), each sign change refined by 8 bisections on a log scale (1% apart), reported to 2 significant
    digits; the first crossing is returned.
    """

    def f(r: float) -> float:
        m, g = totals(i.model_copy(update={"requests_per_day": r}), p)
        return (m - g) / r

    grid = [10.0**k for k in range(-1, 8)]
    vals = [f(r) for r in grid]
    crossings: list[tuple[float, str]] = []
    for (r0, v0), (r1, v1) in zip(zip(grid, vals), zip(grid[1:], vals[1:])):
        if (v0 >= 0) != (v1 >= 0):
            lo, hi, flo = r0, r1, v0
            for _ in range(8):
                mid = math.sqrt(lo * hi)
                fm = f(mid)
                if (fm >= 0) == (flo >= 0):
                    lo, flo = mid, fm
                else:
                    hi = mid
            crossings.append((float(f"{math.sqrt(lo * hi):.2g}"), "above" if v1 < 0 else "below"))
    if not crossings:
        if all(v < 0 for v in vals):
            return None, "under Runpod billing mixed is cheaper at every request rate from 0.1 to 10,000,000/day"
        return None, "under Runpod billing mixed is not cheaper at any request rate from 0.1 to 10,000,000/day"
    r, side = crossings[0]
    note = f"under Runpod billing mixed is cheaper {side} {fmt_num(r)} requests/day"
    if len(crossings) > 1:
        note += "; " + "; ".join(f"{s} {fmt_num(x)}" for x, s in crossings[1:])
    return r, note
