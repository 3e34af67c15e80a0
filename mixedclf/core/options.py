"""Typed options for a classify run, each taken from the first place that sets it:
the command line (or keyword arguments) > MIXEDCLF_* environment variables > the --config file > the packaged
configs/default.toml > the field defaults below."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlparse
from urllib.request import url2pathname

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from mixedclf.configs import packaged_config, read_toml
from mixedclf.errors import InputError

if TYPE_CHECKING:
    from mixedclf.core.batching import ChunkSizes

DEFAULT_CONFIG = packaged_config("default.toml")
ENV_PREFIX = "MIXEDCLF_"
# The prediction cache's size cap (io/prediction_cache.py holds the same numbers; this module stays free of sqlite).
DEFAULT_CACHE_MAX_BYTES = 1 << 30
MIN_CACHE_MAX_BYTES = 64 * 4096


class ConfigFileSource(PydanticBaseSettingsSource):
    """One table of the packaged defaults TOML, overlaid by the same table of the file named by `config`
    (--config or MIXEDCLF_CONFIG: a higher source, read from the state those sources left)."""

    def get_field_value(self, field, field_name):  # the whole table is returned at once by __call__
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        section = getattr(self.settings_cls, "config_section", "classify")
        path = self.current_state.get("config")
        values = load_defaults(None, section)
        if path is not None:
            values |= load_defaults(Path(path), section)
        return values


class LayeredSettings(BaseSettings):
    """Settings read in the order the module docstring gives; subclasses name their table of the TOML."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="forbid")
    config_section: ClassVar[str] = "classify"

    config: Path | None = Field(default=None, description="TOML file whose table overrides the packaged defaults")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, ConfigFileSource(settings_cls)


class ClassifyOptions(LayeredSettings):
    # A string, never a Path: a Path turns s3://bucket/key into s3:/bucket/key. One or more files, folders, globs
    # or URIs; `-` for stdin.
    input: str | list[str]
    output: Path  # a file, a folder (no extension, or --rows-per-file), or `-` for stdout
    input_format: str | None = None
    output_format: str | None = None
    text_field: str = "text"
    id_field: str = "id"
    model: str = "default"
    device: str = "auto"
    precision: Literal["auto", "fp32", "fp16", "bf16", "int8"] = "auto"
    backend: Literal["torch", "onnxruntime"] | None = None  # None: torch, or onnxruntime for int8
    mode: Literal["mixed", "gpu-only"] = "mixed"
    engine: Literal["local", "ray", "runpod"] = "local"
    deploy: Path | None = None  # --engine runpod: the deploy spec whose endpoints run the stages
    ray_address: str | None = None
    clean: Literal["standard", "none"] = "standard"
    cpu_workers: int | None = Field(default=None, ge=1)
    torch_threads: int | None = Field(default=None, ge=1)
    batch_size: int | None = Field(default=None, ge=1)  # None: the device's own (batching.BATCH_DEFAULTS)
    max_batch_tokens: int | None = Field(default=None, ge=1)
    chunk_rows: int | None = Field(default=None, ge=1)  # None: the engine's own (see chunk_rows_for)
    first_chunk_rows: int | None = Field(default=None, ge=1)  # None: the engine's own (see chunk_sizes_for)
    all_scores: bool = False
    keep_text: bool = False
    output_prefix: str = ""  # put before each classifier column's name (label -> pred_label): see core/columns.py
    dedup: bool = True
    on_error: Literal["skip", "fail"] = "skip"
    resume: bool = False
    stage_timeout_cpu: float | None = Field(default=None, gt=0)
    stage_timeout_gpu: float | None = Field(default=None, gt=0)
    pricing: Path | None = None
    profile: str = "reference"
    requests_per_day: float | None = Field(default=None, gt=0)
    idle_timeout: float = Field(default=5.0, ge=0)  # seconds each provisioned worker stays billed after its work
    gpu_speedup: float | None = Field(default=None, gt=0)  # a CPU run's inference seconds / this, GPU-priced
    max_cost: float | None = Field(default=None, gt=0)  # dollars the whole job may cost (provisioned bill)
    report: Path | None = None
    rows_per_file: int | None = Field(default=None, ge=1)  # a folder output: one part per N rows
    # The prediction cache (docs/cache.md): rows answered before skip the device. None: the user cache folder's.
    cache: Path | None = None
    no_cache: bool = False
    cache_max_bytes: int = Field(default=DEFAULT_CACHE_MAX_BYTES, ge=MIN_CACHE_MAX_BYTES)

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


# Rows per chunk when not set. Locally a chunk is the window sorted by length, so bigger means less padding
# (5,000 review texts: 1,024-row windows pad 13.7%, 4,096 6.6%, one 5,000 window 3.0%); on Ray it is also the unit
# handed to one inference actor, so smaller keeps every actor busy. On Runpod a chunk is what a checkpoint records;
# its jobs (engines/runpod.py JOB_ROWS rows each) are what is sent.
DEFAULT_CHUNK_ROWS = {"local": 16384, "ray": 1024, "runpod": 4096}


# Rows in the first chunk when not set; every next chunk has chunk_rows. The device starts once the first
# chunk is read and preprocessed: 1,024 review texts take one worker ~0.1 s, 16,384 over a second. On Ray every
# chunk already is 1,024 rows and feeds its own actor, so the first is no smaller there.
DEFAULT_FIRST_CHUNK_ROWS = {"local": 1024, "ray": None, "runpod": 1024}


def chunk_rows_for(opts: ClassifyOptions) -> int:
    return opts.chunk_rows or DEFAULT_CHUNK_ROWS[opts.engine]


def chunk_sizes_for(opts: ClassifyOptions) -> ChunkSizes:
    """Rows per chunk by chunk index: the first chunk, then chunk_rows (see ChunkSizes)."""
    from mixedclf.core.batching import ChunkSizes  # numpy: not for the option parsing `serve` shares

    return ChunkSizes(chunk_rows_for(opts), opts.first_chunk_rows or DEFAULT_FIRST_CHUNK_ROWS[opts.engine])


def load_defaults(path: Path | None = None, section: str = "classify") -> dict[str, Any]:
    path = path or DEFAULT_CONFIG
    if not path.exists():
        if path == DEFAULT_CONFIG:
            return {}
        raise InputError(f"{path}: config file not found")
    return dict(read_toml(path, "config file").get(section, {}))


def build_settings(cls: type[LayeredSettings], cli_values: dict[str, Any], config: Path | None = None):
    """`cls` from every command-line value that was given (not None), then the environment and config files."""
    given = {k: v for k, v in cli_values.items() if v is not None}
    if config is not None:
        given["config"] = config
    try:
        return cls(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        message = str(first["msg"]).removeprefix("Value error, ")
        if name and name not in given and f"{ENV_PREFIX}{name.upper()}" in os.environ:
            raise InputError(f"invalid {ENV_PREFIX}{name.upper()}: {message}",
                             hint="fix or unset the environment variable") from None
        where = "-".join(str(p) for p in first["loc"]).replace("_", "-")
        raise InputError(f"invalid option --{where}: {message}" if where else f"invalid options: {message}") from None
    except SettingsError as exc:
        raise InputError(f"invalid {ENV_PREFIX}* setting: {exc}") from None


def build_options(cli_values: dict[str, Any], config: Path | None = None) -> ClassifyOptions:
    return build_settings(ClassifyOptions, cli_values, config)
