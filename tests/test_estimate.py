"""`estimate`: the reference table to the cent, serverless extras, break-even, sweep, plot, CLI."""

from __future__ import annotations

import json
import math
import random
import sys

import pytest
from conftest import write_classify_report
from hypothesis import given, settings
from hypothesis import strategies as st

from mixedclf.costs import CostInputError, load_pricing
from mixedclf.costs.estimate import (
    EstimateInputs,
    break_even_overhead,
    break_even_requests,
    compute,
    estimate,
    inputs_from_report,
)
from mixedclf.costs.examples import REFERENCE, classify_fields
from mixedclf.costs.report import build_classify_report
from mixedclf.costs.serverless import cold_starts_per_request, idle_per_request
from mixedclf.costs.sweep import parse_sweep, plot_sweep, sweep_points

C, G = 0.0002, 0.0015


# ------------------------------------------------------------------------- the reference table


def test_reference_table_to_the_cent():
    r = estimate(EstimateInputs(requests_per_day=10_000), load_pricing())
    assert (r.mixed_per_day, r.mixed_per_month) == (3.16, 94.80)
    assert (r.gpu_only_per_day, r.gpu_only_per_month) == (4.20, 126.00)
    assert r.savings_per_month == 31.20 and r.savings_per_day == 1.04
    assert round(r.savings_pct, 2) == 24.76
    assert r.mixed_per_request == 0.000316 and r.gpu_only_per_request == 0.00042


def test_reference_json_names_are_numbers(cli):
    res = cli("estimate", "--requests-per-day", 10000, "--format", "json")
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    want = dict(mixed_per_day=3.16, mixed_per_month=94.8, gpu_only_per_day=4.2, gpu_only_per_month=126.0,
                savings_per_month=31.2)
    for k, v in want.items():
        assert isinstance(data[k], float) and data[k] == v, k
    assert isinstance(data["savings_pct"], float) and abs(data["savings_pct"] - 24.7619) < 1e-3
    assert data["kind"] == "estimate" and data["schema_version"] == 2


def test_reference_table_text(cli):
    res = cli("estimate")
    assert res.exit_code == 0
    for needle in ("$3.16", "$94.80", "$4.20", "$126.00", "$31.20", "24.8%", "30.6 ms"):
        assert needle in res.stdout, needle
    md = cli("estimate", "-f", "markdown").stdout
    assert md.startswith("## mixedclf estimate") and "| per month (30 days) | $94.80 | $126.00 | $31.20 |" in md


def test_stage_seconds_and_profiles(cli):
    res = cli("estimate", "-n", 1000, "--pre-sec", 0.1, "--gpu-sec", 0.1, "--post-sec", 0, "--profile",
              "runpod-h100-pro", "-f", "json")
    d = json.loads(res.stdout)
    assert d["mixed_per_day"] == pytest.approx(1000 * (0.1 * 0.0002 + 0.1 * 0.00116))
    assert d["gpu_only_per_day"] == pytest.approx(1000 * 0.2 * 0.00116)
    assert d["inputs"]["source"] == "options"


# ------------------------------------------------------------------------- serverless extras


def test_overhead_is_paid_by_both_sides_of_two_hops():
    base = compute(EstimateInputs(requests_per_day=1000), C, G)
    more = compute(EstimateInputs(requests_per_day=1000, overhead_sec=0.01), C, G)
    assert more.mixed_per_request - base.mixed_per_request == pytest.approx(2 * 0.01 * (C + G))
    assert more.gpu_only_per_request == base.gpu_only_per_request


def test_break_even_overhead_closed_form():
    i = EstimateInputs(requests_per_day=10_000)
    o, note = break_even_overhead(i, C, G)
    assert o == pytest.approx((0.05 + 0.03) * (G - C) / (2 * (C + G)), rel=1e-9)
    assert "30.6 ms" in note
    at = compute(i.model_copy(update={"overhead_sec": o}), C, G)
    assert at.mixed_per_request == pytest.approx(at.gpu_only_per_request, rel=1e-9)
    assert break_even_overhead(i, G, G)[0] is None  # same rates: hops can only cost


def test_ideal_lines_never_cross():
    """Ideal billing is proportional to the request rate, so there is no break-even rate (runpod: test_costs_runpod)."""
    plain = EstimateInputs(requests_per_day=10_000)
    r, note = break_even_requests(plain, C, G)
    assert r is None and "cheaper at every request rate" in note
    assert "not cheaper at any" in break_even_requests(plain, G * 2, G)[1]
    # the Runpod-only inputs do not move the ideal figures
    busy = EstimateInputs(requests_per_day=10_000, idle_timeout_cpu=5, idle_timeout_gpu=30, cold_start_sec=10,
                          cold_start_cpu_sec=1, gpu_workers=(1, 5), orchestrator_workers=3)
    assert compute(busy, C, G) == compute(plain, C, G)
    assert break_even_requests(busy, C, G) == (r, note)


def test_idle_and_cold_formulas_limits():
    assert idle_per_request(0.5, 0) == 0 and cold_starts_per_request(0.5, 0) == 1
    assert idle_per_request(0.0, 7) == 7 and cold_starts_per_request(0.0, 7) == 1
    assert idle_per_request(1e-9, 10) == pytest.approx(10, rel=1e-6)  # rare requests: billed the whole timeout
    assert idle_per_request(1.0, 1e6) == pytest.approx(1.0)  # always warm: billed the whole gap
    assert idle_per_request(10.0, 5, busy=0.2) == 0 and cold_starts_per_request(10.0, 5, busy=0.2) == 0


def _simulate(lam, busy, timeout, n, seed):
    """One warm worker, FIFO queue, Poisson arrivals: billed idle seconds and cold starts per request."""
    rng = random.Random(seed)
    t = free_at = 0.0
    idle = 0.0
    cold = 0
    for k in range(n):
        t += rng.expovariate(lam)
        if k == 0:
            cold += 1
            start = t
        elif t >= free_at:
            gap = t - free_at
            if gap > timeout:
                cold += 1
                idle += timeout
            else:
                idle += gap
            start = t
        else:
            start = free_at
        free_at = start + busy
    idle += timeout
    return idle / n, cold / n


@pytest.mark.parametrize("lam,busy,timeout", [(0.5, 0.3, 2.0), (0.05, 0.28, 30.0), (2.0, 0.2, 0.5), (0.2, 0.0, 10.0)])
def test_idle_model_matches_simulation(lam, busy, timeout):
    sim_idle, sim_cold = _simulate(lam, busy, timeout, 40_000, seed=7)
    assert idle_per_request(lam, timeout, busy) == pytest.approx(sim_idle, rel=0.03)
    assert cold_starts_per_request(lam, timeout, busy) == pytest.approx(sim_cold, rel=0.04)


# ------------------------------------------------------------------------------ property tests

rate = st.floats(min_value=0, max_value=0.01, allow_nan=False)
sec = st.floats(min_value=0, max_value=5, allow_nan=False)
inputs = st.builds(
    EstimateInputs,
    requests_per_day=st.floats(min_value=0, max_value=1e7),
    pre_sec=sec, gpu_sec=sec, post_sec=sec,
    overhead_sec=st.floats(min_value=0, max_value=1),
    cold_start_sec=st.floats(min_value=0, max_value=60),
    cold_start_cpu_sec=st.one_of(st.none(), st.floats(min_value=0, max_value=60)),
    idle_timeout_cpu=st.floats(min_value=0, max_value=600),
    idle_timeout_gpu=st.floats(min_value=0, max_value=600),
    active_hours=st.floats(min_value=0.5, max_value=24),
)


@settings(max_examples=100, deadline=None)
@given(inputs, rate, rate)
def test_estimate_never_negative(i, c, g):
    n = compute(i, c, g)
    for v in (n.mixed_per_request, n.gpu_only_per_request, n.mixed_per_month, n.gpu_only_per_month,
              n.mixed_cpu.billed_s, n.mixed_gpu.billed_s, n.gpu_only_gpu.billed_s):
        assert v >= 0 and math.isfinite(v)


@settings(max_examples=100, deadline=None)
@given(inputs, rate, rate, st.floats(min_value=0, max_value=0.01), st.floats(min_value=0, max_value=0.01))
def test_estimate_monotone_in_rates(i, c, g, dc, dg):
    a, b = compute(i, c, g), compute(i, c + dc, g + dg)
    assert b.mixed_per_month >= a.mixed_per_month and b.gpu_only_per_month >= a.gpu_only_per_month


@settings(max_examples=100, deadline=None)
@given(inputs, rate, rate, st.sampled_from(["pre_sec", "gpu_sec", "post_sec", "overhead_sec"]),
       st.floats(min_value=0, max_value=2))
def test_estimate_monotone_in_seconds(i, c, g, field, extra):
    a = compute(i, c, g)
    b = compute(i.model_copy(update={field: getattr(i, field) + extra}), c, g)
    tol = 1e-9 * max(1.0, a.mixed_per_month)
    assert b.mixed_per_month >= a.mixed_per_month - tol
    assert b.gpu_only_per_month >= a.gpu_only_per_month - tol


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=0, max_value=1e7), sec, sec, sec, rate, rate)
def test_mixed_never_dearer_when_cpu_cheaper_and_no_overheads(r, pre, gpu, post, c, g):
    c, g = min(c, g), max(c, g)
    n = compute(EstimateInputs(requests_per_day=r, pre_sec=pre, gpu_sec=gpu, post_sec=post), c, g)
    tol = 1e-11 * max(1.0, n.gpu_only_per_month)  # float rounding when the two rates are equal
    assert n.mixed_per_month <= n.gpu_only_per_month + tol
    assert n.savings_per_month >= -tol


# ------------------------------------------------------------------------------ sweep and plot


def test_parse_sweep():
    assert parse_sweep("1000:1000000") == (1000.0, 1e6)
    assert parse_sweep("1k:1M") == (1000.0, 1e6)
    assert parse_sweep("1_000:2,000") == (1000.0, 2000.0)
    for bad in ("1000", "a:b", "5:5", "0:10", "10:1"):
        with pytest.raises(CostInputError):
            parse_sweep(bad)
    pts = sweep_points(1000, 1e6, 4)
    assert pts == [1000, 10000, 100000, 1e6]


def test_sweep_table(cli):
    res = cli("estimate", "--sweep", "1000:1000000", "--sweep-points", 4, "-f", "json")
    rows = json.loads(res.stdout)["sweep"]
    assert [r["requests_per_day"] for r in rows] == [1000, 10000, 100000, 1000000]
    assert rows[1]["mixed_per_month"] == 94.8 and rows[3]["gpu_only_per_month"] == 12600.0
    table = cli("estimate", "--sweep", "1k:1M", "--sweep-points", 4).stdout
    assert "Sweep over request rates" in table and "$12,600.00" in table


def test_plot_writes_png(tmp_path, cli):
    pytest.importorskip("matplotlib")
    out = tmp_path / "cost.png"
    # --plot without --sweep picks a range around --requests-per-day (100 .. 1,000,000 here)
    res = cli("estimate", "--idle-timeout-cpu", 5, "--idle-timeout-gpu", 30, "--plot", out, "-f", "json")
    assert res.exit_code == 0, res.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sweep = json.loads(res.stdout)["sweep"]
    assert sweep[0]["requests_per_day"] == 100 and sweep[-1]["requests_per_day"] == 1_000_000


def test_plot_without_matplotlib_is_a_clear_error(tmp_path, monkeypatch):
    r = estimate(EstimateInputs(requests_per_day=100), REFERENCE, sweep_range=(10, 1000))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(CostInputError, match=r"pip install 'mixedclf\[plot\]'"):
        plot_sweep(r, tmp_path / "x.png")


def test_plot_bad_suffix(tmp_path):
    r = estimate(EstimateInputs(requests_per_day=100), REFERENCE, sweep_range=(10, 1000))
    with pytest.raises(CostInputError, match="unsupported image type"):
        plot_sweep(r, tmp_path / "x.txt")


# ------------------------------------------------------------------------------- from a report


def test_inputs_from_report():
    rep = build_classify_report(**classify_fields())
    i, notes = inputs_from_report(rep, requests_per_day=5000)
    assert i.pre_sec == pytest.approx(20.0 / 4000) and i.gpu_sec == pytest.approx(4.0 / 4000)
    assert i.post_sec == pytest.approx(0.4 / 4000) and i.requests_per_day == 5000
    assert any("--cold-start-sec 1.50" in n for n in notes)


def test_cli_from_report(tmp_path, cli):
    pricing = load_pricing(profile="runpod-4090-pro")
    rp = write_classify_report(tmp_path / "run.json", pricing=pricing)
    d = json.loads(cli("estimate", "--from-report", rp, "-n", 100_000, "-f", "json").stdout)
    assert d["pricing"]["name"] == "runpod-4090-pro"  # the report's own pricing
    assert d["inputs"]["gpu_sec"] == pytest.approx(0.001) and d["model"] == "default"
    assert d["mixed_per_day"] == pytest.approx(100_000 * (0.001 * 0.00031 + 0.0051 * 0.0002))
    d2 = json.loads(cli("estimate", "--from-report", rp, "--profile", "reference", "-f", "json").stdout)
    assert d2["pricing"]["name"] == "reference"
    saved = tmp_path / "est.json"
    assert cli("estimate", "--report", saved).exit_code == 0
    res = cli("estimate", "--from-report", saved)
    assert res.exit_code == 2 and "needs a classify report" in res.stderr


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--sweep", "nope"], "--sweep"),
        (["--format", "xml"], "--format must be one of"),
        (["--requests-per-day", "-1"], "--requests-per-day"),
        (["--active-hours", "30"], "--active-hours"),
        (["--from-report", "/nonexistent/r.json"], "report not found"),
        (["--pricing", "/nonexistent/p.toml"], "pricing file not found"),
        (["--profile", "nope"], "available: reference"),
    ],
)
def test_cli_errors_are_one_line_exit_2(cli, args, needle):
    res = cli("estimate", *args)
    assert res.exit_code == 2
    assert needle in res.stderr and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


def test_estimate_advice_on_long_idle_timeout():
    from mixedclf.costs.advice import advise

    r = estimate(EstimateInputs(requests_per_day=2000, idle_timeout_gpu=600, billing="runpod"), REFERENCE)
    adv = advise(r)
    assert adv and adv[0].key == "idle-timeout-gpu" and adv[0].saving > 0 and adv[0].per == "per month"



def test_cache_hit_rate_scales_the_gpu_seconds_per_request(cli):
    """Half the requests answered by the prediction cache: the model's 0.2 s becomes 0.1 s in both pipelines, the
    CPU stages stay (a hit is still cleaned and tokenized for its key)."""
    res = cli("estimate", "--requests-per-day", 10000, "--cache-hit-rate", 0.5, "--format", "json")
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["inputs"]["gpu_sec"] == 0.1 and data["inputs"]["cache_hit_rate"] == 0.5
    assert data["mixed_per_day"] == 1.66 and data["gpu_only_per_day"] == 2.7
    assert any("hit rate 0.5" in n for n in data["notes"])
    assert "cache hit rate 0.5" in cli("estimate", "--cache-hit-rate", 0.5).stdout
    bad = cli("estimate", "--cache-hit-rate", 1.5)
    assert bad.exit_code == 2 and "between 0 and 1" in bad.stderr


def test_from_report_leaves_out_the_rows_the_cache_answered(cli, tmp_path):
    """A report whose run the cache answered in part: its inference seconds are spread over the rows that ran."""
    from mixedclf.costs.cache import CacheSavings
    from mixedclf.costs.report import load_report, write_report

    path = write_classify_report(tmp_path / "r.json")
    report = load_report(path)
    items, busy = report.measurements.items, report.measurements.stage_busy("inference")
    hits = items // 2
    report.cache = CacheSavings(path="c", hits=hits, misses=items - hits, hit_rate=hits / items, stored=0, evicted=0)
    write_report(report, path)
    data = json.loads(cli("estimate", "--from-report", path, "--format", "json").stdout)
    assert data["inputs"]["gpu_sec"] == pytest.approx(busy / (items - hits), rel=1e-9)
