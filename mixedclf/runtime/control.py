"""Stopping a run cleanly: a time limit on a device call, and SIGINT/SIGTERM handled between chunks."""

from __future__ import annotations

import signal
import threading
from typing import Callable

from mixedclf.errors import EXIT_SIGINT, EXIT_SIGTERM, Interrupted, StageTimeout


def call_with_timeout(fn: Callable, timeout: float | None, what: str):
    """Run fn in a daemon thread and give up after timeout seconds: a stuck device call fails the run
    instead of hanging it (the thread cannot be killed, but being a daemon it does not keep the process)."""
    if timeout is None:
        return fn()
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="mixedclf-device")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise StageTimeout(f"{what} took longer than {timeout:g}s", hint="raise --stage-timeout-gpu")
    if "error" in box:
        raise box["error"]
    return box["value"]


class StopSignals:
    """SIGINT/SIGTERM ask the run to stop after the chunk in hand; a second signal stops it at once."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def raise_if_stopped(self, output) -> None:
        if self.signum is not None:
            code = EXIT_SIGTERM if self.signum == signal.SIGTERM else EXIT_SIGINT
            name = "SIGTERM" if self.signum == signal.SIGTERM else "SIGINT"
            raise Interrupted(f"stopped by {name}; completed chunks are saved: rerun with --resume to continue "
                              f"into {output}", code)
