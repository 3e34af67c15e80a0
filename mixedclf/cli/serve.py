"""`mixedclf serve`: options -> ServeSettings -> uvicorn (thin: the server lives in mixedclf/serve/).

mixedclf/cli/app.py calls ``register(app)``. Defaults come from ServeSettings, then the [serve] section of the
pipeline config file (--config, default configs/default.toml), then MIXEDCLF_* variables, then the command line. Errors end in the
one exit-code table (cli/errors.py); FastAPI, uvicorn and torch are imported only when the command runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from mixedclf.cli import options as opt

# The ports a platform hands its container (Runpod load-balanced endpoints: the app on PORT, the /ping probe on
# PORT_HEALTH). Below --port / MIXEDCLF_PORT, above the config file.
PLATFORM_PORTS = {"port": "PORT", "health_port": "PORT_HEALTH"}


def platform_ports(values: dict) -> dict:
    """`values` with the PORT / PORT_HEALTH variables filled in where neither the option nor MIXEDCLF_* gave one."""
    from mixedclf.errors import InputError

    values = dict(values)
    for field, variable in PLATFORM_PORTS.items():
        raw = os.environ.get(variable, "").strip()
        if values.get(field) is not None or os.environ.get(f"MIXEDCLF_{field.upper()}") or not raw:
            continue
        if not raw.isdigit() or int(raw) > 65535:
            raise InputError(f"invalid {variable}: {raw!r} is not a port number (0-65535)",
                             hint="fix or unset the environment variable")
        values[field] = int(raw)
    return values


def build_settings(values: dict, config: Optional[Path] = None):
    """ServeSettings from every option given (not None), then MIXEDCLF_* variables, then PORT / PORT_HEALTH,
    then the [serve] table of the --config file and of the packaged defaults."""
    from mixedclf.core.options import LayeredSettings
    from mixedclf.core.options import build_settings as build_layered
    from mixedclf.serve.settings import ServeSettings

    class ServeOptions(ServeSettings, LayeredSettings):
        config_section = "serve"

    layered = build_layered(ServeOptions, platform_ports(values), config)
    return ServeSettings(**layered.model_dump(exclude={"config"}))  # the server takes plain, picklable settings


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: Optional[str] = typer.Option(None, help="Address to listen on (default 127.0.0.1)."),
        port: Optional[int] = typer.Option(None, help="Port to listen on (default 8888; or $PORT)."),
        health_port: Optional[int] = typer.Option(
            None, help="A second port serving the same app, for a load balancer's GET /ping (or $PORT_HEALTH)."
        ),
        model: Optional[str] = opt.MODEL,
        device: Optional[str] = opt.DEVICE,
        precision: Optional[str] = opt.PRECISION,
        backend: Optional[str] = opt.BACKEND,
        clean: Optional[str] = opt.CLEAN,
        cpu_workers: Optional[int] = opt.CPU_WORKERS,
        torch_threads: Optional[int] = opt.TORCH_THREADS,
        max_batch_size: Optional[int] = typer.Option(None, help="Most texts in one device batch (default 32)."),
        max_wait_ms: Optional[float] = typer.Option(None, help="Longest a text waits for company (default 5)."),
        max_batch_tokens: Optional[int] = typer.Option(None, help="Most padded tokens per forward (8192; CPU 2048)."),
        max_queue: Optional[int] = typer.Option(
            None, help="Most texts in flight; more get 503 + Retry-After (default 1024)."
        ),
        max_text_chars: Optional[int] = typer.Option(None, help="Longest text accepted (default 10000 chars)."),
        max_batch_texts: Optional[int] = typer.Option(None, help="Most texts per /classify/batch (default 256)."),
        max_request_items: Optional[int] = typer.Option(
            None, help="Most JSON values in one request body, counted before parsing; more get 413 (default 10000)."
        ),
        stage_timeout_cpu: Optional[float] = typer.Option(
            None, help="Seconds preprocessing may take, then 504 (default 10)."
        ),
        stage_timeout_gpu: Optional[float] = typer.Option(
            None, help="Seconds queue + device batch may take, then 504 (default 30)."
        ),
        pricing: Optional[Path] = opt.PRICING,
        profile: Optional[str] = opt.PROFILE,
        cache: Optional[Path] = opt.CACHE,
        no_cache: Optional[bool] = opt.NO_CACHE,
        cache_max_bytes: Optional[int] = opt.CACHE_MAX_BYTES,
        api_key: Optional[str] = typer.Option(
            None, envvar="MIXEDCLF_API_KEY", show_envvar=True, show_default=False,
            help="Require Authorization: Bearer KEY on every route but /health and /ping (prefer the environment "
                 "variable: options show in ps).",
        ),
        insecure_no_auth: Optional[bool] = typer.Option(
            None, "--insecure-no-auth", help="Serve a non-loopback --host without an API key."
        ),
        header_timeout: Optional[float] = typer.Option(
            None, help="Seconds a client has to send a request's line and headers, then 408 (default 10)."
        ),
        body_timeout: Optional[float] = typer.Option(
            None, help="Seconds a client has to send a request's whole body, then 408 (default 30)."
        ),
        keep_alive_timeout: Optional[float] = typer.Option(
            None, help="Seconds an idle keep-alive connection stays open (default 5)."
        ),
        max_jobs: Optional[int] = typer.Option(None, help="Most async /run jobs held at once (default 1024)."),
        job_ttl: Optional[float] = typer.Option(
            None, help="Seconds a finished async job's result is kept for /status (default 1800)."
        ),
        log_level: Optional[str] = typer.Option(None, help="critical, error, warning, info, debug (default info)."),
        access_log: Optional[bool] = typer.Option(None, "--access-log/--no-access-log", help="Log every request."),
        stages_from_env: Optional[bool] = typer.Option(
            None, "--stages-from-env",
            help="Run no stage here: call the stage endpoints MIXEDCLF_ENDPOINT_PRE/_INFER/_POST (or _ALL) name, "
                 "on RUNPOD_ENDPOINT_BASE_URL with RUNPOD_API_KEY (the Runpod orchestrator; docs/runpod.md).",
        ),
        config: Optional[Path] = typer.Option(
            None, help="Defaults TOML; its serve table is read (default configs/default.toml)."
        ),
    ) -> None:
        """Serve the classifier over HTTP (FastAPI + uvicorn) with dynamic micro-batching on the device."""
        values = {k: v for k, v in locals().items() if k != "config"}
        values["no_cache"] = no_cache or None
        values["stages_from_env"] = stages_from_env or None
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
