"""The usage file (mixedclf-usage.toml): read by estimate and check; command line > usage file > defaults."""

from __future__ import annotations

import json

import pytest
from conftest import write_classify_report

from mixedclf.configs import packaged_config
from mixedclf.costs.examples import mixed_run
from mixedclf.costs.usage import USAGE_FILE_NAME, load_usage

DESIGN = """
requests_per_day = 10000
billing = "runpod"
idle_timeout_pre = 180
idle_timeout_gpu = 300
idle_timeout_post = 3
cold_start_sec = 10
cold_start_cpu_sec = 2
gpu_workers = "0:3"
cpu_workers = [0, 3]
orchestrator_workers = 1
"""
DESIGN_OPTIONS = ["-n", "10000", "--billing", "runpod", "--idle-timeout-pre", "180", "--idle-timeout-gpu", "300",
                  "--idle-timeout-post", "3", "--cold-start-sec", "10", "--cold-start-cpu-sec", "2",
                  "--gpu-workers", "0:3", "--cpu-workers", "0:3", "--orchestrator-workers", "1"]


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for key in ("created_at", "notes"):  # the time, and the note naming the usage file
        data.pop(key)
    return data


def test_estimate_with_a_usage_file_equals_estimate_with_the_same_options(cli, tmp_path):
    usage = tmp_path / "u.toml"
    usage.write_text(DESIGN)
    from_file = _json(cli("estimate", "--usage", usage, "-f", "json"))
    from_options = _json(cli("estimate", *DESIGN_OPTIONS, "-f", "json"))
    assert from_file == from_options
    assert from_file["mixed_per_day"] == pytest.approx(163.33, abs=0.01)  # the design deployment (cost-model.md)


def test_the_command_line_wins_and_the_current_folder_is_read(cli, tmp_path, monkeypatch):
    (tmp_path / USAGE_FILE_NAME).write_text(DESIGN)
    monkeypatch.chdir(tmp_path)
    picked_up = cli("estimate", "-f", "json")
    assert json.loads(picked_up.output)["billing"] == "runpod"
    assert any(USAGE_FILE_NAME in n for n in json.loads(picked_up.output)["notes"])
    # an option given on the command line wins over the file, even when it names the default value
    ideal = json.loads(cli("estimate", "--billing", "ideal", "-f", "json").output)
    assert ideal["billing"] == "ideal" and ideal["inputs"]["idle_timeout_gpu"] == 300
    assert (ideal["mixed_per_day"], ideal["gpu_only_per_day"]) == (3.16, 4.2)
    ignored = json.loads(cli("estimate", "--no-usage", "-f", "json").output)
    assert ignored["billing"] == "ideal" and ignored["inputs"]["idle_timeout_gpu"] is None


@pytest.mark.parametrize("text, needle", [
    ("reqests_per_day = 5\n", "unknown key 'reqests_per_day' (did you mean 'requests_per_day'?)"),
    ("[idle_timeout]\ngpu = 5\n", "unknown key 'idle_timeout'"),
    ("idle_timeout_gpu = -1\n", "idle_timeout_gpu: Input should be greater than or equal to 0"),
    ("gpu_workers = \"3:1\"\n", "gpu_workers: gpu_workers expects MIN:MAX"),
    ("billing = 'cheap'\n", "billing:"),
    ("requests_per_day = \n", "is not valid TOML"),
])
def test_a_bad_usage_file_is_one_line_and_exit_2(cli, tmp_path, text, needle):
    usage = tmp_path / "u.toml"
    usage.write_text(text)
    base = write_classify_report(tmp_path / "base.json")
    for args in (("estimate", "--usage", usage), ("check", base, "--baseline", base, "--usage", usage)):
        result = cli(*args)
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: ") and needle in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_check_shows_each_sides_monthly_projection_under_the_usage_file(cli, tmp_path):
    usage = tmp_path / "u.toml"
    usage.write_text("requests_per_day = 50000\nbilling = 'ideal'\n")
    base = write_classify_report(tmp_path / "base.json")
    run = mixed_run()
    slower = [s.model_copy(update={"busy_s": s.busy_s * 2}) if s.name == "inference" else s for s in run.stages]
    cur = write_classify_report(tmp_path / "cur.json", run=run.model_copy(update={"stages": slower}))

    result = cli("check", cur, "--baseline", base, "--usage", usage, "--max-increase-pct", "1e9", "-f", "json")
    assert result.exit_code == 0, result.output
    monthly = json.loads(result.output)["monthly"]
    # each side is `estimate --from-report REPORT` under the same usage file
    for side, report in (("baseline_per_month", base), ("current_per_month", cur)):
        est = json.loads(cli("estimate", "--from-report", report, "--usage", usage, "-f", "json").output)
        assert monthly[side] == est["mixed_per_month"]
    # by hand (ideal): 4,000 rows; inference 4.0 s -> 8.0 s at $0.0015/s = +$0.0015 per 1,000 requests;
    # 50,000 requests/day x 30 days = 1,500 x 1,000 requests a month: +$2.25 a month
    assert monthly["change"] == pytest.approx(2.25)
    assert monthly["billing"] == "ideal" and monthly["requests_per_day"] == 50000

    table = cli("check", cur, "--baseline", base, "--usage", usage, "--max-increase-pct", "1e9")
    assert "projected per month under" in table.output and "+$2.25" in table.output
    markdown = cli("check", cur, "--baseline", base, "--usage", usage, "--max-increase-pct", "1e9", "-f", "markdown")
    assert "projected per month under" in markdown.output
    without = json.loads(cli("check", cur, "--baseline", base, "--no-usage", "--max-increase-pct", "1e9",
                             "-f", "json").output)
    assert without["monthly"] is None


def test_the_shipped_example_is_valid_and_prices_the_design_deployment(cli):
    example = packaged_config("mixedclf-usage.example.toml")
    usage = load_usage(example).usage
    assert usage.billing == "runpod" and usage.gpu_workers == (0, 3) and usage.idle_timeout_gpu == 300
    est = json.loads(cli("estimate", "--usage", example, "-f", "json").output)
    assert (est["mixed_per_day"], est["gpu_only_per_day"]) == pytest.approx((163.33, 129.60), abs=0.01)


def test_a_pricing_file_in_the_usage_file_is_relative_to_it(cli, tmp_path):
    folder = tmp_path / "team"
    folder.mkdir()
    (folder / "prices.toml").write_text(packaged_config("pricing.toml").read_text())
    (folder / USAGE_FILE_NAME).write_text('pricing = "prices.toml"\nprofile = "runpod-l4"\n')
    est = json.loads(cli("estimate", "--usage", folder / USAGE_FILE_NAME, "-f", "json").output)
    assert est["pricing"]["name"] == "runpod-l4"


def test_under_the_designs_idle_timeouts_slower_inference_costs_nothing_more_a_month(cli, tmp_path):
    """docs/ci.md's example line: the 300 s GPU endpoint never stops at 10,000 requests/day either way."""
    usage = tmp_path / USAGE_FILE_NAME
    usage.write_text(DESIGN)
    base = write_classify_report(tmp_path / "base.json")
    run = mixed_run()
    slower = [s.model_copy(update={"busy_s": s.busy_s * 2}) if s.name == "inference" else s for s in run.stages]
    cur = write_classify_report(tmp_path / "cur.json", run=run.model_copy(update={"stages": slower}))
    result = cli("check", cur, "--baseline", base, "--usage", usage, "--max-increase-pct", "1e9", "-f", "markdown")
    assert "$4,900.21 -> $4,900.21 (+$0.00, +0.0%)" in result.output, result.output
