"""The load-balanced orchestrator: the original routes (/classify, /classify/batch, /cpu_worker/runsync,
/gpu_worker/runsync), /ping and /docs, answered by calling the stage endpoints through the data plane
(`{RUNPOD_ENDPOINT_BASE_URL}/{endpoint_id}/runsync`, then /status until done).

It holds no model: it forwards one stage's output as the next one's input. /ping answers 204 until every stage
endpoint's /health has answered once, then 200 (Runpod's load-balancer health contract). The key it calls the
stages with is RUNPOD_API_KEY (on Runpod, a secret reference set by deploy apply).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from mixedclf.errors import InputError
from mixedclf.io.runpod_jobs import DataPlane, JobFailed


@dataclass
class StageEndpoints:
    """The stage endpoints the orchestrator calls (role -> endpoint id) over one data plane."""

    plane: DataPlane
    ids: dict[str, str]  # pre, infer, post; or all

    @classmethod
    def from_env(cls) -> StageEndpoints:
        ids = {role: os.environ[f"MIXEDCLF_ENDPOINT_{role.upper()}"] for role in ("pre", "infer", "post", "all")
               if os.environ.get(f"MIXEDCLF_ENDPOINT_{role.upper()}")}
        if set(ids) not in ({"pre", "infer", "post"}, {"all"}):
            raise InputError("the orchestrator needs MIXEDCLF_ENDPOINT_PRE, _INFER and _POST (or _ALL)")
        from mixedclf.cloud.rest import data_plane_base

        # A request waits on these calls: a stage's own error (bad input) is answered at once, not retried.
        return cls(DataPlane(data_plane_base(), os.environ.get("RUNPOD_API_KEY", ""), retry_failed=False), ids)

    def run(self, role: str, payload: dict) -> dict:
        return self.plane.run(self.ids[role], payload, name=role)

    def healthy(self) -> bool:
        return self.plane.healthy(list(self.ids.values()))

    def pipeline(self, payload: dict) -> tuple[dict, dict[str, float]]:
        """pre -> infer -> post (or the one `all` endpoint); the output of post and each hop's milliseconds."""
        timings: dict[str, float] = {}

        def hop(name: str, role: str, body: dict) -> dict:
            started = time.monotonic()
            out = self.run(role, body)
            timings[name] = round((time.monotonic() - started) * 1000.0, 3)
            return out

        if "all" in self.ids:
            return hop("pipeline", "all", payload), timings
        sequences = hop("preprocess", "pre", payload)
        scored = hop("inference", "infer", sequences)
        return hop("postprocess", "post", scored), timings


def create_app(stages: StageEndpoints):
    from fastapi import Body, HTTPException, Response
    from fastapi.responses import JSONResponse
    from fastapi_offline import FastAPIOffline

    ready = asyncio.Event()

    async def watch_stages() -> None:
        while not ready.is_set():
            if await asyncio.to_thread(stages.healthy):
                ready.set()
            else:
                await asyncio.sleep(1.0)

    @asynccontextmanager
    async def lifespan(_app):
        watch = asyncio.create_task(watch_stages())
        yield
        watch.cancel()

    app = FastAPIOffline(title="mixedclf orchestrator", lifespan=lifespan,
                         description="The original routes, answered by the pre / infer / post stage endpoints.")

    async def run(payload: dict) -> tuple[dict, dict[str, float]]:
        started = time.monotonic()
        try:
            out, timings = await asyncio.to_thread(stages.pipeline, payload)
        except JobFailed as exc:
            raise HTTPException(exc.status, str(exc)) from None
        timings["total"] = round((time.monotonic() - started) * 1000.0, 3)
        return out, timings

    def unwrap(body: Any) -> tuple[dict, str | None]:
        """A plain body, or a Runpod job {"input": {...}}: its id kept, or one made (answered Runpod's way)."""
        if isinstance(body, dict) and isinstance(body.get("input"), dict):
            return body["input"], str(body.get("id") or f"sync-{uuid.uuid4()}")
        if not isinstance(body, dict):
            raise HTTPException(422, "body must be a JSON object")
        return body, None

    def text_of(body: dict, key: str = "text") -> str:
        if not isinstance(body.get(key), str):
            raise HTTPException(422, f'body needs "{key}": a string')
        return body[key]

    @app.get("/ping", responses={204: {"description": "starting: the stage endpoints have not answered yet"}})
    async def ping() -> Response:
        if not ready.is_set():
            return Response(status_code=204)
        return JSONResponse({"status": "ready"})

    @app.post("/classify")
    async def classify(body: Any = Body(...)) -> dict:
        payload, _ = unwrap(body)
        out, timings = await run({"texts": [text_of(payload)]})
        return {**out["results"][0], "model": out["model"]["name"], "timings_ms": timings}

    @app.post("/classify/batch")
    async def classify_batch(body: Any = Body(...)) -> dict:
        payload, _ = unwrap(body)
        texts = payload.get("texts")
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise HTTPException(422, 'body needs "texts": a list of strings')
        out, timings = await run({"texts": texts})
        return {"results": out["results"], "model": out["model"]["name"], "count": len(texts), "timings_ms": timings}

    @app.post("/cpu_worker/runsync")
    async def cpu_worker(body: Any = Body(...)) -> dict:
        payload, job_id = unwrap(body)
        text = text_of(payload)
        try:
            seq = (await asyncio.to_thread(stages.run, "pre", {"texts": [text]}))["sequences"] \
                if "pre" in stages.ids else None
        except JobFailed as exc:
            raise HTTPException(exc.status, str(exc)) from None
        if seq is None:
            raise HTTPException(404, "this deployment has no separate pre stage (topology single)")
        row = {"cleaned_text": seq["cleaned"][0], "word_count": seq["word_count"][0],
               "sentence_count": seq["sentence_count"][0], "char_count": seq["char_count"][0],
               "token_count": len(seq["ids"][0]), "truncated": seq["truncated"][0]}
        return _runpod_shape(row, job_id)

    @app.post("/gpu_worker/runsync")
    async def gpu_worker(body: Any = Body(...)) -> dict:
        payload, job_id = unwrap(body)
        out, _ = await run({"texts": [text_of(payload, "cleaned_text")], "clean": "none"})
        result, model = out["results"][0], out["model"]
        row = {"label": result["label"], "score": result["score"], "confidence": result["confidence"],
               "predictions": sorted(({"label": k, "score": v} for k, v in result["scores"].items()),
                                     key=lambda p: -p["score"]),
               "word_count": payload.get("word_count", result["word_count"]),
               "token_count": result["token_count"], "truncated": result["truncated"], "model_info": model}
        return _runpod_shape(row, job_id)

    return app


def _runpod_shape(row: dict, job_id: str | None) -> dict:
    return row if job_id is None else {"id": job_id, "status": "COMPLETED", "output": row}


def serve_orchestrator(host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    app = create_app(StageEndpoints.from_env())
    uvicorn.run(app, host=host or os.environ.get("MIXEDCLF_HOST", "0.0.0.0"),
                port=port or int(os.environ.get("PORT", "80")), log_level="warning")
