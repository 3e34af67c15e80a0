"""Typed options for a classify run; defaults come from the packaged configs/default.toml, then the command line."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from mixedclf.defaults import packaged_config
from mixedclf.errors import InputError

DEFAULT_CONFIG = packaged_config("default.toml")


class ClassifyOptions(BaseModel):
    input: Path
    output: Path
    input_format: str | None = None
    output_format: str | None = None
    text_field: str = "text"
    id_field: str = "id"
    model: str = "default"
    device: str = "auto"
    precision: Literal["auto", "fp32", "fp16", "bf16", "int8"] = "auto"
    mode: Literal["mixed", "gpu-only"] = "mixed"
    engine: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    clean: Literal["standard", "none"] = "standard"
    cpu_workers: int | None = Field(default=None, ge=1)
    torch_threads: int | None = Field(default=None, ge=1)
    batch_size: int | None = Field(default=None, ge=1)  # None: the device's own (batching.BATCH_DEFAULTS)
    max_batch_tokens: int | None = Field(default=None, ge=1)
    chunk_rows: int | None = Field(default=None, ge=1)  # None: the engine's own (see chunk_rows_for)
    all_scores: bool = False
    keep_text: bool = False
    dedup: bool = True
    on_error: Literal["skip", "fail"] = "skip"
    resume: bool = False
    stage_timeout_cpu: float | None = Field(default=None, gt=0)
    stage_timeout_gpu: float | None = Field(default=None, gt=0)
    pricing: Path | None = None
    profile: str = "reference"
    requests_per_day: float | None = Field(default=None, gt=0)
    report: Path | None = None


# Rows per chunk when not set. Locally a chunk is the window sorted by length, so bigger means less padding
# (5,000 review texts: 1,024-row windows pad 13.7%, 4,096 6.6%, one 5,000 window 3.0%); on Ray it is also the unit
# handed to one inference actor, so smaller keeps every actor busy.
DEFAULT_CHUNK_ROWS = {"local": 16384, "ray": 1024}


def chunk_rows_for(opts: ClassifyOptions) -> int:
    return opts.chunk_rows or DEFAULT_CHUNK_ROWS[opts.engine]


def load_defaults(path: Path | None = None, section: str = "classify") -> dict[str, Any]:
    path = path or DEFAULT_CONFIG
    if not path.exists():
        if path == DEFAULT_CONFIG:
            return {}
        raise InputError(f"{path}: config file not found")
    try:
        with open(path, "rb") as handle:
            return dict(tomllib.load(handle).get(section, {}))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: invalid TOML: {exc}") from exc


def build_options(cli_values: dict[str, Any], config: Path | None = None) -> ClassifyOptions:
    """Config file values, overridden by every command-line value that was given (not None)."""
    merged = load_defaults(config) | {k: v for k, v in cli_values.items() if v is not None}
    try:
        return ClassifyOptions(**merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"invalid option {where}: {first['msg']}") from exc
