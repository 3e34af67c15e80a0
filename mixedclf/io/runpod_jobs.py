"""Runpod's queue data plane as a client: run a job on an endpoint and wait for it, retrying with backoff, and
run many jobs with a bound on how many are in flight.

`POST {base}/{endpoint_id}/run` (or /runsync), then `GET {base}/{endpoint_id}/status/{job}` until the job is
COMPLETED, FAILED, CANCELLED or TIMED_OUT. A job that fails, times out, or cannot be sent (HTTP 429/5xx,
unreachable) is sent again after 0.5 s, 1 s, 2 s ... up to `retries` times; its last error is then one line.
Each answer's `delayTime` and `executionTime` (ms, as Runpod reports them) are kept for the bill, per worker
(`workerId`, where the answer names one).

Stdlib only: the orchestrator (`mixedclf serve --stages-from-env`) and the batch engine (engines/runpod.py) both use it.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mixedclf.errors import InputError

FINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")
RETRY_HTTP = (429, 500, 502, 503, 504)


class JobFailed(Exception):
    """A job that did not complete after its retries; `status` is the HTTP status the orchestrator answers."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class JobTimes:
    """What Runpod reported for the jobs of one endpoint (ms), and how many sends it took."""

    jobs: int = 0
    attempts: int = 0
    delay_ms: float = 0.0
    execution_ms: float = 0.0
    execution_ms_each: list[float] = field(default_factory=list)
    # workerId -> [jobs, execution ms]: what a per-worker bill needs ("" where the answer names no worker)
    by_worker: dict[str, list[float]] = field(default_factory=dict)
    failed: int = 0  # answers that ended FAILED / CANCELLED / TIMED_OUT: their execution is billed too

    def add(self, answer: dict, attempts: int) -> None:
        """A final answer (`attempts`: sends it took; 0 for an answer that did not complete)."""
        if answer.get("status") == "COMPLETED":
            self.jobs += 1
        else:
            self.failed += 1
        self.attempts += attempts
        self.delay_ms += float(answer.get("delayTime") or 0)
        execution = float(answer.get("executionTime") or 0)
        self.execution_ms += execution
        self.execution_ms_each.append(execution)
        worker = self.by_worker.setdefault(str(answer.get("workerId") or ""), [0, 0.0])
        worker[0] += 1
        worker[1] += execution


@dataclass
class DataPlane:
    base_url: str
    key: str = ""
    timeout_s: float = 600.0
    retries: int = 3
    backoff_s: float = 0.5
    poll_s: float = 0.2
    sync: bool = True  # /runsync first (one round trip for short jobs); False: /run, then poll
    retry_failed: bool = True  # False: a FAILED job (the handler's own error) is answered at once, not sent again
    sleep: Callable[[float], None] = time.sleep
    times: dict[str, JobTimes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # map() adds times from threads

    def _call(self, method: str, url: str, body: Any = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                answer = json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise JobFailed(503 if exc.code in RETRY_HTTP else 502, f"{url}: HTTP {exc.code}") from None
        except OSError as exc:
            raise JobFailed(503, f"{url}: unreachable ({getattr(exc, 'reason', exc)})") from None
        return answer if isinstance(answer, dict) else {}

    def _once(self, endpoint_id: str, payload: dict) -> dict:
        url = f"{self.base_url}/{endpoint_id}"
        answer = self._call("POST", f"{url}/{'runsync' if self.sync else 'run'}", {"input": payload})
        deadline = time.monotonic() + self.timeout_s
        while answer.get("status") not in FINAL:
            if not answer.get("id") or time.monotonic() > deadline:
                raise JobFailed(504, f"{endpoint_id}: job not finished in {self.timeout_s:.0f} s "
                                     f"({answer.get('status')})")
            self.sleep(self.poll_s)
            answer = self._call("GET", f"{url}/status/{answer['id']}")
        return answer

    def run(self, endpoint_id: str, payload: dict, name: str | None = None) -> dict:
        """The job's output; JobFailed with the last error once every retry is spent."""
        return self.run_answer(endpoint_id, payload, name).get("output") or {}

    def run_answer(self, endpoint_id: str, payload: dict, name: str | None = None) -> dict:
        """The COMPLETED job's whole answer (output, delayTime, executionTime); JobFailed as `run`."""
        last: JobFailed | None = None
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                self.sleep(self.backoff_s * 2 ** (attempt - 2))
            try:
                answer = self._once(endpoint_id, payload)
            except JobFailed as exc:
                last = exc
                if exc.status not in (503, 504):
                    break
                continue
            with self._lock:
                self.times.setdefault(name or endpoint_id, JobTimes()).add(answer, attempt if answer["status"]
                                                                           == "COMPLETED" else 0)
            if answer["status"] == "COMPLETED":
                return answer
            last = JobFailed(502, f"{name or endpoint_id}: {answer['status']}: "
                                  f"{answer.get('error') or 'no error given'}")
            if answer["status"] == "FAILED" and not self.retry_failed:
                break
        assert last is not None
        raise last

    def map(self, endpoint_id: str, payloads: list[dict], in_flight: int, name: str | None = None) -> list[dict]:
        """Every payload as a job, at most `in_flight` at once; outputs in the payloads' order."""
        with ThreadPoolExecutor(max(1, in_flight)) as pool:
            return list(pool.map(lambda p: self.run(endpoint_id, p, name), payloads))

    def healthy(self, endpoint_ids: list[str]) -> bool:
        try:
            for endpoint_id in endpoint_ids:
                self._call("GET", f"{self.base_url}/{endpoint_id}/health")
        except JobFailed:
            return False
        return True


@dataclass(frozen=True)
class JobEndpoint:
    """One deployed stage endpoint as a batch client needs it: where it is, and what its workers cost."""

    role: str  # pre | infer | post | all
    id: str
    url: str  # {data plane base}/{id}, as the deploy state file holds it
    worker: str  # cpu | gpu
    rate_per_s: float  # one worker's flex rate, dollars per second
    rate_source: str  # the pricing profile the rate comes from
    idle_timeout_s: float
    jobs_per_worker: int = 1
    max_workers: int = 1


@dataclass(frozen=True)
class RunpodTarget:
    """A deployment a batch run sends its jobs to (built from a deploy spec and its state file by cloud/)."""

    spec: str  # the spec file, for messages
    target: str  # "runpod" (deploy apply) or "local" (deploy local)
    model: str
    precision: str
    endpoints: dict[str, JobEndpoint]  # pre, infer, post (split) or all (single)
    key: str = ""  # RUNPOD_API_KEY; never printed
    in_flight: int = 8  # jobs sent and not yet answered, at most
    job_timeout_s: float = 600.0
    backoff_s: float = 0.5  # before a job is sent again: this, then twice as long each time

    def check_model(self, model: str) -> None:
        """The deployed model labels the rows: its labels and name are the ones written, so --model must name it."""
        if model != self.model:
            raise InputError(f"--model {model} but {self.spec} deploys model {self.model}",
                             hint="leave --model out: the deployed model labels the rows")

    @property
    def chain(self) -> list[str]:
        """The roles a job goes through, in order."""
        return ["all"] if "all" in self.endpoints else ["pre", "infer", "post"]

    def base_url(self) -> str:
        """The data plane's base: every endpoint's url less its id (one base for all, as one deployment has)."""
        bases = {e.url.rstrip("/").rsplit("/", 1)[0] for e in self.endpoints.values()}
        if len(bases) != 1:
            raise ValueError(f"the stage endpoints are on {len(bases)} data planes: {', '.join(sorted(bases))}")
        return bases.pop()
