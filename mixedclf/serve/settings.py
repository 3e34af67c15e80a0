"""Typed settings of `mixedclf serve`: what the command line fills in and `create_app` reads.

Pure pydantic (no FastAPI, no torch), so the CLI can validate options before importing the server.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mixedclf.core.options import DEFAULT_CACHE_MAX_BYTES, MIN_CACHE_MAX_BYTES


class ServeSettings(BaseModel):
    """Every knob of the server. Field names match the command-line options (underscores become dashes)."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8888, ge=0, le=65535)
    # A second port serving the same app, for a load balancer's /ping (Runpod's PORT_HEALTH); None: only `port`.
    health_port: int | None = Field(default=None, ge=0, le=65535)
    model: str = "default"
    device: str = "auto"
    precision: Literal["auto", "fp32", "fp16", "bf16", "int8"] = "auto"
    backend: Literal["torch", "onnxruntime"] | None = None  # None: torch, or onnxruntime for int8
    clean: Literal["standard", "none"] = "standard"
    cpu_workers: int | None = Field(default=None, ge=1, description="preprocessing processes [from cores, device]")
    torch_threads: int | None = Field(default=None, ge=1)
    # Dynamic micro-batching on the device.
    max_batch_size: int = Field(default=32, ge=1, description="most texts in one device batch")
    max_wait_ms: float = Field(default=5.0, ge=0, description="longest a text waits for company before it runs")
    max_batch_tokens: int | None = Field(
        default=None, ge=1, description="most padded tokens in one forward pass [8192; 2048 on a CPU device]"
    )
    max_queue: int = Field(default=1024, ge=1, description="most texts admitted and not yet answered")
    # Validation limits, checked before any work is queued.
    max_text_chars: int = Field(default=10_000, ge=1)
    max_batch_texts: int = Field(default=256, ge=1)
    # Counted in the raw body before it is parsed: a 14 MB array of 7 million numbers would otherwise become
    # gigabytes of Python objects and validation errors, and stall every other request meanwhile.
    max_request_items: int = Field(
        default=10_000, ge=1, description="most JSON values (array items, object members) in one request body"
    )
    # Per-stage timeouts (seconds) -> 504.
    stage_timeout_cpu: float = Field(default=10.0, gt=0, description="preprocessing of one request")
    stage_timeout_gpu: float = Field(default=30.0, gt=0, description="waiting for and running the device batch")
    # Cost accounting.
    pricing: Path | None = None
    profile: str = "reference"
    # The prediction cache (docs/cache.md): texts answered before skip the device. None: the user cache folder's.
    cache: Path | None = None
    no_cache: bool = False
    cache_max_bytes: int = Field(default=DEFAULT_CACHE_MAX_BYTES, ge=MIN_CACHE_MAX_BYTES)
    # Authentication: a bearer key on every route but /health and /ping. Never printed (repr=False).
    api_key: str | None = Field(default=None, repr=False, description="bearer key clients must send")
    insecure_no_auth: bool = Field(default=False, description="allow a non-loopback host without --api-key")
    # Slow or hostile clients: how long one may hold a connection without finishing its request.
    header_timeout: float = Field(default=10.0, gt=0, description="seconds to send a request's head")
    body_timeout: float = Field(default=30.0, gt=0, description="seconds to send a request's whole body")
    keep_alive_timeout: float = Field(default=5.0, gt=0, description="idle seconds before a connection closes")
    # Async jobs (Runpod's /run + /status).
    max_jobs: int = Field(default=1024, ge=1, description="most async jobs held (queued, running or finished)")
    job_ttl: float = Field(default=1800.0, gt=0, description="seconds a finished job's result is kept")
    # Every stage on a deployed endpoint (the Runpod orchestrator): MIXEDCLF_ENDPOINT_PRE/_INFER/_POST or _ALL.
    stages_from_env: bool = Field(default=False, description="call the stage endpoints the environment names")
    # Server behaviour.
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = "info"
    access_log: bool = False
    graceful_timeout_s: float = Field(default=10.0, gt=0, description="how long shutdown waits for requests")

    def max_body_bytes(self) -> int:
        """The largest request body the text limits could ever need (more is a 413)."""
        # A JSON string can spend 6 bytes (\uXXXX) on one character; plus room for keys and framing.
        return self.max_batch_texts * (self.max_text_chars * 6 + 16) + 65536

    @model_validator(mode="after")
    def _queue_holds_a_batch(self) -> "ServeSettings":
        if self.max_queue < self.max_batch_texts:
            raise ValueError(
                f"max_queue ({self.max_queue}) must be at least max_batch_texts ({self.max_batch_texts}), "
                "or the largest allowed batch request could never be admitted"
            )
        return self

    @model_validator(mode="after")
    def _items_hold_a_batch(self) -> "ServeSettings":
        needed = self.max_batch_texts + REQUEST_ITEMS_SLACK
        if self.max_request_items < needed:
            raise ValueError(
                f"max_request_items ({self.max_request_items}) must be at least max_batch_texts + "
                f"{REQUEST_ITEMS_SLACK} ({needed}), or the largest allowed batch request would be refused"
            )
        return self

    @model_validator(mode="after")
    def _no_open_door(self) -> "ServeSettings":
        if self.api_key is not None and self.api_key != self.api_key.strip():
            raise ValueError("--api-key starts or ends with white space, which no HTTP header can carry")
        if self.api_key is not None and len(self.api_key) < MIN_API_KEY_CHARS:
            raise ValueError(
                f"--api-key is shorter than {MIN_API_KEY_CHARS} characters; make one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        if self.api_key is None and not self.insecure_no_auth and not is_loopback(self.host):
            raise ValueError(
                f"--host {self.host} is reachable from other machines and no API key is set: give --api-key "
                "(or MIXEDCLF_API_KEY), or --insecure-no-auth to serve without one"
            )
        return self


MIN_API_KEY_CHARS = 16
# Room beside a batch's texts for the body's own object and keys (and a few a client may add, which are ignored).
REQUEST_ITEMS_SLACK = 16


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server on this machine (a name other than localhost counts as open)."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
