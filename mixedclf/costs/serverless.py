"""Closed forms for one serverless worker: idle seconds and cold starts per request.

Exact for one worker with no cold start serving Poisson arrivals first come first served (M/G/1), unrounded:
the runpod billing model (mixedclf.costs.runpod_sim) is checked against them there (tests/test_costs_runpod.py)
and simulates everything they leave out (cold starts that delay requests, several workers, caps, rounding).

A worker stays billed for an idle timeout T after its last request. Requests arrive at random (a Poisson
process) at rate lambda = requests_per_day / active seconds and a warm worker serves them in turn (busy D
seconds each, utilization rho = lambda D). A fraction (1 - rho) of requests leave the worker with nothing to
do (M/G/1); the gap G to the next request is then Exp(lambda), so per request
    expected idle seconds  = (1 - rho) E[min(G, T)] = (1 - rho) (1 - exp(-lambda T)) / lambda
    expected cold starts   = (1 - rho) P(G > T)     = (1 - rho) exp(-lambda T)

Pure functions (no pydantic, no torch). Formulas and assumptions: docs/cost-model.md.
"""

from __future__ import annotations

import math


def idle_per_request(lam: float, timeout: float, busy: float = 0.0) -> float:
    """(1 - rho) E[min(G, T)] for G ~ Exp(lam), rho = lam x busy (clamped to 1); T when lam == 0."""
    if timeout <= 0:
        return 0.0
    if lam <= 0:
        return timeout
    return max(0.0, 1.0 - lam * busy) * -math.expm1(-lam * timeout) / lam


def cold_starts_per_request(lam: float, timeout: float, busy: float = 0.0) -> float:
    """(1 - rho) P(G > T) for G ~ Exp(lam), rho = lam x busy (clamped to 1); 1 when lam == 0."""
    if lam <= 0:
        return 1.0
    return max(0.0, 1.0 - lam * busy) * math.exp(-lam * timeout)
