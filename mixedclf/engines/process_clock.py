"""When did this process start? The provisioned bill runs from there (interpreter start and imports included)."""

from __future__ import annotations

import os
import time
from pathlib import Path

#: Fallback where /proc is absent: as early as mixedclf's command line gets (it imports this module first).
_IMPORTED_AT = time.monotonic()
_marked: float | None = None


def process_start_monotonic() -> float:
    """The time.monotonic() reading at which this process started (from /proc), else this module's import time."""
    try:
        stat = Path("/proc/self/stat").read_text()
        # Fields after the command name (which may hold spaces) start at field 3; starttime is field 22.
        start_ticks = int(stat[stat.rindex(")") + 2:].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return _IMPORTED_AT
    return time.monotonic() - max(0.0, age)


def mark_process_start() -> None:
    """Called by the console entry point: this process is a mixedclf run, so its bill starts at its start."""
    global _marked
    _marked = process_start_monotonic()


def process_start() -> float | None:
    """The marked process start, or None when mixedclf runs inside another program (a library call, a test)."""
    return _marked
