"""What a run counts about itself, shared by the local and the Ray engine: stage clocks and row counts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(kw_only=True)
class Clock:
    """Busy seconds and the first-start / last-end window of some work: the one clock every stage keeps (a run's
    stages, the device runner, the server's batcher)."""

    busy_s: float = 0.0
    # CPU seconds the work took (thread or process CPU clocks, worker processes included); None: not measured
    cpu_s: float | None = None
    first: float | None = None
    last: float | None = None

    def time(self, start: float, end: float, cpu_s: float | None = None) -> None:
        self.busy_s += end - start
        if cpu_s is not None:
            self.cpu_s = (self.cpu_s or 0.0) + max(0.0, cpu_s)
        self.first = start if self.first is None else min(self.first, start)
        self.last = end if self.last is None else max(self.last, end)

    @property
    def wall_s(self) -> float:
        return (self.last - self.first) if self.first is not None else 0.0


@dataclass
class StageClock(Clock):
    """One stage of a run: its clock, what it is billed as, where it ran, and how many items it did."""

    name: str
    billing: str
    device: str
    workers: int = 1
    items: int = 0

    def add(self, start: float, end: float, items: int, cpu_s: float | None = None) -> None:
        self.time(start, end, cpu_s)
        self.items += items


@dataclass
class RunCounts:
    rows_in: int = 0
    rows_out: int = 0
    rows_errored: int = 0
    chunks_done: int = 0
    dedup_hits: int = 0
    dedup_lookups: int = 0


class IdRepeats:
    """Rows whose id repeats an earlier row's id (kept and classified; reported so the user knows). Ids are
    compared as text through 64-bit hashes, a few bytes per row whatever the ids' size. numpy is imported on use:
    the cost commands import this module and stay free of it."""

    def __init__(self):
        self._hashes: list = []

    def add(self, ids) -> None:
        import numpy as np

        self._hashes.append(np.fromiter((hash(str(i)) for i in ids), dtype=np.int64, count=len(ids)))

    def count(self) -> int:
        import numpy as np

        if not self._hashes:
            return 0
        hashes = np.concatenate(self._hashes)
        return int(len(hashes) - len(np.unique(hashes)))
