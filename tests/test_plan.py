"""`mixedclf plan`: ranks hardware by the cost of meeting a deadline from measured reports only."""

import json

import pytest

from mixedclf.costs import RunMeasurements, StageMeasurement, load_pricing
from mixedclf.costs import deploy_plan as dp
from mixedclf.costs.deployment import from_toml
from mixedclf.costs.estimate import EstimateInputs
from mixedclf.costs.plan import BatchLimits, make_plan, measured_throughput, parse_duration
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
    lim = BatchLimits(account_workers=10, idle_timeout_s=0)
    plan = make_plan({"reference": load_pricing()}, {"reference": measured}, 1_000_000, 3600, lim)
    row = plan.rows_ranked[0]
    assert row.feasible
    # workers ceil(1e6 / (100 x 3598)) = 3; held ceil(2 + 1e6 / 300) = 3336 s; CPU workers 3 x ceil(100 x 0.002) = 3
    assert (row.device_workers, row.cpu_workers, row.device_billing) == (3, 3, "gpu")
    assert row.cost == pytest.approx(3 * 3336 * 0.0015 + 3 * 3336 * 0.0002)


def test_unmeasured_classes_are_listed_never_guessed_and_rank_last():
    profiles = {name: load_pricing(None, name) for name in ("reference", "runpod-h100-pro")}
    plan = make_plan(profiles, {"reference": measured_throughput(_report("cuda:0"), "r.json")}, 10_000, 3600)
    assert [r.profile for r in plan.rows_ranked] == ["reference", "runpod-h100-pro"]
    last = plan.rows_ranked[-1]
    assert not last.measured and not last.feasible and last.cost == 0 and "unmeasured" in last.note


def test_deadline_shorter_than_startup_is_infeasible():
    plan = make_plan({"reference": load_pricing()}, {"reference": measured_throughput(_report("cuda:0"), "r")},
                     100, 1.5)
    assert not plan.rows_ranked[0].feasible and "start-up" in plan.rows_ranked[0].note


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("45m", 2700), ("2h", 7200), ("1d", 86400), ("30", 30),
                                          ("500ms", 0.5)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["2x", "", "-1h", "nanh"])
def test_parse_duration_refuses_nonsense(text):
    with pytest.raises(CostInputError):
        parse_duration(text)


def test_plan_cli_json_and_errors(tmp_path, cli):
    path = write_report(_report("cuda:0"), tmp_path / "gpu.json")
    result = cli("plan", "--rows", "1000000", "--deadline", "1h", "--from-report", f"reference={path}",
                 "--account-workers", "10", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows_ranked"]
    assert rows[0]["profile"] == "reference" and rows[0]["feasible"]
    assert all(not r["measured"] for r in rows[1:])
    bad = cli("plan", "--rows", "10", "--from-report", f"nope={path}")
    assert bad.exit_code == 2 and "unknown profiles" in bad.output
    both = cli("plan", "--rows", "10", "--requests-per-day", "10")
    assert both.exit_code == 2


# ------------------------------------------------------------------- limits (issue 22) and the serverless planner



def _stage_report(device: str, gpu_busy: float = 9.0, cold: float = 8.0):
    """1,000 rows: pre 0.05 s, inference gpu_busy/1000 s, post 0.03 s a row; start-up `cold` s."""
    stages = [
        StageMeasurement(name="preprocess", billing="cpu", items=1000, busy_s=50.0, wall_s=50.0),
        StageMeasurement(name="inference", billing="gpu", device=device, items=1000, busy_s=gpu_busy, wall_s=10.0),
        StageMeasurement(name="postprocess", billing="cpu", items=1000, busy_s=30.0, wall_s=30.0),
    ]
    m = RunMeasurements(mode="mixed", items=1000, stages=stages, wall_s=92.0, gpu_held_s=11.0, cold_start_s=cold)
    return build_classify_report(model="m", input_path="in.jsonl", output_path="out.jsonl", device=device,
                                 rows_in=1000, rows_out=1000, pricing=load_pricing(), measurements=m)


def test_batch_plan_honours_worker_and_spend_limits_and_the_idle_tail():
    """issue 22: plan called 46 GPU workers feasible (per endpoint 3, account 5 by default), ignored the $80/h
    spend limit and the idle tail."""
    measured = {"reference": measured_throughput(_report("cuda:0"), "r.json")}
    many = make_plan({"reference": load_pricing()}, measured, 16_000_000, 3600).rows_ranked[0]
    assert not many.feasible and many.device_workers == 45 and "allows 3" in many.note
    lim = BatchLimits(max_workers=100, account_workers=1000, spend_limit_per_hour=80)
    dear = make_plan({"reference": load_pricing()}, measured, 16_000_000, 3600, lim).rows_ranked[0]
    assert not dear.feasible and "spend limit" in dear.note  # 45 x $5.40/h + 45 x $0.72/h
    tail = make_plan({"reference": load_pricing()}, measured, 1000, 3600, BatchLimits(idle_timeout_s=60))
    assert tail.rows_ranked[0].hours * 3600 == 2 + 10 + 60  # start-up, the rows, the idle tail


def test_batch_plan_refuses_a_cpu_report_for_a_gpu_class_and_no_reports():
    with pytest.raises(CostInputError, match="cannot stand for the GPU"):
        make_plan({"runpod-h100-pro": load_pricing(None, "runpod-h100-pro")},
                  {"runpod-h100-pro": measured_throughput(_report("cpu"), "c.json")}, 1000, 3600)
    with pytest.raises(CostInputError, match="no measured reports"):
        make_plan({"reference": load_pricing()}, {}, 1000, 3600)


def test_plan_without_reports_is_one_line_and_non_zero(cli, tmp_path):
    res = cli("plan", "--rows", "1000")
    assert res.exit_code == 2 and "no measured reports" in res.stderr and res.stderr.count("\n") == 1
    usage = tmp_path / "u.toml"
    usage.write_text("version = 1\nrequests_per_day = 1000\n")
    res = cli("plan", "--usage", str(usage), "--p95-latency", "2s", "--write", str(tmp_path / "d.toml"))
    assert res.exit_code == 2 and "no GPU reports" in res.stderr and res.stderr.count("\n") == 1
    assert not (tmp_path / "d.toml").exists()


def test_planner_refuses_a_cpu_report(cli, tmp_path):
    path = write_report(_stage_report("cpu"), tmp_path / "cpu.json")
    usage = tmp_path / "u.toml"
    usage.write_text("version = 1\nrequests_per_day = 1000\n")
    res = cli("plan", "--usage", str(usage), "--p95-latency", "2s", "--from-report", f"runpod-h100-pro={path}",
              "--write", str(tmp_path / "d.toml"))
    assert res.exit_code == 2 and "cannot stand for the GPU" in res.stderr and not (tmp_path / "d.toml").exists()


def _small_grid(monkeypatch):
    monkeypatch.setattr(dp, "GPU_IDLE_GRID", (5, 120))
    monkeypatch.setattr(dp, "CPU_IDLE_GRID", (5,))
    monkeypatch.setattr(dp, "GPU_MIN_GRID", (0, 1))


@pytest.mark.parametrize("requests,target,account", [(20_000, 2.0, 5), (200_000, 0.5, 4), (3_000, 0.2, 5)])
def test_planner_choice_equals_brute_force(monkeypatch, requests, target, account):
    """The planner prunes (limits, servability) before simulating; the brute force simulates every candidate of the
    same small grid and takes the cheapest feasible one: both must choose the same deployment."""
    _small_grid(monkeypatch)
    profiles = {n: load_pricing(None, n) for n in ("runpod-4090-pro", "runpod-h100-pro")}
    measured = [dp.measured_stages(_stage_report("cuda:0"), "runpod-4090-pro", profiles["runpod-4090-pro"], "a"),
                dp.measured_stages(_stage_report("cuda:0", 3.0, 12.0), "runpod-h100-pro",
                                   profiles["runpod-h100-pro"], "b")]
    base = EstimateInputs(requests_per_day=requests, cold_start_cpu_sec=2)
    limits = dp.PlanLimits(p95_latency_s=target, max_workers=2, account_workers=account, spend_limit_per_hour=80)
    plan = dp.make_deploy_plan(base, profiles, measured, limits)
    by = {m.profile: m for m in measured}
    brute = [dp.evaluate(c, by[c.profile], base, profiles[c.profile], limits)
             for c in dp.candidates(measured, limits)]
    feasible = sorted((e for e in brute if e.feasible), key=dp.rank_key)
    assert plan.simulated < plan.considered == len(brute)
    if not feasible:
        assert plan.best is None and "no deployment meets" in plan.note
        return
    assert plan.ranked[0].candidate == feasible[0].candidate
    assert plan.ranked[0].per_month == feasible[0].per_month
    assert min(e.per_month for e in feasible) == plan.ranked[0].per_month
    assert plan.best is not None and plan.best.account_workers() <= account
    assert plan.ranked[0].p95_latency_s <= target


def test_planner_writes_the_deploy_spec(cli, tmp_path, monkeypatch):
    _small_grid(monkeypatch)
    gpu = write_report(_stage_report("cuda:0"), tmp_path / "gpu.json")
    usage = tmp_path / "mixedclf-usage.toml"
    usage.write_text("version = 1\nrequests_per_day = 20000\ncold_start_cpu_sec = 2\n")
    out = tmp_path / "mixedclf-deploy.toml"
    args = ["plan", "--usage", str(usage), "--p95-latency", "2s", "--from-report", f"runpod-4090-pro={gpu}",
            "--write", str(out)]
    res = cli(*args)
    assert res.exit_code == 0, res.stderr
    spec = from_toml(out.read_text())
    assert spec.version == 1 and spec.topology in ("single", "split") and spec.orchestrator in ("lb", "client")
    infer = spec.endpoints["all" if spec.topology == "single" else "infer"]
    assert infer.kind == "gpu" and infer.gpu_pool == "ADA_24" and infer.execution_timeout_s == 600
    assert f"written to {out}" in res.stdout.replace("\n", "")
    from mixedclf.cloud.spec import load_spec

    deployable = load_spec(out)  # what `mixedclf deploy plan|apply` reads: the planner writes a spec it accepts
    assert deployable.topology == spec.topology and deployable.orchestrator == spec.orchestrator
    again = cli(*args)
    assert again.exit_code == 2 and "--force" in again.stderr
    assert cli(*args, "--force").exit_code == 0
    js = cli(*args, "--force", "--format", "json")
    assert json.loads(js.stdout)["best"]["topology"] == spec.topology
