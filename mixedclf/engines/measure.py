"""What a run keeps about itself, shared by the local and the Ray engine: stage clocks, counts, the result."""

from __future__ import annotations

from dataclasses import dataclass, field

from mixedclf.costs import RunMeasurements, StageMeasurement
from mixedclf.models.spec import ModelSpec
from mixedclf.stages.postprocess import LabelTally


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

    def measurement(self) -> StageMeasurement:
        wall = (self.last - self.first) if self.first is not None else 0.0
        return StageMeasurement(name=self.name, billing=self.billing, device=self.device, items=self.items,
                                busy_s=self.busy_s, wall_s=wall, workers=self.workers)


@dataclass
class RunResult:
    spec: ModelSpec
    device: str
    measurements: RunMeasurements
    tally: LabelTally
    rows_in: int
    rows_out: int
    rows_errored: int
    settings: dict
    extra: dict = field(default_factory=dict)


@dataclass
class RunCounts:
    rows_in: int = 0
    rows_out: int = 0
    rows_errored: int = 0
    chunks_done: int = 0
    dedup_hits: int = 0
    dedup_lookups: int = 0
