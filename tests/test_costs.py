"""Pricing profiles and measured accounting (pay-per-use, provisioned, GPU-only counterfactual)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixedclf.costs import (
    DEFAULT_PRICING_PATH,
    CostInputError,
    PricingProfile,
    RunMeasurements,
    StageMeasurement,
    list_profiles,
    load_pricing,
    price_run,
)
from mixedclf.costs.examples import REFERENCE, gpu_only_run, mixed_run, stage

# ------------------------------------------------------------------------------------ pricing


def test_default_pricing_file_ships_inside_the_package():
    assert DEFAULT_PRICING_PATH == Path(__file__).resolve().parents[1] / "mixedclf" / "configs" / "pricing.toml"
    assert DEFAULT_PRICING_PATH.is_file()


def test_reference_profile_rates():
    p = load_pricing()
    assert p.name == "reference"
    assert p.cpu_per_sec == 0.0002 and p.gpu_per_sec == 0.0015
    assert p.cpu_desc == "2 vCPU, 8 GB" and p.gpu_desc == "RTX 4090 class"


@pytest.mark.parametrize(
    "name,flex,active",
    [("runpod-4090-pro", 0.00031, 0.00021), ("runpod-l4", 0.00019, 0.00013), ("runpod-l40s", 0.00053, 0.00037),
     ("runpod-a100", 0.00076, 0.00060), ("runpod-h100-pro", 0.00116, 0.00093), ("runpod-h200-pro", 0.00155, 0.00124),
     ("runpod-b200", 0.00240, 0.00190)],
)
def test_runpod_profiles(name, flex, active):
    """Runpod's published serverless flex / active per-second rates, with their source and read date."""
    p = load_pricing(profile=name)
    assert (p.gpu_per_sec, p.gpu_active_per_sec, p.active_rate("gpu")) == (flex, active, active)
    assert p.source == "https://docs.runpod.io/serverless/pricing" and p.read_on.isoformat() == "2026-11-30"
    # no Runpod CPU price was found: the CPU rate says where it comes from
    assert p.cpu_per_sec == 0.0002 and p.active_rate("cpu") == 0.0002 and "not found" in p.cpu_source
    assert not p.illustrative


def test_unknown_profile_lists_available():
    with pytest.raises(CostInputError) as e:
        load_pricing(profile="nope")
    msg = str(e.value)
    assert "nope" in msg and "reference" in msg and "runpod-h100-pro" in msg and "\n" not in msg
    assert isinstance(e.value, ValueError)


def test_missing_and_bad_files(tmp_path):
    with pytest.raises(CostInputError, match="not found"):
        load_pricing(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[profiles.x\n")
    with pytest.raises(CostInputError, match="not valid TOML"):
        load_pricing(bad)
    empty = tmp_path / "empty.toml"
    empty.write_text("title = 'x'\n")
    with pytest.raises(CostInputError, match="no \\[profiles"):
        load_pricing(empty)
    neg = tmp_path / "neg.toml"
    neg.write_text("[profiles.n]\ncpu_per_sec = -1\ngpu_per_sec = 1\n")
    with pytest.raises(CostInputError, match="invalid"):
        load_pricing(neg, "n")


def test_custom_file(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('[profiles.mine]\ncpu_per_sec = 0.0001\ngpu_per_sec = 0.001\ndescription = "m"\n')
    assert load_pricing(f, "mine").gpu_per_sec == 0.001
    assert list_profiles(f) == ["mine"]
    assert list_profiles()[:1] == ["reference"]


def test_cost_package_does_not_import_torch():
    code = (
        "import sys; import mixedclf.costs, mixedclf.costs.report, mixedclf.render.report, mixedclf.render.estimate, "
        "mixedclf.costs.sweep, mixedclf.costs.check, mixedclf.costs.advice, mixedclf.cli.costs; "
        "bad = [m for m in ('torch', 'transformers', 'multiprocessing.pool', 'concurrent.futures.process', "
        "'matplotlib') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0, r.stdout + r.stderr


# --------------------------------------------------------------------------------- accounting


def test_pay_per_use_by_stage():
    cost = price_run(mixed_run(), REFERENCE)
    rows = {r.name: r for r in cost.stages}
    assert rows["preprocess"].cost == pytest.approx(20.0 * 0.0002)
    assert rows["preprocess"].gpu_only_cost == pytest.approx(20.0 * 0.0015)
    assert rows["inference"].cost == pytest.approx(4.0 * 0.0015)
    assert rows["model_load"].cost == 0 and not rows["model_load"].pay_per_use
    # read .2 + pre 20 + post .4 + write .3 on CPU, inference 4 on GPU
    assert cost.pay_per_use.mixed == pytest.approx(20.9 * 0.0002 + 4.0 * 0.0015)
    assert cost.pay_per_use.gpu_only == pytest.approx(24.9 * 0.0015)
    assert cost.pay_per_use.savings == pytest.approx(cost.pay_per_use.gpu_only - cost.pay_per_use.mixed)
    assert cost.pay_per_use.savings_pct == pytest.approx(
        100 * (1 - (20.9 * 0.0002 + 4.0 * 0.0015) / (24.9 * 0.0015)))
    assert cost.pay_per_use.mixed_per_1k == pytest.approx(cost.pay_per_use.mixed / 4)


def test_provisioned_mixed_run():
    cost = price_run(mixed_run(), REFERENCE)
    # 4 pool workers x ceil(9.5 + 5) s CPU; the GPU worker from process start: ceil(12 + 5) s
    assert cost.provisioned.mixed == pytest.approx(4 * 15 * 0.0002 + 17 * 0.0015)
    assert cost.provisioned_parts.billed_cpu_worker_s == [15] * 4
    assert cost.provisioned_parts.billed_gpu_worker_s == [17]
    # GPU-only: start-up 2.5 s + every stage in series (model load included) + idle 5 s = 33.9 -> 34 s
    assert cost.provisioned.gpu_only == pytest.approx(34 * 0.0015)
    assert cost.provisioned.mixed == pytest.approx(0.0375) and cost.provisioned.gpu_only == pytest.approx(0.051)
    assert cost.mixed_is == "measured" and cost.gpu_only_is == "counterfactual"
    assert cost.gpu_utilization == pytest.approx(4.0 / 9.0)
    assert cost.cpu_pool_utilization == pytest.approx(20.0 / (4 * 9.5))
    assert cost.throughput == pytest.approx(400.0)
    assert cost.gpu_busy_s_per_1k == pytest.approx(1.0)
    assert cost.gpu_held_s_per_1k == pytest.approx(12.0 / 4)


def test_gpu_only_run_uses_its_own_wall_time():
    run = gpu_only_run()
    cost = price_run(run, REFERENCE)
    assert cost.gpu_only_is == "measured" and cost.mixed_is == "counterfactual"
    # its own process: ceil(14 + 5) s
    assert cost.provisioned.gpu_only == pytest.approx(19 * 0.0015)
    # ideal mixed counterfactual: CPU stage seconds ceil(6.4 + 5) at CPU rate, GPU held for start-up 2 + load 1.5
    # + inference 4 + idle 5 = 12.5 -> 13 s
    assert cost.provisioned.mixed == pytest.approx(12 * 0.0002 + 13 * 0.0015)
    assert cost.pay_per_use.gpu_only == pytest.approx(10.4 * 0.0015)
    assert cost.notes and "gpu-only run" in cost.notes[0]


def test_projection_per_day_and_month():
    cost = price_run(mixed_run(), REFERENCE, requests_per_day=10_000)
    t = cost.pay_per_use
    assert t.mixed_per_day == pytest.approx(t.mixed / 4000 * 10_000)
    assert t.mixed_per_month == pytest.approx(t.mixed_per_day * 30)
    assert t.savings_per_month == pytest.approx(t.gpu_only_per_month - t.mixed_per_month)
    assert price_run(mixed_run(), REFERENCE).pay_per_use.mixed_per_month is None
    with pytest.raises(CostInputError):
        price_run(mixed_run(), REFERENCE, requests_per_day=-1)


def test_zero_items_and_zero_time_do_not_divide_by_zero():
    run = RunMeasurements(mode="mixed", items=0, stages=[], wall_s=0.0)
    cost = price_run(run, REFERENCE, requests_per_day=100)
    assert cost.pay_per_use.mixed == 0 and cost.pay_per_use.mixed_per_1k == 0
    assert cost.gpu_utilization == 0 and cost.throughput == 0 and cost.pay_per_use.savings_pct == 0


def test_inference_on_cpu_is_noted():
    run = mixed_run()
    run.stages[3] = stage("inference", "gpu", 4.0, device="cpu")
    assert any("inference ran on a CPU" in n for n in price_run(run, REFERENCE).notes)


def test_measurements_reject_negative_seconds():
    with pytest.raises(ValueError):
        StageMeasurement(name="x", billing="cpu", device="cpu", items=1, busy_s=-1, wall_s=0, workers=1)


# --------------------------------------------------------------------------- property tests

rate = st.floats(min_value=0, max_value=0.01, allow_nan=False)
secs = st.floats(min_value=0, max_value=1e4, allow_nan=False)


@st.composite
def runs(draw):
    items = draw(st.integers(min_value=0, max_value=10**6))
    workers = draw(st.integers(min_value=0, max_value=64))
    names = [("model_load", "gpu"), ("read", "cpu"), ("preprocess", "cpu"), ("inference", "gpu"),
             ("postprocess", "cpu"), ("write", "cpu")]
    stages = [stage(n, b, draw(secs), items=items) for n, b in names]
    return RunMeasurements(mode=draw(st.sampled_from(["mixed", "gpu-only"])), items=items, stages=stages,
                           wall_s=draw(secs), gpu_held_s=draw(secs), cpu_pool_held_s=draw(secs),
                           cpu_pool_workers=workers)


@settings(max_examples=100, deadline=None)
@given(runs(), rate, rate)
def test_costs_never_negative(run, c, g):
    cost = price_run(run, PricingProfile(name="p", cpu_per_sec=c, gpu_per_sec=g), requests_per_day=1000)
    for t in (cost.pay_per_use, cost.provisioned):
        assert t.mixed >= 0 and t.gpu_only >= 0 and t.mixed_per_1k >= 0 and (t.mixed_per_month or 0) >= 0
    assert all(r.cost >= 0 and r.gpu_only_cost >= 0 for r in cost.stages)
    assert all(math.isfinite(x) for x in (cost.pay_per_use.savings_pct, cost.provisioned.savings_pct))


@settings(max_examples=100, deadline=None)
@given(runs(), rate, rate, st.floats(min_value=0, max_value=0.01), st.floats(min_value=0, max_value=0.01),
       st.sampled_from(["model_load", "read", "preprocess", "inference", "postprocess", "write"]),
       st.floats(min_value=0, max_value=100))
def test_monotone_in_rates_and_seconds(run, c, g, dc, dg, name, ds):
    base = price_run(run, PricingProfile(name="p", cpu_per_sec=c, gpu_per_sec=g))
    dearer = price_run(run, PricingProfile(name="p", cpu_per_sec=c + dc, gpu_per_sec=g + dg))
    longer_run = run.model_copy(deep=True)
    for s in longer_run.stages:
        if s.name == name:
            s.busy_s += ds
    longer = price_run(longer_run, PricingProfile(name="p", cpu_per_sec=c, gpu_per_sec=g))
    for other in (dearer, longer):
        for basis in ("pay_per_use", "provisioned"):
            a, b = getattr(base, basis), getattr(other, basis)
            assert b.mixed >= a.mixed and b.gpu_only >= a.gpu_only


@settings(max_examples=100, deadline=None)
@given(runs(), rate, rate)
def test_pay_per_use_mixed_at_most_gpu_only_when_cpu_cheaper(run, c, g):
    c, g = min(c, g), max(c, g)
    cost = price_run(run, PricingProfile(name="p", cpu_per_sec=c, gpu_per_sec=g))
    tol = 1e-11 * max(1.0, cost.pay_per_use.gpu_only)  # float rounding when the two rates are equal
    assert cost.pay_per_use.mixed <= cost.pay_per_use.gpu_only + tol
    assert cost.pay_per_use.savings >= -tol
