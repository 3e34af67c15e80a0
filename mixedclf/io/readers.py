"""Stream an input (a file, the files of a folder, glob or list, or stdin) as chunks of validated rows; never a
whole file in memory. How each format is read is its entry in io.formats."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from mixedclf.core.batching import ChunkSizes
from mixedclf.core.preprocess import MAX_TEXT_CHARS
from mixedclf.errors import InputError
from mixedclf.io.chunks import InputChunk, Position, RowProblem, text_problem  # noqa: F401 (read from here too)
from mixedclf.io.formats import spec
from mixedclf.io.sources import Source, SourceFile, is_uri, resolve_source


def iter_chunks(source: Source | Path | str, fmt: str, text_field: str, id_field: str, chunk_rows: int | ChunkSizes,
                max_text_chars: int | None = MAX_TEXT_CHARS, text_as_read: bool = False) -> Iterator[InputChunk]:
    """Chunks of at most chunk_rows rows (a ChunkSizes: rows by chunk index), in input order: file by file (a
    chunk never spans two files), rows in file order. Row numbers and chunk indexes run on across files, so the
    sizes follow the input's chunk index, not each file's. File-level problems raise InputError: the
    first file's at once, a later file's when its turn comes. Empty (0-byte) files of a folder, glob or list
    hold no rows and are passed over.

    Texts longer than max_text_chars come as a prefix of max_text_chars + 1 characters (None: whole).
    text_as_read: texts are written out or tokenized uncleaned, so one that is not valid Unicode (a lone
    surrogate, which cleaning would drop) is a row problem."""
    if not isinstance(source, Source):
        source = resolve_source(str(source), fmt)
    check_source(source, text_field, fmt)
    at = Position()
    for number, file in enumerate(source.files):
        if source.many and file.size == 0:
            continue
        file.check_unchanged()  # since it was listed
        if number:
            check_file(file, fmt, text_field)
        at.source, at.file = number, file.name if source.many else None
        yield from _iter_file(file, fmt, text_field, id_field, chunk_rows, max_text_chars, text_as_read, at,
                              allow_empty=source.many)
        file.check_unchanged()  # while it was read: a cut file ends early (its last line half), a grown one late
    if source.many and at.row == 0:
        raise InputError(f"{source.spec}: no file holds a row", hint="nothing to classify")


def _iter_file(file: SourceFile, fmt: str, text_field: str, id_field: str, chunk_rows: int | ChunkSizes,
               max_text_chars: int | None, text_as_read: bool, at: Position, allow_empty: bool
               ) -> Iterator[InputChunk]:
    try:
        yield from spec(fmt).read(file, text_field, id_field, chunk_rows, max_text_chars, text_as_read, at,
                                  allow_empty)
    except (pa.ArrowInvalid, OSError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{file.name}: cannot read as {fmt}: {str(exc).splitlines()[0]}") from exc


def column_in_file(file: SourceFile, fmt: str, name: str) -> bool:
    """Whether any row of the file has a column (a JSONL key) called name: Parquet's schema and CSV's header
    say so at once; JSONL is scanned, parsing only the lines whose bytes could hold that key."""
    return spec(fmt).has_column(file, name)


def count_rows_hint(path: Path | SourceFile, fmt: str) -> int | None:
    """Row count when the format stores it (Parquet); None otherwise."""
    count = spec(fmt).row_count
    return None if count is None else count(path)


def check_source(source: Source, text_field: str, fmt: str | None = None) -> None:
    """The checks that need no model, run before any expensive stage: the first file that holds bytes (the
    others are checked when their turn comes: a folder of 10,000 objects is not opened twice)."""
    fmt = fmt or source.fmt
    files = [f for f in source.files if not (source.many and f.size == 0)] or list(source.files[:1])
    check_file(files[0], fmt, text_field)


def check_file(file: SourceFile, fmt: str, text_field: str) -> None:
    """check_input for any file of an input: a local plain file, a compressed or remote one, or stdin."""
    local = file.local
    if local is not None and file.compression is None:
        check_input(local if is_uri(file.name) else Path(file.name), fmt, text_field)
        return
    try:
        spec(fmt).check_file(file, text_field)
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        raise InputError(f"{file.name}: cannot read as {fmt}: {str(exc).splitlines()[0]}") from exc


def check_input(path: Path, fmt: str, text_field: str) -> None:
    """File-level checks of a local file that need no model: run before any expensive stage starts."""
    if not path.exists():
        raise InputError(f"{path}: no such file", hint="check the input path")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty", hint="nothing to classify")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: not readable", hint="check permissions")
    try:
        spec(fmt).check_local(path, text_field)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: cannot read as {fmt}: {str(exc).splitlines()[0]}") from exc
