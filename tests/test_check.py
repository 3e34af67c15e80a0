"""`check`: the CI cost gate. Every exit code, every limit, every format."""

from __future__ import annotations

import json

import pytest
from conftest import write_classify_report

from mixedclf.costs import PricingProfile
from mixedclf.costs.check import COMMENT_MARKER, CheckLimits, compare
from mixedclf.costs.estimate import EstimateInputs, estimate
from mixedclf.costs.examples import REFERENCE, classify_fields, mixed_run
from mixedclf.costs.report import build_classify_report, write_report


@pytest.fixture
def pair(tmp_path):
    base = write_classify_report(tmp_path / "base.json")
    # 10% more inference seconds: mixed cost per 1k rises from 2.545 to 2.695 m$ (+5.89%)
    cur = write_classify_report(tmp_path / "cur.json", run=mixed_run(inf=4.4))
    return base, cur


def test_identical_reports_exit_0(cli, pair):
    base, _ = pair
    res = cli("check", base, "--baseline", base, "--max-increase-pct", 0)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "within limits" in res.stdout


def test_within_limit_exit_0(cli, pair):
    base, cur = pair
    res = cli("check", cur, "--baseline", base, "--max-increase-pct", 10)
    assert res.exit_code == 0
    assert "+5.9%" in res.stdout


def test_pct_regression_exit_1(cli, pair):
    base, cur = pair
    res = cli("check", cur, "--baseline", base, "--max-increase-pct", 5)
    assert res.exit_code == 1
    assert "regression" in res.stdout and "limit 5%" in res.stdout


def test_abs_regression_exit_1(cli, pair):
    base, cur = pair
    # +$0.00015 per 1k rows
    assert cli("check", cur, "--baseline", base, "--max-increase-abs", 0.0002).exit_code == 0
    assert cli("check", cur, "--baseline", base, "--max-increase-abs", 0.0001).exit_code == 1


def test_budget_exit_1(cli, pair):
    base, cur = pair
    assert cli("check", cur, "--baseline", base, "--budget-per-1k", 0.003).exit_code == 0
    res = cli("check", cur, "--baseline", base, "--budget-per-1k", 0.002)
    assert res.exit_code == 1 and "over the budget" in res.stdout


def test_warn_only_exit_0(cli, pair):
    base, cur = pair
    res = cli("check", cur, "--baseline", base, "--warn-pct", 5, "--max-increase-pct", 10, "-f", "json")
    assert res.exit_code == 0
    d = json.loads(res.stdout)
    assert d["status"] == "warn" and d["warnings"] and not d["violations"]


def test_cheaper_is_fine(cli, pair):
    base, cur = pair
    res = cli("check", base, "--baseline", cur, "--max-increase-pct", 0, "-f", "json")
    assert res.exit_code == 0 and json.loads(res.stdout)["change_pct"] < 0


def test_metrics(cli, tmp_path, pair):
    base, cur = pair
    res = cli("check", cur, "--baseline", base, "--metric", "gpu_seconds_per_1k", "--max-increase-pct", 5, "-f", "json")
    d = json.loads(res.stdout)
    assert res.exit_code == 1 and d["change_pct"] == pytest.approx(10.0)
    slow = write_classify_report(tmp_path / "slow.json", run=mixed_run(wall=12.5))
    res = cli("check", slow, "--baseline", base, "--metric", "throughput", "--max-increase-pct", 10)
    assert res.exit_code == 1 and "fell 20.0%" in res.stdout
    fast = write_classify_report(tmp_path / "fast.json", run=mixed_run(wall=8.0))
    assert cli("check", fast, "--baseline", base, "--metric", "throughput", "--max-increase-pct", 0).exit_code == 0
    res = cli("check", cur, "--baseline", base, "--basis", "provisioned", "-f", "json")
    assert json.loads(res.stdout)["basis"] == "provisioned"


def test_markdown_is_a_pr_comment(cli, pair, tmp_path):
    base, cur = pair
    out = tmp_path / "comment.md"
    res = cli("check", cur, "--baseline", base, "--max-increase-pct", 5, "--format", "markdown", "-o", out)
    assert res.exit_code == 1
    md = res.stdout
    assert md.startswith(COMMENT_MARKER) and "❌ mixedclf cost check: cost regression" in md
    assert "| **mixed total (measured)** | $ / 1k |" in md and "stage inference" in md
    assert out.read_text() == md
    ok = cli("check", base, "--baseline", base, "-f", "markdown").stdout
    assert "within limits" in ok and "max +10%" in ok  # the default gate
    table_out = tmp_path / "t.txt"
    assert cli("check", cur, "--baseline", base, "-o", table_out).exit_code == 0
    assert "mixed total" in table_out.read_text()


@pytest.mark.parametrize("which", ["current", "baseline"])
def test_missing_file_exit_2(cli, pair, tmp_path, which):
    base, cur = pair
    args = (tmp_path / "nope.json", "--baseline", base) if which == "current" else (cur, "--baseline", tmp_path / "x.json")
    res = cli("check", *args)
    assert res.exit_code == 2 and res.stderr.startswith("error: report not found") and res.stderr.count("\n") == 1


def test_unreadable_and_wrong_schema_exit_2(cli, pair, tmp_path):
    base, _ = pair
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert cli("check", bad, "--baseline", base).exit_code == 2
    old = tmp_path / "old.json"
    data = json.loads(base.read_text())
    data["schema_version"] = 0
    old.write_text(json.dumps(data))
    res = cli("check", base, "--baseline", old, "--allow-mismatch")
    assert res.exit_code == 2 and "schema_version 0" in res.stderr


def test_different_model_exit_2_unless_allowed(cli, tmp_path, pair):
    base, _ = pair
    other = write_classify_report(tmp_path / "other.json", model="./my-model")
    res = cli("check", other, "--baseline", base)
    assert res.exit_code == 2 and "models differ" in res.stderr and "--allow-mismatch" in res.stderr
    res = cli("check", other, "--baseline", base, "--allow-mismatch", "-f", "json")
    assert res.exit_code == 0 and json.loads(res.stdout)["status"] == "warn"


def test_different_pricing_exit_2_unless_allowed(cli, tmp_path, pair):
    base, _ = pair
    h100 = PricingProfile(name="runpod-h100-pro", cpu_per_sec=0.0002, gpu_per_sec=0.00116)
    other = write_classify_report(tmp_path / "h100.json", pricing=h100)
    assert cli("check", other, "--baseline", base).exit_code == 2
    assert cli("check", other, "--baseline", base, "--allow-mismatch").exit_code == 0
    edited_pricing = REFERENCE.model_copy(update={"cpu_per_sec": 0.0003})
    edited = write_classify_report(tmp_path / "edited.json", pricing=edited_pricing)
    res = cli("check", edited, "--baseline", base)
    assert res.exit_code == 2 and "different rates" in res.stderr


def test_different_mode_and_kind_exit_2(cli, tmp_path, pair):
    from mixedclf.costs.examples import gpu_only_run

    base, _ = pair
    go = write_classify_report(tmp_path / "go.json", run=gpu_only_run())
    assert cli("check", go, "--baseline", base).exit_code == 2
    est = write_report(estimate(EstimateInputs(requests_per_day=10_000), REFERENCE), tmp_path / "est.json")
    res = cli("check", est, "--baseline", base)
    assert res.exit_code == 2 and "kinds differ" in res.stderr
    assert cli("check", est, "--baseline", base, "--allow-mismatch", "--max-increase-pct", 1e6).exit_code == 0


def test_bad_options_exit_2(cli, pair):
    base, cur = pair
    for args in (["--metric", "latency"], ["--format", "html"], ["--basis", "spot"], ["--max-increase-pct", "-1"]):
        res = cli("check", cur, "--baseline", base, *args)
        assert res.exit_code == 2 and res.stderr.startswith("error: "), args


def test_estimate_reports(cli, tmp_path):
    a = write_report(estimate(EstimateInputs(requests_per_day=10_000), REFERENCE), tmp_path / "a.json")
    b = write_report(estimate(EstimateInputs(requests_per_day=10_000, gpu_sec=0.25), REFERENCE), tmp_path / "b.json")
    res = cli("check", b, "--baseline", a, "--max-increase-pct", 20, "-f", "json")
    d = json.loads(res.stdout)
    # mixed per 1k: 0.316 -> 0.391 (+23.7%)
    assert res.exit_code == 1 and d["change_pct"] == pytest.approx(23.734, abs=1e-3)
    assert any(r["name"] == "inference" for r in d["rows"])
    assert cli("check", b, "--baseline", a, "--max-increase-pct", 25).exit_code == 0
    res = cli("check", b, "--baseline", a, "--metric", "throughput")
    assert res.exit_code == 2 and "needs classify reports" in res.stderr


def test_compare_zero_baseline():
    base = build_classify_report(**classify_fields(run=mixed_run(items=0)))
    cur = build_classify_report(**classify_fields())
    # a classify run that classified no rows has no cost per row: refused on either side (was a "regression"
    # as a baseline, and "-100%, within limits" as a current run)
    from mixedclf.costs.pricing import CostInputError

    for pair_ in ((base, cur), (cur, base), (base, base)):
        with pytest.raises(CostInputError, match="classified no rows"):
            compare(*pair_, limits=CheckLimits(max_increase_pct=1000))


@pytest.mark.parametrize("fmt", ["table", "json", "markdown"])
def test_closed_stdout_is_the_broken_pipe_error_not_a_regression(pair, fmt):
    """`check ... | head -1`: a closed pipe ends through the CLI's exit-code table with its one line on stderr, not
    rich's silent exit 1 (the regression code)."""
    import os
    import subprocess
    import sys

    from mixedclf.errors import exit_code_and_line

    base, cur = pair
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to stdout fails with EPIPE
    try:
        done = subprocess.run([sys.executable, "-m", "mixedclf", "check", str(cur), "--baseline", str(base),
                               "--format", fmt], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    code, _ = exit_code_and_line(BrokenPipeError(32, "Broken pipe"))
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "pipe" in lines[0].lower(), done.stderr


def _with_cache(path, hit_rate: float, items: int = 1000):
    from mixedclf.costs.cache import CacheSavings
    from mixedclf.costs.report import load_report

    report = load_report(path)
    hits = round(hit_rate * items)
    report.cache = CacheSavings(path="c", hits=hits, misses=items - hits, hit_rate=hit_rate, stored=0, evicted=0)
    write_report(report, path)
    return path


def test_a_different_cache_hit_rate_is_a_mismatch(cli, tmp_path):
    """Rows the prediction cache answers skip the device: the hit rate is part of the work compared."""
    base = write_classify_report(tmp_path / "base.json")
    cached = _with_cache(write_classify_report(tmp_path / "cached.json"), 0.9)
    res = cli("check", cached, "--baseline", base)
    assert res.exit_code == 2 and "prediction cache hit rates differ" in res.stderr, res.stderr
    assert "baseline 0.0%, current 90.0%" in res.stderr
    assert cli("check", cached, "--baseline", base, "--allow-mismatch").exit_code == 0
    near = _with_cache(write_classify_report(tmp_path / "near.json"), 0.895)
    assert cli("check", near, "--baseline", cached).exit_code == 0  # within one percentage point


def test_compare_and_run_take_the_gate_options_declared_once():
    from dataclasses import fields

    import typer.main

    from mixedclf.cli.check import GateOptions, check_app

    names = [f.name for f in fields(GateOptions)]
    commands = typer.main.get_command(check_app).commands  # type: ignore[attr-defined]

    def gate(command: str) -> list[tuple]:
        return [(p.name, tuple(p.opts), p.default, getattr(p, "help", None))
                for p in commands[command].params if p.name in names]

    assert [p[0] for p in gate("compare")] == names
    assert gate("compare") == gate("run")
