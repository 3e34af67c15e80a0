"""The orchestrator's calls to stage endpoints through a fake data plane: runsync, polling /status until a job
finishes, a FAILED stage as one line, and /ping 204 until the stages answer."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mixedclf.cloud.orchestrator import StageEndpoints, StageFailed, create_app


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
    stages = StageEndpoints(plane.url, {"pre": "ep-pre", "infer": "ep-infer", "post": "ep-post"}, key="k1")
    assert stages.run("pre", {"texts": ["a"]}) == {"echo": "ep-pre"}
    assert plane.seen[0] == ("POST", "/v2/ep-pre/runsync", "Bearer k1")
    assert plane.seen[1] == ("GET", "/v2/ep-pre/status/j1", "Bearer k1")


def test_a_failed_stage_is_one_line_with_its_error(plane):
    stages = StageEndpoints(plane.url, {"all": "bad"})
    with pytest.raises(StageFailed) as caught:
        stages.run("all", {"texts": ["a"]})
    assert caught.value.status == 502 and "all: FAILED: input.texts must be a list" in str(caught.value)


def test_unreachable_stage_is_503():
    stages = StageEndpoints("http://127.0.0.1:9/v2", {"all": "x"}, timeout_s=2)
    with pytest.raises(StageFailed) as caught:
        stages.run("all", {})
    assert caught.value.status == 503


def test_ping_is_204_until_every_stage_answers_health(plane):
    from fastapi.testclient import TestClient

    app = create_app(StageEndpoints(plane.url, {"pre": "a", "infer": "b", "post": "c"}))
    with TestClient(app) as client:
        assert client.get("/ping").status_code == 204
        plane.healthy = True
        import time

        deadline = time.monotonic() + 10
        while client.get("/ping").status_code != 200:
            assert time.monotonic() < deadline, "ping never turned 200"
            time.sleep(0.2)
        assert client.post("/classify", json={"txt": 1}).status_code == 422
