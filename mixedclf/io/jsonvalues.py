"""JSON values in arrow tables: kept exactly as read, and written back as strict JSON.

A JSONL column whose values arrow cannot hold exactly in one type (ids mixing 1 and "two", objects with
differing keys, integers beyond int64, 1 beside 2.5) travels as arrow's canonical JSON extension type: each
value's own JSON text. Writers turn that text back into the value (JSONL), the plain cell (CSV), or keep it as
Parquet's JSON logical type, so nothing gains quotes or changes type on the way through.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa

JSON = pa.json_()

# One Python scalar type per column maps to one arrow type that gives the same value back.
_SCALAR_TYPES = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}


def is_json(kind: pa.DataType) -> bool:
    return isinstance(kind, pa.JsonType)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _finite(value: Any) -> Any:
    """The value with every NaN/Infinity (which strict JSON has no word for) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dumps(value: Any, ascii_only: bool = False) -> str:
    """Strict JSON text (RFC 8259): non-finite numbers become null; other non-JSON types their str()."""
    try:
        return json.dumps(value, ensure_ascii=ascii_only, allow_nan=False, default=_jsonable)
    except ValueError:  # a NaN or Infinity somewhere: the rare case pays for the walk
        return json.dumps(_finite(value), ensure_ascii=ascii_only, allow_nan=False, default=_jsonable)


def column_from_values(values: list[Any]) -> pa.Array:
    """One JSONL key's values across a chunk's rows, as an arrow array that gives each value back unchanged."""
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return pa.nulls(len(values))
    if len(kinds) == 1:
        kind = next(iter(kinds))
        try:
            if kind in _SCALAR_TYPES:
                return pa.array(values, type=_SCALAR_TYPES[kind])
            if kind in (list, dict):
                typed = pa.array(values)
                # Struct inference adds every key seen to every row and list inference turns 1 into 1.0:
                # keep the typed column only when it writes back the same JSON.
                if json.dumps(typed.to_pylist()) == json.dumps(values):
                    return typed
        except (pa.ArrowException, OverflowError, TypeError, ValueError, RecursionError):
            pass  # integers beyond int64, lists of mixed types, nesting arrow refuses: JSON text below
    return pa.array([None if v is None else dumps(v) for v in values], type=JSON)


def json_to_python(array: pa.Array | pa.ChunkedArray) -> list[Any]:
    """The values of a JSON column (SQL null -> None)."""
    return [None if text is None else json.loads(text) for text in array.to_pylist()]


def python_values(array: pa.Array | pa.ChunkedArray) -> list[Any]:
    """Any column's values as Python objects, a JSON column's as the values its texts hold."""
    return json_to_python(array) if is_json(array.type) else array.to_pylist()


def json_to_cells(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A JSON column as CSV cells: a JSON string is its plain text ("two" -> two), anything else its JSON text."""
    texts = array.to_pylist()
    return pa.array([t if t is None or not t.startswith('"') else json.loads(t) for t in texts], type=pa.string())


def to_json_column(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Any arrow column as JSON text, for a Parquet column whose type differs between chunks."""
    if is_json(array.type):
        return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    return pa.array([None if v is None else dumps(v) for v in array.to_pylist()], type=JSON)
