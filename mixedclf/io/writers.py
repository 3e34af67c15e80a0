"""Write labelled chunks to JSONL, Parquet or CSV, atomically: a temporary file beside the target, renamed
into place only when the run succeeds, so the final path never holds a half-written file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mixedclf.errors import InputError


def temp_path_for(target: Path) -> Path:
    return target.with_name(f".{target.name}.partial")


def check_writable(target: Path) -> None:
    """Fail before any work when the output cannot be created (missing folder, no permission)."""
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{target}: folder {folder} does not exist", hint="create it or pick another -o path")
    if target.is_dir():
        raise InputError(f"{target}: is a folder", hint="give a file name with an extension")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise InputError(f"{target}: not writable", hint="check permissions or pick another -o path")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _flatten_nested(table: pa.Table) -> pa.Table:
    """CSV has no nested types: lists and structs travel as JSON text."""
    for i, f in enumerate(table.schema):
        if pa.types.is_nested(f.type):
            values = [None if v is None else json.dumps(v, ensure_ascii=False, default=_jsonable)
                      for v in table.column(i).to_pylist()]
            table = table.set_column(i, f.name, pa.array(values, type=pa.string()))
    return table


class ChunkWriter:
    """Appends tables to the temporary file; commit() renames it over the target."""

    def __init__(self, target: Path, fmt: str, append: bool = False):
        self.target, self.fmt = target, fmt
        self.temp = temp_path_for(target)
        self.schema: pa.Schema | None = None
        self._parquet: pq.ParquetWriter | None = None
        self._csv: pacsv.CSVWriter | None = None
        self._handle = None
        self.rows = 0
        if fmt in ("jsonl", "csv"):
            # Resume appends to the partial file it left; CSV then skips the header it already wrote.
            self._handle = open(self.temp, "ab" if append else "wb")
            self._csv_header_written = append and self.temp.stat().st_size > 0

    def _conform(self, table: pa.Table) -> pa.Table:
        """Later chunks take the first chunk's columns and types (JSONL rows may differ chunk to chunk)."""
        if self.schema is None:
            self.schema = table.schema
            return table
        if table.schema.equals(self.schema):
            return table
        columns = []
        for f in self.schema:
            if f.name in table.column_names:
                col = table.column(f.name)
                try:
                    columns.append(col.cast(f.type) if not col.type.equals(f.type) else col)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise InputError(
                        f"column {f.name!r} changes type from {f.type} to {col.type} part-way through the input",
                        hint="write JSONL output, or make the column's type consistent",
                    ) from exc
            else:
                columns.append(pa.nulls(table.num_rows, f.type))
        return pa.Table.from_arrays(columns, schema=self.schema)

    def write(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        if self.fmt == "jsonl":
            lines = (json.dumps(row, ensure_ascii=False, default=_jsonable) for row in table.to_pylist())
            self._handle.write(("\n".join(lines) + "\n").encode("utf-8") if table.num_rows else b"")
        elif self.fmt == "parquet":
            table = self._conform(table)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.temp, table.schema)
            self._parquet.write_table(table)
        else:
            table = self._conform(_flatten_nested(table))
            if self._csv is None:
                options = pacsv.WriteOptions(include_header=not self._csv_header_written)
                self._csv = pacsv.CSVWriter(self._handle, table.schema, write_options=options)
            self._csv.write_table(table)

    def flush(self) -> None:
        """Make everything written so far durable (a checkpoint can then point at it)."""
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        if self._csv is not None:
            self._csv.close()
            self._csv = None
        if self._handle is not None and not self._handle.closed:
            self._handle.flush()
            self._handle.close()

    def commit(self, empty_schema: pa.Schema | None = None) -> None:
        if self.fmt == "parquet" and self._parquet is None and self.schema is None:
            # No valid row at all: still leave a readable file with the output's columns.
            pq.write_table((empty_schema or pa.schema([])).empty_table(), self.temp)
        self.close()
        os.replace(self.temp, self.target)

    def abort(self) -> None:
        self.close()
        self.temp.unlink(missing_ok=True)


class ErrorLog:
    """OUTPUT.errors.jsonl: one line per skipped row (line number, id, reason), written atomically too."""

    def __init__(self, output: Path, append: bool = False):
        self.target = output.with_name(output.name + ".errors.jsonl")
        self.temp = temp_path_for(self.target)
        self.rows = 0
        self._handle = open(self.temp, "ab" if append else "wb")

    def write(self, problems: list[dict[str, Any]]) -> None:
        for problem in problems:
            self._handle.write((json.dumps(problem, ensure_ascii=False, default=_jsonable) + "\n").encode("utf-8"))
        self.rows += len(problems)

    def flush(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def commit(self) -> None:
        self._handle.close()
        if self.temp.stat().st_size:
            os.replace(self.temp, self.target)
        else:
            self.temp.unlink()
            self.target.unlink(missing_ok=True)  # a stale log from an earlier run must not mislead

    def abort(self) -> None:
        self._handle.close()
        self.temp.unlink(missing_ok=True)
