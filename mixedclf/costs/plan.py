"""`mixedclf plan`: which hardware meets a deadline for the least money, from measured throughput only.

Each candidate is a pricing profile (a device class with its rates). A profile is measured when a classify report
run on that class is given for it; every other profile is listed as unmeasured, never extrapolated. The plan for
a measured class is a batch job of identical provisioned workers, each billed from its start to its full stop,
rounded up to the second (Runpod's rule):

    steady rate r    = inference rows / inference wall seconds           (one device worker, from the report)
    start-up s0      = report rows' wall time not spent in steady inference (imports, model load, first window)
    idle tail t      = the idle timeout each worker stays up (billed) after its last batch
    device workers w = ceil(rows / (r x (deadline - s0 - t)))             (infeasible when deadline <= s0 + t)
    held per worker  = ceil(s0 + rows / (w x r) + t)                      seconds
    CPU workers      = w x ceil(r x CPU busy seconds per row)             (mixed runs; preprocessing keeps up)
    cost             = w x held x device rate + CPU workers x held x CPU rate

A plan is feasible only within Runpod's limits: at most `max_workers` device workers (and as many CPU workers) per
endpoint, their sum within the account's worker limit, and the spend of all of them at once within the spend
limit ($/hour). A report measured on a CPU never stands for a GPU class: it is refused.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

from mixedclf.costs.pricing import CostInputError, PricingProfile
from mixedclf.costs.report import ClassifyReport


class MeasuredThroughput(BaseModel):
    """What one report says about one device worker."""

    source: str
    device: str
    rows: int = Field(gt=0)
    rows_per_s: float = Field(gt=0)
    startup_s: float = Field(ge=0)
    cpu_s_per_row: float = Field(ge=0)


class BatchLimits(BaseModel):
    """Runpod's limits a batch plan must fit (defaults: the console's max workers, the account's limits)."""

    max_workers: int = Field(default=3, ge=1)
    account_workers: int = Field(default=5, ge=1)
    spend_limit_per_hour: float = Field(default=80.0, gt=0)
    idle_timeout_s: float = Field(default=5.0, ge=0, le=3600)


class PlanRow(BaseModel):
    profile: str
    device_class: str
    measured: bool
    feasible: bool = False
    note: str = ""
    device_billing: str = "gpu"
    device_workers: int = 0
    cpu_workers: int = 0
    hours: float = 0.0
    cost: float = 0.0
    source: str = ""


class Plan(BaseModel):
    rows: int
    deadline_s: float
    rows_ranked: list[PlanRow]
    limits: BatchLimits = BatchLimits()


def measured_throughput(report: ClassifyReport, source: str) -> MeasuredThroughput:
    m = report.measurements
    inference = [s for s in m.stages if s.name == "inference"]
    if not inference or inference[0].items == 0 or inference[0].wall_s <= 0:
        raise CostInputError(f"{source}: the report has no measured inference stage")
    stage = inference[0]
    rows_per_s = stage.items / stage.wall_s
    startup_s = max(0.0, m.wall_s - stage.wall_s)
    cpu_busy = m.stage_busy("preprocess") + m.stage_busy("postprocess") if m.mode == "mixed" else 0.0
    return MeasuredThroughput(source=source, device=stage.device, rows=stage.items, rows_per_s=rows_per_s,
                              startup_s=startup_s, cpu_s_per_row=cpu_busy / stage.items)


def _on_cpu(device: str) -> bool:
    return device.split(":")[0] == "cpu"


def plan_row(name: str, pricing: PricingProfile, measured: MeasuredThroughput | None, rows: int,
             deadline_s: float, limits: BatchLimits | None = None) -> PlanRow:
    lim = limits or BatchLimits()
    row = PlanRow(profile=name, device_class=pricing.gpu_desc or name, measured=measured is not None)
    if measured is None:
        row.note = "unmeasured: give --from-report PROFILE=REPORT measured on this class"
        return row
    if _on_cpu(measured.device):
        raise CostInputError(f"{measured.source}: measured on {measured.device!r}, not a GPU: a CPU run cannot stand "
                             f"for the GPU of profile {name!r} ({pricing.gpu_desc or name})")
    row.source = measured.source
    tail = lim.idle_timeout_s
    available = deadline_s - measured.startup_s - tail
    if available <= 0:
        row.note = f"start-up ({measured.startup_s:.1f} s) and idle tail ({tail:g} s) alone exceed the deadline"
        return row
    workers = math.ceil(rows / (measured.rows_per_s * available))
    held = math.ceil(measured.startup_s + rows / (workers * measured.rows_per_s) + tail)
    cpu_workers = workers * math.ceil(measured.rows_per_s * measured.cpu_s_per_row) if measured.cpu_s_per_row else 0
    device_rate = pricing.rate(row.device_billing)
    row.device_workers, row.cpu_workers = workers, cpu_workers
    row.hours = held / 3600
    row.cost = workers * held * device_rate + cpu_workers * held * pricing.cpu_per_sec
    per_hour = (workers * device_rate + cpu_workers * pricing.cpu_per_sec) * 3600
    if workers > lim.max_workers or cpu_workers > lim.max_workers:
        row.note = (f"needs {workers} device and {cpu_workers} CPU workers; an endpoint allows {lim.max_workers} "
                    "(--max-workers)")
    elif workers + cpu_workers > lim.account_workers:
        row.note = (f"needs {workers + cpu_workers} workers in all, above the account limit {lim.account_workers} "
                    "(--account-workers)")
    elif per_hour > lim.spend_limit_per_hour:
        row.note = f"spends ${per_hour:,.2f}/hour, above the ${lim.spend_limit_per_hour:g}/hour spend limit"
    else:
        row.feasible = True
    return row


def parse_duration(text: str, option: str = "--deadline") -> float:
    """'500ms', '90s', '45m', '2h', '1d' or plain seconds -> seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    unit = next((u for u in ("ms", "s", "m", "h", "d") if text.endswith(u)), "")
    value = text[: len(text) - len(unit)] if unit else text
    try:
        seconds = float(value) * units[unit or "s"]
    except ValueError:
        raise CostInputError(f"{option} {text!r}: expected a number with ms, s, m, h or d (e.g. 2h)") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise CostInputError(f"{option} {text!r}: must be a positive duration")
    return seconds


def make_plan(profiles: dict[str, PricingProfile], measured: dict[str, MeasuredThroughput], rows: int,
              deadline_s: float, limits: BatchLimits | None = None) -> Plan:
    if rows <= 0 or deadline_s <= 0:
        raise CostInputError("--rows and --deadline must be positive")
    unknown = sorted(set(measured) - set(profiles))
    if unknown:
        raise CostInputError(f"--from-report names unknown profiles: {', '.join(unknown)} "
                             f"(available: {', '.join(sorted(profiles))})")
    if not measured:
        raise CostInputError("plan: no measured reports: give --from-report PROFILE=REPORT.json")
    lim = limits or BatchLimits()
    ranked = [plan_row(name, p, measured.get(name), rows, deadline_s, lim) for name, p in profiles.items()]
    ranked.sort(key=lambda r: (not r.feasible, not r.measured, r.cost, r.profile))
    return Plan(rows=rows, deadline_s=deadline_s, rows_ranked=ranked, limits=lim)
