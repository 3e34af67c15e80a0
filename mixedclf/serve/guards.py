"""ASGI guards in front of the routes: the bearer key (401) and the request body's size, item count (413) and
pace (408).

Both answer before any route runs, with a JSON body and `Connection: close` (the rest of what the client sends
is not read). Order in the app: metrics -> BearerAuth -> BodyGuard -> routes, so a request without the key
never has its body read.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from typing import Callable

from fastapi.responses import JSONResponse

OPEN_PATHS = frozenset({"/health", "/ping"})  # a load balancer's probe carries no key


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


async def _refuse(scope, receive, send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    response = JSONResponse({"detail": detail}, status_code=status, headers={"Connection": "close", **(headers or {})})
    await response(scope, receive, send)


class BearerAuth:
    """`Authorization: Bearer <key>` on every path but OPEN_PATHS; compared in constant time."""

    def __init__(self, app, api_key: str, on_reject: Callable[[str], None] = lambda reason: None):
        self.app = app
        # Digests of equal length: compare_digest then leaks neither the key's bytes nor its length.
        self._key_digest = hashlib.sha256(api_key.encode("utf-8")).digest()
        self.on_reject = on_reject

    def authorized(self, header: bytes | None) -> bool:
        if header is None:
            return False
        scheme, _, token = header.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        return hmac.compare_digest(hashlib.sha256(token.strip()).digest(), self._key_digest)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        header = _header(scope, b"authorization")
        if self.authorized(header):
            return await self.app(scope, receive, send)
        self.on_reject("unauthorized")
        challenge = 'Bearer realm="mixedclf"' + ("" if header is None else ', error="invalid_token"')
        what = "no API key was sent" if header is None else "the API key is wrong or not a Bearer token"
        await _refuse(scope, receive, send, 401, f"{what}: send the header Authorization: Bearer <key>",
                      {"WWW-Authenticate": challenge})


# What the item count looks at: a whole JSON string (the commas and brackets inside it are text), or a comma or
# an opening bracket. Possessive quantifiers: an unterminated string fails in one pass, without backtracking.
_JSON_TOKEN = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"|([,\[{])', re.DOTALL)


def json_values_exceed(body: bytes, limit: int) -> bool:
    """Whether a JSON document holds more than `limit` values (array items and object members at any depth, the
    document itself included), found without parsing it: every value after the first in a container follows a
    comma, so 1 + commas + openings bounds the count from above. Stops at the limit, so a 14 MB array of 7
    million numbers costs about `limit` steps, not 7 million Python objects. A malformed body can only be
    over-counted (it would be refused as malformed anyway)."""
    count = 1
    for match in _JSON_TOKEN.finditer(body):
        if match.group(1) is not None:
            count += 1
            if count > limit:
                return True
    return False


class BodyGuard:
    """Reads the whole request body before the app does, counting bytes as they arrive: more than `max_body`
    (whatever Content-Length says, or with none: chunked) is a 413 at the limit, and a body that has not
    arrived within `timeout_s` of the request's head is a 408. A body holding more than `max_items` JSON values
    is a 413 before anything parses it. The app then gets the buffered body."""

    def __init__(self, app, max_body: int, timeout_s: float, max_items: int | None = None,
                 on_reject: Callable[[str], None] = lambda r: None):
        self.app = app
        self.max_body = max_body
        self.timeout_s = timeout_s
        self.max_items = max_items
        self.on_reject = on_reject

    def _too_large(self, size: str) -> str:
        return f"request body of {size} bytes is larger than the limits allow ({self.max_body:,} bytes)"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            self.on_reject("too_large")
            return await _refuse(scope, receive, send, 413, self._too_large(f"{int(declared):,}"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except (asyncio.TimeoutError, TimeoutError):
                self.on_reject("body_timeout")
                return await _refuse(
                    scope, receive, send, 408,
                    f"the request body did not arrive within {self.timeout_s:g} s (--body-timeout)",
                )
            if message["type"] == "http.disconnect":
                return  # the client left: nobody to answer
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_body:
                self.on_reject("too_large")
                return await _refuse(scope, receive, send, 413, self._too_large(f"more than {self.max_body:,}"))
            if body:
                chunks.append(body)
            if not message.get("more_body", False):
                break
        buffered = b"".join(chunks)
        del chunks
        if self.max_items is not None and json_values_exceed(buffered, self.max_items):
            self.on_reject("too_many_items")
            return await _refuse(
                scope, receive, send, 413,
                f"the request body holds more than {self.max_items:,} JSON values (--max-request-items); "
                "send fewer texts per request (--max-batch-texts)",
            )
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": buffered, "more_body": False}
            return await receive()  # after the body: disconnect notices

        await self.app(scope, replay, send)
