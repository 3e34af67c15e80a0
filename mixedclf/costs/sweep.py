"""Sweeps of `mixedclf estimate` over request rates: the --sweep option, the rates, the rows, and --plot.

Every row carries the ideal model, and the runpod one under runpod billing (ideal billing simulates nothing);
--plot draws their lines and marks where mixed and GPU-only cross.
matplotlib is imported only when a plot is drawn, so the cost package stays light.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

from mixedclf.costs.accounting import clean, pct
from mixedclf.costs.fmt import fmt_num
from mixedclf.costs.per_request import EstimateInputs, SweepRow, compute
from mixedclf.costs.pricing import CostInputError, PricingProfile
from mixedclf.costs.runpod import pipelines, servable, totals

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


def sweep_row(inputs: EstimateInputs, p: PricingProfile, r: float) -> SweepRow:
    """The ideal model at r requests/day and, under runpod billing only, the runpod one (ideal billing simulates
    nothing: its Runpod columns are None); the headline fields follow inputs.billing."""
    i = inputs.model_copy(update={"requests_per_day": r})
    ideal = compute(i, p.cpu_per_sec, p.gpu_per_sec)
    days = i.days_per_month

    def month(x: float | None) -> float | None:
        return None if x is None else clean(x * days)

    if i.billing == "runpod":
        rp_m, rp_g = totals(i, p)
        mixed, go = pipelines(i)
        m_day = clean(rp_m) if servable(mixed, i.arrival_rate) else None
        g_day = clean(rp_g) if servable(go, i.arrival_rate) else None
        runpod = dict(runpod_mixed_per_month=month(m_day), runpod_gpu_only_per_month=month(g_day))
    else:
        m_day, g_day = ideal.mixed_per_day, ideal.gpu_only_per_day
        runpod = dict(runpod_mixed_per_month=None, runpod_gpu_only_per_month=None)
    return SweepRow(
        requests_per_day=r, mixed_per_day=m_day, gpu_only_per_day=g_day, mixed_per_month=month(m_day),
        gpu_only_per_month=month(g_day),
        savings_per_month=clean((g_day - m_day) * days) if g_day is not None and m_day is not None else None,
        savings_pct=pct(g_day - m_day, g_day) if g_day is not None and m_day is not None else None,
        ideal_mixed_per_month=ideal.mixed_per_month, ideal_gpu_only_per_month=ideal.gpu_only_per_month, **runpod,
    )


def sweep(inputs: EstimateInputs, p: PricingProfile, rates: list[float]) -> list[SweepRow]:
    return [sweep_row(inputs, p, r) for r in rates]


def crossings(xs: list[float], a: list[float], b: list[float]) -> list[float]:
    """Where line a crosses line b between sample points (interpolated on log x)."""
    out = []
    for k in range(len(xs) - 1):
        d0, d1 = a[k] - b[k], a[k + 1] - b[k + 1]
        if not (math.isfinite(d0) and math.isfinite(d1)):
            continue  # a pipeline not servable there: no crossing to claim
        if (d0 < 0) != (d1 < 0) and d0 != d1:
            f = d0 / (d0 - d1)
            out.append(xs[k] * (xs[k + 1] / xs[k]) ** f)
    return out


# ---------------------------------------------------------------------------------------- plot


def _nan(x: float | None) -> float:
    return math.nan if x is None else x


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
    curve = sweep(r.inputs, r.pricing, sweep_points(a, b, 30)) if b > a else r.sweep
    xs = [s.requests_per_day for s in curve]
    lines = {
        "ideal: mixed": [s.ideal_mixed_per_month for s in curve],
        "ideal: GPU-only": [s.ideal_gpu_only_per_month for s in curve],
    }
    models = ("ideal", "Runpod") if r.billing == "runpod" else ("ideal",)
    if r.billing == "runpod":
        lines["Runpod: mixed"] = [_nan(s.runpod_mixed_per_month) for s in curve]  # a gap where not servable
        lines["Runpod: GPU-only"] = [_nan(s.runpod_gpu_only_per_month) for s in curve]
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    try:
        styles = {"ideal": ("--", 1.2), "Runpod": ("-", 1.8)}
        colors = {"mixed": "tab:blue", "GPU-only": "tab:orange"}
        for label, ys in lines.items():
            model, arch = label.split(": ")
            ls, lw = styles[model]
            ax.plot(xs, ys, linestyle=ls, linewidth=lw, color=colors[arch], label=label)
        ax.set_xscale("log")
        if all(y > 0 or math.isnan(y) for ys in lines.values() for y in ys):
            ax.set_yscale("log")
        for model in models:
            m, g = lines[f"{model}: mixed"], lines[f"{model}: GPU-only"]
            for x in crossings(xs, m, g):
                ax.axvline(x, color="grey", linestyle=":", linewidth=1)
                ax.annotate(f"{model} lines cross ~{fmt_num(float(f'{x:.3g}'))}/day", (x, ax.get_ylim()[0]),
                            fontsize=7, rotation=90, va="bottom", ha="right")
        ax.set_xlabel("requests per day")
        ax.set_ylabel(f"$ per month ({r.inputs.days_per_month} days)")
        title = "ideal vs Runpod" if r.billing == "runpod" else "ideal"
        ax.set_title(f"mixedclf estimate · {title} billing · pricing {r.pricing.name}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(p)
    finally:
        plt.close(fig)
    return p
