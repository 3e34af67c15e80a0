"""ASGI middleware of the server: request metrics by route and status, and the body-size guard (413)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fastapi.responses import JSONResponse

if TYPE_CHECKING:
    from mixedclf.serve.state import ServerState

# Routes named in metrics (anything else is "other", so a scanner cannot blow up the label set).
PIPELINE_ROUTES = ("/classify", "/classify/batch", "/cpu_worker/runsync", "/gpu_worker/runsync")
KNOWN_ROUTES = frozenset(PIPELINE_ROUTES + ("/health", "/metrics", "/docs", "/openapi.json", "/redoc"))


class MetricsMiddleware:
    """Counts every answer by route and status; refuses bodies larger than the limits could ever need (413)."""

    def __init__(self, app, state: ServerState):
        self.app = app
        self.state = state
        s = state.settings
        # A JSON string can spend 6 bytes (\uXXXX) on one character; plus room for keys and framing.
        self.max_body = s.max_batch_texts * (s.max_text_chars * 6 + 16) + 65536

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        route = path if path in KNOWN_ROUTES else "other"
        start = time.monotonic()
        status = {"code": 500}
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body:
                self.state.metrics.rejected.labels("too_large").inc()
                response = JSONResponse(
                    {"detail": f"request body of {int(value):,} bytes is larger than the limits allow "
                               f"({self.max_body:,} bytes)"},
                    status_code=413,
                )
                self.state.metrics.request_done(route, 413, time.monotonic() - start)
                return await response(scope, receive, send)

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if route != "/metrics":
                self.state.metrics.request_done(route, status["code"], time.monotonic() - start)
