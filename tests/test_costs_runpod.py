"""The `runpod` billing model: the hand case to the cent, rounding, closed forms, caps, active workers, orchestrator,
spend limit, break-even, the design's example deployment, and the dated price catalogue."""

from __future__ import annotations

import json
from datetime import date

import pytest

from mixedclf.costs import PricingProfile, load_pricing
from mixedclf.costs.estimate import EstimateInputs, estimate
from mixedclf.costs.examples import REFERENCE
from mixedclf.costs.runpod import break_even_requests, runpod_bill, totals
from mixedclf.costs.runpod_sim import EndpointSpec, arrival_times, billed_seconds, simulate_endpoint
from mixedclf.costs.serverless import cold_starts_per_request, idle_per_request
from mixedclf.costs.sweep import crossings

#: docs/cost-model.md, "The hand case": 24 requests a day, one an hour.
HAND = dict(requests_per_day=24, idle_timeout_cpu=5, idle_timeout_gpu=5, cold_start_sec=10, cold_start_cpu_sec=2,
            orchestrator_workers=0, billing="runpod")
#: docs/cost-model.md, "The design's example deployment".
DESIGN = dict(requests_per_day=10_000, idle_timeout_pre=180, idle_timeout_gpu=300, idle_timeout_post=3,
              orchestrator_workers=1, cold_start_sec=10, cold_start_cpu_sec=2, billing="runpod")


def test_hand_case_to_the_cent():
    """Requests an hour apart: every request starts cold, and each worker runs cold start + execution + idle
    timeout, rounded up: GPU-only ceil(10 + 0.28 + 5) = 16 s; mixed ceil(2 + 0.05 + 5) = 8 s CPU,
    ceil(10 + 0.2 + 5) = 16 s GPU, ceil(2 + 0.03 + 5) = 8 s CPU."""
    r = estimate(EstimateInputs(**HAND, arrivals="even"), REFERENCE)
    rp = r.runpod
    assert [(e.name, e.billed_s_per_request, e.runs_per_request) for e in rp.mixed + rp.gpu_only] == [
        ("pre", 8, 1), ("inference", 16, 1), ("post", 8, 1), ("gpu-only", 16, 1)]
    assert rp.gpu_only_per_day == 0.576 and rp.mixed_per_day == 0.6528  # 24 x 16 x 0.0015; 24 x (16 x 0.0015 + 16 x 0.0002)
    assert (r.billing, r.mixed_per_day, r.gpu_only_per_day) == ("runpod", 0.6528, 0.576)
    assert r.mixed_per_month == 19.584 and r.gpu_only_per_month == 17.28
    # the ideal model of the same inputs is busy seconds only
    assert r.ideal.mixed_per_day == pytest.approx(24 * 0.000316) and r.ideal.gpu_only_per_day == pytest.approx(24 * 0.00042)


def test_hand_case_poisson_is_close_and_below():
    """Poisson arrivals at the same rate: a few requests land within a warm worker's idle timeout and share its run."""
    rp = runpod_bill(EstimateInputs(**{**HAND, "arrivals": "poisson"}), REFERENCE, break_even=False)
    assert (round(rp.mixed_per_day, 4), round(rp.gpu_only_per_day, 4)) == (0.6503, 0.5734)  # docs/cost-model.md


def test_cli_json_keeps_the_keys(cli):
    args = ["estimate", "-n", 24, "--billing", "runpod", "--arrivals", "even", "--idle-timeout-cpu", 5,
            "--idle-timeout-gpu", 5, "--cold-start-sec", 10, "--cold-start-cpu-sec", 2, "--orchestrator-workers", 0]
    res = cli(*args, "-f", "json")
    assert res.exit_code == 0, res.stderr
    d = json.loads(res.stdout)
    assert (d["mixed_per_day"], d["gpu_only_per_day"]) == (0.6528, 0.576)
    assert d["mixed_per_month"] == 19.584 and d["gpu_only_per_month"] == 17.28 and d["savings_per_month"] == -2.304
    assert d["billing"] == "runpod" and d["runpod"]["gpu_only"][0]["billed_s_per_request"] == 16
    table = cli(*args).stdout
    assert "What Runpod would bill" in table and "$0.65" in table and "NOT cheaper" in table


def test_runpod_block_only_under_runpod_billing(cli):
    """Ideal billing simulates nothing (issue 19): no Runpod block, a pointer to it instead; runpod shows it."""
    res = cli("estimate")
    assert "billing ideal" in res.stdout and "$94.80" in res.stdout and "What Runpod would bill" not in res.stdout
    assert "--billing runpod" in res.stdout
    md = cli("estimate", "-f", "markdown").stdout
    assert "What Runpod would bill" not in md and "--billing runpod" in md
    assert json.loads(cli("estimate", "-f", "json").stdout)["runpod"] is None
    assert "What Runpod would bill" in cli("estimate", "--billing", "runpod").stdout
    assert "### What Runpod would bill (same inputs)" in cli("estimate", "--billing", "runpod", "-f", "markdown").stdout


def test_rounding_per_run():
    assert billed_seconds(2.3) == 3 and billed_seconds(3.0) == 3 and billed_seconds(0.1 + 0.2 + 2.7) == 3
    assert billed_seconds(0) == 0
    # Runpod's own example: a 2.3 s request on a worker with no cold start and no idle timeout bills 3 s
    run = simulate_endpoint(arrival_times(10, 24, 50, "even"), EndpointSpec("x", 2.3, 0.0, 0.0, 0, 1))
    assert run.runs == 50 and run.billed_seconds == 150 and run.run_seconds == pytest.approx(115)


@pytest.mark.parametrize("lam,busy,timeout", [(0.5, 0.3, 2.0), (0.05, 0.28, 30.0), (2.0, 0.2, 0.5), (0.2, 0.0, 10.0)])
def test_simulation_matches_closed_forms_where_exact(lam, busy, timeout):
    """One worker, no cold start, Poisson arrivals, FIFO (M/D/1): runs per request and idle seconds per request
    have exact closed forms (mixedclf.costs.serverless); the simulation agrees within 2%."""
    n = 60_000
    arr = arrival_times(lam * 86400, 24, n, "poisson", seed=11)
    run = simulate_endpoint(arr, EndpointSpec("x", busy, 0.0, timeout, 0, 1))
    idle = (run.run_seconds - run.busy_flex_seconds) / n
    assert run.runs / n == pytest.approx(cold_starts_per_request(lam, timeout, busy), rel=0.02)
    assert idle == pytest.approx(idle_per_request(lam, timeout, busy), rel=0.02)


@pytest.mark.parametrize("hours,billed", [(24, 86400), (8, 8 * 3600 + 10 + 300)])
def test_always_warm_worker_matches_closed_form(hours, billed):
    """A worker that never reaches its idle timeout is billed every active second; with requests over 8 hours a
    day it also pays, once a day, the morning's cold start and the evening's idle tail."""
    i = EstimateInputs(requests_per_day=20_000, active_hours=hours, idle_timeout_gpu=300, cold_start_sec=10,
                       gpu_workers=(0, 1), orchestrator_workers=0)
    go = runpod_bill(i, REFERENCE, break_even=False).gpu_only[0]
    assert go.per_day / 0.0015 == pytest.approx(billed, rel=0.01)
    if hours == 24:
        assert go.per_day == 129.6  # exactly one worker, all day


def test_queueing_delay_matches_pollaczek_khinchine():
    """At the cap (one worker) requests queue; M/D/1 mean wait = rho D / (2 (1 - rho))."""
    d, lam = 1.0, 0.3
    run = simulate_endpoint(arrival_times(lam * 86400, 24, 100_000, "poisson", seed=5), EndpointSpec("x", d, 0, 5, 0, 1))
    rho = lam * d
    assert sum(run.queue_delays) / run.requests == pytest.approx(rho * d / (2 * (1 - rho)), rel=0.02)


def test_active_workers_are_billed_around_the_clock():
    p = load_pricing(profile="runpod-4090-pro")
    i = EstimateInputs(requests_per_day=500, gpu_workers=(1, 1), orchestrator_workers=0)
    rp = runpod_bill(i, p, break_even=False)
    go = rp.gpu_only[0]
    assert go.runs_per_request == 0 and go.flex_per_day == 0  # the active worker serves everything
    assert rp.gpu_only_per_day == pytest.approx(86400 * 0.00021)  # the active rate, 24 h, whatever the traffic
    assert runpod_bill(i.model_copy(update={"requests_per_day": 5}), p, break_even=False).gpu_only_per_day == \
        rp.gpu_only_per_day


def test_orchestrator_is_always_on_and_mixed_only():
    base = runpod_bill(EstimateInputs(requests_per_day=1000, orchestrator_workers=0), REFERENCE, break_even=False)
    two = runpod_bill(EstimateInputs(requests_per_day=1000, orchestrator_workers=2), REFERENCE, break_even=False)
    assert two.orchestrator_per_day == pytest.approx(2 * 86400 * 0.0001)  # cpu3c-1-2: 1 vCPU at $0.0001/s
    assert two.mixed_per_day == pytest.approx(base.mixed_per_day + two.orchestrator_per_day)
    assert two.gpu_only_per_day == base.gpu_only_per_day


def test_cpu_cold_start_is_independent_of_the_gpu():
    rp = runpod_bill(EstimateInputs(requests_per_day=24, cold_start_sec=30, orchestrator_workers=0,
                                    arrivals="even"), REFERENCE, break_even=False)
    pre, inf, post = rp.mixed
    assert (pre.cold_start_s, inf.cold_start_s, post.cold_start_s) == (0, 30, 0)
    assert pre.billed_s_per_request == 6 and inf.billed_s_per_request == 36  # ceil(0.05 + 5), ceil(30 + 0.2 + 5)


def test_unservable_load_gets_no_dollar_figure(cli):
    """1M requests/day of 0.28 s need 3.24 GPU workers; Runpod's default max is 3: GPU-only cannot serve it, so
    it gets no $ figure (it showed $419.85/day, above the $388.80 three workers can cost), only what it needs."""
    rp = runpod_bill(EstimateInputs(requests_per_day=1_000_000), REFERENCE, break_even=False)
    go = rp.gpu_only[0]
    assert go.saturated and not go.servable and go.load_workers == pytest.approx(3.2407, abs=1e-4)
    assert go.utilization == pytest.approx(1.0802, abs=1e-4) and go.workers_needed == 4
    assert not rp.gpu_only_servable and rp.gpu_only_per_day is None and rp.gpu_only_per_month is None
    assert rp.savings_per_day is None and rp.savings_pct is None
    assert rp.mixed_servable and rp.mixed_per_day is not None  # inference at 0.2 s needs 2.31 of 3
    assert any("needs 3.24 workers" in w and "max workers to 4" in w for w in rp.warnings)
    d = json.loads(cli("estimate", "-n", "1000000", "--billing", "runpod", "-f", "json").stdout)
    assert d["runpod"]["gpu_only_servable"] is False and d["gpu_only_per_day"] is None
    assert d["runpod"]["gpu_only"][0]["workers_needed"] == 4
    table = cli("estimate", "-n", "1000000", "--billing", "runpod").stdout
    assert "not servable" in table and "needs 4" in table and "$419" not in table
    # 1M requests in one hour: neither pipeline is servable with 0:3 workers
    burst = runpod_bill(EstimateInputs(requests_per_day=1_000_000, active_hours=1), REFERENCE, break_even=False)
    assert burst.mixed_per_day is None and burst.gpu_only_per_day is None
    roomy = runpod_bill(EstimateInputs(requests_per_day=1_000_000, gpu_workers=(0, 6)), REFERENCE, break_even=False)
    assert not roomy.gpu_only[0].saturated and roomy.gpu_only[0].mean_queue_s < 0.05


def test_spend_limit_warning():
    i = EstimateInputs(requests_per_day=3_000_000, gpu_workers=(0, 50), cpu_workers=(0, 50))
    rp = runpod_bill(i, REFERENCE, break_even=False)
    assert rp.mixed_spend_per_hour > 80 and any("$80/hour spend limit" in w for w in rp.warnings)
    raised = runpod_bill(i.model_copy(update={"spend_limit_per_hour": 10_000}), REFERENCE, break_even=False)
    assert not any("spend limit" in w for w in raised.warnings)


def test_seeded_and_deterministic():
    i = EstimateInputs(requests_per_day=5000, cold_start_sec=5)
    a, b = runpod_bill(i, REFERENCE, break_even=False), runpod_bill(i, REFERENCE, break_even=False)
    assert a == b
    c = runpod_bill(i.model_copy(update={"seed": 1}), REFERENCE, break_even=False)
    assert c.mixed_per_day != a.mixed_per_day and c.mixed_per_day == pytest.approx(a.mixed_per_day, rel=0.05)


def test_runpod_break_even_is_a_real_crossing():
    i = EstimateInputs(requests_per_day=1000, orchestrator_workers=0, gpu_workers=(0, 50), cpu_workers=(0, 50))
    r, note = break_even_requests(i, REFERENCE)
    assert r is not None and "above" in note
    lo = totals(i.model_copy(update={"requests_per_day": r / 3}), REFERENCE)
    hi = totals(i.model_copy(update={"requests_per_day": r * 3}), REFERENCE)
    assert lo[0] > lo[1] and hi[0] < hi[1]  # mixed dearer below, cheaper above
    assert r < 15_000_000  # below GPU-only's saturation (50 x 86,400 / 0.28 = 15.4M)


def test_design_deployment_mixed_is_not_cheaper():
    """The original design's deployment at 10,000 requests/day (docs/cost-model.md): mixed is dearer. The
    orchestrator runs on cpu3c-1-2 (1 vCPU), priced per vCPU: half the 2-vCPU worker's rate."""
    r = estimate(EstimateInputs(**DESIGN), REFERENCE)
    rp = r.runpod
    assert [e.idle_timeout_s for e in rp.mixed] == [180, 300, 3] and rp.orchestrator_workers == 1
    assert rp.orchestrator_instance == "cpu3c-1-2" and rp.orchestrator_per_day == 8.64  # 86,400 s x 1 x $0.0001
    assert (round(rp.mixed_per_day, 2), round(rp.gpu_only_per_day, 2)) == (163.33, 129.60)
    assert (round(rp.mixed_per_month, 2), round(rp.gpu_only_per_month, 2)) == (4900.04, 3888.00)
    # a 180 s / 300 s idle timeout with a request every 8.64 s: pre and inference never stop (86,400 s a day)
    assert [round(e.per_day, 2) for e in rp.mixed] == [17.28, 129.60, 7.81]
    assert [e.vcpus for e in rp.mixed] == [2, None, 2]
    assert rp.savings_per_day < 0 and r.savings_per_month < 0
    assert r.ideal.savings_per_month == 31.2  # the ideal arithmetic says the opposite
    assert round(rp.savings_pct, 1) == -26.0
    # Runpod's defaults instead (idle 5 s, no cold start, one orchestrator), as docs/cost-model.md quotes
    d = runpod_bill(EstimateInputs(requests_per_day=10_000), REFERENCE, break_even=False)
    assert (round(d.mixed_per_day, 2), round(d.gpu_only_per_day, 2)) == (91.68, 67.02)


def test_design_deployment_reports_saturation_never_a_break_even():
    """GPU-only with 0:3 workers saturates at 3 x 86,400 / 0.28 = 925,714 requests/day: the old scan called the
    cost jump there a break-even ("mixed is cheaper above 1,100,000"). The search stops below it and says so."""
    be = runpod_bill(EstimateInputs(**DESIGN), REFERENCE).break_even
    sat = {s.pipeline: s for s in be.saturation}
    assert sat["GPU-only"].requests_per_day == pytest.approx(925_714.3, abs=0.1) and sat["GPU-only"].max_workers == 3
    assert sat["mixed"].endpoint == "inference" and sat["mixed"].requests_per_day == pytest.approx(1_296_000)
    assert be.scanned[1] < 925_714.3 and be.requests_per_day is None
    assert "GPU-only needs 4+ GPU workers above 926,000 requests/day" in be.note and "no break-even" in be.note
    assert be.seeds == [0, 1, 2]


def test_break_even_reports_its_seed_spread(cli):
    """With room to scale (0:50 workers, no orchestrator) the curves do cross below saturation: the crossing is
    found on the mean of three seeds and refined on each seed's own curve; the spread is printed."""
    i = EstimateInputs(requests_per_day=1000, orchestrator_workers=0, gpu_workers=(0, 50), cpu_workers=(0, 50))
    be = runpod_bill(i, REFERENCE).break_even
    assert be.requests_per_day is not None and be.sides[0] == "above" and len(be.per_seed) == 3
    assert be.spread is not None and be.spread[0] <= be.spread[1]
    assert all(x is None or be.spread[0] <= x <= be.spread[1] for x in be.per_seed)
    assert "seeds 0..2" in be.note and "seeds " in be.note.split("seeds 0..2")[1]
    out = cli("estimate", "-n", 1000, "--billing", "runpod", "--orchestrator-workers", 0, "--gpu-workers", "0:50",
              "--cpu-workers", "0:50").stdout
    assert f"seeds {be.spread[0]:,.0f}..{be.spread[1]:,.0f}" in " ".join(out.split())  # the spread, printed


def test_sweep_has_both_models_and_crossings(cli):
    d = json.loads(cli("estimate", "--sweep", "1k:1M", "--sweep-points", 4, "--orchestrator-workers", 0,
                       "--billing", "runpod", "-f", "json").stdout)
    rows = d["sweep"]
    assert [r["ideal_mixed_per_month"] for r in rows] == [9.48, 94.8, 948.0, 9480.0]
    assert all(r["runpod_mixed_per_month"] > r["ideal_mixed_per_month"] for r in rows)
    # 1M/day needs 4 GPU-only workers (max 3): no Runpod figure there, and none in the headline's savings
    assert rows[-1]["runpod_gpu_only_per_month"] is None and rows[-1]["runpod_mixed_per_month"] is not None
    ratios = {r["runpod_mixed_per_month"] / r["runpod_gpu_only_per_month"] for r in rows[:-1]}
    assert max(ratios) - min(ratios) > 0.05  # not parallel lines
    assert crossings([1, 10, 100], [1, 5, 20], [2, float("nan"), 10]) == []  # never across a gap
    assert crossings([1, 10, 100], [1, 5, 20], [2, 5.5, 10]) == [pytest.approx(10 ** (1 + 0.5 / 10.5))]
    assert crossings([1, 10], [1, 2], [2, 3]) == []


def test_price_catalogue_staleness():
    p = load_pricing(profile="runpod-h100-pro")
    assert p.staleness(date(2027, 1, 1)) is None
    warn = p.staleness(date(2027, 6, 1))
    assert "read on 2026-11-30" in warn and "183 days ago" in warn and "docs.runpod.io" in warn
    assert load_pricing().staleness(date(2040, 1, 1)) is None  # the reference rates are illustrative
    assert "no read_on date" in PricingProfile(name="x", cpu_per_sec=0, gpu_per_sec=0).staleness()
    old = p.model_copy(update={"read_on": date(2020, 1, 1)})
    assert any("days ago" in n for n in estimate(EstimateInputs(requests_per_day=10), old).notes)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--billing", "cheap"], "--billing must be one of"),
        (["--gpu-workers", "3:1"], "--gpu-workers expects MIN:MAX"),
        (["--cpu-workers", "x"], "--cpu-workers expects MIN:MAX"),
        (["--arrivals", "bursty"], "--arrivals must be one of"),
        (["--orchestrator-workers", "-1"], "--orchestrator-workers"),
        (["--idle-timeout-gpu", "-5"], "--idle-timeout-gpu"),
    ],
)
def test_cli_errors_are_one_line(cli, args, needle):
    res = cli("estimate", *args)
    assert res.exit_code == 2 and needle in res.stderr and res.stderr.count("\n") == 1, res.stderr
