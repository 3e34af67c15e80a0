"""The format registry (mixedclf/io/formats.py) is the one place that knows the data formats: no module branches
on a format's name, and every registered format round-trips through the writers and readers."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import pyarrow as pa
import pytest

from mixedclf.io.formats import REGISTRY, detect_format, format_of_name
from mixedclf.io.readers import iter_chunks
from mixedclf.io.sinks import FolderSink, StdoutSink
from mixedclf.io.writers import ChunkWriter

PACKAGE = Path(__file__).resolve().parents[1] / "mixedclf"
NAMES = set(REGISTRY)
# The registry and the modules its entries are made of.
OWNERS = {PACKAGE / "io" / "formats.py", *(PACKAGE / "io").glob("format_*.py")}


def _format_literals(node: ast.AST) -> list[str]:
    """The format names a literal spells: "csv", or ("parquet", "csv")."""
    if isinstance(node, ast.Constant) and node.value in NAMES:
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in NAMES]
    return []


def format_branches(source: str, name: str = "<test>") -> list[str]:
    """Comparisons with a format's name (fmt == "csv", fmt in ("jsonl", "csv")) and tables keyed by format names
    ({"jsonl": 1, "csv": 2}): what a registry entry should say instead."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            if any(_format_literals(side) for side in [node.left, *node.comparators]):
                found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant) and k.value in NAMES]
            if len(keys) >= 2:
                found.append(f"{name}:{node.lineno}: a table keyed by {', '.join(keys)}")
    return found


def test_the_branch_finder_sees_each_kind_of_branch():
    code = ('if fmt == "csv": pass\nif self.fmt != "jsonl": pass\nx = fmt in ("parquet", "csv")\n'
            'OFFSET = {"jsonl": 1, "csv": 2}\nif kind == "folder": pass\n')
    assert len(format_branches(code)) == 4


def test_no_module_branches_on_a_format_name():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path not in OWNERS:
            found += format_branches(path.read_text(), str(path.relative_to(PACKAGE.parent)))
    assert not found, "branches on a format's name outside io/formats.py:\n" + "\n".join(found)


def test_extensions_map_to_their_format():
    for fmt in REGISTRY.values():
        for ext in fmt.extensions:
            assert format_of_name(f"data{ext.upper()}") == fmt.name
            assert detect_format(Path(f"out{ext}")) == fmt.name


ROWS = [{"id": f"r{i}", "text": f"text number {i}", "note": f"n{i % 3}"} for i in range(7)]


def _read_back(path: Path, fmt: str) -> list[dict]:
    rows = []
    for chunk in iter_chunks(path, fmt, "text", "id", chunk_rows=3):
        assert not chunk.problems
        for text, row in zip(chunk.texts, chunk.passthrough.to_pylist(), strict=True):
            rows.append({**row, "text": text})
    return [{k: r[k] for k in ("id", "text", "note")} for r in rows]


def _tables() -> list[pa.Table]:
    return [pa.Table.from_pylist(ROWS[:3]), pa.Table.from_pylist(ROWS[3:])]


@pytest.mark.parametrize("fmt", sorted(REGISTRY))
def test_every_format_round_trips_through_a_file(tmp_path, fmt):
    target = tmp_path / f"out{REGISTRY[fmt].extension}"
    writer = ChunkWriter(target, fmt)
    for table in _tables():
        writer.write(table)
    writer.commit()
    assert _read_back(target, fmt) == ROWS


@pytest.mark.parametrize("fmt", sorted(REGISTRY))
def test_every_format_round_trips_through_a_folder(tmp_path, fmt):
    target = tmp_path / "out"
    sink = FolderSink(target, fmt, rows_per_file=4)
    for table in _tables():
        sink.write(table)
    sink.commit()
    parts = sorted(target.iterdir())
    assert [p.suffix for p in parts] == [REGISTRY[fmt].extension] * 2
    assert [row for part in parts for row in _read_back(part, fmt)] == ROWS


@pytest.mark.parametrize("fmt", sorted(name for name, f in REGISTRY.items() if f.text))
def test_every_text_format_round_trips_through_a_pipe(tmp_path, fmt):
    stream = io.BytesIO()
    sink = StdoutSink(fmt, stream)
    for table in _tables():
        sink.write(table)
    sink.commit()
    path = tmp_path / f"piped{REGISTRY[fmt].extension}"
    path.write_bytes(stream.getvalue())
    assert _read_back(path, fmt) == ROWS
