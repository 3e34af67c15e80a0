"""An engine's result: the run's measurements in the cost package's terms, its counts and its settings."""

from __future__ import annotations

from dataclasses import dataclass

from mixedclf.core.postprocess import LabelTally
from mixedclf.core.run import RunSettings, RunStats
from mixedclf.core.stats import StageClock
from mixedclf.costs import RunMeasurements, StageMeasurement
from mixedclf.models.spec import ModelSpec


def stage_measurement(clock: StageClock) -> StageMeasurement:
    return StageMeasurement(name=clock.name, billing=clock.billing, device=clock.device, items=clock.items,
                            busy_s=clock.busy_s, wall_s=clock.wall_s, workers=clock.workers,
                            cpu_s=clock.cpu_s)


@dataclass
class RunResult:
    spec: ModelSpec
    device: str
    measurements: RunMeasurements
    tally: LabelTally
    rows_in: int
    rows_out: int
    rows_errored: int
    settings: RunSettings
    extra: RunStats
    stopped: Exception | None = None  # the run stopped early (at --max-cost): raised once the report is written

