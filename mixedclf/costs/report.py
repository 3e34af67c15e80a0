"""Versioned run reports (pydantic): build, write atomically, read back and validate.

The JSON report is the source of truth; the table, the markdown and the PR comment are renderings of it (as in
Infracost), made by mixedclf.render.report. Pure module: no torch, no pools.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from mixedclf.costs.accounting import (
    DEFAULT_IDLE_TIMEOUT_S,
    READABLE_SCHEMA_VERSIONS,
    SCHEMA_VERSION,
    CostBreakdown,
    RunMeasurements,
    price_run,
)
from mixedclf.costs.cache import CacheSavings
from mixedclf.costs.estimate import EstimateReport
from mixedclf.costs.fmt import fmt_money
from mixedclf.costs.pricing import CostInputError, PricingProfile
from mixedclf.costs.runpod_jobs import RunpodJobBill
from mixedclf.costs.work import Calibration, WorkCounts
from mixedclf.errors import validation_line

__all__ = [
    "SCHEMA_VERSION",
    "ClassifyReport",
    "JobTotals",
    "EstimateReport",
    "LabelAggregate",
    "ResumeInfo",
    "build_classify_report",
    "load_report",
    "parse_report",
    "write_report",
]


def _version() -> str:
    try:
        from mixedclf import __version__

        return str(__version__)
    except Exception:  # pragma: no cover - namespace package without __init__
        try:
            from importlib.metadata import version

            return version("mixedclf")
        except Exception:
            return "unknown"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class LabelAggregate(BaseModel):
    label_counts: dict[str, int] = {}
    mean_confidence: float = 0.0
    bucket_counts: dict[str, int] = {}  # "high" (> 0.8), "medium" (> 0.5), "low"


class ResumeInfo(BaseModel):
    """A run that continued from a checkpoint: its seconds and work cover only the rows classified after it."""

    from_chunk: int = Field(ge=0)  # chunks written by earlier processes
    rows_before: int = Field(ge=0)  # their input rows (from the checkpoint)
    rows_this_run: int = Field(ge=0)

    def describe(self) -> str:
        total = self.rows_before + self.rows_this_run
        return (f"partial run: resumed at chunk {self.from_chunk}; seconds, work and cost cover the "
                f"{self.rows_this_run:,} rows classified by this process, not the {total:,} rows of the whole job")


class JobTotals(BaseModel):
    """A job classified over several processes (--resume): the whole job's totals, this process included. Rows
    are the job's; seconds and dollars are each earlier process's up to its last checkpoint, plus this one's."""

    runs: int = Field(ge=1)
    rows_in: int = Field(ge=0)
    rows_out: int = Field(ge=0)
    rows_errored: int = Field(ge=0)
    process_s: float = Field(ge=0)
    provisioned_usd: float = Field(ge=0)  # the provisioned bill of the architecture the job ran as (measured)

    def describe(self) -> str:
        return (f"whole job ({self.runs} runs): {self.rows_out:,} rows out of {self.rows_in:,} in "
                f"{self.process_s:,.2f} s; provisioned bill {fmt_money(self.provisioned_usd)} (measured, every run)")


class ClassifyReport(BaseModel):
    kind: Literal["classify"] = "classify"
    schema_version: int = SCHEMA_VERSION
    mixedclf_version: str = Field(default_factory=_version)
    created_at: str = Field(default_factory=utc_now)
    model: str
    input_path: str
    output_path: str
    mode: Literal["mixed", "gpu-only"]
    engine: str = "local"
    device: str
    rows_in: int
    rows_out: int
    rows_errored: int = 0
    # The run's options as resolved; "precision" is what ran (never "auto"), "precision_reason" why it was
    # chosen ("bf16: CPU has AVX512_BF16, measured 1.96x fp32"), "backend" torch or onnxruntime.
    settings: dict[str, Any] = {}
    pricing: PricingProfile
    measurements: RunMeasurements
    cost: CostBreakdown
    aggregate: LabelAggregate = LabelAggregate()
    extra: dict[str, Any] = {}
    work: WorkCounts | None = None  # None in version-1 reports and from engines that do not count it (Ray)
    calibration: Calibration | None = None
    resumed: ResumeInfo | None = None  # set: this report is partial (see ResumeInfo)
    # set (the stop's message): the run stopped early, at its --max-cost; the report covers the rows written
    stopped: str | None = None
    job: JobTotals | None = None  # set on a resumed run: the whole job's totals
    cache: CacheSavings | None = None  # the prediction cache's hits and what they avoided; None: ran without one
    runpod: RunpodJobBill | None = None  # --engine runpod: what Runpod bills for the run's jobs, per worker

    @property
    def partial(self) -> bool:
        return self.resumed is not None or self.stopped is not None


AnyReport = ClassifyReport | EstimateReport


def build_classify_report(**fields: Any) -> ClassifyReport:
    """Build a ClassifyReport; ``cost`` is computed with price_run(measurements, pricing).

    Optional ``requests_per_day`` (not stored as a field) adds per-day / per-month projections; ``idle_timeout_s``
    and ``gpu_speedup`` are passed to price_run.
    """
    requests_per_day = fields.pop("requests_per_day", None)
    idle_timeout_s = fields.pop("idle_timeout_s", None)
    gpu_speedup = fields.pop("gpu_speedup", None)
    fields.pop("cost", None)
    measurements = fields.get("measurements")
    pricing = fields.get("pricing")
    if isinstance(measurements, dict):
        measurements = RunMeasurements.model_validate(measurements)
        fields["measurements"] = measurements
    if isinstance(pricing, dict):
        pricing = PricingProfile.model_validate(pricing)
        fields["pricing"] = pricing
    if measurements is None or pricing is None:
        raise CostInputError("build_classify_report needs measurements and pricing")
    fields.setdefault("mode", measurements.mode)
    fields["cost"] = price_run(
        measurements, pricing, requests_per_day,
        idle_timeout_s=DEFAULT_IDLE_TIMEOUT_S if idle_timeout_s is None else idle_timeout_s, gpu_speedup=gpu_speedup,
    )
    return ClassifyReport(**fields)


def write_report(report: BaseModel, path: str | Path) -> Path:
    """Write a report as indented JSON, atomically (temp file + rename). A folder is refused by name, before a temp
    file is made beside it (renaming onto a folder fails with the temp file's name, or EBUSY on a mount point).
    The file is created 0666 less the umask, like any file a shell writes (mkstemp's 0600 would hide a nightly
    report from the group that reads it)."""
    p = Path(path)
    if p.is_dir():
        raise CostInputError(f"report path {p} is a folder; give a file name, e.g. {p / 'report.json'}")
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.parent / f".{p.name}.{uuid.uuid4().hex[:12]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(report.model_dump_json(indent=2))
            fh.write("\n")
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def parse_report(data: Any, source: str = "report") -> AnyReport:
    """Validate already-decoded JSON as a classify or estimate report (dispatch on "kind")."""
    if not isinstance(data, dict):
        raise CostInputError(f"{source}: not a mixedclf report (expected a JSON object)")
    kind = data.get("kind")
    if kind not in ("classify", "estimate"):
        raise CostInputError(f"{source}: not a mixedclf report (kind {kind!r}; expected 'classify' or 'estimate')")
    version = data.get("schema_version")
    if version not in READABLE_SCHEMA_VERSIONS:
        readable = ", ".join(str(v) for v in READABLE_SCHEMA_VERSIONS)
        raise CostInputError(
            f"{source}: schema_version {version!r} is not supported (this mixedclf reads {readable})"
        )
    model = ClassifyReport if kind == "classify" else EstimateReport
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise CostInputError(f"{source}: invalid {kind} report ({validation_line(exc)})") from None


def load_report(path: str | Path) -> AnyReport:
    """Read a saved report. Missing, unreadable, wrong kind or schema -> CostInputError (one line)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CostInputError(f"report not found: {p}") from None
    except IsADirectoryError:
        raise CostInputError(f"report path is a directory: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CostInputError(f"cannot read report {p}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CostInputError(f"{p}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    return parse_report(data, str(p))
