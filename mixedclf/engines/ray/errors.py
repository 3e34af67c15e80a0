"""One clear line for an error raised inside a Ray job, which Ray wraps several times on its way out."""

from __future__ import annotations

import json
import re

import pyarrow as pa

from mixedclf.errors import InputError, MixedclfError
from mixedclf.io.formats import spec


def find_cause(exc: BaseException, kind: type) -> BaseException | None:
    """The first exception of `kind` in a chain of Ray wrappers (RayTaskError.cause, __cause__, __context__)."""
    seen, todo = set(), [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        cause = getattr(e, "cause", None)
        if isinstance(e, kind):
            # Ray re-raises a task's error as a subclass of it whose text is a whole traceback: the original
            # exception, with its own one-line message, is its `cause`.
            return cause if isinstance(cause, kind) else e
        todo += [cause, e.__cause__, e.__context__]
    return None


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception behind Ray's wrappers."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        nxt = getattr(exc, "cause", None) or exc.__cause__
        if not isinstance(nxt, BaseException):
            break
        exc = nxt
    return exc


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def first_line(exc: BaseException) -> str:
    lines = [_ANSI.sub("", ln).strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def user_error(exc: BaseException, source: object, fmt: str) -> BaseException:
    """One clear line for what went wrong inside the Ray job (Ray wraps task errors several times)."""
    mine = find_cause(exc, MixedclfError)
    if mine is not None:
        return mine
    missing = find_cause(exc, FileNotFoundError)
    if missing is not None:
        return InputError(f"{source}: not found on a Ray worker: {first_line(missing)}",
                          hint="on a cluster, input and output must be on storage every node mounts at one path")
    parse = find_cause(exc, pa.ArrowInvalid) or find_cause(exc, json.JSONDecodeError)
    if parse is not None:
        hint = (f"the local engine reads {spec(fmt).title} line by line and skips malformed rows: --engine local"
                if spec(fmt).line_tolerant else "check the file, or try --engine local")
        return InputError(f"{source}: Ray Data cannot read it as {fmt}: {first_line(parse)}", hint=hint)
    root = root_cause(exc)
    return MixedclfError(f"the Ray job failed: {type(root).__name__}: {first_line(root)}",
                         hint="Ray's own logs are under /tmp/ray/session_latest/logs on each node")
