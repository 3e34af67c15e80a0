"""The server's HTTP errors: raised anywhere in a request, answered by one exception handler in the app."""

from __future__ import annotations

from typing import Any


class ServeError(Exception):
    """An HTTP error with a clear message; `reason` is its label in mixedclf_rejected_total."""

    def __init__(self, status: int, detail: Any, reason: str, headers: dict[str, str] | None = None):
        super().__init__(detail if isinstance(detail, str) else str(detail))
        self.status = status
        self.detail = detail
        self.reason = reason
        self.headers = headers or {}
        self.runpod_id: str | None = None


def invalid(loc: list, msg: str, value: Any = None) -> ServeError:
    """A 422 shaped like FastAPI's own validation errors."""
    item = {"type": "value_error", "loc": ["body", *loc], "msg": msg}
    if value is not None:
        item["input"] = value
    return ServeError(422, [item], "invalid")
