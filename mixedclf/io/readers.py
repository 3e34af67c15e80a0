"""Stream an input file as chunks of validated rows; never the whole file in memory.

Parquet and CSV come through pyarrow's streaming readers. JSONL is read line by line with the json module
because row-level problems (a malformed line, invalid UTF-8) must be reported with their line number and the
rest of the file kept, which pyarrow's block reader cannot do.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mixedclf.errors import InputError


@dataclass
class RowProblem:
    row: int  # 0-based index among the file's data rows
    line: int | None  # 1-based line in a JSONL/CSV file, when known
    id: Any
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "line": self.line, "id": self.id, "reason": self.reason}


@dataclass
class InputChunk:
    """Consecutive rows of the input: the valid ones to classify and the problems found among them."""

    index: int
    first_row: int
    rows_in: int
    texts: list[str]
    passthrough: pa.Table  # id column first, then every other input column but the text, valid rows only
    problems: list[RowProblem] = field(default_factory=list)


def text_problem(value: Any) -> str | None:
    """Why a value cannot be classified as a text, or None when it can."""
    if value is None:
        return "text is null"
    if not isinstance(value, str):
        return f"text is a {type(value).__name__}, not a string"
    if not value.strip():
        return "text is empty or whitespace only"
    return None


def _json_safe_table(rows: list[dict[str, Any]]) -> pa.Table:
    """A table from JSON objects; columns whose values arrow cannot type together become JSON strings."""
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        names = list(dict.fromkeys(k for r in rows for k in r))
        columns = {}
        for name in names:
            values = [r.get(name) for r in rows]
            try:
                columns[name] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
                columns[name] = pa.array(
                    [None if v is None else json.dumps(v, ensure_ascii=False) for v in values], type=pa.string()
                )
        return pa.table(columns)


class ChunkBuilder:
    """Collects rows and problems until a chunk is full."""

    def __init__(self, text_field: str, id_field: str, chunk_rows: int):
        self.text_field, self.id_field, self.chunk_rows = text_field, id_field, chunk_rows
        self.index = 0
        self.next_row = 0
        self._reset()

    def _reset(self) -> None:
        self.first_row = self.next_row
        self.texts: list[str] = []
        self.records: list[dict[str, Any]] = []
        self.problems: list[RowProblem] = []

    def add_record(self, record: dict[str, Any], line: int | None) -> None:
        row = self.next_row
        self.next_row += 1
        row_id = record.get(self.id_field, row)
        problem = text_problem(record.get(self.text_field)) if self.text_field in record else (
            f"missing text field {self.text_field!r}"
        )
        if problem:
            self.problems.append(RowProblem(row, line, row_id, problem))
            return
        rest = {k: v for k, v in record.items() if k not in (self.text_field, self.id_field)}
        self.texts.append(record[self.text_field])
        self.records.append({self.id_field: row_id, **rest})

    def add_problem(self, line: int | None, reason: str) -> None:
        self.problems.append(RowProblem(self.next_row, line, None, reason))
        self.next_row += 1

    @property
    def full(self) -> bool:
        return self.next_row - self.first_row >= self.chunk_rows

    def take(self) -> InputChunk:
        table = _json_safe_table(self.records) if self.records else pa.table({self.id_field: pa.array([], pa.int64())})
        chunk = InputChunk(self.index, self.first_row, self.next_row - self.first_row, self.texts, table, self.problems)
        self.index += 1
        self._reset()
        return chunk


def _iter_jsonl(path: Path, text_field: str, id_field: str, chunk_rows: int) -> Iterator[InputChunk]:
    builder = ChunkBuilder(text_field, id_field, chunk_rows)
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue  # blank lines carry no row
            try:
                record = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                builder.add_problem(line_no, f"invalid UTF-8 at byte {exc.start}")
            except json.JSONDecodeError as exc:
                builder.add_problem(line_no, f"malformed JSON: {exc.msg} at column {exc.colno}")
            else:
                if isinstance(record, dict):
                    builder.add_record(record, line_no)
                else:
                    builder.add_problem(line_no, f"line is a JSON {type(record).__name__}, not an object")
            if builder.full:
                yield builder.take()
    if builder.next_row > builder.first_row:
        yield builder.take()


def _check_columns(path: Path, schema: pa.Schema, text_field: str) -> None:
    if text_field not in schema.names:
        raise InputError(
            f"{path}: no column {text_field!r} (columns: {', '.join(schema.names) or 'none'})",
            hint="name the text column with --text-field",
        )
    kind = schema.field(text_field).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
        raise InputError(f"{path}: column {text_field!r} holds {kind}, not text", hint="pick a string column")


def _iter_arrow_batches(
    path: Path, batches: Iterator[pa.RecordBatch], text_field: str, id_field: str, chunk_rows: int, line_offset: int
) -> Iterator[InputChunk]:
    """Chunks from arrow batches: valid rows stay columnar; only the problem rows are looked at one by one."""
    index, next_row = 0, 0
    pending: list[pa.RecordBatch] = []
    pending_rows = 0

    def flush() -> InputChunk:
        nonlocal index, next_row, pending, pending_rows
        table = pa.Table.from_batches(pending).combine_chunks()
        n = table.num_rows
        texts = table.column(text_field).to_pylist()
        ids = table.column(id_field).to_pylist() if id_field in table.column_names else list(range(next_row, next_row + n))
        problems, keep = [], []
        for i, text in enumerate(texts):
            reason = text_problem(text)
            if reason:
                problems.append(RowProblem(next_row + i, next_row + i + line_offset, ids[i], reason))
            else:
                keep.append(i)
        rest = table.drop_columns([c for c in (text_field, id_field) if c in table.column_names])
        if len(keep) < n:
            rest = rest.take(keep)
        id_values = pa.array([ids[i] for i in keep]) if id_field in table.column_names else pa.array(
            [ids[i] for i in keep], type=pa.int64()
        )
        if id_field in table.column_names and len(keep) == n:
            id_values = table.column(id_field)
        passthrough = rest.add_column(0, id_field, id_values)
        chunk = InputChunk(index, next_row, n, [texts[i] for i in keep], passthrough, problems)
        index += 1
        next_row += n
        pending, pending_rows = [], 0
        return chunk

    for batch in batches:
        while batch.num_rows:
            take = min(batch.num_rows, chunk_rows - pending_rows)
            pending.append(batch.slice(0, take))
            pending_rows += take
            batch = batch.slice(take)
            if pending_rows >= chunk_rows:
                yield flush()
    if pending_rows:
        yield flush()


def iter_chunks(path: Path, fmt: str, text_field: str, id_field: str, chunk_rows: int) -> Iterator[InputChunk]:
    """Chunks of at most chunk_rows rows, in file order. File-level problems raise InputError at once."""
    check_input(path, fmt, text_field)
    try:
        if fmt == "jsonl":
            yield from _iter_jsonl(path, text_field, id_field, chunk_rows)
        elif fmt == "parquet":
            source = pq.ParquetFile(path)
            yield from _iter_arrow_batches(
                path, source.iter_batches(batch_size=chunk_rows), text_field, id_field, chunk_rows, line_offset=0
            )
        else:
            yield from _iter_csv(path, text_field, id_field, chunk_rows)
    except (pa.ArrowInvalid, OSError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: cannot read as {fmt}: {str(exc).splitlines()[0]}") from exc


def _iter_csv(path: Path, text_field: str, id_field: str, chunk_rows: int) -> Iterator[InputChunk]:
    # Read the header alone first, so the text column can be typed as string (a column of numbers stays text).
    header = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 20)).schema
    types = {text_field: pa.string()}
    if id_field in header.names:
        types[id_field] = header.field(id_field).type if not pa.types.is_null(header.field(id_field).type) else pa.string()
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=4 << 20),
        convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
    )
    # line_offset 2: the header is line 1 and rows count from 0 (exact unless values span lines).
    yield from _iter_arrow_batches(path, iter(reader), text_field, id_field, chunk_rows, line_offset=2)


def count_rows_hint(path: Path, fmt: str) -> int | None:
    """Row count when the format stores it (Parquet); None otherwise."""
    if fmt == "parquet":
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowInvalid, OSError):
            return None
    return None


def check_input(path: Path, fmt: str, text_field: str) -> None:
    """File-level checks that need no model: run before any expensive stage starts."""
    if not path.exists():
        raise InputError(f"{path}: no such file", hint="check the input path")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty", hint="nothing to classify")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: not readable", hint="check permissions")
    try:
        if fmt == "parquet":
            _check_columns(path, pq.read_schema(path), text_field)
        elif fmt == "csv":
            header = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 20)).schema
            _check_columns(path, pa.schema([pa.field(n, pa.string()) for n in header.names]), text_field)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: cannot read as {fmt}: {str(exc).splitlines()[0]}") from exc
