"""Where a classify run's rows come from, resolved to one ordered list of files: a file, a folder, a glob, a list
of files, any URI pyarrow's filesystems understand (s3://, gs://, file://, and fsspec's hf:// and others), or
stdin (`-`). The files are one logical dataset: a folder's or a glob's files in sorted path order, a list in the
order given, and rows in file order within each file. JSONL and CSV may be compressed (.gz, .bz2, .zst): the
extension says how, and pyarrow's input streams decompress them."""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Sequence

import pyarrow as pa
import pyarrow.fs as pafs

from mixedclf.errors import InputChanged, InputError
from mixedclf.io.filestate import sample_sha256
from mixedclf.io.formats import STREAM_DEFAULT, checked, extensions_text, format_of_name, streamed_titles
from mixedclf.io.formats import spec as format_spec
from mixedclf.io.localfiles import Links, folder_files, glob_local

STDIN = "-"
_CHANGED_HINT = "classify a file that no longer changes (a copy or a snapshot)"
# Extension -> pyarrow codec name. Only JSONL and CSV are read through them (Parquet compresses inside the file).
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}
_GLOB_CHARS = "*?["


SAMPLE_BYTES = 64 * 1024  # what the format checks look at (as sniff.SAMPLE_BYTES)


class _Replay(io.RawIOBase):
    """A stream read once (stdin) whose first bytes were read ahead for the format checks: those bytes, then
    the rest."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self._head, self._at, self._rest = head, 0, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._at < len(self._head):
            data = self._head[self._at : self._at + len(buffer)]
            self._at += len(data)
        else:
            read = getattr(self._rest, "read1", self._rest.read)  # what is there now: a pipe may deliver slowly
            data = read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class StdinInput:
    """stdin as an input: its head is read once for the checks, then handed over with the rest."""

    def __init__(self, stream: BinaryIO | None = None):
        self._stream = stream
        self._head: bytes | None = None

    @property
    def stream(self) -> BinaryIO:
        if self._stream is not None:
            return self._stream
        if sys.stdin is None:  # started with stdin closed (`<&-`)
            raise InputError("stdin is closed: there are no rows to read", hint="pipe the rows in, or name a file")
        return sys.stdin.buffer

    def head(self) -> bytes:
        if self._head is None:
            chunks, size = [], 0
            while size < SAMPLE_BYTES:  # a pipe hands over what it has: keep reading up to the sample size
                data = self.stream.read(SAMPLE_BYTES - size)
                if not data:
                    break
                chunks.append(data)
                size += len(data)
            self._head = b"".join(chunks)
        return self._head

    def open(self) -> BinaryIO:
        return io.BufferedReader(_Replay(self.head(), self.stream), buffer_size=1 << 20)


@dataclass(frozen=True)
class SourceFile:
    """One file of the input: `name` is how messages and the errors file name it (the path or URI given)."""

    name: str
    fs: pafs.FileSystem | None  # None: stdin
    path: str  # the path inside fs
    compression: str | None
    size: int | None = None  # bytes as stored (compressed bytes for a compressed file)
    mtime_ns: int | None = None
    stdin: StdinInput | None = None
    inode: tuple[int, int] | None = None  # (st_dev, st_ino) of a local file when it was listed

    def check_unchanged(self) -> None:
        """InputChanged unless the file is still as it was listed (size, modification time, and for a local
        file the inode: a file replaced by a rename is another file)."""
        if self.stdin is not None or self.size is None:
            return
        try:
            if self.local is not None:
                st = os.stat(self.path)
                now = (st.st_size, st.st_mtime_ns, (st.st_dev, st.st_ino) if self.inode else None)
            else:
                info = self.fs.get_file_info(self.path)
                if info.type == pafs.FileType.NotFound:
                    raise FileNotFoundError(self.path)
                now = (info.size, info.mtime_ns if info.mtime is not None else None, None)
        except FileNotFoundError:
            raise InputChanged(f"{self.name}: the file was removed while the run read its input",
                               hint=_CHANGED_HINT) from None
        if now == (self.size, self.mtime_ns, self.inode):
            return
        what = (f"its size went from {self.size:,} to {now[0]:,} bytes" if now[0] != self.size else
                "it was replaced by another file" if now[2] != self.inode else "it was rewritten")
        raise InputChanged(f"{self.name}: the file changed while the run read it ({what}): rows may be missing "
                           "or mixed, so nothing was committed", hint=_CHANGED_HINT)

    @property
    def local(self) -> Path | None:
        """The file on this machine's filesystem, read through the plain-file checks; None for a remote one."""
        return Path(self.path) if isinstance(self.fs, pafs.LocalFileSystem) else None

    def open_native(self):
        """The (decompressed) bytes as pyarrow reads them fastest: its own stream, or the stdin stream."""
        if self.stdin is not None:
            return self.stdin.open()
        return self.fs.open_input_stream(self.path, compression=self.compression)

    def open_stream(self) -> BinaryIO:
        """A buffered binary stream of the (decompressed) bytes, for reading line by line."""
        if self.stdin is not None:
            return self.stdin.open()
        return io.BufferedReader(self.open_native(), buffer_size=1 << 20)

    def sample(self) -> bytes:
        """The first SAMPLE_BYTES of the (decompressed) bytes; fewer only when that is all there is."""
        if self.stdin is not None:
            return self.stdin.head()
        with self.open_stream() as stream:
            return stream.read(SAMPLE_BYTES)

    def content_sample(self) -> str | None:
        """filestate.sample_sha256 of the bytes as stored (compressed ones compressed); None for stdin."""
        if self.stdin is not None:
            return None
        try:
            with self.fs.open_input_file(self.path) as handle:
                return sample_sha256(handle, handle.size())
        except OSError as exc:
            raise InputError(f"{self.name}: cannot read it: {str(exc).splitlines()[0]}") from None

    def open_random_access(self) -> pa.NativeFile:
        return self.fs.open_input_file(self.path)


@dataclass(frozen=True)
class Source:
    spec: str  # what the user gave, for messages and the report
    files: tuple[SourceFile, ...]
    fmt: str
    stdin: bool = False
    many: bool = False  # a folder, a glob or a list: row problems say which file they are in
    warnings: tuple[str, ...] = ()  # links passed over or read once (one line per kind, with a count)

    def identity(self) -> list[list]:
        """What identifies the input for a checkpoint: every file with its size, modification time and sampled
        content (as a single file's run_fingerprint: an edit that keeps size and mtime is still seen)."""
        return [[f.name, f.size, f.mtime_ns, f.content_sample()] for f in self.files]

    def fingerprint(self, settings: dict) -> str:
        payload = {"inputs": self.identity(), **settings}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def is_uri(spec: str) -> bool:
    head, sep, _ = spec.partition("://")
    return bool(sep) and head.isalnum() and len(head) > 1  # C:\ is a Windows drive, not a scheme


def split_compression(name: str) -> tuple[str, str | None]:
    """('data.jsonl', 'gzip') for 'data.jsonl.gz'; the name itself and None when it is not compressed."""
    for ext, codec in COMPRESSIONS.items():
        if name.lower().endswith(ext):
            return name[: -len(ext)], codec
    return name, None


def _hidden(relative: str) -> bool:
    """Files a folder holds beside its data, as Spark, Hadoop and pyarrow.dataset skip them: _SUCCESS, .crc, ..."""
    return any(part.startswith((".", "_")) for part in relative.split("/") if part)


def _filesystem(spec: str) -> tuple[pafs.FileSystem, str]:
    if not is_uri(spec):
        return pafs.LocalFileSystem(), os.path.abspath(spec)
    try:
        return pafs.FileSystem.from_uri(spec)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ImportError, ValueError) as exc:
        scheme = spec.split("://", 1)[0]
        raise InputError(f"{spec}: no filesystem for {scheme}:// ({str(exc).splitlines()[0]})",
                         hint="s3://, gs://, file:// come with pyarrow; others need fsspec and its package, "
                              "e.g. huggingface_hub for hf://") from None
    except OSError as exc:
        raise InputError(f"{spec}: cannot reach it: {str(exc).splitlines()[0]}") from None


def _display(spec: str, fs: pafs.FileSystem, path: str) -> str:
    """A listed file named as the user would write it: a URI stays a URI, a local path stays relative."""
    if is_uri(spec):
        scheme = spec.split("://", 1)[0]
        return f"{scheme}://{path.lstrip('/')}" if scheme != "file" else f"file://{path}"
    if os.path.isabs(spec):
        return path
    return os.path.relpath(path)


def _info(fs: pafs.FileSystem, path: str, spec: str) -> pafs.FileInfo:
    try:
        return fs.get_file_info(path)
    except OSError as exc:
        raise InputError(f"{spec}: cannot read it: {str(exc).splitlines()[0]}") from None


def _listing(spec: str, fs: pafs.FileSystem, path: str, recursive: bool) -> list[pafs.FileInfo]:
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=recursive))
    except OSError as exc:
        raise InputError(f"{spec}: cannot list it: {str(exc).splitlines()[0]}") from None
    return [i for i in infos if i.type == pafs.FileType.File]


def _listed(spec: str, fs: pafs.FileSystem, names: list[str]) -> list[pafs.FileInfo]:
    """The infos of files just listed; one gone already is a change under the run, said as such."""
    infos = fs.get_file_info(names) if names else []
    for info in infos:
        if info.type == pafs.FileType.NotFound:
            raise InputChanged(f"{_display(spec, fs, info.path)}: the file was removed while the run listed its "
                               "input", hint=_CHANGED_HINT)
    return infos


def _expand(spec: str, fmt_override: str | None, links: Links | None = None
            ) -> tuple[list[pafs.FileInfo], pafs.FileSystem, bool]:
    """The files one input argument names, sorted; and whether it named more than a single file."""
    fs, path = _filesystem(spec)
    links = links if links is not None else Links(spec)
    local = isinstance(fs, pafs.LocalFileSystem)
    if any(c in path for c in _GLOB_CHARS):
        if local:
            names = glob_local(path, links)
            return _listed(spec, fs, names), fs, True
        # A glob on an object store: list below the part without wildcards and match the rest.
        base = path
        while any(c in base for c in _GLOB_CHARS):
            base = base.rsplit("/", 1)[0]
        infos = _listing(spec, fs, base, recursive=True)
        return sorted((i for i in infos if fnmatch.fnmatchcase(i.path, path)), key=lambda i: i.path), fs, True
    info = _info(fs, path, spec)
    if info.type == pafs.FileType.NotFound:
        raise InputError(f"{spec}: no such file", hint="check the input path")
    if info.type != pafs.FileType.Directory:
        return [info], fs, False
    if local:
        names = folder_files(path, links)
        infos = _listed(spec, fs, names)
    else:
        infos = [i for i in _listing(spec, fs, path, recursive=True)
                 if not _hidden(i.path[len(path.rstrip("/")):])]
    if fmt_override is None:  # a folder's data files are those it can read; a README beside them is not data
        infos = [i for i in infos if format_of_name(split_compression(i.base_name)[0]) is not None]
    if not infos:
        raise InputError(f"{spec}: the folder holds no {extensions_text()} files",
                         hint="point at the data files, or pass --input-format")
    return sorted(infos, key=lambda i: i.path), fs, True


def resolve_source(spec: str | Sequence[str], fmt_override: str | None = None,
                   stdin: StdinInput | None = None) -> Source:
    """The input named by one argument or a list of them; the format from the extensions or the override.
    stdin: where `-` reads from (the process's stdin unless given)."""
    specs = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    specs = [os.fspath(s) for s in specs]
    checked(fmt_override, "input")
    if STDIN in specs:
        if len(specs) > 1:
            raise InputError("`-` (stdin) cannot be combined with other inputs")
        piped = format_spec(fmt_override or STREAM_DEFAULT)
        if not piped.text:
            raise InputError(f"{piped.title} cannot be read from stdin (its footer comes last)",
                             hint=f"write it to a file first, or pipe {streamed_titles()}")
        return Source("<stdin>", (SourceFile("<stdin>", None, STDIN, None, stdin=stdin or StdinInput()),),
                      piped.name, stdin=True)
    if not specs:
        raise InputError("no input given")
    files: list[SourceFile] = []
    many = len(specs) > 1
    warnings: list[str] = []
    for item in specs:
        links = Links(item)
        infos, fs, listed = _expand(item, fmt_override, links)
        warnings += links.lines()
        if not infos:
            raise InputError(f"{item}: matches no file", hint="check the pattern")
        many = many or listed
        for info in infos:
            name = item if not listed else _display(item, fs, info.path)
            plain, compression = split_compression(info.base_name)
            inode = None
            if isinstance(fs, pafs.LocalFileSystem):
                with contextlib.suppress(OSError):
                    st = os.stat(info.path)
                    inode = (st.st_dev, st.st_ino)
            files.append(SourceFile(name, fs, info.path, compression, info.size,
                                    info.mtime_ns if info.mtime is not None else None, inode=inode))
    fmt = fmt_override or _common_format(files)
    if not format_spec(fmt).text and any(f.compression for f in files):
        bad = next(f for f in files if f.compression)
        title = format_spec(fmt).title
        raise InputError(f"{bad.name}: a compressed {title} file cannot be read",
                         hint=f"{title} compresses inside the file: decompress it first")
    spec_text = specs[0] if len(specs) == 1 else " ".join(specs)
    return Source(spec_text, tuple(files), fmt, many=many, warnings=tuple(warnings))


def _common_format(files: list[SourceFile]) -> str:
    formats: dict[str, str] = {}
    for f in files:
        plain = split_compression(f.name)[0]
        fmt = format_of_name(plain)
        if fmt is None:
            suffix = Path(plain).suffix
            raise InputError(f"{f.name}: unsupported extension {suffix or '(none)'!r}",
                             hint=f"use {extensions_text()} (optionally {', '.join(COMPRESSIONS)}), or pass "
                                  "--input-format")
        formats.setdefault(fmt, f.name)
    if len(formats) > 1:
        shown = ", ".join(f"{fmt} ({name})" for fmt, name in formats.items())
        raise InputError(f"the input mixes formats: {shown}", hint="one dataset has one format: pass one kind")
    return next(iter(formats))
