"""Tables as output bytes, whatever writes them: JSON lines, CSV cells, and one Parquet or CSV file assembled from
parts whose columns and types may differ."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mixedclf.io.jsonvalues import JSON, dumps, is_json, json_to_cells, json_to_python, to_json_column

PARQUET_ROW_GROUP = 65_536


def jsonl_lines(table: pa.Table) -> bytes:
    """The rows as strict JSON lines; JSON columns give back the values they were read as."""
    rows = table.to_pylist()
    for name in [f.name for f in table.schema if is_json(f.type)]:
        for row, value in zip(rows, json_to_python(table.column(name)), strict=True):
            row[name] = value
    return ("\n".join(dumps(row) for row in rows) + "\n").encode("utf-8")


def csv_cells(table: pa.Table) -> pa.Table:
    """CSV has no nested types: lists and structs travel as JSON text, JSON values as their plain text."""
    for i, f in enumerate(table.schema):
        if is_json(f.type):
            table = table.set_column(i, f.name, json_to_cells(table.column(i)))
        elif pa.types.is_nested(f.type):
            values = [None if v is None else dumps(v) for v in table.column(i).to_pylist()]
            table = table.set_column(i, f.name, pa.array(values, type=pa.string()))
    return table


def with_columns(table: pa.Table, names: list[str]) -> pa.Table:
    """The table with exactly these columns, in this order (nulls where a chunk lacks one), types untouched:
    a CSV file holds text, so a column may change type from chunk to chunk."""
    if table.column_names == names:
        return table
    columns = [table.column(n) if n in table.column_names else pa.nulls(table.num_rows) for n in names]
    return pa.Table.from_arrays(columns, names=names)


def merged_schema(schemas: list[pa.Schema]) -> pa.Schema:
    """One schema for Parquet parts written chunk by chunk: every column seen, in first-seen order; a column
    whose type differs between parts (beyond all-null parts) becomes JSON, which holds each value unchanged."""
    kinds: dict[str, list[pa.DataType]] = {}
    for schema in schemas:
        for f in schema:
            kinds.setdefault(f.name, [])
            if not pa.types.is_null(f.type) and f.type not in kinds[f.name]:
                kinds[f.name].append(f.type)
    return pa.schema([pa.field(name, types[0] if len(types) == 1 else (pa.null() if not types else JSON))
                      for name, types in kinds.items()])


def conform_part(table: pa.Table, schema: pa.Schema) -> pa.Table:
    if table.schema.equals(schema):
        return table
    columns = []
    for f in schema:
        if f.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, f.type))
            continue
        col = table.column(f.name)
        if col.type.equals(f.type):
            columns.append(col)
        elif is_json(f.type):
            columns.append(to_json_column(col))
        else:
            columns.append(col.cast(f.type))  # only all-null columns get here
    return pa.Table.from_arrays(columns, schema=schema)


def write_conformed(path: Path, schema: pa.Schema, tables: Iterator[pa.Table]) -> None:
    """One Parquet file of `schema` from tables whose types may differ (each conformed), in row groups."""
    with pq.ParquetWriter(path, schema) as out:
        pending, rows = [], 0
        for table in tables:
            pending.append(conform_part(table, schema))
            rows += table.num_rows
            if rows >= PARQUET_ROW_GROUP:
                out.write_table(pa.concat_tables(pending), row_group_size=PARQUET_ROW_GROUP)
                pending, rows = [], 0
        if pending:
            out.write_table(pa.concat_tables(pending), row_group_size=PARQUET_ROW_GROUP)


def write_csv_conformed(path: Path, schema: pa.Schema, tables: Iterator[pa.Table]) -> None:
    """One CSV file whose header is every column of `schema` (the merged schema of all parts), from tables that
    may lack some of them (empty cells there) or type them differently (each conformed, then made CSV cells)."""
    with open(path, "wb") as out:
        header = True
        for table in tables:
            table = csv_cells(conform_part(table, schema))
            buffer = io.BytesIO()
            pacsv.write_csv(table, buffer, write_options=pacsv.WriteOptions(include_header=header))
            out.write(buffer.getvalue())
            header = False
        if header:  # no part at all: the header alone
            pacsv.write_csv(csv_cells(schema.empty_table()), out)
