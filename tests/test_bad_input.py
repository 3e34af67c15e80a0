"""Issue 5: every kind of bad input gets a clear error, and no row is lost without a trace."""

import gzip
import json
import random

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mixedclf.cli.app import app
from mixedclf.costs.report import load_report

runner = CliRunner()


def classify(tmp_path, source, model, *extra, out_name="out.jsonl"):
    out = tmp_path / out_name
    report = tmp_path / "report.json"
    args = ["classify", str(source), "-o", str(out), "--model", str(model), "--mode", "gpu-only",
            "--report", str(report), "-q", *map(str, extra)]
    return runner.invoke(app, args), out, report


@pytest.mark.slow
def test_row_level_problems_are_skipped_logged_and_counted(tmp_path, tiny_model):
    lines = [
        b'\xef\xbb\xbf{"id": "bom", "text": "good food"}\r\n',  # BOM and CRLF: a fine row
        b"{not json\n",
        b"[1, 2, 3]\n",
        b'{"id": "no-text", "body": "x"}\n',
        b'{"id": "null", "text": null}\n',
        b'{"id": "number", "text": 42}\n',
        b'{"id": "list", "text": ["a"]}\n',
        b'{"id": "object", "text": {"a": 1}}\n',
        b'{"id": "empty", "text": ""}\n',
        b'{"id": "blank", "text": "  \\t "}\n',
        b'{"id": "utf8", "text": "caf\xe9"}\n',
        b'{"id": "nul", "text": "bad\\u0000 food"}\n',
        ('{"id": "huge", "text": "%s"}\n' % ("good " * 200_000)).encode(),
        b'{"id": "last", "text": "awful"}\n',
    ]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(lines))
    result, out, report_path = classify(tmp_path, source, tiny_model)
    assert result.exit_code == 3, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["bom", "nul", "huge", "last"]
    huge = rows[2]
    assert huge["truncated"] is True and huge["token_count"] == 64 and huge["word_count"] == 200_000
    errors = [json.loads(line) for line in (tmp_path / "out.jsonl.errors.jsonl").read_text().splitlines()]
    assert [e["line"] for e in errors] == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert {e["id"] for e in errors if e["id"]} >= {"no-text", "null", "number", "list", "object", "empty", "blank"}
    report = load_report(report_path)
    assert report.rows_in == 14 and report.rows_out == 4 and report.rows_errored == 10
    assert report.rows_in == report.rows_out + report.rows_errored
    # --quiet prints no summary on success (issue 24); the skipped rows are its one line, naming where they went
    assert result.output.strip() == f"10 rows skipped: see {out}.errors.jsonl"


def test_a_chunk_of_only_bad_rows_passes_through_the_worker_pool(tmp_path, tiny_model):
    rows = ['{"id": "a", "text": "good"}', "{oops", '{"id": "b", "text": ""}', '{"id": "c", "text": "bad"}']
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["classify", str(source), "-o", str(out), "--model", str(tiny_model), "--mode",
                                 "mixed", "--cpu-workers", "1", "--chunk-rows", "1", "-q"])
    assert result.exit_code == 3, result.output
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["a", "c"]


def test_on_error_fail_stops_and_writes_nothing(tmp_path, tiny_model):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "good"}\n{"text": null}\n')
    result, out, _ = classify(tmp_path, source, tiny_model, "--on-error", "fail")
    assert result.exit_code == 1
    assert "row 1 (line 2): text is null" in result.output
    assert not out.exists() and not (tmp_path / "out.jsonl.errors.jsonl").exists()


def test_duplicate_ids_are_kept_and_reported(tmp_path, tiny_model):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": i % 3, "text": f"good {i}"}) + "\n" for i in range(7)))
    result, out, report = classify(tmp_path, source, tiny_model)
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 7
    assert load_report(report).extra["duplicate_ids"] == 4


def _text(path, text):
    path.write_text(text)
    return path


def _bytes(path, data):
    path.write_bytes(data)
    return path


def _write(path, table):
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        pacsv.write_csv(table, path)
    return path


@pytest.mark.parametrize(
    "name, make, message",
    [
        ("empty.jsonl", lambda p: _text(p, ""), "the file is empty"),
        ("notext.parquet", lambda p: _write(p, pa.table({"id": [1], "body": ["x"]})), "no column 'text'"),
        ("numeric.parquet", lambda p: _write(p, pa.table({"id": [1], "text": [3.5]})), "not text"),
        ("notext.csv", lambda p: _write(p, pa.table({"id": [1], "body": ["x"]})), "no column 'text'"),
        ("data.txt", lambda p: _text(p, "hello"), "unsupported extension"),
        ("missing.jsonl", lambda p: p, "no such file"),
        ("blank.jsonl", lambda p: _text(p, "\n  \n\t\r\n"), "the file is empty (whitespace only)"),
        ("blank.csv", lambda p: _text(p, "   \n\n"), "the file is empty (whitespace only)"),
        ("packed.jsonl", lambda p: _bytes(p, gzip.compress(b'{"text": "good"}\n' * 50)), "looks like gzip"),
        ("packed.csv", lambda p: _bytes(p, gzip.compress(b"id,text\n1,good\n" * 50)), "looks like gzip"),
        ("wide.jsonl", lambda p: _bytes(p, '{"text": "good"}\n'.encode("utf-16")), "looks like UTF-16"),
        ("wide.csv", lambda p: _bytes(p, "id,text\n1,good\n".encode("utf-16-le")), "looks like UTF-16"),
        ("noise.jsonl", lambda p: _bytes(p, random.Random(0).randbytes(20_000)), "looks like binary data"),
        ("latin1.jsonl", lambda p: _bytes(p, b'{"text": "caf\xe9"}\n' * 30), "is not UTF-8"),
        ("table.jsonl", lambda p: _text(p, "id,text\n1,good\n2,bad\n"), "does not look like JSON Lines"),
        ("body.jsonl", lambda p: _text(p, '{"id": 1, "body": "good"}\n' * 30),
         "none of the first 20 lines has a field 'text' (fields: body, id)"),
    ],
)
def test_file_level_problems_exit_2_before_loading_the_model(tmp_path, name, make, message):
    source = make(tmp_path / name)
    # A model folder that does not exist proves the input was checked first, before any expensive stage.
    result, out, _ = classify(tmp_path, source, tmp_path / "no-model")
    assert result.exit_code == 2, result.output
    assert message in result.output and str(source.name) in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_output_problems(tmp_path, tiny_model):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "good"}\n')
    result = runner.invoke(app, ["classify", str(source), "-o", str(source), "--model", str(tiny_model)])
    assert result.exit_code == 2 and "output is the input" in result.output
    result = runner.invoke(app, ["classify", str(source), "-o", str(tmp_path / "nope" / "o.jsonl")])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = runner.invoke(app, ["classify", str(source), "-o", str(tmp_path / "o.xlsx")])
    assert result.exit_code == 2 and "unsupported extension" in result.output
    (tmp_path / "dir.jsonl").mkdir()
    result = runner.invoke(app, ["classify", str(source), "-o", str(tmp_path / "dir.jsonl")])
    assert result.exit_code == 2 and "is a folder" in result.output


def test_bad_option_values_are_one_line(tmp_path, tiny_model):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "good"}\n')
    result, _, _ = classify(tmp_path, source, tiny_model, "--batch-size", "0")
    assert result.exit_code == 2 and "--batch-size" in result.output
    result, _, _ = classify(tmp_path, source, tiny_model, "--profile", "nope")
    assert result.exit_code == 2 and "nope" in result.output


def _strict_rows(path):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("name", ["in.csv", "in.parquet"])
def test_id_and_text_only_file_with_one_empty_text_skips_that_row(tmp_path, tiny_model, name):
    source = _write(tmp_path / name, pa.table({"id": ["a", "b", "c"], "text": ["good", None, "bad"]}))
    result, out, report = classify(tmp_path, source, tiny_model)
    assert result.exit_code == 3, result.output
    assert [r["id"] for r in _strict_rows(out)] == ["a", "c"]
    assert [e["id"] for e in _strict_rows(tmp_path / "out.jsonl.errors.jsonl")] == ["b"]
    assert load_report(report).rows_in == 3


@pytest.mark.parametrize("out_name", ["out.jsonl", "out.parquet"])
def test_ids_and_columns_come_back_as_read_and_as_strict_json(tmp_path, tiny_model, out_name):
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"id": 1, "text": "good", "x": NaN, "tags": ["a"]}\n'
        '{"id": "two", "text": "bad", "x": 1.5, "tags": {"k": 1}}\n'
        '{"id": 3.25, "text": "fine", "x": Infinity, "tags": null}\n'
    )
    result, out, _ = classify(tmp_path, source, tiny_model, "--chunk-rows", "1", out_name=out_name)
    assert result.exit_code == 0, result.output
    if out.suffix == ".parquet":
        table = pq.read_table(out)
        rows = [{"id": json.loads(i), "tags": None if t is None else json.loads(t)}
                for i, t in zip(table.column("id").to_pylist(), table.column("tags").to_pylist())]
    else:
        rows = _strict_rows(out)
        assert [r["x"] for r in rows] == [None, 1.5, None]  # non-finite numbers: null
    assert [r["id"] for r in rows] == [1, "two", 3.25]
    assert [r["tags"] for r in rows] == [["a"], {"k": 1}, None]


def test_unwritable_values_are_row_errors_not_tracebacks(tmp_path, tiny_model):
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"id": 1, "text": "good"}\n'
        + '{"id": 2, "text": "good", "x": ' + "[" * 50_000 + "]" * 50_000 + "}\n"
        + '{"id": "\\udc00", "text": "good"}\n'
        + '{"id": 4, "text": "good", "note": "x\\ud800"}\n'
    )
    result, out, _ = classify(tmp_path, source, tiny_model)
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    assert [r["id"] for r in _strict_rows(out)] == [1]
    errors = _strict_rows(tmp_path / "out.jsonl.errors.jsonl")
    assert [e["line"] for e in errors] == [2, 3, 4]
    assert "nested too deeply" in errors[0]["reason"] and "lone surrogate" in errors[2]["reason"]
    assert errors[1]["id"] == "\udc00"  # logged as the escape it was read as


def test_a_5_mb_line_is_cut_early_and_flagged(tmp_path, tiny_model):
    from mixedclf.core.preprocess import MAX_TEXT_CHARS

    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "big", "text": "' + "good food " * 500_000 + '"}\n{"id": "small", "text": "bad"}\n')
    result, out, _ = classify(tmp_path, source, tiny_model)
    assert result.exit_code == 0, result.output
    big, small = _strict_rows(out)
    assert big["truncated"] is True and big["token_count"] == 64
    assert big["char_count"] == MAX_TEXT_CHARS - 1  # the kept prefix, cleaned (its last space stripped)
    assert big["word_count"] == MAX_TEXT_CHARS // 5
    assert small["truncated"] is False and small["char_count"] == 3


@pytest.mark.parametrize("option", ["--keep-text", "--clean=none"])
def test_a_lone_surrogate_in_a_text_written_or_tokenized_as_read_is_a_row_error(tmp_path, tiny_model, option):
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "text": "good \\ud800 food"}\n{"id": 2, "text": "bad"}\n')
    result, out, _ = classify(tmp_path, source, tiny_model, option)
    assert result.exit_code == 3, result.output
    assert [r["id"] for r in _strict_rows(out)] == [2]
    assert "lone surrogate" in _strict_rows(tmp_path / "out.jsonl.errors.jsonl")[0]["reason"]
    result, out, _ = classify(tmp_path, source, tiny_model)  # cleaning drops it: the row is classified
    assert result.exit_code == 0 and len(_strict_rows(out)) == 2
