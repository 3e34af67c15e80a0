"""One set of numbers: the JSON summary, the terminal table, the markdown and the --quiet line of one run show the
same dollar figures, each naming its billing model and whether it was measured or derived; a run whose inference
ran on a CPU claims no saving in any of them (nor in its advice)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from mixedclf.costs.advice import advise
from mixedclf.costs.examples import classify_fields, mixed_run, stage
from mixedclf.costs.fmt import fmt_money
from mixedclf.costs.report import build_classify_report
from mixedclf.costs.summary import classify_summary
from mixedclf.render.report import render_report, report_to_markdown, summary_line


def _gpu_report():
    return build_classify_report(**classify_fields())


def _cpu_report():
    run = mixed_run()
    run.stages[3] = stage("inference", "gpu", 4.0, device="cpu")
    return build_classify_report(**classify_fields(run=run, device="cpu"))


def _four(report):
    summary = json.loads(classify_summary(report, Path("out.jsonl"), None, Path("out.errors.jsonl"))
                         .model_dump_json())
    console = Console(record=True, width=200, file=io.StringIO())
    render_report(report, console)
    return summary, console.export_text(), report_to_markdown(report), summary_line(report)


@pytest.mark.parametrize("make", [_gpu_report, _cpu_report])
def test_every_rendering_shows_the_same_labelled_figures(make):
    report = make()
    summary, table, md, quiet = _four(report)
    for key, basis in (("pay_per_use", "pay-per-use"), ("provisioned", "provisioned")):
        totals = report.cost.totals(basis)
        s = summary[key]
        assert s["billing"] == basis and s["billing_model"]
        assert (s["mixed"], s["gpu_only"], s["mixed_per_1k"]) == (totals.mixed, totals.gpu_only,
                                                                  totals.mixed_per_1k)
        assert s["mixed_is"] == "measured" and s["gpu_only_is"] == "derived"
        # the same dollars, in the row named after the billing model, under columns saying measured / derived
        for text in (table, md):
            row = next(line for line in text.splitlines() if basis in line and fmt_money(totals.mixed) in line)
            assert fmt_money(totals.mixed_per_1k) in row.replace(fmt_money(totals.mixed), "", 1)
            assert "mixed (measured)" in text and "GPU-only (derived" in text
        # --quiet: both billing models named, each figure with measured/derived
        part = quiet.split(f"{basis}:")[1]
        assert part.lstrip().startswith(f"mixed {fmt_money(totals.mixed)} measured ({fmt_money(totals.mixed_per_1k)}/1k")


def test_a_cpu_run_claims_no_saving_anywhere():
    report = _cpu_report()
    summary, table, md, quiet = _four(report)
    for key in ("pay_per_use", "provisioned"):
        assert summary[key]["savings_claimed"] is False
        assert summary[key]["savings"] is None and summary[key]["savings_pct"] is None
        assert summary[key]["gpu_seconds_are"] == "CPU seconds priced at the GPU rate"
    assert "no saving claimed" in quiet and "savings" not in quiet
    for text in (table, md):
        assert "saves ~" not in text and "mixed saves" not in text
    items = advise(report)
    assert items and all(not a.claimed and "no saving claimed" in a.claim_text() for a in items)


def test_a_gpu_run_claims_its_measured_saving():
    report = _gpu_report()
    summary, _, _, quiet = _four(report)
    ppu = report.cost.pay_per_use
    assert summary["pay_per_use"]["savings"] == ppu.savings and summary["pay_per_use"]["savings_claimed"]
    assert f"savings {ppu.savings_pct:.1f}%" in quiet
    assert all(a.claimed and "derived" in a.claim_text() for a in advise(report))


def test_gpu_speedup_scales_the_pool_too_and_the_headline_never_contradicts_the_bill():
    from mixedclf.render.report import headline

    def cpu_run(workers, speedup):
        run = mixed_run(workers=workers)
        run.stages[3] = stage("inference", "gpu", 4.0, device="cpu")
        return build_classify_report(**classify_fields(run=run, device="cpu"), gpu_speedup=speedup)

    plain, fast = cpu_run(4, None), cpu_run(4, 10.0)
    # a 10x GPU saves 3.6 s of inference: the run, and the pool's hold with it, end that much sooner (9.5 -> 5.9 s,
    # above the pool's own 20 s / 4 workers), so the pool is billed ceil(5.9 + 5) = 11 s a worker, not 15
    assert plain.cost.provisioned_parts.billed_cpu_worker_s == [15] * 4
    assert fast.cost.provisioned_parts.billed_cpu_worker_s == [11] * 4
    # never below the pool's own work: 16 workers of 20 busy seconds hold at least 1.25 s each
    many = cpu_run(16, 1000.0)
    assert min(many.cost.provisioned_parts.billed_cpu_worker_s) >= 7  # ceil(1.25 + 5)
    # a pool so large that the provisioned bill costs more while pay-per-use saves: the headline says both
    big = cpu_run(64, 10.0)
    ppu, prov = big.cost.pay_per_use, big.cost.provisioned
    assert ppu.savings > 0 > prov.savings
    line = headline(big)
    assert "mixed saves" in line and "on the provisioned bill mixed costs more by" in line
    assert fmt_money(abs(prov.savings)) in line
    # the verb carries the sign: "costs more by $X (11.1%)", never "(-11.1%)"
    assert f"costs more by {fmt_money(abs(prov.savings))} ({abs(prov.savings_pct):.1f}%)" in line
    assert f"({prov.savings_pct:.1f}%)" not in line


def test_estimate_from_a_cpu_report_claims_no_saving(cli, tmp_path):
    from mixedclf.costs.report import write_report

    cpu = write_report(_cpu_report(), tmp_path / "cpu.json")
    for fmt in ("table", "markdown"):
        res = cli("estimate", "--from-report", cpu, "--no-usage", "--format", fmt)
        assert res.exit_code == 0, res.stdout + res.stderr
        assert "no saving claimed" in res.stdout and "savings $" not in res.stdout, res.stdout
        assert "mixed is cheaper" not in res.stdout and "saves ~" not in res.stdout
    data = json.loads(cli("estimate", "--from-report", cpu, "--no-usage", "--format", "json").stdout)
    assert data["savings_claim"] is False and any("ran on a CPU" in n for n in data["notes"])
    # with GPU seconds given, the estimate is the user's: its saving is claimed
    gpu = json.loads(cli("estimate", "--from-report", cpu, "--gpu-sec", "0.001", "--no-usage", "--format",
                         "json").stdout)
    assert gpu["savings_claim"] is True
    # a report measured on a GPU claims its saving
    assert json.loads(cli("estimate", "--from-report", write_report(_gpu_report(), tmp_path / "g.json"),
                          "--no-usage", "--format", "json").stdout)["savings_claim"] is True
