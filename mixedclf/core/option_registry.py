"""The one declaration of each option: its setting (pydantic type, default, constraints) and its command line
(help, flags, panel, completions), and whether it shapes a classify run's output. The command line generates its
options from these (cli/options.py), the layered settings read them from every layer (core/options.py), the
server takes the shared ones (serve/settings.py) and the checkpoint fingerprint takes the output-shaping ones.

Plain pydantic: the command line imports this to build its options, before it knows which command runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

# The prediction cache's size cap (io/prediction_cache.py holds the same numbers; this module stays free of sqlite).
DEFAULT_CACHE_MAX_BYTES = 1 << 30
MIN_CACHE_MAX_BYTES = 64 * 4096

# Help panels (`--help` groups options in these, in this order of first use).
PANEL_IO = "Input and output"
PANEL_MODEL = "Model"
PANEL_SPEED = "Speed"
PANEL_COST = "Cost"
PANEL_RELIABILITY = "Reliability"

DEVICES = ("auto", "cpu", "cuda", "cuda:0", "mps")
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")
BACKENDS = ("torch", "onnxruntime")


def option(default: Any = PydanticUndefined, help: str | None = None, *, flags: tuple[str, ...] = (),  # noqa: A002
           panel: str | None = None, envvar: str | None = None, complete: tuple[str, ...] = (),
           shapes_output: bool = False, as_text: bool = False, argument: bool = False,
           show_default: bool | None = None, **constraints: Any) -> Any:
    """A setting and its command-line option, declared once. The field's default, type and constraints are the
    setting's; `help` (its description) and the rest are the option's: `flags` its names when not the field's
    own (`--text-field`), `panel` its --help panel, `envvar` a variable typer reads besides MIXEDCLF_<NAME>,
    `complete` the values shells complete, `as_text` a Path field read as text, `argument` the positional input.
    `shapes_output`: the option changes the bytes of a classify run's output, so a checkpoint made with another
    value cannot be resumed (the checkpoint fingerprint's fields)."""
    cli = {"flags": list(flags), "panel": panel, "envvar": envvar, "complete": list(complete),
           "shapes_output": shapes_output, "as_text": as_text, "argument": argument}
    cli = {k: v for k, v in cli.items() if v not in (None, False, [])}
    if show_default is not None:
        cli["show_default"] = show_default
    extra = {"cli": cli}
    return Field(default, description=help, json_schema_extra=extra, **constraints)  # type: ignore[arg-type]


def cli_meta(field: FieldInfo) -> dict[str, Any]:
    """The command-line part of an option() declaration ({} for a field declared without one)."""
    extra = field.json_schema_extra
    return dict(extra.get("cli", {})) if isinstance(extra, dict) else {}  # type: ignore[arg-type]


def declared_options(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of `model` declared with option(), in declaration order: the ones a command line may take."""
    return tuple(name for name, f in model.model_fields.items()
                 if isinstance(f.json_schema_extra, dict) and "cli" in f.json_schema_extra)


def output_shaping(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields declared with shapes_output, in declaration order."""
    return tuple(name for name, f in model.model_fields.items() if cli_meta(f).get("shapes_output"))


class SharedOptions(BaseModel):
    """The options `classify` and `serve` share: the model and how it runs, pricing, the prediction cache."""

    # Every command line imports these declarations to build its options: the validators are built on first use.
    model_config = ConfigDict(defer_build=True)

    model: str = option("default", "'default' or a local model folder [default: default]", flags=("--model", "-m"),
                        panel=PANEL_MODEL, shapes_output=True)
    device: str = option("auto", "auto, cuda, mps or cpu [default: auto]", panel=PANEL_MODEL, complete=DEVICES)
    precision: Literal["auto", "fp32", "fp16", "bf16", "int8"] = option(
        "auto", "auto: fp16 on CUDA; bf16 on a CPU that computes it natively (AVX512_BF16 or AMX flag) and measured "
        ">= 1.2x fp32 on this model (cached once); else fp32. The report says which and why. "
        "Or fp32, fp16, bf16, int8 (CPU, onnxruntime) [default: auto]", panel=PANEL_MODEL, complete=PRECISIONS,
        shapes_output=True)
    backend: Literal["torch", "onnxruntime"] | None = option(  # None: torch, or onnxruntime for int8
        None, "torch or onnxruntime (CPU, fp32 or int8; pip install 'mixedclf[onnx]'), converted once per model "
        "into the user cache; --precision int8 implies onnxruntime [default: torch]", panel=PANEL_MODEL,
        complete=BACKENDS, shapes_output=True)
    clean: Literal["standard", "none"] = option(
        "standard", "standard (normalize + clean) or none [default: standard]", panel=PANEL_MODEL,
        complete=("standard", "none"), shapes_output=True)
    cpu_workers: int | None = option(None, "Preprocessing processes [default: from the cores and the device]",
                                     panel=PANEL_SPEED, ge=1)
    torch_threads: int | None = option(None, "Intra-op threads of the model: torch's, or the onnxruntime session's.",
                                       panel=PANEL_SPEED, ge=1)
    pricing: Path | None = option(None, "Pricing TOML [default: the packaged configs/pricing.toml]",
                                  flags=("--pricing",), envvar="MIXEDCLF_PRICING", panel=PANEL_COST)
    profile: str = option("reference", "Pricing profile [default: reference]", flags=("--profile",),
                          envvar="MIXEDCLF_PROFILE", panel=PANEL_COST)
    # The prediction cache (docs/cache.md): rows answered before skip the device. None: the user cache folder's.
    cache: Path | None = option(
        None, "Prediction cache file: rows answered before (same model, settings and cleaned text) skip the device; "
        "see docs/cache.md [default: predictions.sqlite3 in the user cache folder; MIXEDCLF_CACHE]",
        flags=("--cache",), panel=PANEL_COST)
    no_cache: bool = option(False, "Neither read nor write the prediction cache (MIXEDCLF_NO_CACHE=1).",
                            flags=("--no-cache",), panel=PANEL_COST)
    cache_max_bytes: int = option(
        DEFAULT_CACHE_MAX_BYTES, "Size cap of the prediction cache file; the least recently used answers go first "
        "[default: 1 GiB]", panel=PANEL_COST, ge=MIN_CACHE_MAX_BYTES)


class ClassifyFields(SharedOptions):
    """Every option of a classify run (ClassifyOptions reads them from every layer)."""

    # A string, never a Path: a Path turns s3://bucket/key into s3:/bucket/key. One or more files, folders, globs
    # or URIs; `-` for stdin.
    input: str | list[str] = option(
        help="Input .jsonl, .parquet or .csv (.jsonl/.csv may end .gz, .bz2, .zst): one or more files, a folder, "
        "a glob, a URI (s3://, gs://, hf://, file://), or - for stdin (JSONL; CSV with --input-format csv).",
        argument=True)
    output: Path = option(  # read as text: a Path would turn file:///x into file:/x
        help="Output .jsonl, .parquet or .csv (written atomically); a name without an extension is a folder of part "
        "files; - writes JSONL (or CSV) to stdout, the report to stderr.", flags=("-o", "--output"), panel=PANEL_IO,
        as_text=True)
    input_format: str | None = option(None, "Override the input format: jsonl, parquet, csv.", panel=PANEL_IO,
                                      shapes_output=True)
    output_format: str | None = option(None, "Override the output format: jsonl, parquet, csv.", panel=PANEL_IO,
                                       shapes_output=True)
    text_field: str = option("text", "Column holding the text [default: text]", panel=PANEL_IO, shapes_output=True)
    id_field: str = option("id", "Column holding the row id; row number when absent [default: id]", panel=PANEL_IO,
                           shapes_output=True)
    mode: Literal["mixed", "gpu-only"] = option(
        "mixed", "mixed (CPU pool + device) or gpu-only (baseline, all in one process) [default: mixed]",
        panel=PANEL_MODEL)
    engine: Literal["local", "ray", "runpod"] = option(
        "local", "local (process pool), ray (Ray Data) or runpod (jobs on the --deploy endpoints) [default: local]",
        panel=PANEL_SPEED)
    deploy: Path | None = option(
        None, "With --engine runpod: the deploy spec whose endpoints run the stages (its state file, written by "
        "deploy apply or deploy local, says where they are).", panel=PANEL_SPEED)
    ray_address: str | None = option(None, "Ray cluster to join [default: a local one]", envvar="RAY_ADDRESS",
                                     panel=PANEL_SPEED)
    batch_size: int | None = option(  # None: the device's own (batching.BATCH_DEFAULTS)
        None, "Most rows per device micro-batch [default: 64 on a CPU, 1024 on CUDA]", panel=PANEL_SPEED, ge=1,
        shapes_output=True)
    max_batch_tokens: int | None = option(
        None, "Most padded tokens per micro-batch [default: 8192 on a CPU, 65536 on CUDA]", panel=PANEL_SPEED, ge=1,
        shapes_output=True)
    chunk_rows: int | None = option(  # None: the engine's own (see chunk_rows_for)
        None, "Rows per chunk, the window sorted by length [default: 16384; 1024 with --engine ray, 4096 with "
        "--engine runpod]",
        panel=PANEL_SPEED, ge=1, shapes_output=True)
    first_chunk_rows: int | None = option(  # None: the engine's own (see chunk_sizes_for)
        None, "Rows in the first chunk; every next one has --chunk-rows, so the device starts sooner (local engine) "
        "[default: 1024]", panel=PANEL_SPEED, ge=1, shapes_output=True)
    all_scores: bool = option(False, "Add a score_<label> column per label.", flags=("--all-scores",),
                              panel=PANEL_IO, shapes_output=True)
    keep_text: bool = option(False, "Copy the input text into the output.", flags=("--keep-text",), panel=PANEL_IO,
                             shapes_output=True)
    output_prefix: str = option(  # put before each classifier column's name (label -> pred_label): core/columns.py
        "", "Put this before the name of each column the classifier adds (pred_ -> pred_label, pred_score, ...); "
        "needed when an input column has one of those names, which is never overwritten [default: none]",
        shapes_output=True)
    dedup: bool = option(True, "Reuse predictions for repeated texts [default: dedup]", flags=("--dedup/--no-dedup",),
                         panel=PANEL_SPEED, shapes_output=True)
    on_error: Literal["skip", "fail"] = option(
        "skip", "Bad rows: skip (to OUTPUT.errors.jsonl) or fail [default: skip]", panel=PANEL_RELIABILITY,
        shapes_output=True)
    resume: bool = option(False, "Continue an interrupted run from its last checkpoint.", flags=("--resume",),
                          panel=PANEL_RELIABILITY)
    stage_timeout_cpu: float | None = option(None, "Seconds a preprocessing chunk may take.", panel=PANEL_RELIABILITY,
                                             gt=0)
    stage_timeout_gpu: float | None = option(None, "Seconds an inference chunk may take.", panel=PANEL_RELIABILITY,
                                             gt=0)
    requests_per_day: float | None = option(None, "Also project cost per day and month.", panel=PANEL_COST, gt=0)
    idle_timeout: float = option(  # seconds each provisioned worker stays billed after its work
        5.0, "Seconds each provisioned worker stays billed after its work (Runpod's default) [5].", panel=PANEL_COST,
        ge=0)
    gpu_speedup: float | None = option(  # a CPU run's inference seconds / this, GPU-priced
        None, "How many times faster a GPU runs inference than this CPU: GPU-priced figures use CPU s / X.",
        panel=PANEL_COST, gt=0)
    max_cost: float | None = option(  # dollars the whole job may cost (provisioned bill)
        None, "Dollars the whole job may cost: stop cleanly (exit 4, checkpointed) before the chunk that would take "
        "the provisioned bill (mixed, or GPU-only with --mode gpu-only; from process start, idle tail and rounding "
        "included; --resume carries the spend) past it.", panel=PANEL_COST, gt=0)
    report: Path | None = option(None, "Write the versioned JSON report here.", panel=PANEL_IO)
    rows_per_file: int | None = option(  # a folder output: one part per N rows
        None, "Folder output: a part file per this many rows [default: a part per input file]", panel=PANEL_IO, ge=1)

    @field_validator("output", mode="before")
    @classmethod
    def _output_path(cls, value: Any) -> Any:
        """file:// names a local path; any other URI is refused (outputs are renamed into place, which an
        object store cannot do atomically)."""
        if not isinstance(value, str) or "://" not in value:
            return value
        scheme = value.split("://", 1)[0]
        if not (scheme.isalnum() and len(scheme) > 1):
            return value
        if scheme.lower() == "file":
            from urllib.parse import urlparse
            from urllib.request import url2pathname  # http.client, email, ssl: not for every command line

            parsed = urlparse(value)
            if parsed.netloc not in ("", "localhost"):
                raise ValueError(f"{value}: a file:// output must be on this machine (file:///path)")
            return url2pathname(parsed.path)
        raise ValueError(f"{value}: output URIs ({scheme}://) are not supported: write to a local or mounted path "
                         "(or file:///path), then copy it")

    @field_validator("input", mode="before")
    @classmethod
    def _input_as_text(cls, value: Any) -> Any:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if isinstance(value, (list, tuple)):
            values = [os.fspath(v) if isinstance(v, os.PathLike) else v for v in value]
            return values[0] if len(values) == 1 else values
        return value
