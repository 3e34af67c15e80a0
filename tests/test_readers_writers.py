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
    partial = temp_path_for(target) if fmt == "jsonl" else parts_dir_for(target)  # CSV is staged as parts too
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


def _strict_json(line: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(line, parse_constant=refuse)


MIXED_ROWS = [  # two chunks of two rows: the first chunk's ids are all ints, the second mixes types
    {"id": 1, "text": "a", "meta": 1, "extra": {"a": 1}},
    {"id": 2, "text": "b", "meta": 2, "extra": {"b": [1, 2]}},
    {"id": "two", "text": "c", "meta": 2.5, "extra": None},
    {"id": 12345678901234567890, "text": "d", "meta": True, "extra": [1, "x"]},
]


def _write_through(tmp_path, rows, fmt, chunk_rows=2):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    target = tmp_path / f"out.{fmt}"
    writer = ChunkWriter(target, fmt)
    for chunk in iter_chunks(source, "jsonl", "text", "id", chunk_rows=chunk_rows):
        writer.write(chunk.passthrough)
    writer.commit()
    return target


def test_jsonl_values_are_written_back_exactly_as_read(tmp_path):
    target = _write_through(tmp_path, MIXED_ROWS, "jsonl")
    lines = target.read_text().splitlines()
    assert [_strict_json(line) for line in lines] == [{k: v for k, v in r.items() if k != "text"} for r in MIXED_ROWS]
    assert '"id": 1,' in lines[0] and '"id": "two"' in lines[2] and '"meta": 2.5' in lines[2]


def test_parquet_keeps_mixed_columns_as_json_values(tmp_path):
    table = pq.read_table(_write_through(tmp_path, MIXED_ROWS, "parquet"))
    assert isinstance(table.schema.field("id").type, pa.JsonType)  # Parquet's JSON logical type
    assert [json.loads(v) for v in table.column("id").to_pylist()] == [r["id"] for r in MIXED_ROWS]
    assert [None if v is None else json.loads(v) for v in table.column("extra").to_pylist()] == [
        r["extra"] for r in MIXED_ROWS]


def test_csv_cells_hold_values_without_added_quotes(tmp_path):
    import csv

    with open(_write_through(tmp_path, MIXED_ROWS, "csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == ["1", "2", "two", "12345678901234567890"]
    assert [r["meta"] for r in rows] == ["1", "2", "2.5", "true"]
    assert [json.loads(r["extra"]) if r["extra"] else None for r in rows] == [r["extra"] for r in MIXED_ROWS]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_a_type_that_settles_late_is_kept_in_every_format(tmp_path, fmt):
    rows = [{"id": i, "text": "t", "n": i} for i in range(3)] + [{"id": f"x{i}", "text": "t", "n": 0.5} for i in range(3)]
    target = _write_through(tmp_path, rows, fmt, chunk_rows=3)
    if fmt == "parquet":
        ids = [json.loads(v) for v in pq.read_table(target).column("id").to_pylist()]
    elif fmt == "csv":
        ids = [line.split(",")[0].strip('"') for line in target.read_text().splitlines()[1:]]
        ids = [int(i) if i.isdigit() else i for i in ids]
    else:
        ids = [json.loads(line)["id"] for line in target.read_text().splitlines()]
    assert ids == [r["id"] for r in rows]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_non_finite_numbers_are_written_as_null_in_strict_json(tmp_path, fmt):
    source = tmp_path / f"in.{fmt}"
    if fmt == "jsonl":
        source.write_text('{"text": "a", "x": NaN, "y": [Infinity]}\n{"text": "b", "x": -Infinity, "y": [1.5]}\n')
    else:
        pq.write_table(pa.table({"text": ["a", "b"], "x": [float("nan"), float("-inf")],
                                 "y": [[float("inf")], [1.5]]}), source)
    target = tmp_path / "out.jsonl"
    writer = ChunkWriter(target, "jsonl")
    for chunk in iter_chunks(source, fmt, "text", "id", chunk_rows=10):
        writer.write(chunk.passthrough)
    writer.commit()
    rows = [_strict_json(line) for line in target.read_text().splitlines()]
    assert [(r["x"], r["y"]) for r in rows] == [(None, [None]), (None, [1.5])]


def test_csv_ids_that_turn_to_text_after_the_first_block_are_read_as_text(tmp_path):
    path = tmp_path / "in.csv"
    rows = 60_000  # ~1.3 MB: past the 1 MB block whose first rows would type the column as int64
    path.write_text("id,text,n\n" + "".join(f"{i},good text {i},{i}\n" for i in range(rows)) + "7a,late,x\n")
    chunks = list(iter_chunks(path, "csv", "text", "id", chunk_rows=16_384))
    ids = [i for c in chunks for i in c.passthrough.column("id").to_pylist()]
    assert len(ids) == rows + 1 and ids[0] == "0" and ids[-1] == "7a"
    assert chunks[-1].passthrough.column("n").to_pylist()[-1] == "x"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_id_and_text_only_with_a_bad_text_keeps_the_other_rows(tmp_path, fmt):
    path = tmp_path / f"in.{fmt}"
    table = pa.table({"id": ["a", "b", "c"], "text": ["good", None if fmt == "parquet" else "", "bad"]})
    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, path)
    (chunk,) = iter_chunks(path, fmt, "text", "id", chunk_rows=10)
    assert chunk.texts == ["good", "bad"]
    assert chunk.passthrough.column_names == ["id"] and chunk.passthrough.column("id").to_pylist() == ["a", "c"]
    assert [(p.row, p.id) for p in chunk.problems] == [(1, "b")]


@pytest.mark.parametrize("kind", ["dictionary", "string_view", "large_string"])
def test_parquet_text_columns_of_any_string_encoding_are_text(tmp_path, kind):
    texts = pa.array(["good", "bad", "good"])
    texts = texts.dictionary_encode() if kind == "dictionary" else texts.cast(getattr(pa, kind)())
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3], "text": texts}), path)
    (chunk,) = iter_chunks(path, "parquet", "text", "id", chunk_rows=10)
    assert chunk.texts == ["good", "bad", "good"] and not chunk.problems


def test_deep_nesting_and_lone_surrogates_are_row_problems(tmp_path):
    path = tmp_path / "in.jsonl"
    deep = "[" * 100_000 + "]" * 100_000
    path.write_text(
        '{"id": 1, "text": "good"}\n'
        f'{{"id": 2, "text": "good", "x": {deep}}}\n'
        f'{{"id": 3, "text": "good", "x": {"[" * 950 + "]" * 950}}}\n'
        '{"id": "\\ud800", "text": "good"}\n'
        '{"id": 5, "text": "good", "x": {"k": "a\\udfff"}}\n'
        '{"id": 6, "text": "good", "x": "\\ud83d\\ude00"}\n'  # a surrogate pair is a real character
    )
    (chunk,) = iter_chunks(path, "jsonl", "text", "id", chunk_rows=10)
    assert chunk.passthrough.column("id").to_pylist() == [1, 6]
    reasons = {p.line: p.reason for p in chunk.problems}
    assert set(reasons) == {2, 3, 4, 5}
    assert "nested too deeply" in reasons[2] and "more than 100 deep" in reasons[3]
    assert "lone surrogate" in reasons[4] and "lone surrogate" in reasons[5]
    target = tmp_path / "out"
    from mixedclf.io.writers import ErrorLog

    log = ErrorLog(target)
    log.write([p.as_dict() for p in chunk.problems])
    log.commit()
    logged = [_strict_json(line) for line in log.target.read_text(encoding="utf-8").splitlines()]
    assert [e["id"] for e in logged] == [None, 3, "\ud800", 5]  # line 2 never parsed: no id


def test_huge_texts_are_handed_over_as_a_bounded_prefix(tmp_path):
    from mixedclf.core.preprocess import MAX_TEXT_CHARS

    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"id": 1, "text": "good " * (MAX_TEXT_CHARS // 2)}) + "\n")
    (chunk,) = iter_chunks(path, "jsonl", "text", "id", chunk_rows=10)
    assert len(chunk.texts[0]) == MAX_TEXT_CHARS + 1
    (whole,) = iter_chunks(path, "jsonl", "text", "id", chunk_rows=10, max_text_chars=None)
    assert len(whole.texts[0]) == 5 * (MAX_TEXT_CHARS // 2)
