"""JSONL: read line by line with the json module, because row-level problems (a malformed line, invalid UTF-8)
must be reported with their line number and the rest of the file kept, which pyarrow's block reader cannot do."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa

from mixedclf.core.batching import ChunkSizes
from mixedclf.errors import InputError
from mixedclf.io.chunks import ChunkBuilder, InputChunk, Position
from mixedclf.io.jsonl_rows import check_jsonl_lines, check_jsonl_sample, parse_jsonl_line, suspect_line
from mixedclf.io.sniff import check_text_file, text_sample
from mixedclf.io.tables import jsonl_lines

if TYPE_CHECKING:
    from mixedclf.io.sources import SourceFile


def read(file: SourceFile, text_field: str, id_field: str, chunk_rows: int | ChunkSizes,
         max_text_chars: int | None, text_as_read: bool, at: Position, allow_empty: bool) -> Iterator[InputChunk]:
    builder = ChunkBuilder(text_field, id_field, chunk_rows, max_text_chars, text_as_read, at)
    with file.open_stream() as handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue  # blank lines carry no row
            record, reason = parse_jsonl_line(raw)
            if record is None:
                builder.add_problem(line_no, cast(str, reason))
            else:
                suspect = suspect_line(raw)
                del raw  # a huge line is held once (as the parsed text), not twice
                builder.add_record(record, line_no, suspect)
                del record
            if builder.full:
                yield builder.take()
    if builder.next_row == builder.started_at and not allow_empty:
        raise InputError(f"{file.name}: the file is empty (blank lines only)", hint="nothing to classify")
    if builder.next_row > builder.first_row:
        yield builder.take()
    at.index, at.row = builder.index, builder.next_row


def has_column(file: SourceFile, name: str) -> bool:
    """Whether any line has the key: only the lines whose bytes could hold it are parsed."""
    needle = json.dumps(name).encode()
    with file.open_stream() as stream:
        for raw in stream:
            if needle in raw or b"\\u" in raw:  # an escaped key ("\u0070ath") is the same key
                record, _ = parse_jsonl_line(raw)
                if isinstance(record, dict) and name in record:
                    return True
    return False


def check_file(file: SourceFile, text_field: str) -> None:
    sample, whole = text_sample(file, "jsonl")
    check_jsonl_sample(file.name, sample, whole, text_field)


def check_local(path: Path, text_field: str) -> None:
    check_text_file(path, "jsonl")
    check_jsonl_lines(path, text_field)


def encode(table: pa.Table, header: bool = False) -> bytes:
    """The rows as JSON lines (JSONL has no header)."""
    return jsonl_lines(table)


def ray_read(ray_data: Any, paths: list[str], names: list[str] | None, **common: Any) -> Any:
    # pyarrow's JSON reader reads JSON lines with stable types ("0001" stays a string); Ray's lines=True path
    # goes through pandas, which turns such strings into numbers.
    return ray_data.read_json(paths, **common)


def read_frame(path: Path, columns: list[str], check: Callable[[list[str]], None]) -> Any:
    """The whole file's columns as a pandas frame (a training set); check sees the file's column names first."""
    import pyarrow.json as pajson

    try:
        table = pajson.read_json(path)
    except pa.ArrowInvalid:
        import pandas as pd  # pyarrow's JSON reader refuses mixed types; pandas is lenient

        frame = pd.read_json(path, lines=True, dtype=False)
        check(list(frame.columns))
        return frame[columns]
    check(table.column_names)
    return table.select(columns).to_pandas()
