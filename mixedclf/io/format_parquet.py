"""Parquet through pyarrow's batch reader, at random access: its footer comes last, so it is never a pipe and
never compressed from outside (it compresses inside the file). Written staged as parts, assembled at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from mixedclf.core.batching import ChunkSizes
from mixedclf.io.chunks import InputChunk, Position, check_columns, iter_arrow_batches, sizes_of
from mixedclf.io.tables import write_conformed

if TYPE_CHECKING:
    from mixedclf.io.sources import SourceFile

assemble = write_conformed


def read(file: SourceFile, text_field: str, id_field: str, chunk_rows: int | ChunkSizes,
         max_text_chars: int | None, text_as_read: bool, at: Position, allow_empty: bool) -> Iterator[InputChunk]:
    reader = pq.ParquetFile(file.open_random_access())
    # Batches no bigger than this file's first chunk: that chunk waits for no more rows than it holds.
    size = sizes_of(chunk_rows)(at.index)
    yield from iter_arrow_batches(reader.iter_batches(batch_size=size), text_field, id_field, chunk_rows,
                                  line_offset=0, max_text_chars=max_text_chars, at=at)


def has_column(file: SourceFile, name: str) -> bool:
    return name in pq.ParquetFile(file.open_random_access()).schema_arrow.names


def check_file(file: SourceFile, text_field: str) -> None:
    check_columns(file.name, pq.ParquetFile(file.open_random_access()).schema_arrow, text_field)


def check_local(path: Path, text_field: str) -> None:
    check_columns(path, pq.read_schema(path), text_field)


def row_count(path: Path | SourceFile) -> int | None:
    """The footer's row count; None when the footer cannot be read."""
    try:
        if isinstance(path, (str, Path)):
            return pq.ParquetFile(path).metadata.num_rows
        return pq.ParquetFile(path.open_random_access()).metadata.num_rows
    except (pa.ArrowInvalid, OSError):
        return None


def ray_read(ray_data: Any, paths: list[str], names: list[str] | None, **common: Any) -> Any:
    return ray_data.read_parquet(paths, **common)


def read_frame(path: Path, columns: list[str], check: Callable[[list[str]], None]) -> Any:
    """The whole file's columns as a pandas frame (a training set); check sees the file's column names first."""
    check(pq.read_schema(path).names)
    return pq.read_table(path, columns=columns).to_pandas()
