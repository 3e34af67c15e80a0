"""`classify --max-cost`: a classify run's bill so far and after more rows, priced as its report prices it.

The budget is checked against the **provisioned** bill of the run's own architecture (the column its report marks
as measured: mixed with ``--mode mixed``, GPU-only with ``--mode gpu-only``), from process start, with the idle
tail and the per-worker rounding, at the run's pricing profile, idle timeout and ``--gpu-speedup``. The budget
covers the whole job: the bill of earlier processes of a resumed job is carried in its checkpoint.

Pure module: no torch, no pools. The rule is written out in docs/cost-model.md ("A budget: --max-cost").
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from mixedclf.costs.accounting import Mode, RunMeasurements, StageMeasurement, clean, price_run
from mixedclf.costs.fmt import fmt_money
from mixedclf.costs.pricing import PricingProfile


class BillSnapshot(BaseModel):
    """What a running classify process has measured about its own bill so far."""

    mode: Mode
    device: str
    rows: int = Field(ge=0)  # rows classified by this process
    process_s: float = Field(ge=0)  # process start to now
    startup_s: float = Field(default=0.0, ge=0)  # process start to the start of model loading
    load_s: float = Field(default=0.0, ge=0)
    inference_busy_s: float = Field(default=0.0, ge=0)
    pool_workers: int = Field(default=0, ge=0)
    pool_held_s: float = Field(default=0.0, ge=0)
    pool_running: bool = False  # the pool is still held, so its bill grows with the run
    classify_s: float = Field(default=0.0, ge=0)  # end of model loading to now: the time the rows so far took

    @property
    def seconds_per_row(self) -> float | None:
        return self.classify_s / self.rows if self.rows > 0 else None


class BudgetCheck(BaseModel):
    """One look at the budget before a chunk."""

    max_cost: float
    spent_before: float  # the job's earlier processes
    spent_now: float  # this process, as if it stopped now
    next_rows: int
    after_next: float | None  # the job's bill after the next chunk (None: no per-row measurement yet)
    projected_job: float | None  # the job's bill when every expected row is classified
    expected_rows: int | None  # rows of the whole job (input rows; estimated for a large JSONL/CSV)
    rows_done: int  # rows of the whole job classified so far
    probe_rows: int | None = None  # set when this look follows the process's first micro-batch (the probe)

    @property
    def over(self) -> bool:
        return self.after_next is not None and self.after_next > self.max_cost

    def message(self, output: str) -> str:
        """The one line a stop at the budget prints."""
        spent = clean(self.spent_before + self.spent_now)
        if self.probe_rows is not None:
            return (f"stopped at the cost budget before a full chunk ran: a probe of {self.probe_rows:,} rows brought "
                    f"the job's bill to {fmt_money(spent)} of --max-cost ${self.max_cost:g} (provisioned bill, from "
                    f"process start); the rest of the chunk ({self.next_rows:,} rows) would bring it to "
                    f"{fmt_money(self.after_next or spent)}; nothing was written: rerun with --resume and a raised "
                    f"--max-cost (or none) to continue into {output}")
        job = (f"; the whole job ({self.expected_rows:,} rows) is projected at {fmt_money(self.projected_job)}"
               if self.projected_job is not None and self.expected_rows else "")
        return (f"stopped at the cost budget: {fmt_money(spent)} spent of --max-cost ${self.max_cost:g} "
                f"(provisioned bill, from process start); the next chunk ({self.next_rows:,} rows) would bring it to "
                f"{fmt_money(self.after_next or spent)}{job}; {self.rows_done:,} rows are saved: rerun with --resume "
                f"and a raised --max-cost (or none) to continue into {output}")


def bill(snapshot: BillSnapshot, profile: PricingProfile, *, idle_timeout_s: float, gpu_speedup: float | None,
         more_rows: int = 0) -> float:
    """The process's provisioned bill if it stopped now (more_rows=0) or after more_rows more rows.

    More rows take the seconds per row measured so far; the pool (when still held) is held that much longer and
    inference busy time grows in proportion (it matters only with --gpu-speedup). Priced by price_run, exactly as
    the report will be.
    """
    s = snapshot
    extra_s = (s.seconds_per_row or 0.0) * more_rows
    inference = s.inference_busy_s * (1 + more_rows / s.rows) if s.rows else 0.0
    process_s = s.process_s + extra_s
    run = RunMeasurements(
        mode=s.mode, items=s.rows + more_rows, wall_s=process_s, process_s=process_s, startup_s=s.startup_s,
        stages=[StageMeasurement(name="model_load", billing="gpu", device=s.device, busy_s=s.load_s),
                StageMeasurement(name="inference", billing="gpu", device=s.device, items=s.rows + more_rows,
                                 busy_s=inference)],
        gpu_held_s=max(0.0, process_s - s.startup_s),
        cpu_pool_workers=s.pool_workers,
        cpu_pool_held_s=s.pool_held_s + (extra_s if s.pool_running else 0.0),
    )
    cost = price_run(run, profile, idle_timeout_s=idle_timeout_s, gpu_speedup=gpu_speedup).provisioned
    return cost.mixed if s.mode == "mixed" else cost.gpu_only


def check_budget(snapshot: BillSnapshot, profile: PricingProfile, *, max_cost: float, spent_before: float,
                 next_rows: int, rows_before: int, expected_rows: int | None, idle_timeout_s: float,
                 gpu_speedup: float | None, probe_rows: int | None = None) -> BudgetCheck:
    """Would the job's bill pass max_cost by the end of the next chunk? Projected from this process's rows so far
    (none yet: no projection, the chunk runs)."""
    price = dict(idle_timeout_s=idle_timeout_s, gpu_speedup=gpu_speedup)
    now = bill(snapshot, profile, **price)
    after = projected = None
    if snapshot.rows > 0:
        after = clean(spent_before + bill(snapshot, profile, more_rows=next_rows, **price))
        if expected_rows is not None:
            left = max(0, expected_rows - rows_before - snapshot.rows)
            projected = clean(spent_before + bill(snapshot, profile, more_rows=left, **price))
    return BudgetCheck(max_cost=max_cost, spent_before=spent_before, spent_now=now, next_rows=next_rows,
                       after_next=after, projected_job=projected, expected_rows=expected_rows,
                       rows_done=rows_before + snapshot.rows, probe_rows=probe_rows)


def rows_within_budget(snapshot: BillSnapshot, profile: PricingProfile, *, max_cost: float, spent_before: float,
                       max_rows: int, idle_timeout_s: float, gpu_speedup: float | None) -> int:
    """The most rows, up to max_rows, that this process can still classify with the job's bill at or below
    max_cost, at the seconds per row measured so far (0 before any: nothing to project from). The bill only
    grows with rows (rounded up to whole seconds), so a bisection finds it."""
    if snapshot.rows == 0:
        return 0
    price = dict(idle_timeout_s=idle_timeout_s, gpu_speedup=gpu_speedup)

    def fits(rows: int) -> bool:
        return clean(spent_before + bill(snapshot, profile, more_rows=rows, **price)) <= max_cost

    if not fits(0):
        return 0
    lo, hi = 0, max_rows  # fits(lo) holds; the answer is in lo..hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def next_piece(fit: int, rows_left: int, min_rows: int) -> int:
    """Rows of the next piece of a chunk near the budget (0: stop here), given `fit` rows the budget still covers
    at the measured rate. Half of them: the rate a smaller piece runs at is only projected, so each piece
    leaves room for the projection to be wrong, and the next one is cut from a fresh measurement; the gap to the
    budget halves with each piece, down to one micro-batch (min_rows), where a stop lands within one micro-batch's
    cost of the budget."""
    if fit >= rows_left:
        return rows_left
    if fit < min_rows:
        return 0
    return min(rows_left, max(min_rows, fit // 2))


def budget_line(extra: dict, run_bill: float) -> str | None:
    """The report's budget line: the budget, what the job cost in all, and the projection after the first chunk."""
    budget = extra.get("budget")
    if not budget:
        return None
    before = float(budget.get("spent_before") or 0.0)
    job = clean(before + run_bill)
    earlier = f" (earlier runs {fmt_money(before)} + this run {fmt_money(run_bill)})" if before else ""
    projection = budget.get("first_projection")
    projected = f"; projected after the first chunk: {fmt_money(projection)}" if projection is not None else ""
    return (f"budget: --max-cost ${budget['max_cost']:g}; the job's provisioned bill {fmt_money(job)}{earlier}"
            f"{projected}")


def already_spent_message(spent: float, max_cost: float, output: str, probe: float = 0.0) -> str:
    left = ""
    if spent < max_cost:  # what is left is less than a process spends before it can write a row
        left = (f", and the {fmt_money(clean(max_cost - spent))} left is less than the {fmt_money(probe)} its last "
                f"run spent up to its first micro-batch (start-up, model load, one micro-batch)")
    return (f"stopped at the cost budget: this job has already spent {fmt_money(spent)} of --max-cost "
            f"${max_cost:g} (provisioned bill of its earlier runs, from the checkpoint){left}; nothing was done: "
            f"rerun with --resume and a raised --max-cost (or none) to continue into {output}")
