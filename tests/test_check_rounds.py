"""`check run`'s rounds without a model: stand-in "pythons" that copy a prepared report, so the order, the warm-up
and the failure paths are checked in a second."""

from __future__ import annotations

import os

import pytest
from conftest import write_classify_report

from mixedclf.costs.pricing import CostInputError
from mixedclf.engines.rounds import run_rounds


def _fake_python(tmp_path, name: str, report, log, exit_code: int = 0):
    script = tmp_path / f"python-{name}"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "{name} $*" >> "{log}"\n'
        f"[ {exit_code} -ne 0 ] && echo 'boom: the run failed' >&2 && exit {exit_code}\n"
        'while [ $# -gt 0 ]; do if [ "$1" = "--report" ]; then cp "' + str(report) + '" "$2"; fi; shift; done\n'
    )
    script.chmod(0o755)
    return str(script)


def test_rounds_alternate_sides_and_discard_the_warmup(tmp_path):
    report, log = write_classify_report(tmp_path / "r.json"), tmp_path / "log.txt"
    base, cand = _fake_python(tmp_path, "base", report, log), _fake_python(tmp_path, "cand", report, log)
    data = tmp_path / "in.jsonl"
    data.write_text('{"text": "x"}\n')
    res = run_rounds(str(data), base, cand, rounds=3, warmup=1, run_opts="--device cpu --torch-threads 1",
                     reports_dir=tmp_path / "reports")
    assert [p.name for p in res.baseline] == ["baseline-1.json", "baseline-2.json", "baseline-3.json"]
    assert [p.name for p in res.current] == ["current-1.json", "current-2.json", "current-3.json"]
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == sorted(
        [p.name for p in res.baseline + res.current])  # the warm-up's reports are not kept
    lines = log.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["base", "cand", "cand", "base", "base", "cand", "cand", "base"]
    # each run: its own Python, -P (a checkout's mixedclf/ cannot shadow the installed one), the options given
    assert all(" -P -m mixedclf classify " in f" {line} " and "--device cpu --torch-threads 1" in line
               and "--quiet" in line for line in lines)


def test_a_failed_run_is_exit_2_with_its_last_line(tmp_path, cli):
    report, log = write_classify_report(tmp_path / "r.json"), tmp_path / "log.txt"
    base = _fake_python(tmp_path, "base", report, log)
    bad = _fake_python(tmp_path, "bad", report, log, exit_code=3)
    data = tmp_path / "in.jsonl"
    data.write_text('{"text": "x"}\n')
    with pytest.raises(CostInputError, match=r"current run 1 failed \(exit 3\): boom: the run failed"):
        run_rounds(str(data), base, bad, rounds=2, warmup=0)
    res = cli("check", "run", data, "--baseline-python", base, "--candidate-python", bad, "--rounds", 2)
    assert res.exit_code == 2 and "boom" in res.stderr
    for opts in ("-o x.jsonl", "--report r.json", "--resume"):
        with pytest.raises(CostInputError, match="may not set"):
            run_rounds(str(data), base, base, run_opts=opts)
    with pytest.raises(CostInputError, match="does not exist"):
        run_rounds(str(tmp_path / "missing.jsonl"), base, base)


def test_check_run_compares_what_it_ran(tmp_path, cli):
    """Identical stand-in reports on both sides: within limits, and the reports are kept where asked."""
    report, log = write_classify_report(tmp_path / "r.json"), tmp_path / "log.txt"
    base = _fake_python(tmp_path, "base", report, log)
    data = tmp_path / "in.jsonl"
    data.write_text('{"text": "x"}\n')
    res = cli("check", "run", data, "--baseline-python", base, "--candidate-python", base,
              "--rounds", 3, "--warmup", 0, "--reports-dir", tmp_path / "kept", "--format", "json")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert len(os.listdir(tmp_path / "kept")) == 6


def test_every_round_runs_without_the_prediction_cache(tmp_path, monkeypatch):
    """A cached round would skip the device: each run gets MIXEDCLF_NO_CACHE (a setting an older baseline ignores,
    where an unknown --no-cache would fail it)."""
    monkeypatch.delenv("MIXEDCLF_NO_CACHE", raising=False)  # conftest sets it for the suite
    report, log = write_classify_report(tmp_path / "r.json"), tmp_path / "log.txt"
    script = tmp_path / "python-env"
    script.write_text("#!/bin/sh\n"
                      f'echo "cache=$MIXEDCLF_NO_CACHE" >> "{log}"\n'
                      'while [ $# -gt 0 ]; do if [ "$1" = "--report" ]; then cp "' + str(report) + '" "$2"; fi; '
                      "shift; done\n")
    script.chmod(0o755)
    data = tmp_path / "in.jsonl"
    data.write_text('{"text": "x"}\n')
    run_rounds(str(data), str(script), str(script), rounds=1, warmup=0, run_opts="", reports_dir=tmp_path / "r")
    assert log.read_text().splitlines() == ["cache=1", "cache=1"]
