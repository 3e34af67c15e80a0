"""`mixedclf serve`: options -> ServeSettings -> uvicorn (thin: the server lives in mixedclf/serve/).

mixedclf/cli.py calls ``register(app)``. Defaults come from ServeSettings, then the [serve] section of the
pipeline config file (--config, default configs/default.toml), then the command line. Errors are one line
on stderr with exit code 2; FastAPI, uvicorn and torch are imported only when the command runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def build_settings(values: dict, config: Optional[Path] = None):
    """ServeSettings from the config file's [serve] section overridden by every option given (not None)."""
    from pydantic import ValidationError

    from mixedclf.config import load_defaults
    from mixedclf.errors import InputError
    from mixedclf.serve.settings import ServeSettings

    merged = load_defaults(config, section="serve") | {k: v for k, v in values.items() if v is not None}
    try:
        return ServeSettings(**merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        where = "-".join(str(p) for p in first["loc"]).replace("_", "-")
        raise InputError(f"invalid option --{where}: {message}" if where else f"invalid options: {message}") from None


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: Optional[str] = typer.Option(None, help="Address to listen on (default 127.0.0.1)."),
        port: Optional[int] = typer.Option(None, help="Port to listen on (default 8888)."),
        model: Optional[str] = typer.Option(None, "--model", "-m", help="'default' or a local model folder."),
        device: Optional[str] = typer.Option(None, help="auto, cuda, mps or cpu (default auto)."),
        precision: Optional[str] = typer.Option(
            None, help="auto: fp16 on CUDA; bf16 on a CPU that computes it natively (AVX512_BF16 or AMX flag) and measured "
                ">= 1.2x fp32 on this model (cached once); else fp32. The report says which and why. "
                "Or fp32, fp16, bf16, int8 (CPU, onnxruntime)."
        ),
        backend: Optional[str] = typer.Option(
            None, help="torch (default) or onnxruntime (CPU, fp32 or int8; pip install 'mixedclf\\[onnx]'); "
            "converted once per model into the user cache. --precision int8 implies onnxruntime."
        ),
        clean: Optional[str] = typer.Option(None, help="standard (normalize + clean) or none."),
        cpu_workers: Optional[int] = typer.Option(None, help="Preprocessing processes (default from the cores)."),
        torch_threads: Optional[int] = typer.Option(None, help="torch intra-op threads for the model."),
        max_batch_size: Optional[int] = typer.Option(None, help="Most texts in one device batch (default 32)."),
        max_wait_ms: Optional[float] = typer.Option(None, help="Longest a text waits for company (default 5)."),
        max_batch_tokens: Optional[int] = typer.Option(None, help="Most padded tokens per forward (8192; CPU 2048)."),
        max_queue: Optional[int] = typer.Option(
            None, help="Most texts in flight; more get 503 + Retry-After (default 1024)."
        ),
        max_text_chars: Optional[int] = typer.Option(None, help="Longest text accepted (default 10000 chars)."),
        max_batch_texts: Optional[int] = typer.Option(None, help="Most texts per /classify/batch (default 256)."),
        stage_timeout_cpu: Optional[float] = typer.Option(
            None, help="Seconds preprocessing may take, then 504 (default 10)."
        ),
        stage_timeout_gpu: Optional[float] = typer.Option(
            None, help="Seconds queue + device batch may take, then 504 (default 30)."
        ),
        pricing: Optional[Path] = typer.Option(None, help="Pricing TOML (default configs/pricing.toml)."),
        profile: Optional[str] = typer.Option(None, help="Pricing profile for costs (default reference)."),
        log_level: Optional[str] = typer.Option(None, help="critical, error, warning, info, debug (default info)."),
        access_log: Optional[bool] = typer.Option(None, "--access-log/--no-access-log", help="Log every request."),
        config: Optional[Path] = typer.Option(
            None, help="Defaults TOML; its serve table is read (default configs/default.toml)."
        ),
    ) -> None:
        """Serve the classifier over HTTP (FastAPI + uvicorn) with dynamic micro-batching on the device."""
        values = {k: v for k, v in locals().items() if k != "config"}
        from mixedclf.errors import MixedclfError
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            settings = build_settings(values, config)
            try:
                from mixedclf.serve.app import run_server
            except ImportError as exc:
                raise _fail(f"serving needs FastAPI and uvicorn ({exc.name} is missing): pip install 'mixedclf[serve]'")
            run_server(settings)
        except MixedclfError as exc:
            raise _fail(exc.one_line(), exc.exit_code) from None
        except OSError as exc:  # e.g. the port is taken
            raise _fail(str(exc)) from None
