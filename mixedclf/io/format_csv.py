"""CSV through pyarrow's streaming reader, every column as the text it holds. Written staged as parts (see
io.writers): the header comes first but is known only when every chunk is in."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pacsv

from mixedclf.core.batching import ChunkSizes
from mixedclf.io.chunks import InputChunk, Position, check_columns, iter_arrow_batches
from mixedclf.io.sniff import SAMPLE_BYTES, check_text_file, text_sample
from mixedclf.io.tables import csv_cells, write_csv_conformed

if TYPE_CHECKING:
    from mixedclf.io.sources import SourceFile

assemble = write_csv_conformed


def _read_options(block_size: int) -> pacsv.ReadOptions:
    return pacsv.ReadOptions(block_size=block_size)


def _all_text(names: list[str]) -> pacsv.ConvertOptions:
    # Every column is read as the text it holds: CSV has no types, and one guessed from the first block fails
    # the run when a later block disagrees (ids that turn from 17 to "17a" a million rows in).
    return pacsv.ConvertOptions(column_types={name: pa.string() for name in names}, strings_can_be_null=False)


def column_names(file: SourceFile) -> list[str]:
    """The header's column names: from the stdin sample (read once), else from the file's first block."""
    if file.stdin is not None:
        sample = file.sample()
        cut = sample if len(sample) < SAMPLE_BYTES else sample[: sample.rfind(b"\n") + 1]
        stream = io.BytesIO(cut or sample)
    else:
        stream = file.open_native()
    with stream:
        return pacsv.open_csv(stream, read_options=_read_options(1 << 20)).schema.names


def read(file: SourceFile, text_field: str, id_field: str, chunk_rows: int | ChunkSizes,
         max_text_chars: int | None, text_as_read: bool, at: Position, allow_empty: bool) -> Iterator[InputChunk]:
    reader = pacsv.open_csv(
        file.open_native(),
        read_options=_read_options(4 << 20),
        convert_options=_all_text(column_names(file)),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
    )
    # line_offset 2: the header is line 1 and rows count from 0 (exact unless values span lines).
    yield from iter_arrow_batches(iter(reader), text_field, id_field, chunk_rows, line_offset=2,
                                  max_text_chars=max_text_chars, at=at)


def has_column(file: SourceFile, name: str) -> bool:
    return name in column_names(file)


def _text_schema(names: list[str]) -> pa.Schema:
    return pa.schema([pa.field(n, pa.string()) for n in names])


def check_file(file: SourceFile, text_field: str) -> None:
    text_sample(file, "csv")
    check_columns(file.name, _text_schema(column_names(file)), text_field)


def check_local(path: Path, text_field: str) -> None:
    check_text_file(path, "csv")
    header = pacsv.open_csv(path, read_options=_read_options(1 << 20)).schema
    check_columns(path, _text_schema(header.names), text_field)


def encode(table: pa.Table, header: bool) -> bytes:
    """The rows as CSV (nested values as JSON text), after the header when asked."""
    buffer = io.BytesIO()
    pacsv.write_csv(csv_cells(table), buffer, write_options=pacsv.WriteOptions(include_header=header))
    return buffer.getvalue()


def ray_read(ray_data: Any, paths: list[str], names: list[str] | None, **common: Any) -> Any:
    return ray_data.read_csv(
        paths,
        read_options=_read_options(4 << 20),
        convert_options=_all_text(names or []),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        **common,
    )


def read_frame(path: Path, columns: list[str], check: Callable[[list[str]], None]) -> Any:
    """The whole file's columns as a pandas frame (a training set), each column typed as pyarrow infers it
    (labels 0/1 come back as numbers); check sees the file's column names first."""
    table = pacsv.read_csv(path)
    check(table.column_names)
    return table.select(columns).to_pandas()
