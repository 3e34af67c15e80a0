"""Classify report: schema, JSON round trip, renderings, loading errors."""

from __future__ import annotations

import io
import json
import os

import pytest
from rich.console import Console

from mixedclf.costs import SCHEMA_VERSION, CostInputError
from mixedclf.costs.examples import REFERENCE, classify_fields, gpu_only_run, mixed_run
from mixedclf.costs.report import ClassifyReport, EstimateReport, build_classify_report, load_report, write_report
from mixedclf.render.report import render_report, report_to_markdown, summary_line


def _render(report, width=200) -> str:
    buf = io.StringIO()
    render_report(report, Console(file=buf, width=width, force_terminal=False, color_system=None))
    return buf.getvalue()


@pytest.fixture
def report() -> ClassifyReport:
    return build_classify_report(**classify_fields(), requests_per_day=10_000)


def test_build_computes_cost(report):
    assert report.kind == "classify" and report.schema_version == SCHEMA_VERSION == 2
    assert report.cost.pay_per_use.mixed == pytest.approx(20.9 * 0.0002 + 4.0 * 0.0015)
    assert report.cost.pay_per_use.mixed_per_month is not None
    assert report.mode == "mixed" and report.created_at.endswith("Z")
    assert report.mixedclf_version


def test_build_ignores_a_passed_cost_and_accepts_dicts():
    f = classify_fields()
    f["measurements"] = f["measurements"].model_dump()
    f["pricing"] = f["pricing"].model_dump()
    f["cost"] = "stale"
    r = build_classify_report(**f)
    assert r.cost.profile == "reference"
    with pytest.raises(CostInputError):
        build_classify_report(model="m")


def test_json_round_trip(tmp_path, report):
    p = write_report(report, tmp_path / "sub" / "report.json")
    data = json.loads(p.read_text())
    assert data["kind"] == "classify" and data["schema_version"] == 2
    assert data["cost"]["pay_per_use"]["mixed"] == report.cost.pay_per_use.mixed
    back = load_report(p)
    assert isinstance(back, ClassifyReport)
    assert back == report
    assert not list((tmp_path / "sub").glob("*.tmp"))


def test_render_contains_totals(report):
    out = _render(report)
    cost = report.cost
    for needle in ("preprocess", "inference", "model_load", "cuda:0", "$0.0002/s", "$0.0015/s",
                   "pay-per-use", "provisioned", "GPU utilization 44.4%", "positive", "high 3,000",
                   "72.7%", "$0.0102", "$0.0374"):
        assert needle in out, needle
    assert f"{cost.pay_per_use.savings_pct:.1f}%" in out


def test_render_gpu_only_run_and_narrow_console():
    r = build_classify_report(**classify_fields(run=gpu_only_run(), device="cuda:0"))
    out = _render(r, width=60)
    assert "counterfactual" in out and "gpu-only run" in out


def test_markdown(report):
    md = report_to_markdown(report)
    assert md.startswith("## mixedclf classify: default")
    assert "| preprocess | CPU |" in md and "| pay-per-use |" in md and "$0.0102" in md
    assert "| positive | 2,100 | 52.5% |" in md


def test_summary_line(report):
    line = summary_line(report)
    assert "\n" not in line
    assert "4,000 rows" in line and "400.0 rows/s" in line and "$0.0102" in line and "$0.0374" in line
    assert "72.7%" in line


@pytest.mark.parametrize(
    "content,match",
    [
        (None, "not found"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"kind": "other", "schema_version": 1}', "kind 'other'"),
        ('{"kind": "classify", "schema_version": 99}', "schema_version 99"),
        ('{"kind": "classify", "schema_version": 1, "model": "m"}', "invalid classify report"),
    ],
)
def test_load_errors(tmp_path, content, match):
    p = tmp_path / "r.json"
    if content is not None:
        p.write_text(content)
    with pytest.raises(CostInputError, match=match) as e:
        load_report(p)
    assert "\n" not in str(e.value)


def test_load_dispatches_estimate(tmp_path):
    from mixedclf.costs.estimate import EstimateInputs, estimate

    p = write_report(estimate(EstimateInputs(requests_per_day=10_000), REFERENCE), tmp_path / "e.json")
    r = load_report(p)
    assert isinstance(r, EstimateReport) and r.mixed_per_month == 94.8
    assert "$94.80/month" in summary_line(r)
    assert "$126.00" in _render(r) and "$126.00" in report_to_markdown(r)


def test_mixed_run_example_is_consistent():
    run = mixed_run()
    assert run.stage_busy("preprocess") == 20.0 and run.busy_by_billing("gpu") == 4.0
    assert run.busy_by_billing("gpu", include_load=True) == 5.5


def _cpu_report(**over):
    from mixedclf.costs.examples import stage

    run = mixed_run()
    run.stages[3] = stage("inference", "gpu", 4.0, device="cpu")
    return build_classify_report(**classify_fields(run=run, device="cpu"), **over)


def test_cpu_run_claims_no_saving():
    r = _cpu_report()
    out = _render(r)
    assert "CPU s at GPU rate" in out and "no saving is claimed" in out and "mixed saves" not in out
    md = report_to_markdown(r)
    assert "no saving is claimed" in md and "mixed saves" not in md
    assert "savings" not in summary_line(r)
    assert not r.cost.savings_claim


def test_a_cpu_run_says_cpu_where_it_reports_the_model_device():
    out = _render(_cpu_report())
    assert "CPU (GPU-priced) utilization" in out and "GPU utilization" not in out
    assert "GPU utilization" in _render(build_classify_report(**classify_fields()))


def test_gpu_speedup_divides_inference_seconds_and_says_so():
    plain, fast = _cpu_report(), _cpu_report(gpu_speedup=4.0)
    rows = {s.name: s for s in fast.cost.stages}
    assert rows["inference"].cost == pytest.approx(4.0 / 4 * 0.0015)
    assert fast.cost.pay_per_use.gpu_only == pytest.approx((24.9 - 3.0) * 0.0015)
    # provisioned: the GPU worker is held 3 s less (12 - 3 + 5 idle = 14 s)
    assert fast.cost.provisioned_parts.billed_gpu_worker_s == [14]
    assert plain.cost.provisioned_parts.billed_gpu_worker_s == [17]
    out = _render(fast)
    assert "CPU s ÷ 4 at GPU rate" in out and "mixed saves" in out and "--gpu-speedup 4" in out
    # on an accelerator the option changes nothing, and says so
    gpu = build_classify_report(**classify_fields(), gpu_speedup=4.0)
    assert gpu.cost.gpu_speedup is None and any("ignored" in n for n in gpu.cost.notes)


def test_bill_line_names_process_start_idle_and_rounding(report):
    out = _render(report)
    assert "GPU worker 17 s (process start to end 12.000 s + 5 s idle tail, rounded up per worker)" in out
    assert "CPU 4 × 15 s" in out


def test_version_1_report_still_shows(tmp_path, report):
    data = json.loads(report.model_dump_json())
    data["schema_version"] = 1
    for key in ("work", "calibration", "resumed"):
        data.pop(key)
    for key in ("process_s", "startup_s"):
        data["measurements"].pop(key)
    for key in ("billed_cpu_worker_s", "billed_gpu_worker_s", "billed_gpu_only_s"):
        data["cost"]["provisioned_parts"].pop(key)
    for key in ("idle_timeout_s", "gpu_speedup"):
        data["cost"].pop(key)
    p = tmp_path / "v1.json"
    p.write_text(json.dumps(data))
    old = load_report(p)
    assert old.schema_version == 1 and old.work is None
    assert "version-1 report" in _render(old)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_reports_and_trained_heads_honour_the_umask(tmp_path, report, umask, mode):
    """A report (or head) written for a group to read gets the mode any other file would get."""
    import torch

    from mixedclf.models.head_io import write_head

    old = os.umask(umask)
    try:
        written = write_report(report, tmp_path / "r.json")
        write_head(tmp_path, {"w": torch.zeros(2)}, {"format": "mixedclf-head"})
    finally:
        os.umask(old)
    assert written.stat().st_mode & 0o777 == mode
    for name in ("head.json", "head.safetensors"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head.json", "head.safetensors", "r.json"]


def test_money_has_sensible_digits():
    from mixedclf.costs.fmt import fmt_money, money_digits

    assert [fmt_money(x) for x in (94.8, 0.0374, 0.005548, 0.000069, 0.0000003, 0.0, -0.0021)] == [
        "$94.80", "$0.0374", "$0.00555", "$0.000069", "<$0.000001", "$0.00", "-$0.00210"]
    digits = money_digits([0.005548, 0.000069, 0.0000003])
    assert digits == 6 and fmt_money(0.0000003, digits) == "<$0.000001" and fmt_money(0.005548, digits) == "$0.005548"
