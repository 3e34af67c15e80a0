"""The work-based gate on real runs: identical runs never fail it, a model with twice the layers always does."""

from __future__ import annotations

import itertools
import json
import math

import pytest
from conftest import SAMPLE_JSONL, build_tiny_classifier, classify_process

from mixedclf.costs.check import CheckLimits, compare
from mixedclf.costs.report import ResumeInfo, load_report, write_report
from mixedclf.costs.work import ModelShape, model_flops

ROWS = 48


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model):
    tmp = tmp_path_factory.mktemp("gate")
    small = tmp / "in.jsonl"
    small.write_text("".join(SAMPLE_JSONL.read_text(encoding="utf-8").splitlines(keepends=True)[:ROWS]))
    # Twice the layers, in a folder of the same name: a pull request that swaps the model behind one path.
    deeper_model = build_tiny_classifier(tmp / "deeper" / tiny_model.name, layers=4)
    for name, model in [("same0", tiny_model), ("same1", tiny_model), ("same2", tiny_model), ("deeper", deeper_model)]:
        done = classify_process(small, "-o", tmp / f"{name}.jsonl", "--model", model, "--device", "cpu",
                                "--mode", "gpu-only", "--batch-size", 16, "--report", tmp / f"{name}.json",
                                "--quiet", in_process=True)
        assert done.returncode == 0, done.stderr
    return [tmp / f"same{i}.json" for i in range(3)], tmp / "deeper.json"


def test_identical_runs_never_fail(runs):
    same, _ = runs
    reports = [load_report(p) for p in same]
    for a, b in itertools.permutations(range(3), 2):
        r = compare(reports[a], reports[b], baseline_path=str(same[a]), current_path=str(same[b]))
        assert r.exit_code == 0 and r.verdict_on == "work" and r.change == 0, (a, b, r.violations)
    # measured seconds of the same runs do move: they are shown, never gated
    r = compare(reports[:2], reports[2:])
    assert r.exit_code == 0 and r.change_pct == 0.0
    for limit in (0.0, 1.0):
        assert compare(reports[0], reports[1], limits=CheckLimits(max_increase_pct=limit)).exit_code == 0


def test_twice_the_layers_always_fails(runs, cli):
    same, deeper = runs
    cur = load_report(deeper)
    assert cur.model == load_report(same[0]).model and cur.work.shape.layers == 4
    for base in same:
        r = compare(load_report(base), cur)
        assert r.exit_code == 1 and r.verdict_on == "work", r
        assert r.worsening_pct > 80 and "(work) rose" in r.violations[0]
    res = cli("check", deeper, "--baseline", *same, "-f", "json")
    assert res.exit_code == 1, res.stdout + res.stderr
    d = json.loads(res.stdout)
    assert d["verdict_on"] == "work" and len(d["baseline_paths"]) == 3 and d["current_paths"] == [str(deeper)]
    layers = next(row for row in d["rows"] if row["name"] == "encoder layers")
    assert (layers["baseline"], layers["current"]) == (2, 4)
    # and several current reports against several baselines: the medians decide
    res = cli("check", same[0], same[1], "--baseline", same[2], "--max-increase-pct", 10, "-f", "markdown")
    assert res.exit_code == 0 and "median of 1 baseline / 2 current" in res.stdout


def test_work_changing_settings_are_refused(runs, tmp_path):
    same, _ = runs
    base = load_report(same[0])
    other = base.model_copy(update={"settings": {**base.settings, "batch_size": 32, "cpu_workers": 3}})
    with pytest.raises(Exception, match="setting batch_size differs"):
        compare(base, other)
    r = compare(base, other, allow_mismatch=True)
    assert r.exit_code == 0 and any("batch_size" in w for w in r.warnings)
    partial = base.model_copy(update={"resumed": ResumeInfo(from_chunk=1, rows_before=60, rows_this_run=60)})
    with pytest.raises(Exception, match="partial run"):
        compare(base, partial)
    write_report(partial, tmp_path / "partial.json")
    from mixedclf.render.report import report_to_markdown, summary_line

    assert "partial run" in report_to_markdown(partial) and "PARTIAL" in summary_line(partial)


def test_report_records_work_and_calibration(runs):
    same, _ = runs
    rep = load_report(same[0])
    w, cal = rep.work, rep.calibration
    assert w.rows == ROWS and 0 < w.real_tokens <= w.padded_tokens and w.micro_batches >= ROWS // 16
    assert w.shape == ModelShape(layers=2, hidden=32, intermediate=37)
    assert w.gflop == pytest.approx(model_flops(w.shape, w.padded_tokens, w.token_width_sum) / 1e9)
    assert cal.s_per_gflop > 0 and cal.seconds > 0
    m = rep.measurements
    # a library call is billed from its own start; the GPU worker's bill is that plus the idle tail, rounded up
    assert m.process_s >= m.wall_s and m.startup_s > 0
    assert rep.cost.provisioned_parts.billed_gpu_only_s == math.ceil(m.process_s + 5.0)


def test_flops_formula_by_hand():
    shape = ModelShape(layers=2, hidden=32, intermediate=37)
    # per layer: 4 x 32^2 + 2 x 32 x 37 = 4096 + 2368 = 6464 weights; 2 FLOPs each, 2 layers -> 25,856 per token
    assert shape.linear_flops_per_token == 25_856
    # one micro-batch of 3 rows, width 10: 30 tokens; attention 4 x 2 x 32 x (3 x 10^2)
    assert model_flops(shape, 30, 300) == 25_856 * 30 + 4 * 2 * 32 * 300


def test_cli_bills_from_process_start(tiny_model, tmp_path):
    """A real `mixedclf classify` process: the bill starts before the engine does (interpreter and imports)."""
    import os
    import subprocess
    import sys
    import time

    small = tmp_path / "in.jsonl"
    small.write_text("".join(SAMPLE_JSONL.read_text(encoding="utf-8").splitlines(keepends=True)[:16]))
    report = tmp_path / "r.json"
    before = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "mixedclf", "classify", str(small), "-o", str(tmp_path / "o.jsonl"), "--model",
         str(tiny_model), "--device", "cpu", "--mode", "gpu-only", "--idle-timeout", "3", "--report", str(report),
         "-q", "--format", "json"], capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300)
    elapsed = time.monotonic() - before
    assert done.returncode == 0, done.stderr
    rep = load_report(report)
    m = rep.measurements
    assert m.wall_s + 0.05 < m.process_s <= elapsed
    assert m.startup_s >= m.process_s - m.wall_s
    assert rep.cost.idle_timeout_s == 3.0
    assert rep.cost.provisioned_parts.billed_gpu_only_s == math.ceil(m.process_s + 3.0)
    # inference ran on this CPU: the summary the process prints (--quiet prints it only when asked for, issue 24)
    # claims no saving under either billing model, and its seconds are the report's
    summary = json.loads(done.stdout)
    assert summary["seconds"] == m.wall_s
    for basis in ("pay_per_use", "provisioned"):
        totals = summary[basis]
        assert totals["savings_claimed"] is False and totals["savings"] is None and totals["savings_pct"] is None
        assert totals["gpu_seconds_are"] == "CPU seconds priced at the GPU rate"
