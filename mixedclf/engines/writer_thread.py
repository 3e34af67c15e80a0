"""The local engine's writer thread: postprocess, write and checkpoint each chunk while the device runs the next.

The queue holds little (each item is a whole chunk), so memory stays flat. The first failure in the thread stops
the handling but the queue keeps draining, so the producer never blocks on a dead consumer; the failure is
raised to the producer at its next `put` or at `close`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

_DONE = object()


class WriterThread:
    def __init__(self, handle: Callable[[Any], None], slack: int = 2, name: str = "mixedclf-writer"):
        self._handle = handle
        self._queue: queue.Queue = queue.Queue(maxsize=slack)
        self._failure: list[BaseException] = []
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while (item := self._queue.get()) is not _DONE:
            if self._failure:
                continue  # keep draining so the producer never blocks after a failure
            try:
                self._handle(item)
            except BaseException as exc:  # noqa: BLE001 - raised in the producer's thread
                self._failure.append(exc)

    def raise_failure(self) -> None:
        if self._failure:
            raise self._failure[0]

    def put(self, item: Any) -> None:
        """Queue an item; raises the thread's failure instead of waiting on a thread that stopped."""
        while True:
            self.raise_failure()
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if not self.thread.is_alive():
                    raise RuntimeError("writer thread stopped") from None

    def close(self) -> None:
        """Wait until every queued item is handled; raises the thread's failure."""
        self._queue.put(_DONE)
        self.thread.join()
        self.raise_failure()

    def stop(self) -> None:
        """After the producer failed: handle nothing more, let the thread end (waiting at most 30 s)."""
        if not self.thread.is_alive():
            return
        self._failure.append(RuntimeError("aborted"))
        try:
            self._queue.put(_DONE, timeout=30)  # the thread only drains now: room comes at once
        except queue.Full:
            return
        self.thread.join(timeout=30)
