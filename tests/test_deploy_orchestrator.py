"""The orchestrator's calls to stage endpoints through a fake data plane: runsync, polling /status until a job
finishes, a FAILED stage as one line, and /ping 204 until the stages answer."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mixedclf.cloud.orchestrator import StageEndpoints, create_app
from mixedclf.io.runpod_jobs import DataPlane, JobFailed


class FakeDataPlane:
    """/v2/{id}/runsync answers IN_PROGRESS, then /status COMPLETED; endpoint `bad` fails; `health` can be off."""

    def __init__(self):
        self.seen: list[tuple[str, str, str | None]] = []
        self.healthy = False
        plane = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, payload):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                plane.seen.append(("GET", self.path, self.headers.get("Authorization")))
                _, _, endpoint, action, *rest = self.path.split("/")
                if action == "health":
                    return self._send(200 if plane.healthy else 503, {})
                self._send(200, {"id": rest[0], "status": "COMPLETED", "output": {"echo": endpoint}})

            def do_POST(self):
                plane.seen.append(("POST", self.path, self.headers.get("Authorization")))
                endpoint = self.path.split("/")[2]
                if endpoint == "bad":
                    return self._send(200, {"id": "j1", "status": "FAILED", "error": "input.texts must be a list"})
                self._send(200, {"id": "j1", "status": "IN_PROGRESS"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v2"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def plane():
    fake = FakeDataPlane()
    yield fake
    fake.close()


def test_a_job_in_progress_is_polled_until_done_with_the_key(plane):
    stages = StageEndpoints(DataPlane(plane.url, key="k1"), {"pre": "ep-pre", "infer": "ep-infer", "post": "ep-post"})
    assert stages.run("pre", {"texts": ["a"]}) == {"echo": "ep-pre"}
    assert plane.seen[0] == ("POST", "/v2/ep-pre/runsync", "Bearer k1")
    assert plane.seen[1] == ("GET", "/v2/ep-pre/status/j1", "Bearer k1")


def test_a_failed_stage_is_one_line_with_its_error(plane):
    stages = StageEndpoints(DataPlane(plane.url, sleep=lambda s: None), {"all": "bad"})
    with pytest.raises(JobFailed) as caught:
        stages.run("all", {"texts": ["a"]})
    assert caught.value.status == 502 and "all: FAILED: input.texts must be a list" in str(caught.value)
    assert len(plane.seen) == 4  # sent again 3 times
    plane.seen.clear()
    once = StageEndpoints(DataPlane(plane.url, retry_failed=False, sleep=lambda s: None), {"all": "bad"})
    with pytest.raises(JobFailed):
        once.run("all", {"texts": ["a"]})
    assert len(plane.seen) == 1


def test_unreachable_stage_is_503():
    stages = StageEndpoints(DataPlane("http://127.0.0.1:9/v2", timeout_s=2, retries=1, sleep=lambda s: None), {"all": "x"})
    with pytest.raises(JobFailed) as caught:
        stages.run("all", {})
    assert caught.value.status == 503


def test_ping_is_204_until_every_stage_answers_health(plane):
    from fastapi.testclient import TestClient

    app = create_app(StageEndpoints(DataPlane(plane.url), {"pre": "a", "infer": "b", "post": "c"}))
    with TestClient(app) as client:
        assert client.get("/ping").status_code == 204
        plane.healthy = True
        import time

        deadline = time.monotonic() + 10
        while client.get("/ping").status_code != 200:
            assert time.monotonic() < deadline, "ping never turned 200"
            time.sleep(0.2)
        assert client.post("/classify", json={"txt": 1}).status_code == 422


class FlakyQueue:
    """/v2/{id}/run: the first send of each payload answers HTTP 503, the second TIMED_OUT, the third COMPLETED
    (with delayTime/executionTime); counts how many jobs are in flight at once."""

    def __init__(self, hold_s: float = 0.05):
        self.sends: dict[int, int] = {}
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()
        queue = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, payload):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

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
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

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
