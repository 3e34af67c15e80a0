"""The settings a run actually ran with, one typed record for every engine: resolved values, never the options'
"auto"s, so two engines' reports of the same run compare field by field."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class RunSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["mixed", "gpu-only"]
    device: str
    precision: str
    precision_reason: str = ""
    backend: str
    cpu_workers: int
    torch_threads: int | None  # the model's intra-op threads: torch's, or the onnxruntime session's
    batch_size: int
    max_batch_tokens: int
    chunk_rows: int
    first_chunk_rows: int | None = None
    clean: str
    dedup: bool
    input_format: str
    output_format: str
    # Ray only: where the job ran and how the inference pool was sized.
    engine: Literal["local", "ray", "runpod"] = "local"
    ray_address: str | None = None
    inference_workers: int | None = None
    inference_worker_cpus: float | None = None
    inference_worker_gpus: int | None = None

    def as_report(self) -> dict:
        """The report's settings table: what was set (the engine is a field of the report itself; the table names
        it only where the engine set it, as Ray does)."""
        return self.model_dump(exclude_none=True, exclude=set() if "engine" in self.model_fields_set else {"engine"})


class RunStats(BaseModel):
    """What a run measured beyond its stage clocks, the same fields from every engine: the device's work, dedup,
    faults, resume, start-up; the budget when one was set; Ray's own figures on Ray."""

    model_config = ConfigDict(extra="forbid")

    micro_batches: int
    mean_batch_rows: float
    padding_fraction: float
    tokens: int
    padded_tokens: int
    token_width_sum: int  # sum of rows x width^2 over micro-batches: the attention term of the FLOPs count
    device_busy_s: float
    device_forward_s: float
    host_overhead_ms_per_batch: float | None
    truncated_rows: int
    oom_splits: int
    pool_restarts: int
    duplicate_fraction: float  # rows repeating an earlier row of their chunk: skipped with --dedup
    dedup_hit_rate: float
    duplicate_ids: int
    resumed_from_chunk: int
    rows_before_resume: int
    startup_s: float | None
    budget: dict[str, Any] | None = None  # --max-cost: the budget, the spend before this run, the first projection
    ray_nodes: int | None = None
    ray_cluster_cpus: float | None = None
    ray_cluster_gpus: float | None = None
    ray_parts: int | None = None
    ray_merge_s: float | None = None
    ray_execution_s: float | None = None
    ray_operators: list[dict[str, Any]] | None = None
    inference_devices: list[str] | None = None
    ray_timeline: dict[str, Any] | None = None

    def as_report(self) -> dict[str, Any]:
        """The report's extra table: every measured field; the optional ones only where they apply."""
        optional = {name for name, f in RunStats.model_fields.items() if not f.is_required()}
        return self.model_dump(exclude={name for name in optional if getattr(self, name) is None})
