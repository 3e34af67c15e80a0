"""What a run counts about itself, shared by the local and the Ray engine: stage clocks and row counts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory


@dataclass(kw_only=True)
class Clock:
    """Busy seconds and the first-start / last-end window of some work: the one clock every stage keeps (a run's
    stages, the device runner, the server's batcher)."""

    busy_s: float = 0.0
    # CPU seconds the work took (thread or process CPU clocks, worker processes included); None: not measured
    cpu_s: float | None = None
    first: float | None = None
    last: float | None = None

    def time(self, start: float, end: float, cpu_s: float | None = None) -> None:
        self.busy_s += end - start
        if cpu_s is not None:
            self.cpu_s = (self.cpu_s or 0.0) + max(0.0, cpu_s)
        self.first = start if self.first is None else min(self.first, start)
        self.last = end if self.last is None else max(self.last, end)

    @property
    def wall_s(self) -> float:
        return (self.last - self.first) if self.first is not None and self.last is not None else 0.0


@dataclass
class StageClock(Clock):
    """One stage of a run: its clock, what it is billed as, where it ran, and how many items it did."""

    name: str
    billing: str
    device: str
    workers: int = 1
    items: int = 0

    def add(self, start: float, end: float, items: int, cpu_s: float | None = None) -> None:
        self.time(start, end, cpu_s)
        self.items += items


@dataclass
class RunCounts:
    rows_in: int = 0
    rows_out: int = 0
    rows_errored: int = 0
    chunks_done: int = 0
    chunk_rows_done: int = 0  # rows of chunk `chunks_done` written as its first pieces (io.checkpoint)


class IdRepeats:
    """Rows whose id repeats an earlier row's id (kept and classified; reported so the user knows), counted
    exactly in bounded memory whatever the row count.

    Ids are compared as text through 64-bit hashes (a collision, about 3% likely over 10^9 distinct ids, would
    count one repeat too many). Up to `buffer_rows` hashes are held in memory; beyond that they are spilled to
    temporary bucket files by their top 8 bits, and count() takes the buckets one at a time (one larger than the
    buffer is split again by the next 8 bits), so memory stays at the buffer (8 MB by default) at any scale and
    disk use is 8 bytes per distinct id. numpy is imported on use: the cost commands import this module and stay
    free of it."""

    BUCKET_BITS = 8

    def __init__(self, buffer_rows: int = 1 << 20):
        self.buffer_rows = buffer_rows
        self._pending: list = []
        self._pending_rows = 0
        self._rows = 0  # hashes added
        # a temporary folder once the buffer first overflows (removed with this object, or by count())
        self._spill: TemporaryDirectory | None = None

    def add(self, ids) -> None:
        import numpy as np

        hashes = np.fromiter((hash(str(i)) for i in ids), dtype=np.int64, count=len(ids))
        self._pending.append(hashes)
        self._pending_rows += len(hashes)
        self._rows += len(hashes)
        if self._pending_rows > self.buffer_rows:
            self._flush()

    def _flush(self) -> None:
        import numpy as np

        if not self._pending_rows:
            return
        if self._spill is None:
            self._spill = TemporaryDirectory(prefix="mixedclf-ids-")
        hashes = np.unique(np.concatenate(self._pending))  # repeats within the buffer need no disk
        self._pending, self._pending_rows = [], 0
        _append_buckets(self._spill.name, hashes, 64 - self.BUCKET_BITS)

    def count(self) -> int:
        import numpy as np

        if self._spill is None:
            if not self._pending:
                return 0
            hashes = np.concatenate(self._pending)
            return int(len(hashes) - len(np.unique(hashes)))
        self._flush()
        folder = Path(self._spill.name)
        distinct = sum(_distinct(path, 64 - 2 * self.BUCKET_BITS, self.buffer_rows)
                       for path in sorted(folder.glob("b*")))
        self._spill.cleanup()
        self._spill = None
        return self._rows - distinct


def _append_buckets(folder: Path | str, hashes, shift: int) -> None:
    """Append int64 hashes to folder/b<k>, k their 8 bits from bit `shift` up. Plain string paths: pathlib interns
    each name, and growing the interpreter's intern table is a multi-MB allocation at no fixed row."""
    import numpy as np

    keys = (hashes.view(np.uint64) >> np.uint64(shift)) & np.uint64(0xFF)
    order = np.argsort(keys, kind="stable")
    hashes, keys = hashes[order], keys[order]
    bounds = np.searchsorted(keys, np.arange(257, dtype=np.uint64))
    for k in np.flatnonzero(np.diff(bounds)):
        with open(os.path.join(folder, f"b{k:03d}"), "ab") as f:
            hashes[bounds[k] : bounds[k + 1]].tofile(f)


def _distinct(path: Path, shift: int, limit: int) -> int:
    """Distinct hashes in one bucket file, holding at most about `limit` of them at once."""
    import numpy as np

    size = path.stat().st_size // 8
    if size <= limit or shift < 0:
        return len(np.unique(np.fromfile(path, dtype=np.int64)))
    sub = path.with_name(path.name + "s")
    sub.mkdir()
    with open(path, "rb") as f:
        while (block := np.fromfile(f, dtype=np.int64, count=limit)).size:
            _append_buckets(sub, np.unique(block), shift)
    path.unlink()
    return sum(_distinct(p, shift - 8, limit) for p in sorted(sub.glob("b*")))
