"""`classify --engine runpod --deploy SPEC`: the spec and its state file as the target a batch run sends jobs to.

The state file (`deploy apply`, or `deploy local` while it runs) says where each stage endpoint is; the spec says
what its workers are, so each is priced as deployed: the GPU pool's pricing profile (estimate_keys.POOL_PROFILES;
the run's --profile where the pool has none), a CPU endpoint per vCPU of its instance where the profile prices so.
"""

from __future__ import annotations

import os
from pathlib import Path

from mixedclf.cloud.estimate_keys import POOL_PROFILES
from mixedclf.cloud.provision import read_state, spec_digest
from mixedclf.cloud.spec import load_spec, state_path
from mixedclf.costs import CostInputError, load_pricing
from mixedclf.costs.deployment import DeploySpec
from mixedclf.errors import InputError
from mixedclf.io.runpod_jobs import JobEndpoint, RunpodTarget

# Jobs in flight at most, whatever the endpoints could take: each holds a micro-batch in memory here.
MAX_IN_FLIGHT = 64
# Seconds a job may wait in the queue (a cold start) beyond its endpoint's execution timeout before it is sent again.
QUEUE_GRACE_S = 300.0


def _profile_for(spec: DeploySpec, profile: str) -> str:
    gpu = spec.endpoints["all" if spec.topology == "single" else "infer"]
    return POOL_PROFILES.get(gpu.gpu_pool or "", profile)


def runpod_target(spec_path: Path, pricing_path: Path | None = None, profile: str = "reference") -> RunpodTarget:
    """InputError (one line) when the spec or its state file is missing, stale or incomplete."""
    spec = load_spec(spec_path)
    state = read_state(spec_path)
    if state.spec_sha256 != spec_digest(spec_path):
        raise InputError(f"{state_path(spec_path)} was written for another version of {spec_path}",
                         hint="run mixedclf deploy apply (or deploy local) again")
    roles = spec.stage_roles()
    missing = [r for r in roles if r not in state.endpoints]
    if missing:
        raise InputError(f"{state_path(spec_path)}: no {', '.join(missing)} endpoint",
                         hint="run mixedclf deploy apply again")
    key = os.environ.get("RUNPOD_API_KEY", "")
    if state.target != "local" and not key:
        raise InputError("--engine runpod needs RUNPOD_API_KEY to call the endpoints", hint="export RUNPOD_API_KEY")
    priced_as = _profile_for(spec, profile)
    try:
        pricing = load_pricing(pricing_path, priced_as)
    except CostInputError as exc:
        raise InputError(str(exc)) from None
    endpoints = {}
    for role in roles:
        ep, where = spec.endpoints[role], state.endpoints[role]
        if ep.kind == "gpu":
            rate, source = pricing.gpu_per_sec, f"{priced_as} (GPU pool {ep.gpu_pool})"
        else:
            rate, source = pricing.cpu_rate(ep.vcpus), f"{priced_as} ({ep.instance})"
        endpoints[role] = JobEndpoint(role=role, id=where.id, url=where.url, worker=ep.kind, rate_per_s=rate,
                                      rate_source=source, idle_timeout_s=float(ep.idle_timeout_s),
                                      jobs_per_worker=ep.jobs_per_worker, max_workers=ep.worker_range.max)
    device = endpoints["all" if "all" in endpoints else "infer"]
    # Locally each stage is one process; enough jobs in flight that every stage of the chain has one.
    workers = 1 if state.target == "local" else device.max_workers
    in_flight = max(len(roles), min(MAX_IN_FLIGHT, workers * device.jobs_per_worker))
    timeout = max(spec.endpoints[r].execution_timeout_s for r in roles) + QUEUE_GRACE_S
    return RunpodTarget(spec=str(spec_path), target=state.target, model=spec.model.name,
                        precision=spec.model.precision, endpoints=endpoints, key=key, in_flight=in_flight,
                        job_timeout_s=timeout)
