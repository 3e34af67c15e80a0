"""Nothing lost, round two (issue 25): columns that appear late, input columns named like output columns, folders
with links, inputs that change under the run, the output's own files as inputs. Every test compares what went in
with what came out: ids in == ids out + ids in the errors file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mixedclf.cli.app import app

runner = CliRunner()
WORDS = ["good great", "bad awful", "fine phone", "terrible slow", "love it", "broken app"]


def classify(*args):
    return runner.invoke(app, ["classify", *[str(a) for a in args]])


def fast(model) -> list[str]:
    return ["--model", str(model), "--device", "cpu", "--mode", "gpu-only", "--quiet"]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_rows(path: Path) -> list[dict]:
    if path.is_dir():
        return [r for part in sorted(path.iterdir()) for r in read_rows(part)]
    if path.suffix == ".csv":
        with open(path, newline="") as handle:
            return list(csv.DictReader(handle))
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    return [json.loads(line) for line in path.read_text().splitlines()]


def errors_ids(output: Path) -> list[str]:
    errors = output.with_name(output.name + ".errors.jsonl")
    return [str(json.loads(line)["id"]) for line in errors.read_text().splitlines()] if errors.exists() else []


# --- 1: CSV output keeps columns that first appear late ---------------------------------------------------------

def test_a_csv_output_keeps_a_key_that_first_appears_after_the_first_chunk(tmp_path, tiny_model):
    rows = [{"id": i, "text": WORDS[i % 6], **({"late": f"L{i}"} if i >= 200 else {})} for i in range(300)]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.csv"
    result = classify(source, "-o", out, "--chunk-rows", "64", "--first-chunk-rows", "64", *fast(tiny_model))
    assert result.exit_code == 0, result.output
    got = read_rows(out)
    assert [r["id"] for r in got] == [str(i) for i in range(300)]
    assert [r["late"] for r in got] == [""] * 200 + [f"L{i}" for i in range(200, 300)]


@pytest.mark.parametrize("output", ["out.csv", "folder"])
def test_a_csv_output_keeps_a_column_only_a_later_file_of_a_folder_has(tmp_path, tiny_model, output):
    write_jsonl(tmp_path / "in" / "a.jsonl", [{"id": f"a{i}", "text": WORDS[i % 6]} for i in range(5)])
    write_jsonl(tmp_path / "in" / "b.jsonl", [{"id": f"b{i}", "text": WORDS[i % 6], "extra": i} for i in range(5)])
    out = tmp_path / output
    extra = ["--output-format", "csv", "--rows-per-file", "100"] if output == "folder" else []
    result = classify(tmp_path / "in", "-o", out, *extra, *fast(tiny_model))
    assert result.exit_code == 0, result.output
    got = read_rows(out)
    assert [r["id"] for r in got] == [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)]
    assert [r["extra"] for r in got] == [""] * 5 + [str(i) for i in range(5)]


def test_csv_to_stdout_refuses_a_late_column_by_name(tmp_path, tiny_model):
    rows = [{"id": i, "text": WORDS[i % 6], **({"late": 1} if i >= 100 else {})} for i in range(150)]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    result = classify(source, "-o", "-", "--output-format", "csv", "--chunk-rows", "50", "--first-chunk-rows", "50",
                      *fast(tiny_model))
    assert result.exit_code == 1
    assert "'late'" in result.output and "stdout" in result.output


# --- 2: an input column named like an output column is never overwritten -------------------------------------

@pytest.mark.parametrize("column", ["label", "score", "confidence", "model", "word_count", "truncated",
                                    "score_POSITIVE"])
def test_an_input_column_named_like_an_output_column_is_refused_then_kept_with_a_prefix(tmp_path, tiny_model,
                                                                                         column):
    rows = [{"id": i, "text": WORDS[i % 6], column: f"gold{i}"} for i in range(20)]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    refused = classify(source, "-o", out, "--all-scores", *fast(tiny_model))
    assert refused.exit_code == 2 and repr(column) in refused.output and "--output-prefix" in refused.output
    assert not out.exists()
    kept = classify(source, "-o", out, "--all-scores", "--output-prefix", "pred_", *fast(tiny_model))
    assert kept.exit_code == 0, kept.output
    got = read_rows(out)
    assert [r[column] for r in got] == [f"gold{i}" for i in range(20)]
    assert [r["id"] for r in got] == list(range(20)) and all("pred_label" in r and "pred_score" in r for r in got)


@pytest.mark.parametrize("options, column", [(["--text-field", "label", "--keep-text"], "label"),
                                             (["--text-field", "body", "--id-field", "score"], "score")])
def test_the_text_or_id_column_named_like_an_output_column_is_refused(tmp_path, tiny_model, options, column):
    rows = [{"label": WORDS[i % 6], "body": WORDS[i % 6], "score": 100 + i} for i in range(10)]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    refused = classify(source, "-o", out, *options, *fast(tiny_model))
    assert refused.exit_code == 2 and repr(column) in refused.output and not out.exists()
    kept = classify(source, "-o", out, *options, "--output-prefix", "p_", *fast(tiny_model))
    assert kept.exit_code == 0, kept.output
    got = read_rows(out)
    if column == "label":
        assert [r["label"] for r in got] == [WORDS[i % 6] for i in range(10)]
    else:
        assert [r["score"] for r in got] == [100 + i for i in range(10)]


# --- 5, 6: the output's folder and the run's own files ----------------------------------------------------------

def test_a_part_named_subfolder_of_an_output_folder_is_never_deleted(tmp_path, tiny_model):
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": WORDS[i % 6]} for i in range(5)])
    out = tmp_path / "out"
    (out / "part-00001").mkdir(parents=True)
    (out / "part-00001" / "keep.txt").write_text("precious")
    result = classify(source, "-o", out, *fast(tiny_model))
    assert result.exit_code == 2 and "part-00001" in result.output
    assert (out / "part-00001" / "keep.txt").read_text() == "precious"
    (out / "part-00001" / "keep.txt").unlink()
    (out / "part-00001").rmdir()
    (out / "part-00000.parquet").write_bytes(b"an earlier run's part")  # what a run writes: replaced
    assert classify(source, "-o", out, *fast(tiny_model)).exit_code == 0
    assert [r["id"] for r in read_rows(out)] == list(range(5))


@pytest.mark.parametrize("name", ["out.jsonl.errors.jsonl", ".out.jsonl.partial", ".out.jsonl.lock",
                                  ".out.jsonl.checkpoint.json", ".out.jsonl.errors.jsonl.partial"])
def test_an_input_that_is_one_of_the_runs_own_files_is_refused_untouched(tmp_path, tiny_model, name):
    source = write_jsonl(tmp_path / name, [{"id": i, "text": WORDS[i % 6]} for i in range(5)])
    before = source.read_bytes()
    result = classify(source, "-o", tmp_path / "out.jsonl", "--input-format", "jsonl", *fast(tiny_model))
    assert result.exit_code == 2 and "this run's" in result.output, result.output
    assert source.read_bytes() == before and not (tmp_path / "out.jsonl").exists()


# --- 3: links inside an input folder ------------------------------------------------------------------------------

@pytest.fixture()
def linked_folder(tmp_path) -> Path:
    """50 rows in one real file; a loop (sub/up -> ..), a second name for the file, a link to nothing and two
    links that point at each other."""
    folder = tmp_path / "data"
    write_jsonl(folder / "a.jsonl", [{"id": f"a{i}", "text": WORDS[i % 6]} for i in range(50)])
    (folder / "sub").mkdir()
    (folder / "sub" / "up").symlink_to("..")
    (folder / "b.jsonl").symlink_to("a.jsonl")
    (folder / "gone.jsonl").symlink_to("missing.jsonl")
    (folder / "loop1.jsonl").symlink_to("loop2.jsonl")
    (folder / "loop2.jsonl").symlink_to("loop1.jsonl")
    return folder


@pytest.mark.parametrize("spec", ["data", "data/**/*.jsonl", "data/**"])
def test_each_real_file_of_a_linked_folder_is_read_once_and_each_odd_link_is_said(tmp_path, tiny_model,
                                                                                 linked_folder, spec):
    out = tmp_path / "out.jsonl"
    result = classify(str(tmp_path / spec), "-o", out, *fast(tiny_model))
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in read_rows(out)] == [f"a{i}" for i in range(50)]
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert any("1 link to nothing" in line for line in warnings), warnings
    assert any("2 looping links" in line for line in warnings), warnings
    assert any("read once" in line for line in warnings), warnings


def test_a_glob_through_several_loops_ends_quickly(tmp_path):
    import subprocess
    import sys

    folder = tmp_path / "data"
    write_jsonl(folder / "a.jsonl", [{"id": 1, "text": "good"}])
    for name in "abcdef":  # glob.glob would walk 6^40 paths
        (folder / f"loop{name}").symlink_to(".")
    code = ("import sys; from mixedclf.io.sources import resolve_source; "
            "print([f.name for f in resolve_source(sys.argv[1]).files])")
    try:
        done = subprocess.run([sys.executable, "-c", code, str(folder / "**" / "*.jsonl")], capture_output=True,
                              text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("resolving the glob did not end within 60 s")
    assert done.stdout.strip() == repr([str(folder / "a.jsonl")]), done.stderr


# --- 4: an input that changes while it is read ---------------------------------------------------------------------

def _big(tmp_path, n=3000) -> Path:
    return write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": WORDS[i % 6] + " phone" * 5} for i in range(n)])


@pytest.mark.parametrize("change", ["truncate", "grow", "replace"])
def test_a_file_that_changes_while_it_is_read_stops_the_reader(tmp_path, change):
    import os

    from mixedclf.errors import InputChanged
    from mixedclf.io.readers import iter_chunks
    from mixedclf.io.sources import resolve_source

    path = _big(tmp_path)
    chunks = iter_chunks(resolve_source(str(path)), "jsonl", "text", "id", chunk_rows=500)
    assert next(chunks).rows_in == 500
    stat = path.stat()
    if change == "truncate":
        os.truncate(path, stat.st_size // 2 + 7)  # the cut lands inside a line: the old code skipped 1 row
    elif change == "grow":
        with open(path, "a") as handle:
            handle.write(json.dumps({"id": "late", "text": "good"}) + "\n")
    else:  # same bytes, same mtime, another inode
        other = tmp_path / "other.jsonl"
        other.write_bytes(path.read_bytes())
        os.utime(other, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        os.replace(other, path)
    with pytest.raises(InputChanged, match="changed while the run read it"):
        list(chunks)


def test_a_file_truncated_mid_run_exits_5_and_commits_nothing(tmp_path, tiny_model, monkeypatch):
    import os

    import mixedclf.io.readers as readers

    path = _big(tmp_path)
    real = readers._iter_file

    def cut_after_first_chunk(*args, **kwargs):
        for number, chunk in enumerate(real(*args, **kwargs)):
            yield chunk
            if number == 0:
                os.truncate(path, path.stat().st_size // 2 + 7)

    monkeypatch.setattr(readers, "_iter_file", cut_after_first_chunk)
    out = tmp_path / "out.jsonl"
    result = classify(path, "-o", out, "--chunk-rows", "500", "--first-chunk-rows", "500", *fast(tiny_model))
    assert result.exit_code == 5, result.output
    assert "changed while the run read it" in result.output and "rows skipped" not in result.output
    assert not out.exists() and errors_ids(out) == []


# --- 8: --resume of a folder input checks each file's content --------------------------------------------------

def test_resume_of_a_folder_refuses_a_file_edited_with_the_same_size_and_mtime(tmp_path, tiny_model, monkeypatch):
    import os
    import signal

    from mixedclf.engines.local import LocalEngine

    folder = tmp_path / "data"
    for name in ("a", "b"):
        write_jsonl(folder / f"{name}.jsonl", [{"id": f"{name}{i}", "text": WORDS[i % 6]} for i in range(40)])
    out = tmp_path / "out.jsonl"
    args = [folder, "-o", out, "--chunk-rows", "20", "--first-chunk-rows", "20", *fast(tiny_model)]
    real = LocalEngine._write_chunk  # the stage contract's output step, on the writer thread

    def write_then_stop(self, chunk, *rest):
        real(self, chunk, *rest)
        if chunk.index + 1 >= 2:
            self.signals.signum = signal.SIGINT

    with monkeypatch.context() as m:
        m.setattr(LocalEngine, "_write_chunk", write_then_stop)
        assert classify(*args).exit_code == 130
    edited = folder / "b.jsonl"
    data, times = edited.read_bytes(), edited.stat()
    edited.write_bytes(data.replace(b'"b39"', b'"X39"'))  # same size, same inode
    os.utime(edited, ns=(times.st_atime_ns, times.st_mtime_ns))
    result = classify(*args, "--resume")
    assert result.exit_code == 2 and "another input" in result.output, result.output
    edited.write_bytes(data)
    os.utime(edited, ns=(times.st_atime_ns, times.st_mtime_ns))
    resumed = classify(*args, "--resume")  # the same bytes again: the checkpoint still holds
    assert resumed.exit_code == 0, resumed.output
    assert [r["id"] for r in read_rows(out)] == [f"a{i}" for i in range(40)] + [f"b{i}" for i in range(40)]


# --- 7: --engine ray and a user column named `path` ---------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_ray_refuses_a_folder_whose_rows_have_a_path_column(tmp_path, fmt):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from mixedclf.core.options import build_options
    from mixedclf.engines.ray.driver import RayEngine
    from mixedclf.errors import InputError

    folder = tmp_path / "data"
    folder.mkdir()
    for name, extra in (("a", {}), ("b", {"path": "/home/me/x"})):
        # JSONL: the key in one row only; a table's column is in every row
        rows = [{"id": f"{name}{i}", "text": WORDS[i % 6], **(extra if i == 3 or fmt != "jsonl" else {})}
                for i in range(5)]
        if fmt == "jsonl":
            write_jsonl(folder / f"{name}.jsonl", rows)
        else:
            table = pa.Table.from_pylist(rows)
            (pq.write_table if fmt == "parquet" else pacsv.write_csv)(table, folder / f"{name}.{fmt}")
    opts = build_options({"input": str(folder), "output": str(tmp_path / "out.jsonl"), "engine": "ray"})
    with pytest.raises(InputError, match="'path'.*--engine local|'path'"):
        RayEngine(opts)._check()
    (folder / f"b.{fmt}").unlink()  # without the column: the checks pass
    RayEngine(opts)._check()


# --- 15 (part): closed stdin or stdout, a binary config file, an output URI ---------------------------------------

@pytest.mark.parametrize("args, redirect, code, words", [
    (["-", "-o", "{tmp}/out.jsonl"], "<&-", 2, "stdin is closed"),
    (["{tmp}/in.jsonl", "-o", "-"], ">&-", 2, "stdout is closed"),
    (["{tmp}/in.jsonl", "-o", "{tmp}/out.jsonl", "-f", "json"], ">&-", 0, '"rows_out": 1'),  # the summary: stderr
])
@pytest.mark.slow
def test_a_closed_stdin_or_stdout_is_one_line_and_exit_2(tmp_path, tiny_model, args, redirect, code, words):
    import os
    import shlex
    import subprocess
    import sys

    import mixedclf  # the subprocess runs the code under test, wherever it was imported from

    write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "good"}])
    argv = [sys.executable, "-m", "mixedclf", "classify", *[a.format(tmp=tmp_path) for a in args], *fast(tiny_model)]
    done = subprocess.run(["bash", "-c", shlex.join(argv) + " " + redirect], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(Path(mixedclf.__file__).parents[1])})
    assert done.returncode == code, done.stderr
    assert words in done.stderr and "internal error" not in done.stderr
    if code == 2:
        assert len(done.stderr.strip().splitlines()) == 1


def test_a_binary_config_file_is_a_usage_error(tmp_path, tiny_model):
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "good"}])
    config = tmp_path / "c.toml"
    config.write_bytes(b"\xfe\xff\x00binary\x89PNG")
    result = runner.invoke(app, ["classify", str(source), "-o", str(tmp_path / "o.jsonl"), "--config", str(config),
                                 *fast(tiny_model)])
    assert result.exit_code == 2 and "not valid TOML" in result.output, result.output


def test_a_file_uri_output_is_written_there_and_other_uris_are_refused(tmp_path, tiny_model):
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": WORDS[i % 6]} for i in range(5)])
    result = classify(source, "-o", f"file://{tmp_path}/out.jsonl", *fast(tiny_model))
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in read_rows(tmp_path / "out.jsonl")] == list(range(5))
    refused = classify(source, "-o", "s3://bucket/out.jsonl", *fast(tiny_model))
    assert refused.exit_code == 2 and "output URIs" in refused.output, refused.output


# --- 14: a run that fails with work in the pool ends it before exit ----------------------------------------------

def test_a_run_failing_with_work_in_flight_leaves_no_pool_thread_behind(tmp_path, tiny_model, monkeypatch):
    from concurrent.futures import process

    import mixedclf.io.readers as readers
    from mixedclf.core.options import build_options
    from mixedclf.engines.local import LocalEngine
    from mixedclf.errors import InputChanged

    folder = tmp_path / "in"
    for k in range(4):
        write_jsonl(folder / f"f{k}.jsonl", [{"id": f"{k}-{i}", "text": WORDS[i % 6] * 20} for i in range(3000)])
    real = readers._iter_file

    def vanish_later_files(file, *args, **kwargs):
        yield from real(file, *args, **kwargs)
        if file.name.endswith("f0.jsonl"):
            for k in (2, 3):
                (folder / f"f{k}.jsonl").unlink()

    monkeypatch.setattr(readers, "_iter_file", vanish_later_files)
    opts = build_options({"input": str(folder), "output": str(tmp_path / "out.jsonl"), "model": str(tiny_model),
                          "device": "cpu", "cpu_workers": 2, "chunk_rows": 500, "first_chunk_rows": 500})
    with pytest.raises(InputChanged, match="removed"):
        LocalEngine(opts).run()
    # concurrent.futures' exit hook wakes every manager thread still registered; one torn down at the same
    # moment raised "OSError: [Errno 9] Bad file descriptor" after the run's error line.
    alive = [t for t in process._threads_wakeups if t.is_alive()]
    assert alive == []
    assert not (tmp_path / "out.jsonl").exists()


def test_a_file_removed_between_listing_and_stat_is_a_change_not_a_missing_path(tmp_path, monkeypatch):
    from mixedclf.errors import InputChanged
    from mixedclf.io import sources

    folder = tmp_path / "in"
    write_jsonl(folder / "a.jsonl", [{"id": 1, "text": "good"}])
    listed = sources.folder_files

    def then_one_vanishes(root, links):
        return [*listed(root, links), str(folder / "b.jsonl")]  # listed, then removed before its stat

    monkeypatch.setattr(sources, "folder_files", then_one_vanishes)
    with pytest.raises(InputChanged, match="removed while the run listed"):
        sources.resolve_source(str(folder))
