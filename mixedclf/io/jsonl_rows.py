"""JSON Lines, line by line: what a line holds, whether any output can take its values, and whether a file's first
lines show that no row of it can be classified."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mixedclf.errors import InputError
from mixedclf.io.sniff import read_sample

# Lines of a JSONL file looked at before any model loads: when every one fails for the same structural reason,
# the whole file would, and it is refused with that reason instead of classifying nothing.
PROBE_LINES = 20
# Deeper values are row errors: every writer walks a value recursively, and Python's recursion limit is shared
# with whatever stack the writer runs on, so "deep enough to fail" must not depend on where the check runs.
MAX_NESTING = 100


def parse_jsonl_line(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(the line's object, None) or (None, why the line holds no row)."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return None, f"invalid UTF-8 at byte {exc.start}"
    except json.JSONDecodeError as exc:
        return None, f"malformed JSON: {exc.msg} at column {exc.colno}"
    except RecursionError:
        return None, "JSON nested too deeply"
    if not isinstance(record, dict):
        return None, f"line is a JSON {type(record).__name__}, not an object"
    return record, None


def suspect_line(raw: bytes) -> bool:
    """A lone surrogate can only come from a \\uD8xx-\\uDFxx escape; deep nesting needs many brackets."""
    return b"\\ud" in raw or b"\\uD" in raw or raw.count(b"[") + raw.count(b"{") > MAX_NESTING


def _nesting(value: Any) -> int:
    """How deep lists and objects nest in value (without recursion: the value may be thousands deep)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth + 1)
            if deepest > MAX_NESTING:
                return deepest
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def unencodable(values: dict[str, Any]) -> str | None:
    """Why these values cannot be written to any output (nested too deeply, a lone surrogate), or None."""
    if any(_nesting(v) > MAX_NESTING for v in values.values()):
        return f"a value nests lists/objects more than {MAX_NESTING} deep"
    try:
        json.dumps(values, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"a value holds a lone surrogate (\\u{ord(exc.object[exc.start]):04x}), which UTF-8 cannot encode"
    return None


def check_jsonl_lines(path: Path, text_field: str) -> None:
    """Refuse the file when each of its first lines fails for the same structural reason."""
    sample = read_sample(path)
    check_jsonl_sample(path, sample, len(sample) == path.stat().st_size, text_field)


def check_jsonl_sample(path: Path | str, sample: bytes, whole: bool, text_field: str) -> None:
    """check_jsonl_lines on the first bytes of a stream; whole: the sample is all of it."""
    lines = sample.split(b"\n")
    if not whole:
        lines = lines[:-1]  # the last one may be cut off
    lines = [line for line in lines if line.strip()][:PROBE_LINES]
    if not lines or (len(lines) < 5 and not whole):
        return  # too little seen to judge the whole file
    if lines[0].startswith(b"\xef\xbb\xbf"):
        lines[0] = lines[0][3:]
    kinds, first, fields = set(), None, set()
    for raw in lines:
        record, reason = parse_jsonl_line(raw)
        if record is not None:
            if text_field in record:
                return  # a line with a text field: rows can be classified
            fields.update(record)
            reason = "missing"
        kinds.add(reason.split(":")[0].split(" at ")[0])
        first = first or reason
    if len(kinds) > 1:
        return
    seen = f"the first {len(lines)} lines" if len(lines) > 1 else "its only line"
    if first == "missing":
        raise InputError(f"{path}: none of {seen} has a field {text_field!r} (fields: {', '.join(sorted(fields))})",
                         hint="name the text field with --text-field")
    if first.startswith("invalid UTF-8"):
        raise InputError(f"{path}: is not UTF-8: every one of {seen} fails ({first})",
                         hint="convert it to UTF-8 (iconv -t UTF-8)")
    raise InputError(f"{path}: does not look like JSON Lines: every one of {seen} fails ({first})",
                     hint="pass a JSONL file, or --input-format for another format")
