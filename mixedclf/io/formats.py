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
