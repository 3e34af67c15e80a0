"""What Runpod bills for a batch run's jobs (`classify --engine runpod`), from what its data plane reported.

Runpod bills each worker "from when a worker starts until it fully stops, rounded up to the nearest second"
(https://docs.runpod.io/serverless/pricing), at the endpoint's flex rate. From the jobs' answers this counts,
per worker (`workerId`): its jobs' `executionTime` (failed attempts included: they ran too) plus the endpoint's
idle timeout once after its last job, rounded up to the whole second. What the answers cannot show is named in
the bill's `excludes`: the cold start inside each `delayTime` (which also holds queue waiting), and any idle gap
between one worker's jobs. A worker that ran jobs at once (jobs per worker > 1) is counted once per job, so its
figure is an upper bound there. Jobs whose answers name no worker are counted as one worker's (one idle timeout):
a lower bound where several ran. Numbers only.
"""

from __future__ import annotations

import math

from pydantic import BaseModel

from mixedclf.costs.accounting import clean

BILLING_MODEL = ("runpod: per worker, jobs' executionTime + the endpoint's idle timeout, rounded up to the whole "
                 "second, at the flex rate")
EXCLUDES = ("cold starts (inside delayTime, with queue waiting), idle gaps between one worker's jobs, the "
            "orchestrator (a batch run calls the stage endpoints itself)")
SOURCE = "https://docs.runpod.io/serverless/pricing"


class EndpointRate(BaseModel):
    """How one endpoint is priced: its worker class, flex rate ($/s per worker) and where the rate comes from."""

    role: str  # pre | infer | post | all
    endpoint_id: str
    worker: str  # cpu | gpu
    rate_per_s: float
    rate_source: str  # the pricing profile (and, for a CPU instance, its vCPUs)
    idle_timeout_s: float


class WorkerBill(BaseModel):
    worker_id: str  # "" where the data plane named no worker: all its jobs are counted as one worker's
    jobs: int
    execution_s: float
    billed_s: int  # execution + idle timeout, rounded up
    usd: float


class EndpointJobBill(BaseModel):
    rate: EndpointRate
    jobs: int
    failed_attempts: int
    sends: int
    delay_s: float  # summed over jobs: queue waiting and cold starts, shown, not billed here
    execution_s: float
    workers: list[WorkerBill]
    billed_s: int
    usd: float


class RunpodJobBill(BaseModel):
    billing_model: str = BILLING_MODEL
    excludes: str = EXCLUDES
    source: str = SOURCE
    endpoints: list[EndpointJobBill]
    usd: float
    estimate_usd: float  # the same jobs priced ideally (busy seconds x rate), for comparison
    estimate_model: str = "ideal: the jobs' executionTime x the same rates, no idle timeout, no rounding"


def worker_bill(worker_id: str, jobs: int, execution_ms: float, idle_timeout_s: float, rate: float) -> WorkerBill:
    execution_s = execution_ms / 1000.0
    billed = math.ceil(round(execution_s + idle_timeout_s, 6)) if jobs else 0  # 6 places: 1.0000000001 s is 1 s
    return WorkerBill(worker_id=worker_id, jobs=jobs, execution_s=clean(execution_s), billed_s=billed,
                      usd=clean(billed * rate))


def endpoint_bill(rate: EndpointRate, *, jobs: int, failed: int, sends: int, delay_ms: float,
                  by_worker: dict[str, list[float]]) -> EndpointJobBill:
    """`by_worker`: workerId -> [answers, execution ms], as io.runpod_jobs.JobTimes keeps them."""
    workers = [worker_bill(w, int(n), ms, rate.idle_timeout_s, rate.rate_per_s)
               for w, (n, ms) in sorted(by_worker.items())]
    billed = sum(w.billed_s for w in workers)
    return EndpointJobBill(rate=rate, jobs=jobs, failed_attempts=failed, sends=sends, delay_s=clean(delay_ms / 1e3),
                           execution_s=clean(sum(w.execution_s for w in workers)), workers=workers, billed_s=billed,
                           usd=clean(billed * rate.rate_per_s))


def job_bill(endpoints: list[EndpointJobBill]) -> RunpodJobBill:
    estimate = sum(e.execution_s * e.rate.rate_per_s for e in endpoints)
    return RunpodJobBill(endpoints=endpoints, usd=clean(sum(e.usd for e in endpoints)), estimate_usd=clean(estimate))
