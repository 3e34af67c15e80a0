"""The orchestrator is `mixedclf serve --stages-from-env`: the original routes and bodies answered by stage
endpoints behind a fake Runpod data plane (real stage code on a tiny model, in-process): /ping 204 until every
stage answered /health, one `infer` job per micro-batch, a stage's error as one line. Then the data-plane client
itself: polling /status, retries with backoff, bounded in flight."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mixedclf.io.runpod_jobs import DataPlane, JobFailed

fastapi = pytest.importorskip("fastapi")


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet handler that answers JSON: what every fake endpoint below shares."""

    def log_message(self, *args):
        pass

    def _send(self, code, payload):
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class StagePlane:
    """Runpod's queue data plane with stage endpoints behind it: /v2/{id}/runsync runs the real stage code
    (cloud/stages.py) on the tiny model, /v2/{id}/health answers 200 once `healthy`. Records every job."""

    def __init__(self, stages, hold_infer=None):
        self.stages = stages
        self.healthy = False
        self.jobs: list[tuple[str, dict, str | None]] = []  # (endpoint, input, Authorization)
        self.fail: dict[str, str] = {}  # endpoint -> the error its jobs answer (FAILED)
        self.hold_infer = hold_infer  # called before an infer job runs
        self.lock = threading.Lock()
        plane = self

        class Handler(JsonHandler):
            def do_GET(self):
                endpoint, action = self.path.split("/")[2:4]
                if action == "health":
                    return self._send(200 if plane.healthy else 503, {})
                self._send(404, {})

            def do_POST(self):
                endpoint = self.path.split("/")[2]
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with plane.lock:
                    plane.jobs.append((endpoint, body["input"], self.headers.get("Authorization")))
                if endpoint in plane.fail:
                    return self._send(200, {"id": "j", "status": "FAILED", "error": plane.fail[endpoint]})
                if endpoint == "ep-infer" and plane.hold_infer:
                    plane.hold_infer(body["input"])
                run = {"ep-pre": plane.stages.pre, "ep-infer": plane.stages.infer, "ep-post": plane.stages.post,
                       "ep-all": lambda p: plane.stages.post(plane.stages.infer(plane.stages.pre(p)))}[endpoint]
                self._send(200, {"id": "j", "status": "COMPLETED", "executionTime": 40, "delayTime": 5,
                                 "output": run(body["input"])})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v2"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def roles(self) -> list[str]:
        return [endpoint.removeprefix("ep-") for endpoint, _, _ in self.jobs]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def stages(tiny_model):
    from mixedclf.cloud.stages import load_stages

    return load_stages("all", str(tiny_model))


@pytest.fixture
def plane(stages):
    fake = StagePlane(stages)
    yield fake
    fake.close()


def orchestrator(monkeypatch, plane, tiny_model, roles=("pre", "infer", "post"), **settings):
    from mixedclf.serve.app import create_app
    from mixedclf.serve.settings import ServeSettings

    for role in ("pre", "infer", "post", "all"):
        monkeypatch.delenv(f"MIXEDCLF_ENDPOINT_{role.upper()}", raising=False)
    for role in roles:
        monkeypatch.setenv(f"MIXEDCLF_ENDPOINT_{role.upper()}", f"ep-{role}")
    monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", plane.url)
    monkeypatch.setenv("RUNPOD_API_KEY", "k1")
    return create_app(ServeSettings(model=str(tiny_model), stages_from_env=True, no_cache=True, **settings))


def wait_ready(client, plane) -> None:
    plane.healthy = True
    deadline = time.monotonic() + 20
    while client.get("/ping").status_code != 200:
        assert time.monotonic() < deadline, "ping never turned 200"
        time.sleep(0.05)


def test_ping_is_204_until_every_stage_answered_health_and_routes_wait(monkeypatch, plane, tiny_model):
    from fastapi.testclient import TestClient

    with TestClient(orchestrator(monkeypatch, plane, tiny_model)) as client:
        time.sleep(0.3)
        assert client.get("/ping").status_code == 204
        answer = client.post("/classify", json={"text": "good food"})
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
        assert plane.jobs == []  # nothing sent before the stages are up
        wait_ready(client, plane)
        plane.healthy = False  # a stage scaled to zero later does not take the orchestrator out
        time.sleep(1.2)
        assert client.get("/ping").status_code == 200
        assert client.get("/health").json()["stages"] == {"pre": "ep-pre", "infer": "ep-infer", "post": "ep-post"}


def test_the_original_routes_are_answered_by_the_three_stages(monkeypatch, plane, tiny_model, stages):
    from fastapi.testclient import TestClient

    text = "Great <b>food</b>, awful service. See https://example.com now"
    expected = stages.post(stages.infer(stages.pre({"texts": [text]})))["results"][0]
    with TestClient(orchestrator(monkeypatch, plane, tiny_model)) as client:
        wait_ready(client, plane)
        one = client.post("/classify", json={"text": text})
        assert one.status_code == 200, one.text
        body = one.json()
        assert plane.roles() == ["pre", "infer", "post"]
        assert all(auth == "Bearer k1" for _, _, auth in plane.jobs)
        assert body["label"] == expected["label"] and body["score"] == pytest.approx(expected["score"], abs=1e-6)
        assert body["scores"] == pytest.approx(expected["scores"], abs=1e-6) and body["word_count"] == 7
        # the local server's body: the row, then model, timings, batch size and cost
        assert set(body) == set(expected) | {"model", "timings_ms", "batch_size", "cost_usd"}
        assert body["model"] == "tiny-bert" and body["batch_size"] == 1
        assert set(body["timings_ms"]) == {"preprocess", "queue", "inference", "postprocess", "total"}
        # billed: the jobs' executionTime (40 ms each): pre and post at the CPU rate, infer at the GPU rate
        assert body["cost_usd"] == pytest.approx(0.04 * 0.0002 * 2 + 0.04 * 0.0015)
        assert one.headers["X-Cost-USD"] and one.headers["X-Stage-Inference-Ms"]

        batch = client.post("/classify/batch", json={"texts": ["Loved it.", "Never again!"]}).json()
        assert batch["count"] == 2 and len(batch["results"]) == 2 and batch["model"] == "tiny-bert"

        plane.jobs.clear()
        cpu = client.post("/cpu_worker/runsync", json={"text": "Loved it!!  <br/>Would go again &amp; again."})
        assert cpu.json() == {"cleaned_text": "Loved it!! Would go again & again.", "word_count": 6,
                              "sentence_count": 2, "char_count": 34, "token_count": cpu.json()["token_count"],
                              "truncated": False}
        assert plane.roles() == ["pre"]
        wrapped = client.post("/cpu_worker/runsync", json={"id": "a1", "input": {"text": "fine"}}).json()
        assert wrapped["id"] == "a1" and wrapped["status"] == "COMPLETED" and wrapped["output"]["word_count"] == 1

        plane.jobs.clear()
        gpu = client.post("/gpu_worker/runsync", json={"input": {"cleaned_text": "great <b>food</b>"}}).json()
        assert gpu["status"] == "COMPLETED" and gpu["output"]["model_info"]["device"] == "remote"
        assert plane.jobs[0][1] == {"texts": ["great <b>food</b>"], "clean": "none"}  # sent as it is
        scores = [p["score"] for p in gpu["output"]["predictions"]]
        assert scores == sorted(scores, reverse=True) and len(scores) == 2


def test_requests_arriving_together_share_one_infer_job(monkeypatch, stages, tiny_model):
    """The first infer job is held until every other request waits in the micro-batcher's queue: they go to the
    endpoint as ONE job (dynamic batching across the network), whatever the first job took."""
    from fastapi.testclient import TestClient

    apps = []

    def hold(job: dict) -> None:
        if len([e for e, _, _ in plane.jobs if e == "ep-infer"]) > 1:
            return
        batcher = apps[0].state.server.batcher
        deadline = time.monotonic() + 30
        while batcher.queued_rows + len(job["sequences"]["ids"]) < 4:
            assert time.monotonic() < deadline, "the other requests never reached the queue"
            time.sleep(0.01)

    plane = StagePlane(stages, hold_infer=hold)
    try:
        apps.append(orchestrator(monkeypatch, plane, tiny_model, max_wait_ms=0))
        apps[0].state.server.remote.infer_in_flight = 1
        with TestClient(apps[0]) as client:
            wait_ready(client, plane)
            with ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(lambda i: client.post("/classify", json={"text": f"text {i}"}).json(),
                                        range(4)))
    finally:
        plane.close()
    infer_rows = [len(job["sequences"]["ids"]) for endpoint, job, _ in plane.jobs if endpoint == "ep-infer"]
    assert len(infer_rows) == 2 and sum(infer_rows) == 4, infer_rows
    assert sorted(a["batch_size"] for a in answers) == sorted(n for n in infer_rows for _ in range(n))
    assert plane.roles().count("post") == 4


def test_several_infer_jobs_are_out_at_once(monkeypatch, stages, tiny_model):
    """An infer worker merges the jobs it takes together into one device call: the orchestrator does not wait for
    one micro-batch's job before it sends the next (up to infer_in_flight)."""
    from fastapi.testclient import TestClient

    both = threading.Barrier(2, timeout=20)
    plane = StagePlane(stages, hold_infer=lambda job: both.wait())
    try:
        app = orchestrator(monkeypatch, plane, tiny_model, max_wait_ms=0)
        assert app.state.server.remote.infer_in_flight == 8
        with TestClient(app) as client:
            wait_ready(client, plane)
            with ThreadPoolExecutor(2) as pool:
                first = pool.submit(client.post, "/classify", json={"text": "first"})
                deadline = time.monotonic() + 20
                while "infer" not in plane.roles():  # the first job is out (and held): then the second request
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
                second = pool.submit(client.post, "/classify", json={"text": "second"})
                answers = [first.result(), second.result()]
    finally:
        plane.close()
    assert [a.status_code for a in answers] == [200, 200], answers[0].text
    assert plane.roles().count("infer") == 2


def test_many_requests_wait_on_their_pre_jobs_at_once(monkeypatch, stages, tiny_model):
    """Waiting on a stage job holds a thread: more than asyncio's default few (min(32, cores + 4)) are in flight
    together, or the orchestrator's 1-vCPU instance would serve 5 requests at a time."""
    from fastapi.testclient import TestClient

    wanted = 12
    together = threading.Barrier(wanted, timeout=20)
    plane = StagePlane(stages)
    original = stages.pre
    monkeypatch.setattr(stages, "pre", lambda payload: (together.wait(), original(payload))[1])
    try:
        with TestClient(orchestrator(monkeypatch, plane, tiny_model)) as client:
            wait_ready(client, plane)
            with ThreadPoolExecutor(wanted) as pool:
                answers = list(pool.map(lambda i: client.post("/classify", json={"text": f"t {i}"}), range(wanted)))
    finally:
        plane.close()
    assert [a.status_code for a in answers] == [200] * wanted, answers[0].text


def test_single_topology_sends_one_all_job_and_has_no_pre_route(monkeypatch, plane, tiny_model, stages):
    from fastapi.testclient import TestClient

    with TestClient(orchestrator(monkeypatch, plane, tiny_model, roles=("all",))) as client:
        wait_ready(client, plane)
        batch = client.post("/classify/batch", json={"texts": ["good food", "bad service"]}).json()
        expected = stages.post(stages.infer(stages.pre({"texts": ["good food", "bad service"]})))["results"]
        assert [r["label"] for r in batch["results"]] == [r["label"] for r in expected]
        assert plane.roles() == ["all"]
        assert batch["cost_usd"] == pytest.approx(0.04 * 0.0015)  # the one GPU job, nothing at the CPU rate
        plane.jobs.clear()
        gpu = client.post("/gpu_worker/runsync", json={"cleaned_text": "great food", "word_count": 9}).json()
        assert gpu["word_count"] == 9 and plane.jobs[0][1] == {"texts": ["great food"], "clean": "none"}
        missing = client.post("/cpu_worker/runsync", json={"text": "fine"})
        assert missing.status_code == 404 and "topology single" in missing.json()["detail"]


def test_a_failed_stage_is_one_line_and_not_sent_again(monkeypatch, plane, tiny_model):
    from fastapi.testclient import TestClient

    with TestClient(orchestrator(monkeypatch, plane, tiny_model)) as client:
        wait_ready(client, plane)
        plane.fail["ep-infer"] = "input.sequences.truncated must be a list of 1 values"
        answer = client.post("/classify", json={"text": "good food"})
        assert answer.status_code == 502
        assert answer.json()["detail"] == "infer: FAILED: input.sequences.truncated must be a list of 1 values"
        assert plane.roles() == ["pre", "infer"]
        runpod = client.post("/gpu_worker/runsync", json={"id": "g1", "input": {"cleaned_text": "fine"}})
        assert runpod.status_code == 502 and runpod.json()["status"] == "FAILED" and runpod.json()["id"] == "g1"


def test_an_unreachable_stage_is_503(monkeypatch, plane, tiny_model):
    from fastapi.testclient import TestClient

    with TestClient(orchestrator(monkeypatch, plane, tiny_model)) as client:
        wait_ready(client, plane)
        client.app.state.server.remote.plane.base_url = "http://127.0.0.1:9/v2"
        client.app.state.server.remote.plane.sleep = lambda s: None
        answer = client.post("/classify", json={"text": "good food"})
        assert answer.status_code == 503 and "unreachable" in answer.json()["detail"]


def test_stages_from_env_needs_a_whole_topology(monkeypatch, tiny_model):
    from mixedclf.errors import InputError
    from mixedclf.serve.app import create_app
    from mixedclf.serve.settings import ServeSettings

    for role in ("pre", "infer", "post", "all"):
        monkeypatch.delenv(f"MIXEDCLF_ENDPOINT_{role.upper()}", raising=False)
    monkeypatch.setenv("MIXEDCLF_ENDPOINT_PRE", "ep-pre")
    with pytest.raises(InputError) as caught:
        create_app(ServeSettings(model=str(tiny_model), stages_from_env=True))
    assert "MIXEDCLF_ENDPOINT_PRE, _INFER and _POST, or _ALL alone (found: MIXEDCLF_ENDPOINT_PRE)" in str(caught.value)


def test_worker_stage_orchestrator_is_serve_from_env(monkeypatch):
    """What the rendered image runs (`mixedclf worker`, MIXEDCLF_STAGE=orchestrator): serve --stages-from-env on
    every interface, PORT from the platform."""
    import mixedclf.cli.serve as cli_serve
    from mixedclf.cli import app as cli_app

    started = []
    monkeypatch.setattr(cli_serve, "start_server", started.append)
    monkeypatch.setenv("PORT", "8123")
    monkeypatch.delenv("MIXEDCLF_API_KEY", raising=False)
    monkeypatch.delenv("MIXEDCLF_HOST", raising=False)
    from typer.testing import CliRunner

    result = CliRunner().invoke(cli_app.app, ["worker", "--stage", "orchestrator"], env={"MIXEDCLF_STAGE": ""})
    assert result.exit_code == 0, result.output
    (settings,) = started
    assert (settings.stages_from_env, settings.host, settings.port, settings.insecure_no_auth) == (
        True, "0.0.0.0", 8123, True)
    # a cold stage worker may take minutes: not the local stages' 10 / 30 s, unless told
    assert (settings.stage_timeout_cpu, settings.stage_timeout_gpu) == (300.0, 300.0)
    started.clear()
    monkeypatch.setenv("MIXEDCLF_STAGE_TIMEOUT_GPU", "45")
    assert CliRunner().invoke(cli_app.app, ["serve", "--stages-from-env", "--stage-timeout-cpu", "20"]).exit_code == 0
    assert (started[0].stage_timeout_cpu, started[0].stage_timeout_gpu, started[0].host) == (20.0, 45.0, "127.0.0.1")


# --- the data-plane client --------------------------------------------------------------------------------------
class FakeDataPlane:
    """/v2/{id}/runsync answers IN_PROGRESS, then /status COMPLETED; endpoint `bad` fails."""

    def __init__(self):
        self.seen: list[tuple[str, str, str | None]] = []
        plane = self

        class Handler(JsonHandler):
            def do_GET(self):
                plane.seen.append(("GET", self.path, self.headers.get("Authorization")))
                _, _, endpoint, action, *rest = self.path.split("/")
                self._send(200, {"id": rest[0], "status": "COMPLETED", "output": {"echo": endpoint}})

            def do_POST(self):
                plane.seen.append(("POST", self.path, self.headers.get("Authorization")))
                endpoint = self.path.split("/")[2]
                if endpoint == "bad":
                    return self._send(200, {"id": "j1", "status": "FAILED", "error": "input.texts must be a list"})
                self._send(200, {"id": "j1", "status": "IN_PROGRESS"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v2"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def echo_plane():
    fake = FakeDataPlane()
    yield fake
    fake.close()


def test_a_job_in_progress_is_polled_until_done_with_the_key(echo_plane):
    assert DataPlane(echo_plane.url, key="k1").run("ep-pre", {"texts": ["a"]}, name="pre") == {"echo": "ep-pre"}
    assert echo_plane.seen[0] == ("POST", "/v2/ep-pre/runsync", "Bearer k1")
    assert echo_plane.seen[1] == ("GET", "/v2/ep-pre/status/j1", "Bearer k1")


def test_a_failed_job_is_one_line_with_its_error(echo_plane):
    with pytest.raises(JobFailed) as caught:
        DataPlane(echo_plane.url, sleep=lambda s: None).run("bad", {"texts": ["a"]}, name="all")
    assert caught.value.status == 502 and "all: FAILED: input.texts must be a list" in str(caught.value)
    assert len(echo_plane.seen) == 4  # sent again 3 times
    echo_plane.seen.clear()
    with pytest.raises(JobFailed):
        DataPlane(echo_plane.url, retry_failed=False, sleep=lambda s: None).run("bad", {"texts": ["a"]})
    assert len(echo_plane.seen) == 1


def test_unreachable_endpoint_is_503():
    with pytest.raises(JobFailed) as caught:
        DataPlane("http://127.0.0.1:9/v2", timeout_s=2, retries=1, sleep=lambda s: None).run("x", {})
    assert caught.value.status == 503


class FlakyQueue:
    """/v2/{id}/run: the first send of each payload answers HTTP 503, the second TIMED_OUT, the third COMPLETED
    (with delayTime/executionTime); counts how many jobs are in flight at once."""

    def __init__(self, hold_s: float = 0.05):
        self.sends: dict[int, int] = {}
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()
        queue = self

        class Handler(JsonHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                n = body["input"]["n"]
                with queue.lock:
                    queue.sends[n] = queue.sends.get(n, 0) + 1
                    tries = queue.sends[n]
                    queue.in_flight += 1
                    queue.most_in_flight = max(queue.most_in_flight, queue.in_flight)
                import time as _time

                _time.sleep(hold_s)
                with queue.lock:
                    queue.in_flight -= 1
                if tries == 1:
                    return self._send(503, {"error": "busy"})
                if tries == 2:
                    return self._send(200, {"id": f"j{n}", "status": "TIMED_OUT"})
                self._send(200, {"id": f"j{n}", "status": "COMPLETED", "delayTime": 10, "executionTime": 100 + n,
                                 "output": {"n": n}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v2"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_jobs_are_retried_with_backoff_bounded_in_flight_and_kept_in_order():
    queue = FlakyQueue()
    waits: list[float] = []
    try:
        plane = DataPlane(queue.url, sync=False, retries=3, backoff_s=0.5, sleep=waits.append)
        outputs = plane.map("ep-infer", [{"n": n} for n in range(10)], in_flight=3, name="infer")
    finally:
        queue.close()
    assert outputs == [{"n": n} for n in range(10)]
    assert queue.most_in_flight <= 3
    assert all(count == 3 for count in queue.sends.values())
    assert sorted(waits) == sorted([0.5, 1.0] * 10)  # two retries per job, doubling
    times = plane.times["infer"]
    assert (times.jobs, times.attempts, times.delay_ms, times.execution_ms) == (10, 30, 100.0, 1045.0)


def test_retries_spent_is_one_line_with_the_last_error():
    queue = FlakyQueue(hold_s=0)
    try:
        plane = DataPlane(queue.url, sync=False, retries=1, sleep=lambda s: None)
        with pytest.raises(JobFailed) as caught:
            plane.run("ep", {"n": 1}, name="infer")
    finally:
        queue.close()
    assert "infer: TIMED_OUT" in str(caught.value) and caught.value.status == 502
