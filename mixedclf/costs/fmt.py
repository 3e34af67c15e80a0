"""Number formatting shared by the renderings and the cost messages: plain strings, no rendering library."""

from __future__ import annotations

import math


def _money_decimals(a: float) -> int:
    """2 decimals from $1 (and for 0), 4 from $0.01; below, three significant digits, at most 6 decimals."""
    if a >= 1 or a == 0:
        return 2
    if a >= 0.01:
        return 4
    return min(6, 2 - math.floor(math.log10(a)))


def fmt_money(x: float | None, digits: int | None = None) -> str:
    """Dollars with sensible digits (_money_decimals, or exactly ``digits``); an amount too small to show at
    those digits is "<$0.000001", never a $0.000000 that reads as free."""
    if x is None:
        return "—"
    a = abs(x)
    if digits is None:
        digits = _money_decimals(a)
    if a and round(a, digits) == 0:
        return f"<${10 ** -digits:.{digits}f}"
    s = f"${a:,.{digits}f}"
    return f"-{s}" if x < 0 and float(f"{a:.{digits}f}") != 0 else s


def money_digits(values) -> int:
    """One decimal count for a column of dollar amounts: enough for its smallest non-zero value."""
    digits = 2
    for x in values:
        if x:
            digits = max(digits, _money_decimals(abs(x)))
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
