"""Helpers for tests that run real runpod workers: free ports, processes stopped by pid, a fake job queue."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_env(**extra: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true"}
    env.pop("RUNPOD_WEBHOOK_GET_JOB", None)
    env.update(extra)
    return env


def mixedclf(*args: str, env: dict | None = None, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "from mixedclf.cli import main; main()", *args], env=env or worker_env(), **popen)


def stop(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after the grace: the test leaves no process behind."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen | None = None, method: str = "GET") -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) before {url} answered")
        try:
            urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer in {timeout_s} s")



def wait_ping_200(proc: subprocess.Popen, port: int, timeout_s: float = 240) -> None:
    """Until `deploy local`'s orchestrator answers /ping with 200 (204 while its stages come up)."""
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"deploy local exited {proc.returncode}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError("deploy local never became ready")

def post_json(url: str, body, timeout_s: float = 60.0):
    import urllib.request

    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        return resp.status, json.loads(resp.read() or b"null")


class FakeJobQueue:
    """Runpod's job-take / job-done endpoints as the worker loop calls them (runpod 1.12 rp_job / rp_http)."""

    def __init__(self, jobs: list[dict]):
        self.jobs = list(jobs)
        self.takes: list[str] = []
        self.results: dict[str, dict] = {}
        self.done = threading.Event()
        expected = len(jobs)
        queue = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, payload=None):
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(code)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if "/job-stop/" in self.path:
                    time.sleep(0.5)
                    return self._send(204)
                if "/job-take" not in self.path:
                    return self._send(204)
                queue.takes.append(self.path)
                count = 1
                if "batch_size=" in self.path:
                    count = int(self.path.split("batch_size=")[1].split("&")[0])
                taken, queue.jobs = queue.jobs[:count], queue.jobs[count:]
                if not taken:
                    return self._send(204)
                self._send(200, taken if "/job-take-batch/" in self.path else taken[0])

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                job_id = self.path.split("/job-done/")[1].split("/")[1].split("?")[0]
                queue.results[job_id] = body
                if len(queue.results) >= expected:
                    queue.done.set()
                self._send(200, {})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def env(self) -> dict:
        return {"RUNPOD_WEBHOOK_GET_JOB": f"{self.url}/job-take/$ID?gpu=none",
                "RUNPOD_WEBHOOK_POST_OUTPUT": f"{self.url}/job-done/$RUNPOD_POD_ID/$ID?gpu=none",
                "RUNPOD_POD_ID": "test-pod", "RUNPOD_AI_API_KEY": "fake"}

    def close(self):
        self.server.shutdown()
        self.server.server_close()
