"""The input and output of a classify run, resolved and checked before any expensive stage."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from mixedclf.errors import InputError
from mixedclf.io.checkpoint import checkpoint_path
from mixedclf.io.formats import FOLDER_DEFAULT, STREAM_DEFAULT, checked, detect_format, spec, streamed_titles
from mixedclf.io.lock import lock_path_for
from mixedclf.io.sinks import OutputKind, check_folder_target, output_kind
from mixedclf.io.sources import Source, resolve_source
from mixedclf.io.writers import errors_path_for, parts_dir_for, temp_path_for


@dataclass(frozen=True)
class RunIO:
    source: Source
    in_fmt: str
    output: Path  # `-` for stdout
    out_kind: OutputKind
    out_fmt: str
    rows_per_file: int | None

    @property
    def resumable(self) -> bool:
        """A checkpoint can name the input and find the partial output again: neither is a pipe."""
        return not self.source.stdin and self.out_kind != "stdout"


def _output_format(output: Path, kind: OutputKind, override: str | None) -> str:
    checked(override, "output")
    if kind == "stdout":
        fmt = spec(override or STREAM_DEFAULT)
        if not fmt.text:
            raise InputError(f"{fmt.title} cannot be written to stdout (its footer is written last)",
                             hint=f"write {streamed_titles()} to stdout, or {fmt.title} to a file or folder")
        return fmt.name
    if kind == "folder":
        return override or FOLDER_DEFAULT
    return detect_format(output, override, "output")


def resolve_io(opts, stdin=None, source: Source | None = None) -> RunIO:
    """Every file-level check of a classify run: the input readable, the output creatable, the two apart.
    source: the input already resolved from opts (by check_apart), so it is not resolved again."""
    from mixedclf.io.readers import check_source
    from mixedclf.io.writers import check_writable

    rows_per_file = getattr(opts, "rows_per_file", None)
    output = Path(opts.output)
    kind = output_kind(opts.output, rows_per_file)
    if source is None:
        source = resolve_source(opts.input, opts.input_format, stdin=stdin)
    out_fmt = _output_format(output, kind, opts.output_format)
    if opts.resume and source.stdin:
        raise InputError("--resume cannot continue a run that read stdin", hint="read from a file to resume")
    if opts.resume and kind == "stdout":
        raise InputError("--resume cannot continue a run that wrote to stdout", hint="write to a file to resume")
    if kind == "stdout" and getattr(opts, "rows_per_file", None) is not None:
        raise InputError("--rows-per-file needs a folder output, not stdout")
    if kind == "stdout" and sys.stdout is None:  # started with stdout closed (`>&-`)
        raise InputError("stdout is closed: `-o -` has nowhere to write the rows", hint="give -o a file path")
    check_source(source, opts.text_field)
    if kind != "stdout":
        _check_apart(source, output, kind)
        if kind == "folder":
            check_folder_target(output)
        else:
            check_writable(output)
    return RunIO(source, source.fmt, output, kind, out_fmt, rows_per_file)


def check_apart(opts) -> Source:
    """The input, checked to share no file with the output or the files the run keeps beside it; run before the
    output's lock is taken (the lock file is truncated and removed, so an input by its name would be lost first)."""
    source = resolve_source(opts.input, opts.input_format)
    kind = output_kind(opts.output, getattr(opts, "rows_per_file", None))
    if kind != "stdout":
        _check_apart(source, Path(opts.output), kind)
    return source


def own_files(output: Path) -> dict[str, str]:
    """The files and folders a run on `output` writes beside it (real path -> what it is): an input that is one
    of them would be replaced, truncated or consumed by the run itself."""
    target = Path(os.path.realpath(output))
    errors = errors_path_for(target)
    checkpoint = checkpoint_path(target)
    return {str(errors): "errors log", str(temp_path_for(target)): "hidden partial output",
            str(temp_path_for(errors)): "hidden partial errors log", str(parts_dir_for(target)): "hidden parts folder",
            str(lock_path_for(target)): "lock file", str(checkpoint): "checkpoint",
            str(checkpoint.with_name(checkpoint.name + ".tmp")): "checkpoint"}


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _check_apart(source: Source, output: Path, kind: OutputKind) -> None:
    target = os.path.realpath(output)
    own = own_files(output)
    for file in source.files:
        local = file.local
        if local is None:
            continue
        where = os.path.realpath(local)
        if where == target or (kind == "folder" and _within(where, target)):
            raise InputError(f"{output}: the output is the input file" if where == target else
                             f"{output}: the output folder holds the input file {file.name}",
                             hint="write to another path")
        for path, what in own.items():
            if _within(where, path):
                raise InputError(f"{file.name}: the input is this run's {what} (of {output})",
                                 hint="copy it elsewhere first, or write to another -o path")
