"""Runpod-style async jobs: `POST /<worker>/run` answers `{"id", "status": "IN_QUEUE"}` at once, and
`GET /<worker>/status/{id}` answers IN_QUEUE, IN_PROGRESS, COMPLETED (with `output`) or FAILED (with `error`).

The store is bounded: at most `max_jobs` jobs are held, queued, running or finished. A finished job is kept
`ttl_s` seconds, then forgotten (its status is a 404). When the store is full, the oldest finished job whose
result was already read is let go first; if there is none, /run is refused (503 + Retry-After) rather than
dropping a result nobody has seen. `runners` tasks take jobs in arrival order and run them through the same
pipeline as the sync routes, so async jobs share device batches with everything else; a job that meets a full
server queue waits (IN_QUEUE) and tries again instead of failing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from mixedclf.serve.errors import ServeError

log = logging.getLogger("uvicorn.error")

# What a job's work returns: the output, the ms it waited inside the pipeline, and the ms of work.
JobResult = tuple[dict, float, float]


class JobStoreFull(Exception):
    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass
class Job:
    id: str
    worker: str
    work: Callable[[], Awaitable[JobResult]] | None
    submitted: float
    status: str = "IN_QUEUE"
    finished: float | None = None
    output: dict | None = None
    error: str | None = None
    delay_ms: float = 0.0
    execution_ms: float = 0.0
    read: bool = field(default=False)  # a client has seen its final status

    @property
    def done(self) -> bool:
        return self.status in ("COMPLETED", "FAILED")

    def public(self) -> dict:
        """The job as Runpod's /status shows it."""
        body: dict = {"id": self.id, "status": self.status}
        if self.done:
            body.update(delayTime=int(round(self.delay_ms)), executionTime=int(round(self.execution_ms)))
            if self.status == "COMPLETED":
                body["output"] = self.output
            else:
                body["error"] = self.error
        return body


class JobStore:
    def __init__(self, max_jobs: int, ttl_s: float, runners: int, clock: Callable[[], float] = time.monotonic):
        self.max_jobs = max_jobs
        self.ttl_s = ttl_s
        self.runners = runners
        self.clock = clock
        self._jobs: dict[str, Job] = {}
        self._queue: asyncio.Queue[Job] | None = None
        self._tasks: list[asyncio.Task] = []

    def __len__(self) -> int:
        return len(self._jobs)

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._tasks = [asyncio.create_task(self._run_forever(), name=f"mixedclf-job-{i}") for i in range(self.runners)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for job in self._jobs.values():
            if not job.done:
                self._fail(job, "the server shut down before the job finished")

    # --- submit and look up -----------------------------------------------------------------------------------
    def submit(self, worker: str, work: Callable[[], Awaitable[JobResult]]) -> Job:
        if self._queue is None:
            raise ServeError(503, "the server is not ready", "shutting_down", {"Retry-After": "1"})
        self._purge()
        if len(self._jobs) >= self.max_jobs and not self._evict_one_read():
            raise JobStoreFull(
                f"job store full: {len(self._jobs):,} jobs held (--max-jobs {self.max_jobs}); read finished "
                f"results with /status or wait for them to expire (--job-ttl {self.ttl_s:g} s)",
                self._retry_after_s(),
            )
        job = Job(str(uuid.uuid4()), worker, work, self.clock())
        self._jobs[job.id] = job
        self._queue.put_nowait(job)
        return job

    def get(self, worker: str, job_id: str) -> Job | None:
        self._purge()
        job = self._jobs.get(job_id)
        if job is None or job.worker != worker:
            return None
        if job.done:
            job.read = True
        return job

    def _purge(self) -> None:
        now = self.clock()
        expired = [k for k, j in self._jobs.items() if j.finished is not None and now - j.finished >= self.ttl_s]
        for key in expired:
            del self._jobs[key]

    def _evict_one_read(self) -> bool:
        for key, job in self._jobs.items():  # insertion order: the oldest first
            if job.done and job.read:
                del self._jobs[key]
                return True
        return False

    def _retry_after_s(self) -> int:
        finished = [j.finished for j in self._jobs.values() if j.finished is not None]
        if not finished:
            return 1
        return max(1, math.ceil(min(finished) + self.ttl_s - self.clock()))

    # --- running ----------------------------------------------------------------------------------------------
    def _fail(self, job: Job, message: str) -> None:
        job.status, job.error, job.finished, job.work = "FAILED", message, self.clock(), None

    async def _run_forever(self) -> None:
        while True:
            job = await self._queue.get()
            if job.id in self._jobs:
                await self._run(job)

    async def _run(self, job: Job) -> None:
        while True:
            job.status = "IN_PROGRESS"
            started = self.clock()
            try:
                output, pipeline_wait_ms, work_ms = await job.work()
            except ServeError as exc:
                if exc.reason == "queue_full":  # busy, not broken: wait in the queue and try again
                    job.status = "IN_QUEUE"
                    await asyncio.sleep(float(exc.headers.get("Retry-After", 1)))
                    continue
                detail = exc.detail if isinstance(exc.detail, str) else "; ".join(d["msg"] for d in exc.detail)
                self._fail(job, detail)
                return
            except asyncio.CancelledError:
                self._fail(job, "the server shut down before the job finished")
                raise
            except Exception as exc:  # noqa: BLE001 - one line for the client, the trace in the log
                log.exception("mixedclf serve: async job %s failed", job.id)
                self._fail(job, f"{type(exc).__name__}: {exc}")
                return
            job.delay_ms = (started - job.submitted) * 1000 + pipeline_wait_ms
            job.execution_ms = work_ms
            job.status, job.output, job.finished, job.work = "COMPLETED", output, self.clock(), None
            return
