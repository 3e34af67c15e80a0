"""The local engine's cost meter: its bill chunk by chunk, priced as the report prices it (mixedclf.costs.budget).

Every checkpoint records what the job has spent so far, so a resumed job knows it; with --max-cost the meter is
asked before each chunk whether the job's bill would pass the budget by the end of that chunk, and if so how many
of its rows the budget still covers (the engine then runs the chunk in pieces, each cut from a fresh measurement).
"""

from __future__ import annotations

import time

from mixedclf.core.stats import StageClock
from mixedclf.costs.accounting import clean
from mixedclf.costs.budget import BillSnapshot, BudgetCheck, bill, check_budget, next_piece, rows_within_budget
from mixedclf.costs.pricing import PricingProfile

#: Seconds between two looks at the budget inside a chunk (after the first micro-batch, which is always looked at):
#: pricing is cheap, but not free next to a GPU's micro-batch.
IN_CHUNK_CHECK_S = 0.25


class BudgetStop(Exception):
    """Raised from inside a chunk (after a micro-batch) when finishing it would take the job past the budget."""

    def __init__(self, check: BudgetCheck):
        super().__init__("budget")
        self.check = check


class CostMeter:
    def __init__(self, profile: PricingProfile, *, started_at: float, idle_timeout_s: float,
                 gpu_speedup: float | None, max_cost: float | None = None):
        self.profile = profile
        self.started_at = started_at  # time.monotonic() at process start
        self.price = dict(idle_timeout_s=idle_timeout_s, gpu_speedup=gpu_speedup)
        self.max_cost = max_cost
        self.spent_before = 0.0  # the job's earlier processes (from the checkpoint)
        self.seconds_before = 0.0  # their process seconds
        self.runs_before = 0  # how many they were
        self.probe_before = 0.0  # the last earlier process's bill at its first micro-batch
        self.probe_usd = 0.0  # this process's bill at its first micro-batch (0 until then)
        self.rows_before = 0
        self.expected_rows: int | None = None
        self.first_projection: float | None = None  # the whole job, projected after this process's first chunk
        self._run: dict | None = None
        self._chunk_rows = 0  # rows of the chunk on the device
        self._chunk_done = 0  # of them, rows through the device so far
        self._last_look = 0.0

    def resumed(self, spent_before: float, rows_before: int, seconds_before: float = 0.0,
                runs_before: int = 0, probe_before: float = 0.0) -> None:
        self.spent_before, self.rows_before = spent_before, rows_before
        self.seconds_before, self.runs_before, self.probe_before = seconds_before, runs_before, probe_before

    def probe_cost(self) -> float:
        """The bill at the first micro-batch of this process, else of the last earlier one (0: none known)."""
        return self.probe_usd or self.probe_before

    def job_seconds(self) -> float:
        """The job's process seconds so far: earlier processes + this one up to now."""
        return clean(self.seconds_before + max(0.0, time.monotonic() - self.started_at))

    @property
    def budget_spent(self) -> bool:
        """The job's earlier processes already spent the whole budget, or left less of it than the last of them
        spent to its first micro-batch (a process would pass the budget before it wrote a row): do nothing."""
        return self.max_cost is not None and (self.spent_before >= self.max_cost or
                                              clean(self.spent_before + self.probe_before) > self.max_cost)

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

    def chunk_started(self, rows: int) -> None:
        self._chunk_rows, self._chunk_done = rows, 0

    def answered(self, rows: int) -> None:
        """Rows of the chunk on the device answered without it (the prediction cache): they cost no device time,
        so the in-chunk projection does not count them as rows left to run."""
        self._chunk_rows = max(self._chunk_done, self._chunk_rows - rows)

    def batch_done(self, rows: int) -> None:
        """After a micro-batch, with a budget: BudgetStop when the chunk must stop.

        The first micro-batch of the process is the probe: until it, nothing is known of the seconds per row, so
        a budget below one chunk stops here (the chunk would pass it), having spent the probe, not the chunk. After
        it, a chunk stops only once the job's bill is past the budget (a projection that went wrong)."""
        if self.max_cost is None:
            return
        first = self._chunk_done == 0 and self.snapshot() is not None and self.snapshot().rows == 0
        self._chunk_done += rows
        now = time.monotonic()
        if not first and now - self._last_look < IN_CHUNK_CHECK_S:
            return
        self._last_look = now
        snap = self.snapshot()
        if snap is None:
            return
        snap = snap.model_copy(update={"rows": snap.rows + self._chunk_done})  # the chunk's rows are not yet added
        if first:
            self.probe_usd = bill(snap, self.profile, **self.price)
        left = max(0, self._chunk_rows - self._chunk_done)
        result = check_budget(snap, self.profile, max_cost=self.max_cost, spent_before=self.spent_before,
                              next_rows=left, rows_before=self.rows_before, expected_rows=self.expected_rows,
                              probe_rows=self._chunk_done if first else None, **self.price)
        # The probe stops on the projection (the chunk would pass the budget); later looks only once the bill is
        # already past it, and never after the chunk's last micro-batch: stopping a chunk on a projection, or with
        # nothing left to run, would throw away rows that are paid for.
        if result.over if first else (left and result.spent_before + result.spent_now > self.max_cost):
            # the chunk's rows so far are dropped with it: the rows saved are those before it
            raise BudgetStop(result.model_copy(update={"rows_done": result.rows_done - self._chunk_done}))

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

    def piece_rows(self, rows_left: int, min_rows: int) -> int:
        """Rows of the chunk's next piece that the budget lets run (rows_left: none is over it; 0: stop), after
        check() said the whole rest would pass it (see costs.budget.next_piece)."""
        snap = self.snapshot()
        if self.max_cost is None or snap is None:
            return rows_left
        fit = rows_within_budget(snap, self.profile, max_cost=self.max_cost, spent_before=self.spent_before,
                                 max_rows=rows_left, **self.price)
        return next_piece(fit, rows_left, min_rows)
