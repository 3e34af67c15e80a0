"""`mixedclf check run` on real runs: a real 1.5x slowdown of the device stage or of preprocessing fails the gate,
identical code passes, at the documented default rounds (slow tier).

The slowdown is real work: tests/slowdown/sitecustomize.py, on the candidate's PYTHONPATH only, makes every forward
(or every preprocess call) compute half its batch again. The candidate is a wrapper script around this Python, as a
second installed environment would be. The tries per case default to one (three `check run`s: 2-5 minutes each
on a loaded 2-core machine); MIXEDCLF_GATE_TRIES=10 runs the protocol behind the numbers in docs/ci.md (10 tries of
each slowdown must fail at least 9 times, 2 x 10 tries of identical code must all pass).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import build_tiny_classifier

from mixedclf.engines.rounds import DEFAULT_ROUNDS

SLOWDOWN = Path(__file__).parent / "slowdown"
TRIES = int(os.environ.get("MIXEDCLF_GATE_TRIES", "1"))
# a check run is 14 classify processes: minutes on a loaded machine, past the suite's per-test limit
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900 * 2 * TRIES)]
ROWS = 2000


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("check-run")
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    import datagen

    data = tmp / "in.jsonl"
    datagen.write_jsonl(data, ROWS)
    model = build_tiny_classifier(tmp / "tiny")
    pythons = {"identical": sys.executable}
    for stage in ("device", "preprocess"):
        wrapper = tmp / f"python-slow-{stage}"
        wrapper.write_text(f'#!/bin/sh\nMIXEDCLF_TEST_SLOWDOWN={stage}:1.5 PYTHONPATH="{SLOWDOWN}:$PYTHONPATH" '
                           f'exec "{sys.executable}" "$@"\n')
        wrapper.chmod(0o755)
        pythons[stage] = str(wrapper)
    return tmp, data, model, pythons


def _check_run(setup, case: str, i: int) -> dict:
    tmp, data, model, pythons = setup
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    out = tmp / f"{case}-{i}.json"
    cmd = [sys.executable, "-m", "mixedclf", "check", "run", str(data), "--baseline-python", sys.executable,
           "--candidate-python", pythons[case], "--reports-dir", str(tmp / f"{case}-{i}"),
           "--run-opts", f"--model {model} --device cpu --cpu-workers 1 --torch-threads 1",
           "--format", "json", "--output", str(out)]
    # its own process group: a test stopped part-way takes the classify runs of check run down with it
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=1700)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    done = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    assert done.returncode in (0, 1), done.stderr
    result = json.loads(out.read_text())
    assert result["cpu"]["current_reports"] == DEFAULT_ROUNDS
    assert result["exit_code"] == done.returncode
    return result


@pytest.mark.parametrize("stage", ["device", "preprocess"])
def test_a_real_one_and_a_half_times_slowdown_fails(setup, stage):
    results = [_check_run(setup, stage, i) for i in range(TRIES)]
    failed = sum(r["exit_code"] == 1 for r in results)
    assert failed >= (9 * TRIES + 9) // 10, [r["cpu"]["violations"] or r["cpu"]["figures"] for r in results]
    # the work gate cannot see it: the same tokens and FLOPs
    assert all(not any("(work)" in v for v in r["violations"]) for r in results)


def test_identical_code_passes(setup):
    results = [_check_run(setup, "identical", i) for i in range(2 * TRIES if TRIES > 1 else 1)]
    assert all(r["exit_code"] == 0 for r in results), [r["violations"] for r in results if r["exit_code"]]
