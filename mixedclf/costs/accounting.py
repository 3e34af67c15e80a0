"""Measured cost accounting: stage timings in, dollars out.

Pure module (no torch, no pools). Every formula is written out in docs/cost-model.md.

Two billing models are priced from the same measurements:

* pay-per-use (ideal serverless, scale to zero): each stage's busy seconds x the rate of the
  device class it is billed at (``billing``). ``model_load`` is not a per-item cost here: it is
  paid once per warm worker and shows up in the provisioned totals (and, in ``estimate``, as a
  cold start).
* provisioned (a batch job on rented workers): every worker is billed for the time it is held, plus the idle
  tail its idle timeout adds before it stops, rounded up to the whole second per worker (Runpod's rule). The
  local engine's process is the GPU worker: it is held from process start (imports and model load included).

Each is compared with the GPU-only counterfactual: the same stage seconds, all at the GPU rate
(provisioned: one after another on the GPU worker, model load included). A run made with
``--mode gpu-only`` supplies its own wall time as the provisioned GPU-only figure.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, Field

from mixedclf.costs.pricing import CostInputError, PricingProfile

#: Bump on an incompatible change of any saved report (classify or estimate).
SCHEMA_VERSION = 2
#: Versions a reader still accepts: version 1 lacks the fields added in 2, which all have defaults.
READABLE_SCHEMA_VERSIONS = (1, 2)

#: Seconds a worker stays up (and billed) after its last request: Runpod's default idle timeout.
DEFAULT_IDLE_TIMEOUT_S = 5.0

DAYS_PER_MONTH = 30

#: Stages paid as provisioned GPU time only, never as a pay-per-use per-item cost.
PROVISIONED_ONLY_STAGES = frozenset({"model_load"})

Billing = Literal["cpu", "gpu"]
Mode = Literal["mixed", "gpu-only"]


def clean(x: float) -> float:
    """Round away binary floating-point noise (12 significant digits); monotone, so safe to compare."""
    return float(f"{x:.12g}")


def per_1k(total: float, items: int | float) -> float:
    return clean(total / items * 1000.0) if items > 0 else 0.0


def pct(part: float, whole: float) -> float:
    """part / whole in percent; 0 when whole is 0; clamped to +-1e12 (rates near zero overflow)."""
    if whole <= 0:
        return 0.0
    v = part / whole * 100.0
    return clean(max(-1e12, min(1e12, v))) if not math.isnan(v) else 0.0


# --------------------------------------------------------------------------------------- inputs


class StageMeasurement(BaseModel):
    """One pipeline stage as measured by the engine."""

    name: str
    billing: Billing  # the rate this stage is billed at in the mixed architecture
    device: str = "cpu"  # where it actually ran: "cpu", "cuda:0", "mps"
    items: int = Field(default=0, ge=0)
    busy_s: float = Field(default=0.0, ge=0)  # inside the stage function, summed over workers
    wall_s: float = Field(default=0.0, ge=0)  # first start to last end
    workers: int = Field(default=1, ge=0)
    # CPU seconds of the stage (thread and process CPU clocks, worker processes included); unlike busy seconds
    # they do not grow while the machine runs other work. None: not measured (the Ray engine, older reports).
    cpu_s: float | None = Field(default=None, ge=0)


class RunMeasurements(BaseModel):
    """A whole classify run as measured by the engine."""

    mode: Mode
    items: int = Field(ge=0)
    stages: list[StageMeasurement]
    wall_s: float = Field(ge=0)
    gpu_held_s: float = Field(default=0.0, ge=0)  # model-load start to last inference batch end
    cpu_pool_held_s: float = Field(default=0.0, ge=0)  # the CPU pool's lifetime (0 in gpu-only)
    cpu_pool_workers: int = Field(default=0, ge=0)
    # Process start to the end of the run (interpreter start, imports, model load, every chunk). None: the engine's
    # workers are not this process (Ray), so the held windows above are the bill.
    process_s: float | None = Field(default=None, ge=0)
    startup_s: float = Field(default=0.0, ge=0)  # process start to the start of model loading
    # Start-up: process start (a library call: the call) to the first micro-batch on the device. Imports, option
    # checks, model load and the first chunk's reading and preprocessing: what every cold start pays before the
    # device works. None: no micro-batch ran, or the device is not in this process (Ray).
    cold_start_s: float | None = Field(default=None, ge=0)

    def stage_busy(self, name: str) -> float:
        return sum(s.busy_s for s in self.stages if s.name == name)

    def busy_by_billing(self, billing: str, *, include_load: bool = False) -> float:
        return sum(
            s.busy_s
            for s in self.stages
            if s.billing == billing and (include_load or s.name not in PROVISIONED_ONLY_STAGES)
        )


# -------------------------------------------------------------------------------------- outputs


class StageCost(BaseModel):
    name: str
    billing: Billing
    device: str
    items: int
    workers: int
    seconds: float  # busy seconds
    wall_s: float
    rate: float  # $/s of the billing class
    cost: float  # pay-per-use: seconds x rate (0 for provisioned-only stages)
    gpu_only_cost: float  # pay-per-use: seconds x GPU rate (0 for provisioned-only stages)
    pay_per_use: bool = True  # False for model_load
    seconds_per_item: float = 0.0
    cpu_s: float | None = None  # the stage's CPU seconds (see StageMeasurement); None: not measured


class CostTotals(BaseModel):
    """Mixed vs GPU-only under one billing model."""

    mixed: float
    gpu_only: float
    savings: float  # gpu_only - mixed (negative when mixed costs more)
    savings_pct: float  # savings / gpu_only x 100
    mixed_per_1k: float
    gpu_only_per_1k: float
    mixed_per_day: float | None = None
    mixed_per_month: float | None = None
    gpu_only_per_day: float | None = None
    gpu_only_per_month: float | None = None
    savings_per_day: float | None = None
    savings_per_month: float | None = None


class ProvisionedParts(BaseModel):
    """The held worker-seconds behind the provisioned totals."""

    cpu_pool_worker_s: float  # cpu_pool_workers x cpu_pool_held_s (mixed run) or CPU busy (counterfactual)
    gpu_held_s: float  # GPU host held (mixed run) or model load + inference busy (counterfactual)
    host_cpu_s: float  # main process outside the GPU-held window, billed as one CPU worker
    gpu_only_s: float  # GPU-only: stages in series + model load, or the gpu-only run's own wall
    # Whole seconds billed per worker (held + idle tail, rounded up); empty in version-1 reports.
    billed_cpu_worker_s: list[int] = []
    billed_gpu_worker_s: list[int] = []
    billed_gpu_only_s: int | None = None


class CostBreakdown(BaseModel):
    profile: str
    cpu_per_sec: float
    gpu_per_sec: float
    mode: Mode
    items: int
    wall_s: float
    stages: list[StageCost]
    pay_per_use: CostTotals
    provisioned: CostTotals
    provisioned_parts: ProvisionedParts
    mixed_is: Literal["measured", "counterfactual"]
    gpu_only_is: Literal["measured", "counterfactual"]
    gpu_utilization: float  # inference busy / gpu_held_s
    cpu_pool_utilization: float | None = None  # preprocess busy / (workers x pool held)
    gpu_busy_s_per_1k: float  # GPU-billed busy seconds (pay-per-use, mixed) per 1,000 items
    gpu_held_s_per_1k: float  # GPU held seconds (provisioned, mixed) per 1,000 items
    throughput: float  # items / wall second
    requests_per_day: float | None = None
    days_per_month: int = DAYS_PER_MONTH
    idle_timeout_s: float = 0.0  # the idle tail added to every provisioned worker
    gpu_speedup: float | None = None  # inference seconds divided by this in GPU-priced figures (CPU runs)
    notes: list[str] = []

    @property
    def inference_on_cpu(self) -> bool:
        """True when the GPU-billed inference ran on a CPU: its GPU-priced figures are CPU seconds."""
        return any(s.name == "inference" and s.device.startswith("cpu") for s in self.stages)

    @property
    def savings_claim(self) -> bool:
        """Whether a mixed-vs-GPU-only headline may be printed: only on GPU seconds, measured or scaled."""
        return not self.inference_on_cpu or self.gpu_speedup is not None

    def totals(self, basis: str = "pay-per-use") -> CostTotals:
        if basis in ("pay-per-use", "pay_per_use"):
            return self.pay_per_use
        if basis == "provisioned":
            return self.provisioned
        raise CostInputError(f"unknown cost basis {basis!r} (expected pay-per-use or provisioned)")


# ------------------------------------------------------------------------------------ functions


def make_totals(
    mixed: float,
    gpu_only: float,
    items: int,
    requests_per_day: float | None = None,
    days_per_month: int = DAYS_PER_MONTH,
) -> CostTotals:
    mixed, gpu_only = clean(mixed), clean(gpu_only)
    savings = clean(gpu_only - mixed)
    t = CostTotals(
        mixed=mixed,
        gpu_only=gpu_only,
        savings=savings,
        savings_pct=pct(savings, gpu_only) if gpu_only > 0 else 0.0,
        mixed_per_1k=per_1k(mixed, items),
        gpu_only_per_1k=per_1k(gpu_only, items),
    )
    if requests_per_day is not None and items > 0:
        m_day = mixed / items * requests_per_day
        g_day = gpu_only / items * requests_per_day
        t.mixed_per_day = clean(m_day)
        t.gpu_only_per_day = clean(g_day)
        t.mixed_per_month = clean(m_day * days_per_month)
        t.gpu_only_per_month = clean(g_day * days_per_month)
        t.savings_per_day = clean(g_day - m_day)
        t.savings_per_month = clean((g_day - m_day) * days_per_month)
    return t


def billed_seconds(held_s: float, idle_timeout_s: float) -> int:
    """A worker's bill in whole seconds: held time plus the idle tail, rounded up (Runpod rounds each worker)."""
    return int(math.ceil(clean(max(0.0, held_s) + idle_timeout_s))) if held_s > 0 else 0


def price_run(
    run: RunMeasurements,
    profile: PricingProfile,
    requests_per_day: float | None = None,
    *,
    days_per_month: int = DAYS_PER_MONTH,
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    gpu_speedup: float | None = None,
) -> CostBreakdown:
    """Price a measured run under both billing models, mixed vs GPU-only (docs/cost-model.md).

    ``gpu_speedup``: how many times faster a GPU runs inference than the CPU this run used; the GPU-priced figures
    then use inference seconds / gpu_speedup. Only meaningful when inference ran on a CPU.
    """
    if requests_per_day is not None and requests_per_day < 0:
        raise CostInputError("--requests-per-day must be zero or more")
    if not math.isfinite(idle_timeout_s) or idle_timeout_s < 0:
        raise CostInputError("--idle-timeout must be a number of seconds >= 0")
    if gpu_speedup is not None and (not math.isfinite(gpu_speedup) or gpu_speedup <= 0):
        raise CostInputError("--gpu-speedup must be a number > 0")
    c, g = profile.cpu_per_sec, profile.gpu_per_sec
    notes: list[str] = []
    inference_on_cpu = any(s.name == "inference" and s.device.startswith("cpu") for s in run.stages)
    if gpu_speedup is not None and not inference_on_cpu:
        notes.append("--gpu-speedup was ignored: inference ran on an accelerator, its seconds are GPU seconds.")
        gpu_speedup = None
    # Seconds of GPU-billed work that a GPU would not spend (0 unless a CPU run is scaled by --gpu-speedup).
    speedup_saved = run.stage_busy("inference") * (1 - 1 / gpu_speedup) if gpu_speedup else 0.0

    def gpu_seconds(s: StageMeasurement) -> float:
        return s.busy_s / gpu_speedup if gpu_speedup and s.name == "inference" else s.busy_s

    # ---- per stage, pay-per-use
    rows: list[StageCost] = []
    for s in run.stages:
        ppu = s.name not in PROVISIONED_ONLY_STAGES
        rate = profile.rate(s.billing)
        rows.append(
            StageCost(
                name=s.name,
                billing=s.billing,
                device=s.device,
                items=s.items,
                workers=s.workers,
                seconds=s.busy_s,
                wall_s=s.wall_s,
                rate=rate,
                cost=clean((gpu_seconds(s) if s.billing == "gpu" else s.busy_s) * rate) if ppu else 0.0,
                gpu_only_cost=clean(gpu_seconds(s) * g) if ppu else 0.0,
                pay_per_use=ppu,
                seconds_per_item=clean(s.busy_s / s.items) if s.items else 0.0,
                cpu_s=clean(s.cpu_s) if s.cpu_s is not None else None,
            )
        )
    ppu_mixed = sum(r.cost for r in rows)
    ppu_gpu_only = sum(r.gpu_only_cost for r in rows)

    # ---- provisioned: every worker held + idle tail, rounded up to the second
    t = idle_timeout_s
    load_s = run.stage_busy("model_load")
    inference_s = run.stage_busy("inference")
    all_busy = sum(s.busy_s for s in run.stages) - speedup_saved  # model load included: stages in series
    cpu_busy = run.busy_by_billing("cpu")
    gpu_busy = run.busy_by_billing("gpu") - speedup_saved  # excludes model_load
    host_cpu = 0.0
    if run.mode == "mixed":
        pool_held = run.cpu_pool_held_s
        floor = 0.0  # with --gpu-speedup: the run cannot end before the pool has done its own work
        if speedup_saved and run.cpu_pool_workers:
            # A faster GPU shortens the run, and the pool's hold with it, down to the pool's own busy seconds.
            pool_held = max(run.stage_busy("preprocess") / run.cpu_pool_workers, pool_held - speedup_saved)
            floor = pool_held
        pool_ws = run.cpu_pool_workers * pool_held
        pool_bills = [billed_seconds(pool_held, t)] * run.cpu_pool_workers
        if run.process_s is not None:
            # This process drives the GPU: the GPU worker is up from process start to its end.
            gpu_held = max(0.0, run.process_s - speedup_saved, (run.startup_s + floor) if floor else 0.0)
            gpu_bills = [billed_seconds(gpu_held, t)]
        else:
            gpu_held = max(0.0, run.gpu_held_s - speedup_saved, floor)
            host_cpu = max(0.0, run.wall_s - run.gpu_held_s)
            gpu_bills = [billed_seconds(gpu_held, t)]
            if host_cpu > 0:
                pool_bills.append(billed_seconds(host_cpu, t))
        gpu_only_s = run.startup_s + all_busy
        mixed_is, gpu_only_is = "measured", "counterfactual"
    else:
        # The run was GPU-only for real: its own held time is the GPU-only column. The mixed column is the ideal
        # counterfactual: GPU held for start-up + model load + GPU-billed busy time, CPU-billed stage seconds on
        # one pool worker held only while busy (a pool sized to keep up, perfect overlap).
        pool_ws = cpu_busy
        pool_bills = [billed_seconds(cpu_busy, t)]
        gpu_held = run.startup_s + load_s + gpu_busy
        gpu_bills = [billed_seconds(gpu_held, t)]
        gpu_only_s = max(0.0, (run.process_s if run.process_s is not None else run.wall_s) - speedup_saved)
        mixed_is, gpu_only_is = "counterfactual", "measured"
        notes.append(
            "gpu-only run: the GPU-only column is this run's own held time; the mixed column is an "
            "ideal counterfactual (CPU stages on a pool that keeps up, GPU held for load + inference)."
        )
    gpu_only_bill = billed_seconds(gpu_only_s, t)
    prov_mixed = sum(pool_bills) * c + sum(gpu_bills) * g
    prov_gpu_only = gpu_only_bill * g

    on_cpu_billed_gpu = [s.name for s in run.stages
                         if s.billing == "gpu" and s.name not in PROVISIONED_ONLY_STAGES and s.device == "cpu"]
    if on_cpu_billed_gpu and gpu_speedup:
        notes.append(
            f"{', '.join(on_cpu_billed_gpu)} ran on a CPU; the GPU-priced figures divide its seconds by "
            f"--gpu-speedup {gpu_speedup:g} (a GPU assumed {gpu_speedup:g}x faster) and keep every other second "
            "as measured."
        )
    elif on_cpu_billed_gpu:
        notes.append(
            f"{', '.join(on_cpu_billed_gpu)} ran on a CPU: the GPU-priced figures are CPU seconds priced at the GPU "
            "rate, so no saving is claimed; give --gpu-speedup X (how much faster the GPU is) or compare with a "
            "report measured on a GPU."
        )
    if c > g:
        notes.append("the CPU rate is above the GPU rate in this profile: mixed cannot save money.")

    gpu_util = clean(inference_s / run.gpu_held_s) if run.gpu_held_s > 0 else 0.0
    pool_util = None
    if run.mode == "mixed" and run.cpu_pool_workers > 0 and run.cpu_pool_held_s > 0:
        pool_util = clean(run.stage_busy("preprocess") / (run.cpu_pool_workers * run.cpu_pool_held_s))

    return CostBreakdown(
        profile=profile.name,
        cpu_per_sec=c,
        gpu_per_sec=g,
        mode=run.mode,
        items=run.items,
        wall_s=run.wall_s,
        stages=rows,
        pay_per_use=make_totals(ppu_mixed, ppu_gpu_only, run.items, requests_per_day, days_per_month),
        provisioned=make_totals(prov_mixed, prov_gpu_only, run.items, requests_per_day, days_per_month),
        provisioned_parts=ProvisionedParts(
            cpu_pool_worker_s=clean(pool_ws),
            gpu_held_s=clean(gpu_held),
            host_cpu_s=clean(host_cpu),
            gpu_only_s=clean(gpu_only_s),
            billed_cpu_worker_s=pool_bills,
            billed_gpu_worker_s=gpu_bills,
            billed_gpu_only_s=gpu_only_bill,
        ),
        mixed_is=mixed_is,
        gpu_only_is=gpu_only_is,
        gpu_utilization=gpu_util,
        cpu_pool_utilization=pool_util,
        gpu_busy_s_per_1k=per_1k(gpu_busy, run.items),
        gpu_held_s_per_1k=per_1k(gpu_held, run.items),
        throughput=clean(run.items / run.wall_s) if run.wall_s > 0 else 0.0,
        requests_per_day=requests_per_day,
        days_per_month=days_per_month,
        idle_timeout_s=idle_timeout_s,
        gpu_speedup=gpu_speedup,
        notes=notes,
    )
