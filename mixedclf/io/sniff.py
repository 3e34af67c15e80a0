"""What a text input file really holds, from its first bytes: a file every row of which would fail for the same
reason (compressed, UTF-16, binary, whitespace only) is refused before the model loads, saying what it looks like."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mixedclf.errors import InputError

SAMPLE_BYTES = 64 * 1024

_MAGIC = (
    (b"\x1f\x8b", "gzip-compressed data", "decompress it first (gunzip)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data", "decompress it first (zstd -d)"),
    (b"BZh", "bzip2-compressed data", "decompress it first (bunzip2)"),
    (b"\xfd7zXZ\x00", "xz-compressed data", "decompress it first (unxz)"),
    (b"PK\x03\x04", "a zip archive", "extract it first"),
    (b"PAR1", "a Parquet file", "name it .parquet or pass --input-format parquet"),
    (b"%PDF", "a PDF document", "convert it to JSONL or CSV first"),
)
_UTF16_32 = (
    (b"\xff\xfe\x00\x00", "UTF-32 text"),
    (b"\x00\x00\xfe\xff", "UTF-32 text"),
    (b"\xff\xfe", "UTF-16 text"),
    (b"\xfe\xff", "UTF-16 text"),
)
_TO_UTF8 = "convert it to UTF-8 (iconv -t UTF-8)"


def read_sample(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(SAMPLE_BYTES)


def _looks_utf16(sample: bytes) -> bool:
    """ASCII text in UTF-16 without a BOM: every other byte is NUL."""
    even, odd = sample[0:200:2], sample[1:200:2]
    return len(sample) >= 8 and (even.count(0) > 0.9 * len(even) or odd.count(0) > 0.9 * len(odd))


def _valid_utf8_prefix(sample: bytes, whole_file: bool) -> bool:
    try:
        sample.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        # A sample cut in the middle of a character is fine; an error before its last 3 bytes is not.
        return not whole_file and exc.start >= len(sample) - 3 and exc.reason == "unexpected end of data"


def check_text_file(path: Path, fmt: str) -> None:
    """Refuse a JSONL/CSV file whose first bytes show it cannot hold any row: InputError (exit 2)."""
    sample = read_sample(path)
    check_text_sample(path, sample, len(sample) == path.stat().st_size, fmt)


def check_text_sample(path: Path | str, sample: bytes, whole: bool, fmt: str) -> None:
    """check_text_file on the first SAMPLE_BYTES of a stream (a decompressed file, stdin); whole: that is all
    of it."""
    for magic, what, hint in _MAGIC:
        if sample.startswith(magic):
            raise InputError(f"{path}: looks like {what}, not {fmt}", hint=hint)
    for bom, what in _UTF16_32:
        if sample.startswith(bom):
            raise InputError(f"{path}: looks like {what}, not UTF-8 {fmt}", hint=_TO_UTF8)
    if _looks_utf16(sample):
        raise InputError(f"{path}: looks like UTF-16 text, not UTF-8 {fmt}", hint=_TO_UTF8)
    head = sample[:4096]
    controls = sum(b < 9 or 13 < b < 32 for b in head)  # tab, newlines and form feed are text
    # Text holds next to no control bytes; random bytes hold one in eleven. A stray NUL is a row's problem.
    if controls > max(8, len(head) // 100) or (controls and not _valid_utf8_prefix(sample, whole)):
        raise InputError(f"{path}: looks like binary data, not {fmt} text", hint=f"pass a {fmt} file")
    if whole and not sample.strip():
        raise InputError(f"{path}: the file is empty (whitespace only)", hint="nothing to classify")


def text_sample(file: Any, fmt: str) -> tuple[bytes, bool]:
    """The first SAMPLE_BYTES of a text input that is not a plain local file (an io.sources.SourceFile: compressed,
    remote or stdin), checked by check_text_sample; and whether that is all of it."""
    sample = file.sample()
    if not sample:
        raise InputError(f"{file.name}: the {'input' if file.stdin else 'file'} is empty", hint="nothing to classify")
    whole = len(sample) < SAMPLE_BYTES
    check_text_sample(file.name, sample, whole, fmt)
    return sample, whole
