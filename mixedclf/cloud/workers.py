"""`mixedclf worker --stage pre|infer|post|all`: a Runpod queue worker (runpod 1.12 `serverless.start`).

A job carries a whole batch of texts (or of sequences, or of logits), so batch use pays one job per batch, not
per text. The device stages are async with a concurrency modifier: the jobs runpod lets in at once wait in
DeviceQueue and go to the model together, so concurrent small jobs share one forward pass. A bad job answers
{"error": one line} (runpod marks it FAILED) and the worker lives on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from mixedclf.cloud.stages import Stages, load_stages
from mixedclf.core.sequences import Sequences
from mixedclf.core.wire import StageInputError
from mixedclf.errors import InputError

STAGES = ("pre", "infer", "post", "all")
DEFAULT_DEVICE_JOBS = 8
log = logging.getLogger("mixedclf.worker")


class DeviceQueue:
    """One device call at a time; every job that arrived meanwhile rides in the next call."""

    def __init__(self, stages: Stages):
        self.stages = stages
        self._pending: list[tuple[Any, asyncio.Future]] = []
        self._lock = asyncio.Lock()

    async def logits(self, seqs: Sequences) -> tuple[Any, int]:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((seqs, future))
        async with self._lock:
            if not future.done():
                taken, self._pending = self._pending, []
                try:
                    results = await asyncio.to_thread(self.stages.logits_many, [b for b, _ in taken])
                except Exception as exc:
                    for _, f in taken:
                        f.set_exception(exc)
                else:
                    for (_, f), logits in zip(taken, results, strict=True):
                        f.set_result((logits, len(taken)))
        return future.result()


def _job_input(job: Any) -> Any:
    return job.get("input") if isinstance(job, dict) else None


def build_handler(stage: str, stages: Stages) -> Callable:
    """The runpod handler for one stage: sync for CPU stages, async (sharing device calls) for infer and all."""
    if stage == "pre":
        return _guard(stages.pre)
    if stage == "post":
        return _guard(stages.post)
    queue: DeviceQueue | None = None

    async def infer(payload: Any) -> dict:
        nonlocal queue
        queue = queue or DeviceQueue(stages)
        seqs = stages.infer_input(payload)
        logits, jobs = await queue.logits(seqs)
        return stages.scored(seqs, logits, jobs)

    if stage == "infer":
        return _guard_async(infer)

    async def whole(payload: Any) -> dict:
        prepared = await asyncio.to_thread(stages.pre, payload)
        scored = await infer(prepared)
        return {**stages.post(scored), "device_batch_jobs": scored["device_batch_jobs"]}

    return _guard_async(whole)


def _error(exc: Exception) -> dict:
    if isinstance(exc, StageInputError):
        return {"error": str(exc)}
    log.exception("job failed")
    return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()}


def _guard(fn: Callable[[Any], dict]) -> Callable[[dict], dict]:
    def handler(job: dict) -> dict:
        try:
            return fn(_job_input(job))
        except Exception as exc:
            return _error(exc)

    return handler


def _guard_async(fn: Callable[[Any], Any]) -> Callable[[dict], Any]:
    async def handler(job: dict) -> dict:
        try:
            return await fn(_job_input(job))
        except Exception as exc:
            return _error(exc)

    return handler


def jobs_at_once(stage: str, jobs_per_worker: int | None) -> int:
    """CPU stages take one job at a time (a job is already a batch); device stages take several to share."""
    if jobs_per_worker is not None:
        if jobs_per_worker < 1:
            raise InputError(f"--jobs-per-worker must be at least 1 (got {jobs_per_worker})")
        return jobs_per_worker
    return DEFAULT_DEVICE_JOBS if stage in ("infer", "all") else 1


def watch_parent() -> None:
    """Started by deploy local (MIXEDCLF_PARENT_PID): end with it, however it ends."""
    if os.environ.get("MIXEDCLF_PARENT_PID", "").isdigit():
        from mixedclf.runtime.parent_watch import exit_with_parent

        exit_with_parent(int(os.environ["MIXEDCLF_PARENT_PID"]))


def start_worker(stage: str, model: str, precision: str, jobs_per_worker: int | None, runpod_args: list[str]) -> None:
    """Load the stage, then hand the process to runpod (it exits when runpod's loop or local test ends). The
    orchestrator is no queue worker: `mixedclf worker --stage orchestrator` is `serve --stages-from-env`."""
    if stage not in STAGES:
        raise InputError(f"--stage must be one of {', '.join(STAGES)}, orchestrator (got {stage!r})")
    watch_parent()
    concurrency = jobs_at_once(stage, jobs_per_worker)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one job per CPU worker process: no thread fan-out
    try:
        import runpod
    except ImportError:
        raise InputError("mixedclf worker needs the runpod package", hint="pip install 'mixedclf[runpod]'") from None
    stages = load_stages(stage, model, precision)
    handler = build_handler(stage, stages)
    sys.argv = [sys.argv[0], *runpod_args]  # runpod reads its own flags (--test_input, --rp_serve_api ...)
    runpod.serverless.start({"handler": handler, "concurrency_modifier": lambda _current: concurrency})
