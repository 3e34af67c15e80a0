"""The Ray engine's last step, on the driver: the Parquet parts, merged in row order into OUTPUT (atomically)
and OUTPUT.errors.jsonl, exactly as the local engine writes them: one file, or a folder laid out the same way
(a part per input file, or per --rows-per-file rows)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mixedclf.core.postprocess import LabelTally
from mixedclf.core.stats import IdRepeats
from mixedclf.engines.ray.stages import INTERNAL, PROBLEM, ROW
from mixedclf.errors import MixedclfError
from mixedclf.io.sinks import open_error_log, open_writer, write_rows


def merge_parts(parts: Path, output: Path, out_fmt: str, id_field: str, expected_rows: int, kind: str = "file",
                rows_per_file: int | None = None, file_starts: list[tuple[int, int, str]] | None = None,
                line_offset: int = 0):
    """Parts in row order -> OUTPUT (atomically) + OUTPUT.errors.jsonl; returns the tally and counts.

    `expected_rows` is how many rows the numberer numbered: the merge fails the run unless it finds every one.
    `file_starts`: (first row, input file index, name) where the rows of each input file start, when the input is
    several files: rows go to their file's part, and a skipped row names its file and its line there.
    """
    files = sorted(parts.glob("*.parquet")) if parts.is_dir() else []
    ranges = []
    for f in files:
        rows = pq.read_table(f, columns=[ROW]).column(ROW).to_numpy()
        if len(rows):
            ranges.append((int(rows.min()), int(rows.max()), f))
    ranges.sort(key=lambda r: r[0])
    disjoint = all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))
    writer = open_writer(output, out_fmt, kind, rows_per_file)
    errors = open_error_log(output, kind)
    tally = LabelTally()
    counts: dict[str, Any] = {"in": 0, "out": 0, "errored": 0, "id_repeats": IdRepeats(), "next_row": 0,
                              "files": file_starts or [], "line_offset": line_offset}
    try:
        if disjoint:
            for _, _, f in ranges:
                _merge_table(pq.read_table(f), id_field, writer, errors, tally, counts)
        elif ranges:
            # Parts overlap (never seen with preserve_order): sort everything at once.
            table = pa.concat_tables([pq.read_table(f) for _, _, f in ranges], promote_options="default")
            _merge_table(table, id_field, writer, errors, tally, counts)
        if counts["in"] != expected_rows:
            raise MixedclfError(
                f"the Ray job wrote {counts['in']:,} of {expected_rows:,} rows where this machine can see them",
                hint="on a cluster, put the output on storage every node mounts at the same path",
            )
        writer.commit()
        errors.commit()
    except BaseException:
        writer.abort()
        errors.abort()
        raise
    counts["duplicate_ids"] = counts["id_repeats"].count()
    return tally, counts, len(files)


def _file_at(files: list[tuple[int, int, str]], row: int) -> tuple[int, int, str]:
    """The (first row, index, name) of the input file holding this row."""
    at = int(np.searchsorted([f[0] for f in files], row, side="right")) - 1
    return files[max(at, 0)]


def _merge_table(table: pa.Table, id_field: str, writer, errors, tally: LabelTally, counts: dict) -> None:
    files = counts["files"]
    if files:  # one input file at a time, so each run of rows lands in its file's part
        rows = table.column(ROW).to_numpy()
        if len(rows) > 1 and not np.all(rows[1:] > rows[:-1]):
            table = table.sort_by(ROW)
            rows = table.column(ROW).to_numpy()
        starts = [f[0] for f in files]
        cuts = [0] + [int(np.searchsorted(rows, s)) for s in starts if rows[0] < s <= rows[-1]] + [len(rows)]
        for a, b in zip(cuts, cuts[1:]):
            if b > a:
                _merge_rows(table.slice(a, b - a), id_field, writer, errors, tally, counts)
        return
    _merge_rows(table, id_field, writer, errors, tally, counts)


def _merge_rows(table: pa.Table, id_field: str, writer, errors, tally: LabelTally, counts: dict) -> None:
    rows = table.column(ROW).to_numpy()
    if len(rows) > 1 and not np.all(rows[1:] > rows[:-1]):
        table = table.sort_by(ROW)
        rows = table.column(ROW).to_numpy()
    # Every row number exactly once, in order: 0, 1, 2, ... across all parts.
    if len(rows) and not (rows[0] == counts["next_row"] and rows[-1] == counts["next_row"] + len(rows) - 1
                          and np.all(np.diff(rows) == 1)):
        raise MixedclfError("the Ray job's output has missing or repeated rows (a Ray worker was restarted "
                            "part-way?); nothing was written", hint="rerun the job")
    counts["next_row"] += len(rows)
    problems = table.column(PROBLEM)
    valid = table.filter(pc.is_null(problems))
    bad = table.filter(pc.is_valid(problems))
    if valid.num_rows:
        valid = valid.drop_columns([c for c in INTERNAL if c in valid.column_names])
        tally.add({k: valid.column(k).combine_chunks() for k in ("label", "confidence", "score", "truncated")})
        ids = valid.column(id_field).to_pylist()
        counts["id_repeats"].add(ids)
    files = counts["files"]
    first, source, name = _file_at(files, int(rows[0])) if files and len(rows) else (0, 0, None)
    if valid.num_rows:
        write_rows(writer, valid, source)
    if bad.num_rows:
        problems = [json.loads(p) for p in bad.column(PROBLEM).to_pylist()]
        if name is not None:  # the line within its own file, as the local engine reports it
            for p in problems:
                p["line"] = p["row"] - first + counts["line_offset"] if p.get("line") is not None else None
                p["file"] = name
        errors.write(problems)
    counts["in"] += table.num_rows
    counts["out"] += valid.num_rows
    counts["errored"] += bad.num_rows
