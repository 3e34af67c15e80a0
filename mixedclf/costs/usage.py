"""The usage file, `mixedclf-usage.toml`: a team's real traffic and deployment, read by `estimate` and `check`.

Like Infracost's usage file, it holds what the code cannot know: requests per day, active hours, each endpoint's
idle timeout, cold starts, min:max workers, the orchestrator, the billing model and the pricing profile. Every key
is the `estimate` option of the same name (underscores for dashes); a key the file does not set keeps the option's
default, and an option given on the command line wins over the file. Unknown keys are refused.

Pure module: no torch, no pools. Documented in docs/cost-model.md ("The usage file").
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mixedclf.configs import read_toml
from mixedclf.costs.pricing import CostInputError

#: Read from the current folder when present and no --usage is given.
USAGE_FILE_NAME = "mixedclf-usage.toml"


def parse_workers(spec: Any, option: str) -> tuple[int, int]:
    """"MIN:MAX" (or one number N, meaning 0:N), or a two-item list -> (min, max)."""
    if isinstance(spec, (list, tuple)):
        parts = list(spec)
    else:
        parts = str(spec).split(":")
    try:
        nums = [int(str(x).strip()) for x in parts]
    except ValueError:
        raise CostInputError(f"{option} expects MIN:MAX workers, e.g. 0:3, got {spec!r}") from None
    if len(nums) == 1:
        nums = [0, nums[0]]
    if len(nums) != 2 or not 0 <= nums[0] <= nums[1] or nums[1] < 1:
        raise CostInputError(f"{option} expects MIN:MAX with 0 <= MIN <= MAX and MAX >= 1, got {spec!r}")
    return nums[0], nums[1]


class Usage(BaseModel):
    """The keys a usage file may set (all optional). Names and meanings are those of `mixedclf estimate`."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    requests_per_day: float | None = Field(default=None, ge=0)
    active_hours: float | None = Field(default=None, gt=0, le=24)
    days_per_month: int | None = Field(default=None, gt=0)
    billing: Literal["ideal", "runpod"] | None = None
    profile: str | None = None
    pricing: Path | None = None  # relative to the usage file's folder
    overhead_sec: float | None = Field(default=None, ge=0)
    cold_start_sec: float | None = Field(default=None, ge=0)
    cold_start_cpu_sec: float | None = Field(default=None, ge=0)
    defaults: Literal["console", "flash"] | None = None
    start_billed: bool | None = None
    cpu_instance: str | None = None
    orchestrator_instance: str | None = None
    orchestrator_for: Literal["mixed", "both"] | None = None
    idle_timeout_cpu: float | None = Field(default=None, ge=0)
    idle_timeout_pre: float | None = Field(default=None, ge=0)
    idle_timeout_gpu: float | None = Field(default=None, ge=0)
    idle_timeout_post: float | None = Field(default=None, ge=0)
    gpu_workers: tuple[int, int] | None = None
    cpu_workers: tuple[int, int] | None = None
    orchestrator_workers: int | None = Field(default=None, ge=0)
    arrivals: Literal["poisson", "even"] | None = None
    seed: int | None = None
    sim_requests: int | None = Field(default=None, ge=100, le=1_000_000)
    spend_limit: float | None = Field(default=None, gt=0)

    @field_validator("gpu_workers", "cpu_workers", mode="before")
    @classmethod
    def _workers(cls, value: Any, info) -> tuple[int, int] | None:
        if value is None:
            return None
        try:
            return parse_workers(value, info.field_name)
        except CostInputError as exc:
            raise ValueError(str(exc)) from None

    def given(self) -> dict[str, Any]:
        """The keys the file sets, without `version`."""
        return {k: v for k, v in self.model_dump(exclude_unset=True).items() if k != "version" and v is not None}

    def estimate_fields(self) -> dict[str, Any]:
        """The file's values as EstimateInputs fields (spend_limit is spend_limit_per_hour there)."""
        out = {k: v for k, v in self.given().items() if k not in ("profile", "pricing")}
        if "spend_limit" in out:
            out["spend_limit_per_hour"] = out.pop("spend_limit")
        return out


class UsageFile(BaseModel):
    path: Path
    usage: Usage

    def describe(self) -> str:
        keys = ", ".join(self.usage.given()) or "no keys"
        return f"usage file {self.path} ({keys})"


def _unknown_key_message(path: Path, key: str) -> str:
    known = [k for k in Usage.model_fields if k != "version"]
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
    return f"{path}: unknown key {key!r} ({hint})"


def load_usage(path: Path | str) -> UsageFile:
    """Read and validate a usage file. Unreadable, not TOML, an unknown key or a bad value -> one-line CostInputError."""
    p = Path(path)
    data = read_toml(p, "usage file", CostInputError)
    try:
        usage = Usage.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(x) for x in first["loc"]) or "(root)"
        if first["type"] == "extra_forbidden":
            raise CostInputError(_unknown_key_message(p, key)) from None
        message = str(first["msg"]).removeprefix("Value error, ")
        raise CostInputError(f"{p}: {key}: {message}") from None
    if usage.pricing is not None and not usage.pricing.is_absolute():
        usage = usage.model_copy(update={"pricing": p.parent / usage.pricing})
    return UsageFile(path=p, usage=usage)


def find_usage(explicit: Path | None, *, disabled: bool = False, folder: Path | None = None) -> UsageFile | None:
    """The usage file in effect: --usage FILE, else mixedclf-usage.toml in the current folder, else none."""
    if disabled:
        return None
    if explicit is not None:
        return load_usage(explicit)
    here = (folder or Path.cwd()) / USAGE_FILE_NAME
    return load_usage(here) if here.is_file() else None
