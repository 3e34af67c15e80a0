"""Typed settings of `mixedclf serve`: what the command line fills in and `create_app` reads.

Pure pydantic (no FastAPI, no torch), so the CLI can validate options before importing the server.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from mixedclf.core.option_registry import SharedOptions, option


class ServeSettings(SharedOptions):
    """Every knob of the server. Field names match the command-line options (underscores become dashes); each
    option is declared here or, when `classify` takes it too, in core.option_registry.SharedOptions."""

    model_config = ConfigDict(extra="forbid")

    host: str = option("127.0.0.1", "Address to listen on (default 127.0.0.1).")
    port: int = option(8888, "Port to listen on (default 8888; or $PORT).", ge=0, le=65535)
    # A second port serving the same app, for a load balancer's /ping (Runpod's PORT_HEALTH); None: only `port`.
    health_port: int | None = option(
        None, "A second port serving the same app, for a load balancer's GET /ping (or $PORT_HEALTH).", ge=0,
        le=65535)
    # Dynamic micro-batching on the device.
    max_batch_size: int = option(32, "Most texts in one device batch (default 32).", ge=1)
    max_wait_ms: float = option(5.0, "Longest a text waits for company (default 5).", ge=0)
    max_batch_tokens: int | None = option(None, "Most padded tokens per forward (8192; CPU 2048).", ge=1)
    max_queue: int = option(1024, "Most texts in flight; more get 503 + Retry-After (default 1024).", ge=1)
    # Validation limits, checked before any work is queued.
    max_text_chars: int = option(10_000, "Longest text accepted (default 10000 chars).", ge=1)
    max_batch_texts: int = option(256, "Most texts per /classify/batch (default 256).", ge=1)
    # Counted in the raw body before it is parsed: a 14 MB array of 7 million numbers would otherwise become
    # gigabytes of Python objects and validation errors, and stall every other request meanwhile.
    max_request_items: int = option(
        10_000, "Most JSON values in one request body, counted before parsing; more get 413 (default 10000).", ge=1)
    # Per-stage timeouts (seconds) -> 504.
    stage_timeout_cpu: float = option(10.0, "Seconds preprocessing may take, then 504 (default 10).", gt=0)
    stage_timeout_gpu: float = option(30.0, "Seconds queue + device batch may take, then 504 (default 30).", gt=0)
    # Authentication: a bearer key on every route but /health and /ping. Never printed (repr=False).
    api_key: str | None = option(
        None, "Require Authorization: Bearer KEY on every route but /health and /ping (prefer the environment "
        "variable: options show in ps).", envvar="MIXEDCLF_API_KEY", show_default=False, repr=False)
    insecure_no_auth: bool = option(False, "Serve a non-loopback --host without an API key.",
                                    flags=("--insecure-no-auth",))
    # Slow or hostile clients: how long one may hold a connection without finishing its request.
    header_timeout: float = option(
        10.0, "Seconds a client has to send a request's line and headers, then 408 (default 10).", gt=0)
    body_timeout: float = option(30.0, "Seconds a client has to send a request's whole body, then 408 (default 30).",
                                 gt=0)
    keep_alive_timeout: float = option(5.0, "Seconds an idle keep-alive connection stays open (default 5).", gt=0)
    # Async jobs (Runpod's /run + /status).
    max_jobs: int = option(1024, "Most async /run jobs held at once (default 1024).", ge=1)
    job_ttl: float = option(1800.0, "Seconds a finished async job's result is kept for /status (default 1800).",
                            gt=0)
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = option(
        "info", "critical, error, warning, info, debug (default info).")
    access_log: bool = option(False, "Log every request.", flags=("--access-log/--no-access-log",))
    # Every stage on a deployed endpoint (the Runpod orchestrator): MIXEDCLF_ENDPOINT_PRE/_INFER/_POST or _ALL.
    stages_from_env: bool = option(
        False, "Run no stage here: call the stage endpoints MIXEDCLF_ENDPOINT_PRE/_INFER/_POST (or _ALL) name, on "
        "RUNPOD_ENDPOINT_BASE_URL with RUNPOD_API_KEY (the Runpod orchestrator; docs/runpod.md).",
        flags=("--stages-from-env",))
    # Server behaviour.
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
