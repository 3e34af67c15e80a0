"""ASGI middleware of the server: request metrics by route and status (the guards are in `guards`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mixedclf.serve.state import ServerState

# Routes named in metrics (anything else is "other", so a scanner cannot blow up the label set).
PIPELINE_ROUTES = ("/classify", "/classify/batch", "/cpu_worker/runsync", "/gpu_worker/runsync")
JOB_ROUTES = ("/cpu_worker/run", "/gpu_worker/run")
KNOWN_ROUTES = frozenset(PIPELINE_ROUTES + JOB_ROUTES
                         + ("/health", "/ping", "/metrics", "/docs", "/openapi.json", "/redoc"))
STATUS_PREFIXES = ("/cpu_worker/status/", "/gpu_worker/status/")  # one label each, whatever the job id


def route_label(path: str) -> str:
    if path in KNOWN_ROUTES:
        return path
    for prefix in STATUS_PREFIXES:
        if path.startswith(prefix):
            return prefix.rstrip("/")
    return "other"


class MetricsMiddleware:
    """Counts every answer by route and status (the guards' 401/408/413 included: it runs outside them)."""

    def __init__(self, app, state: ServerState):
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = route_label(scope["path"])
        start = time.monotonic()
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if route != "/metrics":
                self.state.metrics.request_done(route, status["code"], time.monotonic() - start)
