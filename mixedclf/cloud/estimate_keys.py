"""A deploy spec as the `estimate` keys it fixes (the usage file's names), so `estimate --deploy SPEC` prices
exactly what is deployed: idle timeouts, workers, the orchestrator, and the GPU pool's pricing profile."""

from __future__ import annotations

from typing import Any

from mixedclf.costs.deployment import DeploySpec

# GPU pool -> pricing profile of configs/pricing.toml (the pool's cheapest-listed card class).
POOL_PROFILES = {
    "ADA_24": "runpod-4090-pro", "AMPERE_24": "runpod-l4", "ADA_48_PRO": "runpod-l40s", "AMPERE_80": "runpod-a100",
    "ADA_80_PRO": "runpod-h100-pro", "HOPPER_141": "runpod-h200-pro", "BLACKWELL_180": "runpod-b200",
}


def estimate_keys(spec: DeploySpec) -> tuple[dict[str, Any], list[str]]:
    """(usage-file keys the spec sets, notes on what the estimate cannot yet take from it)."""
    eps = spec.endpoints
    notes: list[str] = []
    keys: dict[str, Any] = {"billing": "runpod",
                            "orchestrator_workers": (eps["orchestrator"].worker_range.min
                                                     if "orchestrator" in eps else 0)}
    if spec.topology == "single":
        notes.append("topology single: the estimate still models the split stages; only the GPU endpoint's "
                     "settings were taken")
        gpu = eps["all"]
    else:
        gpu = eps["infer"]
        keys["idle_timeout_pre"] = float(eps["pre"].idle_timeout_s)
        keys["idle_timeout_post"] = float(eps["post"].idle_timeout_s)
        pre, post = eps["pre"].worker_range, eps["post"].worker_range
        keys["cpu_workers"] = (pre.min, pre.max)
        if pre != post:
            notes.append(f"pre workers {pre} and post workers {post} differ: the estimate has one CPU worker range "
                         f"and takes pre's")
        cpu_instances = {eps[r].instance or "" for r in ("pre", "post")}
        notes.append(f"CPU instance {', '.join(sorted(cpu_instances))} is not priced per vCPU yet: the profile's CPU "
                     "rate is used")
    keys["idle_timeout_gpu"] = float(gpu.idle_timeout_s)
    keys["gpu_workers"] = (gpu.worker_range.min, gpu.worker_range.max)
    if gpu.kind == "gpu" and gpu.gpu_pool in POOL_PROFILES:
        keys["profile"] = POOL_PROFILES[gpu.gpu_pool]
    elif gpu.kind == "gpu":
        notes.append(f"GPU pool {gpu.gpu_pool} has no pricing profile: the profile in effect is used")
    return keys, notes
