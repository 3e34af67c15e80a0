"""File formats by extension, with an explicit override."""

from __future__ import annotations

from pathlib import Path

from mixedclf.errors import InputError

FORMATS = ("jsonl", "parquet", "csv")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def format_of_name(name: str) -> str | None:
    """The format a file name's extension says, or None."""
    return _EXTENSIONS.get(Path(name).suffix.lower())


def detect_format(path: Path, override: str | None = None, role: str = "input") -> str:
    if override:
        if override not in FORMATS:
            raise InputError(f"unknown {role} format {override!r}", hint=f"use one of {', '.join(FORMATS)}")
        return override
    fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{path}: unsupported extension {path.suffix or '(none)'!r}",
            hint=f"use .jsonl, .parquet or .csv, or pass --{role}-format",
        )
    return fmt


def check_paths(opts) -> tuple[str, str]:
    """Every file-level check of a classify run, before any expensive stage: (input format, output format)."""
    from mixedclf.io.readers import check_input
    from mixedclf.io.writers import check_writable

    in_fmt = detect_format(opts.input, opts.input_format, "input")
    out_fmt = detect_format(opts.output, opts.output_format, "output")
    check_input(opts.input, in_fmt, opts.text_field)
    if opts.output.resolve() == opts.input.resolve():
        raise InputError(f"{opts.output}: the output is the input file", hint="write to another path")
    check_writable(opts.output)
    return in_fmt, out_fmt
