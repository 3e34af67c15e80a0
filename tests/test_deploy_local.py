"""deploy local: the split topology as separate processes (three runpod workers, the router, the orchestrator)
answers the original curl commands, /ping and /docs, writes the state file, and SIGTERM leaves no process."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
from runpod_helpers import free_port, mixedclf, post_json, stop, wait_ping_200, worker_env

from mixedclf.cloud.spec import INIT_TEMPLATE

psutil = pytest.importorskip("psutil")
pytest.importorskip("runpod")


@pytest.mark.slow
def test_deploy_local_answers_the_original_routes_and_stops_every_process(tmp_path):
    from mixedclf.cloud.stages import load_stages

    spec = tmp_path / "mixedclf-deploy.toml"
    spec.write_text(INIT_TEMPLATE)
    port = free_port()
    proc = mixedclf("deploy", "local", str(spec), "--port", str(port), env=worker_env(),
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_ping_200(proc, port)
        base = f"http://127.0.0.1:{port}"
        state = json.loads((tmp_path / "mixedclf-deploy.state.json").read_text())
        assert state["target"] == "local" and set(state["endpoints"]) == {"pre", "infer", "post", "orchestrator"}
        assert state["endpoints"]["orchestrator"]["url"] == base

        text = "Great <b>food</b>, awful service. See https://example.com now"
        _, one = post_json(f"{base}/classify", {"text": text})
        stages = load_stages("all")
        expected = stages.post(stages.infer(stages.pre({"texts": [text]})))["results"][0]
        assert one["label"] == expected["label"] and one["score"] == pytest.approx(expected["score"], abs=1e-5)
        assert one["word_count"] == 7 and one["model"] == "default"
        assert set(one["timings_ms"]) == {"preprocess", "queue", "inference", "postprocess", "total"}
        assert one["batch_size"] == 1 and one["cost_usd"] > 0  # the local server's body

        _, batch = post_json(f"{base}/classify/batch", {"texts": ["Loved it.", "Never again!"]})
        assert batch["count"] == 2 and len(batch["results"]) == 2

        _, cpu = post_json(f"{base}/cpu_worker/runsync", {"text": "Loved it!!  <br/>Would go again &amp; again."})
        assert cpu["cleaned_text"] == "Loved it!! Would go again & again." and cpu["word_count"] == 6

        _, gpu = post_json(f"{base}/gpu_worker/runsync", {"input": {"cleaned_text": "great food"}})
        assert gpu["status"] == "COMPLETED" and gpu["output"]["label"] in ("positive", "negative")

        import urllib.request

        with urllib.request.urlopen(f"{base}/docs", timeout=10) as resp:
            assert resp.status == 200 and b"swagger" in resp.read().lower()
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 4
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        finally:
            stop(proc)
    assert proc.returncode == 0, proc.stderr.read()
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, [p.pid for p in alive]
    assert not (tmp_path / "mixedclf-deploy.state.json").exists()


def _state(spec, target: str, url: str) -> str:
    from mixedclf.cloud.provision import DeployedEndpoint, DeployState, spec_digest, write_state

    endpoints = {role: DeployedEndpoint(id=f"id-{role}", name=f"mixedclf-{role}", api="rest",
                                        url=f"{url}/v2/id-{role}") for role in ("pre", "infer", "post")}
    path = write_state(spec, DeployState(spec=spec.name, spec_sha256=spec_digest(spec), applied_at=1.0,
                                         target=target, endpoints=endpoints))
    return path.read_text()


def test_deploy_local_never_replaces_the_state_of_applied_or_running_endpoints(tmp_path):
    """deploy apply's state file holds the ids `deploy destroy` needs, and a running deploy local's is what
    classify --engine runpod reads: a deploy local on the same spec refuses to start and leaves it as it was
    (it used to overwrite it, then delete it on stop)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from mixedclf.cloud.local import run_local
    from mixedclf.cloud.spec import load_spec, state_path
    from mixedclf.errors import InputError

    spec = tmp_path / "mixedclf-deploy.toml"
    spec.write_text(INIT_TEMPLATE)
    stopped = threading.Event()
    stopped.set()  # were it to start anyway, it stops at once
    before = _state(spec, "runpod", "https://api.runpod.ai")
    with pytest.raises(InputError, match="deploy apply"):
        run_local(load_spec(spec), spec, port=free_port(), log=lambda line: None, stop_event=stopped)
    assert state_path(spec).read_text() == before

    class Up(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Up)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        before = _state(spec, "local", f"http://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(InputError, match="already running"):
            run_local(load_spec(spec), spec, port=free_port(), log=lambda line: None, stop_event=stopped)
        assert state_path(spec).read_text() == before
    finally:
        server.shutdown()


def test_deploy_local_port_0_picks_a_free_port_the_orchestrator_and_the_state_file_share(tmp_path, monkeypatch):
    """--port 0 used to reach the orchestrator as PORT=0 (it took a port of its own) while deploy local pinged
    and recorded port 0: never ready, a state file naming :0."""
    import sys
    import threading

    import mixedclf.cloud.local as local
    from mixedclf.cloud.spec import load_spec

    spawned: dict[str, dict] = {}
    states: list = []

    def spawn(role, args, env, logs):
        spawned[role] = env
        return local.Child(role, subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]),
                           logs / f"{role}.log")

    monkeypatch.setattr(local, "_spawn", spawn)
    monkeypatch.setattr(local, "write_state", lambda path, state: states.append(state))
    spec = tmp_path / "mixedclf-deploy.toml"
    spec.write_text(INIT_TEMPLATE)
    stopped = threading.Event()
    stopped.set()  # start, record, stop at once
    local.run_local(load_spec(spec), spec, port=0, log=lambda line: None, stop_event=stopped)
    port = int(spawned["orchestrator"]["PORT"])
    assert port > 0 and states[0].endpoints["orchestrator"].url == f"http://127.0.0.1:{port}"
