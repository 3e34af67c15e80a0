"""Labeled data for `mixedclf train`: texts, labels (as strings) and optional groups, read whole from a file of
any registered format (a training set fits in memory; classify inputs are streamed, see io.readers)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from mixedclf.errors import TrainingDataError
from mixedclf.io.formats import extensions_text, format_of_name, spec


class LabeledData(NamedTuple):
    texts: list[str]
    labels: list[str]
    groups: list[str] | None
    dropped: int  # rows skipped because their text (or label, or group) was missing or blank


def _read_frame(path: Path, fmt: str, columns: list[str]):
    import pyarrow as pa

    def check(names: Sequence[str]) -> None:
        _check_columns(path, names, columns)

    try:
        return spec(fmt).read_frame(path, columns, check)
    except (OSError, pa.ArrowInvalid, ValueError) as exc:
        if isinstance(exc, TrainingDataError):
            raise
        raise TrainingDataError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc


def _check_columns(path: Path, names: Sequence[str], wanted: list[str]) -> None:
    flags = {0: "--text-field", 1: "--label-field", 2: "--group-field"}
    for i, column in enumerate(wanted):
        if column not in names:
            shown = ", ".join(map(str, names[:20])) + (", ..." if len(names) > 20 else "")
            raise TrainingDataError(
                f"{path} has no column {column!r} (columns: {shown}); "
                f"choose one with {flags.get(i, 'the field option')}"
            )


def load_labeled(
    path: str | Path, text_field: str = "text", label_field: str = "label", group_field: str | None = None
) -> LabeledData:
    """Read texts, labels (as strings) and optional groups from a .jsonl, .parquet or .csv file.

    Rows whose text or label is missing are skipped (counted in `dropped`); a missing column, an unknown
    extension or a file with fewer than two labels raises TrainingDataError (a ValueError) saying which.
    """
    path = Path(path)
    fmt = format_of_name(path.name)
    if fmt is None:
        raise TrainingDataError(f"{path}: unknown extension {path.suffix!r}; use {extensions_text()}")
    if not path.is_file():
        raise TrainingDataError(f"{path} does not exist")
    columns = [text_field, label_field] + ([group_field] if group_field else [])
    if len(set(columns)) != len(columns):
        raise TrainingDataError(f"the text, label and group fields must differ (got {columns})")
    frame = _read_frame(path, fmt, columns)
    keep = frame[text_field].notna() & frame[label_field].notna()
    keep &= frame[text_field].astype(str).str.strip().str.len() > 0  # CSV readers turn a missing text into ""
    if group_field:
        keep &= frame[group_field].notna()
    dropped = int((~keep).sum())
    frame = frame[keep]
    if frame.empty:
        raise TrainingDataError(f"{path} has no rows with both {text_field!r} and {label_field!r}")
    texts = [str(t) for t in frame[text_field].tolist()]
    labels = [_label_name(v) for v in frame[label_field].tolist()]
    groups = [str(g) for g in frame[group_field].tolist()] if group_field else None
    return LabeledData(texts, labels, groups, dropped)


def _label_name(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 1.0 from a CSV or a column with nulls is the label "1"
    return str(value)
