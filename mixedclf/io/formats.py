"""The data formats, one entry each: what a format is called and how it is named on disk, and how it is read,
checked, counted and written. Readers, writers, sinks, the input and output resolution, the progress bar and the
Ray engine look a format up here instead of branching on its name; a new format is one entry (and its module)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mixedclf.errors import InputError
from mixedclf.io import format_csv, format_jsonl, format_parquet

if TYPE_CHECKING:
    from mixedclf.io.sources import SourceFile


@dataclass(frozen=True)
class Format:
    name: str  # as --input-format / --output-format take it
    title: str  # as messages name it
    extensions: tuple[str, ...]  # lower case; the first is the one written
    media_type: str
    # Text read and written as a byte stream: it may come from stdin or go to stdout, be compressed by extension
    # (.gz, .bz2, .zst), and is sniffed for binary content. Otherwise a file read at random access (footer last).
    text: bool
    first_line: int  # the 1-based line of the first data row (0: rows are not lines)
    header_lines: int  # lines before the first row, in a text format
    # The local reader takes the file a line at a time, so a malformed line is that row's problem, not the file's.
    line_tolerant: bool
    # Chunks of the file -> InputChunks: (file, text_field, id_field, chunk_rows, max_text_chars, text_as_read,
    # position, allow_empty).
    read: Callable[..., Iterator[Any]]
    has_column: Callable[[SourceFile, str], bool]  # whether any row has a column (a key) of that name
    check_file: Callable[[SourceFile, str], None]  # the checks of a compressed, remote or stdin file
    check_local: Callable[[Path, str], None]  # the checks of a plain local file
    ray_read: Callable[..., Any]  # (ray.data, paths, header names or None, **Ray Data read options) -> Dataset
    # A whole file as a pandas frame (a training set): (path, columns, check of the file's column names).
    read_frame: Callable[[Path, list[str], Callable[[list[str]], None]], Any]
    row_count: Callable[[Path | SourceFile], int | None] | None = None  # when the file stores it
    encode: Callable[[pa.Table, bool], bytes] | None = None  # (rows, with the header) -> bytes, for a stream
    # Set: a file of this format is written as Parquet parts, assembled into it at the end (path, schema, tables).
    assemble: Callable[[Path, pa.Schema, Iterator[pa.Table]], None] | None = None

    @property
    def extension(self) -> str:
        return self.extensions[0]

    @property
    def staged(self) -> bool:
        return self.assemble is not None

    def encoded(self, table: pa.Table, header: bool = False) -> bytes:
        if self.encode is None:
            raise ValueError(f"{self.title} is not written as a stream")
        return self.encode(table, header)

    def assembled(self, path: Path, schema: pa.Schema, tables: Iterator[pa.Table]) -> None:
        if self.assemble is None:
            raise ValueError(f"{self.title} is not assembled from parts")
        self.assemble(path, schema, tables)


def _ops(module: Any) -> dict[str, Any]:
    names = ("read", "has_column", "check_file", "check_local", "ray_read", "read_frame", "row_count", "encode",
             "assemble")
    return {n: getattr(module, n) for n in names if hasattr(module, n)}


REGISTRY: dict[str, Format] = {f.name: f for f in (
    Format("jsonl", "JSONL", (".jsonl", ".ndjson"), "application/x-ndjson", text=True, first_line=1,
           header_lines=0, line_tolerant=True, **_ops(format_jsonl)),
    Format("parquet", "Parquet", (".parquet", ".pq"), "application/vnd.apache.parquet", text=False, first_line=0,
           header_lines=0, line_tolerant=False, **_ops(format_parquet)),
    Format("csv", "CSV", (".csv",), "text/csv", text=True, first_line=2, header_lines=1, line_tolerant=False,
           **_ops(format_csv)),
)}
FORMATS = tuple(REGISTRY)
STREAM_DEFAULT = "jsonl"  # stdin read and stdout written without --input-format / --output-format
FOLDER_DEFAULT = "parquet"  # the parts of a folder output without --output-format
_EXTENSIONS = {ext: f.name for f in REGISTRY.values() for ext in f.extensions}


def spec(name: str) -> Format:
    return REGISTRY[name]


def names_text(items: list[str], last: str = "or") -> str:
    """'a, b or c'"""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {last} {items[-1]}"


def extensions_text(last: str = "or") -> str:
    """The written extensions, as messages list them: '.jsonl, .parquet or .csv'."""
    return names_text([f.extension for f in REGISTRY.values()], last)


def streamed_titles() -> str:
    """The formats a pipe can carry, as messages list them: 'JSONL or CSV'."""
    return names_text([f.title for f in REGISTRY.values() if f.text])


def checked(name: str | None, role: str) -> Format | None:
    """The format an --input-format / --output-format names (None when not given); InputError when unknown."""
    if name is None:
        return None
    if name not in REGISTRY:
        raise InputError(f"unknown {role} format {name!r}", hint=f"use one of {', '.join(FORMATS)}")
    return REGISTRY[name]


def format_of_name(name: str) -> str | None:
    """The format a file name's extension says, or None."""
    return _EXTENSIONS.get(Path(name).suffix.lower())


def detect_format(path: Path, override: str | None = None, role: str = "input") -> str:
    known = checked(override or None, role)
    if known is not None:
        return known.name
    fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{path}: unsupported extension {path.suffix or '(none)'!r}",
            hint=f"use {extensions_text()}, or pass --{role}-format",
        )
    return fmt
