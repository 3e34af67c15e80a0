"""--engine ray: the same predictions, files and report shape as the local engine, on a Ray started here."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE_JSONL, write_jsonl

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from mixedclf.core.options import ClassifyOptions  # noqa: E402
from mixedclf.engines.run import classify_file  # noqa: E402
from mixedclf.errors import InputError, RowError  # noqa: E402

pytestmark = pytest.mark.slow  # starts a Ray node

# Several blocks, parts and micro-batches out of 300 rows. No prediction cache: one shared by the module's runs
# would answer a run's rows from an earlier one (the cache's own tests below name theirs).
LIGHT = {"chunk_rows": 64, "batch_size": 16, "no_cache": True}


@pytest.fixture(scope="module")
def local_ray():
    """A small Ray on this machine for the whole module: the engine joins it and must leave it running."""
    if ray.is_initialized():
        yield
        return
    ray.init(num_cpus=2, object_store_memory=128 * 1024**2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING, runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1"}})
    try:
        yield
    finally:
        ray.shutdown()


def run(engine: str, inp: Path, out: Path, model: Path, **kw):
    opts = ClassifyOptions(input=inp, output=out, model=str(model), engine=engine, device="cpu", **{**LIGHT, **kw})
    return classify_file(opts)


def rows_of(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if path.suffix == ".csv":
        return pacsv.read_csv(path).to_pylist()
    return pq.read_table(path).to_pylist()


def assert_same_rows(local: list[dict], other: list[dict]) -> None:
    assert len(local) == len(other)
    for a, b in zip(local, other):
        assert list(a) == list(b)  # same columns in the same order
        assert a["id"] == b["id"] and a["label"] == b["label"], (a["id"], b["id"])
        assert b["score"] == pytest.approx(a["score"], abs=1e-5)
        assert {k: v for k, v in a.items() if not k.startswith("score")} == {
            k: v for k, v in b.items() if not k.startswith("score")
        }


# Connecting: these run first, before the module's own Ray is started in this process.

def _cli_with_ray_temp_dir(args: list, stale: str | None, env_over: dict, timeout: float = 300):
    """`mixedclf classify ... --engine ray` in a fresh process whose Ray temp folder (RAY_TMPDIR) holds, when
    `stale` is given, a current-cluster file naming that address: what a Ray killed uncleanly leaves behind."""
    import shutil
    import subprocess
    import sys
    import tempfile
    import time

    ray_tmp = Path(tempfile.mkdtemp(prefix="mxr", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    try:
        if stale:
            (ray_tmp / "ray").mkdir()
            (ray_tmp / "ray" / "ray_current_cluster").write_text(stale)
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env.update(RAY_TMPDIR=str(ray_tmp), HF_HUB_OFFLINE="1", **env_over)
        start = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "mixedclf", "classify", *map(str, args)], env=env,
                              capture_output=True, text=True, timeout=timeout)
        return done, time.monotonic() - start
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.parametrize("how", ["option", "RAY_ADDRESS", "auto and a stale file"])
def test_a_dead_address_fails_fast_with_one_line(tiny_model, tmp_path, how):
    args = [SAMPLE_JSONL, "-o", tmp_path / "out.jsonl", "--model", tiny_model, "--engine", "ray", "-q"]
    env, stale = {}, None
    if how == "option":
        args += ["--ray-address", "127.0.0.1:1"]
    elif how == "RAY_ADDRESS":
        env["RAY_ADDRESS"] = "127.0.0.1:1"
    else:
        from ray._private.services import find_gcs_addresses

        if find_gcs_addresses():  # Ray's "auto" joins any Ray running on this machine before the recorded one
            pytest.skip(f"a Ray is running on this machine ({find_gcs_addresses()}): 'auto' would join it")
        args += ["--ray-address", "auto"]
        stale = "127.0.0.1:1"
    # Ray itself retries a dead address for minutes; the interpreter and imports take seconds on a busy machine.
    done, seconds = _cli_with_ray_temp_dir(args, stale, env, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and ("cannot reach the Ray cluster" in lines[0] or "does not answer" in lines[0])
    assert "Traceback" not in done.stderr and not (tmp_path / "out.jsonl").exists()
    assert seconds < 60


def test_a_stale_current_cluster_file_does_not_stop_a_local_ray_run(tiny_model, tmp_path):
    out = tmp_path / "out.jsonl"
    done, _ = _cli_with_ray_temp_dir([SAMPLE_JSONL, "-o", out, "--model", tiny_model, "--engine", "ray",
                                      "--device", "cpu", "--chunk-rows", "100", "-q"], stale="127.0.0.1:1",
                                     env_over={})
    assert done.returncode == 0, done.stderr[-2000:]
    assert [r["id"] for r in rows_of(out)] == [f"r{i:04d}" for i in range(1, 301)]


def test_sample_data_matches_local_row_for_row(local_ray, tiny_model, tmp_path):
    local = run("local", SAMPLE_JSONL, tmp_path / "local.jsonl", tiny_model)
    other = run("ray", SAMPLE_JSONL, tmp_path / "ray.jsonl", tiny_model)
    assert ray.is_initialized()  # a Ray the engine did not start is left running

    local_rows, ray_rows = rows_of(tmp_path / "local.jsonl"), rows_of(tmp_path / "ray.jsonl")
    assert len(ray_rows) == 300
    assert [r["id"] for r in ray_rows] == [f"r{i:04d}" for i in range(1, 301)]  # input order
    assert_same_rows(local_rows, ray_rows)

    # The report has the local engine's shape: same stages in the same order, same fields, same keys.
    a, b = local.report, other.report
    assert b.engine == "ray" and b.rows_in == a.rows_in == 300 and b.rows_out == 300 and b.rows_errored == 0
    assert [s.name for s in b.measurements.stages] == [s.name for s in a.measurements.stages]
    assert set(a.settings) <= set(b.settings)
    # Both engines report the precision that ran and why, never the option's raw "auto".
    for key in ("precision", "precision_reason", "backend"):
        assert b.settings[key] == a.settings[key], key
    assert a.settings["precision"] != "auto"
    assert set(a.extra) <= set(b.extra)
    assert set(json.loads(a.model_dump_json())) == set(json.loads(b.model_dump_json()))
    assert b.aggregate.label_counts == a.aggregate.label_counts
    assert b.aggregate.mean_confidence == pytest.approx(a.aggregate.mean_confidence, abs=1e-6)
    stages = {s.name: s for s in b.measurements.stages}
    for name in ("preprocess", "inference", "postprocess"):
        assert stages[name].items == 300 and stages[name].busy_s > 0 and stages[name].wall_s > 0
    assert stages["read"].items == 300 and stages["write"].items == 300
    assert stages["model_load"].busy_s > 0 and stages["inference"].device == "cpu"
    assert b.extra["micro_batches"] >= 300 // LIGHT["batch_size"]
    assert b.extra["ray_parts"] > 1  # several blocks really went through Ray
    assert not list(tmp_path.glob(".*ray-*"))  # the parts folder is gone


def _bad_rows_table() -> pa.Table:
    base = [json.loads(line) for line in SAMPLE_JSONL.read_text(encoding="utf-8").splitlines()][:150]
    texts = [r["text"] for r in base]
    texts[3], texts[70], texts[149] = None, "   ", ""
    return pa.table({"id": [r["id"] for r in base], "text": pa.array(texts, pa.string()),
                     "stars": [r["stars"] for r in base]})


def test_parquet_in_csv_out_with_invalid_rows(local_ray, tiny_model, tmp_path):
    inp = tmp_path / "in.parquet"
    pq.write_table(_bad_rows_table(), inp)
    run("local", inp, tmp_path / "local.csv", tiny_model, all_scores=True, keep_text=True)
    other = run("ray", inp, tmp_path / "ray.csv", tiny_model, all_scores=True, keep_text=True)

    assert other.report.rows_in == 150 and other.report.rows_out == 147 and other.report.rows_errored == 3
    assert_same_rows(rows_of(tmp_path / "local.csv"), rows_of(tmp_path / "ray.csv"))
    local_errors = rows_of(tmp_path / "local.csv.errors.jsonl")
    ray_errors = rows_of(tmp_path / "ray.csv.errors.jsonl")
    assert ray_errors == local_errors and [e["row"] for e in ray_errors] == [3, 70, 149]


def test_jsonl_to_parquet_without_id_column(local_ray, tiny_model, tmp_path):
    texts = [json.loads(line)["text"] for line in SAMPLE_JSONL.read_text(encoding="utf-8").splitlines()][:20] * 2
    rows = [{"text": t, "n": i} for i, t in enumerate(texts)]  # each text twice: dedup has work to do
    rows[5]["text"] = None
    inp = write_jsonl(tmp_path / "in.jsonl", rows)
    run("local", inp, tmp_path / "local.parquet", tiny_model, chunk_rows=40)
    other = run("ray", inp, tmp_path / "ray.parquet", tiny_model, chunk_rows=40)
    local_rows, ray_rows = rows_of(tmp_path / "local.parquet"), rows_of(tmp_path / "ray.parquet")
    assert [r["id"] for r in ray_rows] == [i for i in range(40) if i != 5]  # row numbers stand in for ids
    assert_same_rows(local_rows, ray_rows)
    assert pq.read_schema(tmp_path / "ray.parquet") == pq.read_schema(tmp_path / "local.parquet")
    assert rows_of(tmp_path / "ray.parquet.errors.jsonl") == rows_of(tmp_path / "local.parquet.errors.jsonl")
    assert other.report.rows_errored == 1
    assert other.report.extra["dedup_hit_rate"] > 0


def test_clear_errors(local_ray, tiny_model, tmp_path):
    with pytest.raises(InputError, match="gpu-only"):
        run("ray", SAMPLE_JSONL, tmp_path / "x.jsonl", tiny_model, mode="gpu-only")

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": 1, "text": "fine"}\n{"id": 2, "text": \n', encoding="utf-8")
    with pytest.raises(InputError, match="cannot read it as jsonl") as info:
        run("ray", broken, tmp_path / "broken_out.jsonl", tiny_model)
    assert "--engine local" in info.value.one_line()
    assert not (tmp_path / "broken_out.jsonl").exists()

    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "a", "text": "good"}, {"id": "b", "text": ""}])
    with pytest.raises(RowError, match="row 1"):
        run("ray", bad, tmp_path / "bad_out.jsonl", tiny_model, on_error="fail")
    assert not (tmp_path / "bad_out.jsonl").exists()
    assert ray.is_initialized()
    assert not [p for p in os.listdir(tmp_path) if ".ray-" in p]


def test_unreachable_cluster_fails_fast():
    from mixedclf.engines.ray.connect import check_reachable

    with pytest.raises(InputError, match="cannot reach the Ray cluster"):
        check_reachable("127.0.0.1:1", timeout=2)
    with pytest.raises(InputError, match="cannot reach the Ray cluster at 127.0.0.1:1"):
        check_reachable("ray://127.0.0.1:1", timeout=2)  # Ray Client: its server is checked the same way
    check_reachable("auto")  # resolved by check_auto first


def test_a_folder_in_a_folder_out_laid_out_as_the_local_engine_does(local_ray, tiny_model, tmp_path):
    import gzip

    texts = [json.loads(line)["text"] for line in SAMPLE_JSONL.read_text(encoding="utf-8").splitlines()]
    folder = tmp_path / "in"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [{"id": f"a{i}", "text": t} for i, t in enumerate(texts[:70])])
    b = [{"id": f"b{i}", "text": t} for i, t in enumerate(texts[70:150])]
    b[4]["text"] = ""
    (folder / "b.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in b).encode()))
    write_jsonl(folder / "c.jsonl", [{"id": f"c{i}", "text": t} for i, t in enumerate(texts[150:200])])
    (folder / "_SUCCESS").write_text("")
    for engine in ("local", "ray"):
        result = run(engine, folder, tmp_path / engine, tiny_model)
        assert result.report.rows_in == 200 and result.report.rows_errored == 1
    for name in ("part-00000.parquet", "part-00001.parquet", "part-00002.parquet"):
        assert_same_rows(rows_of(tmp_path / "local" / name), rows_of(tmp_path / "ray" / name))
    assert sorted(os.listdir(tmp_path / "ray")) == sorted(os.listdir(tmp_path / "local"))
    (error,) = rows_of(tmp_path / "ray.errors.jsonl")
    assert error == rows_of(tmp_path / "local.errors.jsonl")[0]
    assert error["row"] == 74 and error["line"] == 5 and error["file"].endswith("b.jsonl.gz")
    run("ray", folder, tmp_path / "ray", tiny_model, rows_per_file=64, output_format="jsonl")
    assert [len(rows_of(tmp_path / "ray" / f"part-0000{i}.jsonl")) for i in range(4)] == [64, 64, 64, 7]


# The prediction cache on Ray (engines/ray/cache.py): looked up before the device, filled by what it computes.

def _cached(engine: str, inp: Path, out: Path, model: Path, cache: Path, warnings: list | None = None, **kw):
    opts = ClassifyOptions(input=inp, output=out, model=str(model), engine=engine, device="cpu", precision="fp32",
                           **{**LIGHT, "no_cache": False, "cache": cache, **kw})
    return classify_file(opts, warn=(warnings if warnings is not None else []).append).report


@pytest.mark.timeout(600)  # three Ray runs
def test_a_ray_rerun_is_answered_by_the_cache_with_the_same_bytes(local_ray, tiny_model, tmp_path):
    cache = tmp_path / "c.sqlite3"
    run("ray", SAMPLE_JSONL, tmp_path / "plain.jsonl", tiny_model, precision="fp32")
    first = _cached("ray", SAMPLE_JSONL, tmp_path / "first.jsonl", tiny_model, cache)
    again = _cached("ray", SAMPLE_JSONL, tmp_path / "again.jsonl", tiny_model, cache)
    assert (first.cache.hits, first.cache.misses, first.cache.stored) == (0, 300, 300)
    assert first.extra["micro_batches"] > 0 and first.cache.device_s_per_row > 0
    assert (again.cache.hits, again.cache.misses, again.cache.stored) == (300, 0, 0)
    assert again.extra["micro_batches"] == 0 and again.extra["device_busy_s"] == 0  # nothing reached the device
    assert again.engine == "ray" and again.rows_out == 300
    plain = (tmp_path / "plain.jsonl").read_bytes()
    assert (tmp_path / "first.jsonl").read_bytes() == plain
    assert (tmp_path / "again.jsonl").read_bytes() == plain


@pytest.mark.timeout(600)
def test_ray_finds_what_the_local_engine_stored_and_computes_only_a_new_row(local_ray, tiny_model, tmp_path):
    cache = tmp_path / "c.sqlite3"
    local = _cached("local", SAMPLE_JSONL, tmp_path / "local.jsonl", tiny_model, cache)
    assert (local.cache.hits, local.cache.stored) == (0, 300)
    lines = SAMPLE_JSONL.read_text(encoding="utf-8").splitlines()
    grown = tmp_path / "grown.jsonl"
    new = {"id": "new", "text": "a brand new review, never seen", "source": "product", "stars": 5}
    grown.write_text("\n".join([*lines, json.dumps(new)]) + "\n", encoding="utf-8")
    report = _cached("ray", grown, tmp_path / "ray.jsonl", tiny_model, cache)
    c = report.cache
    assert (c.hits, c.misses, c.stored) == (300, 1, 1)  # the actors key rows as the local engine does
    assert report.extra["micro_batches"] == 1
    assert c.avoided_device_s == pytest.approx(300 * report.extra["device_busy_s"], rel=1e-9)
    ray_lines = (tmp_path / "ray.jsonl").read_text(encoding="utf-8").splitlines()
    assert ray_lines[:300] == (tmp_path / "local.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(ray_lines[300])["id"] == "new"


@pytest.mark.timeout(600)
def test_a_ray_run_on_a_corrupt_cache_warns_once_and_writes_the_right_rows(local_ray, tiny_model, tmp_path):
    cache = tmp_path / "c.sqlite3"
    cache.write_bytes(b"not a database at all" * 500)
    run("ray", SAMPLE_JSONL, tmp_path / "plain.jsonl", tiny_model, precision="fp32")
    warnings: list[str] = []
    report = _cached("ray", SAMPLE_JSONL, tmp_path / "out.jsonl", tiny_model, cache, warnings)
    assert len(warnings) == 1 and "unusable" in warnings[0] and "starting it anew" in warnings[0]
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "plain.jsonl").read_bytes()
    assert report.cache.stored == 300 and report.cache.disabled is None
