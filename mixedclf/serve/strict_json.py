"""Request bodies are strict JSON (RFC 8259).

Python's json module accepts bare `NaN`, `Infinity` and `-Infinity` by default; such a value then reached
validation and the error answer, which cannot be written back as JSON (a 500 and a dropped connection). Here
they are malformed JSON like any other: FastAPI answers 422 `json_invalid`. A body that is not text in a
Unicode encoding at all stays FastAPI's 400 ("There was an error parsing the body").
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Coroutine

from fastapi import Request, Response
from fastapi.routing import APIRoute

# Where the constant stands, for the error's position: the first bare token (not inside a word or a string's
# start). json's parse_constant hook is not told the position, so it is found again here.
_BARE_CONSTANT = re.compile(r'(?<![\w."])(-?Infinity|NaN)(?![\w"])')


class _NonFinite(Exception):
    def __init__(self, name: str):
        self.name = name


def _refuse(name: str) -> Any:
    raise _NonFinite(name)


def loads_strict(body: bytes) -> Any:
    """json.loads that refuses NaN/Infinity with a JSONDecodeError (what FastAPI turns into a 422)."""
    try:
        return json.loads(body, parse_constant=_refuse)
    except _NonFinite as exc:
        doc = body.decode("utf-8", errors="replace")
        match = _BARE_CONSTANT.search(doc)
        raise json.JSONDecodeError(
            f"{exc.name} is not valid JSON (send a number, null or a string)", doc, match.start(1) if match else 0
        ) from None


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_strict(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """An APIRoute whose handler parses its body with loads_strict (FastAPI's custom-route-class hook)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler
