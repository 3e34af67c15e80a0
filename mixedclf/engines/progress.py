"""The classify progress bar: a row total known (Parquet metadata) or estimated (JSONL/CSV size), an ETA,
and a start at the rows a resumed run already wrote. Drawn on stderr, so stdout stays for data and JSON."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

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
    try:
        if fmt == "parquet":
            from mixedclf.io.readers import count_rows_hint

            rows = count_rows_hint(path, fmt)
            return RowTotal(rows, rows is not None)
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(SAMPLE_BYTES)
    except OSError:
        return RowTotal(None, False)
    header = 1 if fmt == "csv" else 0
    if len(head) >= size:
        return RowTotal(max(_count_lines(head) - header, 0), True)
    cut = head.rfind(b"\n") + 1  # whole lines only, so the mean line length is not skewed by a cut line
    lines = _count_lines(head[:cut])
    if lines <= header or cut == 0:
        return RowTotal(None, False)
    return RowTotal(max(round(lines * size / cut) - header, 1), False)


def source_rows(source) -> RowTotal:
    """expected_rows over every file of an input (io.sources.Source), in the files' order. Unknown (no total,
    the bar still counts) for stdin and for compressed or remote JSONL/CSV, whose stored size says little about
    their rows."""
    total, exact = 0, True
    for file in source.files:
        if source.fmt == "parquet":
            from mixedclf.io.readers import count_rows_hint

            rows = count_rows_hint(file, "parquet")
            found = RowTotal(rows, rows is not None)
        elif file.local is not None and file.compression is None:
            found = expected_rows(file.local, source.fmt)
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


class RowProgress:
    """A tqdm bar over rows. An estimated total grows when the rows outrun it and is made exact at the end."""

    def __init__(self, total: RowTotal, initial: int = 0, file=None, disable: bool = False):
        from tqdm import tqdm

        self.exact = total.exact
        # Exact counts read best up to a few hundred thousand rows; past that, 1.23M/10.0M.
        scaled = (total.rows or initial) >= 100_000
        self.bar = tqdm(
            total=total.rows, initial=initial, unit=" rows", unit_scale=scaled, file=file or sys.stderr,
            dynamic_ncols=True, desc="classify" if total.exact or total.rows is None else "classify (total estimated)",
            disable=disable, smoothing=0.1,
        )

    def advance(self, rows: int) -> None:
        if rows <= 0:
            return
        bar = self.bar
        if bar.total is not None and bar.n + rows > bar.total:
            bar.total = bar.n + rows
        bar.update(rows)

    def close(self, finished: bool) -> None:
        if finished and self.bar.total != self.bar.n:
            self.bar.total = self.bar.n
            self.bar.refresh()
        self.bar.close()

    def __enter__(self) -> "RowProgress":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(finished=exc_type is None)
