"""Sweeps of `mixedclf estimate` over request rates: the --sweep option, the rates, the rows, and --plot.

matplotlib is imported only when a plot is drawn, so the cost package stays light.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from mixedclf.costs.estimate import EstimateInputs, SweepRow, compute
from mixedclf.costs.fmt import fmt_num
from mixedclf.costs.pricing import CostInputError

if TYPE_CHECKING:  # pragma: no cover
    from mixedclf.costs.estimate import EstimateReport


def parse_sweep(spec: str) -> tuple[float, float]:
    """"1000:1000000" (also 1k:1M, 1_000:1,000,000) -> (1000.0, 1000000.0)."""

    def num(s: str) -> float:
        s = s.strip().lower().replace("_", "").replace(",", "")
        m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)([km]?)", s)
        if not m:
            raise CostInputError(f"--sweep: {s!r} is not a number (use e.g. 1000:1000000 or 1k:1M)")
        return float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[m.group(2)]

    parts = spec.split(":")
    if len(parts) != 2:
        raise CostInputError(f"--sweep expects FROM:TO requests/day, got {spec!r}")
    a, b = num(parts[0]), num(parts[1])
    if a <= 0 or b <= a:
        raise CostInputError(f"--sweep expects 0 < FROM < TO, got {spec!r}")
    return a, b


def sweep_points(a: float, b: float, points: int = 10) -> list[float]:
    """Log-spaced request rates from a to b, rounded to 3 significant digits (ends exact)."""
    if points < 2:
        raise CostInputError("--sweep-points must be 2 or more")
    out = []
    for k in range(points):
        x = a * (b / a) ** (k / (points - 1))
        out.append(a if k == 0 else b if k == points - 1 else float(f"{x:.3g}"))
    return sorted(set(out))


def sweep(inputs: EstimateInputs, c: float, g: float, rates: list[float]) -> list[SweepRow]:
    totals = set(SweepRow.model_fields) - {"requests_per_day"}  # the per-day / per-month figures of compute()
    return [
        SweepRow(requests_per_day=r,
                 **compute(inputs.model_copy(update={"requests_per_day": r}), c, g).model_dump(include=totals))
        for r in rates
    ]


# ---------------------------------------------------------------------------------------- plot


def plot_sweep(r: EstimateReport, path: str | Path) -> Path:
    """Draw mixed vs GPU-only cost/month against requests/day (needs matplotlib, imported lazily)."""
    if not r.sweep:
        raise CostInputError("--plot needs a sweep of request rates (use --sweep FROM:TO)")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CostInputError("--plot needs matplotlib: pip install 'mixedclf[plot]'") from None
    p = Path(path)
    if p.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise CostInputError(f"--plot: unsupported image type {p.suffix or '(none)'!r}; use .png, .svg or .pdf")
    if not p.parent.exists():
        raise CostInputError(f"--plot: folder does not exist: {p.parent}")
    a, b = r.sweep[0].requests_per_day, r.sweep[-1].requests_per_day
    curve = sweep(r.inputs, r.pricing.cpu_per_sec, r.pricing.gpu_per_sec, sweep_points(a, b, 80)) if b > a else r.sweep
    xs = [s.requests_per_day for s in curve]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    try:
        ax.plot(xs, [s.mixed_per_month for s in curve], label="mixed (CPU pre/post + GPU model)")
        ax.plot(xs, [s.gpu_only_per_month for s in curve], label="GPU-only")
        ax.scatter([s.requests_per_day for s in r.sweep], [s.mixed_per_month for s in r.sweep], s=12)
        ax.scatter([s.requests_per_day for s in r.sweep], [s.gpu_only_per_month for s in r.sweep], s=12)
        ax.set_xscale("log")
        if all(s.mixed_per_month > 0 and s.gpu_only_per_month > 0 for s in curve):
            ax.set_yscale("log")
        be = r.break_even_requests_per_day
        if be is not None and xs[0] <= be <= xs[-1]:
            ax.axvline(be, color="grey", linestyle="--", linewidth=1, label=f"break-even {fmt_num(be)}/day")
        ax.set_xlabel("requests per day")
        ax.set_ylabel(f"$ per month ({r.inputs.days_per_month} days)")
        ax.set_title(f"mixedclf estimate · pricing {r.pricing.name}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(p)
    finally:
        plt.close(fig)
    return p
