"""Typed options for a classify run, each taken from the first place that sets it:
the command line (or keyword arguments) > MIXEDCLF_* environment variables > the --config file > the packaged
configs/default.toml > the field defaults below."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from mixedclf.configs import packaged_config, read_toml
from mixedclf.core.option_registry import (  # noqa: F401 - the cache caps, where they were always imported from
    DEFAULT_CACHE_MAX_BYTES,
    MIN_CACHE_MAX_BYTES,
    ClassifyFields,
    cli_meta,
)
from mixedclf.errors import InputError

if TYPE_CHECKING:
    from mixedclf.core.batching import ChunkSizes

DEFAULT_CONFIG = packaged_config("default.toml")
ENV_PREFIX = "MIXEDCLF_"


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


class ClassifyOptions(LayeredSettings, ClassifyFields):
    """A classify run's options, each from the first layer that sets it (see the module docstring)."""

    # The settings' configuration (pydantic merges in the fields' own, defer_build, from the other base).
    model_config = LayeredSettings.model_config


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
        source = option_source(name, given, given.get("config"), cls.config_section, cls) if name else None
        if source is not None and source.layer == "environment":
            raise InputError(f"invalid {source.where}: {message}",
                             hint="fix or unset the environment variable") from None
        if source is not None and source.layer == "config file":
            raise InputError(f"{source.config}: [{source.section}] {name}: {message}") from None
        where = "-".join(str(p) for p in first["loc"]).replace("_", "-")
        raise InputError(f"invalid option --{where}: {message}" if where else f"invalid options: {message}") from None
    except SettingsError as exc:
        raise InputError(f"invalid {ENV_PREFIX}* setting: {exc}") from None


Layer = Literal["command line", "environment", "config file", "default"]
# Higher wins: the order build_settings reads the layers in (the packaged defaults.toml is a default).
LAYER_RANK: dict[str, int] = {"default": 0, "config file": 1, "environment": 2, "command line": 3}


class OptionSource(BaseModel):
    """Where a setting's value came from: `where` names it as a user would look for it (--precision,
    MIXEDCLF_PRECISION, `c.toml [classify] precision`, or the default)."""

    model_config = ConfigDict(frozen=True)

    name: str
    layer: Layer
    where: str
    config: Path | None = None  # the config file, for the config file layer
    section: str = "classify"

    @property
    def rank(self) -> int:
        return LAYER_RANK[self.layer]

    @property
    def explicit(self) -> bool:
        """Set by the user (command line, environment or config file), not a default."""
        return self.layer != "default"

    def undo(self) -> str:
        """How to stop setting it, in the words of its layer."""
        if self.layer == "command line":
            return f"leave {self.where} out"
        if self.layer == "environment":
            return f"unset {self.where}"
        if self.layer == "config file":
            return f"remove {self.name} from [{self.section}] in {self.config}"
        return "nothing to undo: it is the default"


def _flag(name: str, cls: type[BaseModel]) -> str:
    field = cls.model_fields.get(name)
    flags = [f for f in cli_meta(field).get("flags", ()) if f.startswith("--")] if field is not None else []
    return flags[0].split("/", 1)[0] if flags else f"--{name.replace('_', '-')}"


def _env_name(name: str) -> str | None:
    """The MIXEDCLF_<NAME> variable that sets `name`, as pydantic-settings reads them (any case; empty ignored)."""
    key = f"{ENV_PREFIX}{name}".lower()
    found = [k for k, v in os.environ.items() if k.lower() == key and v]
    return found[-1] if found else None


def config_path(config: Path | str | None) -> Path | None:
    """The config file the settings read: --config, else MIXEDCLF_CONFIG (what ConfigFileSource is handed)."""
    if config is None:
        variable = _env_name("config")
        config = os.environ[variable] if variable else None
    return Path(config) if config is not None else None


def option_source(name: str, cli_values: dict[str, Any], config: Path | str | None = None,
                  section: str = "classify", cls: type[BaseModel] = ClassifyFields) -> OptionSource:
    """The layer that sets option `name` and how to name it: the command line (a value in `cli_values`), its
    MIXEDCLF_* variable, the config file (`config`, else MIXEDCLF_CONFIG) or a default (the packaged defaults or
    the field's). The one copy of the order build_settings reads the layers in, for messages that name a value's
    source."""
    if cli_values.get(name) is not None:
        return OptionSource(name=name, layer="command line", where=_flag(name, cls))
    variable = _env_name(name)
    if variable is not None:
        return OptionSource(name=name, layer="environment", where=variable)
    path = config_path(config)
    if path is not None and name in load_defaults(path, section):
        return OptionSource(name=name, layer="config file", where=f"{path} [{section}] {name}", config=path,
                            section=section)
    return OptionSource(name=name, layer="default", where="the default")


def build_options(cli_values: dict[str, Any], config: Path | None = None) -> ClassifyOptions:
    return build_settings(ClassifyOptions, cli_values, config)
