"""The settings a run actually ran with, one typed record for every engine: resolved values, never the options'
"auto"s, so two engines' reports of the same run compare field by field."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class RunSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["mixed", "gpu-only"]
    device: str
    precision: str
    precision_reason: str = ""
    backend: str
    cpu_workers: int
    torch_threads: int | None
    batch_size: int
    max_batch_tokens: int
    chunk_rows: int
    first_chunk_rows: int | None = None
    clean: str
    dedup: bool
    input_format: str
    output_format: str
    # Ray only: where the job ran and how the inference pool was sized.
    engine: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    inference_workers: int | None = None
    inference_worker_cpus: float | None = None
    inference_worker_gpus: int | None = None

    def as_report(self) -> dict:
        """The report's settings table: what was set (the engine is a field of the report itself)."""
        return self.model_dump(exclude_none=True, exclude={"engine"} if self.engine == "local" else set())
