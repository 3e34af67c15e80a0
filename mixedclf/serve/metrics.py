"""Prometheus metrics of one server app, on its own CollectorRegistry (two apps in one process never clash).

Names (all prefixed `mixedclf_`):
- `requests_total{route,status}`, `request_duration_seconds{route}` (histogram), `texts_total{route}`
- `stage_duration_seconds{stage}` (histogram, per request): preprocess, queue, inference, postprocess
- `device_batch_duration_seconds` (histogram, per device batch)
- `batch_size` (histogram: texts per device forward pass), `batch_requests` (requests merged per device batch)
- `queue_depth` (requests waiting for the device), `queue_texts` (their texts), `inflight_texts` (admitted,
  not yet answered: what `--max-queue` bounds)
- `busy_seconds_total{stage,billing}`, `cost_dollars_total{stage,billing}` (pay-per-use at the profile's rates),
  `gpu_only_cost_dollars_total` (the same seconds all at the GPU rate: the counterfactual)
- `rejected_total{reason}`: invalid, too_large, body_timeout, unauthorized, queue_full, jobs_full,
  timeout_preprocess, timeout_inference, shutting_down, error
- `info{model,device,profile,cpu_workers}` = 1
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,  # noqa: F401 - re-exported for the app
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from mixedclf.serve.batcher import BatchOutcome

STAGES = ("preprocess", "queue", "inference", "postprocess")
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServeMetrics:
    def __init__(self, cpu_rate: float, gpu_rate: float):
        self.cpu_rate = cpu_rate
        self.gpu_rate = gpu_rate
        disable_created_metrics()  # no *_created series: half the exposition, nothing a dashboard reads
        r = self.registry = CollectorRegistry(auto_describe=True)
        p = "mixedclf_"
        self.requests = Counter(p + "requests_total", "HTTP requests answered", ["route", "status"], registry=r)
        self.request_seconds = Histogram(
            p + "request_duration_seconds", "Request handling time", ["route"], buckets=_SECONDS, registry=r
        )
        self.texts = Counter(p + "texts_total", "Texts processed", ["route"], registry=r)
        self.stage_seconds = Histogram(
            p + "stage_duration_seconds", "Per-request stage time", ["stage"], buckets=_SECONDS, registry=r
        )
        self.batch_seconds = Histogram(
            p + "device_batch_duration_seconds", "Wall time of one device batch", buckets=_SECONDS, registry=r
        )
        self.batch_size = Histogram(p + "batch_size", "Texts per device forward pass", buckets=_SIZES, registry=r)
        self.batch_requests = Histogram(
            p + "batch_requests", "Requests merged into one device batch", buckets=_SIZES, registry=r
        )
        self.queue_depth = Gauge(p + "queue_depth", "Requests waiting for the device", registry=r)
        self.queue_texts = Gauge(p + "queue_texts", "Texts waiting for the device", registry=r)
        self.inflight = Gauge(p + "inflight_texts", "Texts admitted and not yet answered (--max-queue)", registry=r)
        self.busy = Counter(p + "busy_seconds_total", "Busy seconds by stage", ["stage", "billing"], registry=r)
        self.cost = Counter(
            p + "cost_dollars_total", "Pay-per-use cost at the profile's rates", ["stage", "billing"], registry=r
        )
        self.gpu_only_cost = Counter(
            p + "gpu_only_cost_dollars_total", "The same stage seconds all billed at the GPU rate", registry=r
        )
        self.rejected = Counter(p + "rejected_total", "Requests refused or failed", ["reason"], registry=r)
        self.info = Gauge(p + "info", "Server facts", ["model", "device", "profile", "cpu_workers"], registry=r)
        for stage in STAGES:  # export every series from the start, at zero
            self.stage_seconds.labels(stage)
        for stage, billing in (("preprocess", "cpu"), ("inference", "gpu"), ("postprocess", "cpu")):
            self.busy.labels(stage, billing)
            self.cost.labels(stage, billing)

    # --- batcher observer -------------------------------------------------------------------------------------
    def queue_changed(self, requests: int, rows: int, inflight_rows: int) -> None:
        self.queue_depth.set(requests)
        self.queue_texts.set(rows)
        self.inflight.set(inflight_rows)

    def batch_done(self, rows: int, requests: int, wall_s: float, outcome: BatchOutcome) -> None:
        self.batch_seconds.observe(wall_s)
        self.batch_requests.observe(requests)
        for size in outcome.micro_batches:
            self.batch_size.observe(size)
        self.bill("inference", "gpu", outcome.busy_s)

    # --- requests ---------------------------------------------------------------------------------------------
    def bill(self, stage: str, billing: str, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.busy.labels(stage, billing).inc(seconds)
        self.cost.labels(stage, billing).inc(seconds * (self.cpu_rate if billing == "cpu" else self.gpu_rate))
        self.gpu_only_cost.inc(seconds * self.gpu_rate)

    def reject(self, reason: str) -> None:
        self.rejected.labels(reason).inc()

    def stage(self, stage: str, seconds: float) -> None:
        self.stage_seconds.labels(stage).observe(max(seconds, 0.0))

    def request_done(self, route: str, status: int, seconds: float, texts: int = 0) -> None:
        self.requests.labels(route, str(status)).inc()
        self.request_seconds.labels(route).observe(seconds)
        if texts:
            self.texts.labels(route).inc(texts)

    def render(self) -> bytes:
        return generate_latest(self.registry)
