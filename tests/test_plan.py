"""`mixedclf plan`: ranks hardware by the cost of meeting a deadline from measured reports only."""

import json

import pytest

from mixedclf.costs import RunMeasurements, StageMeasurement, load_pricing
from mixedclf.costs.plan import make_plan, measured_throughput, parse_duration
from mixedclf.costs.pricing import CostInputError
from mixedclf.costs.report import build_classify_report, write_report


def _report(device: str, mode: str = "mixed"):
    # 1,000 rows: inference 10 s of wall (100 rows/s), 12 s in all (2 s start-up), 2 s of CPU work (0.002 s/row).
    stages = [
        StageMeasurement(name="preprocess", billing="cpu", items=1000, busy_s=1.0, wall_s=1.0),
        StageMeasurement(name="inference", billing="gpu", device=device, items=1000, busy_s=9.0, wall_s=10.0),
        StageMeasurement(name="postprocess", billing="cpu", items=1000, busy_s=1.0, wall_s=1.0),
    ]
    measurements = RunMeasurements(mode=mode, items=1000, stages=stages, wall_s=12.0, gpu_held_s=11.0)
    return build_classify_report(model="m", input_path="in.jsonl", output_path="out.jsonl", device=device,
                                 rows_in=1000, rows_out=1000, pricing=load_pricing(), measurements=measurements)


def test_plan_arithmetic_by_hand():
    measured = measured_throughput(_report("cuda:0"), "gpu.json")
    assert (measured.rows_per_s, measured.startup_s, measured.cpu_s_per_row) == (100.0, 2.0, 0.002)
    plan = make_plan({"reference": load_pricing()}, {"reference": measured}, 1_000_000, 3600)
    row = plan.rows_ranked[0]
    # workers ceil(1e6 / (100 x 3598)) = 3; held ceil(2 + 1e6 / 300) = 3336 s; CPU workers 3 x ceil(100 x 0.002) = 3
    assert (row.device_workers, row.cpu_workers, row.device_billing) == (3, 3, "gpu")
    assert row.cost == pytest.approx(3 * 3336 * 0.0015 + 3 * 3336 * 0.0002)


def test_unmeasured_classes_are_listed_never_guessed_and_rank_last():
    profiles = {name: load_pricing(None, name) for name in ("reference", "runpod-h100-pro")}
    plan = make_plan(profiles, {"reference": measured_throughput(_report("cuda:0"), "r.json")}, 10_000, 3600)
    assert [r.profile for r in plan.rows_ranked] == ["reference", "runpod-h100-pro"]
    last = plan.rows_ranked[-1]
    assert not last.measured and not last.feasible and last.cost == 0 and "unmeasured" in last.note


def test_a_cpu_report_plans_cpu_workers_at_the_cpu_rate():
    plan = make_plan({"reference": load_pricing()}, {"reference": measured_throughput(_report("cpu"), "c.json")},
                     1_000_000, 3600)
    row = plan.rows_ranked[0]
    assert row.device_billing == "cpu" and "CPU" in row.device_class
    assert row.cost == pytest.approx(3 * 3336 * 0.0002 * 2)


def test_deadline_shorter_than_startup_is_infeasible():
    plan = make_plan({"reference": load_pricing()}, {"reference": measured_throughput(_report("cuda:0"), "r")},
                     100, 1.5)
    assert not plan.rows_ranked[0].feasible and "start-up" in plan.rows_ranked[0].note


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("45m", 2700), ("2h", 7200), ("1d", 86400), ("30", 30)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["2x", "", "-1h", "nanh"])
def test_parse_duration_refuses_nonsense(text):
    with pytest.raises(CostInputError):
        parse_duration(text)


def test_plan_cli_json_and_errors(tmp_path, cli):
    path = write_report(_report("cuda:0"), tmp_path / "gpu.json")
    result = cli("plan", "--rows", "1000000", "--deadline", "1h", "--from-report", f"reference={path}",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows_ranked"]
    assert rows[0]["profile"] == "reference" and rows[0]["feasible"]
    assert all(not r["measured"] for r in rows[1:])
    bad = cli("plan", "--rows", "10", "--from-report", f"nope={path}")
    assert bad.exit_code == 2 and "unknown profiles" in bad.output
    both = cli("plan", "--rows", "10", "--requests-per-day", "10")
    assert both.exit_code == 2
