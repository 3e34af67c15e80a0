"""classify --max-cost: the projected bill, the clean stop (exit 4, checkpointed) and --resume to the end."""

from __future__ import annotations

import json

import pytest
from conftest import classify_process
from datagen import write_jsonl

from mixedclf.costs.budget import BillSnapshot, bill, check_budget
from mixedclf.costs.pricing import load_pricing
from mixedclf.errors import EXIT_BUDGET
from mixedclf.io.checkpoint import Checkpoint, checkpoint_path
from mixedclf.io.writers import temp_path_for

REFERENCE = load_pricing(None, "reference")  # c = $0.0002/s, g = $0.0015/s


def _snapshot(**over) -> BillSnapshot:
    fields = dict(mode="mixed", device="cuda:0", rows=1000, process_s=10.0, startup_s=1.0, load_s=1.0,
                  inference_busy_s=4.0, pool_workers=2, pool_held_s=9.5, pool_running=True, classify_s=8.0)
    return BillSnapshot(**{**fields, **over})


def test_bill_now_and_after_more_rows_by_hand():
    # now: pool 2 x ceil(9.5 + 5) = 2 x 15 s at c, GPU worker ceil(10 + 5) = 15 s at g
    assert bill(_snapshot(), REFERENCE, idle_timeout_s=5, gpu_speedup=None) == pytest.approx(
        2 * 15 * 0.0002 + 15 * 0.0015)
    # 500 more rows at 8 s / 1,000 rows = 4 s more: pool ceil(13.5 + 5) = 19 s, GPU ceil(14 + 5) = 19 s
    assert bill(_snapshot(), REFERENCE, idle_timeout_s=5, gpu_speedup=None, more_rows=500) == pytest.approx(
        2 * 19 * 0.0002 + 19 * 0.0015)
    # a released pool does not grow; gpu-only bills the process alone: ceil(10 + 4 + 5) = 19 s at g
    assert bill(_snapshot(pool_running=False), REFERENCE, idle_timeout_s=5, gpu_speedup=None,
                more_rows=500) == pytest.approx(2 * 15 * 0.0002 + 19 * 0.0015)
    assert bill(_snapshot(mode="gpu-only", pool_workers=0, pool_held_s=0.0, pool_running=False), REFERENCE,
                idle_timeout_s=5, gpu_speedup=None, more_rows=500) == pytest.approx(19 * 0.0015)


def test_check_stops_before_the_chunk_that_crosses_and_counts_earlier_spend():
    kw = dict(next_rows=500, rows_before=0, expected_rows=3000, idle_timeout_s=5, gpu_speedup=None)
    after = 2 * 19 * 0.0002 + 19 * 0.0015  # $0.0361
    assert check_budget(_snapshot(), REFERENCE, max_cost=0.04, spent_before=0.0, **kw).over is False
    over = check_budget(_snapshot(), REFERENCE, max_cost=0.036, spent_before=0.0, **kw)
    assert over.over and over.after_next == pytest.approx(after)
    # the whole job: 2,000 rows left at 8 ms each = 16 s more: pool ceil(25.5 + 5) = 31, GPU ceil(26 + 5) = 31
    assert over.projected_job == pytest.approx(2 * 31 * 0.0002 + 31 * 0.0015)
    # a resumed job carries what its earlier processes spent
    carried = check_budget(_snapshot(), REFERENCE, max_cost=0.04, spent_before=0.01, **kw)
    assert carried.over and carried.after_next == pytest.approx(0.0461)
    # no row classified yet by this process: nothing to project from, the chunk runs
    assert check_budget(_snapshot(rows=0), REFERENCE, max_cost=1e-9, spent_before=0.0, **kw).over is False
    assert "--resume" in over.message("out.jsonl") and "$0.036" in over.message("out.jsonl")


@pytest.fixture(scope="module")
def input_3k(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("budget") / "in.jsonl", 3000, seed=3)


def _ids_and_labels(path):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [(r["id"], r["label"]) for r in rows]


@pytest.mark.slow
def test_a_tiny_budget_stops_before_a_full_chunk_and_resume_completes_the_job(tmp_path, tiny_model, input_3k):
    common = ["--model", tiny_model, "--chunk-rows", "500", "--cpu-workers", "1", "-q"]
    whole = tmp_path / "whole.jsonl"
    done = classify_process(input_3k, "-o", whole, *common)
    assert done.returncode == 0, done.stderr

    out, report = tmp_path / "out.jsonl", tmp_path / "stop.json"
    stopped = classify_process(input_3k, "-o", out, "--max-cost", "0.000001", "--report", report, *common)
    assert stopped.returncode == EXIT_BUDGET == 4, stopped.stderr
    assert "stopped at the cost budget before a full chunk ran: a probe of" in stopped.stderr
    assert "--resume" in stopped.stderr
    assert "Traceback" not in stopped.stderr and len(stopped.stderr.strip().splitlines()) == 1
    # the probe's micro-batch ran, the chunk did not: nothing written, the spend kept in the checkpoint
    assert not out.exists()
    checkpoint = Checkpoint.load(out)
    assert checkpoint.chunks_done == 0 and checkpoint.rows_out == 0 and checkpoint.spent_usd > 0
    partial = temp_path_for(out)
    assert not partial.exists() or partial.stat().st_size == 0
    # a stop at the budget writes its report, flagged partial, with the probe's bill
    from mixedclf.costs.report import load_report

    rep = load_report(report)
    assert rep.partial and "probe" in rep.stopped and rep.rows_out == 0
    assert rep.cost.provisioned.mixed == pytest.approx(checkpoint.spent_usd, abs=0.002)

    # the budget covers the whole job: resuming with the same budget does nothing and keeps everything
    again = classify_process(input_3k, "-o", out, "--resume", "--max-cost", "0.000001", *common)
    assert again.returncode == EXIT_BUDGET and "already spent" in again.stderr
    assert Checkpoint.load(out) == checkpoint

    final = tmp_path / "final.json"
    resumed = classify_process(input_3k, "-o", out, "--resume", "--report", final, *common)
    assert resumed.returncode == 0, resumed.stderr
    assert not checkpoint_path(out).exists()
    assert _ids_and_labels(out) == _ids_and_labels(whole)
    # the finished job's report carries the whole job: both runs' seconds and dollars, every row
    job = load_report(final).job
    assert job is not None and job.runs == 2 and job.rows_out == 3000
    this_run = load_report(final)
    assert job.provisioned_usd == pytest.approx(checkpoint.spent_usd + this_run.cost.provisioned.mixed, abs=1e-6)
    assert job.process_s > this_run.measurements.process_s


@pytest.mark.slow
def test_resume_with_the_same_budget_stays_within_one_probe(tmp_path, tiny_model, input_3k):
    """A budget between one chunk and the job: each resume with the same budget goes no further than one probe
    past it, and the checkpoint's spend only grows."""
    common = ["--model", tiny_model, "--chunk-rows", "500", "--cpu-workers", "1", "-q"]
    out = tmp_path / "out.jsonl"
    first = classify_process(input_3k, "-o", out, "--max-cost", "0.05", *common)
    assert first.returncode in (0, EXIT_BUDGET), first.stderr
    if first.returncode == 0:
        pytest.skip("the whole job fitted in the budget on this machine")
    spent = [Checkpoint.load(out).spent_usd]
    for _ in range(2):
        again = classify_process(input_3k, "-o", out, "--resume", "--max-cost", "0.05", *common)
        assert again.returncode == EXIT_BUDGET, again.stderr
        spent.append(Checkpoint.load(out).spent_usd)
    assert spent == sorted(spent)
    steps = [spent[0]] + [b - a for a, b in zip(spent, spent[1:])]
    # past the budget by at most what one process spent before it was stopped (its probe, or its last look)
    assert spent[-1] - 0.05 <= max(steps) + 1e-9
    # once the budget is spent, a resume with it does nothing
    for before, after in zip(spent, spent[1:]):
        if before >= 0.05:
            assert after == before


@pytest.mark.slow
def test_a_budget_that_is_not_reached_changes_nothing(tmp_path, tiny_model, input_3k):
    out, report = tmp_path / "out.jsonl", tmp_path / "run.json"
    done = classify_process(input_3k, "-o", out, "--model", tiny_model, "--chunk-rows", "1000", "--cpu-workers", "1",
                     "--max-cost", "100", "--report", report, "-q")
    assert done.returncode == 0, done.stderr
    budget = json.loads(report.read_text())["extra"]["budget"]
    assert budget["max_cost"] == 100 and budget["spent_before"] == 0
    assert 0 < budget["first_projection"] < 100  # projected after the first chunk
    from mixedclf.costs.report import load_report
    from mixedclf.render.report import run_budget_line

    assert run_budget_line(load_report(report)).startswith("budget: --max-cost $100; the job's provisioned bill $")
    assert len(out.read_text().splitlines()) == 3000


def test_max_cost_is_refused_with_the_ray_engine_and_must_be_positive(tmp_path, input_3k):
    from typer.testing import CliRunner

    from mixedclf.cli.app import app

    for extra, needle in ((["--engine", "ray", "--max-cost", "1"], "--max-cost needs --engine local"),
                          (["--max-cost", "0"], "--max-cost")):
        result = CliRunner().invoke(app, ["classify", str(input_3k), "-o", str(tmp_path / "o.jsonl"), *extra])
        assert result.exit_code == 2 and needle in result.output, result.output


def test_rows_the_cache_answers_are_not_projected_as_rows_left_to_run():
    """--max-cost counts only what runs: the in-chunk projection drops the rows the prediction cache answered."""
    import time

    import numpy as np

    from mixedclf.engines.budget import CostMeter
    from mixedclf.engines.local import _MeteredAnswers

    class Held:
        def lookup(self, keys):
            return {i: np.zeros(2, np.float32) for i in range(len(keys)) if i % 10}  # 9 of every 10 held

        def store(self, keys, logits):
            pass

    meter = CostMeter(load_pricing(None, "reference"), started_at=time.monotonic(), idle_timeout_s=5.0,
                      gpu_speedup=None)
    meter.chunk_started(1000)
    held = _MeteredAnswers(Held(), meter).lookup([bytes([i % 256, i // 256]) for i in range(1000)])
    assert len(held) == 900
    assert meter._chunk_rows == 100  # the rows the device will run, what the projection counts as left
