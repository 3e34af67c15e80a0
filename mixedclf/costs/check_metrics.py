"""The numbers `mixedclf check` compares: the metric names, units and labels, and how each is read from a report
(measured or projected) or computed from its counted work at one calibrated rate.

Pure module: no torch, no pools.
"""

from __future__ import annotations

from typing import Literal

from mixedclf.costs.accounting import clean
from mixedclf.costs.pricing import CostInputError
from mixedclf.costs.report import ClassifyReport

Metric = Literal["cost_per_1k", "gpu_seconds_per_1k", "throughput"]
Basis = Literal["pay-per-use", "provisioned"]
METRICS: tuple[str, ...] = ("cost_per_1k", "gpu_seconds_per_1k", "throughput")
BASES: tuple[str, ...] = ("pay-per-use", "provisioned")

METRIC_UNITS = {"cost_per_1k": "$ / 1k", "gpu_seconds_per_1k": "GPU s / 1k", "throughput": "rows/s"}
METRIC_LABELS = {
    "cost_per_1k": "cost per 1,000 items",
    "gpu_seconds_per_1k": "GPU seconds per 1,000 items",
    "throughput": "throughput (items/s)",
}


def validate_metric(metric: str, basis: str) -> None:
    if metric not in METRICS:
        raise CostInputError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
    if basis not in BASES:
        raise CostInputError(f"unknown basis {basis!r}; choose one of: {', '.join(BASES)}")


def metric_value(report, metric: str, basis: str = "pay-per-use") -> float:
    """The measured number of a classify report, or the projected number of an estimate report."""
    validate_metric(metric, basis)
    if isinstance(report, ClassifyReport):
        c = report.cost
        if metric == "cost_per_1k":
            return c.totals(basis).mixed_per_1k
        if metric == "gpu_seconds_per_1k":
            return c.gpu_busy_s_per_1k if basis == "pay-per-use" else c.gpu_held_s_per_1k
        return c.throughput
    # estimate
    if metric == "cost_per_1k":
        if report.mixed_per_1k is None:
            raise CostInputError("the estimate has no $ figure: its mixed pipeline cannot serve the traffic "
                                 "(runpod.mixed_servable is false)")
        return report.mixed_per_1k
    if metric == "gpu_seconds_per_1k":
        return report.gpu_seconds_per_1k
    raise CostInputError("metric 'throughput' needs classify reports (an estimate has no measured throughput)")


def has_work(report) -> bool:
    return getattr(report, "work", None) is not None and getattr(report, "calibration", None) is not None


def work_seconds_per_1k(report, s_per_gflop: float) -> float:
    """Device seconds per 1,000 rows the counted work takes at one calibrated rate."""
    return clean(report.work.gflop_per_1k * s_per_gflop)


def work_value(report, metric: str, s_per_gflop: float) -> float:
    """The gated number computed from counted work: cost and GPU seconds per 1,000 rows, or rows per work-second."""
    secs = work_seconds_per_1k(report, s_per_gflop)
    if metric == "cost_per_1k":
        return clean(secs * report.pricing.gpu_per_sec)
    if metric == "gpu_seconds_per_1k":
        return secs
    return clean(1000.0 / secs) if secs > 0 else 0.0


def stage_per_1k(rep) -> dict[str, float]:
    """A classify report's measured pay-per-use cost per 1,000 rows, by stage name."""
    out: dict[str, float] = {}
    for s in rep.cost.stages:
        if s.pay_per_use:
            out[s.name] = out.get(s.name, 0.0) + s.cost
    n = rep.cost.items
    return {k: clean(v / n * 1000) if n else 0.0 for k, v in out.items()}
