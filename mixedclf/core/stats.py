"""What a run counts about itself, shared by the local and the Ray engine: stage clocks and row counts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StageClock:
    """Busy seconds and the first-start / last-end window of one stage."""

    name: str
    billing: str
    device: str
    workers: int = 1
    items: int = 0
    busy_s: float = 0.0
    first: float | None = None
    last: float | None = None

    def add(self, start: float, end: float, items: int) -> None:
        self.busy_s += end - start
        self.items += items
        self.first = start if self.first is None else min(self.first, start)
        self.last = end if self.last is None else max(self.last, end)

    @property
    def wall_s(self) -> float:
        return (self.last - self.first) if self.first is not None else 0.0


@dataclass
class RunCounts:
    rows_in: int = 0
    rows_out: int = 0
    rows_errored: int = 0
    chunks_done: int = 0
    dedup_hits: int = 0
    dedup_lookups: int = 0
