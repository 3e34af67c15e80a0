"""The endpoint-chain simulation `estimate --billing runpod` prices: each endpoint of a chain fed by the one before
it, over one pass and two passes of seeded arrivals, memoized so that no figure of one estimate (headline, advice,
sweep) simulates again what another already did. The simulation is deterministic, so a cached result is exact.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, NamedTuple

from mixedclf.costs.runpod_sim import (
    EndpointRun,
    EndpointSpec,
    arrival_times,
    simulate_endpoint,
    simulate_endpoint_marked,
)


class Load(NamedTuple):
    """What a chain's arrivals depend on: with the chain's endpoints, the key of a memoized simulation."""

    requests_per_day: float
    active_hours: float
    n: int  # requests per pass
    arrivals: str
    seed: int


class _Memo:
    """Least recently used results up to a budget of weight (list entries kept), so a long --sim-requests cannot
    fill memory: a result heavier than the whole budget is computed by the caller and not kept."""

    def __init__(self, budget: int) -> None:
        self.budget, self.held = budget, 0
        self.items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()

    def get(self, key: Hashable) -> Any:
        hit = self.items.get(key)
        if hit is None:
            return None
        self.items.move_to_end(key)
        return hit[0]

    def put(self, key: Hashable, value: Any, weight: int) -> None:
        if weight > self.budget or key in self.items:
            return
        self.items[key] = (value, weight)
        self.held += weight
        while self.held > self.budget:
            self.held -= self.items.popitem(last=False)[1][1]

    def clear(self) -> None:
        self.items.clear()
        self.held = 0


#: Weights count list entries kept (14 to 17 per request of a pass; many share their float, ~21 bytes a weight):
#: 4 M is under 90 MB, and the headline bill, the advice's what-ifs and a 10-point sweep of one estimate at the
#: default 10,000 requests a pass (about 2.4 M) fit, so none of them is simulated twice; past the budget the
#: least recently used goes, and may be simulated again. The break-even scan's simulations are not kept here
#: (`keep=False`): none of its rates is another figure's, and the search keeps its own values.
MEMO = _Memo(budget=4_000_000)


@dataclass(frozen=True)
class Served:
    """One endpoint simulated over one pass and two (read-only: memoized and shared)."""

    one: EndpointRun
    two: EndpointRun
    one_out: list[float]  # the one-pass departures, sorted: the next endpoint's one-pass arrivals
    two_out: list[float]  # the two-pass departures, sorted
    order: list[int]  # the two-pass request (index into its arrivals) behind each of two_out


@dataclass(frozen=True)
class ChainStep:
    """One endpoint of a chain: its simulation, and the request (arrival index) behind each of its departures."""

    served: Served
    ids: list[int]

    @property
    def one(self) -> EndpointRun:
        return self.served.one

    @property
    def two(self) -> EndpointRun:
        return self.served.two


def load_arrivals(load: Load, keep: bool = True) -> list[float]:
    """The seeded arrivals twice back to back; the first `load.n` are the one-pass arrivals (read-only: shared)."""
    key = ("arrivals", load)
    hit = MEMO.get(key)
    if hit is None:
        hit = arrival_times(load.requests_per_day, load.active_hours, load.n, load.arrivals,  # type: ignore[arg-type]
                            load.seed, repeat=2)
        if keep:
            MEMO.put(key, hit, len(hit))
    return hit


def _passes(spec: EndpointSpec, one_in: list[float], two_in: list[float]) -> tuple[EndpointRun, EndpointRun]:
    """The endpoint over one pass and over two: one simulation where the one-pass arrivals open the two-pass
    ones (always at the first endpoint; downstream when no second-pass request leaves before a first-pass one)."""
    if two_in[: len(one_in)] == one_in:
        return simulate_endpoint_marked(two_in, spec, len(one_in))
    return simulate_endpoint(one_in, spec), simulate_endpoint(two_in, spec)


def _serve(spec: EndpointSpec, key: Hashable, one_in: list[float], two_in: list[float], weight: int,
           keep: bool) -> Served:
    hit = MEMO.get(key)
    if hit is None:
        one, two = _passes(spec, one_in, two_in)
        order = sorted(range(len(two.departures)), key=two.departures.__getitem__)
        hit = Served(one=one, two=two, one_out=sorted(one.departures), two_out=[two.departures[m] for m in order],
                     order=order)
        if keep:
            MEMO.put(key, hit, weight)
    return hit


def chain_runs(chain: tuple[EndpointSpec, ...], load: Load, *, keep: bool = True) -> list[ChainStep]:
    """Each endpoint of `chain` fed by the one before it (a request enters a stage when it leaves the one before),
    simulated over one pass and two.

    Memoized in MEMO per (endpoint, arrivals): the first endpoint's arrivals named by their load, the others' by
    their values (the departures before them). The simulation is deterministic, so a figure that changes one
    endpoint (an advice's idle timeout) re-simulates only it and those after it whose arrivals it changes, and no
    figure simulates again what another already did (GPU-only and the unchanged stages of a what-if, a sweep
    rate). `keep=False` reads the memo but adds nothing to it.
    """
    out: list[ChainStep] = []
    n = max(load.n, 1)
    for k, spec in enumerate(chain):
        if k == 0:
            two_in = load_arrivals(load, keep)
            served = _serve(spec, ("first", spec, load), two_in[: load.n], two_in, 14 * n, keep)
            ids = served.order
        else:
            prev = out[-1]
            one_in, two_in = prev.served.one_out, prev.served.two_out
            # the key holds the arrivals it is named by (shared floats: a pointer each)
            served = _serve(spec, ("after", spec, tuple(one_in), tuple(two_in)), one_in, two_in, 17 * n, keep)
            ids = [prev.ids[m] for m in served.order]
        out.append(ChainStep(served=served, ids=ids))
    return out
