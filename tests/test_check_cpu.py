"""The CPU-time gate of `check`: the same work done slower fails, identical runs pass, one run a side is not gated."""

from __future__ import annotations

import json

import pytest
from conftest import SAMPLE_JSONL

from mixedclf.costs.check import CheckLimits, compare
from mixedclf.costs.check_cpu import MIN_REPORTS, cpu_gate, mann_whitney_greater
from mixedclf.costs.examples import classify_fields, mixed_run
from mixedclf.costs.report import build_classify_report

# Run-to-run spread of CPU seconds, as a loaded machine gives it (a fixed pattern: the tests are deterministic).
JITTER = (1.00, 0.93, 1.07, 0.97, 1.04, 0.95)


def _report(pre=1.0, inf=2.0, read=0.2, post=0.1, write=0.05, jitter=1.0):
    run = mixed_run()
    cpu = {"model_load": 1.0, "read": read, "preprocess": pre, "inference": inf, "postprocess": post, "write": write}
    stages = [s.model_copy(update={"cpu_s": cpu[s.name] * jitter}) for s in run.stages]
    return build_classify_report(**classify_fields(run=run.model_copy(update={"stages": stages})))


def _side(n=6, **kw):
    return [_report(jitter=JITTER[i % len(JITTER)], **kw) for i in range(n)]


def test_same_work_slower_fails_where_the_work_gate_cannot_see_it():
    base = _side()
    for stage_kw, name in (({"pre": 1.5}, "stage preprocess"), ({"inf": 3.0}, "stage inference")):
        r = compare(base, _side(**stage_kw))
        assert r.exit_code == 1 and r.status == "regression", r.violations
        assert any(v.startswith(name) for v in r.violations), r.violations
        assert r.cpu is not None and any(f.failed for f in r.cpu.figures)
    # a faster candidate never fails
    assert compare(base, _side(pre=0.5, inf=1.0)).exit_code == 0


def test_identical_distributions_pass_and_noise_is_not_a_regression():
    base = _side()
    same = [_report(jitter=j) for j in reversed(JITTER)]
    r = compare(base, same)
    assert r.exit_code == 0 and not r.violations, r.violations
    assert all(not f.failed for f in r.cpu.figures)
    # a significant change smaller than the limits passes: +10% of one stage's CPU seconds
    assert compare(base, _side(pre=1.1)).exit_code == 0
    # a change past the limit without significance passes: the sides overlap completely
    wide = [_report(jitter=j) for j in (0.6, 1.4, 0.7, 1.5, 1.0, 1.6)]
    assert compare(base, wide).exit_code == 0


def test_too_few_reports_are_shown_not_gated():
    r = compare(_side(n=MIN_REPORTS - 1), _side(n=MIN_REPORTS - 1, pre=2.0))
    assert r.exit_code == 0 and r.cpu.alpha_per_figure is None
    assert any("rank test needs" in w for w in r.warnings)


def test_small_stages_are_not_gated_alone_and_limits_apply():
    # write is under 2% of the run's CPU: doubling it is in the cost figure, not a failure of its own
    base = _side()
    r = compare(base, _side(write=0.1))
    assert r.exit_code == 0
    assert next(f for f in r.cpu.figures if f.name == "stage write").limit_pct is None
    # the stage limit is an option: +50% of preprocess passes under a 60% limit (the cost figure moves +14%)
    assert compare(base, _side(pre=1.5), limits=CheckLimits(max_stage_increase_pct=60,
                                                            max_increase_pct=20)).exit_code == 0


def test_reports_without_cpu_seconds_keep_the_old_verdict():
    run = mixed_run()
    plain = build_classify_report(**classify_fields(run=run))
    assert cpu_gate([plain] * 3, [plain] * 3, max_increase_pct=10) is None
    r = compare([plain] * 3, [plain] * 3)
    assert r.cpu is None and r.exit_code == 0
    assert any("CPU-time gate did not run" in w for w in r.warnings)


def test_mann_whitney_exact_p():
    # complete separation of 6 and 6: p = 1 / C(12, 6)
    assert mann_whitney_greater([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]) == pytest.approx(1 / 924)
    assert mann_whitney_greater([7, 8, 9, 10, 11, 12], [1, 2, 3, 4, 5, 6]) == pytest.approx(1.0)


def test_cli_renders_the_cpu_gate(cli, tmp_path):
    from mixedclf.costs.report import write_report

    bases = [write_report(r, tmp_path / f"b{i}.json") for i, r in enumerate(_side())]
    curs = [write_report(r, tmp_path / f"c{i}.json") for i, r in enumerate(_side(pre=1.5))]
    res = cli("check", *curs, "--baseline", *bases)
    assert res.exit_code == 1, res.stdout + res.stderr
    assert "CPU-time gate" in res.stdout and "stage preprocess rose" in res.stdout
    md = cli("check", "compare", *curs, "--baseline", *bases, "--format", "markdown")
    assert md.exit_code == 1 and "CPU-time gate" in md.stdout and "| stage preprocess |" in md.stdout
    data = json.loads(cli("check", *curs, "--baseline", *bases, "--format", "json").stdout)
    assert data["cpu"]["violations"] and data["status"] == "regression"


def test_a_real_run_records_cpu_seconds_per_stage(tiny_model, tmp_path):
    from mixedclf.core.options import ClassifyOptions
    from mixedclf.costs.report import load_report
    from mixedclf.engines.run import classify_file

    for mode in ("mixed", "gpu-only"):
        opts = ClassifyOptions(input=SAMPLE_JSONL, output=tmp_path / f"{mode}.jsonl", model=str(tiny_model),
                               device="cpu", mode=mode, cpu_workers=1, report=tmp_path / f"{mode}.json")
        classify_file(opts)
        rep = load_report(tmp_path / f"{mode}.json")
        cpu = {s.name: s.cpu_s for s in rep.cost.stages}
        for name in ("model_load", "read", "preprocess", "inference", "postprocess", "write"):
            assert cpu[name] is not None and cpu[name] > 0, (mode, name, cpu)
        # CPU seconds of one process's stages cannot exceed its busy seconds by much (single-threaded stages)
        assert cpu["postprocess"] <= next(s.seconds for s in rep.cost.stages if s.name == "postprocess") + 0.05


# ---- issue 25 item 10: verdicts on reports that cannot be compared


def _work_report(tmp_path, tiny_model):
    from mixedclf.core.options import ClassifyOptions
    from mixedclf.engines.run import classify_file

    opts = ClassifyOptions(input=SAMPLE_JSONL, output=tmp_path / "w.jsonl", model=str(tiny_model), device="cpu",
                           mode="gpu-only", batch_size=16, report=tmp_path / "w.json")
    classify_file(opts)
    return tmp_path / "w.json"


@pytest.mark.parametrize("edit", [
    lambda d: d["work"].update(gflop=d["work"]["gflop"] / 2),
    lambda d: d["work"].update(gflop=0.0),
    lambda d: d["work"].update(rows=d["work"]["rows"] // 2),
    lambda d: d["work"].update(rows=0),
])
def test_edited_work_counts_are_refused(cli, tmp_path, tiny_model, edit):
    base = _work_report(tmp_path, tiny_model)
    data = json.loads(base.read_text())
    edit(data)
    cur = tmp_path / "edited.json"
    cur.write_text(json.dumps(data))
    res = cli("check", cur, "--baseline", base)
    assert res.exit_code == 2, res.stdout
    assert "edited.json" in res.stderr and "contradicts" in res.stderr
    # --allow-mismatch does not make made-up work comparable
    assert cli("check", cur, "--baseline", base, "--allow-mismatch").exit_code == 2


def test_a_run_that_classified_no_rows_is_not_a_saving(cli, tmp_path):
    from conftest import write_classify_report

    from mixedclf.costs.examples import mixed_run

    base = write_classify_report(tmp_path / "base.json")
    run = mixed_run(items=0)
    run = run.model_copy(update={"stages": [s.model_copy(update={"items": 0}) for s in run.stages]})
    cur = write_classify_report(tmp_path / "skipped.json", run=run, rows_in=300, rows_out=0, rows_errored=300)
    res = cli("check", cur, "--baseline", base)
    assert res.exit_code == 2 and "classified no rows" in res.stderr, res.stdout + res.stderr
    assert "-100.0%" not in res.stdout


def test_pr_comment_headline_leads_with_the_measured_figure(tmp_path, tiny_model, cli):
    """The headline of a work verdict: the measured cost per 1k first, the work-priced one (the verdict) beside."""
    from mixedclf.costs.check import check_files
    from mixedclf.render.check import check_to_markdown

    rep = _work_report(tmp_path, tiny_model)
    r = check_files(rep, rep)
    headline = check_to_markdown(r).splitlines()[3]
    measured = next(row for row in r.rows if row.name == "mixed total (measured)")
    from mixedclf.costs.fmt import format_value

    lead = f"cost per 1,000 items, pay-per-use, measured: {format_value('$ / 1k', measured.baseline)}"
    assert headline.startswith(lead)
    assert "work-priced (verdict on counted work" in headline
    assert headline.index("measured:") < headline.index("work-priced")
