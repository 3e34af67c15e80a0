import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mixedclf.errors import InputError
from mixedclf.io.formats import detect_format
from mixedclf.io.readers import iter_chunks, text_problem
from mixedclf.io.writers import ChunkWriter, parts_dir_for, temp_path_for


def test_detect_format():
    from pathlib import Path

    assert detect_format(Path("a.JSONL")) == "jsonl"
    assert detect_format(Path("a.parquet")) == "parquet"
    assert detect_format(Path("a.txt"), "csv") == "csv"
    with pytest.raises(InputError, match="unsupported extension"):
        detect_format(Path("a.txt"))


@pytest.mark.parametrize(
    "value, ok", [("hi", True), ("", False), ("  \n", False), (None, False), (3, False), ([1], False), ({}, False)]
)
def test_text_problem(value, ok):
    assert (text_problem(value) is None) == ok


def test_jsonl_chunks_keep_order_ids_and_passthrough(tmp_path):
    path = tmp_path / "in.jsonl"
    rows = [{"id": f"x{i}", "text": f"text {i}", "stars": i} for i in range(7)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    chunks = list(iter_chunks(path, "jsonl", "text", "id", chunk_rows=3))
    assert [c.rows_in for c in chunks] == [3, 3, 1]
    assert [t for c in chunks for t in c.texts] == [r["text"] for r in rows]
    table = pa.concat_tables([c.passthrough for c in chunks])
    assert table.column_names == ["id", "stars"]
    assert table.column("id").to_pylist() == [r["id"] for r in rows]


def test_jsonl_row_problems_have_line_numbers(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "ok"}\r\n{bad json\n[1, 2]\n{"text": null}\n\n{"text": "caf\xe9"}\n{"no": 1}\n')
    (chunk,) = iter_chunks(path, "jsonl", "text", "id", chunk_rows=100)
    assert chunk.texts == ["ok"]
    assert chunk.passthrough.column("id").to_pylist() == [0]  # row number when there is no id
    reasons = {p.line: p.reason for p in chunk.problems}
    assert set(reasons) == {2, 3, 4, 6, 7}
    assert "malformed JSON" in reasons[2] and "not an object" in reasons[3] and "null" in reasons[4]
    assert "invalid UTF-8" in reasons[6] and "missing text field" in reasons[7]
    assert chunk.rows_in == 6


def test_parquet_and_csv_read_the_same_rows(tmp_path):
    table = pa.table({"id": [1, 2, 3], "text": ["a b", "123", "c"], "x": [1.5, None, 2.0]})
    pq.write_table(table, tmp_path / "in.parquet")
    import pyarrow.csv as pacsv

    pacsv.write_csv(table, tmp_path / "in.csv")
    for fmt in ("parquet", "csv"):
        chunks = list(iter_chunks(tmp_path / f"in.{fmt}", fmt, "text", "id", chunk_rows=2))
        assert [t for c in chunks for t in c.texts] == ["a b", "123", "c"]  # "123" stays text in CSV
        ids = [i for c in chunks for i in c.passthrough.column("id").to_pylist()]
        assert ids == ([1, 2, 3] if fmt == "parquet" else ["1", "2", "3"])  # CSV cells are text, kept as read


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_missing_or_non_string_text_column_is_a_file_error(tmp_path, fmt):
    bad = pa.table({"id": [1], "body": ["x"]})
    numeric = pa.table({"id": [1], "text": [5]})
    for i, table in enumerate((bad, numeric)):
        path = tmp_path / f"bad{i}.{fmt}"
        if fmt == "parquet":
            pq.write_table(table, path)
        else:
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, path)
        if fmt == "csv" and i == 1:
            continue  # CSV has no types: a column of digits is read as text on purpose
        with pytest.raises(InputError, match="text"):
            list(iter_chunks(path, fmt, "text", "id", 10))


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "e.jsonl").write_text("")
    with pytest.raises(InputError, match="empty"):
        list(iter_chunks(tmp_path / "e.jsonl", "jsonl", "text", "id", 10))
    with pytest.raises(InputError, match="no such file"):
        list(iter_chunks(tmp_path / "missing.jsonl", "jsonl", "text", "id", 10))


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "csv"])
def test_writer_is_atomic(tmp_path, fmt):
    target = tmp_path / f"out.{fmt}"
    writer = ChunkWriter(target, fmt)
    writer.write(pa.table({"id": [1, 2], "label": ["a", "b"]}))
    partial = parts_dir_for(target) if fmt == "parquet" else temp_path_for(target)
    assert not target.exists() and partial.exists()
    writer.write(pa.table({"id": [3], "label": ["c"]}))
    writer.commit()
    assert target.exists() and not partial.exists()
    if fmt == "parquet":
        assert pq.read_table(target).column("id").to_pylist() == [1, 2, 3]


def test_writer_abort_leaves_previous_output(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    writer = ChunkWriter(target, "jsonl")
    writer.write(pa.table({"id": [1]}))
    writer.abort()
    assert target.read_text() == "old\n" and not temp_path_for(target).exists()


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_writer_resumes_at_a_checkpointed_position(tmp_path, fmt):
    target = tmp_path / f"out.{fmt}"
    first = ChunkWriter(target, fmt)
    first.write(pa.table({"id": [1, 2], "label": ["a", "b"]}))
    first.flush()
    position = first.position
    first.write(pa.table({"id": [99], "label": ["lost"]}))  # written after the checkpoint: must vanish
    first.suspend()
    second = ChunkWriter(target, fmt, resume_at=position)
    second.write(pa.table({"id": [3], "label": ["c"]}))
    second.commit()
    whole = tmp_path / f"whole.{fmt}"
    once = ChunkWriter(whole, fmt)
    once.write(pa.table({"id": [1, 2], "label": ["a", "b"]}))
    once.write(pa.table({"id": [3], "label": ["c"]}))
    once.commit()
    if fmt == "parquet":
        assert pq.read_table(target).equals(pq.read_table(whole))
    else:
        assert target.read_bytes() == whole.read_bytes()
