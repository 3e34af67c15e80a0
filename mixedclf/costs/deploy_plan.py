"""`mixedclf plan --usage FILE --p95-latency 2s`: the cheapest Runpod serverless deployment that meets a latency
target for a team's traffic, from measured reports only, written as mixedclf-deploy.toml.

The search (docs/cost-model.md, "The planner"):

* topology: split (pre CPU -> infer GPU -> post CPU) or single (one GPU endpoint runs the whole pipeline);
  orchestrator: client (the caller drives the stages) or lb (an always-on load-balanced front end);
* GPU class: every pricing profile with a classify report measured on a GPU for it (a CPU report never stands for
  a GPU); the report gives the per-request stage seconds and the measured start-up (the cold start);
* per endpoint: idle timeout from a grid, GPU min (active) workers 0 or 1, max workers 1..the per-endpoint limit;
  CPU endpoints scale from zero on `cpu_instance`; the orchestrator is one always-on worker (1:1).

A candidate is feasible when every endpoint can serve the traffic (utilization < 1), the simulated p95 end-to-end
latency meets the target, the sum of max workers fits the account worker limit (Runpod's "total workers": the sum
of max workers across endpoints), and the mean spend per active hour fits the spend limit. Feasible candidates are
ranked by $/month (ties: lower p95, then fewer workers). Candidates that cannot fit the limits or serve the
traffic are dropped before they are simulated; `evaluate` alone (no pruning) is what the brute-force test uses.

Pure module: no torch, no pools.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from mixedclf.costs.accounting import clean
from mixedclf.costs.deployment import DeploySpec, EndpointSpec, ModelSection, placeholder_image
from mixedclf.costs.per_request import EstimateInputs
from mixedclf.costs.pricing import CostInputError, PricingProfile, instance_vcpus
from mixedclf.costs.report import ClassifyReport
from mixedclf.costs.runpod import DAY_S, Stage, simulate_stages, utilization
from mixedclf.errors import validation_line

#: The search grid: idle timeouts (s) for GPU and CPU endpoints, and GPU active (min) workers.
GPU_IDLE_GRID = (5, 60, 300)
CPU_IDLE_GRID = (5, 60)
GPU_MIN_GRID = (0, 1)
#: Runpod's defaults: max workers per endpoint (console), total workers per account.
DEFAULT_MAX_WORKERS = 3
DEFAULT_ACCOUNT_WORKERS = 5
ORCHESTRATOR_WORKERS = (1, 1)


class MeasuredStages(BaseModel):
    """One GPU class's per-request seconds, from a classify report measured on it."""

    profile: str
    source: str
    device: str
    pre_sec: float = Field(ge=0)
    gpu_sec: float = Field(ge=0)
    post_sec: float = Field(ge=0)
    cold_start_s: float = Field(ge=0)
    model: str = "default"
    precision: str = "auto"


class Candidate(BaseModel):
    topology: Literal["single", "split"]
    orchestrator: Literal["lb", "client"]
    profile: str
    gpu_idle_s: int
    gpu_workers: tuple[int, int]
    cpu_idle_s: int = 0  # split only
    pre_max: int = 0
    post_max: int = 0

    def account_workers(self) -> int:
        n = self.gpu_workers[1] + self.pre_max + self.post_max
        return n + (ORCHESTRATOR_WORKERS[1] if self.orchestrator == "lb" else 0)


class Evaluated(BaseModel):
    candidate: Candidate
    feasible: bool
    reason: str = ""  # why not, when not
    per_month: float | None = None
    per_day: float | None = None
    p95_latency_s: float | None = None
    mean_latency_s: float | None = None
    spend_per_hour: float | None = None


class PlanLimits(BaseModel):
    p95_latency_s: float = Field(gt=0)
    max_workers: int = Field(default=DEFAULT_MAX_WORKERS, ge=1, le=1000)
    account_workers: int = Field(default=DEFAULT_ACCOUNT_WORKERS, ge=1, le=10_000)
    spend_limit_per_hour: float = Field(gt=0)


class DeployPlan(BaseModel):
    kind: Literal["deploy-plan"] = "deploy-plan"
    requests_per_day: float
    active_hours: float
    limits: PlanLimits
    measured: list[MeasuredStages]
    ranked: list[Evaluated]  # feasible first, cheapest first
    considered: int  # candidates in the grid
    simulated: int  # of them, simulated (the rest dropped by the limits or servability)
    best: DeploySpec | None = None
    note: str = ""
    notes: list[str] = []  # about the prices used (illustrative, stale, no longer shown)


def measured_stages(report: ClassifyReport, profile: str, pricing: PricingProfile, source: str) -> MeasuredStages:
    """Per-request stage seconds of a report measured on a GPU; a CPU run cannot stand for a GPU class."""
    m = report.measurements
    inference = [s for s in m.stages if s.name == "inference"]
    device = inference[0].device if inference else report.device
    if device.split(":")[0] != "cuda" and not device.startswith("gpu"):
        raise CostInputError(f"{source}: measured on {device!r}, not a GPU: a CPU run cannot stand for the GPU of "
                             f"profile {profile!r} ({pricing.gpu_desc or pricing.name}); give a report measured on it")
    if m.items <= 0:
        raise CostInputError(f"{source}: the report classified no rows, so it has no per-request seconds")
    cold = m.cold_start_s or m.stage_busy("model_load")
    return MeasuredStages(
        profile=profile, source=source, device=device, pre_sec=clean(m.stage_busy("preprocess") / m.items),
        gpu_sec=clean(m.stage_busy("inference") / m.items), post_sec=clean(m.stage_busy("postprocess") / m.items),
        cold_start_s=clean(cold or 0.0), model=report.model or "default",
        precision=str(report.settings.get("precision") or "auto"),
    )


def candidates(measured: list[MeasuredStages], limits: PlanLimits) -> list[Candidate]:
    """The whole grid, limits not yet applied."""
    out = []
    workers = range(1, limits.max_workers + 1)
    for m, orch in itertools.product(measured, ("client", "lb")):
        for idle, gmin, gmax in itertools.product(GPU_IDLE_GRID, GPU_MIN_GRID, workers):
            if gmin > gmax:
                continue
            base: dict[str, Any] = dict(orchestrator=orch, profile=m.profile, gpu_idle_s=idle,
                                        gpu_workers=(gmin, gmax))
            out.append(Candidate(topology="single", **base))
            for cidle, pre, post in itertools.product(CPU_IDLE_GRID, workers, workers):
                out.append(Candidate(topology="split", cpu_idle_s=cidle, pre_max=pre, post_max=post, **base))
    return out


def stages_of(c: Candidate, m: MeasuredStages, base: EstimateInputs) -> list[Stage]:
    cpu: dict[str, Any] = dict(worker="cpu", instance=base.cpu_instance, vcpus=base.cpu_vcpus, min_workers=0,
               cold_start_s=base.cold_start_cpu_sec or 0.0, idle_timeout_s=c.cpu_idle_s, start_billed=base.start_billed)
    gpu: dict[str, Any] = dict(worker="gpu", cold_start_s=m.cold_start_s, idle_timeout_s=c.gpu_idle_s,
                               min_workers=c.gpu_workers[0],
               max_workers=c.gpu_workers[1], start_billed=base.start_billed)
    o = base.overhead_sec
    if c.topology == "single":
        return [Stage(name="all", exec_s=m.pre_sec + m.gpu_sec + m.post_sec, **gpu)]
    return [Stage(name="pre", exec_s=m.pre_sec + o, max_workers=c.pre_max, **cpu),
            Stage(name="infer", exec_s=m.gpu_sec + 2 * o, **gpu),
            Stage(name="post", exec_s=m.post_sec + o, max_workers=c.post_max, **cpu)]


def _orchestrator_per_day(base: EstimateInputs, p: PricingProfile) -> float:
    return ORCHESTRATOR_WORKERS[0] * DAY_S * p.cpu_rate(base.orchestrator_vcpus, active=True)


def precheck(c: Candidate, m: MeasuredStages, base: EstimateInputs, limits: PlanLimits) -> str:
    """Why a candidate fails before any simulation ("" when it may pass)."""
    if c.account_workers() > limits.account_workers:
        return f"{c.account_workers()} workers in all, above the account limit {limits.account_workers}"
    for st in stages_of(c, m, base):
        if utilization(st, base.arrival_rate) >= 1 and base.requests_per_day > 0:
            return f"{st.name} cannot serve the traffic with {st.max_workers} max workers"
    return ""


def evaluate(c: Candidate, m: MeasuredStages, base: EstimateInputs, p: PricingProfile,
             limits: PlanLimits) -> Evaluated:
    """Simulate one candidate and judge it against the limits (no pruning: the brute force's reference)."""
    run = simulate_stages(base, p, stages_of(c, m, base))
    orch = _orchestrator_per_day(base, p) if c.orchestrator == "lb" else 0.0
    per_day = run.per_day + orch
    spend = run.spend_per_hour + orch / 24
    e = Evaluated(candidate=c, feasible=False, per_day=clean(per_day), per_month=clean(per_day * base.days_per_month),
                  p95_latency_s=run.latency_p95_s, mean_latency_s=run.latency_mean_s, spend_per_hour=clean(spend))
    if not run.servable:
        e.reason, e.per_day, e.per_month = "an endpoint cannot serve the traffic (utilization >= 1)", None, None
    elif c.account_workers() > limits.account_workers:
        e.reason = f"{c.account_workers()} workers in all, above the account limit {limits.account_workers}"
    elif run.latency_p95_s > limits.p95_latency_s:
        e.reason = f"p95 latency {run.latency_p95_s:.2f} s is above the {limits.p95_latency_s:g} s target"
    elif spend > limits.spend_limit_per_hour:
        e.reason = f"spends ${spend:,.2f}/hour, above the ${limits.spend_limit_per_hour:g}/hour spend limit"
    else:
        e.feasible = True
    return e


def rank_key(e: Evaluated) -> tuple:
    """Feasible first, then cheaper, faster, fewer workers, shorter idle timeouts (a full order: no ties)."""
    c = e.candidate
    return (not e.feasible, e.per_month if e.per_month is not None else math.inf,
            e.p95_latency_s if e.p95_latency_s is not None else math.inf, c.account_workers(), c.gpu_idle_s,
            c.cpu_idle_s, c.gpu_workers, c.pre_max, c.post_max, c.topology, c.orchestrator, c.profile)


def deployment_of(c: Candidate, m: MeasuredStages, base: EstimateInputs, p: PricingProfile) -> DeploySpec:
    try:
        return _deployment_of(c, m, base, p)
    except ValidationError as exc:  # e.g. a usage file's CPU instance that Runpod's serverless does not offer
        raise CostInputError(f"the chosen deployment is not a valid deploy spec: {validation_line(exc)}") from None


def _deployment_of(c: Candidate, m: MeasuredStages, base: EstimateInputs, p: PricingProfile) -> DeploySpec:
    if not p.gpu_pool:
        raise CostInputError(f"pricing profile {p.name!r} names no gpu_pool: add one to write a deployment")
    gpu = EndpointSpec(kind="gpu", gpu_pool=p.gpu_pool, workers=f"{c.gpu_workers[0]}:{c.gpu_workers[1]}",
                       idle_timeout_s=c.gpu_idle_s, image=placeholder_image("gpu"))
    if c.topology == "single":
        endpoints = {"all": gpu}
    else:
        def cpu(mx: int) -> EndpointSpec:
            return EndpointSpec(kind="cpu", instance=base.cpu_instance, workers=f"0:{mx}", idle_timeout_s=c.cpu_idle_s,
                                image=placeholder_image("cpu"))

        endpoints = {"pre": cpu(c.pre_max), "infer": gpu, "post": cpu(c.post_max)}
    if c.orchestrator == "lb":
        instance_vcpus(base.orchestrator_instance)
        endpoints["orchestrator"] = EndpointSpec(
            kind="cpu", instance=base.orchestrator_instance, idle_timeout_s=5, image=placeholder_image("cpu"),
            workers=f"{ORCHESTRATOR_WORKERS[0]}:{ORCHESTRATOR_WORKERS[1]}")
    return DeploySpec(version=1, topology=c.topology, orchestrator=c.orchestrator, endpoints=endpoints,
                      model=ModelSection(name=m.model, precision=m.precision))


def price_notes(profiles: list[PricingProfile]) -> list[str]:
    out = []
    for p in profiles:
        if p.illustrative:
            out.append(f"pricing profile {p.name!r}: ILLUSTRATIVE rates, not a price list")
        elif p.cpu_illustrative:
            out.append(f"pricing profile {p.name!r}: its CPU rates are illustrative "
                       f"({p.cpu_source or 'not published'})")
        out += [line for line in (p.staleness(), p.unshown()) if line]
    return out


def make_deploy_plan(base: EstimateInputs, profiles: dict[str, PricingProfile], measured: list[MeasuredStages],
                     limits: PlanLimits) -> DeployPlan:
    """Search the grid, rank, and pick the cheapest feasible deployment."""
    if not measured:
        raise CostInputError("plan: no GPU reports: give --from-report PROFILE=REPORT.json measured on a GPU class")
    if base.requests_per_day <= 0:
        raise CostInputError("plan: the usage file sets no traffic (requests_per_day must be above 0)")
    by_profile = {m.profile: m for m in measured}
    grid = candidates(measured, limits)
    out: list[Evaluated] = []
    simulated = 0
    for c in grid:
        m = by_profile[c.profile]
        why = precheck(c, m, base, limits)
        if why:
            out.append(Evaluated(candidate=c, feasible=False, reason=why))
            continue
        simulated += 1
        out.append(evaluate(c, m, base, profiles[c.profile], limits))
    out.sort(key=rank_key)
    plan = DeployPlan(requests_per_day=base.requests_per_day, active_hours=base.active_hours, limits=limits,
                      measured=measured, ranked=out, considered=len(grid), simulated=simulated,
                      notes=price_notes([profiles[m.profile] for m in measured]))
    if out and out[0].feasible:
        c = out[0].candidate
        plan.best = deployment_of(c, by_profile[c.profile], base, profiles[c.profile])
    else:
        reasons = sorted({e.reason for e in out if e.reason})
        plan.note = ("no deployment meets the limits: " + "; ".join(reasons[:3]) +
                     ("; ..." if len(reasons) > 3 else ""))
    return plan
