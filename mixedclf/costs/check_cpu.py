"""The CPU-time gate of `mixedclf check`: the same work done slower fails it.

Each classify report carries every stage's CPU seconds (thread and process CPU clocks, the pool's worker processes
included). Unlike wall or busy seconds they do not grow while other programs share the machine, but they still
move with cache and frequency effects, so one report per side proves nothing. The gate compares several runs of
each side, made interleaved on one machine (``mixedclf check run``; the way ``asv continuous`` and ``pyperf
compare_to`` work), with a one-sided Mann-Whitney U test per figure:

* the CPU-priced cost per 1,000 rows (every stage's CPU seconds at its billing rate), limit ``max_increase_pct``;
* each stage's CPU seconds per 1,000 rows, limit ``max_stage_increase_pct``; stages below MIN_STAGE_SHARE of the
  run's CPU are shown, not gated on their own (their change is in the cost figure).

A figure fails when its change of medians is past its limit AND significant at ``alpha`` divided by the number
of gated figures (Bonferroni: identical code must pass however many stages are tested). Counted work stays the
deterministic guard beside it (costs/check.py). Pure module: no torch, no pools.
"""

from __future__ import annotations

import statistics

from pydantic import BaseModel

from mixedclf.costs.accounting import clean
from mixedclf.costs.check_rows import pct_change
from mixedclf.costs.report import ClassifyReport

#: Default limit on any one stage's CPU seconds per 1,000 rows, in percent.
DEFAULT_MAX_STAGE_INCREASE_PCT = 25.0
#: Family-wise significance level of the gate (split over the gated figures).
DEFAULT_ALPHA = 0.05
#: Reports per side below which no rank test can be significant at DEFAULT_ALPHA: the gate then only shows.
MIN_REPORTS = 3
#: A stage with less than this share of the run's CPU seconds is not gated on its own.
MIN_STAGE_SHARE = 0.02
#: Not per-row work: loading the model happens once per process, whatever the input.
UNGATED_STAGES = ("model_load",)

COST_FIGURE = "cost per 1,000 items (CPU-priced)"


class CpuFigure(BaseModel):
    name: str
    unit: str
    baseline: list[float]  # one value per report
    current: list[float]
    baseline_median: float
    current_median: float
    change_pct: float | None  # of the medians; None when the baseline is 0
    p_value: float | None  # one-sided Mann-Whitney U (current greater); None: not tested
    limit_pct: float | None  # None: shown, not gated
    failed: bool = False


class CpuGate(BaseModel):
    """The CPU-time comparison of one check: figures, the test and its verdict."""

    test: str = "Mann-Whitney U, one-sided (current slower), Bonferroni over the gated figures"
    alpha: float
    alpha_per_figure: float | None  # alpha / gated figures; None when nothing was tested
    baseline_reports: int
    current_reports: int
    figures: list[CpuFigure]
    violations: list[str] = []
    note: str | None = None  # why nothing was tested, when so


def has_cpu(report) -> bool:
    """True when a classify report carries CPU seconds for every stage that did per-row work."""
    if not isinstance(report, ClassifyReport) or report.cost.items <= 0:
        return False
    stages = [s for s in report.cost.stages if s.name not in UNGATED_STAGES and s.items > 0]
    return bool(stages) and all(s.cpu_s is not None for s in stages)


def stage_cpu_per_1k(report: ClassifyReport) -> dict[str, float]:
    """CPU seconds per 1,000 classified rows, by stage (stages with several entries summed)."""
    out: dict[str, float] = {}
    for s in report.cost.stages:
        if s.name in UNGATED_STAGES or s.cpu_s is None:
            continue
        out[s.name] = out.get(s.name, 0.0) + s.cpu_s
    n = report.cost.items
    return {k: clean(v / n * 1000) for k, v in out.items()}


def cpu_cost_per_1k(report: ClassifyReport) -> float:
    """Every per-row stage's CPU seconds at the rate of the device class it is billed as, per 1,000 rows."""
    total = sum(s.cpu_s * s.rate for s in report.cost.stages
                if s.name not in UNGATED_STAGES and s.cpu_s is not None and s.pay_per_use)
    return clean(total / report.cost.items * 1000)


def mann_whitney_greater(baseline: list[float], current: list[float]) -> float:
    """p-value of the one-sided Mann-Whitney U test that the current values are larger (exact for small samples
    without ties, scipy's choice)."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(current, baseline, alternative="greater").pvalue)


def _figure(name: str, unit: str, b: list[float], c: list[float], limit: float | None) -> CpuFigure:
    bm, cm = clean(statistics.median(b)), clean(statistics.median(c))
    return CpuFigure(name=name, unit=unit, baseline=b, current=c, baseline_median=bm, current_median=cm,
                     change_pct=pct_change(cm, bm), p_value=None, limit_pct=limit)


def cpu_gate(bases: list, curs: list, *, max_increase_pct: float | None,
             max_stage_increase_pct: float | None = DEFAULT_MAX_STAGE_INCREASE_PCT,
             alpha: float = DEFAULT_ALPHA) -> CpuGate | None:
    """The CPU-time verdict over classify reports; None when a report carries no CPU seconds (an older report,
    the Ray engine, an estimate)."""
    if not all(has_cpu(r) for r in [*bases, *curs]):
        return None
    figures = [_figure(COST_FIGURE, "$ / 1k", [cpu_cost_per_1k(r) for r in bases],
                       [cpu_cost_per_1k(r) for r in curs], max_increase_pct)]
    per_stage_b = [stage_cpu_per_1k(r) for r in bases]
    per_stage_c = [stage_cpu_per_1k(r) for r in curs]
    names = [n for n in dict.fromkeys(n for d in [*per_stage_b, *per_stage_c] for n in d)
             if all(n in d for d in [*per_stage_b, *per_stage_c])]
    base_total = statistics.median(sum(d.values()) for d in per_stage_b) or 1.0
    for name in names:
        b = [d[name] for d in per_stage_b]
        share = statistics.median(b) / base_total
        limit = max_stage_increase_pct if share >= MIN_STAGE_SHARE else None
        figures.append(_figure(f"stage {name}", "CPU s / 1k", b, [d[name] for d in per_stage_c], limit))

    gate = CpuGate(alpha=alpha, alpha_per_figure=None, baseline_reports=len(bases), current_reports=len(curs),
                   figures=figures)
    gated = [f for f in figures if f.limit_pct is not None]
    if len(bases) < MIN_REPORTS or len(curs) < MIN_REPORTS:
        gate.note = (f"CPU seconds not gated: a rank test needs {MIN_REPORTS} or more reports per side "
                     f"(got {len(bases)} baseline, {len(curs)} current); `mixedclf check run` makes them")
        return gate
    if not gated:
        gate.note = "CPU seconds not gated: no limit set"
        return gate
    gate.alpha_per_figure = alpha / len(gated)
    for f in figures:
        f.p_value = clean(mann_whitney_greater(f.baseline, f.current))
        if f.limit_pct is None or f.change_pct is None:
            continue
        if f.change_pct > f.limit_pct and f.p_value < gate.alpha_per_figure:
            f.failed = True
            unit = "$" if f.unit.startswith("$") else "CPU s"
            gate.violations.append(
                f"{f.name} rose {f.change_pct:+.1f}% (limit {f.limit_pct:g}%, p={f.p_value:.2g} < "
                f"{gate.alpha_per_figure:.2g}; {unit} per 1k, medians of {len(bases)} baseline / "
                f"{len(curs)} current runs)")
    return gate
