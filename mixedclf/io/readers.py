"""Stream an input (a file, the files of a folder, glob or list, or stdin) as chunks of validated rows; never a
whole file in memory.

Parquet and CSV come through pyarrow's streaming readers. JSONL is read line by line with the json module
because row-level problems (a malformed line, invalid UTF-8) must be reported with their line number and the
rest of the file kept, which pyarrow's block reader cannot do.
"""

from __future__ import annotations

import bisect
import io
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mixedclf.core.batching import ChunkSizes
from mixedclf.core.preprocess import MAX_TEXT_CHARS
from mixedclf.errors import InputError
from mixedclf.io.jsonl_rows import check_jsonl_lines, check_jsonl_sample, parse_jsonl_line, suspect_line, unencodable
from mixedclf.io.jsonvalues import column_from_values
from mixedclf.io.sniff import check_text_file, check_text_sample
from mixedclf.io.sources import SAMPLE_BYTES, Source, SourceFile, is_uri, resolve_source


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


def _json_table(rows: list[dict[str, Any]]) -> pa.Table:
    """A table from JSON objects, each column typed only as far as its values come back unchanged."""
    names = list(dict.fromkeys(k for r in rows for k in r))
    return pa.table({name: column_from_values([r.get(name) for r in rows]) for name in names})


class ChunkBuilder:
    """Collects rows and problems until a chunk is full."""

    def __init__(self, text_field: str, id_field: str, chunk_rows: int | ChunkSizes, max_text_chars: int | None,
                 text_as_read: bool = False, at: "_Position | None" = None):
        self.text_field, self.id_field, self.sizes = text_field, id_field, _sizes(chunk_rows)
        self.max_text_chars, self.text_as_read = max_text_chars, text_as_read
        at = at or _Position()
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
        table = _json_table(self.records) if self.records else pa.table({self.id_field: pa.array([], pa.int64())})
        chunk = InputChunk(self.index, self.first_row, self.next_row - self.first_row, self.texts, table, self.problems,
                           self.source)
        self.index += 1
        self._reset()
        return chunk


@dataclass
class _Position:
    """Where the next file's rows start: chunk index and row number run on across the files of an input."""

    index: int = 0
    row: int = 0
    source: int = 0
    file: str | None = None  # named in row problems when the input is several files


def _sizes(chunk_rows: int | ChunkSizes) -> ChunkSizes:
    return chunk_rows if isinstance(chunk_rows, ChunkSizes) else ChunkSizes(chunk_rows)


def _iter_jsonl(source: SourceFile, text_field: str, id_field: str, chunk_rows: int | ChunkSizes,
                max_text_chars: int | None, text_as_read: bool, at: _Position, allow_empty: bool) -> Iterator[InputChunk]:
    builder = ChunkBuilder(text_field, id_field, chunk_rows, max_text_chars, text_as_read, at)
    with source.open_stream() as handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue  # blank lines carry no row
            record, reason = parse_jsonl_line(raw)
            if record is None:
                builder.add_problem(line_no, reason)
            else:
                suspect = suspect_line(raw)
                del raw  # a huge line is held once (as the parsed text), not twice
                builder.add_record(record, line_no, suspect)
                del record
            if builder.full:
                yield builder.take()
    if builder.next_row == builder.started_at and not allow_empty:
        raise InputError(f"{source.name}: the file is empty (blank lines only)", hint="nothing to classify")
    if builder.next_row > builder.first_row:
        yield builder.take()
    at.index, at.row = builder.index, builder.next_row


def _check_columns(path: Path | str, schema: pa.Schema, text_field: str) -> None:
    if text_field not in schema.names:
        raise InputError(
            f"{path}: no column {text_field!r} (columns: {', '.join(schema.names) or 'none'})",
            hint="name the text column with --text-field",
        )
    kind = schema.field(text_field).type
    if not _is_text_type(kind):
        raise InputError(f"{path}: column {text_field!r} holds {kind}, not text", hint="pick a string column")


def _is_text_type(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
            or pa.types.is_null(kind))


def _text_values(column: pa.ChunkedArray, max_chars: int | None) -> list[Any]:
    """A text column (plain, large, view or dictionary-encoded) as Python strings, each cut to a bounded prefix
    before Python copies it."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = column.cast(pa.large_string())
    if max_chars is not None and len(column) and (pc.max(pc.binary_length(column)).as_py() or 0) > max_chars + 1:
        column = pc.utf8_slice_codeunits(column, 0, max_chars + 1)
    return column.to_pylist()


def _iter_arrow_batches(
    batches: Iterator[pa.RecordBatch], text_field: str, id_field: str, chunk_rows: int | ChunkSizes,
    line_offset: int, max_text_chars: int | None, at: _Position,
) -> Iterator[InputChunk]:
    """Chunks from arrow batches: valid rows stay columnar; only the problem rows are looked at one by one."""
    sizes = _sizes(chunk_rows)
    index, next_row = at.index, at.row
    first_row = at.row
    pending: list[pa.RecordBatch] = []
    pending_rows = 0

    def flush() -> InputChunk:
        nonlocal index, next_row, pending, pending_rows
        table = pa.Table.from_batches(pending).combine_chunks()
        n = table.num_rows
        texts = _text_values(table.column(text_field), max_text_chars)
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
    at = _Position()
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
               max_text_chars: int | None, text_as_read: bool, at: _Position, allow_empty: bool
               ) -> Iterator[InputChunk]:
    try:
        if fmt == "jsonl":
            yield from _iter_jsonl(file, text_field, id_field, chunk_rows, max_text_chars, text_as_read, at,
                                   allow_empty)
        elif fmt == "parquet":
            reader = pq.ParquetFile(file.open_random_access())
            # Batches no bigger than this file's first chunk: that chunk waits for no more rows than it holds.
            size = _sizes(chunk_rows)(at.index)
            yield from _iter_arrow_batches(reader.iter_batches(batch_size=size), text_field, id_field,
                                           chunk_rows, line_offset=0, max_text_chars=max_text_chars, at=at)
        else:
            yield from _iter_csv(file, text_field, id_field, chunk_rows, max_text_chars, at)
    except (pa.ArrowInvalid, OSError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{file.name}: cannot read as {fmt}: {str(exc).splitlines()[0]}") from exc


def _csv_names(file: SourceFile) -> list[str]:
    """The header's column names: from the stdin sample (read once), else from the file's first block."""
    if file.stdin is not None:
        sample = file.sample()
        cut = sample if len(sample) < SAMPLE_BYTES else sample[: sample.rfind(b"\n") + 1]
        stream = io.BytesIO(cut or sample)
    else:
        stream = file.open_native()
    with stream:
        return pacsv.open_csv(stream, read_options=pacsv.ReadOptions(block_size=1 << 20)).schema.names


def _iter_csv(file: SourceFile, text_field: str, id_field: str, chunk_rows: int | ChunkSizes,
              max_text_chars: int | None, at: _Position) -> Iterator[InputChunk]:
    # Every column is read as the text it holds: CSV has no types, and one guessed from the first block fails
    # the run when a later block disagrees (ids that turn from 17 to "17a" a million rows in).
    types = {name: pa.string() for name in _csv_names(file)}
    reader = pacsv.open_csv(
        file.open_native(),
        read_options=pacsv.ReadOptions(block_size=4 << 20),
        convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
    )
    # line_offset 2: the header is line 1 and rows count from 0 (exact unless values span lines).
    yield from _iter_arrow_batches(iter(reader), text_field, id_field, chunk_rows, line_offset=2,
                                   max_text_chars=max_text_chars, at=at)


def column_in_file(file: SourceFile, fmt: str, name: str) -> bool:
    """Whether any row of the file has a column (a JSONL key) called name: Parquet's schema and CSV's header
    say so at once; JSONL is scanned, parsing only the lines whose bytes could hold that key."""
    if fmt == "parquet":
        return name in pq.ParquetFile(file.open_random_access()).schema_arrow.names
    if fmt == "csv":
        return name in _csv_names(file)
    needle = json.dumps(name).encode()
    with file.open_stream() as stream:
        for raw in stream:
            if needle in raw or b"\\u" in raw:  # an escaped key ("\u0070ath") is the same key
                record, _ = parse_jsonl_line(raw)
                if isinstance(record, dict) and name in record:
                    return True
    return False


def count_rows_hint(path: Path | SourceFile, fmt: str) -> int | None:
    """Row count when the format stores it (Parquet); None otherwise."""
    if fmt == "parquet":
        try:
            if isinstance(path, SourceFile):
                return pq.ParquetFile(path.open_random_access()).metadata.num_rows
            return pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowInvalid, OSError):
            return None
    return None


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
        if fmt == "parquet":
            _check_columns(file.name, pq.ParquetFile(file.open_random_access()).schema_arrow, text_field)
            return
        sample = file.sample()
        if not sample:
            raise InputError(f"{file.name}: the {'input' if file.stdin else 'file'} is empty",
                             hint="nothing to classify")
        whole = len(sample) < SAMPLE_BYTES
        check_text_sample(file.name, sample, whole, fmt)
        if fmt == "jsonl":
            check_jsonl_sample(file.name, sample, whole, text_field)
        else:
            _check_columns(file.name, pa.schema([pa.field(n, pa.string()) for n in _csv_names(file)]), text_field)
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
        if fmt in ("jsonl", "csv"):
            check_text_file(path, fmt)
        if fmt == "jsonl":
            check_jsonl_lines(path, text_field)
        elif fmt == "parquet":
            _check_columns(path, pq.read_schema(path), text_field)
        elif fmt == "csv":
            header = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 20)).schema
            _check_columns(path, pa.schema([pa.field(n, pa.string()) for n in header.names]), text_field)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: cannot read as {fmt}: {str(exc).splitlines()[0]}") from exc
