"""Data in and out the way it is handed over: folders, globs, lists, compressed files, URIs (file://, and s3://
against a local S3 server), stdin/stdout, and folder outputs (one part per input file or per N rows)."""

from __future__ import annotations

import bz2
import gzip
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mixedclf.cli.app import app
from mixedclf.core.options import build_options
from mixedclf.errors import EXIT_PIPE_CLOSED, InputError
from mixedclf.io.readers import iter_chunks
from mixedclf.io.sinks import FolderSink
from mixedclf.io.sources import StdinInput, resolve_source

runner = CliRunner()
WORDS = ["good great", "bad awful", "fine phone", "terrible slow", "love it", "broken app", "happy room", "poor food"]


def rows(prefix: str, n: int) -> list[dict]:
    return [{"id": f"{prefix}{i}", "text": WORDS[i % len(WORDS)], "n": i} for i in range(n)]


def jsonl_bytes(items: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in items).encode()


def classify(*args, input=None):
    result = runner.invoke(app, ["classify", *[str(a) for a in args]], input=input)
    return result


def fast(model) -> list[str]:
    return ["--model", str(model), "--device", "cpu", "--mode", "gpu-only", "--quiet"]


def out_ids(path: Path) -> list[str]:
    if path.is_dir():
        return [str(r["id"]) for part in sorted(path.iterdir()) for r in pq.read_table(part).to_pylist()]
    if path.suffix == ".parquet":
        return [str(r["id"]) for r in pq.read_table(path).to_pylist()]
    return [str(json.loads(line)["id"]) for line in path.read_text().splitlines()]


@pytest.fixture()
def dataset(tmp_path) -> Path:
    """A folder as Spark leaves one: data files (one nested), a _SUCCESS marker, a hidden file, a README."""
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.jsonl").write_bytes(jsonl_bytes(rows("b", 3)))
    (folder / "a.jsonl").write_bytes(jsonl_bytes(rows("a", 4)))
    (folder / "sub" / "c.jsonl").write_bytes(jsonl_bytes(rows("c", 2)))
    (folder / "_SUCCESS").write_bytes(b"")
    (folder / ".a.jsonl.crc").write_bytes(b"\x00\x01")
    (folder / "README.txt").write_text("not data")
    return folder


# --- input: resolution and order --------------------------------------------------------------------------------

def test_a_folder_is_its_data_files_in_sorted_path_order(dataset):
    source = resolve_source(str(dataset))
    assert source.many and source.fmt == "jsonl"
    assert [Path(f.path).name for f in source.files] == ["a.jsonl", "b.jsonl", "c.jsonl"]
    chunks = list(iter_chunks(source, "jsonl", "text", "id", chunk_rows=3))
    ids = [i for c in chunks for i in c.passthrough.column("id").to_pylist()]
    assert ids == ["a0", "a1", "a2", "a3", "b0", "b1", "b2", "c0", "c1"]
    # Chunks never span files; chunk indexes and row numbers run on across them.
    assert [(c.index, c.first_row, c.rows_in, c.source) for c in chunks] == [
        (0, 0, 3, 0), (1, 3, 1, 0), (2, 4, 3, 1), (3, 7, 2, 2)]


def test_a_glob_and_a_list(dataset):
    glob_source = resolve_source(str(dataset / "*.jsonl"))
    assert [Path(f.path).name for f in glob_source.files] == ["a.jsonl", "b.jsonl"]
    listed = resolve_source([str(dataset / "b.jsonl"), str(dataset / "a.jsonl")])
    assert [Path(f.path).name for f in listed.files] == ["b.jsonl", "a.jsonl"]  # a list keeps the order given
    with pytest.raises(InputError, match="matches no file"):
        resolve_source(str(dataset / "*.parquet"))


def test_mixed_formats_and_empty_folders_are_refused(tmp_path, dataset):
    pq.write_table(pa.table({"id": ["p"], "text": ["good"]}), dataset / "p.parquet")
    with pytest.raises(InputError, match="mixes formats"):
        resolve_source(str(dataset))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no .jsonl"):
        resolve_source(str(tmp_path / "empty"))


def test_a_bad_row_is_named_by_its_file_row_and_line(tmp_path, tiny_model):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "1.jsonl").write_bytes(jsonl_bytes(rows("x", 2)))
    (folder / "2.jsonl").write_bytes(jsonl_bytes(rows("y", 1)) + b"{broken\n" + jsonl_bytes(rows("z", 1)))
    out = tmp_path / "o.jsonl"
    result = classify(folder, "-o", out, *fast(tiny_model))
    assert result.exit_code == 3, result.output
    assert out_ids(out) == ["x0", "x1", "y0", "z0"]
    (problem,) = [json.loads(line) for line in Path(f"{out}.errors.jsonl").read_text().splitlines()]
    assert problem["row"] == 3 and problem["line"] == 2 and problem["file"].endswith("2.jsonl")


# --- compressed and URIs -----------------------------------------------------------------------------------------

def _zstd(path: Path, data: bytes) -> Path:
    with pa.CompressedOutputStream(str(path), "zstd") as out:
        out.write(data)
    return path


@pytest.mark.parametrize("name, pack", [
    ("in.jsonl.gz", gzip.compress),
    ("in.jsonl.bz2", bz2.compress),
    ("in.jsonl.zst", None),
    ("in.csv.gz", gzip.compress),
])
def test_compressed_inputs_are_read_by_extension(tmp_path, tiny_model, name, pack):
    items = rows("r", 5)
    if ".csv" in name:
        buffer = pa.BufferOutputStream()
        pacsv.write_csv(pa.Table.from_pylist(items), buffer)
        data = buffer.getvalue().to_pybytes()
    else:
        data = jsonl_bytes(items)
    path = tmp_path / name
    _zstd(path, data) if pack is None else path.write_bytes(pack(data))
    out = tmp_path / "o.jsonl"
    result = classify(path, "-o", out, *fast(tiny_model))
    assert result.exit_code == 0, result.output
    assert out_ids(out) == [r["id"] for r in items]


def test_a_compressed_file_that_is_not_its_format_is_refused_before_the_model_loads(tmp_path):
    path = tmp_path / "in.jsonl.gz"
    path.write_bytes(gzip.compress(b"id,text\n1,good\n2,bad\n"))
    result = classify(path, "-o", tmp_path / "o.jsonl", "--model", tmp_path / "no-model")
    assert result.exit_code == 2 and "does not look like JSON Lines" in result.output, result.output
    path.write_bytes(b"not gzip at all")
    result = classify(path, "-o", tmp_path / "o.jsonl", "--model", tmp_path / "no-model")
    assert result.exit_code == 2 and "in.jsonl.gz" in result.output and "Traceback" not in result.output


def test_a_file_uri_keeps_its_slashes_end_to_end(tmp_path, tiny_model):
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl_bytes(rows("u", 3)))
    out, report = tmp_path / "o.jsonl", tmp_path / "r.json"
    result = classify(f"file://{path}", "-o", out, "--report", report, *fast(tiny_model))
    assert result.exit_code == 0, result.output
    assert out_ids(out) == ["u0", "u1", "u2"]
    assert json.loads(report.read_text())["input_path"] == f"file://{path}"
    opts = build_options({"input": "s3://bucket/in.jsonl", "output": tmp_path / "o.jsonl"})
    assert opts.input == "s3://bucket/in.jsonl"  # a Path would make it s3:/bucket/in.jsonl
    result = classify(f"file://{tmp_path}/missing.jsonl", "-o", out, "--model", tmp_path / "no-model")
    assert result.exit_code == 2 and f"file://{tmp_path}/missing.jsonl: no such file" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_s3_uri_against_a_local_s3_server(tmp_path, tiny_model, monkeypatch):
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        pytest.skip(f"no local S3 server: moto[server] is not installed ({exc})")
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": endpoint,
                           "AWS_EC2_METADATA_DISABLED": "true"}.items():
            monkeypatch.setenv(key, value)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="bucket")
        s3.put_object(Bucket="bucket", Key="in.jsonl", Body=jsonl_bytes(rows("s", 4)))
        s3.put_object(Bucket="bucket", Key="more/part-1.jsonl.gz", Body=gzip.compress(jsonl_bytes(rows("t", 2))))
        out = tmp_path / "o.jsonl"
        result = classify("s3://bucket/in.jsonl", "-o", out, *fast(tiny_model))
        assert result.exit_code == 0, result.output
        assert out_ids(out) == ["s0", "s1", "s2", "s3"]
        result = classify("s3://bucket/more/", "s3://bucket/in.jsonl", "-o", out, *fast(tiny_model))
        assert result.exit_code == 0, result.output
        assert out_ids(out) == ["t0", "t1", "s0", "s1", "s2", "s3"]
        result = classify("s3://bucket/nope.jsonl", "-o", out, "--model", tmp_path / "no-model")
        assert result.exit_code == 2 and "s3://bucket/nope.jsonl: no such file" in result.output, result.output
    finally:
        server.stop()


# --- stdin and stdout ----------------------------------------------------------------------------------------------

def _mixedclf(args, stdin: bytes, env_model) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mixedclf", "classify", *args, "--model", str(env_model),
                           "--device", "cpu", "--mode", "gpu-only"], input=stdin, capture_output=True, timeout=240,
                          env={**os.environ, "COLUMNS": "120"})


@pytest.mark.slow
def test_stdin_to_stdout_is_a_clean_pipe(tmp_path, tiny_model):
    items = rows("p", 5)
    data = jsonl_bytes(items[:2]) + b'{"id": "bad", "text": ""}\n' + jsonl_bytes(items[2:])
    done = _mixedclf(["-", "-o", "-"], data, tiny_model)
    assert done.returncode == 3, done.stderr.decode()
    lines = [json.loads(line) for line in done.stdout.decode().splitlines()]  # nothing but rows on stdout
    assert [r["id"] for r in lines] == [r["id"] for r in items] and all("label" in r for r in lines)
    err = done.stderr.decode()
    assert '"reason": "text is empty or whitespace only"' in err and "rows skipped" in err and "$" in err
    assert not list(tmp_path.iterdir())  # no errors file, checkpoint or partial file anywhere


@pytest.mark.slow
def test_stdin_csv_to_stdout_csv_with_a_json_summary_on_stderr(tiny_model):
    buffer = pa.BufferOutputStream()
    pacsv.write_csv(pa.Table.from_pylist(rows("c", 4)), buffer)
    done = _mixedclf(["-", "--input-format", "csv", "-o", "-", "--output-format", "csv", "--format", "json"],
                     buffer.getvalue().to_pybytes(), tiny_model)
    assert done.returncode == 0, done.stderr.decode()
    table = pacsv.read_csv(pa.BufferReader(done.stdout))
    assert table.column("id").to_pylist() == ["c0", "c1", "c2", "c3"] and "label" in table.column_names
    assert json.loads(done.stderr.decode()[done.stderr.decode().index("{"):])["rows_out"] == 4


@pytest.mark.slow
def test_a_reader_that_goes_away_gets_one_line_not_a_traceback(tmp_path, tiny_model):
    source = tmp_path / "in.jsonl"
    source.write_bytes(jsonl_bytes(rows("h", 20_000)))
    with open(source, "rb") as stdin:
        proc = subprocess.Popen([sys.executable, "-m", "mixedclf", "classify", "-", "-o", "-", "--model",
                                 str(tiny_model), "--device", "cpu", "--mode", "gpu-only", "-q", "--chunk-rows", "500"],
                                stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert json.loads(proc.stdout.readline())["id"] == "h0"
    proc.stdout.close()  # as `| head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=240) == EXIT_PIPE_CLOSED
    assert "broken pipe" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_stdin_in_process_and_the_refusals(tmp_path, tiny_model):
    out = tmp_path / "o.parquet"
    result = classify("-", "-o", out, *fast(tiny_model), input=jsonl_bytes(rows("i", 3)))
    assert result.exit_code == 0, result.output
    assert out_ids(out) == ["i0", "i1", "i2"]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no checkpoint for a run read from stdin
    for args, message in [
        (["-", "-o", out, "--resume"], "--resume cannot continue a run that read stdin"),
        (["-", "-o", "-", "--output-format", "parquet"], "Parquet cannot be written to stdout"),
        (["-", "--input-format", "parquet", "-o", "-"], "Parquet cannot be read from stdin"),
        (["-", "-o", "-"], "the input is empty"),
    ]:
        result = classify(*args, "--model", tmp_path / "no-model", input=b"")
        assert result.exit_code == 2 and message in result.output, (args, result.output)


def test_stdin_replays_the_bytes_its_checks_read_ahead():
    import io

    data = jsonl_bytes(rows("z", 20_000))  # more than the 64 KiB the checks read ahead
    stdin = StdinInput(io.BytesIO(data))
    source = resolve_source("-", stdin=stdin)
    ids = [i for c in iter_chunks(source, "jsonl", "text", "id", 4096) for i in c.passthrough.column("id").to_pylist()]
    assert ids == [f"z{i}" for i in range(20_000)]


# --- folder outputs ----------------------------------------------------------------------------------------------

def test_a_folder_output_has_one_part_per_input_file(tmp_path, dataset, tiny_model):
    out = tmp_path / "labelled"
    result = classify(dataset, "-o", out, *fast(tiny_model))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert pq.read_table(out / "part-00001.parquet").column("id").to_pylist() == ["b0", "b1", "b2"]
    assert out_ids(out) == ["a0", "a1", "a2", "a3", "b0", "b1", "b2", "c0", "c1"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the staging folder was renamed away
    # A rerun replaces the folder whole, here with --rows-per-file and JSONL parts.
    result = classify(dataset, "-o", out, "--rows-per-file", "4", "--output-format", "jsonl", *fast(tiny_model))
    assert result.exit_code == 0, result.output
    parts = sorted(out.iterdir())
    assert [p.name for p in parts] == ["part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"]
    assert [len(p.read_text().splitlines()) for p in parts] == [4, 4, 1]
    assert [json.loads(line)["id"] for p in parts for line in p.read_text().splitlines()][:5] == [
        "a0", "a1", "a2", "a3", "b0"]


def test_a_folder_output_is_refused_where_it_would_destroy_data(tmp_path, dataset, tiny_model):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    result = classify(dataset, "-o", taken, "--model", tmp_path / "no-model")
    assert result.exit_code == 2 and "holds other files" in result.output
    assert (taken / "notes.txt").read_text() == "mine"
    result = classify(dataset, "-o", dataset / "sub", "--model", tmp_path / "no-model")
    assert result.exit_code == 2 and "holds the input file" in result.output
    result = classify(dataset, "-o", "-", "--rows-per-file", "2", "--model", tmp_path / "no-model")
    assert result.exit_code == 2 and "--rows-per-file needs a folder" in result.output


def test_a_failed_run_leaves_no_folder(tmp_path, tiny_model):
    source = tmp_path / "in.jsonl"
    source.write_bytes(jsonl_bytes(rows("f", 2)) + b'{"id": "x", "text": ""}\n')
    out = tmp_path / "out"
    result = classify(source, "-o", out, "--on-error", "fail", *fast(tiny_model))
    assert result.exit_code == 1 and "row 2" in result.output
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_folder_sink_resumes_from_its_staged_chunks(tmp_path):
    target = tmp_path / "out"
    sink = FolderSink(target, "parquet", rows_per_file=None)
    for source, start in ((0, 0), (0, 2), (1, 4)):
        sink.write(pa.table({"id": [start, start + 1]}), source)
    sink.suspend()
    resumed = FolderSink(target, "parquet", resume_at=2)  # the checkpoint saw two chunks written
    assert resumed.position == 2
    resumed.write(pa.table({"id": [40, 41]}), 1)
    resumed.commit()
    assert pq.read_table(target / "part-00000.parquet").column("id").to_pylist() == [0, 1, 2, 3]
    assert pq.read_table(target / "part-00001.parquet").column("id").to_pylist() == [40, 41]


def test_progress_totals_cover_every_file(tmp_path):
    from mixedclf.engines.progress import source_rows

    folder = tmp_path / "pq"
    folder.mkdir()
    for i, n in enumerate((3, 5)):
        pq.write_table(pa.table({"id": list(range(n)), "text": ["x"] * n}), folder / f"{i}.parquet")
    assert source_rows(resolve_source(str(folder))) == (8, True)
    (tmp_path / "a.jsonl").write_bytes(jsonl_bytes(rows("a", 3)))
    (tmp_path / "b.jsonl").write_bytes(jsonl_bytes(rows("b", 4)))
    assert source_rows(resolve_source(str(tmp_path / "*.jsonl"))) == (7, True)
    # A compressed file that decompresses within one sample is counted exactly (issue 24: a larger one gets a
    # sampled-ratio estimate marked "~", pinned by test_cli_output's compressed-input test).
    (tmp_path / "c.jsonl.gz").write_bytes(gzip.compress(jsonl_bytes(rows("c", 4))))
    assert source_rows(resolve_source(str(tmp_path / "c.jsonl.gz"))) == (4, True)
    assert source_rows(resolve_source([str(tmp_path / "a.jsonl"), str(tmp_path / "c.jsonl.gz")])) == (7, True)
    # Where nothing tells the rows (stdin) the bar has no total: none is made up.
    assert source_rows(resolve_source("-", stdin=StdinInput())).rows is None
