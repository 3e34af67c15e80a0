"""Request and response bodies of the `mixedclf serve` routes (pydantic; also what /docs shows).

The routes validate request bodies with the *In models; they answer with plain dicts (JSONResponse), so the
*Out models only describe those answers in the OpenAPI schema. Every model carries a whole example (labels and
numbers illustrative, shapes real), so /docs never shows Swagger's placeholders ("string", "additionalProp1").
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# --- examples (what /docs shows; tests/test_serve_docs.py checks each one validates against its model) ----------
TEXT = "The room was clean and the staff lovely."
CLEANED = "Loved it!! Would go again & again."
TIMINGS = {"preprocess": 1.1, "queue": 0.1, "inference": 9.0, "postprocess": 0.2, "total": 11.0}
PREDICTION = {"label": "positive", "score": 0.97, "confidence": "high",
              "scores": {"negative": 0.03, "positive": 0.97}, "word_count": 8, "sentence_count": 1,
              "char_count": 40, "token_count": 11, "truncated": False}
MODEL_INFO = {"name": "default", "kind": "head", "labels": ["negative", "positive"], "max_length": 256,
              "device": "cpu"}
CPU_OUTPUT = {"cleaned_text": CLEANED, "word_count": 6, "sentence_count": 2, "char_count": 34, "token_count": 11,
              "truncated": False}
GPU_OUTPUT = {"label": "positive", "score": 0.97, "confidence": "high",
              "predictions": [{"label": "positive", "score": 0.97}, {"label": "negative", "score": 0.03}],
              "word_count": 6, "token_count": 11, "truncated": False, "model_info": MODEL_INFO}
JOB_ID = "5b0c2f9e-8d1a-4d59-9a53-1f0f3c2b7e11"


def example(value: dict, allow_extra: bool = False) -> ConfigDict:
    config = ConfigDict(json_schema_extra={"examples": [value]})
    if allow_extra:
        config["extra"] = "allow"
    return config


class TextIn(BaseModel):
    model_config = example({"text": TEXT})

    text: str = Field(description="The text to classify")


class TextsIn(BaseModel):
    model_config = example({"texts": ["Loved it.", "Never again!"]})

    texts: list[str] = Field(description="Texts to classify, answered in the same order")


class CleanedIn(BaseModel):
    model_config = example({"cleaned_text": CLEANED, "word_count": 6})

    cleaned_text: str = Field(description="Text already cleaned (e.g. by /cpu_worker/runsync); only tokenized")
    word_count: int | None = Field(default=None, ge=0, description="Echoed back; counted here when absent")


class RunpodTextIn(BaseModel):
    """Runpod serverless style: the job's input under "input"."""

    model_config = example({"input": {"text": TEXT}, "id": "job-1"}, allow_extra=True)
    input: TextIn
    id: str | None = Field(default=None, max_length=256, description="Kept by /runsync; /run makes its own")


class RunpodCleanedIn(BaseModel):
    model_config = example({"input": {"cleaned_text": CLEANED}, "id": "job-2"}, allow_extra=True)
    input: CleanedIn
    id: str | None = Field(default=None, max_length=256, description="Kept by /runsync; /run makes its own")


class Prediction(BaseModel):
    model_config = example(PREDICTION)

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
    model_config = example(TIMINGS)

    preprocess: float
    queue: float
    inference: float
    postprocess: float
    total: float


class ClassifyOut(Prediction):
    model_config = example(PREDICTION | {"model": "default", "timings_ms": TIMINGS, "batch_size": 1,
                                         "cost_usd": 1.4e-05})

    model: str
    timings_ms: Timings
    batch_size: int = Field(description="Texts in the device batch this request rode in")
    cost_usd: float


class BatchOut(BaseModel):
    model_config = example({"results": [PREDICTION], "model": "default", "count": 1, "timings_ms": TIMINGS,
                            "batch_size": 1, "cost_usd": 1.4e-05})

    results: list[Prediction]
    model: str
    count: int
    timings_ms: Timings
    batch_size: int
    cost_usd: float


class CpuWorkerOut(BaseModel):
    model_config = example(CPU_OUTPUT)

    cleaned_text: str
    word_count: int
    sentence_count: int
    char_count: int
    token_count: int
    truncated: bool


class ModelInfo(BaseModel):
    model_config = example(MODEL_INFO)

    name: str
    kind: str
    labels: list[str]
    max_length: int
    device: str


class GpuWorkerOut(BaseModel):
    model_config = example(GPU_OUTPUT)

    label: str
    score: float
    confidence: str
    predictions: list[dict[str, Any]] = Field(description="Every label with its score, best first")
    word_count: int
    token_count: int
    truncated: bool
    model_info: ModelInfo


class RunpodOut(BaseModel):
    model_config = example({"id": "job-2", "status": "COMPLETED", "delayTime": 0, "executionTime": 12,
                            "output": GPU_OUTPUT})

    id: str
    status: str = "COMPLETED"
    delayTime: int = Field(description="Milliseconds the job waited (queue), as Runpod reports it")
    executionTime: int = Field(description="Milliseconds of work (preprocess + inference + postprocess)")
    output: dict[str, Any]


class JobAcceptedOut(BaseModel):
    model_config = example({"id": JOB_ID, "status": "IN_QUEUE"})

    id: str = Field(description="The job's id for /status/{id}")
    status: str = "IN_QUEUE"


class JobStatusOut(BaseModel):
    model_config = example({"id": JOB_ID, "status": "COMPLETED", "delayTime": 3, "executionTime": 12,
                            "output": CPU_OUTPUT})

    id: str
    status: str = Field(description="IN_QUEUE, IN_PROGRESS, COMPLETED or FAILED")
    delayTime: int | None = Field(default=None, description="Once finished: ms from /run to the start of the work")
    executionTime: int | None = Field(default=None, description="Once finished: ms of work")
    output: dict[str, Any] | None = Field(default=None, description="COMPLETED: what /runsync's output would be")
    error: str | None = Field(default=None, description="FAILED: why, in one line")
