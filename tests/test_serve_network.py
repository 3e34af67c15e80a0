"""`mixedclf serve` against a hostile network: the bearer key, a chunked body past the limit, and clients that
send a byte at a time. Socket-level, so the server runs in a subprocess exactly as `mixedclf serve` runs it
(`serve_in_subprocess`), with short timeouts (1 s) so every case ends in seconds. Offline; CPU only.
"""

from __future__ import annotations

import select
import socket
import time

import httpx
import pytest
from serve_helpers import serve_in_subprocess

from mixedclf.serve.settings import ServeSettings

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]  # a live server; clients wait out its timeouts

API_KEY = "test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def server(tiny_model):
    settings = ServeSettings(
        model=str(tiny_model), device="cpu", cpu_workers=1, torch_threads=1, max_text_chars=200,
        max_batch_texts=8, api_key=API_KEY, header_timeout=TIMEOUT_S, body_timeout=TIMEOUT_S,
        keep_alive_timeout=TIMEOUT_S,
    )
    with serve_in_subprocess(settings) as running:
        yield running
    log = running.log()
    assert running.exit_code == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def address(server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def client(server, **kw) -> httpx.Client:
    return httpx.Client(base_url=server.url, trust_env=False, timeout=30, **kw)


def read_reply(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection or `timeout` passes (b'' if nothing)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes, float]:
    """Whether the server closed the connection within `seconds`, what it sent, and when it closed."""
    start = time.monotonic()
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
        return True, data, time.monotonic() - start
    except ConnectionResetError:
        return True, data, time.monotonic() - start
    except socket.timeout:
        return False, data, time.monotonic() - start


# --- authentication -----------------------------------------------------------------------------------------
GUARDED = [
    ("POST", "/classify", {"text": "fine"}),
    ("POST", "/classify/batch", {"texts": ["fine"]}),
    ("POST", "/cpu_worker/runsync", {"text": "fine"}),
    ("POST", "/gpu_worker/runsync", {"cleaned_text": "fine"}),
    ("POST", "/cpu_worker/run", {"input": {"text": "fine"}}),
    ("GET", "/cpu_worker/status/some-id", None),
    ("GET", "/metrics", None),
    ("GET", "/docs", None),
    ("GET", "/openapi.json", None),
    ("GET", "/no-such-route", None),
]


def test_every_route_but_health_needs_the_bearer_key(server):
    with client(server) as c:
        health = c.get("/health")
        for method, path, body in GUARDED:
            missing = c.request(method, path, json=body)
            assert missing.status_code == 401, (path, missing.text)
            assert missing.headers["www-authenticate"].startswith("Bearer")
            assert "Authorization: Bearer" in missing.json()["detail"]
            wrong = c.request(method, path, json=body, headers={"Authorization": f"Bearer {API_KEY}x"})
            assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
            basic = c.request(method, path, json=body, headers={"Authorization": f"Basic {API_KEY}"})
            assert basic.status_code == 401
            good = c.request(method, path, json=body, headers=AUTH)
            assert good.status_code in (200, 404), (path, good.status_code, good.text)  # 404: the unknown ones
        metrics = c.get("/metrics", headers=AUTH).text
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert f'mixedclf_rejected_total{{reason="unauthorized"}} {3.0 * len(GUARDED)}' in metrics


# --- body size, counted as it streams ---------------------------------------------------------------------------
def test_a_chunked_body_past_the_limit_is_a_413_without_reading_it_all(server):
    limit = 8 * (200 * 6 + 16) + 65536  # ServeSettings.max_body_bytes for these limits
    total = 50 * 1024 * 1024
    chunk = b"a" * 65536
    sock = socket.create_connection(address(server), timeout=10)
    sock.sendall(b"POST /classify HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
                 b"authorization: Bearer " + API_KEY.encode() + b"\r\ntransfer-encoding: chunked\r\n\r\n")
    sent, reply = 0, b""
    try:
        while sent < total:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered before the body ended
        else:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server stopped reading and closed: what is left to read is its answer
    reply = read_reply(sock, 10)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 413"), (sent, reply[:300])
    assert b"larger than the limits allow" in reply and b"connection: close" in reply.lower()
    # The answer came at the limit, not after the 50 MB (socket buffers hold a few MB on loopback).
    assert sent < total / 2, sent
    assert limit < total / 100


# --- slow clients ---------------------------------------------------------------------------------------------
def test_a_request_head_sent_a_byte_at_a_time_is_cut_off(server):
    sock = socket.create_connection(address(server), timeout=10)
    start = time.monotonic()
    head = b"GET /health HTTP/1.1\r\nhost: test\r\nx-slow: " + b"a" * 1000
    closed = False
    try:
        for byte in head:
            sock.sendall(bytes([byte]))
            time.sleep(0.05)
            if select.select([sock], [], [], 0)[0]:
                break
            if time.monotonic() - start > 10 * TIMEOUT_S:
                break
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    done, reply, _ = closed_within(sock, 5)
    elapsed = time.monotonic() - start
    sock.close()
    assert closed or done, "the server still held the connection"
    assert elapsed < 4 * TIMEOUT_S + 2, elapsed
    assert reply == b"" or reply.startswith(b"HTTP/1.1 408"), reply[:200]


def test_a_connection_that_sends_nothing_is_closed(server):
    sock = socket.create_connection(address(server), timeout=10)
    closed, reply, after = closed_within(sock, 6 * TIMEOUT_S)
    sock.close()
    assert closed and after < 3 * TIMEOUT_S, after  # uvicorn alone: 5 s keep-alive, never for a head or body
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]


def test_a_body_that_never_arrives_is_a_408(server):
    sock = socket.create_connection(address(server), timeout=10)
    sock.sendall(b"POST /classify HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
                 b"authorization: Bearer " + API_KEY.encode() + b"\r\ncontent-length: 100\r\n\r\n{\"te")
    closed, reply, after = closed_within(sock, 6 * TIMEOUT_S)
    sock.close()
    assert closed and after < 3 * TIMEOUT_S, after  # uvicorn alone: 5 s keep-alive, never for a head or body
    assert reply.startswith(b"HTTP/1.1 408") and b"--body-timeout" in reply, reply[:300]


def test_an_idle_keep_alive_connection_is_closed(server):
    sock = socket.create_connection(address(server), timeout=10)
    sock.sendall(b"GET /health HTTP/1.1\r\nhost: test\r\n\r\n")
    sock.settimeout(10)
    first = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200")
    closed, _, after = closed_within(sock, 6 * TIMEOUT_S)
    sock.close()
    assert closed and after < 3 * TIMEOUT_S, after  # uvicorn alone: 5 s keep-alive, never for a head or body


def test_a_handful_of_byte_a_second_clients_do_not_stop_the_others(server):
    slow = [socket.create_connection(address(server), timeout=10) for _ in range(16)]
    for sock in slow:
        sock.sendall(b"POST /classify HTTP/1.1\r\nhost: test\r\n")  # and then nothing more
    with client(server) as c:
        answer = c.post("/classify", json={"text": "still served"}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    outcomes = [closed_within(sock, 6 * TIMEOUT_S) for sock in slow]
    for sock in slow:
        sock.close()
    assert all(closed for closed, _, _ in outcomes)


# --- a body of many small values -------------------------------------------------------------------------------
def test_a_body_of_a_million_numbers_is_refused_at_once_while_health_answers(tiny_model):
    """The default limits allow a 15.4 MB body; one of a million numbers (2 MB) used to become a million Python
    objects and a million validation errors: 10.8 s and 1.5 GB, with /health probes timing out meanwhile. It is
    refused from its item count before anything parses it, and memory stays flat."""
    import threading

    import psutil

    settings = ServeSettings(model=str(tiny_model), device="cpu", cpu_workers=1, torch_threads=1)
    body = b'{"texts": [' + b"7," * 999_999 + b"7]}"
    with serve_in_subprocess(settings) as running:
        process = psutil.Process(running.process.pid)
        baseline = process.memory_info().rss
        result: dict = {}

        def post():
            start = time.monotonic()
            with httpx.Client(base_url=running.url, trust_env=False, timeout=60) as c:
                result["response"] = c.post("/classify/batch", content=body,
                                            headers={"content-type": "application/json"})
            result["seconds"] = time.monotonic() - start

        sender = threading.Thread(target=post)
        sender.start()
        probes, peak = [], baseline
        with httpx.Client(base_url=running.url, trust_env=False, timeout=2) as c:
            for _ in range(50):  # at most 50 probes, 0.1 s apart, while the request is under way (and 3 after)
                try:
                    probes.append(c.get("/health").status_code)
                except httpx.TimeoutException:
                    probes.append("timeout")
                peak = max(peak, process.memory_info().rss)
                if not sender.is_alive() and len(probes) >= 3:
                    break
                time.sleep(0.1)
        sender.join(60)
    response = result["response"]
    assert response.status_code == 413, response.text[:300]
    assert "--max-request-items" in response.json()["detail"]
    assert result["seconds"] < 5, result["seconds"]
    assert probes and all(p == 200 for p in probes), probes
    assert peak - baseline < 100 * 2**20, f"server grew by {(peak - baseline) / 2**20:.0f} MiB"
    assert running.exit_code == 0, running.log()[-3000:]
