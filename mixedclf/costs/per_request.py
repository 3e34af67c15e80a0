"""Per-request arithmetic of `mixedclf estimate`: the inputs, the ideal billing model (busy seconds x rate) and
the rows of a sweep. The Runpod model, break-evens and the report are built on it in estimate.py."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from mixedclf.costs.accounting import DAYS_PER_MONTH, clean, pct
from mixedclf.costs.pricing import instance_vcpus
from mixedclf.costs.runpod import DEFAULT_SPEND_LIMIT_PER_HOUR
from mixedclf.costs.runpod_sim import DEFAULTS, MAX_IDLE_TIMEOUT_S, Arrivals

Billing = Literal["ideal", "runpod"]  # the model a headline figure is billed under

#: The original design's per-request stage seconds.
DEFAULT_PRE_SEC = 0.05
DEFAULT_GPU_SEC = 0.2
DEFAULT_POST_SEC = 0.03
MIXED_HOPS = 2  # CPU -> GPU -> CPU
BILLINGS = ("ideal", "runpod")
#: Bounds that keep the arithmetic meaningful: a request rate above 10^9 a day, or a stage, hop or cold start
#: longer than a day, is a typo, not a deployment (and floats lose whole seconds there). The runpod model also
#: needs at least MIN_SIM_REQUESTS_PER_DAY (mixedclf.costs.runpod).
MAX_REQUESTS_PER_DAY = 1e9
MAX_STAGE_SEC = 86400.0
DEFAULT_CPU_INSTANCE = "cpu3c-2-4"  # pre and post: 2 vCPU, 4 GB
DEFAULT_ORCHESTRATOR_INSTANCE = "cpu3c-1-2"  # the original design's orchestrator: 1 vCPU, 2 GB


class EstimateInputs(BaseModel):
    requests_per_day: float = Field(ge=0, le=MAX_REQUESTS_PER_DAY)
    pre_sec: float = Field(default=DEFAULT_PRE_SEC, ge=0, le=MAX_STAGE_SEC)
    gpu_sec: float = Field(default=DEFAULT_GPU_SEC, ge=0, le=MAX_STAGE_SEC)
    post_sec: float = Field(default=DEFAULT_POST_SEC, ge=0, le=MAX_STAGE_SEC)
    overhead_sec: float = Field(default=0.0, ge=0, le=MAX_STAGE_SEC)  # per hop, paid by each side
    billing: Billing = "ideal"
    # runpod model: per endpoint, the same inputs
    defaults: Literal["console", "flash"] = "console"  # whose idle timeout and workers an unset endpoint takes
    cold_start_sec: float = Field(default=0.0, ge=0, le=MAX_STAGE_SEC)  # GPU worker (container start + model load)
    cold_start_cpu_sec: float | None = Field(default=None, ge=0, le=MAX_STAGE_SEC)  # CPU worker (None: 0)
    start_billed: bool = True  # whether a worker's start is billed (Runpod's pages disagree: docs/cost-model.md)
    idle_timeout_cpu: float | None = Field(default=None, ge=0, le=MAX_IDLE_TIMEOUT_S)  # both CPU endpoints
    idle_timeout_pre: float | None = Field(default=None, ge=0, le=MAX_IDLE_TIMEOUT_S)
    idle_timeout_gpu: float | None = Field(default=None, ge=0, le=MAX_IDLE_TIMEOUT_S)
    idle_timeout_post: float | None = Field(default=None, ge=0, le=MAX_IDLE_TIMEOUT_S)
    gpu_workers: tuple[int, int] = DEFAULTS["console"][1]  # (min = active, max); unset: the named defaults'
    cpu_workers: tuple[int, int] = DEFAULTS["console"][1]
    cpu_instance: str = DEFAULT_CPU_INSTANCE  # pre and post endpoints' Runpod CPU instance (priced per vCPU)
    orchestrator_workers: int = Field(default=1, ge=0, le=1000)  # always-on CPU workers in front of the stages
    orchestrator_instance: str = DEFAULT_ORCHESTRATOR_INSTANCE
    orchestrator_for: Literal["mixed", "both"] = "mixed"  # which pipelines pay the front end
    arrivals: Arrivals = "poisson"
    seed: int = 0
    sim_requests: int = Field(default=10_000, ge=100, le=1_000_000)  # per simulated pass
    spend_limit_per_hour: float = Field(default=DEFAULT_SPEND_LIMIT_PER_HOUR, gt=0)
    active_hours: float = Field(default=24.0, gt=0, le=24)
    days_per_month: int = Field(default=DAYS_PER_MONTH, gt=0, le=31)
    source: str = "defaults"  # "defaults", "options", or "report:PATH"
    # Share of requests a prediction cache answers (docs/cache.md); gpu_sec is already scaled by (1 - it).
    cache_hit_rate: float = Field(default=0.0, ge=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _named_defaults(cls, data: Any) -> Any:
        """Workers left unset take the named defaults' (console 0:3, flash 0:1)."""
        if isinstance(data, dict):
            preset = DEFAULTS.get(data.get("defaults", "console"), DEFAULTS["console"])
            data = {**data}
            for k in ("gpu_workers", "cpu_workers"):
                if data.get(k) is None:
                    data[k] = preset[1]
        return data

    @model_validator(mode="after")
    def _check(self) -> "EstimateInputs":
        for k, v in self.model_dump().items():
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{k} must be a finite number")
        for k in ("gpu_workers", "cpu_workers"):
            lo, hi = getattr(self, k)
            if not (0 <= lo <= hi and 1 <= hi <= 1000):
                raise ValueError(f"{k} must be MIN:MAX with 0 <= MIN <= MAX and 1 <= MAX <= 1000, got {lo}:{hi}")
        for k in ("cpu_instance", "orchestrator_instance"):
            instance_vcpus(getattr(self, k))
        return self

    @property
    def cpu_vcpus(self) -> int:
        return instance_vcpus(self.cpu_instance)

    @property
    def orchestrator_vcpus(self) -> int:
        return instance_vcpus(self.orchestrator_instance)

    @property
    def default_idle(self) -> float:
        return DEFAULTS[self.defaults][0]

    @property
    def idle_pre(self) -> float:
        return _first(self.idle_timeout_pre, self.idle_timeout_cpu, self.default_idle)

    @property
    def idle_post(self) -> float:
        return _first(self.idle_timeout_post, self.idle_timeout_cpu, self.default_idle)

    @property
    def idle_gpu(self) -> float:
        return _first(self.idle_timeout_gpu, self.default_idle)

    @property
    def arrival_rate(self) -> float:
        """lambda: requests per second during active hours."""
        return self.requests_per_day / (self.active_hours * 3600.0)


def _first(*values: float | None) -> float:
    return next(v for v in values if v is not None)


class WorkerBill(BaseModel):
    """Seconds one worker type is busy per request under the ideal model, and what they cost."""

    worker: Literal["cpu", "gpu"]
    rate: float
    busy_s: float
    overhead_s: float = 0.0
    billed_s: float = 0.0
    cost: float = 0.0  # per request


class EstimateLine(BaseModel):
    """A per-request cost line of the ideal model (used by `check` for per-line diffs)."""

    name: str
    mixed: float  # $ per request
    gpu_only: float  # $ per request


class SweepRow(BaseModel):
    """One request rate: the headline figures under the report's billing model, and both models per month (a
    Runpod figure is None where that pipeline cannot serve the rate, and always under ideal billing, which
    simulates nothing)."""

    requests_per_day: float
    mixed_per_day: float | None
    gpu_only_per_day: float | None
    mixed_per_month: float | None
    gpu_only_per_month: float | None
    savings_per_month: float | None
    savings_pct: float | None
    ideal_mixed_per_month: float = 0.0
    ideal_gpu_only_per_month: float = 0.0
    runpod_mixed_per_month: float | None = 0.0
    runpod_gpu_only_per_month: float | None = 0.0


class EstimateNumbers(BaseModel):
    mixed_cpu: WorkerBill
    mixed_gpu: WorkerBill
    gpu_only_gpu: WorkerBill
    lines: list[EstimateLine]
    mixed_per_request: float
    gpu_only_per_request: float
    mixed_per_1k: float
    gpu_only_per_1k: float
    mixed_per_day: float
    mixed_per_month: float
    gpu_only_per_day: float
    gpu_only_per_month: float
    savings_per_day: float
    savings_per_month: float
    savings_pct: float
    mean_gap_s: float | None  # 1 / lambda


def compute(inputs: EstimateInputs, cpu_rate: float, gpu_rate: float) -> EstimateNumbers:
    """The ideal model: busy seconds x rate (docs/cost-model.md, "Estimate")."""
    i = inputs
    o = i.overhead_sec
    m_cpu = _bill("cpu", cpu_rate, i.pre_sec + i.post_sec, MIXED_HOPS * o)
    m_gpu = _bill("gpu", gpu_rate, i.gpu_sec, MIXED_HOPS * o)
    go = _bill("gpu", gpu_rate, i.pre_sec + i.gpu_sec + i.post_sec, 0.0)
    lines = [
        EstimateLine(name="pre", mixed=clean(i.pre_sec * cpu_rate), gpu_only=clean(i.pre_sec * gpu_rate)),
        EstimateLine(name="inference", mixed=clean(i.gpu_sec * gpu_rate), gpu_only=clean(i.gpu_sec * gpu_rate)),
        EstimateLine(name="post", mixed=clean(i.post_sec * cpu_rate), gpu_only=clean(i.post_sec * gpu_rate)),
        EstimateLine(name="hop overhead", mixed=clean(MIXED_HOPS * o * (cpu_rate + gpu_rate)), gpu_only=0.0),
    ]
    mixed_pr = clean(m_cpu.cost + m_gpu.cost)
    go_pr = clean(go.cost)
    r, days = i.requests_per_day, i.days_per_month
    m_day, g_day = clean(mixed_pr * r), clean(go_pr * r)
    m_month, g_month = clean(m_day * days), clean(g_day * days)
    lam = i.arrival_rate
    return EstimateNumbers(
        mixed_cpu=m_cpu, mixed_gpu=m_gpu, gpu_only_gpu=go, lines=lines,
        mixed_per_request=mixed_pr, gpu_only_per_request=go_pr,
        mixed_per_1k=clean(mixed_pr * 1000), gpu_only_per_1k=clean(go_pr * 1000),
        mixed_per_day=m_day, mixed_per_month=m_month, gpu_only_per_day=g_day, gpu_only_per_month=g_month,
        savings_per_day=clean(g_day - m_day), savings_per_month=clean(g_month - m_month),
        savings_pct=pct(go_pr - mixed_pr, go_pr), mean_gap_s=clean(1.0 / lam) if lam > 0 else None,
    )


def _bill(worker: str, rate: float, busy: float, overhead: float) -> WorkerBill:
    billed = busy + overhead
    return WorkerBill(worker=worker, rate=rate, busy_s=clean(busy), overhead_s=clean(overhead),  # type: ignore[arg-type]
                      billed_s=clean(billed), cost=clean(billed * rate))



def with_cache_hit_rate(inputs: EstimateInputs, rate: float) -> tuple[EstimateInputs, list[str]]:
    """`inputs` for traffic a prediction cache answers at `rate`: a hit skips the model (its GPU seconds) but not
    the cleaning that makes its key (nor, served, the tokenizing), nor the postprocess; the same holds in both
    pipelines. A classify run's CPU workers skip the tokenizer for hits as well, which this leaves in: it errs high."""
    if not 0 <= rate <= 1 or not math.isfinite(rate):
        raise ValueError(f"--cache-hit-rate must be between 0 and 1, got {rate}")
    if rate == 0:
        return inputs, []
    scaled = clean(inputs.gpu_sec * (1 - rate))
    note = (f"prediction cache hit rate {rate:g}: GPU seconds per request {inputs.gpu_sec:g} x (1 - {rate:g}) = "
            f"{scaled:g} in both pipelines; CPU stages unchanged (a hit is still cleaned for its key, and tokenized "
            "when served; a classify run's workers skip the tokenizer for it, so there this errs high)")
    return inputs.model_copy(update={"gpu_sec": scaled, "cache_hit_rate": rate}), [note]
