"""Write labelled chunks to JSONL, Parquet or CSV, atomically: everything goes to a partial file (Parquet and CSV:
a folder of per-chunk Parquet parts) beside the target, and only a finished run renames it into place, so the
final path never holds a half-written file. The partial files are what a checkpoint points at for --resume.

CSV is staged as parts like Parquet because its header comes first but is known only at the end: a column that
first appears in a late chunk (a JSONL key from row 2,000 on, a column only the second file of a folder has)
must be in the header, with empty cells in the rows before it."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from mixedclf.errors import InputError, OutputError
from mixedclf.io.filestate import FileState, RunningHash
from mixedclf.io.formats import spec
from mixedclf.io.jsonvalues import dumps
from mixedclf.io.partstore import PartsState, PartStore
from mixedclf.io.tables import merged_schema


def temp_path_for(target: Path) -> Path:
    return target.with_name(f".{target.name}.partial")


def parts_dir_for(target: Path) -> Path:
    return target.with_name(f".{target.name}.parts")


def errors_path_for(output: Path) -> Path:
    return output.with_name(output.name + ".errors.jsonl")


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words (None for a regular file or a folder)."""
    for test, name in ((stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISSOCK, "socket"), (stat.S_ISLNK, "symlink")):
        if test(mode):
            return name
    return None


def _refuse_non_regular(path: Path, follow: bool) -> None:
    """Outputs are put in place by rename, which would replace a device, FIFO, socket or symlink with a
    plain file (as root, a rename over /dev/stdout breaks it for the whole machine): refuse them."""
    try:
        mode = (os.stat if follow else os.lstat)(path).st_mode
    except FileNotFoundError:
        if path.is_symlink():
            raise InputError(f"{path}: is a symlink to nothing ({os.readlink(path)})",
                             hint="remove the link or pick another -o path") from None
        return
    kind = _kind(mode)
    if kind is not None:
        link = f" (a symlink to {os.path.realpath(path)})" if path.is_symlink() else ""
        raise InputError(f"{path}: is a {kind}{link}, not a regular file",
                         hint="mixedclf writes a new file and renames it into place: give a regular file path")


def resolve_output(output: Path) -> Path:
    """The path the output is written to: a symlink to a regular file is followed (the new file goes where
    it points and the link stays); anything else that is not a regular file is refused."""
    _refuse_non_regular(output, follow=True)
    return Path(os.path.realpath(output)) if output.is_symlink() else output


def check_writable(target: Path) -> None:
    """Fail before any work when the output cannot be created (missing folder, no permission, not a file)."""
    folder = target.parent
    if not folder.is_dir():
        raise InputError(f"{target}: folder {folder} does not exist", hint="create it or pick another -o path")
    if target.is_dir():
        raise InputError(f"{target}: is a folder", hint="give a file name with an extension")
    _refuse_non_regular(target, follow=False)
    _refuse_non_regular(errors_path_for(target), follow=False)
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise InputError(f"{target}: not writable", hint="check permissions or pick another -o path")


@contextmanager
def writing(target: Path) -> Iterator[None]:
    """An OSError while writing (disk full, I/O error) becomes one line naming the output."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or (str(exc).splitlines() or [type(exc).__name__])[0]
        full = getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        hint = "free some space or write elsewhere; the previous output is untouched" if full else None
        raise OutputError(f"{target}: cannot write: {reason}", hint=hint) from exc


def _create(path: Path, mode: str = "w+b"):
    """A new, empty file at path: whatever was there (a stale partial, a planted symlink) is removed first,
    so the open never follows a link or writes into something else."""
    path.unlink(missing_ok=True)
    return os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666), mode)



class ChunkWriter:
    """Appends tables to the partial output; commit() makes it the target in one rename."""

    def __init__(self, target: Path, fmt: str, resume_at: int | None = None):
        """resume_at: keep that many bytes (JSONL/CSV) or parts (Parquet) of an earlier partial output."""
        self.target, self.fmt, self.spec = target, fmt, spec(fmt)
        self.temp = temp_path_for(target)
        self.parts = parts_dir_for(target)
        self.schema: pa.Schema | None = None
        self._handle = None
        self._hash = RunningHash()
        self._sealed: FileState | None = None
        self.rows = 0
        with writing(target):
            if self.staged:
                self._open_parts(resume_at)
            else:
                self._open_stream(resume_at)

    @property
    def staged(self) -> bool:
        """Chunks go to Parquet parts, assembled into the file at seal() (see the module docstring)."""
        return self.spec.staged

    def _open_stream(self, resume_at: int | None) -> None:
        if resume_at is None or not self.temp.exists():
            self._handle = _create(self.temp)
            return
        self._handle = open(self.temp, "r+b")
        self._handle.truncate(resume_at)  # drop whatever was written after the checkpoint
        self._handle.seek(resume_at)
        self._hash.catch_up(self.temp, resume_at)

    def _open_parts(self, resume_at: int | None) -> None:
        if resume_at is None:
            shutil.rmtree(self.parts, ignore_errors=True)
        self._store = PartStore(self.parts, self.parts.name, "part-", resume_at)
        self.part_count = self._store.count
        if self.part_count:
            self.schema = pq.read_schema(self._store.paths()[0])

    @property
    def position(self) -> int:
        """What a checkpoint records: bytes written (JSONL) or parts written (Parquet, CSV)."""
        return self.part_count if self.staged else self._handle.tell()

    def files(self) -> list[FileState | PartsState]:
        """What a checkpoint vouches for, after flush(): the partial's bytes, or the part store (Parquet, CSV: one
        fixed-size record however many parts); once sealed, the finished partial file."""
        if self._sealed is not None:
            return [self._sealed]
        if self.staged:
            return [self._store.state()]
        return [self._hash.state(self.temp.name)]

    def write(self, table: pa.Table) -> None:
        with writing(self.target):
            self._write(table)

    def _write(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        if not self.staged:
            if table.num_rows:
                self._handle.write(self.spec.encoded(table))
            return
        # Each part keeps its own types and columns; seal() merges them into one schema (see io.tables.merged_schema).
        if self.schema is None:
            self.schema = table.schema
        self._store.add(table)
        self.part_count += 1

    def flush(self) -> None:
        """Make everything written so far durable, so a checkpoint can point at it."""
        if self._handle is not None and not self._handle.closed:
            with writing(self.target):
                self._handle.flush()
                os.fsync(self._handle.fileno())
                self._hash.catch_up(self.temp, self._handle.tell())

    def _close(self) -> None:
        if self._handle is not None and not self._handle.closed:
            self._handle.close()  # flushes; the file is closed even when that flush fails

    def _merge_parts(self) -> None:
        parts = self._store.paths()
        # No valid row at all: still a readable (empty) file.
        schema = merged_schema([pq.read_schema(p) for p in parts]) if parts else (self.schema or pa.schema([]))
        self.temp.unlink(missing_ok=True)
        self.spec.assembled(self.temp, schema, (pq.read_table(part) for part in parts))

    def seal(self) -> None:
        """Finish the partial file (Parquet: merge the parts into it), durably, ready for the rename."""
        if self._sealed is not None:
            return
        with writing(self.target):
            self._close()
            if self.staged:
                self._merge_parts()
                self._hash = RunningHash()
            with open(self.temp, "rb") as f:
                os.fsync(f.fileno())
            self._hash.catch_up(self.temp, self.temp.stat().st_size)
            self._sealed = self._hash.state(self.temp.name)

    def commit(self) -> None:
        self.seal()
        with writing(self.target):
            os.replace(self.temp, self.target)
        shutil.rmtree(self.parts, ignore_errors=True)  # the parts outlive the rename: a kill before it loses nothing

    def suspend(self) -> None:
        """Stop writing but keep the partial output for --resume."""
        self.flush()
        self._close()

    def abort(self) -> None:
        """Remove every partial file, even when the disk is full and the last flush fails."""
        with suppress(OSError):
            self._close()
        self.temp.unlink(missing_ok=True)
        shutil.rmtree(self.parts, ignore_errors=True)


class ErrorLog:
    """OUTPUT.errors.jsonl: one line per skipped row (row, line number, id, reason), atomic like the output."""

    def __init__(self, output: Path, resume_at: int | None = None):
        self.target = errors_path_for(output)
        self.temp = temp_path_for(self.target)
        self.rows = 0
        self._hash = RunningHash()
        with writing(self.target):
            if resume_at is None or not self.temp.exists():
                self._handle = _create(self.temp)
            else:
                self._handle = open(self.temp, "r+b")
                self._handle.truncate(resume_at)
                self._handle.seek(resume_at)
                self._hash.catch_up(self.temp, resume_at)

    @property
    def position(self) -> int:
        return self._handle.tell()

    def state(self) -> FileState:
        """What a checkpoint vouches for, after flush()."""
        return self._hash.state(self.temp.name)

    def write(self, problems: list[dict[str, Any]]) -> None:
        with writing(self.target):
            for problem in problems:
                try:
                    line = dumps(problem).encode("utf-8")
                except UnicodeEncodeError:  # an id with a lone surrogate: logged as the \\ud800 escape it was read as
                    line = dumps(problem, ascii_only=True).encode("ascii")
                self._handle.write(line + b"\n")
        self.rows += len(problems)

    def flush(self) -> None:
        if self._handle.closed:
            return
        with writing(self.target):
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._hash.catch_up(self.temp, self._handle.tell())

    def seal(self) -> None:
        self.flush()
        self._handle.close()

    def commit(self) -> None:
        self.seal()
        with writing(self.target):
            if self.temp.stat().st_size:
                os.replace(self.temp, self.target)
            else:
                self.temp.unlink()
                self.target.unlink(missing_ok=True)  # a stale log from an earlier run must not mislead

    def suspend(self) -> None:
        self.seal()

    def abort(self) -> None:
        with suppress(OSError):
            self._handle.close()
        self.temp.unlink(missing_ok=True)
