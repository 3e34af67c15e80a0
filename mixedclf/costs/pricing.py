"""Pricing profiles: dollars per second per worker, read from configs/pricing.toml.

Pure module: no torch, no pools. See docs/cost-model.md.
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, field_validator

from mixedclf.configs import packaged_config, read_toml
from mixedclf.errors import InputError, validation_line

DEFAULT_PRICING_PATH = packaged_config("pricing.toml")

DEFAULT_PROFILE = "reference"
#: A price read longer ago than this is flagged: cloud price lists change.
STALE_AFTER_DAYS = 180


class CostInputError(InputError, ValueError):
    """A pricing file, profile, report or cost option cannot be used (exit code 2, one line)."""


class PricingProfile(BaseModel):
    """Per-second rates of one CPU worker and one GPU worker, with where and when they were read.

    ``cpu_per_sec`` / ``gpu_per_sec`` are the flex (scale-to-zero) rates; ``*_active_per_sec`` the rates of
    always-on (active, min) workers, the flex rate when a price list has none.
    """

    name: str
    description: str = ""
    cpu_per_sec: float = Field(ge=0)
    gpu_per_sec: float = Field(ge=0)
    cpu_active_per_sec: float | None = Field(default=None, ge=0)
    gpu_active_per_sec: float | None = Field(default=None, ge=0)
    cpu_desc: str = ""
    gpu_desc: str = ""
    source: str = ""  # where the GPU rates (and the CPU rate, unless cpu_source says otherwise) were read
    cpu_source: str = ""
    read_on: date | None = None  # the day the source was read
    illustrative: bool = False  # made-up rates for a worked design, not a price list: never stale

    @field_validator("cpu_per_sec", "gpu_per_sec", "cpu_active_per_sec", "gpu_active_per_sec")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("rate must be a finite number of dollars per second")
        return value

    def active_rate(self, billing: str) -> float:
        """The always-on rate for a billing class: the active rate, or the flex rate when there is none."""
        flex = self.rate(billing)
        active = self.cpu_active_per_sec if billing == "cpu" else self.gpu_active_per_sec
        return flex if active is None else active

    def staleness(self, today: date | None = None) -> str | None:
        """A one-line warning when these rates may be out of date, else None."""
        if self.illustrative:
            return None
        if self.read_on is None:
            return f"pricing profile {self.name!r} has no read_on date: its rates may be out of date"
        age = ((today or date.today()) - self.read_on).days
        if age > STALE_AFTER_DAYS:
            return (
                f"pricing profile {self.name!r} was read on {self.read_on.isoformat()}, {age} days ago "
                f"(over {STALE_AFTER_DAYS}): check {self.source or 'its source'} for current rates"
            )
        return None

    def rate(self, billing: str) -> float:
        """The rate for a billing class: "cpu" or "gpu"."""
        if billing == "cpu":
            return self.cpu_per_sec
        if billing == "gpu":
            return self.gpu_per_sec
        raise CostInputError(f"unknown billing class {billing!r} (expected 'cpu' or 'gpu')")


def read_profiles(path: Path | str | None = None) -> dict[str, dict]:
    """Raw profile tables from a pricing TOML file, by name."""
    p = Path(path) if path is not None else DEFAULT_PRICING_PATH
    data = read_toml(p, "pricing file", CostInputError)
    profiles = data.get("profiles")
    if not isinstance(profiles, dict) or not profiles:
        raise CostInputError(f"pricing file {p} has no [profiles.NAME] tables")
    return {str(k): v for k, v in profiles.items() if isinstance(v, dict)}


def list_profiles(path: Path | str | None = None) -> list[str]:
    return sorted(read_profiles(path))


def load_pricing(path: Path | str | None = None, profile: str = DEFAULT_PROFILE) -> PricingProfile:
    """Load one profile. Unknown profile or unreadable file -> CostInputError (one line)."""
    profiles = read_profiles(path)
    if profile not in profiles:
        where = Path(path) if path is not None else DEFAULT_PRICING_PATH
        raise CostInputError(
            f"unknown pricing profile {profile!r} in {where}; available: {', '.join(sorted(profiles))}"
        )
    table = dict(profiles[profile])
    table.pop("name", None)
    try:
        return PricingProfile(name=profile, **table)
    except ValidationError as exc:
        raise CostInputError(f"pricing profile {profile!r} is invalid ({validation_line(exc)})") from None
