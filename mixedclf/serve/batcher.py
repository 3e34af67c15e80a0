"""Dynamic micro-batching for the device stage of the server.

Requests are admitted against one bound (`max_queue`: texts in the server and not yet answered), then wait
in a queue for the device. One asyncio task collects them into a batch: it takes the first waiting request,
then keeps adding requests until the batch holds `max_batch_size` texts or `max_wait_ms` has passed since the
first one arrived (it waits only while admitted texts are still being preprocessed: a lone request does not
idle), and hands the batch to ONE worker thread that owns the device (or, with `max_in_flight` > 1, to one of that
many threads: a batch that is a job on a remote endpoint). The event loop never runs
the model, so it keeps accepting, validating and preprocessing requests while the device works; requests that
arrive during a forward pass form the next batch.

The batcher knows nothing of models: it is given `run_batch(payloads) -> BatchOutcome`, a plain function run
in the device thread. That keeps it testable with a fake device (see tests/test_serve.py).

Overload is a designed state (as in Infinity's batch handler): a request that would go over `max_queue` is
refused at once with `QueueFull` (HTTP 503 + Retry-After), before any work is spent on it. A request whose
caller stopped waiting (a stage timeout) is dropped from the queue instead of being computed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

from mixedclf.core.stats import Clock

log = logging.getLogger("uvicorn.error")


class QueueFull(Exception):
    """The server holds `max_queue` texts already: refuse now, try again after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ShuttingDown(Exception):
    """The server is stopping and takes no new device work."""


@dataclass
class BatchOutcome:
    """What `run_batch` returns: one result per payload, in order, and what the device did."""

    results: list[Any]
    busy_s: float = 0.0  # device seconds inside forward passes
    micro_batches: list[int] = field(default_factory=list)  # rows of each forward pass


@dataclass
class Delivery:
    """What a submitter gets back: its own result and the batch it rode in."""

    result: Any
    queue_s: float  # from submit to the start of its batch
    batch_s: float  # wall seconds of the whole device batch
    busy_s: float  # device busy seconds of the whole batch
    batch_rows: int
    batch_requests: int
    micro_batches: list[int]


class BatchObserver(Protocol):
    def queue_changed(self, requests: int, rows: int, inflight_rows: int) -> None: ...

    def batch_done(self, rows: int, requests: int, wall_s: float, outcome: BatchOutcome) -> None: ...


@dataclass
class _Pending:
    payload: Any
    rows: int
    enqueued: float
    future: asyncio.Future


@dataclass
class BatcherStats(Clock):
    """The server's device stage: its clock (busy_s: device seconds of the batches run) and the queue's counts."""

    batches: int = 0
    rows: int = 0
    requests: int = 0
    forward_passes: int = 0
    dropped: int = 0  # requests whose caller gave up before their batch started
    rejected: int = 0  # requests refused by the queue bound
    max_queue_seen: int = 0

    @property
    def mean_batch_rows(self) -> float:
        return self.rows / self.batches if self.batches else 0.0

    def as_dict(self) -> dict:
        return {
            "batches": self.batches,
            "rows": self.rows,
            "requests": self.requests,
            "forward_passes": self.forward_passes,
            "mean_batch_rows": round(self.mean_batch_rows, 3),
            "mean_batch_requests": round(self.requests / self.batches, 3) if self.batches else 0.0,
            "device_busy_s": round(self.busy_s, 6),
            "dropped": self.dropped,
            "rejected": self.rejected,
            "max_queue_seen": self.max_queue_seen,
        }


class MicroBatcher:
    """Bounded admission + a queue + one collector task + one device thread."""

    def __init__(
        self,
        run_batch: Callable[[list[Any]], BatchOutcome],
        *,
        max_batch_size: int,
        max_wait_ms: float,
        max_queue: int,
        observer: BatchObserver | None = None,
        thread_name: str = "mixedclf-device",
        max_in_flight: int = 1,
    ):
        if max_batch_size < 1 or max_queue < 1 or max_wait_ms < 0 or max_in_flight < 1:
            raise ValueError("max_batch_size, max_queue and max_in_flight must be >= 1, max_wait_ms >= 0")
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.observer = observer
        # Batches run at once: 1 for a local device (one thread owns it); more where a batch is a job on a remote
        # endpoint, whose workers take several at a time (the next batch forms while earlier ones are out).
        self.max_in_flight = max_in_flight
        self._running: set[asyncio.Task] = set()
        self._running_rows = 0
        self.stats = BatcherStats()
        self._thread_name = thread_name
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._inflight_rows = 0
        self._wakeup: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        self._rows_per_s = 0.0  # moving average of device throughput, for Retry-After

    # --- lifecycle ---------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._executor = ThreadPoolExecutor(max_workers=self.max_in_flight, thread_name_prefix=self._thread_name)
        self._task = asyncio.get_running_loop().create_task(self._collect_forever(), name="mixedclf-batcher")

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Refuse new work, let queued work finish (up to drain_timeout_s), then stop the thread."""
        self._closing = True
        if self._task is None:
            return
        deadline = time.monotonic() + drain_timeout_s
        while (self._queue or not self._idle.is_set()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        for running in list(self._running):
            running.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(ShuttingDown("the server is shutting down"))
        self._queued_rows = 0
        self._report_queue()
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._closing

    # --- admission --------------------------------------------------------------------------------------------
    @property
    def queued_requests(self) -> int:
        return len(self._queue)

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    @property
    def inflight_rows(self) -> int:
        return self._inflight_rows

    def retry_after_s(self) -> int:
        """Seconds until the texts in flight have likely gone through the device (1..30)."""
        if self._rows_per_s <= 0:
            return 1
        return int(min(30, max(1, math.ceil(self._inflight_rows / self._rows_per_s))))

    @contextlib.contextmanager
    def admit(self, rows: int) -> Iterator[None]:
        """Hold `rows` of the `max_queue` bound for the whole life of a request (preprocess, queue, device)."""
        if self._closing:
            raise ShuttingDown("the server is shutting down")
        if self._inflight_rows + rows > self.max_queue:
            self.stats.rejected += 1
            raise QueueFull(
                f"server busy: {self._inflight_rows} texts in flight, {rows} more would pass --max-queue "
                f"{self.max_queue}",
                self.retry_after_s(),
            )
        self._inflight_rows += rows
        self._report_queue()
        try:
            yield
        finally:
            self._inflight_rows -= rows
            self._report_queue()

    # --- submit -----------------------------------------------------------------------------------------------
    async def submit(self, payload: Any, rows: int) -> Delivery:
        """Queue a payload for the device; resolves when its batch has run. Cancel-safe: a cancelled wait
        (e.g. asyncio.wait_for timing out) leaves a done future behind, which the collector skips."""
        if self._closing or self._task is None:
            raise ShuttingDown("the server is shutting down")
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(payload, rows, time.monotonic(), future))
        self._queued_rows += rows
        self.stats.max_queue_seen = max(self.stats.max_queue_seen, len(self._queue))
        self._report_queue()
        self._wakeup.set()
        return await future

    # --- the collector ----------------------------------------------------------------------------------------
    def _report_queue(self) -> None:
        if self.observer is not None:
            self.observer.queue_changed(len(self._queue), self._queued_rows, self._inflight_rows)

    def _pop_live(self) -> _Pending | None:
        """The first queued request whose caller still waits; the others are dropped."""
        while self._queue:
            item = self._queue[0]
            if not item.future.done():
                return item
            self._queue.popleft()
            self._queued_rows -= item.rows
            self.stats.dropped += 1
        return None

    async def _wait_for_work(self, timeout: float | None) -> bool:
        self._wakeup.clear()
        if self._queue:
            return True
        if timeout is None:
            await self._wakeup.wait()
            return True
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
            return True
        except (asyncio.TimeoutError, TimeoutError):
            return False

    def _company_coming(self, rows_taken: int) -> bool:
        """Whether waiting can fill the batch: admitted texts are still on their way (being preprocessed).

        With nothing admitted beyond what is queued or taken, a lone request runs at once instead of idling
        for max_wait_ms. Used without admit(), nothing is known, so the batcher waits the full max_wait_ms.
        """
        if self._inflight_rows == 0:
            return True
        return self._inflight_rows - rows_taken - self._queued_rows - self._running_rows > 0

    def _take(self, item: _Pending, batch: list[_Pending]) -> None:
        self._queue.popleft()
        self._queued_rows -= item.rows
        batch.append(item)

    async def _collect(self) -> list[_Pending]:
        while (first := self._pop_live()) is None:
            await self._wait_for_work(None)
        batch: list[_Pending] = []
        self._take(first, batch)
        rows = first.rows
        # The wait is counted from the first request's arrival: a request that waited while the device ran
        # the previous batch does not wait again.
        deadline = first.enqueued + self.max_wait_s
        while rows < self.max_batch_size:
            item = self._pop_live()
            if item is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._company_coming(rows):
                    break
                if not await self._wait_for_work(remaining):
                    break
                continue
            if rows + item.rows > self.max_batch_size:
                break  # it stays first in the queue and opens the next batch
            self._take(item, batch)
            rows += item.rows
        self._report_queue()
        return batch

    async def _collect_forever(self) -> None:
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(self.max_in_flight)
        while True:
            await slots.acquire()  # the next batch forms while every slot is busy
            try:
                batch = await self._collect()
            except BaseException:
                slots.release()
                raise
            self._idle.clear()
            rows = sum(p.rows for p in batch)
            self._running_rows += rows
            task = loop.create_task(self._execute(loop, batch), name="mixedclf-batch")
            self._running.add(task)

            def done(finished: asyncio.Task, rows: int = rows) -> None:
                self._running.discard(finished)
                self._running_rows -= rows
                if not self._running:
                    self._idle.set()
                slots.release()

            task.add_done_callback(done)

    async def _execute(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        rows = sum(p.rows for p in batch)
        start = time.monotonic()
        try:
            outcome = await loop.run_in_executor(self._executor, self.run_batch, [p.payload for p in batch])
            if len(outcome.results) != len(batch):
                raise RuntimeError(f"run_batch returned {len(outcome.results)} results for {len(batch)} payloads")
        except asyncio.CancelledError:
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(ShuttingDown("the server is shutting down"))
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every request of the batch
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        wall = time.monotonic() - start
        s = self.stats
        s.batches += 1
        s.rows += rows
        s.requests += len(batch)
        s.forward_passes += len(outcome.micro_batches)
        s.busy_s += outcome.busy_s
        if wall > 0:
            rate = rows / wall
            self._rows_per_s = rate if self._rows_per_s == 0 else 0.8 * self._rows_per_s + 0.2 * rate
        for p, result in zip(batch, outcome.results):
            if not p.future.done():
                p.future.set_result(
                    Delivery(result, start - p.enqueued, wall, outcome.busy_s, rows, len(batch), outcome.micro_batches)
                )
        if self.observer is not None:
            try:
                self.observer.batch_done(rows, len(batch), wall, outcome)
            except Exception:  # noqa: BLE001 - metrics must never stop the collector
                log.exception("mixedclf serve: recording a batch's metrics failed")
