"""The classify progress bar: a row total known (Parquet metadata) or estimated (JSONL/CSV size, and for a
compressed file its sampled compression ratio), an ETA, and a start at the rows a resumed run already wrote.
Drawn on stderr, so stdout stays for data and JSON.

The ETA is not rows over a moving average of rows/s. Two things make that swing: rows answered without the
device (repeats that dedup answers, rows with problems) arrive as a burst at the end of each chunk, and each
chunk runs its longest rows first (a length-sorted window), so rows/s climbs through every chunk. EtaEstimator
measures the device's rate in tokens (the work a row costs is its tokens, which a chunk's preprocessing tells
before its first micro-batch), from the end of the warm-up (the first chunk: model warm-up and the pool's
start), and counts answered rows apart, as the share of each finished chunk's tokens that never reached the
device.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, Protocol

# Bytes read from the head of a JSONL/CSV file to measure its mean line length.
SAMPLE_BYTES = 1 << 20


class RowTotal(NamedTuple):
    rows: int | None
    exact: bool


def _count_lines(data: bytes) -> int:
    """Non-blank lines: the readers skip blank JSONL lines, and a CSV's trailing newline ends no row."""
    return sum(1 for line in data.splitlines() if line.strip())


def expected_rows(path: Path, fmt: str) -> RowTotal:
    """Rows the input holds: exact for Parquet (footer metadata) and for a JSONL/CSV file that fits in one
    sample; otherwise the file size over the mean line length of its first megabyte."""
    from mixedclf.io.formats import spec

    try:
        if spec(fmt).row_count is not None:
            from mixedclf.io.readers import count_rows_hint

            rows = count_rows_hint(path, fmt)
            return RowTotal(rows, rows is not None)
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(SAMPLE_BYTES)
    except OSError:
        return RowTotal(None, False)
    header = spec(fmt).header_lines
    if len(head) >= size:
        return RowTotal(max(_count_lines(head) - header, 0), True)
    cut = head.rfind(b"\n") + 1  # whole lines only, so the mean line length is not skewed by a cut line
    lines = _count_lines(head[:cut])
    if lines <= header or cut == 0:
        return RowTotal(None, False)
    return RowTotal(max(round(lines * size / cut) - header, 1), False)


# Decompressed bytes sampled from a compressed JSONL/CSV: the compressed bytes they came from give the ratio.
COMPRESSED_SAMPLE_BYTES = 4 << 20


def compressed_rows(path: Path, fmt: str, compression: str) -> RowTotal:
    """Rows of a compressed JSONL/CSV file: exact when it decompresses within one sample; otherwise the rows of
    the sample scaled by the file's compressed size over the compressed bytes the sample took (the decompressor
    reads ahead a little, so this errs low by a few percent; the bar grows its total when rows outrun it)."""
    import pyarrow as pa

    from mixedclf.io.formats import spec

    header = spec(fmt).header_lines
    try:
        size = path.stat().st_size
        with pa.OSFile(str(path)) as raw:
            stream = pa.CompressedInputStream(raw, compression)
            pieces, got, before, consumed = [], 0, 0, 0
            while got < COMPRESSED_SAMPLE_BYTES:
                piece = stream.read(1 << 16)
                if not piece:
                    break
                pieces.append(piece)
                got += len(piece)
                if raw.tell() != consumed:
                    before, consumed = consumed, raw.tell()
            head = b"".join(pieces)
            more = bool(stream.read(1))
            # The decompressor reads the file in blocks (up to ~900 kB for bz2): the sample ended somewhere in
            # the last block it read, taken as its middle.
            consumed = (before + consumed) // 2 if before else consumed
    except (OSError, pa.ArrowException):
        return RowTotal(None, False)
    if not more:
        return RowTotal(max(_count_lines(head) - header, 0), True)
    cut = head.rfind(b"\n") + 1
    lines = _count_lines(head[:cut])
    if lines <= header or cut == 0 or consumed <= 0:
        return RowTotal(None, False)
    return RowTotal(max(round(lines * (len(head) / cut) * size / consumed) - header, 1), False)


def source_rows(source) -> RowTotal:
    """expected_rows over every file of an input (io.sources.Source), in the files' order; a compressed local
    file through its sampled compression ratio. Unknown (no total, the bar still counts) for stdin and for remote
    JSONL/CSV, whose stored size says little about their rows."""
    from mixedclf.io.formats import spec

    total, exact = 0, True
    for file in source.files:
        if spec(source.fmt).row_count is not None:
            from mixedclf.io.readers import count_rows_hint

            rows = count_rows_hint(file, source.fmt)
            found = RowTotal(rows, rows is not None)
        elif file.local is not None and file.compression is None:
            found = expected_rows(file.local, source.fmt)
        elif file.local is not None:
            found = compressed_rows(file.local, source.fmt, file.compression)
        else:
            return RowTotal(None, False)
        if found.rows is None:
            return RowTotal(None, False)
        total += found.rows
        exact = exact and found.exact
    return RowTotal(total, exact)


def rows_already_done(output: Path, resume: bool) -> int:
    """Rows a resumed run skips: its checkpoint's count (the engine checks that the checkpoint fits the run)."""
    if not resume:
        return 0
    from mixedclf.io.checkpoint import Checkpoint

    checkpoint = Checkpoint.load(output)
    return checkpoint.rows_in if checkpoint is not None else 0


class EtaEstimator:
    """Seconds left, from events the engine reports in order: chunk_started (its rows and tokens, known once
    preprocessed), computed (a micro-batch's rows and tokens), answered (rows done without the device; the end
    of the chunk). Times are time.monotonic() readings, passed in so a recorded timeline replays exactly."""

    def __init__(self) -> None:
        self.rows_started = 0  # rows of the chunks the device has started
        self.tokens_started = 0
        self.rows_computed = 0
        self.rows_answered = 0
        self.tokens_computed = 0
        self._chunk: tuple[int, int] | None = None  # (rows, tokens) of the chunk on the device
        self._chunk_computed = 0  # tokens of it computed so far
        self._finished_tokens = 0  # tokens of finished chunks, and the part of them the device computed
        self._finished_computed = 0
        self._warm: tuple[float, int] | None = None  # (time, tokens computed) when the warm-up ended
        self.first_at: float | None = None
        self.last_at: float | None = None

    def chunk_started(self, rows: int, tokens: int, now: float) -> None:
        self._finish_chunk()
        self._chunk = (rows, tokens)
        self.rows_started += rows
        self.tokens_started += tokens

    def computed(self, rows: int, tokens: int, now: float) -> None:
        if self.first_at is None:
            self.first_at = now
        self.rows_computed += rows
        self.tokens_computed += tokens
        self._chunk_computed += tokens
        self.last_at = now

    def answered(self, rows: int, now: float) -> None:
        """Rows done without the device; called once at the end of each chunk (with 0 when there were none)."""
        self.rows_answered += rows
        self._finish_chunk()
        if self._warm is None and self.first_at is not None:
            self._warm = (now, self.tokens_computed)

    def _finish_chunk(self) -> None:
        if self._chunk is not None:
            self._finished_tokens += self._chunk[1]
            self._finished_computed += self._chunk_computed
        self._chunk, self._chunk_computed = None, 0

    @property
    def device_share(self) -> float:
        """Of a chunk's tokens, the share the device computes (the rest: repeats answered by dedup)."""
        if self._finished_tokens <= 0:
            return 1.0
        return min(1.0, self._finished_computed / self._finished_tokens)

    def token_rate(self, now: float) -> float | None:
        """Device tokens per second of wall time since the warm-up ended (stalls between chunks included: they
        recur); over the warm-up itself while it is all there is."""
        start, done = self._warm if self._warm is not None else (self.first_at, 0)
        if self._warm is not None and self.tokens_computed - done <= 0:  # the first chunk just ended
            start, done = self.first_at, 0
        if start is None or now - start < 1e-6 or self.tokens_computed - done <= 0:
            return None
        return (self.tokens_computed - done) / (now - start)

    def seconds_left(self, total_rows: int | None, now: float) -> float | None:
        rate = self.token_rate(now)
        if rate is None or not total_rows or self.rows_started <= 0:
            return None
        share = self.device_share
        per_row = self.tokens_started / self.rows_started
        in_chunk = max(0.0, self._chunk[1] * share - self._chunk_computed) if self._chunk is not None else 0.0
        later = max(0, total_rows - self.rows_started) * per_row * share
        return (in_chunk + later) / rate

    def rows_per_s(self, now: float) -> float | None:
        """Device rows per second since its first micro-batch."""
        if self.first_at is None or now - self.first_at < 1e-6:
            return None
        return self.rows_computed / (now - self.first_at)


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60:02d}:{rest % 60:02d}"


class WorkListener(Protocol):
    """What the local engine tells the progress line besides rows (see EtaEstimator)."""

    def chunk_started(self, rows: int, tokens: int) -> None: ...

    def computed(self, rows: int, tokens: int) -> None: ...

    def answered(self, rows: int) -> None: ...


class RowProgress:
    """A tqdm bar over rows. An estimated total grows when the rows outrun it and is made exact at the end; an
    estimated total is shown with "~". After the count: the ETA (EtaEstimator), the device's rows/s and the rows
    answered without it, and, given `spent` (the meter's job_spent), the running cost and what is left of
    `max_cost`. Redrawn at most every `REFRESH_S`."""

    REFRESH_S = 0.5

    def __init__(self, total: RowTotal, initial: int = 0, file=None, disable: bool = False,
                 spent: Callable[[], float] | None = None, max_cost: float | None = None):
        from tqdm import tqdm

        self.exact = total.exact
        self.eta = EtaEstimator()
        self.spent, self.max_cost = spent, max_cost
        self._drawn_at = 0.0
        self._initial = initial
        # Exact counts read best up to a few hundred thousand rows; past that, 1.23M/10.0M.
        scaled = (total.rows or initial) >= 100_000
        approx = "" if total.exact or total.rows is None else "~"
        self.bar = tqdm(
            total=total.rows, initial=initial, unit=" rows", unit_scale=scaled, file=file or sys.stderr,
            dynamic_ncols=True, desc="classify", disable=disable, smoothing=0.1,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/" + approx + "{total_fmt} [{elapsed}{postfix}]"
            if total.rows is not None else "{desc}: {n_fmt} rows [{elapsed}{postfix}]",
        )

    def advance(self, rows: int) -> None:
        if rows <= 0:
            return
        bar = self.bar
        if bar.total is not None and bar.n + rows > bar.total:
            bar.total = bar.n + rows
        bar.update(rows)
        self._describe()

    # WorkListener: the local engine's events, timed here.
    def chunk_started(self, rows: int, tokens: int) -> None:
        self.eta.chunk_started(rows, tokens, time.monotonic())

    def computed(self, rows: int, tokens: int) -> None:
        self.eta.computed(rows, tokens, time.monotonic())
        self._describe()

    def answered(self, rows: int) -> None:
        self.eta.answered(rows, time.monotonic())
        self._describe()

    def postfix(self, now: float) -> str:
        parts = []
        total = self.bar.total
        if total is not None and self.eta.rows_started:
            parts.append(f"<{format_eta(self.eta.seconds_left(total - self._initial, now))}")
        elif total is not None:  # an engine that reports rows only (Ray): rows over the average rows/s
            rate = self.bar.format_dict.get("rate")
            parts.append(f"<{format_eta((total - self.bar.n) / rate if rate else None)}")
        rate = self.eta.rows_per_s(now)
        if rate is not None:
            parts.append(f"device {rate:,.0f} rows/s")
        if self.eta.rows_answered:
            parts.append(f"{self.eta.rows_answered:,} answered without it")
        if self.spent is not None:
            spent = self.spent()
            parts.append(f"${spent:,.4f} so far" if spent < 1 else f"${spent:,.2f} so far")
            if self.max_cost is not None:
                parts.append(f"${max(0.0, self.max_cost - spent):,.2f} of ${self.max_cost:,.2f} left")
        return (", " if parts else "") + ", ".join(parts)

    def _describe(self) -> None:
        now = time.monotonic()
        if self.bar.disable or now - self._drawn_at < self.REFRESH_S:
            return
        self._drawn_at = now
        self.bar.set_postfix_str(self.postfix(now).removeprefix(", "), refresh=False)

    def close(self, finished: bool) -> None:
        if finished and self.bar.total != self.bar.n:
            self.bar.total = self.bar.n
            self.bar.refresh()
        self.bar.close()

    def __enter__(self) -> "RowProgress":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(finished=exc_type is None)
