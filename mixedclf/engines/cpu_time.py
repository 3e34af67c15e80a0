"""CPU seconds of one stage's work in a process where other stages run on other threads at the same time.

The device stage runs on the main thread (or a daemon thread with --stage-timeout-gpu) and on torch's intra-op
threads, while the writer thread postprocesses and writes the chunk before: the stage's CPU time is the
process's CPU clock over its span, less what the other stages' threads spent meanwhile (read on their own
thread CPU clocks).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def thread_cpu_reader(thread: threading.Thread) -> Callable[[], float]:
    """A reader of `thread`'s CPU clock, in seconds; it reads 0 where the platform has no per-thread clock."""
    try:
        clock = time.pthread_getcpuclockid(thread.ident)  # type: ignore[arg-type]
    except (AttributeError, OSError, TypeError):
        return lambda: 0.0

    def read() -> float:
        try:
            return time.clock_gettime(clock)
        except OSError:  # the thread has ended: it spends nothing more
            return 0.0

    return read


class CpuExcept:
    """This process's CPU clock less the CPU clocks of some threads: ``now()`` differences are one stage's CPU."""

    def __init__(self, *others: threading.Thread):
        self._others = [thread_cpu_reader(t) for t in others]

    def now(self) -> float:
        return time.process_time() - sum(read() for read in self._others)
