"""`mixedclf serve`: options -> ServeSettings -> uvicorn (thin: the server lives in mixedclf/serve/).

mixedclf/cli/app.py calls ``register(app)``. Defaults come from ServeSettings, then the [serve] section of the
pipeline config file (--config, default configs/default.toml), then MIXEDCLF_* variables, then the command line. Errors end in the
one exit-code table (cli/errors.py); FastAPI, uvicorn and torch are imported only when the command runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import typer

from mixedclf.cli import options as opt

# The ports a platform hands its container (Runpod load-balanced endpoints: the app on PORT, the /ping probe on
# PORT_HEALTH). Below --port / MIXEDCLF_PORT, above the config file.
PLATFORM_PORTS = {"port": "PORT", "health_port": "PORT_HEALTH"}


def _check_port(variable: str, raw: str) -> int:
    from mixedclf.errors import InputError

    if not raw.isdigit() or int(raw) > 65535:
        raise InputError(f"invalid {variable}: {raw!r} is not a port number (0-65535)",
                         hint="fix or unset the environment variable")
    return int(raw)


def build_settings(values: dict, config: Optional[Path] = None):
    """ServeSettings from every option given (not None), then MIXEDCLF_* variables, then PORT / PORT_HEALTH,
    then the [serve] table of the --config file and of the packaged defaults: the layered settings' sources
    (core/options.py), with the platform's ports as one more source."""
    from pydantic_settings import PydanticBaseSettingsSource

    from mixedclf.core.options import ConfigFileSource, LayeredSettings
    from mixedclf.core.options import build_settings as build_layered
    from mixedclf.serve.settings import ServeSettings

    class PlatformPorts(PydanticBaseSettingsSource):
        """PORT / PORT_HEALTH, for the fields no higher source (command line, MIXEDCLF_*) set."""

        def get_field_value(self, field, field_name):  # the variables are read at once by __call__
            return None, field_name, False

        def __call__(self) -> dict[str, Any]:
            found = {}
            for field, variable in PLATFORM_PORTS.items():
                raw = os.environ.get(variable, "").strip()
                if raw and self.current_state.get(field) is None:
                    found[field] = _check_port(variable, raw)
            return found

    class ServeOptions(ServeSettings, LayeredSettings):
        config_section = "serve"

        @classmethod
        def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                       file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, env_settings, PlatformPorts(settings_cls), ConfigFileSource(settings_cls)

    layered = build_layered(ServeOptions, values, config)
    return ServeSettings(**layered.model_dump(exclude={"config"}))  # the server takes plain, picklable settings


# serve's options, in --help's order; each is declared once (serve.settings.ServeSettings, or core.option_registry
# .SharedOptions for those classify takes too)
SERVE_OPTIONS = (
    "host", "port", "health_port", "model", "device", "precision", "backend", "clean", "cpu_workers", "torch_threads",
    "max_batch_size", "max_wait_ms", "max_batch_tokens", "max_queue", "max_text_chars", "max_batch_texts",
    "max_request_items", "stage_timeout_cpu", "stage_timeout_gpu", "pricing", "profile", "cache", "no_cache",
    "cache_max_bytes", "api_key", "insecure_no_auth", "header_timeout", "body_timeout", "keep_alive_timeout",
    "max_jobs", "job_ttl", "log_level", "access_log", "stages_from_env",
)


def register(app: typer.Typer) -> None:
    from mixedclf.serve.settings import ServeSettings  # pure pydantic: no FastAPI, no torch

    @app.command()
    @opt.with_options(ServeSettings, SERVE_OPTIONS)
    def serve(
        config: Optional[Path] = typer.Option(
            None, help="Defaults TOML; its serve table is read (default configs/default.toml)."
        ),
        **values: Any,
    ) -> None:
        """Serve the classifier over HTTP (FastAPI + uvicorn) with dynamic micro-batching on the device."""
        start_server(build_settings(remote_timeouts(values), config))


# A stage job may wait for a cold worker (image pull, model load): minutes, not the 10 / 30 s a local stage gets.
# Runpod's load balancer gives a request 5.5 minutes of processing.
REMOTE_STAGE_TIMEOUT_S = 300.0


def remote_timeouts(values: dict) -> dict:
    """With --stages-from-env, the stage timeouts neither the option nor MIXEDCLF_* gave are REMOTE_STAGE_TIMEOUT_S."""
    if not values.get("stages_from_env"):
        return values
    values = dict(values)
    for name in ("stage_timeout_cpu", "stage_timeout_gpu"):
        if values.get(name) is None and not os.environ.get(f"MIXEDCLF_{name.upper()}"):
            values[name] = REMOTE_STAGE_TIMEOUT_S
    return values


def orchestrator_values() -> dict:
    """`mixedclf worker --stage orchestrator` (what a deployed orchestrator's image runs): `serve
    --stages-from-env` on every interface, as Runpod's load balancer reaches it (its proxy takes the account's
    key; MIXEDCLF_API_KEY adds one of the server's own)."""
    return {"stages_from_env": True, "host": os.environ.get("MIXEDCLF_HOST") or "0.0.0.0",
            "insecure_no_auth": not os.environ.get("MIXEDCLF_API_KEY"),
            "api_key": os.environ.get("MIXEDCLF_API_KEY") or None}


def start_server(settings) -> None:
    from mixedclf.errors import InputError

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from mixedclf.serve.app import run_server
    except ImportError as exc:
        raise InputError(f"serving needs FastAPI and uvicorn ({exc.name} is missing)",
                         hint="pip install 'mixedclf[serve]'") from None
    run_server(settings)
