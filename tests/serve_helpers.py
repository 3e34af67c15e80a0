"""A real `mixedclf serve` in a subprocess on a free loopback port: for tests and benchmarks.

    with serve_in_subprocess(ServeSettings(model=str(folder), cpu_workers=1)) as server:
        httpx.post(server.url + "/classify", json={"text": "fine"})

The server runs in its own process (its own GIL, its own torch threads), exactly as `mixedclf serve` runs it,
so a load generator in the calling process measures the server rather than itself. Stopping sends SIGINT,
the signal uvicorn shuts down gracefully on, and waits; the server's log is kept for inspection.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from mixedclf.serve.settings import ServeSettings

# The API key travels in the environment, not on the command line (where `ps` shows it to every user).
_LAUNCH = (
    "import json, os, sys\n"
    "from mixedclf.serve.app import run_server\n"
    "from mixedclf.serve.settings import ServeSettings\n"
    "values = json.loads(sys.argv[1])\n"
    "values['api_key'] = os.environ.pop('MIXEDCLF_API_KEY', None)\n"
    "run_server(ServeSettings(**values))\n"
)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen
    log_path: Path
    exit_code: int | None = None
    final_log: str | None = None  # kept once the server has stopped (the file is then removed)

    def log(self) -> str:
        if self.final_log is not None:
            return self.final_log
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def close_log(self) -> None:
        self.final_log = self.log()
        self.log_path.unlink(missing_ok=True)


def _get_json(url: str, timeout: float) -> tuple[int, dict]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def _stop(proc: subprocess.Popen, timeout_s: float) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


@contextmanager
def serve_in_subprocess(
    settings: ServeSettings,
    port: int | None = None,
    startup_timeout_s: float = 90.0,
    stop_timeout_s: float = 30.0,
) -> Iterator[RunningServer]:
    """Start the server on 127.0.0.1 (`port`, or a free one: settings.host/port are ignored), wait until
    /health answers 200, yield it, then stop it gracefully."""
    last_error: str = ""
    for _attempt in range(3):  # a free port can be taken between the probe and the bind: try another
        chosen = port or free_port()
        run = settings.model_copy(update={"host": "127.0.0.1", "port": chosen})
        env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
        env.pop("MIXEDCLF_API_KEY", None)
        if run.api_key:
            env["MIXEDCLF_API_KEY"] = run.api_key
        log_file = tempfile.NamedTemporaryFile("wb", prefix="mixedclf-serve-", suffix=".log", delete=False)
        proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCH, run.model_dump_json(exclude={"api_key"})],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )
        log_file.close()
        server = RunningServer(f"http://127.0.0.1:{chosen}", proc, Path(log_file.name))
        deadline = time.monotonic() + startup_timeout_s
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, _ = _get_json(server.url + "/health", timeout=2)
                if status == 200:
                    ready = True
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        if ready:
            try:
                yield server
            finally:
                server.exit_code = _stop(proc, stop_timeout_s)
                server.close_log()
            return
        _stop(proc, 5)
        server.close_log()
        last_error = server.log()[-4000:]
        if "address already in use" not in last_error.lower() or port:
            break
    raise RuntimeError(f"mixedclf serve did not become ready; its log ends:\n{last_error}")


@dataclass
class ThreadServer:
    url: str
    app: object
    server: object  # uvicorn.Server
    thread: object  # threading.Thread


@contextmanager
def serve_in_thread(app, port: int | None = None, startup_timeout_s: float = 60.0,
                    wait_ready: bool = True) -> Iterator[ThreadServer]:
    """Serve an app object with uvicorn in a background thread of this process (so a test can reach into
    `app.state.server`), on 127.0.0.1, with the app's own uvicorn options; stop it the way SIGINT would
    (graceful: in-flight requests finish). Yields once the model is loaded, or, with wait_ready=False, as soon
    as the socket listens."""
    import threading

    import uvicorn

    from mixedclf.serve.protocol import uvicorn_options

    chosen = port or free_port()
    options = uvicorn_options(app.state.server.settings) | {"host": "127.0.0.1", "port": chosen,
                                                            "log_level": "warning"}
    config = uvicorn.Config(app, lifespan="on", **options)
    server = uvicorn.Server(config)
    state = app.state.server
    state.on_start_failed = lambda: setattr(server, "should_exit", True)
    thread = threading.Thread(target=server.run, name="mixedclf-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    # The socket opens at once and the model loads behind it: ready means the app says so.
    while not (server.started and (state.status == "ok" or not wait_ready)):
        if not thread.is_alive() or time.monotonic() > deadline or state.status == "failed":
            server.should_exit = True
            thread.join(10)
            raise RuntimeError("the in-thread server did not start (see the log above)")
        time.sleep(0.02)
    try:
        yield ThreadServer(f"http://127.0.0.1:{chosen}", app, server, thread)
    finally:
        server.should_exit = True
        thread.join(60)
