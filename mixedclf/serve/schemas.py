"""Request and response bodies of the `mixedclf serve` routes (pydantic; also what /docs shows).

The routes validate request bodies with the *In models; they answer with plain dicts (JSONResponse), so the
*Out models only describe those answers in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
    id: str | None = Field(default=None, max_length=256, description="Kept by /runsync; /run makes its own")


class RunpodCleanedIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    input: CleanedIn
    id: str | None = Field(default=None, max_length=256, description="Kept by /runsync; /run makes its own")


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


class JobAcceptedOut(BaseModel):
    id: str = Field(description="The job's id for /status/{id}")
    status: str = "IN_QUEUE"


class JobStatusOut(BaseModel):
    id: str
    status: str = Field(description="IN_QUEUE, IN_PROGRESS, COMPLETED or FAILED")
    delayTime: int | None = Field(default=None, description="Once finished: ms from /run to the start of the work")
    executionTime: int | None = Field(default=None, description="Once finished: ms of work")
    output: dict[str, Any] | None = Field(default=None, description="COMPLETED: what /runsync's output would be")
    error: str | None = Field(default=None, description="FAILED: why, in one line")
