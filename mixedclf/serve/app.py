"""`mixedclf serve`: the original design's HTTP endpoints over the same stage functions as `classify`.

One process tree: the event loop (validation, admission, postprocess, JSON), a spawn pool of CPU worker
processes (cleaning, counting, tokenizing: `mixedclf.runtime.workers`), and one device thread fed by the
dynamic micro-batcher (`mixedclf.serve.batcher`), so concurrent requests share the device's forward passes.

    request ─▶ validate (422) ─▶ admit (503) ─▶ CPU pool: preprocess (504) ─▶ queue ─▶ device (504)
            ─▶ postprocess (event loop) ─▶ JSON + X-Stage-*-Ms / X-Cost-USD headers

`create_app(settings)` builds the app (model resolved, pricing loaded: errors surface before serving);
the lifespan loads the model, starts the pool and the batcher, and stops them in reverse on shutdown.

This module holds the app factory and the routes. The rest lives beside it: `state` (ServerState: the
lifespan, the stages with their timeouts, cost accounting, validation, health), `schemas` (request and
response bodies), `errors` (ServeError, what a 422 may show), `middleware` (request metrics), `guards` (the
bearer key, the body's size and deadline), `strict_json` (bodies are RFC 8259 JSON), `jobs` (Runpod's async
/run + /status), `protocol` (uvicorn's options and the request-head deadline).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline

from mixedclf import __version__
from mixedclf.core.answers import AnswerStore
from mixedclf.costs import load_pricing
from mixedclf.models.spec import resolve_model
from mixedclf.serve.batcher import QueueFull, ShuttingDown
from mixedclf.serve.errors import ServeError, invalid, public_errors
from mixedclf.serve.guards import BearerAuth, BodyGuard
from mixedclf.serve.jobs import JobResult, JobStoreFull
from mixedclf.serve.metrics import CONTENT_TYPE_LATEST
from mixedclf.serve.middleware import MetricsMiddleware
from mixedclf.serve.protocol import uvicorn_options
from mixedclf.serve.schemas import (
    BatchOut,
    ClassifyOut,
    CleanedIn,
    CpuWorkerOut,
    GpuWorkerOut,
    JobAcceptedOut,
    JobStatusOut,
    RunpodCleanedIn,
    RunpodOut,
    RunpodTextIn,
    TextIn,
    TextsIn,
)
from mixedclf.serve.settings import ServeSettings
from mixedclf.serve.state import PipelineOutcome, ServerState
from mixedclf.serve.strict_json import StrictJSONRoute

# --- the app ---------------------------------------------------------------------------------------------------
DESCRIPTION = """
Cost-aware text classification over HTTP. Requests arriving together share the device's forward passes
(dynamic micro-batching); cleaning, counting and tokenizing run on a pool of CPU worker processes.

Every pipeline response carries `X-Stage-Preprocess-Ms`, `X-Stage-Queue-Ms`, `X-Stage-Inference-Ms`,
`X-Stage-Postprocess-Ms`, `X-Total-Ms`, `X-Batch-Size` and `X-Cost-USD` (this request's pay-per-use cost at
the pricing profile's rates). 400: the body is not text; 401: no or wrong API key (when the server has one);
408: the request arrived too slowly; 413: the body is too large or holds too many JSON values; 422: invalid
input; 503 + Retry-After: the queue is full or the model is still loading; 504: a stage timed out. Every route
but /health and /ping needs `Authorization: Bearer <key>` when the server was started with --api-key.
"""


# /docs groups the routes by these tags, in this order.
OPENAPI_TAGS = [
    {"name": "classify", "description": "The whole pipeline: clean, tokenize (CPU pool), the model (device), "
                                        "labels and scores."},
    {"name": "workers", "description": "The original design's two serverless workers, plain or Runpod style "
                                       "(`{\"input\": ...}`), answered synchronously."},
    {"name": "async jobs", "description": "Runpod's asynchronous pair: `/run` answers a job id at once, "
                                          "`/status/{id}` until COMPLETED or FAILED."},
    {"name": "operations", "description": "Health for load balancers (`/ping`: 204 starting, 200 ready), "
                                          "readiness and statistics, Prometheus metrics. No API key needed for "
                                          "`/ping` and `/health`."},
]


def check_unicode(text: str, loc: list, name: str = "text") -> None:
    """A text the tokenizer gets as sent (cleaned_text, or every text under --clean none) must be valid Unicode:
    a lone surrogate (a \\udXXX escape without its pair) has no UTF-8 form, and the tokenizer fails on it.
    Standard cleaning drops such code points, so the other routes never hand one over."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise invalid(loc, f"{name} holds a lone surrogate (\\u{ord(text[exc.start]):04x}) at character "
                           f"{exc.start}, which is not valid Unicode: send the whole pair or leave it out") from None


def create_app(settings: ServeSettings | None = None, answers: AnswerStore | None = None) -> FastAPI:
    """The FastAPI app for these settings (`answers`: texts answered without the device, a prediction cache).
    Raises ModelError / CostInputError before anything starts."""
    settings = settings or ServeSettings()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from mixedclf.models.backend import resolve_backend
    from mixedclf.models.device import resolve_device

    spec = resolve_model(settings.model)
    pricing = load_pricing(settings.pricing, settings.profile)
    remote = None
    if settings.stages_from_env:  # every stage on a deployed endpoint: no model, no pool here
        from mixedclf.models.device import Device
        from mixedclf.serve.remote import RemoteStages

        remote = RemoteStages.from_env(labels=len(spec.labels), clean=settings.clean)
        device = Device("remote")
    else:
        device = resolve_device(settings.device, resolve_backend(settings.precision, settings.backend, spec))
    state = ServerState(settings, spec, device, pricing, answers, remote)

    def check(text: str, loc: list, name: str = "text", as_sent: bool = False) -> None:
        """The text limits, and valid Unicode where the text reaches the tokenizer uncleaned."""
        state.check_text(text, loc, name)
        if as_sent or settings.clean == "none":
            check_unicode(text, loc, name)

    def error_doc(description: str, detail: Any) -> dict:
        return {"description": description, "content": {"application/json": {"example": {"detail": detail}}}}

    invalid_doc = [{"type": "value_error", "loc": ["body", "text"],
                    "msg": "text is 12,345 characters long; the limit is 10,000 (--max-text-chars)"}]

    # /docs and /redoc from the Swagger UI and ReDoc files the fastapi-offline package installs, not a CDN:
    # a server without internet access still shows its documentation.
    app = FastAPIOffline(
        title="mixedclf",
        version=__version__,
        description=DESCRIPTION,
        lifespan=state.lifespan,
        openapi_tags=OPENAPI_TAGS,
    )
    app.state.server = state
    app.router.route_class = StrictJSONRoute
    reject = state.metrics.reject
    # add_middleware wraps: the last added runs first. Metrics see every answer, the key is checked before
    # the body is read.
    app.add_middleware(BodyGuard, max_body=settings.max_body_bytes(), timeout_s=settings.body_timeout,
                       max_items=settings.max_request_items, on_reject=reject)
    if settings.api_key:
        app.add_middleware(BearerAuth, api_key=settings.api_key, on_reject=reject)
    app.add_middleware(MetricsMiddleware, state=state)
    pipeline_errors = {
        422: error_doc("Invalid input (empty, too long, too many texts, wrong shape)", invalid_doc),
        503: error_doc("Queue full or not ready; see Retry-After",
                       "server busy: 1024 texts in flight, 1 more would pass --max-queue 1024"),
        504: error_doc("A stage timed out",
                       "the inference stage (queue + device) took longer than 30 s (--stage-timeout-gpu)"),
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
    async def _invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        state.metrics.rejected.labels("invalid").inc()
        return JSONResponse({"detail": public_errors(exc.errors())}, status_code=422)

    @app.exception_handler(JobStoreFull)
    async def _jobs_full(request: Request, exc: JobStoreFull) -> JSONResponse:
        state.metrics.rejected.labels("jobs_full").inc()
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(exc.retry_after_s)})

    @app.post("/classify", tags=["classify"], response_model=None,
              responses={200: {"model": ClassifyOut}, **pipeline_errors},
              summary="Classify one text (whole pipeline)")
    async def classify(body: TextIn) -> JSONResponse:
        request_start = time.monotonic()
        check(body.text, ["text"])
        outcome = await state.run_pipeline([body.text])
        post_start = time.monotonic()
        row = (await state.predictions(outcome))[0]
        headers = state.finish(outcome, post_start, request_start)
        row.update(model=spec.name, timings_ms=outcome.timings_ms, batch_size=outcome.delivery.batch_rows,
                   cost_usd=outcome.cost_usd)
        state.metrics.texts.labels("/classify").inc()
        return JSONResponse(row, headers=headers)

    @app.post("/classify/batch", tags=["classify"], response_model=None,
              responses={200: {"model": BatchOut}, **pipeline_errors},
              summary="Classify several texts (answered in order)")
    async def classify_batch(body: TextsIn) -> JSONResponse:
        request_start = time.monotonic()
        state.check_texts(body.texts)
        if settings.clean == "none":
            for i, text in enumerate(body.texts):
                check_unicode(text, ["texts", i], f"texts[{i}]")
        outcome = await state.run_pipeline(body.texts)
        post_start = time.monotonic()
        rows = await state.predictions(outcome)
        headers = state.finish(outcome, post_start, request_start)
        state.metrics.texts.labels("/classify/batch").inc(len(rows))
        return JSONResponse(
            {"results": rows, "model": spec.name, "count": len(rows), "timings_ms": outcome.timings_ms,
             "batch_size": outcome.delivery.batch_rows, "cost_usd": outcome.cost_usd},
            headers=headers,
        )

    async def cpu_job(text: str, request_start: float) -> tuple[dict, dict[str, str], float]:
        """The CPU worker's work on one validated text: (output, headers, seconds of work)."""
        if state.status != "ok":
            raise ServeError(503, "the server is not ready", "shutting_down", {"Retry-After": "1"})
        try:
            with state.batcher.admit(1):
                seqs, busy = await state.preprocess([text])
                prep = seqs.rows()
        except QueueFull as exc:
            raise ServeError(503, str(exc), "queue_full", {"Retry-After": str(exc.retry_after_s)}) from None
        except ShuttingDown as exc:
            raise ServeError(503, str(exc), "shutting_down", {"Retry-After": "1"}) from None
        elapsed = time.monotonic() - request_start
        state.metrics.stage("preprocess", elapsed)
        state.metrics.bill("preprocess", "cpu", busy)
        output = {
            "cleaned_text": prep.cleaned[0],
            "word_count": int(prep.word_count[0]),
            "sentence_count": int(prep.sentence_count[0]),
            "char_count": int(prep.char_count[0]),
            "token_count": int(prep.lengths[0]),
            "truncated": bool(prep.truncated[0]),
        }
        headers = {
            "X-Stage-Preprocess-Ms": f"{elapsed * 1000:.3f}",
            "X-Total-Ms": f"{(time.monotonic() - request_start) * 1000:.3f}",
            "X-Cost-USD": f"{busy * state.pricing.cpu_per_sec:.8g}",
            "X-Cost-GPU-Only-USD": f"{busy * state.pricing.gpu_per_sec:.8g}",
        }
        return output, headers, elapsed

    async def gpu_job(job: CleanedIn, request_start: float) -> tuple[dict, dict[str, str], PipelineOutcome]:
        """The GPU worker's work on one validated cleaned text: (output, headers, the pipeline's outcome)."""
        outcome = await state.run_pipeline([job.cleaned_text], clean="none")
        post_start = time.monotonic()
        row = (await state.predictions(outcome))[0]
        headers = state.finish(outcome, post_start, request_start)
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
        return output, headers, outcome

    def work_ms(outcome: PipelineOutcome) -> tuple[float, float]:
        """Runpod's delayTime and executionTime of a pipeline run (queue wait; the work)."""
        t = outcome.timings_ms
        return t["queue"], t["preprocess"] + t["inference"] + t["postprocess"]

    def runpod_wrap(job_id: str, output: dict, delay_ms: float, execution_ms: float) -> dict:
        return {"id": job_id, "status": "COMPLETED", "delayTime": int(round(delay_ms)),
                "executionTime": int(round(execution_ms)), "output": output}

    async def guarded(runpod_id: str | None, work):
        try:
            return await work()
        except ServeError as exc:
            exc.runpod_id = runpod_id
            raise

    @app.post("/cpu_worker/runsync", tags=["workers"], response_model=None,
              responses={200: {"model": CpuWorkerOut | RunpodOut}, **pipeline_errors},
              summary="The CPU worker alone: clean, count and tokenize one text")
    async def cpu_worker(body: TextIn | RunpodTextIn) -> JSONResponse:
        request_start = time.monotonic()
        runpod_id = (body.id or f"sync-{uuid.uuid4()}") if isinstance(body, RunpodTextIn) else None
        text = body.input.text if runpod_id else body.text

        async def work() -> JSONResponse:
            check(text, ["input", "text"] if runpod_id else ["text"])
            output, headers, elapsed = await cpu_job(text, request_start)
            state.metrics.texts.labels("/cpu_worker/runsync").inc()
            if runpod_id:
                return JSONResponse(runpod_wrap(runpod_id, output, 0, elapsed * 1000), headers=headers)
            return JSONResponse(output, headers=headers)

        return await guarded(runpod_id, work)

    @app.post("/gpu_worker/runsync", tags=["workers"], response_model=None,
              responses={200: {"model": GpuWorkerOut | RunpodOut}, **pipeline_errors},
              summary="The GPU worker alone: tokenize cleaned text (CPU pool) and run the model")
    async def gpu_worker(body: CleanedIn | RunpodCleanedIn) -> JSONResponse:
        request_start = time.monotonic()
        runpod_id = (body.id or f"sync-{uuid.uuid4()}") if isinstance(body, RunpodCleanedIn) else None
        job = body.input if runpod_id else body

        async def work() -> JSONResponse:
            check(job.cleaned_text, ["input", "cleaned_text"] if runpod_id else ["cleaned_text"], "cleaned_text",
                  as_sent=True)
            output, headers, outcome = await gpu_job(job, request_start)
            state.metrics.texts.labels("/gpu_worker/runsync").inc()
            if runpod_id:
                return JSONResponse(runpod_wrap(runpod_id, output, *work_ms(outcome)), headers=headers)
            return JSONResponse(output, headers=headers)

        return await guarded(runpod_id, work)

    # --- Runpod's async pair: /run answers at once, /status/{id} until COMPLETED or FAILED -------------------
    job_errors = {
        422: error_doc("Invalid input, checked before the job is queued", invalid_doc),
        503: error_doc("The job store is full (--max-jobs); see Retry-After",
                       "job store full: 1,024 jobs held (--max-jobs 1024); read finished results with /status "
                       "or wait for them to expire (--job-ttl 1800 s)"),
    }
    status_doc = {200: {"model": JobStatusOut},
                  404: error_doc("No such job, or its result expired",
                                 "no such job on /cpu_worker: unknown id, or its result expired (--job-ttl 1800 s)")}

    @app.post("/cpu_worker/run", tags=["async jobs"], response_model=None,
              responses={200: {"model": JobAcceptedOut}, **job_errors},
              summary="The CPU worker as an async job: answers an id at once")
    async def cpu_worker_run(body: RunpodTextIn) -> JSONResponse:
        check(body.input.text, ["input", "text"])
        text = body.input.text

        async def work() -> JobResult:
            output, _headers, elapsed = await cpu_job(text, time.monotonic())
            state.metrics.texts.labels("/cpu_worker/run").inc()
            return output, 0.0, elapsed * 1000

        job = state.jobs.submit("cpu_worker", work)
        return JSONResponse({"id": job.id, "status": job.status})

    @app.post("/gpu_worker/run", tags=["async jobs"], response_model=None,
              responses={200: {"model": JobAcceptedOut}, **job_errors},
              summary="The GPU worker as an async job: answers an id at once")
    async def gpu_worker_run(body: RunpodCleanedIn) -> JSONResponse:
        check(body.input.cleaned_text, ["input", "cleaned_text"], "cleaned_text", as_sent=True)
        cleaned = body.input

        async def work() -> JobResult:
            output, _headers, outcome = await gpu_job(cleaned, time.monotonic())
            state.metrics.texts.labels("/gpu_worker/run").inc()
            return (output, *work_ms(outcome))

        job = state.jobs.submit("gpu_worker", work)
        return JSONResponse({"id": job.id, "status": job.status})

    def job_status(worker: str, job_id: str) -> JSONResponse:
        job = state.jobs.get(worker, job_id)
        if job is None:
            return JSONResponse(
                {"detail": f"no such job on /{worker}: unknown id, or its result expired (--job-ttl "
                           f"{settings.job_ttl:g} s)"},
                status_code=404,
            )
        return JSONResponse(job.public())

    @app.get("/cpu_worker/status/{job_id}", tags=["async jobs"], response_model=None, responses=status_doc,
             summary="An async CPU job: IN_QUEUE, IN_PROGRESS, COMPLETED or FAILED")
    async def cpu_worker_status(job_id: str) -> JSONResponse:
        return job_status("cpu_worker", job_id)

    @app.get("/gpu_worker/status/{job_id}", tags=["async jobs"], response_model=None, responses=status_doc,
             summary="An async GPU job: IN_QUEUE, IN_PROGRESS, COMPLETED or FAILED")
    async def gpu_worker_status(job_id: str) -> JSONResponse:
        return job_status("gpu_worker", job_id)

    @app.get("/ping", tags=["operations"], response_model=None,
             responses={200: {"description": "Ready", "content": {"application/json": {"example": {"status": "ok"}}}},
                        204: {"description": "Starting: the model is loading"},
                        503: {"description": "Failed to start, or stopping"}},
             summary="Load-balancer health: 204 while starting, 200 when ready (Runpod's contract)")
    async def ping() -> Response:
        if state.status == "ok":
            return JSONResponse({"status": "ok"})
        if state.status == "starting":
            return Response(status_code=204)
        return JSONResponse({"status": state.status}, status_code=503)

    @app.get("/health", tags=["operations"], summary="Readiness, model, queue and device-batch statistics")
    async def health() -> JSONResponse:
        info = state.health()
        return JSONResponse(info, status_code=200 if info["status"] == "ok" else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics (text exposition format)")
    async def metrics() -> Response:
        return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app


def run_server(settings: ServeSettings) -> None:
    """Build the app and serve it with uvicorn until SIGINT/SIGTERM (one process: the model is loaded once).

    Listens on settings.port, and on settings.health_port too when that is another port (Runpod's load balancer
    probes /ping on PORT_HEALTH). A graceful stop after SIGINT or SIGTERM returns normally (exit 0); a start that
    failed raises its error (the command's exit code)."""
    import uvicorn

    app = create_app(settings)
    state: ServerState = app.state.server
    options = uvicorn_options(settings)
    config = uvicorn.Config(app, **options)
    server = uvicorn.Server(config)
    state.on_start_failed = lambda: setattr(server, "should_exit", True)
    sockets = [config.bind_socket()]
    if settings.health_port is not None and settings.health_port != settings.port:
        sockets.append(uvicorn.Config(app, **(options | {"port": settings.health_port})).bind_socket())
    with _stop_signals_end_cleanly():
        server.run(sockets=sockets)
    if state.start_error is not None:
        raise state.start_error


@contextlib.contextmanager
def _stop_signals_end_cleanly():
    """uvicorn stops gracefully on SIGINT/SIGTERM, then raises the signal again under the handlers it found, so
    that the process dies of it (exit 143 after SIGTERM). For a server a graceful stop is its normal end: the
    handlers found here only note the signal, and the command exits 0 as process managers expect."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: received.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
