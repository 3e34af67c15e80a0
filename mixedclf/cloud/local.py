"""`mixedclf deploy local`: the spec's whole topology on this machine, as separate processes.

Each stage is a real runpod worker under its local API server (`mixedclf worker --stage X --rp_serve_api`); a
small data-plane router in this process answers `/v2/{endpoint_id}/run|runsync|status|health` by forwarding to
the stage's port; the orchestrator (`mixedclf worker --stage orchestrator`: `mixedclf serve --stages-from-env`)
serves the original routes on --port and calls the stages through the router, exactly as it calls Runpod's data
plane. The state file is
written with the local URLs while it runs. SIGTERM or Ctrl-C stops every process started here (by pid); a
killed parent takes them too (each child ends with its parent, runtime.parent_watch).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from mixedclf.cloud.provision import DeployedEndpoint, DeployState, spec_digest, write_state
from mixedclf.cloud.spec import state_path
from mixedclf.costs.deployment import DeploySpec
from mixedclf.errors import InputError, MixedclfError

READY_TIMEOUT_S = 300.0
STOP_GRACE_S = 10.0


class LocalTopologyFailed(MixedclfError):
    """A process of the local topology exited or never became ready: everything started was stopped."""


def free_port(host: str) -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class DataPlaneRouter:
    """Runpod's queue data plane for local workers: /v2/{id}/runsync|run -> the worker's /runsync|/run,
    /v2/{id}/status/{job} (GET, as Runpod) -> POST /status/{job} (the local API server), /v2/{id}/health."""

    def __init__(self, host: str, ports: dict[str, int]):
        self.ports = ports  # endpoint id -> worker port
        router = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _route(self) -> None:
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) < 3 or parts[0] != "v2" or parts[1] not in router.ports:
                    return self._answer(404, b'{"error": "no such endpoint"}')
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b"{}"
                port, action = router.ports[parts[1]], parts[2]
                target = {"runsync": "/runsync", "run": "/run"}.get(action)
                if action == "status" and len(parts) == 4:
                    target, body = f"/status/{parts[3]}", b"{}"
                if action == "health":
                    return self._health(port)
                if target is None:
                    return self._answer(404, json.dumps({"error": f"no route {action}"}).encode())
                req = urllib.request.Request(f"http://{host}:{port}{target}", data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
                try:
                    started = time.monotonic()
                    with urllib.request.urlopen(req, timeout=600) as resp:
                        status, answer = resp.status, resp.read()
                    self._answer(status, router.timed(parts[1], action, answer, started))
                except urllib.error.HTTPError as exc:
                    self._answer(exc.code, exc.read())
                except OSError as exc:
                    self._answer(503, json.dumps({"error": f"worker unreachable: {exc}"}).encode())

            def _health(self, port: int) -> None:
                try:
                    urllib.request.urlopen(f"http://{host}:{port}/openapi.json", timeout=5).close()
                except OSError:
                    return self._answer(503, b'{"workers": {"ready": 0}}')
                self._answer(200, b'{"workers": {"ready": 1}}')

            do_GET = do_POST = _route

        self._sent: dict[str, float] = {}  # job id -> when /run queued it
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="mixedclf-router")

    def timed(self, endpoint_id: str, action: str, body: bytes, started: float) -> bytes:
        """The worker's answer with what Runpod's data plane adds and its local API server does not:
        `delayTime` (queued: /run to the /status that runs the job; the local server runs a /run job only when
        polled), `executionTime` (ms) and `workerId` (one worker process per stage here)."""
        try:
            answer = json.loads(body)
        except ValueError:
            return body
        if not isinstance(answer, dict) or "id" not in answer:
            return body
        now = time.monotonic()
        with self._lock:
            if action == "run":
                self._sent[str(answer["id"])] = now
                return body
            queued = self._sent.pop(str(answer["id"]), started)
        answer.update(delayTime=round(1000 * max(0.0, started - queued)),
                      executionTime=round(1000 * (now - started)), workerId=f"{endpoint_id}-worker")
        return json.dumps(answer).encode()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Child:
    role: str
    proc: subprocess.Popen
    log: Path


def _command() -> list[str]:
    return [sys.executable, "-c", "from mixedclf.cli import main; main()"]


def _spawn(role: str, args: list[str], env: dict, logs: Path) -> Child:
    log = logs / f"{role}.log"
    with log.open("wb") as handle:
        proc = subprocess.Popen([*_command(), "worker", "--stage", role, *args], env=env, stdout=handle,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Child(role, proc, log)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def stop_children(children: list[Child], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM each (orchestrator first), then SIGKILL what is left after the grace."""
    for child in reversed(children):
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child in children:
        try:
            child.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()


def _ping(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _refuse_a_live_state(state_file: Path) -> None:
    """The state file beside the spec is replaced only when it is a stopped deploy local's (one killed with
    SIGKILL leaves it): deploy apply's holds the ids deploy destroy needs, a running deploy local's is what
    classify --engine runpod reads."""
    if not state_file.exists():
        return
    try:
        state = json.loads(state_file.read_text())
        target, urls = state.get("target"), [e["url"] for e in state.get("endpoints", {}).values()]
    except (ValueError, AttributeError, KeyError, TypeError):
        return  # not a state file anyone could use
    if target != "local":
        raise InputError(f"{state_file} holds the endpoints deploy apply made: deploy local would replace it",
                         hint="mixedclf deploy destroy them first, or copy the spec to another name")
    for url in urls:
        if _ping(f"{url}/health" if "/v2/" in url else f"{url}/ping") is not None:
            raise InputError(f"deploy local is already running for this spec ({url}, state {state_file})",
                             hint="stop it first, or copy the spec to another name")


def run_local(spec: DeploySpec, spec_path: Path, host: str = "127.0.0.1", port: int = 8888, log=print,
              stop_event: threading.Event | None = None) -> None:
    try:
        import runpod  # noqa: F401 - the stage workers are runpod workers
    except ImportError:
        raise InputError("deploy local runs runpod workers", hint="pip install 'mixedclf[runpod]'") from None
    _refuse_a_live_state(state_path(spec_path))
    port = port or free_port(host)  # 0: chosen here, so the orchestrator, the ready check and the state agree
    stop_event = stop_event or threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop_event.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    logs = Path(tempfile.mkdtemp(prefix="mixedclf-local-"))
    base_env = {**os.environ, "MIXEDCLF_PARENT_PID": str(os.getpid()), "MIXEDCLF_MODEL": spec.model.name,
                "MIXEDCLF_PRECISION": spec.model.precision, "HF_HUB_OFFLINE": "1",
                "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true"}
    base_env.pop("RUNPOD_WEBHOOK_GET_JOB", None)  # never the production loop here
    children: list[Child] = []
    ids = {role: f"local-{spec.endpoint_name(role)}" for role in spec.stage_roles()}
    ports = {ids[role]: free_port(host) for role in spec.stage_roles()}
    router = DataPlaneRouter(host, ports)
    state_file = state_path(spec_path)
    applied_at = None
    try:
        router.start()
        for role in spec.stage_roles():
            env = {**base_env, "MIXEDCLF_JOBS_PER_WORKER": str(spec.endpoints[role].jobs_per_worker)}
            args = ["--rp_serve_api", "--rp_api_port", str(ports[ids[role]]), "--rp_api_host", host]
            children.append(_spawn(role, args, env, logs))
        endpoints = {role: DeployedEndpoint(id=ids[role], name=spec.endpoint_name(role), api="local",
                                            url=f"{router.url}/v2/{ids[role]}") for role in spec.stage_roles()}
        if "orchestrator" in spec.endpoints:
            env = {**base_env, "PORT": str(port), "MIXEDCLF_HOST": host,
                   "RUNPOD_ENDPOINT_BASE_URL": f"{router.url}/v2",
                   **{f"MIXEDCLF_ENDPOINT_{role.upper()}": ids[role] for role in spec.stage_roles()}}
            env.pop("RUNPOD_API_KEY", None)  # the local router needs none: no key travels to a child
            children.append(_spawn("orchestrator", [], env, logs))
            endpoints["orchestrator"] = DeployedEndpoint(id="local-orchestrator", name=spec.endpoint_name(
                "orchestrator"), api="local", url=f"http://{host}:{port}")
        applied_at = time.time()
        write_state(spec_path, DeployState(spec=spec_path.name, spec_sha256=spec_digest(spec_path),
                                           applied_at=applied_at, target="local", endpoints=endpoints))
        log(f"deploy local: {len(children)} processes starting (logs in {logs}); state: {state_file}")
        _wait_ready(spec, children, router, ids, host, port, stop_event, log)
        while not stop_event.wait(0.5):
            _check_alive(children)
        log("deploy local: stopping")
    finally:
        stop_children(children)
        router.stop()
        if state_file.exists() and json.loads(state_file.read_text()).get("applied_at") == applied_at:
            state_file.unlink()  # ours: another one's is left as it is
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _check_alive(children: list[Child]) -> None:
    for child in children:
        if child.proc.poll() is not None:
            raise LocalTopologyFailed(f"deploy local: the {child.role} process exited ({child.proc.returncode}): "
                                      f"{_tail(child.log)}")


def _wait_ready(spec, children, router, ids, host, port, stop_event, log) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not stop_event.is_set():
        _check_alive(children)
        stages_up = all(_ping(f"{router.url}/v2/{i}/health") == 200 for i in ids.values())
        orchestrator_up = "orchestrator" not in spec.endpoints or _ping(f"http://{host}:{port}/ping") == 200
        if stages_up and orchestrator_up:
            where = f"http://{host}:{port}" if "orchestrator" in spec.endpoints else f"{router.url}/v2/<id>"
            log(f"deploy local: ready at {where} (Ctrl-C stops it)")
            return
        if time.monotonic() > deadline:
            raise LocalTopologyFailed(f"deploy local: not ready after {READY_TIMEOUT_S:.0f} s")
        stop_event.wait(0.5)
