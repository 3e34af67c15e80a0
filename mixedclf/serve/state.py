"""The state of one `mixedclf serve` app: model, CPU pool, micro-batcher, metrics, and its lifespan.

`ServerState` is built by `create_app` (mixedclf.serve.app) and started by its `lifespan`: load the model,
start the CPU worker pool and the batcher, and stop them in reverse on shutdown. Between the two it runs the
stage contract's steps for the routes (core.pipeline: rows -> sequences on the pool with a timeout and one pool
restart, sequences -> logits through the batcher with a timeout, logits -> the response's rows), accounts each
request's cost, validates texts, and reports health. With `remote` (serve --stages-from-env, serve/remote.py) the
same steps are jobs on deployed stage endpoints, and nothing is loaded here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from fastapi import FastAPI

from mixedclf import __version__
from mixedclf.core.answers import AnswerStore
from mixedclf.core.pipeline import StagePipeline
from mixedclf.core.sequences import Sequences
from mixedclf.models.spec import ModelSpec
from mixedclf.runtime.pool import start_worker_pool
from mixedclf.runtime.workers import preprocess_task
from mixedclf.serve.batcher import Delivery, MicroBatcher, QueueFull, ShuttingDown
from mixedclf.serve.errors import ServeError, invalid
from mixedclf.serve.jobs import JobStore
from mixedclf.serve.metrics import ServeMetrics
from mixedclf.serve.settings import ServeSettings

if TYPE_CHECKING:
    from mixedclf.serve.remote import RemoteStages

log = logging.getLogger("uvicorn.error")


@dataclass
class PipelineOutcome:
    seqs: Any  # Sequences; a remote `all` stage's TextsPart
    logits: np.ndarray
    delivery: Delivery
    timings_ms: dict[str, float]
    cost_usd: float
    gpu_only_cost_usd: float
    rows: list[dict] | None = None  # the output rows, once made (a remote `all` stage makes them with the logits)
    post_busy_s: float | None = None  # billed seconds of the postprocess where not this process's (a `post` job)


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def default_torch_threads(device_type: str, cpu_workers: int) -> int:
    """On a CPU device the model shares the cores with the pool and the event loop: give it what they leave.

    torch's default (one thread per core) makes its OpenMP threads spin against the CPU workers; on a
    2-core machine that turned a 4 ms forward pass of a tiny model into 40-60 ms. On an accelerator the
    host threads only launch kernels, and torch's own default stands.
    """
    import torch

    if device_type != "cpu":
        return torch.get_num_threads()
    return max(1, (os.cpu_count() or 1) - cpu_workers - 1)


def default_max_batch_tokens(device_type: str) -> int:
    """On a CPU every padded token costs its full price, so a smaller budget splits a batch into length-sorted
    forward passes with little padding (measured: about 30% less server CPU per request with MiniLM-L6 on a
    2-core machine); an accelerator computes padding in parallel and prefers one big pass."""
    return 2048 if device_type == "cpu" else 8192


class ServerState:
    """Model, pool, batcher and metrics of one app; built by create_app, started by the lifespan."""

    def __init__(self, settings: ServeSettings, spec: ModelSpec, device, pricing, answers: AnswerStore | None = None,
                 remote: RemoteStages | None = None):
        self.settings = settings
        self.remote = remote  # the stage endpoints every stage runs on (--stages-from-env); None: this process
        self.answers = answers  # texts answered without the device (a prediction cache), when given
        self.spec = spec
        self.device = device
        self.pricing = pricing
        self.metrics = ServeMetrics(pricing.cpu_per_sec, pricing.gpu_per_sec)
        if remote is not None:
            self.cpu_workers = 0  # nothing runs here but the routes: the stages are remote
        elif settings.cpu_workers:
            self.cpu_workers = settings.cpu_workers
        else:
            from mixedclf.runtime.device import default_cpu_workers

            self.cpu_workers = default_cpu_workers(device.type)
        self.torch_threads = 0 if remote is not None else (
            settings.torch_threads or default_torch_threads(device.type, self.cpu_workers))
        self.max_batch_tokens = settings.max_batch_tokens or default_max_batch_tokens(device.type)
        self.pool: ProcessPoolExecutor | None = None
        self.pipeline: StagePipeline | None = None  # the stage contract, once the model is loaded
        self.batcher: MicroBatcher | None = None
        self.pool_restarts = 0
        # As many async jobs run at once as fit in one device batch, so they can share it.
        self.jobs = JobStore(settings.max_jobs, settings.job_ttl, runners=settings.max_batch_size)
        self.status = "starting"  # then "ok", or "failed"; "stopping" once shutdown begins
        self.start_error: BaseException | None = None
        self.on_start_failed: Callable[[], None] = lambda: None
        self.started_at = time.time()
        self._tokenizer_json = ""
        self.cache = None  # the prediction cache (io/prediction_cache.py), once the model is loaded, when enabled
        self.reader = lambda: None  # the cache's reader for the CPU workers: texts it answers are not tokenized
        self.metrics.info.labels(spec.name, str(device), pricing.name, str(self.cpu_workers)).set(1)

    # --- lifecycle ------------------------------------------------------------------------------------------
    def _start_pool(self) -> tuple[ProcessPoolExecutor, list]:
        return start_worker_pool(self.cpu_workers, self._tokenizer_json, self.spec.max_length, self.settings.clean)

    @asynccontextmanager
    async def lifespan(self, app: FastAPI):
        """Serve at once and start in the background: the socket answers while the model loads (/ping 204, then
        200 once ready: Runpod's load-balancer health contract), pipeline routes answer 503 + Retry-After until
        then. A start that fails sets status "failed" and calls `on_start_failed` (run_server stops uvicorn)."""
        start = self._start() if self.remote is None else self._start_remote()
        starting = asyncio.create_task(start, name="mixedclf-start")
        try:
            yield
        finally:
            self.status = "stopping"
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            await self.jobs.stop()
            if self.batcher is not None:
                await self.batcher.stop(self.settings.graceful_timeout_s)
            if self.pool is not None:
                await asyncio.to_thread(self.pool.shutdown, True, cancel_futures=True)
            if self.cache is not None:
                self.cache.close()
            if self.remote is not None:
                self.remote.calls.shutdown(wait=False, cancel_futures=True)
            log.info("mixedclf serve: stopped")

    def _warm_postprocess(self, sample, logits) -> None:
        """The routes' postprocess once before "ready": pyarrow imports pandas on its first table, which made the
        first request after "ready" take 0.4 s (1.6 s on a loaded 2-core machine) instead of a millisecond."""
        self.pipeline.predictions(sample, logits)

    async def _start(self) -> None:
        """Load the tokenizer and the model, start and warm the CPU pool, warm the device and the postprocess,
        start the batcher. A failure is one line in the log, status "failed" and `on_start_failed()`."""
        import torch

        from mixedclf.models.backend import answer_run_key, load_model
        from mixedclf.models.tokenizer import tokenizer_json_and_pad_id
        from mixedclf.serve.device import DeviceStage

        s = self.settings
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        torch.set_num_threads(self.torch_threads)
        try:
            self._tokenizer_json, pad_id = await asyncio.to_thread(tokenizer_json_and_pad_id, self.spec)
            self.pool, ready = self._start_pool()
            model = await asyncio.to_thread(load_model, self.spec, self.device, s.precision, s.backend)
            store = self.answers  # given by the caller (create_app(answers=...)), else the prediction cache
            if store is None and not s.no_cache:
                from mixedclf.io.prediction_cache import PredictionCache
                from mixedclf.models.cache import prediction_cache_path

                self.cache = store = PredictionCache(s.cache or prediction_cache_path(), s.cache_max_bytes,
                                                     warn=lambda line: log.warning("mixedclf serve: %s", line))
            key = answer_run_key(self.spec, model, s.clean, self._tokenizer_json) if store is not None else b""
            if self.cache is not None:
                cache = self.cache
                self.reader = lambda: cache.reader(key, len(self.spec.labels))
            self.pipeline = StagePipeline(model.module, self.device, self.spec, pad_id,
                                          batch_size=s.max_batch_size, max_batch_tokens=self.max_batch_tokens,
                                          answers=store, run_key=key)
            stage = DeviceStage(self.pipeline)
            await asyncio.gather(*map(asyncio.wrap_future, ready))
            sample, *_ = await loop.run_in_executor(self.pool, preprocess_task, ["Warm-up text for the device."])
            # first forward pass (allocations, kernels), never answered from the store; then the postprocess
            logits = await asyncio.to_thread(self.pipeline.warm_up, sample)
            await asyncio.to_thread(self._warm_postprocess, sample, logits)
            self.batcher = MicroBatcher(
                stage.run_batch,
                max_batch_size=s.max_batch_size,
                max_wait_ms=s.max_wait_ms,
                max_queue=s.max_queue,
                observer=self.metrics,
            )
            await self.batcher.start()
            await self.jobs.start()
            self.status = "ok"
            log.info(
                "mixedclf serve: model %s (%s) on %s (%s on %s; %d torch thread(s)), %d CPU worker(s), "
                "batches of <= %d texts / %.1f ms; ready in %.1f s",
                self.spec.name, ", ".join(self.spec.labels), self.device, model.precision.reason,
                model.backend, self.torch_threads, self.cpu_workers,
                s.max_batch_size, s.max_wait_ms, time.monotonic() - started,
            )
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - one line in the log, then the server stops
            self._start_failed(exc)

    def _start_failed(self, exc: BaseException) -> None:
        from mixedclf.errors import exit_code_and_line

        self.status = "failed"
        self.start_error = exc
        log.error("mixedclf serve: start failed: %s", exit_code_and_line(exc)[1])
        self.on_start_failed()

    async def _start_remote(self) -> None:
        """Start the batcher (its batches are jobs on the stage endpoints), then wait until every stage endpoint
        has answered /health once: /ping answers 204 until then, 200 after."""
        s, remote = self.settings, self.remote
        assert remote is not None
        try:
            self.batcher = MicroBatcher(remote.run_batch, max_batch_size=s.max_batch_size, max_wait_ms=s.max_wait_ms,
                                        max_queue=s.max_queue, observer=self.metrics, thread_name="mixedclf-remote",
                                        max_in_flight=remote.infer_in_flight)
            await self.batcher.start()
            await self.jobs.start()
            log.info("mixedclf serve: waiting for the stage endpoints (%s)", remote.describe())
            while not await asyncio.to_thread(remote.healthy):
                await asyncio.sleep(1.0)
            self.status = "ok"
            log.info("mixedclf serve: model %s on the stage endpoints %s; batches of <= %d texts / %.1f ms",
                     self.spec.name, remote.describe(), s.max_batch_size, s.max_wait_ms)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - one line in the log, then the server stops
            self._start_failed(exc)

    # --- stages ---------------------------------------------------------------------------------------------
    async def preprocess(self, texts: list[str], clean: str | None = None) -> tuple[Sequences, float]:
        """The rows -> sequences step on the CPU pool (or a `pre` job); returns the sequences and the worker's busy
        seconds. `clean`: the route's cleaning mode, None for the server's. 504 past the timeout."""
        if self.remote is not None:
            return await self._remote_preprocess(texts, clean)
        loop = asyncio.get_running_loop()
        timeout = self.settings.stage_timeout_cpu
        # The reader's answers are filed under the server's cleaning mode: a route cleaning otherwise tokenizes all.
        reader = self.reader() if clean in (None, self.settings.clean) else None
        task = functools.partial(preprocess_task, clean=clean, reader=reader)
        for attempt in (1, 2):
            pool = self.pool
            try:
                seqs, start, end, _pid, _cpu = await asyncio.wait_for(
                    loop.run_in_executor(pool, task, texts), timeout
                )
                return seqs, end - start
            except (asyncio.TimeoutError, TimeoutError):
                raise ServeError(
                    504, f"the preprocess stage took longer than {timeout:g} s (--stage-timeout-cpu)",
                    "timeout_preprocess",
                ) from None
            except BrokenProcessPool:
                # A worker died (killed, out of memory): one fresh pool for everyone, then retry once.
                if attempt == 2:
                    raise ServeError(500, "the CPU worker pool failed twice on this request", "error") from None
                if self.pool is pool:
                    pool.shutdown(wait=False, cancel_futures=True)
                    self.pool, _ready = self._start_pool()
                    self.pool_restarts += 1
                    log.warning("mixedclf serve: a CPU worker died; pool restarted")
        raise AssertionError("unreachable")

    async def _remote_preprocess(self, texts: list[str], clean: str | None) -> tuple[Sequences, float]:
        remote = self.remote
        assert remote is not None
        if remote.single:
            raise ServeError(404, "this deployment has no separate pre stage (topology single: its one endpoint "
                                  "runs the whole pipeline)", "no_stage")
        return await self._remote(lambda: remote.pre(texts, clean), self.settings.stage_timeout_cpu,
                                  "the pre stage", "--stage-timeout-cpu", "timeout_preprocess")

    async def _remote(self, call: Callable, timeout: float, what: str, option: str, reason: str):
        """A stage job from the event loop: its HTTP status on failure, 504 past the timeout."""
        from mixedclf.io.runpod_jobs import JobFailed

        assert self.remote is not None
        try:
            loop = asyncio.get_running_loop()
            return await asyncio.wait_for(loop.run_in_executor(self.remote.calls, call), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise ServeError(504, f"{what} took longer than {timeout:g} s ({option})", reason) from None
        except JobFailed as exc:
            raise ServeError(exc.status, str(exc), "stage_failed") from None

    async def infer(self, seqs: Any) -> Delivery:
        timeout = self.settings.stage_timeout_gpu
        try:
            return await asyncio.wait_for(self.batcher.submit(seqs, len(seqs)), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise ServeError(
                504, f"the inference stage (queue + device) took longer than {timeout:g} s (--stage-timeout-gpu)",
                "timeout_inference",
            ) from None

    async def run_pipeline(self, texts: list[str], clean: str | None = None) -> PipelineOutcome:
        """Admit, preprocess on the pool, batch on the device; the caller postprocesses (`predictions`).
        `clean`: the route's cleaning mode (None: the server's)."""
        if self.batcher is None or self.status != "ok":
            raise ServeError(503, "the server is not ready", "shutting_down", {"Retry-After": "1"})
        try:
            with self.batcher.admit(len(texts)):
                t0 = time.monotonic()
                if self.remote is not None and self.remote.single:
                    from mixedclf.serve.remote import TextsPart

                    seqs, cpu_busy = TextsPart(texts, clean or self.settings.clean), 0.0
                else:
                    seqs, cpu_busy = await self.preprocess(texts, clean)
                t1 = time.monotonic()
                delivery = await self.infer(seqs)
                t2 = time.monotonic()
        except QueueFull as exc:
            raise ServeError(503, str(exc), "queue_full", {"Retry-After": str(exc.retry_after_s)}) from None
        except ShuttingDown as exc:
            raise ServeError(503, str(exc), "shutting_down", {"Retry-After": "1"}) from None
        except ServeError:
            raise
        except Exception as exc:  # noqa: BLE001 - a device failure: one line for the client, the trace in the log
            from mixedclf.io.runpod_jobs import JobFailed

            if isinstance(exc, JobFailed):  # a stage endpoint's answer: its status, its one line
                raise ServeError(exc.status, str(exc), "stage_failed") from None
            log.exception("mixedclf serve: inference failed")
            raise ServeError(500, f"inference failed: {type(exc).__name__}: {exc}", "error") from None
        share = delivery.result
        m = self.metrics
        m.stage("preprocess", t1 - t0)
        m.stage("queue", delivery.queue_s)
        m.stage("inference", delivery.batch_s)
        m.bill("preprocess", "cpu", cpu_busy)
        timings = {
            "preprocess": _ms(t1 - t0),
            "queue": _ms(delivery.queue_s),
            "inference": _ms(delivery.batch_s),
            "postprocess": 0.0,
            "total": _ms(t2 - t0),
        }
        cost = cpu_busy * self.pricing.cpu_per_sec + share.busy_s * self.pricing.gpu_per_sec
        gpu_only = (cpu_busy + share.busy_s) * self.pricing.gpu_per_sec
        return PipelineOutcome(seqs, share.logits, delivery, timings, cost, gpu_only, rows=share.rows)

    async def predictions(self, outcome: PipelineOutcome) -> list[dict]:
        """The logits -> output rows step: one dict per text, in order (a `post` job where the stages are
        remote; made already where a remote `all` stage ran the whole pipeline)."""
        if outcome.rows is not None:
            outcome.post_busy_s = 0.0  # billed with the `all` job
            return outcome.rows
        remote = self.remote
        if remote is None:
            return self.pipeline.predictions(outcome.seqs, outcome.logits)
        rows, outcome.post_busy_s = await self._remote(lambda: remote.post(outcome.seqs, outcome.logits),
                                                       self.settings.stage_timeout_cpu, "the post stage",
                                                       "--stage-timeout-cpu", "timeout_postprocess")
        return rows

    def finish(self, outcome: PipelineOutcome, post_start: float, request_start: float) -> dict[str, str]:
        """Bill the postprocess stage, complete the timings, and make the response headers."""
        post = time.monotonic() - post_start
        busy = post if outcome.post_busy_s is None else outcome.post_busy_s
        self.metrics.stage("postprocess", post)
        self.metrics.bill("postprocess", "cpu", busy)
        outcome.cost_usd += busy * self.pricing.cpu_per_sec
        outcome.gpu_only_cost_usd += busy * self.pricing.gpu_per_sec
        t = outcome.timings_ms
        t["postprocess"] = _ms(post)
        t["total"] = _ms(time.monotonic() - request_start)
        return {
            "X-Stage-Preprocess-Ms": f"{t['preprocess']:.3f}",
            "X-Stage-Queue-Ms": f"{t['queue']:.3f}",
            "X-Stage-Inference-Ms": f"{t['inference']:.3f}",
            "X-Stage-Postprocess-Ms": f"{t['postprocess']:.3f}",
            "X-Total-Ms": f"{t['total']:.3f}",
            "X-Batch-Size": str(outcome.delivery.batch_rows),
            "X-Cost-USD": f"{outcome.cost_usd:.8g}",
            "X-Cost-GPU-Only-USD": f"{outcome.gpu_only_cost_usd:.8g}",
        }

    # --- validation -----------------------------------------------------------------------------------------
    def check_text(self, text: str, loc: list, name: str = "text") -> None:
        limit = self.settings.max_text_chars
        if not text.strip():
            raise invalid(loc, f"{name} is empty: give at least one non-blank character")
        if len(text) > limit:
            raise invalid(loc, f"{name} is {len(text):,} characters long; the limit is {limit:,} (--max-text-chars)")

    def check_texts(self, texts: list[str]) -> None:
        limit = self.settings.max_batch_texts
        if not texts:
            raise invalid(["texts"], "texts is empty: give at least one text")
        if len(texts) > limit:
            raise invalid(["texts"], f"texts holds {len(texts):,} texts; the limit is {limit:,} (--max-batch-texts)")
        for i, text in enumerate(texts):
            self.check_text(text, ["texts", i], f"texts[{i}]")

    def model_info(self) -> dict:
        return {
            "name": self.spec.name,
            "kind": self.spec.kind,
            "labels": list(self.spec.labels),
            "max_length": self.spec.max_length,
            "device": str(self.device),
        }

    def health(self) -> dict:
        b = self.batcher
        return {
            "status": self.status,
            "version": __version__,
            "model": self.model_info(),
            "cpu_workers": self.cpu_workers,
            "torch_threads": self.torch_threads,
            "pool_restarts": self.pool_restarts,
            "pricing_profile": self.pricing.name,
            "settings": {
                "max_batch_size": self.settings.max_batch_size,
                "max_batch_tokens": self.max_batch_tokens,
                "max_wait_ms": self.settings.max_wait_ms,
                "max_queue": self.settings.max_queue,
                "max_text_chars": self.settings.max_text_chars,
                "max_batch_texts": self.settings.max_batch_texts,
            },
            "queue": {
                "requests": b.queued_requests if b else 0,
                "texts": b.queued_rows if b else 0,
                "inflight_texts": b.inflight_rows if b else 0,
            },
            "device_batches": b.stats.as_dict() if b else {},
            "jobs": len(self.jobs),
            "uptime_s": round(time.time() - self.started_at, 3),
            "cache": self._cache_health(),
            "stages": dict(self.remote.ids) if self.remote is not None else None,
        }

    def _cache_health(self) -> dict | None:
        """The prediction cache's counts since start; None when it is off (--no-cache, or not yet opened)."""
        if self.cache is None:
            return None
        st = self.cache.stats
        return {"path": str(self.cache.path), "enabled": self.cache.enabled, "hits": st.hits,
                "untokenized": st.untokenized, "misses": st.misses, "stored": st.stored, "evicted": st.evicted,
                "disabled": st.disabled}
