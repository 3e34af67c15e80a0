"""classify --engine runpod against `deploy local` (real runpod workers for pre, infer and post, the data-plane
router): the sample data labelled as --engine local labels it, an interrupted run resumed to the same rows, the
bill counted per stage worker, and once the topology is stopped the run is one line (no state file)."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from runpod_helpers import REPO, free_port, mixedclf, stop, wait_ping_200, worker_env

from mixedclf.cloud.spec import INIT_TEMPLATE
from mixedclf.errors import EXIT_OK, EXIT_SIGINT, EXIT_USAGE
from mixedclf.io.checkpoint import checkpoint_path

pytest.importorskip("runpod")
SAMPLE = REPO / "sample_data" / "reviews.jsonl"


def _classify(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = mixedclf("classify", *map(str, args), "--quiet", env=worker_env(), stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_runpod_engine_on_deploy_local_labels_as_the_local_engine_and_resumes(tmp_path):
    spec = tmp_path / "mixedclf-deploy.toml"
    spec.write_text(INIT_TEMPLATE.replace('precision = "auto"', 'precision = "fp32"'))
    local = tmp_path / "local.jsonl"
    done = _classify(SAMPLE, "-o", local, "--precision", "fp32", "--no-cache")
    assert done.returncode == EXIT_OK, done.stderr
    port = free_port()
    topology = mixedclf("deploy", "local", str(spec), "--port", str(port), env=worker_env(),
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_ping_200(topology, port)
        remote, report = tmp_path / "remote.jsonl", tmp_path / "report.json"
        done = _classify(SAMPLE, "-o", remote, "--engine", "runpod", "--deploy", spec, "--report", report)
        assert done.returncode == EXIT_OK, done.stderr
        want, got = _rows(local), _rows(remote)
        assert [r["id"] for r in got] == [r["id"] for r in want]
        assert [r["label"] for r in got] == [r["label"] for r in want]
        assert [r["score"] for r in got] == pytest.approx([r["score"] for r in want], abs=1e-4)
        assert [list(r) for r in got] == [list(r) for r in want]  # the same columns, in the same order
        bill = json.loads(report.read_text())["runpod"]
        assert [e["rate"]["role"] for e in bill["endpoints"]] == ["pre", "infer", "post"]
        for endpoint in bill["endpoints"]:
            (worker,) = endpoint["workers"]  # one process per stage here, named by the router
            assert worker["worker_id"].endswith("-worker") and worker["execution_s"] > 0
            assert worker["billed_s"] >= worker["execution_s"] + endpoint["rate"]["idle_timeout_s"]

        # interrupted after its first checkpoint, then resumed: the same rows as the uninterrupted run
        cut = tmp_path / "cut.jsonl"
        args = [SAMPLE, "-o", cut, "--engine", "runpod", "--deploy", spec, "--chunk-rows", "30",
                "--first-chunk-rows", "30", "--batch-size", "10"]
        proc = mixedclf("classify", *map(str, args), "--quiet", env=worker_env(), stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not checkpoint_path(cut).exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == EXIT_SIGINT, err
        assert "--resume" in err and not cut.exists()
        done = _classify(*args, "--resume")
        assert done.returncode == EXIT_OK, done.stderr
        assert [(r["id"], r["label"]) for r in _rows(cut)] == [(r["id"], r["label"]) for r in got]
    finally:
        stop(topology, grace_s=30)
    done = _classify(SAMPLE, "-o", tmp_path / "after.jsonl", "--engine", "runpod", "--deploy", spec)
    assert done.returncode == EXIT_USAGE and "no state file" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
