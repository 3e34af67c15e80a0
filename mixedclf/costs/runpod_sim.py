"""A seeded discrete-event simulation of one Runpod serverless endpoint: who serves each request, and what is billed.

Runpod bills a worker "from when it starts until it fully stops, rounded up to the nearest second": a flex
worker's run is its cold start, every request it executes, the idle gaps between them and the idle timeout after
the last one (docs/cost-model.md, "What Runpod bills"). Active workers (the endpoint's min workers) never stop and
are billed around the clock at the active rate by the caller, not here.

The model, per endpoint, requests taken first come first served:

* an idle active worker takes the request; else an idle warm flex worker (the one freed most recently, so the
  others can reach their idle timeout and stop);
* else, below max workers, a new flex worker starts when it would serve the request sooner than waiting for a
  busy one (it executes after its cold start);
* else the request queues for the worker that frees first: that wait is the queueing delay.

Pure Python (no numpy needed at these sizes), deterministic for a given seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Literal

#: Runpod's defaults: idle timeout 5 s (serverless pricing page), max workers 3, active (min) workers 0 (glossary).
DEFAULT_IDLE_TIMEOUT_S = 5.0
DEFAULT_MAX_WORKERS = 3
DEFAULT_MIN_WORKERS = 0
#: Whose defaults an endpoint left unset takes: (idle timeout s, (min, max) workers). console: the Runpod console's
#: (endpoint settings page); flash: runpod-flash's `Endpoint` (idle_timeout=60, workers None -> (0, 1)).
DEFAULTS: dict[str, tuple[float, tuple[int, int]]] = {
    "console": (DEFAULT_IDLE_TIMEOUT_S, (DEFAULT_MIN_WORKERS, DEFAULT_MAX_WORKERS)),
    "flash": (60.0, (0, 1)),
}
#: Runpod's bounds on an endpoint's idle timeout, seconds (endpoint settings; Flash validates 1..3600).
MAX_IDLE_TIMEOUT_S = 3600.0

Arrivals = Literal["poisson", "even"]


@dataclass(frozen=True)
class EndpointSpec:
    name: str
    exec_s: float  # seconds one request executes on a worker
    cold_start_s: float  # seconds from "start a worker" to ready (billed)
    idle_timeout_s: float  # a flex worker stops this long after its last request (billed)
    min_workers: int = DEFAULT_MIN_WORKERS  # active workers: always on
    max_workers: int = DEFAULT_MAX_WORKERS
    start_billed: bool = True  # whether a run's cold start is billed (Runpod's pages disagree: docs/cost-model.md)


@dataclass
class EndpointRun:
    """What one simulated endpoint did with its requests."""

    requests: int
    runs: int = 0  # flex worker runs, start to full stop (each one a cold start)
    run_seconds: float = 0.0  # their lengths, unrounded
    billed_seconds: int = 0  # their lengths, each rounded up to the whole second
    busy_flex_seconds: float = 0.0  # execution seconds on flex workers
    queue_delays: list[float] = field(default_factory=list)  # per request: waiting for a busy worker
    waits: list[float] = field(default_factory=list)  # per request: arrival to execution start (cold starts too)
    cold_waits: int = 0  # requests that waited for a worker's cold start
    cap_waits: int = 0  # requests that waited because max workers were running
    departures: list[float] = field(default_factory=list)  # per request (in arrival order): execution end
    peak_workers: int = 0  # most workers running at once, active included


def billed_seconds(run_length: float) -> int:
    """A run's billed seconds: its length rounded up to the whole second (float noise below 1 ns ignored)."""
    return max(0, math.ceil(run_length - 1e-9))


def simulate_endpoint(arrivals: list[float], spec: EndpointSpec) -> EndpointRun:
    """Serve `arrivals` (sorted seconds) on one endpoint; see the module docstring for the rules."""
    return _serve(arrivals, spec, -1)[1]


def simulate_endpoint_marked(arrivals: list[float], spec: EndpointSpec, mark: int) -> tuple[EndpointRun, EndpointRun]:
    """(the run of the first `mark` arrivals alone, the run of all of them) from one simulation.

    Exact, field for field: a request's service depends only on the requests before it, so the first `mark`
    requests are served as they would be alone; the run alone then ends by closing its running flex workers,
    in the same order and with the same sums as simulate_endpoint's end.
    """
    if not 0 <= mark <= len(arrivals):
        raise ValueError(f"{spec.name}: mark {mark} outside 0..{len(arrivals)}")
    first, whole = _serve(arrivals, spec, mark)
    assert first is not None
    return first, whole


def _serve(arrivals: list[float], spec: EndpointSpec, mark: int) -> tuple[EndpointRun | None, EndpointRun]:
    """The simulation loop (counters in locals: it is the hot path of every Runpod figure); with 0 <= mark, also
    the run of the first `mark` arrivals alone."""
    if spec.max_workers < 1 or not 0 <= spec.min_workers <= spec.max_workers:
        raise ValueError(f"{spec.name}: workers must satisfy 0 <= min <= max and max >= 1")
    ex, cold, idle = spec.exec_s, spec.cold_start_s, spec.idle_timeout_s
    trim = 0.0 if spec.start_billed else cold  # a run's billed length leaves its start out when the start is free
    min_workers = spec.min_workers
    flex_cap = spec.max_workers - min_workers
    active = [-math.inf] * min_workers  # free_at of each active worker
    flex: list[list[float]] = []  # [free_at, run_start] of each running flex worker
    runs, run_s, billed, busy, cold_waits, cap_waits, peak = 0, 0.0, 0, 0.0, 0, 0, 0
    queue_delays: list[float] = []
    waits: list[float] = []
    departures: list[float] = []
    add_delay, add_wait, add_departure = queue_delays.append, waits.append, departures.append
    ceil, inf = math.ceil, math.inf
    marked = None
    for k, t in enumerate(arrivals):
        if k == mark:
            marked = _closed_at(k, (runs, run_s, billed, busy, cold_waits, cap_waits, peak), queue_delays, waits,
                                departures, flex, idle, trim, min_workers)
        wait = 0.0
        # an idle active worker first
        i = -1
        if min_workers:
            for j in range(min_workers):
                if active[j] <= t:
                    i = j
                    break
        if i >= 0:
            start = t
            active[i] = start + ex
        else:
            # one pass over the flex workers: stop the expired, find the idle one freed last and the first free
            best = None
            first = None
            stopped = False
            for w in flex:
                f = w[0]
                if f + idle < t:
                    length = f + idle - w[1] - trim
                    runs += 1
                    run_s += length
                    b = ceil(length - 1e-9)
                    billed += b if b > 0 else 0
                    stopped = True
                elif f <= t:
                    if best is None or f > best[0]:
                        best = w
                elif first is None or f < first[0]:
                    first = w
            if stopped:
                flex = [w for w in flex if w[0] + idle >= t]
            if best is not None:
                start = t
                best[0] = start + ex
                busy += ex
            else:
                a_first = min(active) if min_workers else inf
                earliest = first[0] if first is not None and first[0] < a_first else a_first
                if len(flex) < flex_cap and t + cold < earliest:
                    start = t + cold
                    flex.append([start + ex, t])
                    cold_waits += 1
                    busy += ex
                    if len(flex) + min_workers > peak:
                        peak = len(flex) + min_workers
                else:  # every worker busy or starting: queue for the first one free
                    start = earliest
                    wait = start - t
                    cap_waits += len(flex) >= flex_cap
                    if first is not None and first[0] == earliest:
                        first[0] = start + ex
                        busy += ex
                    else:
                        active[active.index(a_first)] = start + ex
        add_delay(wait)
        add_wait(start - t)
        add_departure(start + ex)
    n = len(arrivals)
    if mark == n:
        marked = _closed_at(n, (runs, run_s, billed, busy, cold_waits, cap_waits, peak), queue_delays, waits,
                            departures, flex, idle, trim, min_workers)
    whole = _closed_at(n, (runs, run_s, billed, busy, cold_waits, cap_waits, peak), queue_delays, waits, departures,
                       flex, idle, trim, min_workers, copy=False)
    return marked, whole


def _closed_at(n: int, counters: tuple, queue_delays: list[float], waits: list[float], departures: list[float],
               flex: list[list[float]], idle: float, trim: float, min_workers: int, copy: bool = True) -> EndpointRun:
    """The run of the first `n` requests, its running flex workers closed in order (the end of a run)."""
    runs, run_s, billed, busy, cold_waits, cap_waits, peak = counters
    for w in flex:
        length = w[0] + idle - w[1] - trim
        runs += 1
        run_s += length
        billed += billed_seconds(length)
    return EndpointRun(
        requests=n, runs=runs, run_seconds=run_s, billed_seconds=billed, busy_flex_seconds=busy,
        queue_delays=queue_delays[:n] if copy else queue_delays, waits=waits[:n] if copy else waits,
        cold_waits=cold_waits, cap_waits=cap_waits, departures=departures[:n] if copy else departures,
        peak_workers=max(peak, min_workers),
    )


def arrival_times(requests_per_day: float, active_hours: float, n: int, mode: Arrivals = "poisson",
                  seed: int = 0, repeat: int = 1) -> list[float]:
    """n request arrival times (seconds, sorted) at `requests_per_day` spread over `active_hours` of each day,
    the whole pattern repeated `repeat` times back to back.

    poisson: a Poisson process conditioned on n arrivals (n uniform points over the active time they span), so
    the per-request cost carries no noise from how many requests happened to arrive. even: one request every
    1/lambda seconds, the first half a gap after the start.
    """
    if requests_per_day <= 0 or n <= 0:
        return []
    active_s = active_hours * 3600.0
    lam = requests_per_day / active_s
    span = n / lam
    if mode == "even":
        taus = [(k + 0.5) / lam for k in range(n)]
    else:
        rng = random.Random(seed)
        taus = sorted(rng.random() * span for _ in range(n))
    taus = [tau + k * span for k in range(repeat) for tau in taus]
    if active_s >= 86400.0:
        return taus
    return [(tau // active_s) * 86400.0 + tau % active_s for tau in taus]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by the nearest-rank method; 0 for no values."""
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100.0 * len(s)) - 1))]
