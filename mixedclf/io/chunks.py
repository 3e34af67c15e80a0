"""Rows into chunks, whatever the format: a chunk holds the valid rows (texts, and every other column as a table)
and the problems found among them. The format modules (io.format_*) feed rows or arrow batches in."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mixedclf.core.batching import ChunkSizes
from mixedclf.errors import InputError
from mixedclf.io.jsonl_rows import unencodable
from mixedclf.io.jsonvalues import column_from_values


@dataclass
class RowProblem:
    row: int  # 0-based index among the input's data rows (across every file of a folder, glob or list)
    line: int | None  # 1-based line in a JSONL/CSV file, when known
    id: Any
    reason: str
    file: str | None = None  # the file the row is in, when the input is more than one file

    def as_dict(self) -> dict[str, Any]:
        found = {"row": self.row, "line": self.line, "id": self.id, "reason": self.reason}
        return found if self.file is None else {**found, "file": self.file}


@dataclass
class InputChunk:
    """Consecutive rows of the input: the valid ones to classify and the problems found among them."""

    index: int
    first_row: int
    rows_in: int
    texts: list[str]
    passthrough: pa.Table  # id column first, then every other input column but the text, valid rows only
    problems: list[RowProblem] = field(default_factory=list)
    source: int = 0  # which file of the input the rows come from (a chunk never spans two)
    # A piece of chunk `index` (cut near a --max-cost budget, or its rest on --resume): rows of the chunk before
    # these, and whether these run to its end. Chunk boundaries stay those of the reader; pieces are inside them.
    offset: int = 0
    ends_chunk: bool = True


def valid_range(chunk: InputChunk, start: int, stop: int) -> tuple[int, int]:
    """Input rows start..stop of the chunk as a range of its valid rows (its texts, its sequences)."""
    # The valid rows are the chunk's rows that are not problems, in order: count those before each end.
    problem_rows = sorted(p.row for p in chunk.problems)
    return (start - bisect.bisect_left(problem_rows, chunk.first_row + start),
            stop - bisect.bisect_left(problem_rows, chunk.first_row + stop))


def chunk_piece(chunk: InputChunk, start: int, stop: int) -> InputChunk:
    """Rows start..stop (counted among the chunk's input rows, valid or not, from its first) of the chunk, in
    order: its texts, passthrough and problems in that range."""
    start, stop = max(0, start), min(chunk.rows_in, stop)
    if start == 0 and stop == chunk.rows_in:
        return chunk
    lo, hi = chunk.first_row + start, chunk.first_row + stop
    before_lo, before_hi = valid_range(chunk, start, stop)
    return replace(chunk, first_row=lo, rows_in=stop - start, texts=chunk.texts[before_lo:before_hi],
                   passthrough=chunk.passthrough.slice(before_lo, before_hi - before_lo),
                   problems=[p for p in chunk.problems if lo <= p.row < hi], offset=chunk.offset + start,
                   ends_chunk=chunk.ends_chunk and stop == chunk.rows_in)


def text_problem(value: Any) -> str | None:
    """Why a value cannot be classified as a text, or None when it can."""
    if value is None:
        return "text is null"
    if not isinstance(value, str):
        return f"text is a {type(value).__name__}, not a string"
    if not value or value.isspace():  # isspace, not strip: no copy of a 50 MB text
        return "text is empty or whitespace only"
    return None


def keep_prefix(text: str, max_chars: int | None) -> str:
    """At most max_chars + 1 characters: the preprocess stage cuts to max_chars and flags the row truncated,
    and nothing between here and there copies the rest."""
    return text if max_chars is None or len(text) <= max_chars + 1 else text[: max_chars + 1]


def json_table(rows: list[dict[str, Any]]) -> pa.Table:
    """A table from JSON objects, each column typed only as far as its values come back unchanged."""
    names = list(dict.fromkeys(k for r in rows for k in r))
    return pa.table({name: column_from_values([r.get(name) for r in rows]) for name in names})


class ChunkBuilder:
    """Collects rows and problems until a chunk is full."""

    def __init__(self, text_field: str, id_field: str, chunk_rows: int | ChunkSizes, max_text_chars: int | None,
                 text_as_read: bool = False, at: Position | None = None):
        self.text_field, self.id_field, self.sizes = text_field, id_field, sizes_of(chunk_rows)
        self.max_text_chars, self.text_as_read = max_text_chars, text_as_read
        at = at or Position()
        self.index, self.next_row, self.source, self.file = at.index, at.row, at.source, at.file
        self.started_at = at.row
        self._reset()

    def _reset(self) -> None:
        self.first_row = self.next_row
        self.texts: list[str] = []
        self.records: list[dict[str, Any]] = []
        self.problems: list[RowProblem] = []

    def add_record(self, record: dict[str, Any], line: int | None, suspect: bool = False) -> None:
        """suspect: the line may hold what no output can take (a \\ud800 escape, deep nesting): check it."""
        row = self.next_row
        self.next_row += 1
        row_id = record.get(self.id_field, row)
        problem = text_problem(record.get(self.text_field)) if self.text_field in record else (
            f"missing text field {self.text_field!r}"
        )
        rest = {k: v for k, v in record.items() if k not in (self.text_field, self.id_field)}
        if not problem and suspect:
            checked = {self.id_field: row_id, **rest}
            if self.text_as_read:
                checked[self.text_field] = record[self.text_field]
            problem = unencodable(checked)
        if problem:
            self.problems.append(RowProblem(row, line, None if isinstance(row_id, (list, dict)) else row_id, problem,
                                            self.file))
            return
        self.texts.append(keep_prefix(record[self.text_field], self.max_text_chars))
        self.records.append({self.id_field: row_id, **rest})

    def add_problem(self, line: int | None, reason: str) -> None:
        self.problems.append(RowProblem(self.next_row, line, None, reason, self.file))
        self.next_row += 1

    @property
    def full(self) -> bool:
        return self.next_row - self.first_row >= self.sizes(self.index)

    def take(self) -> InputChunk:
        table = json_table(self.records) if self.records else pa.table({self.id_field: pa.array([], pa.int64())})
        chunk = InputChunk(self.index, self.first_row, self.next_row - self.first_row, self.texts, table, self.problems,
                           self.source)
        self.index += 1
        self._reset()
        return chunk


@dataclass
class Position:
    """Where the next file's rows start: chunk index and row number run on across the files of an input."""

    index: int = 0
    row: int = 0
    source: int = 0
    file: str | None = None  # named in row problems when the input is several files


def sizes_of(chunk_rows: int | ChunkSizes) -> ChunkSizes:
    return chunk_rows if isinstance(chunk_rows, ChunkSizes) else ChunkSizes(chunk_rows)


def check_columns(path: Path | str, schema: pa.Schema, text_field: str) -> None:
    if text_field not in schema.names:
        raise InputError(
            f"{path}: no column {text_field!r} (columns: {', '.join(schema.names) or 'none'})",
            hint="name the text column with --text-field",
        )
    kind = schema.field(text_field).type
    if not is_text_type(kind):
        raise InputError(f"{path}: column {text_field!r} holds {kind}, not text", hint="pick a string column")


def is_text_type(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
            or pa.types.is_null(kind))


def text_values(column: pa.ChunkedArray, max_chars: int | None) -> list[Any]:
    """A text column (plain, large, view or dictionary-encoded) as Python strings, each cut to a bounded prefix
    before Python copies it."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = column.cast(pa.large_string())
    if max_chars is not None and len(column) and (pc.max(pc.binary_length(column)).as_py() or 0) > max_chars + 1:
        column = pc.utf8_slice_codeunits(column, 0, max_chars + 1)
    return column.to_pylist()


def iter_arrow_batches(
    batches: Iterator[pa.RecordBatch], text_field: str, id_field: str, chunk_rows: int | ChunkSizes,
    line_offset: int, max_text_chars: int | None, at: Position,
) -> Iterator[InputChunk]:
    """Chunks from arrow batches: valid rows stay columnar; only the problem rows are looked at one by one."""
    sizes = sizes_of(chunk_rows)
    index, next_row = at.index, at.row
    first_row = at.row
    pending: list[pa.RecordBatch] = []
    pending_rows = 0

    def flush() -> InputChunk:
        nonlocal index, next_row, pending, pending_rows
        table = pa.Table.from_batches(pending).combine_chunks()
        n = table.num_rows
        texts = text_values(table.column(text_field), max_text_chars)
        has_id = id_field in table.column_names
        problems, keep = [], []
        for i, text in enumerate(texts):
            reason = text_problem(text)
            if reason:
                row_id = table.column(id_field)[i].as_py() if has_id else next_row + i
                problems.append(RowProblem(next_row + i, next_row - first_row + i + line_offset, row_id, reason,
                                           at.file))
            else:
                keep.append(i)
        # Column by column, never through a table without columns (whose row count a take() loses).
        ids = table.column(id_field) if has_id else pa.array(range(next_row, next_row + n), type=pa.int64())
        names = [id_field] + [c for c in table.column_names if c not in (text_field, id_field)]
        columns = [ids] + [table.column(c) for c in names[1:]]
        if len(keep) < n:
            rows = pa.array(keep, type=pa.int64())
            columns = [c.take(rows) for c in columns]
        passthrough = pa.Table.from_arrays(columns, names=names)
        chunk = InputChunk(index, next_row, n, [texts[i] for i in keep], passthrough, problems, at.source)
        index += 1
        next_row += n
        pending, pending_rows = [], 0
        return chunk

    for batch in batches:
        while batch.num_rows:
            size = sizes(index)
            take = min(batch.num_rows, size - pending_rows)
            pending.append(batch.slice(0, take))
            pending_rows += take
            batch = batch.slice(take)
            if pending_rows >= size:
                yield flush()
    if pending_rows:
        yield flush()
    at.index, at.row = index, next_row

