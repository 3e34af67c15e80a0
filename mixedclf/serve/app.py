"""`mixedclf serve`: the original design's HTTP endpoints over the same stage functions as `classify`.

One process tree: the event loop (validation, admission, postprocess, JSON), a spawn pool of CPU worker
processes (cleaning, counting, tokenizing: `mixedclf.engines.workers`), and one device thread fed by the
dynamic micro-batcher (`mixedclf.serve.batcher`), so concurrent requests share the device's forward passes.

    request ─▶ validate (422) ─▶ admit (503) ─▶ CPU pool: preprocess (504) ─▶ queue ─▶ device (504)
            ─▶ postprocess (event loop) ─▶ JSON + X-Stage-*-Ms / X-Cost-USD headers

`create_app(settings)` builds the app (model resolved, pricing loaded: errors surface before serving);
the lifespan loads the model, starts the pool and the batcher, and stops them in reverse on shutdown.
"""

from __future__ import annotations


import asyncio
import functools
import logging
import os
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from mixedclf import __version__
from mixedclf.costs import load_pricing
from mixedclf.engines.pool import start_worker_pool
from mixedclf.engines.workers import preprocess_task
from mixedclf.models.spec import ModelSpec, resolve_model
from mixedclf.serve.batcher import Delivery, MicroBatcher, QueueFull, ShuttingDown
from mixedclf.serve.metrics import CONTENT_TYPE_LATEST, ServeMetrics
from mixedclf.serve.settings import ServeSettings
from mixedclf.stages.postprocess import confidence_bucket, scores_from_logits
from mixedclf.stages.preprocess import PreprocessedBatch

log = logging.getLogger("uvicorn.error")

# Routes named in metrics (anything else is "other", so a scanner cannot blow up the label set).
PIPELINE_ROUTES = ("/classify", "/classify/batch", "/cpu_worker/runsync", "/gpu_worker/runsync")
KNOWN_ROUTES = frozenset(PIPELINE_ROUTES + ("/health", "/metrics", "/docs", "/openapi.json", "/redoc"))


# --- request and response bodies (also what /docs shows) --------------------------------------------------------
class TextIn(BaseModel):
    text: str = Field(description="The text to classify", examples=["The room was clean and the staff lovely."])


class TextsIn(BaseModel):
    texts: list[str] = Field(description="Texts to classify, answered in the same order")


class CleanedIn(BaseModel):
    cleaned_text: str = Field(description="Text already cleaned (e.g. by /cpu_worker/runsync); only tokenized")
    word_count: int | None = Field(default=None, ge=0, description="Echoed back; counted here when absent")


class RunpodTextIn(BaseModel):
    """Runpod serverless style: the job's input under "input"."""

    model_config = ConfigDict(extra="allow")
    input: TextIn
    id: str | None = None


class RunpodCleanedIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    input: CleanedIn
    id: str | None = None


class Prediction(BaseModel):
    label: str
    score: float
    confidence: str = Field(description="high (score > 0.8), medium (> 0.5) or low")
    scores: dict[str, float]
    word_count: int
    sentence_count: int
    char_count: int
    token_count: int
    truncated: bool


class Timings(BaseModel):
    preprocess: float
    queue: float
    inference: float
    postprocess: float
    total: float


class ClassifyOut(Prediction):
    model: str
    timings_ms: Timings
    batch_size: int = Field(description="Texts in the device batch this request rode in")
    cost_usd: float


class BatchOut(BaseModel):
    results: list[Prediction]
    model: str
    count: int
    timings_ms: Timings
    batch_size: int
    cost_usd: float


class CpuWorkerOut(BaseModel):
    cleaned_text: str
    word_count: int
    sentence_count: int
    char_count: int
    token_count: int
    truncated: bool


class ModelInfo(BaseModel):
    name: str
    kind: str
    labels: list[str]
    max_length: int
    device: str


class GpuWorkerOut(BaseModel):
    label: str
    score: float
    confidence: str
    predictions: list[dict[str, Any]] = Field(description="Every label with its score, best first")
    word_count: int
    token_count: int
    truncated: bool
    model_info: ModelInfo


class RunpodOut(BaseModel):
    id: str
    status: str = "COMPLETED"
    delayTime: int = Field(description="Milliseconds the job waited (queue), as Runpod reports it")
    executionTime: int = Field(description="Milliseconds of work (preprocess + inference + postprocess)")
    output: dict[str, Any]


# --- errors --------------------------------------------------------------------------------------------------
class ServeError(Exception):
    """An HTTP error with a clear message; `reason` is its label in mixedclf_rejected_total."""

    def __init__(self, status: int, detail: Any, reason: str, headers: dict[str, str] | None = None):
        super().__init__(detail if isinstance(detail, str) else str(detail))
        self.status = status
        self.detail = detail
        self.reason = reason
        self.headers = headers or {}
        self.runpod_id: str | None = None


def invalid(loc: list, msg: str, value: Any = None) -> ServeError:
    """A 422 shaped like FastAPI's own validation errors."""
    item = {"type": "value_error", "loc": ["body", *loc], "msg": msg}
    if value is not None:
        item["input"] = value
    return ServeError(422, [item], "invalid")


# --- the server's state ----------------------------------------------------------------------------------------
@dataclass
class PipelineOutcome:
    prep: PreprocessedBatch
    logits: np.ndarray
    delivery: Delivery
    timings_ms: dict[str, float]
    cost_usd: float
    gpu_only_cost_usd: float


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


def prediction_rows(
    logits: np.ndarray, prep: PreprocessedBatch, labels: tuple[str, ...], activation: str
) -> list[dict]:
    """Postprocess: logits -> one dict per text (label, score, bucket, all scores, counts)."""
    probs = scores_from_logits(logits, activation)
    best = probs.argmax(axis=1)
    score = probs[np.arange(len(probs)), best]
    buckets = confidence_bucket(score)
    rows = []
    for i in range(len(probs)):
        rows.append(
            {
                "label": labels[int(best[i])],
                "score": float(score[i]),
                "confidence": str(buckets[i]),
                "scores": {name: float(probs[i, j]) for j, name in enumerate(labels)},
                "word_count": int(prep.word_count[i]),
                "sentence_count": int(prep.sentence_count[i]),
                "char_count": int(prep.char_count[i]),
                "token_count": int(prep.lengths[i]),
                "truncated": bool(prep.truncated[i]),
            }
        )
    return rows


class ServerState:
    """Model, pool, batcher and metrics of one app; built by create_app, started by the lifespan."""

    def __init__(self, settings: ServeSettings, spec: ModelSpec, device, pricing):
        self.settings = settings
        self.spec = spec
        self.device = device
        self.pricing = pricing
        self.metrics = ServeMetrics(pricing.cpu_per_sec, pricing.gpu_per_sec)
        if settings.cpu_workers:
            self.cpu_workers = settings.cpu_workers
        else:
            from mixedclf.engines.local import default_cpu_workers

            self.cpu_workers = default_cpu_workers(device.type)
        self.torch_threads = settings.torch_threads or default_torch_threads(device.type, self.cpu_workers)
        self.max_batch_tokens = settings.max_batch_tokens or default_max_batch_tokens(device.type)
        self.pool: ProcessPoolExecutor | None = None
        self.batcher: MicroBatcher | None = None
        self.pool_restarts = 0
        self.status = "starting"
        self.started_at = time.time()
        self._tokenizer_json = ""
        self.metrics.info.labels(spec.name, str(device), pricing.name, str(self.cpu_workers)).set(1)

    # --- lifecycle ------------------------------------------------------------------------------------------
    def _start_pool(self) -> tuple[ProcessPoolExecutor, list]:
        return start_worker_pool(self.cpu_workers, self._tokenizer_json, self.spec.max_length, self.settings.clean)

    @asynccontextmanager
    async def lifespan(self, app: FastAPI):
        import torch

        from mixedclf.models.loading import load_model
        from mixedclf.models.tokenizer import tokenizer_json_and_pad_id
        from mixedclf.serve.device import DeviceStage
        from mixedclf.stages.inference import InferenceRunner

        s = self.settings
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        torch.set_num_threads(self.torch_threads)
        try:
            self._tokenizer_json, pad_id = await asyncio.to_thread(tokenizer_json_and_pad_id, self.spec)
            self.pool, ready = self._start_pool()
            module = await asyncio.to_thread(load_model, self.spec, self.device, s.precision)
            runner = InferenceRunner(module, self.device, len(self.spec.labels), pad_id)
            stage = DeviceStage(runner, s.max_batch_size, self.max_batch_tokens)
            await asyncio.gather(*map(asyncio.wrap_future, ready))
            sample, *_ = await loop.run_in_executor(self.pool, preprocess_task, ["Warm-up text for the device."])
            await asyncio.to_thread(stage.run_batch, [sample])  # first forward pass: allocations, kernels
            self.batcher = MicroBatcher(
                stage.run_batch,
                max_batch_size=s.max_batch_size,
                max_wait_ms=s.max_wait_ms,
                max_queue=s.max_queue,
                observer=self.metrics,
            )
            await self.batcher.start()
            self.status = "ok"
            log.info(
                "mixedclf serve: model %s (%s) on %s (%d torch thread(s)), %d CPU worker(s), batches of <= %d "
                "texts / %.1f ms; ready in %.1f s",
                self.spec.name, ", ".join(self.spec.labels), self.device, self.torch_threads, self.cpu_workers,
                s.max_batch_size, s.max_wait_ms, time.monotonic() - started,
            )
            yield
        finally:
            self.status = "stopping"
            if self.batcher is not None:
                await self.batcher.stop(s.graceful_timeout_s)
            if self.pool is not None:
                await asyncio.to_thread(self.pool.shutdown, True, cancel_futures=True)
            log.info("mixedclf serve: stopped")

    # --- stages ---------------------------------------------------------------------------------------------
    async def preprocess(self, texts: list[str], task: Callable) -> tuple[PreprocessedBatch, float]:
        """Runs on the CPU pool; returns the batch and the worker's busy seconds. 504 past the timeout."""
        loop = asyncio.get_running_loop()
        timeout = self.settings.stage_timeout_cpu
        for attempt in (1, 2):
            pool = self.pool
            try:
                prep, start, end, _pid = await asyncio.wait_for(
                    loop.run_in_executor(pool, task, texts), timeout
                )
                return prep, end - start
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

    async def infer(self, prep: PreprocessedBatch) -> Delivery:
        timeout = self.settings.stage_timeout_gpu
        try:
            return await asyncio.wait_for(self.batcher.submit(prep, len(prep)), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise ServeError(
                504, f"the inference stage (queue + device) took longer than {timeout:g} s (--stage-timeout-gpu)",
                "timeout_inference",
            ) from None

    async def run_pipeline(self, texts: list[str], task: Callable = preprocess_task) -> PipelineOutcome:
        """Admit, preprocess on the pool, batch on the device; the caller postprocesses."""
        if self.batcher is None or self.status != "ok":
            raise ServeError(503, "the server is not ready", "shutting_down", {"Retry-After": "1"})
        try:
            with self.batcher.admit(len(texts)):
                t0 = time.monotonic()
                prep, cpu_busy = await self.preprocess(texts, task)
                t1 = time.monotonic()
                delivery = await self.infer(prep)
                t2 = time.monotonic()
        except QueueFull as exc:
            raise ServeError(503, str(exc), "queue_full", {"Retry-After": str(exc.retry_after_s)}) from None
        except ShuttingDown as exc:
            raise ServeError(503, str(exc), "shutting_down", {"Retry-After": "1"}) from None
        except ServeError:
            raise
        except Exception as exc:  # noqa: BLE001 - a device failure: one line for the client, the trace in the log
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
        return PipelineOutcome(prep, share.logits, delivery, timings, cost, gpu_only)

    def finish(self, outcome: PipelineOutcome, post_start: float, request_start: float) -> dict[str, str]:
        """Bill the postprocess stage, complete the timings, and make the response headers."""
        post = time.monotonic() - post_start
        self.metrics.stage("postprocess", post)
        self.metrics.bill("postprocess", "cpu", post)
        outcome.cost_usd += post * self.pricing.cpu_per_sec
        outcome.gpu_only_cost_usd += post * self.pricing.gpu_per_sec
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
            "uptime_s": round(time.time() - self.started_at, 3),
        }


# --- ASGI middleware: request metrics and the body-size guard ---------------------------------------------------
class _MetricsMiddleware:
    """Counts every answer by route and status; refuses bodies larger than the limits could ever need (413)."""

    def __init__(self, app, state: ServerState):
        self.app = app
        self.state = state
        s = state.settings
        # A JSON string can spend 6 bytes (\uXXXX) on one character; plus room for keys and framing.
        self.max_body = s.max_batch_texts * (s.max_text_chars * 6 + 16) + 65536

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        route = path if path in KNOWN_ROUTES else "other"
        start = time.monotonic()
        status = {"code": 500}
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body:
                self.state.metrics.rejected.labels("too_large").inc()
                response = JSONResponse(
                    {"detail": f"request body of {int(value):,} bytes is larger than the limits allow "
                               f"({self.max_body:,} bytes)"},
                    status_code=413,
                )
                self.state.metrics.request_done(route, 413, time.monotonic() - start)
                return await response(scope, receive, send)

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if route != "/metrics":
                self.state.metrics.request_done(route, status["code"], time.monotonic() - start)


# --- the app ---------------------------------------------------------------------------------------------------
DESCRIPTION = """
Cost-aware text classification over HTTP. Requests arriving together share the device's forward passes
(dynamic micro-batching); cleaning, counting and tokenizing run on a pool of CPU worker processes.

Every pipeline response carries `X-Stage-Preprocess-Ms`, `X-Stage-Queue-Ms`, `X-Stage-Inference-Ms`,
`X-Stage-Postprocess-Ms`, `X-Total-Ms`, `X-Batch-Size` and `X-Cost-USD` (this request's pay-per-use cost at
the pricing profile's rates). 422: invalid input; 503 + Retry-After: the queue is full; 504: a stage timed out.
"""


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI app for these settings. Raises ModelError / CostInputError before anything starts."""
    settings = settings or ServeSettings()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from mixedclf.models.loading import resolve_device

    spec = resolve_model(settings.model)
    device = resolve_device(settings.device)
    pricing = load_pricing(settings.pricing, settings.profile)
    state = ServerState(settings, spec, device, pricing)
    app = FastAPI(
        title="mixedclf",
        version=__version__,
        description=DESCRIPTION,
        lifespan=state.lifespan,
    )
    app.state.server = state
    app.add_middleware(_MetricsMiddleware, state=state)
    labels, activation = spec.labels, spec.activation
    pipeline_errors = {
        422: {"description": "Invalid input (empty, too long, too many texts, wrong shape)"},
        503: {"description": "Queue full or not ready; see Retry-After"},
        504: {"description": "A stage timed out"},
    }

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, exc: ServeError) -> JSONResponse:
        state.metrics.rejected.labels(exc.reason).inc()
        body: dict[str, Any] = {"detail": exc.detail}
        if exc.runpod_id is not None:
            message = exc.detail if isinstance(exc.detail, str) else "; ".join(d["msg"] for d in exc.detail)
            body.update(id=exc.runpod_id, status="FAILED", error=message)
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_body(request: Request, exc: RequestValidationError):
        state.metrics.rejected.labels("invalid").inc()
        return await request_validation_exception_handler(request, exc)

    def runpod_wrap(job_id: str, outcome: PipelineOutcome, output: dict) -> dict:
        t = outcome.timings_ms
        return {
            "id": job_id,
            "status": "COMPLETED",
            "delayTime": int(round(t["queue"])),
            "executionTime": int(round(t["preprocess"] + t["inference"] + t["postprocess"])),
            "output": output,
        }

    async def guarded(runpod_id: str | None, work):
        try:
            return await work()
        except ServeError as exc:
            exc.runpod_id = runpod_id
            raise

    @app.post("/classify", response_model=None, responses={200: {"model": ClassifyOut}, **pipeline_errors},
              summary="Classify one text (whole pipeline)")
    async def classify(body: TextIn) -> JSONResponse:
        request_start = time.monotonic()
        state.check_text(body.text, ["text"])
        outcome = await state.run_pipeline([body.text])
        post_start = time.monotonic()
        row = prediction_rows(outcome.logits, outcome.prep, labels, activation)[0]
        headers = state.finish(outcome, post_start, request_start)
        row.update(model=spec.name, timings_ms=outcome.timings_ms, batch_size=outcome.delivery.batch_rows,
                   cost_usd=outcome.cost_usd)
        state.metrics.texts.labels("/classify").inc()
        return JSONResponse(row, headers=headers)

    @app.post("/classify/batch", response_model=None, responses={200: {"model": BatchOut}, **pipeline_errors},
              summary="Classify several texts (answered in order)")
    async def classify_batch(body: TextsIn) -> JSONResponse:
        request_start = time.monotonic()
        state.check_texts(body.texts)
        outcome = await state.run_pipeline(body.texts)
        post_start = time.monotonic()
        rows = prediction_rows(outcome.logits, outcome.prep, labels, activation)
        headers = state.finish(outcome, post_start, request_start)
        state.metrics.texts.labels("/classify/batch").inc(len(rows))
        return JSONResponse(
            {"results": rows, "model": spec.name, "count": len(rows), "timings_ms": outcome.timings_ms,
             "batch_size": outcome.delivery.batch_rows, "cost_usd": outcome.cost_usd},
            headers=headers,
        )

    @app.post("/cpu_worker/runsync", response_model=None,
              responses={200: {"model": CpuWorkerOut | RunpodOut}, **pipeline_errors},
              summary="The CPU worker alone: clean, count and tokenize one text")
    async def cpu_worker(body: TextIn | RunpodTextIn) -> JSONResponse:
        request_start = time.monotonic()
        runpod_id = (body.id or f"sync-{uuid.uuid4()}") if isinstance(body, RunpodTextIn) else None
        text = body.input.text if runpod_id else body.text

        async def work() -> JSONResponse:
            state.check_text(text, ["input", "text"] if runpod_id else ["text"])
            if state.status != "ok":
                raise ServeError(503, "the server is not ready", "shutting_down", {"Retry-After": "1"})
            try:
                with state.batcher.admit(1):
                    prep, busy = await state.preprocess([text], preprocess_task)
            except QueueFull as exc:
                raise ServeError(503, str(exc), "queue_full", {"Retry-After": str(exc.retry_after_s)}) from None
            except ShuttingDown as exc:
                raise ServeError(503, str(exc), "shutting_down", {"Retry-After": "1"}) from None
            elapsed = time.monotonic() - request_start
            state.metrics.stage("preprocess", elapsed)
            state.metrics.bill("preprocess", "cpu", busy)
            state.metrics.texts.labels("/cpu_worker/runsync").inc()
            output = {
                "cleaned_text": prep.cleaned[0],
                "word_count": int(prep.word_count[0]),
                "sentence_count": int(prep.sentence_count[0]),
                "char_count": int(prep.char_count[0]),
                "token_count": int(prep.lengths[0]),
                "truncated": bool(prep.truncated[0]),
            }
            cost = busy * state.pricing.cpu_per_sec
            headers = {
                "X-Stage-Preprocess-Ms": f"{elapsed * 1000:.3f}",
                "X-Total-Ms": f"{(time.monotonic() - request_start) * 1000:.3f}",
                "X-Cost-USD": f"{cost:.8g}",
                "X-Cost-GPU-Only-USD": f"{busy * state.pricing.gpu_per_sec:.8g}",
            }
            if runpod_id:
                body_out = {"id": runpod_id, "status": "COMPLETED", "delayTime": 0,
                            "executionTime": int(round(elapsed * 1000)), "output": output}
                return JSONResponse(body_out, headers=headers)
            return JSONResponse(output, headers=headers)

        return await guarded(runpod_id, work)

    @app.post("/gpu_worker/runsync", response_model=None,
              responses={200: {"model": GpuWorkerOut | RunpodOut}, **pipeline_errors},
              summary="The GPU worker alone: tokenize cleaned text (CPU pool) and run the model")
    async def gpu_worker(body: CleanedIn | RunpodCleanedIn) -> JSONResponse:
        request_start = time.monotonic()
        runpod_id = (body.id or f"sync-{uuid.uuid4()}") if isinstance(body, RunpodCleanedIn) else None
        job = body.input if runpod_id else body

        async def work() -> JSONResponse:
            state.check_text(job.cleaned_text, ["input", "cleaned_text"] if runpod_id else ["cleaned_text"],
                             "cleaned_text")
            outcome = await state.run_pipeline([job.cleaned_text], functools.partial(preprocess_task, clean="none"))
            post_start = time.monotonic()
            row = prediction_rows(outcome.logits, outcome.prep, labels, activation)[0]
            headers = state.finish(outcome, post_start, request_start)
            state.metrics.texts.labels("/gpu_worker/runsync").inc()
            output = {
                "label": row["label"],
                "score": row["score"],
                "confidence": row["confidence"],
                "predictions": [
                    {"label": name, "score": value}
                    for name, value in sorted(row["scores"].items(), key=lambda kv: -kv[1])
                ],
                "word_count": job.word_count if job.word_count is not None else row["word_count"],
                "token_count": row["token_count"],
                "truncated": row["truncated"],
                "model_info": state.model_info(),
            }
            if runpod_id:
                return JSONResponse(runpod_wrap(runpod_id, outcome, output), headers=headers)
            return JSONResponse(output, headers=headers)

        return await guarded(runpod_id, work)

    @app.get("/health", summary="Readiness, model, queue and device-batch statistics")
    async def health() -> JSONResponse:
        info = state.health()
        return JSONResponse(info, status_code=200 if info["status"] == "ok" else 503)

    @app.get("/metrics", summary="Prometheus metrics (text exposition format)")
    async def metrics() -> Response:
        return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app


def run_server(settings: ServeSettings) -> None:
    """Build the app and serve it with uvicorn until SIGINT/SIGTERM (one process: the model is loaded once)."""
    import uvicorn

    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=settings.graceful_timeout_s,
    )
