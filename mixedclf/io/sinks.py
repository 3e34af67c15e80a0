"""Where a classify run's rows go besides one file (io.writers.ChunkWriter): stdout (`-o -`), and a folder of part
files so a billion-row job does not end in one file.

A folder holds part-NNNNN.<ext>: by default one per input file (NNNNN is the file's place in the input order, so
a folder of 40 files gives 40 parts), or one per --rows-per-file rows. Its chunks are staged as Parquet parts in a
hidden folder beside the target (what a checkpoint counts, so --resume works as for one Parquet file); commit()
assembles the part files there and renames the finished folder into place."""

from __future__ import annotations

import os
import re
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Literal, TextIO

import pyarrow as pa
import pyarrow.parquet as pq

from mixedclf.errors import InputError, MixedclfError, OutputClosed, OutputError, silence_stdout
from mixedclf.io.formats import REGISTRY, extensions_text, spec
from mixedclf.io.jsonvalues import dumps
from mixedclf.io.partstore import PartsState, PartStore
from mixedclf.io.tables import merged_schema, with_columns
from mixedclf.io.writers import ChunkWriter, ErrorLog

STDOUT = "-"
_PART = re.compile(r"part-\d{5,}\.(" + "|".join(re.escape(f.extension[1:]) for f in REGISTRY.values()) + ")")
OutputKind = Literal["file", "folder", "stdout"]


def output_kind(output: Path | str, rows_per_file: int | None = None) -> OutputKind:
    """stdout for `-`; a folder for --rows-per-file, a name without an extension (`-o out`, as Spark and Ray Data
    write a dataset) or an existing folder without one; otherwise one file."""
    text = os.fspath(output)
    if text == STDOUT:
        return "stdout"
    path = Path(text)
    if rows_per_file is not None or not path.suffix:
        return "folder"
    return "file"


def _broken_pipe() -> MixedclfError:
    silence_stdout()
    return OutputClosed("stdout was closed before every row was written (broken pipe)")


class StdoutSink:
    """JSONL or CSV rows on stdout as each chunk is done. Nothing is staged, so a failed run may have written
    some rows already: the exit code says so. No checkpoint: a pipe cannot be resumed."""

    position = 0

    def __init__(self, fmt: str, stream: BinaryIO | None = None):
        self.fmt, self.spec = fmt, spec(fmt)
        self.stream = stream if stream is not None else sys.stdout.buffer
        self.rows = 0
        self.schema: pa.Schema | None = None
        self._empty_schema: pa.Schema | None = None

    def write(self, table: pa.Table, source: int = 0) -> None:
        self.rows += table.num_rows
        if not self.spec.header_lines:
            if table.num_rows:
                self._emit(self.spec.encoded(table))
            return
        if self.schema is None:
            if not table.num_rows:
                self._empty_schema = table.schema
                return
            self.schema = table.schema
            self._emit(self.spec.encoded(table, True))
        else:
            late = [name for name in table.column_names if name not in self.schema.names] if table.num_rows else []
            if late:
                # The header is on its way down the pipe: the column cannot be added, and dropping it loses data.
                raise OutputError(f"column {late[0]!r} appears after the first {self.rows - table.num_rows:,} rows, "
                                  f"whose {self.spec.title} header is already written to stdout without it",
                                  hint=f"write {self.spec.title} to a file (-o out{self.spec.extension}: its header "
                                       "holds every column) or JSONL to stdout")
            self._emit(self.spec.encoded(with_columns(table, self.schema.names)))

    def _emit(self, data: bytes) -> None:
        try:
            self.stream.write(data)
            self.stream.flush()
        except BrokenPipeError:
            raise _broken_pipe() from None

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise _broken_pipe() from None

    def commit(self) -> None:
        if self.spec.header_lines and self.schema is None and self._empty_schema is not None:
            self._emit(self.spec.encoded(self._empty_schema.empty_table(), True))  # no valid row: the header
        self.flush()

    suspend = seal = flush

    def abort(self) -> None:
        try:
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            pass


class StreamErrorLog:
    """With `-o -` there is no OUTPUT.errors.jsonl to put beside the output: each skipped row goes to stderr as one
    JSON line, the object the errors file would hold, as soon as its chunk is written."""

    position = 0
    target = "<stderr>"

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream
        self.rows = 0

    def write(self, problems: list[dict[str, Any]]) -> None:
        stream = self.stream or sys.stderr
        for problem in problems:
            stream.write(dumps(problem, ascii_only=True) + "\n")
        stream.flush()
        self.rows += len(problems)

    def flush(self) -> None:
        (self.stream or sys.stderr).flush()

    commit = suspend = abort = seal = flush


def check_folder_target(target: Path) -> None:
    """Fail before any work when the folder cannot be (re)written: a missing parent, a file in the way, or an
    existing folder holding anything but part files of an earlier run (which a finished run replaces)."""
    parent = target.absolute().parent
    if not parent.is_dir():
        raise InputError(f"{target}: folder {parent} does not exist", hint="create it or pick another -o path")
    if not os.access(parent, os.W_OK):
        raise InputError(f"{target}: not writable", hint="check permissions or pick another -o path")
    if target.exists() and not target.is_dir():
        raise InputError(f"{target}: is a file, and an output without an extension is a folder",
                         hint=f"give the output file an extension ({extensions_text(',')})")
    if target.is_dir():
        # Only what a run writes there: a part-… folder, a link or part-9.txt is the user's, and stays.
        others = [p.name for p in target.iterdir() if not (_PART.fullmatch(p.name) and p.is_file()
                                                           and not p.is_symlink())]
        if others:
            raise InputError(f"{target}: the folder holds other files ({', '.join(sorted(others)[:3])}), "
                             "which a finished run would replace", hint="pick a new or empty folder")


class FolderSink:
    """OUTPUT as a folder of part files (see the module docstring), replaced whole at commit()."""

    def __init__(self, target: Path, fmt: str, rows_per_file: int | None = None, resume_at: int | None = None):
        self.target, self.fmt, self.rows_per_file = Path(target), fmt, rows_per_file
        self.stage = self.target.with_name(f".{self.target.name}.partial")
        self.chunks = self.stage / "chunks"
        if resume_at is None:
            shutil.rmtree(self.stage, ignore_errors=True)
        self._store = PartStore(self.chunks, f"{self.stage.name}/chunks", "chunk-", resume_at)
        self.count = self._store.count
        self.rows = 0

    @property
    def position(self) -> int:
        return self.count

    def write(self, table: pa.Table, source: int = 0) -> None:
        self.rows += table.num_rows
        self._store.add(table, f"{source:06d}")
        self.count += 1

    def flush(self) -> None:
        """Each chunk is a closed file as soon as write() returns."""

    def files(self) -> list[PartsState]:
        """What a checkpoint vouches for: the staged chunks, as one fixed-size record of the part store (each
        chunk was hashed once, when written; the folder is renamed whole at commit)."""
        return [self._store.state()]

    def seal(self) -> None:
        """Nothing to finish before commit(): the parts are cut from the staged chunks there."""

    def _groups(self) -> list[tuple[str, list[tuple[Path, int, int]]]]:
        """(part name, [(chunk file, first row, rows)]) in output order."""
        chunks = []
        for path in self._store.paths():
            source = int(path.stem.rsplit("-", 1)[1])
            chunks.append((path, source, pq.ParquetFile(path).metadata.num_rows))
        ext = spec(self.fmt).extension
        groups: dict[str, list[tuple[Path, int, int]]] = {}
        if self.rows_per_file is None:
            for path, source, rows in chunks:
                groups.setdefault(f"part-{source:05d}{ext}", []).append((path, 0, rows))
            return list(groups.items())
        filled, number = 0, 0
        for path, _, rows in chunks:
            offset = 0
            while offset < rows:
                take = min(rows - offset, self.rows_per_file - filled)
                groups.setdefault(f"part-{number:05d}{ext}", []).append((path, offset, take))
                offset += take
                filled += take
                if filled == self.rows_per_file:
                    filled, number = 0, number + 1
        if not groups and chunks:  # no valid row at all: still one readable (empty) part
            groups[f"part-00000{ext}"] = [(path, 0, 0) for path, _, _ in chunks]
        return list(groups.items())

    def _write_part(self, name: str, pieces: list[tuple[Path, int, int]]) -> None:
        def tables():
            for path, offset, rows in pieces:
                table = pq.read_table(path)
                yield table if (offset, rows) == (0, table.num_rows) else table.slice(offset, rows)

        if not spec(self.fmt).staged:
            writer = ChunkWriter(self.stage / name, self.fmt)
            try:
                for table in tables():
                    writer.write(table)
                writer.commit()
            except BaseException:
                writer.abort()
                raise
            return
        # Parts written chunk by chunk may disagree on a column's type: one schema for the file, as ChunkWriter.
        schema = merged_schema([pq.read_schema(path) for path, _, _ in pieces])
        temp = self.stage / f".{name}.tmp"
        spec(self.fmt).assembled(temp, schema, tables())
        os.replace(temp, self.stage / name)

    def commit(self) -> None:
        for name, pieces in self._groups():
            self._write_part(name, pieces)
        shutil.rmtree(self.chunks)
        old = None
        if self.target.exists():
            old = self.target.with_name(f".{self.target.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(self.target, old)
        os.replace(self.stage, self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def suspend(self) -> None:
        """Keep the staged chunks for --resume."""

    def abort(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)


def open_writer(output: Path | str, fmt: str, kind: OutputKind, rows_per_file: int | None = None,
                resume_at: int | None = None):
    """The writer for an output of this kind: ChunkWriter, FolderSink or StdoutSink (one interface)."""
    if kind == "stdout":
        return StdoutSink(fmt)
    if kind == "folder":
        return FolderSink(Path(output), fmt, rows_per_file, resume_at)
    return ChunkWriter(Path(output), fmt, resume_at=resume_at)


def open_error_log(output: Path | str, kind: OutputKind, resume_at: int | None = None):
    return StreamErrorLog() if kind == "stdout" else ErrorLog(Path(output), resume_at=resume_at)


def write_rows(writer, table: pa.Table, source: int) -> None:
    """writer.write, telling sinks that lay files out by input file which one the rows come from."""
    if isinstance(writer, ChunkWriter):
        writer.write(table)
    else:
        writer.write(table, source)


def errors_path(output: Path | str, kind: OutputKind) -> str:
    return StreamErrorLog.target if kind == "stdout" else str(Path(output).with_name(Path(output).name +
                                                                                   ".errors.jsonl"))
