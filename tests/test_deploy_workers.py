"""mixedclf worker: real runpod 1.12 workers through --test_input, the local API server, and the production
worker loop against a fake job queue with several jobs at once."""

from __future__ import annotations

import json
import subprocess

import pytest
from runpod_helpers import FakeJobQueue, free_port, mixedclf, post_json, stop, wait_http, worker_env

pytest.importorskip("runpod")

TEXTS = ["I loved it, great food", "Awful. Never again!", "<b>fine</b> see https://example.com"]


def _test_input(stage: str, payload) -> subprocess.CompletedProcess:
    proc = mixedclf("worker", "--stage", stage, "--test_input", json.dumps({"input": payload}),
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        stop(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out)


@pytest.mark.slow
def test_test_input_runs_a_job_and_a_bad_job_exits_1():
    good = _test_input("pre", {"texts": TEXTS})
    assert good.returncode == 0, good.stdout[-2000:]
    assert "'ids': [[" in good.stdout and "completed successfully" in good.stdout
    bad = _test_input("pre", {"texts": "not a list"})
    assert bad.returncode == 1
    assert "input.texts must be a list of strings" in bad.stdout


def test_unknown_stage_is_a_usage_error():
    proc = mixedclf("worker", "--stage", "gpu", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "--stage must be one of pre, infer, post, all, orchestrator" in out


@pytest.mark.slow
def test_local_api_server_answers_runsync_run_and_status_like_the_in_process_stages():
    from mixedclf.cloud.stages import load_stages

    port = free_port()
    proc = mixedclf("worker", "--stage", "all", "--rp_serve_api", "--rp_api_port", str(port),
                    "--rp_api_host", "127.0.0.1", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/docs", 120, proc)
        code, answer = post_json(f"http://127.0.0.1:{port}/runsync", {"input": {"texts": TEXTS}})
        assert code == 200 and answer["status"] == "COMPLETED", answer
        stages = load_stages("all")
        expected = stages.post(stages.infer(stages.pre({"texts": TEXTS})))["results"]
        got = answer["output"]["results"]
        assert [r["label"] for r in got] == [r["label"] for r in expected]
        assert [r["score"] for r in got] == pytest.approx([r["score"] for r in expected], abs=1e-5)
        _, queued = post_json(f"http://127.0.0.1:{port}/run", {"input": {"text": TEXTS[0]}})
        _, status = post_json(f"http://127.0.0.1:{port}/status/{queued['id']}", {})
        assert status["status"] == "COMPLETED" and status["output"]["results"][0]["label"] == got[0]["label"]
        _, failed = post_json(f"http://127.0.0.1:{port}/runsync", {"input": {"texts": [1, 2]}})
        assert failed["status"] == "FAILED" and "list of strings" in failed["error"]
    finally:
        stop(proc)


@pytest.mark.slow
def test_worker_loop_takes_several_jobs_at_once_and_they_share_device_calls():
    from mixedclf.cloud.stages import load_stages

    pre = load_stages("pre")
    jobs = [{"id": f"job-{i}", "input": pre.pre({"texts": TEXTS[: 1 + i % 3]})} for i in range(12)]
    jobs.append({"id": "job-bad", "input": {"sequences": {"ids": "nope"}}})
    queue = FakeJobQueue(jobs)
    proc = mixedclf("worker", "--stage", "infer", "--jobs-per-worker", "4",
                    env=worker_env(**queue.env()), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert queue.done.wait(120), f"results for {sorted(queue.results)} only; takes {queue.takes[:3]}"
    finally:
        stop(proc)
        queue.close()
    assert any("/job-take-batch/" in t and "batch_size=4" in t for t in queue.takes), queue.takes[:3]
    outputs = {k: v.get("output") for k, v in queue.results.items()}
    assert "error" in queue.results["job-bad"] or "error" in (outputs["job-bad"] or {})
    good = [o for k, o in outputs.items() if k != "job-bad"]
    assert len(good) == 12 and all(len(o["scored"]["logits"]) == len(o["scored"]["token_count"]) for o in good)
    assert max(o["device_batch_jobs"] for o in good) > 1  # concurrent jobs rode in one forward pass
