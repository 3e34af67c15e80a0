"""The server's HTTP errors: raised anywhere in a request, answered by one exception handler in the app."""

from __future__ import annotations

from typing import Any, Iterable

# A 422 lists at most this many errors, each message cut to MAX_MESSAGE_CHARS: a 100,000-item batch of
# wrong types must not turn into a 10 MB error body.
MAX_ERRORS_SHOWN = 10
MAX_MESSAGE_CHARS = 300


class ServeError(Exception):
    """An HTTP error with a clear message; `reason` is its label in mixedclf_rejected_total."""

    def __init__(self, status: int, detail: Any, reason: str, headers: dict[str, str] | None = None):
        super().__init__(detail if isinstance(detail, str) else str(detail))
        self.status = status
        self.detail = detail
        self.reason = reason
        self.headers = headers or {}
        self.runpod_id: str | None = None


def invalid(loc: list, msg: str) -> ServeError:
    """A 422 shaped like FastAPI's own validation errors."""
    return ServeError(422, [{"type": "value_error", "loc": ["body", *loc], "msg": msg}], "invalid")


def public_errors(errors: Iterable[dict]) -> list[dict]:
    """Validation errors as a client may see them: never the input (it can be huge, or not JSON at all, such
    as NaN), only JSON-safe context, at most MAX_ERRORS_SHOWN of them."""
    errors = list(errors)
    shown = []
    for error in errors[:MAX_ERRORS_SHOWN]:
        item = {
            "type": str(error.get("type", "value_error")),
            "loc": [p if isinstance(p, int) else str(p) for p in error.get("loc", ())],
            "msg": str(error.get("msg", ""))[:MAX_MESSAGE_CHARS],
        }
        ctx = {k: v for k, v in (error.get("ctx") or {}).items() if _json_scalar(v)}
        if ctx:
            item["ctx"] = ctx
        shown.append(item)
    if len(errors) > MAX_ERRORS_SHOWN:
        more = len(errors) - MAX_ERRORS_SHOWN
        shown.append({"type": "too_many_errors", "loc": ["body"], "msg": f"{more:,} more errors not shown"})
    return shown


def _json_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, str):
        return len(value) <= MAX_MESSAGE_CHARS
    return isinstance(value, (int, bool)) or value is None
