"""A bounded loopback load test of `mixedclf serve`: 64 concurrent clients x 20 requests each.

Shows what dynamic micro-batching is for: with many clients at once, texts share forward passes (mean device
batch size above 1) and nothing fails. The server runs in its own process (as `mixedclf serve` does); the
clients are asyncio tasks here, each with its own httpx.AsyncClient. p50/p95 latency and throughput are printed. On a
2-core machine the httpx client itself spends about twice the server's CPU per request, so the numbers are a
floor on what the server can do, not a benchmark of it (see docs/serve.md).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import httpx
import pytest
from conftest import SAMPLE_JSONL
from serve_helpers import serve_in_subprocess

from mixedclf.serve.settings import ServeSettings

pytestmark = pytest.mark.slow  # 64 concurrent clients against a live server

CLIENTS = 64
REQUESTS_PER_CLIENT = 20
TIME_LIMIT_S = 60.0


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def _load(url: str, texts: list[str]) -> tuple[list[float], list[str], float]:
    """Every client is its own httpx.AsyncClient with one keep-alive connection, as independent callers are
    (one shared client with a 64-connection pool costs about twice the client CPU per request)."""
    latencies: list[float] = []
    errors: list[str] = []

    async def one_client(c: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30, trust_env=False) as http:
            for i in range(REQUESTS_PER_CLIENT):
                text = texts[(c * REQUESTS_PER_CLIENT + i) % len(texts)]
                start = time.perf_counter()
                try:
                    r = await http.post("/classify", json={"text": text})
                    if r.status_code != 200 or r.json().get("label") not in ("NEGATIVE", "POSITIVE"):
                        errors.append(f"{r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(one_client(c) for c in range(CLIENTS))), TIME_LIMIT_S)
    return latencies, errors, time.perf_counter() - start


@pytest.mark.timeout(180)
def test_64_concurrent_clients_zero_errors_and_batches_larger_than_one(tiny_model, capsys):
    texts = [json.loads(line)["text"] for line in SAMPLE_JSONL.read_text(encoding="utf-8").splitlines()]
    texts = [t for t in texts if t.strip()][:400]
    settings = ServeSettings(model=str(tiny_model), device="cpu", cpu_workers=1, log_level="info")
    with serve_in_subprocess(settings) as server:
        latencies, errors, wall = asyncio.run(_load(server.url, texts))
        with httpx.Client(base_url=server.url, trust_env=False) as http:
            metrics = http.get("/metrics").text
            health = http.get("/health").json()
    total = CLIENTS * REQUESTS_PER_CLIENT
    batches = _metric(metrics, "mixedclf_batch_size_count")
    mean_batch = _metric(metrics, "mixedclf_batch_size_sum") / batches if batches else 0.0
    p50, p95, p99 = (_percentile(latencies, q) * 1000 for q in (0.50, 0.95, 0.99))
    with capsys.disabled():
        print(
            f"\nserve load: {CLIENTS} clients x {REQUESTS_PER_CLIENT} requests = {total} in {wall:.2f} s "
            f"({total / wall:.0f} req/s); latency p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms, "
            f"mean {statistics.fmean(latencies) * 1000:.1f} ms; {int(batches)} forward passes, "
            f"mean device batch {mean_batch:.1f} texts (batcher: {health['device_batches']['mean_batch_rows']}); "
            f"errors {len(errors)}"
        )
    assert not errors, errors[:5]
    assert len(latencies) == total
    assert mean_batch > 1.0
    assert health["device_batches"]["mean_batch_rows"] > 1.0
    # SIGINT (what Ctrl-C or a process manager sends) stops it gracefully: lifespan shutdown ran, exit code 0.
    log = server.log()
    assert server.exit_code == 0, log[-3000:]
    assert "mixedclf serve: stopped" in log and "Application shutdown complete" in log
