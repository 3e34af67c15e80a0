"""What the prediction cache saved a run: rows answered without the device, priced like the device time they did
not need (docs/cache.md). Numbers only: the counts come from the run, the rate from its pricing profile."""

from __future__ import annotations

from pydantic import BaseModel, Field

from mixedclf.costs.accounting import CostBreakdown, clean
from mixedclf.costs.pricing import PricingProfile


class CacheSavings(BaseModel):
    """A run's prediction cache: its counts and the device time and dollars its hits avoided.

    Avoided device seconds = hits x the run's measured device busy seconds per row computed on the device; None
    when no row was computed (nothing measured to price a hit by). Dollars: those seconds at the GPU rate
    (pay-per-use: the device stage's busy seconds x its rate; a provisioned GPU is held as much shorter, whole-second
    rounding aside). A CPU run prices its CPU device seconds at the GPU rate, divided by --gpu-speedup when given,
    as the report's other GPU-priced figures do.
    """

    path: str
    hits: int = Field(ge=0)
    untokenized: int = Field(0, ge=0)  # of the hits, those answered before tokenizing (not tokenized at all)
    misses: int = Field(ge=0)
    hit_rate: float = Field(ge=0, le=1)
    stored: int = Field(ge=0)
    evicted: int = Field(ge=0)
    disabled: str | None = None  # why the cache stopped serving the run part-way, if it did
    device_s_per_row: float | None = None
    avoided_device_s: float | None = None
    avoided_usd: float | None = None
    priced_as: str = ""

    def describe(self) -> str:
        line = f"prediction cache: {self.hits:,} hits, {self.misses:,} misses ({self.hit_rate:.1%})"
        if self.untokenized:
            line += f"; {self.untokenized:,} hits not tokenized"
        if self.avoided_device_s is not None and self.avoided_usd is not None:
            line += f"; avoided {self.avoided_device_s:,.2f} device s, ${self.avoided_usd:.6f} ({self.priced_as})"
        elif self.hits:
            line += "; no row ran on the device, so no seconds per row were measured to price the hits by"
        if self.disabled:
            line += f"; off part-way: {self.disabled}"
        return line


def cache_savings(*, path: str, hits: int, misses: int, stored: int, evicted: int, disabled: str | None,
                  device_busy_s: float, computed_rows: int, pricing: PricingProfile,
                  cost: CostBreakdown, untokenized: int = 0) -> CacheSavings:
    asked = hits + misses
    per_row = device_busy_s / computed_rows if computed_rows else None
    avoided_s = usd = None
    priced_as = ""
    if per_row is not None:
        avoided_s = hits * per_row
        billed_s = avoided_s
        priced_as = "pay-per-use: device seconds x the GPU rate"
        if cost.inference_on_cpu:
            if cost.gpu_speedup is not None:
                billed_s = avoided_s / cost.gpu_speedup
                priced_as = f"CPU seconds / {cost.gpu_speedup:g} (--gpu-speedup) x the GPU rate"
            else:
                priced_as = "CPU seconds priced at the GPU rate"
        usd = clean(billed_s * pricing.gpu_per_sec)
    return CacheSavings(path=path, hits=hits, untokenized=untokenized, misses=misses,
                        hit_rate=hits / asked if asked else 0.0, stored=stored, evicted=evicted, disabled=disabled,
                        device_s_per_row=per_row, avoided_device_s=avoided_s, avoided_usd=usd, priced_as=priced_as)
