"""The local engine's cost meter: its bill chunk by chunk, priced as the report prices it (mixedclf.costs.budget).

Every checkpoint records what the job has spent so far, so a resumed job knows it; with --max-cost the meter is
asked before each chunk whether the job's bill would pass the budget by the end of that chunk.
"""

from __future__ import annotations

import time

from mixedclf.core.stats import StageClock
from mixedclf.costs.accounting import clean
from mixedclf.costs.budget import BillSnapshot, BudgetCheck, bill, check_budget
from mixedclf.costs.pricing import PricingProfile


class CostMeter:
    def __init__(self, profile: PricingProfile, *, started_at: float, idle_timeout_s: float,
                 gpu_speedup: float | None, max_cost: float | None = None):
        self.profile = profile
        self.started_at = started_at  # time.monotonic() at process start
        self.price = dict(idle_timeout_s=idle_timeout_s, gpu_speedup=gpu_speedup)
        self.max_cost = max_cost
        self.spent_before = 0.0  # the job's earlier processes (from the checkpoint)
        self.rows_before = 0
        self.expected_rows: int | None = None
        self.first_projection: float | None = None  # the whole job, projected after this process's first chunk
        self._run: dict | None = None

    def resumed(self, spent_before: float, rows_before: int) -> None:
        self.spent_before, self.rows_before = spent_before, rows_before

    @property
    def budget_spent(self) -> bool:
        """The job's earlier processes already spent the whole budget: do nothing."""
        return self.max_cost is not None and self.spent_before >= self.max_cost

    def model_loaded(self, *, mode: str, device: str, load_start: float, load_end: float, pool_started: float,
                     workers: int, inference: StageClock, pool_released) -> None:
        """From here on the meter can price the run. pool_released: a callable giving the pool's release time."""
        self._run = dict(mode=mode, device=device, load_start=load_start, load_end=load_end,
                         pool_started=pool_started, workers=workers, inference=inference, pool_released=pool_released)

    def snapshot(self) -> BillSnapshot | None:
        r = self._run
        if r is None:
            return None
        now = time.monotonic()
        released = r["pool_released"]()
        inference: StageClock = r["inference"]
        return BillSnapshot(
            mode=r["mode"], device=r["device"], rows=inference.items, process_s=now - self.started_at,
            startup_s=max(0.0, r["load_start"] - self.started_at), load_s=r["load_end"] - r["load_start"],
            inference_busy_s=inference.busy_s, pool_workers=r["workers"],
            pool_held_s=((released or now) - r["pool_started"]) if r["workers"] else 0.0,
            pool_running=bool(r["workers"]) and released is None, classify_s=max(0.0, now - r["load_end"]),
        )

    def job_spent(self) -> float:
        """What the job has cost so far: earlier processes + this one as if it stopped now."""
        snap = self.snapshot()
        now = bill(snap, self.profile, **self.price) if snap is not None else 0.0
        return clean(self.spent_before + now)

    def check(self, next_rows: int) -> BudgetCheck | None:
        """Before a chunk of next_rows rows: None without a budget, else the projection (see BudgetCheck.over)."""
        snap = self.snapshot()
        if self.max_cost is None or snap is None:
            return None
        result = check_budget(snap, self.profile, max_cost=self.max_cost, spent_before=self.spent_before,
                              next_rows=next_rows, rows_before=self.rows_before, expected_rows=self.expected_rows,
                              **self.price)
        if self.first_projection is None and result.projected_job is not None:
            self.first_projection = result.projected_job
        return result
