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

Arrivals = Literal["poisson", "even"]


@dataclass(frozen=True)
class EndpointSpec:
    name: str
    exec_s: float  # seconds one request executes on a worker
    cold_start_s: float  # seconds from "start a worker" to ready (billed)
    idle_timeout_s: float  # a flex worker stops this long after its last request (billed)
    min_workers: int = DEFAULT_MIN_WORKERS  # active workers: always on
    max_workers: int = DEFAULT_MAX_WORKERS


@dataclass
class EndpointRun:
    """What one simulated endpoint did with its requests."""

    requests: int
    runs: int = 0  # flex worker runs, start to full stop (each one a cold start)
    run_seconds: float = 0.0  # their lengths, unrounded
    billed_seconds: int = 0  # their lengths, each rounded up to the whole second
    busy_flex_seconds: float = 0.0  # execution seconds on flex workers
    queue_delays: list[float] = field(default_factory=list)  # per request: waiting for a busy worker
    cold_waits: int = 0  # requests that waited for a worker's cold start
    cap_waits: int = 0  # requests that waited because max workers were running
    departures: list[float] = field(default_factory=list)  # per request (in arrival order): execution end
    peak_workers: int = 0  # most workers running at once, active included


def billed_seconds(run_length: float) -> int:
    """A run's billed seconds: its length rounded up to the whole second (float noise below 1 ns ignored)."""
    return max(0, math.ceil(run_length - 1e-9))


def simulate_endpoint(arrivals: list[float], spec: EndpointSpec) -> EndpointRun:
    """Serve `arrivals` (sorted seconds) on one endpoint; see the module docstring for the rules."""
    return _serve(arrivals, spec, None)[1]


def simulate_endpoint_marked(arrivals: list[float], spec: EndpointSpec, mark: int) -> tuple[EndpointRun, EndpointRun]:
    """(what simulate_endpoint(arrivals[:mark]) returns, what simulate_endpoint(arrivals) returns), in one pass.

    Exact, not approximate: a request's service depends only on the requests before it, so the state after the
    first `mark` requests is the shorter run's state, which then only closes its running workers.
    """
    one, whole = _serve(arrivals, spec, mark)
    assert one is not None
    return one, whole


def _serve(arrivals: list[float], spec: EndpointSpec, mark: int | None) -> tuple[EndpointRun | None, EndpointRun]:
    if spec.max_workers < 1 or not 0 <= spec.min_workers <= spec.max_workers:
        raise ValueError(f"{spec.name}: workers must satisfy 0 <= min <= max and max >= 1")
    ex, cold, idle = spec.exec_s, spec.cold_start_s, spec.idle_timeout_s
    min_workers = spec.min_workers
    flex_cap = spec.max_workers - min_workers
    active = [-math.inf] * min_workers  # free_at of each active worker
    flex: list[list[float]] = []  # [free_at, run_start] of each running flex worker
    out = EndpointRun(requests=len(arrivals))
    inf = math.inf

    def close(w: list[float]) -> None:
        length = w[0] + idle - w[1]
        out.runs += 1
        out.run_seconds += length
        out.billed_seconds += billed_seconds(length)

    # the per-request counters live in locals (this loop is what `estimate` spends its time on) and are written
    # to `out` where a run is read: at the mark and at the end
    busy, cold_waits, cap_waits, peak = 0.0, 0, 0, 0
    runs, run_s, billed = 0, 0.0, 0  # closed flex runs: count, seconds, billed seconds (as close() counts them)
    ceil = math.ceil
    queue_delays, departures = out.queue_delays, out.departures
    delay, depart = queue_delays.append, departures.append
    marked = None
    segments = (arrivals,) if mark is None else (arrivals[:mark], arrivals[mark:])
    for part, segment in enumerate(segments):
        if part == 1:
            out.busy_flex_seconds, out.cold_waits, out.cap_waits, out.peak_workers = busy, cold_waits, cap_waits, peak
            out.runs, out.run_seconds, out.billed_seconds = runs, run_s, billed
            marked = _closed_copy(out, flex, idle, min_workers, len(segments[0]))
        for t in segment:
            wait = 0.0
            # an idle active worker first
            i = -1
            if active:
                for k in range(len(active)):
                    if active[k] <= t:
                        i = k
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
                    if f + idle < t:  # close(w), inline
                        length = f + idle - w[1]
                        runs += 1
                        run_s += length
                        whole = ceil(length - 1e-9)
                        billed += whole if whole > 0 else 0
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
                    a_first = min(active) if active else inf
                    earliest = a_first if first is None or a_first < first[0] else first[0]
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
            delay(wait)
            depart(start + ex)
    out.busy_flex_seconds, out.cold_waits, out.cap_waits = busy, cold_waits, cap_waits
    out.runs, out.run_seconds, out.billed_seconds = runs, run_s, billed
    for w in flex:
        close(w)
    out.peak_workers = max(peak, min_workers)
    return marked, out


def _closed_copy(out: EndpointRun, flex: list[list[float]], idle: float, min_workers: int, n: int) -> EndpointRun:
    """The run so far, its running flex workers closed as the end of a run closes them (same order, same sums)."""
    run = EndpointRun(requests=n, runs=out.runs, run_seconds=out.run_seconds, billed_seconds=out.billed_seconds,
                      busy_flex_seconds=out.busy_flex_seconds, queue_delays=out.queue_delays[:n],
                      cold_waits=out.cold_waits, cap_waits=out.cap_waits, departures=out.departures[:n],
                      peak_workers=max(out.peak_workers, min_workers))
    for w in flex:
        length = w[0] + idle - w[1]
        run.runs += 1
        run.run_seconds += length
        run.billed_seconds += billed_seconds(length)
    return run


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
