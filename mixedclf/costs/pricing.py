"""Pricing profiles: dollars per second per worker, read from configs/pricing.toml.

Pure module: no torch, no pools. See docs/cost-model.md.
"""

from __future__ import annotations

import math
import re
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
    # Runpod prices serverless CPU per vCPU (REST catalogue `GET /v2/catalog/cpus`, `price.serverlessPerVcpu`): a CPU
    # endpoint's rate is this times its instance's vCPUs. Unset: cpu_per_sec is one worker whatever its size.
    cpu_per_vcpu_sec: float | None = Field(default=None, ge=0)
    cpu_active_per_vcpu_sec: float | None = Field(default=None, ge=0)
    cpu_illustrative: bool = False  # the CPU rates are placeholders, not a published price
    gpu_pool: str | None = None  # the Runpod GPU pool these GPU rates are for (ADA_24, AMPERE_80, ...)
    # Which rates the source still shows: a rate it no longer shows is kept (the last figure seen) but flagged,
    # and it ages from read_on, when it was last seen.
    rates_not_shown: list[str] = []
    not_shown_noted_on: date | None = None  # the day the source was found without them
    not_shown_note: str = ""  # what the source says instead

    @field_validator("cpu_per_sec", "gpu_per_sec", "cpu_active_per_sec", "gpu_active_per_sec", "cpu_per_vcpu_sec",
                     "cpu_active_per_vcpu_sec")
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

    def cpu_rate(self, vcpus: int | None, active: bool = False) -> float:
        """One CPU worker's rate on an instance of `vcpus` vCPUs (flex, or active), per vCPU where the profile
        prices so; else the profile's per-worker rate."""
        per_vcpu = (self.cpu_active_per_vcpu_sec if active else None)
        per_vcpu = per_vcpu if per_vcpu is not None else self.cpu_per_vcpu_sec
        if per_vcpu is None or vcpus is None:
            return self.active_rate("cpu") if active else self.cpu_per_sec
        return per_vcpu * vcpus

    def shown_rates(self) -> list[str]:
        """The rates of this profile its source still shows."""
        rates = ["cpu_per_sec", "gpu_per_sec", "cpu_active_per_sec", "gpu_active_per_sec", "cpu_per_vcpu_sec"]
        return [r for r in rates if getattr(self, r) is not None and r not in self.rates_not_shown
                and not (self.cpu_illustrative and r.startswith("cpu"))]

    def unshown(self, today: date | None = None) -> str | None:
        """A one-line warning naming the rates the source no longer shows, with their age, else None."""
        if not self.rates_not_shown:
            return None
        seen = f"last seen in the copy read on {self.read_on.isoformat()}" if self.read_on else "last seen: unknown"
        if self.read_on is not None:
            seen += f", {((today or date.today()) - self.read_on).days} days ago"
        noted = f" (noted {self.not_shown_noted_on.isoformat()})" if self.not_shown_noted_on else ""
        why = f": {self.not_shown_note}" if self.not_shown_note else ""
        return (f"pricing profile {self.name!r}: {', '.join(self.rates_not_shown)} no longer shown by "
                f"{self.source or 'its source'}{noted}{why}; the figure used is the one {seen}")

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


_INSTANCE = re.compile(r"(cpu[0-9][a-z])-([0-9]+)-([0-9]+)")


def instance_vcpus(instance: str) -> int:
    """vCPUs of a Runpod CPU instance id `{flavor}-{vcpu}-{ram GB}` (e.g. cpu3c-1-2 -> 1)."""
    m = _INSTANCE.fullmatch(instance)
    if not m or int(m.group(2)) < 1:
        raise CostInputError(f"CPU instance {instance!r}: expected FLAVOR-VCPU-RAM, e.g. cpu3c-2-4 or cpu3g-4-16")
    return int(m.group(2))


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
