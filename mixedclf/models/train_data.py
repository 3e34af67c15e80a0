"""Labeled data for `mixedclf train`: reading texts, labels and groups from a file, and the held-out split."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mixedclf.errors import InputError

SUPPORTED_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


class TrainingDataError(InputError, ValueError):
    """Labeled data or training options that cannot be used (a ValueError, and exit code 2 in the CLI)."""


# --------------------------------------------------------------------------------------------------- loading


class LabeledData(NamedTuple):
    texts: list[str]
    labels: list[str]
    groups: list[str] | None
    dropped: int  # rows skipped because their text (or label, or group) was missing or blank


def _read_table(path: Path, fmt: str, columns: list[str]):
    import pyarrow as pa

    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
            _check_columns(path, names, columns)
            return pq.read_table(path, columns=columns).to_pandas()
        if fmt == "csv":
            import pyarrow.csv as pacsv

            table = pacsv.read_csv(path)
        else:
            import pyarrow.json as pajson

            try:
                table = pajson.read_json(path)
            except pa.ArrowInvalid:
                import pandas as pd  # pyarrow's JSON reader refuses mixed types; pandas is lenient

                frame = pd.read_json(path, lines=True, dtype=False)
                _check_columns(path, list(frame.columns), columns)
                return frame[columns]
    except (OSError, pa.ArrowInvalid, ValueError) as exc:
        if isinstance(exc, TrainingDataError):
            raise
        raise TrainingDataError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc
    _check_columns(path, table.column_names, columns)
    return table.select(columns).to_pandas()


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
    fmt = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise TrainingDataError(f"{path}: unknown extension {path.suffix!r}; use .jsonl, .parquet or .csv")
    if not path.is_file():
        raise TrainingDataError(f"{path} does not exist")
    columns = [text_field, label_field] + ([group_field] if group_field else [])
    if len(set(columns)) != len(columns):
        raise TrainingDataError(f"the text, label and group fields must differ (got {columns})")
    frame = _read_table(path, fmt, columns)
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


def sorted_labels(labels: Sequence[str]) -> list[str]:
    names = set(labels)
    if all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


# ----------------------------------------------------------------------------------------------- splitting


def split_indices(
    n: int, groups: Sequence[str] | None, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, str, int | None]:
    """(train rows, test rows, split kind, test group count). Whole groups go to one side when groups are given."""
    if not 0.0 <= test_fraction < 1.0:
        raise TrainingDataError(f"test_fraction must be in [0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    if test_fraction == 0.0 or n < 2:
        return np.arange(n), np.arange(0), "none", None
    target = max(1, round(n * test_fraction))
    if groups is None:
        order = rng.permutation(n)
        test = np.sort(order[:target])
        train = np.sort(order[target:])
        return train, test, "random", None
    if len(groups) != n:
        raise TrainingDataError(f"{len(groups)} groups for {n} texts")
    names, inverse, counts = np.unique(
        np.asarray(groups, dtype=object).astype(str), return_inverse=True, return_counts=True
    )
    if len(names) < 2:
        raise TrainingDataError("a split by group needs at least two groups")
    chosen, total = [], 0
    for g in rng.permutation(len(names)):
        if total >= target or len(chosen) == len(names) - 1:
            break
        chosen.append(g)
        total += counts[g]
    is_test = np.isin(inverse, chosen)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test), "group", len(chosen)

