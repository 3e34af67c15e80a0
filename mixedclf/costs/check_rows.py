"""The rows of the `mixedclf check` table: each number of the baseline and current reports side by side (median
and spread of each side, the difference), for classify reports (counted work, then measured stages) or estimates.

Pure module: no torch, no pools.
"""

from __future__ import annotations

import statistics

from pydantic import BaseModel

from mixedclf.costs.accounting import clean
from mixedclf.costs.check_metrics import metric_value, stage_per_1k, work_value


class CompareRow(BaseModel):
    name: str
    unit: str
    baseline: float | None  # median over the baseline reports
    current: float | None  # median over the current reports
    diff: float | None
    diff_pct: float | None
    gated: bool = False  # the row the limits apply to
    baseline_range: tuple[float, float] | None = None  # min, max when there are several reports
    current_range: tuple[float, float] | None = None


def pct_change(new: float, old: float) -> float | None:
    if old == 0:
        return None if new != 0 else 0.0
    return clean((new - old) / abs(old) * 100)


def spread(values: list[float]) -> tuple[float, tuple[float, float] | None]:
    """Median, and (min, max) when there is more than one value."""
    med = clean(statistics.median(values))
    return med, ((min(values), max(values)) if len(values) > 1 else None)


def compare_row(name: str, unit: str, old: list[float] | float | None, new: list[float] | float | None,
                gated: bool = False) -> CompareRow:
    def side(v):
        if v is None or (isinstance(v, list) and not v):
            return None, None
        return spread(v if isinstance(v, list) else [v])

    (b, b_range), (c, c_range) = side(old), side(new)
    diff = clean(c - b) if b is not None and c is not None else None
    dp = pct_change(c, b) if b is not None and c is not None else None
    return CompareRow(name=name, unit=unit, baseline=b, current=c, diff=diff, diff_pct=dp, gated=gated,
                      baseline_range=b_range, current_range=c_range)


def classify_rows(bases, curs, metric: str, basis: str, verdict: str, rate: float | None) -> list[CompareRow]:
    rows: list[CompareRow] = []

    def both(fn):
        return [fn(r) for r in bases], [fn(r) for r in curs]

    if verdict == "work" and rate is not None:
        rows.append(compare_row("rows classified", "rows", *both(lambda r: float(r.work.rows))))
        for name, field in (("real tokens per 1k", "real_tokens"), ("padded tokens per 1k", "padded_tokens"),
                            ("micro-batches per 1k", "micro_batches")):
            rows.append(compare_row(name, "count / 1k",
                                    *both(lambda r, f=field: clean(r.work.per_1k(getattr(r.work, f))))))
        rows.append(compare_row("model GFLOP per 1k", "GFLOP / 1k", *both(lambda r: clean(r.work.gflop_per_1k))))
        rows.append(compare_row("encoder layers", "count", *both(lambda r: float(r.work.shape.layers))))
        rows.append(compare_row("CPU workers", "count", *both(lambda r: float(r.work.cpu_workers))))
        rows.append(compare_row("work cost per 1k (verdict)", "$ / 1k",
                                *both(lambda r: work_value(r, "cost_per_1k", rate)), metric == "cost_per_1k"))
        rows.append(compare_row("work GPU seconds per 1k (verdict)", "s / 1k",
                                *both(lambda r: work_value(r, "gpu_seconds_per_1k", rate)),
                                metric == "gpu_seconds_per_1k"))
        rows.append(compare_row("work rows per second (verdict)", "rows/s",
                                *both(lambda r: work_value(r, "throughput", rate)), metric == "throughput"))
        rows.append(compare_row("calibration", "s / GFLOP", *both(lambda r: r.calibration.s_per_gflop)))
    measured = verdict == "measured"
    names = list(dict.fromkeys(n for r in [*bases, *curs] for n in stage_per_1k(r)))
    for name in names:
        rows.append(compare_row(f"stage {name} (measured)", "$ / 1k",
                                [v for r in bases if (v := stage_per_1k(r).get(name)) is not None],
                                [v for r in curs if (v := stage_per_1k(r).get(name)) is not None]))
    rows.append(compare_row("mixed total (measured)", "$ / 1k", *both(lambda r: r.cost.totals(basis).mixed_per_1k),
                            measured and metric == "cost_per_1k"))
    rows.append(compare_row("GPU-only total (measured)", "$ / 1k",
                            *both(lambda r: r.cost.totals(basis).gpu_only_per_1k)))
    if all(r.cost.savings_claim for r in [*bases, *curs]):
        rows.append(compare_row("savings vs GPU-only", "%", *both(lambda r: r.cost.totals(basis).savings_pct)))
    rows.append(compare_row("GPU seconds per 1k (measured)", "s / 1k",
                            *both(lambda r: metric_value(r, "gpu_seconds_per_1k", basis)),
                            measured and metric == "gpu_seconds_per_1k"))
    rows.append(compare_row("GPU utilization", "%", *both(lambda r: clean(r.cost.gpu_utilization * 100))))
    rows.append(compare_row("throughput (measured)", "rows/s", *both(lambda r: r.cost.throughput),
                            measured and metric == "throughput"))
    return rows


def estimate_rows(bases, curs, metric: str) -> list[CompareRow]:
    rows: list[CompareRow] = []
    names = list(dict.fromkeys(ln.name for r in [*bases, *curs] for ln in r.lines))

    def line(r, name):
        return next((clean(ln.mixed * 1000) for ln in r.lines if ln.name == name), None)

    for name in names:
        b = [v for r in bases if (v := line(r, name)) is not None]
        c = [v for r in curs if (v := line(r, name)) is not None]
        if not any(b) and not any(c):
            continue
        rows.append(compare_row(name, "$ / 1k", b, c))

    def both(fn):
        return [fn(r) for r in bases], [fn(r) for r in curs]

    rows.append(compare_row("mixed total", "$ / 1k", *both(lambda r: r.mixed_per_1k), metric == "cost_per_1k"))
    rows.append(compare_row("GPU-only total", "$ / 1k", *both(lambda r: r.gpu_only_per_1k)))
    rows.append(compare_row("mixed per month", "$", *both(lambda r: r.mixed_per_month)))
    rows.append(compare_row("savings vs GPU-only", "%", *both(lambda r: r.savings_pct)))
    rows.append(compare_row("GPU seconds per 1k", "s / 1k", *both(lambda r: r.gpu_seconds_per_1k),
                            metric == "gpu_seconds_per_1k"))
    return rows
