"""Number formatting shared by the renderings and the cost messages: plain strings, no rendering library."""

from __future__ import annotations

import math


def fmt_money(x: float | None, digits: int | None = None) -> str:
    """Dollars: 2 decimals from $1 (and for 0), 4 from $0.01, else 6 (or exactly ``digits``)."""
    if x is None:
        return "—"
    if digits is None:
        a = abs(x)
        digits = 2 if a >= 1 or a == 0 else 4 if a >= 0.01 else 6
    s = f"${abs(x):,.{digits}f}"
    return f"-{s}" if x < 0 and float(f"{abs(x):.{digits}f}") != 0 else s


def money_digits(values) -> int:
    """One decimal count for a column of dollar amounts: enough for its smallest non-zero value."""
    digits = 2
    for x in values:
        if x:
            a = abs(x)
            digits = max(digits, 2 if a >= 1 else 4 if a >= 0.01 else 6)
    return digits


def fmt_rate(x: float) -> str:
    return f"${x:.6g}/s"


def fmt_s(x: float) -> str:
    return f"{x:,.3f}" if abs(x) < 1000 else f"{x:,.1f}"


def fmt_pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f}%"


def fmt_num(x: float) -> str:
    """Counts such as requests/day: integer with separators when whole, else 3 significant digits."""
    return f"{x:,.0f}" if float(x).is_integer() or abs(x) >= 100 else f"{x:,.3g}"


def format_pct(p: float) -> str:
    """A percentage of `check`: one decimal, ∞% when the baseline was 0."""
    return "∞%" if math.isinf(p) else f"{p:.1f}%"


def format_value(metric_or_unit: str, v: float | None) -> str:
    """A `check` number by its metric name or its row's unit: dollars, rows/s, seconds, percent, else plain."""
    if v is None:
        return "—"
    if metric_or_unit in ("cost_per_1k", "$ / 1k", "$"):
        return fmt_money(v)
    if metric_or_unit in ("throughput", "rows/s"):
        return f"{v:,.1f} rows/s"
    if metric_or_unit in ("gpu_seconds_per_1k", "GPU s / 1k", "s / 1k"):
        return f"{v:,.4g} s"
    if metric_or_unit == "%":
        return f"{v:.1f}%"
    return f"{v:,.6g}"
