"""Issue 13, quick start: a torch-free command line, growing first chunks, chunks preprocessed while the model
loads, and start-up (process start to the first micro-batch) in the report."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import classify_process, write_jsonl
from typer.testing import CliRunner

from mixedclf.cli.app import app
from mixedclf.core.batching import ChunkSizes
from mixedclf.core.options import build_options, chunk_sizes_for
from mixedclf.costs.report import load_report
from mixedclf.io.checkpoint import checkpoint_path
from mixedclf.io.readers import iter_chunks
from mixedclf.render.report import classify_to_markdown

runner = CliRunner()
HEAVY = ("torch", "transformers", "pyarrow", "pandas", "safetensors", "tokenizers")


def _modules_after(args: list[str], cwd) -> list[str]:
    """Run the command line in a fresh interpreter; the heavy modules it imported."""
    code = (
        "import sys\n"
        f"sys.argv = ['mixedclf', *{args!r}]\n"
        "from mixedclf.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1].replace("'", '"'))


def test_help_estimate_and_check_import_no_torch(tmp_path):
    assert _modules_after(["--help"], tmp_path) == []
    assert _modules_after(["estimate", "-f", "json", "--report", "a.json"], tmp_path) == []
    assert _modules_after(["check", "a.json", "--baseline", "a.json"], tmp_path) == []
    assert _modules_after(["classify", "--help"], tmp_path) == []


def test_chunk_sizes_are_the_first_then_the_most():
    sizes = ChunkSizes(16384, 1024)
    assert [sizes(i) for i in range(4)] == [1024, 16384, 16384, 16384]
    assert [ChunkSizes(100, 30)(i) for i in range(3)] == [30, 100, 100]
    assert ChunkSizes(100, 1000)(0) == 100 and ChunkSizes(100)(5) == 100  # never above the most


def test_default_first_chunk_is_small_locally_and_fixed_on_ray(tmp_path):
    opts = {"input": tmp_path / "a.jsonl", "output": tmp_path / "b.jsonl"}
    local = chunk_sizes_for(build_options(opts))
    assert (local.first, local.most) == (1024, 16384)
    ray = chunk_sizes_for(build_options({**opts, "engine": "ray"}))
    assert ray.first == ray.most == 1024
    assert chunk_sizes_for(build_options({**opts, "chunk_rows": 500})).first == 500


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "csv"])
def test_growing_chunks_cut_the_same_rows_in_order(tmp_path, fmt):
    rows = [{"id": i, "text": f"text number {i}"} for i in range(100)]
    if fmt == "jsonl":
        path = write_jsonl(tmp_path / "in.jsonl", rows)
    else:
        table = pa.Table.from_pylist(rows)
        path = tmp_path / f"in.{fmt}"
        if fmt == "parquet":
            pq.write_table(table, path, row_group_size=7)
        else:
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, path)
    chunks = list(iter_chunks(path, fmt, "text", "id", ChunkSizes(40, 5)))
    assert [c.rows_in for c in chunks] == [5, 40, 40, 15]
    assert [c.first_row for c in chunks] == [0, 5, 45, 85]
    assert [t for c in chunks for t in c.texts] == [r["text"] for r in rows]


def test_growing_chunks_follow_the_chunk_index_across_files(tmp_path):
    """Several files: chunk indexes run on from file to file, so only the input's first chunk is small, and a
    resumed run cuts the same boundaries however the input is split."""
    folder = tmp_path / "parts"
    folder.mkdir()
    rows = [{"id": i, "text": f"text number {i}"} for i in range(60)]
    write_jsonl(folder / "a.jsonl", rows[:30])
    write_jsonl(folder / "b.jsonl", rows[30:])
    chunks = list(iter_chunks(folder, "jsonl", "text", "id", ChunkSizes(40, 5)))
    # a: 5, then the 25 rows left (a chunk never spans two files); b: chunk 2, full size 40, holds all 30.
    assert [c.rows_in for c in chunks] == [5, 25, 30]
    assert [c.index for c in chunks] == [0, 1, 2]
    assert [c.source for c in chunks] == [0, 0, 1]
    assert [t for c in chunks for t in c.texts] == [r["text"] for r in rows]


def write_reviews(path, n: int, seed: int):
    """n rows of 1 to 40 words (lengths vary, so windows sort and pad), with a few exact repeats."""
    rng = random.Random(seed)
    words = "good great love fine bad awful hate broken slow the a it was is and but not very phone food".split()
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 40))) for _ in range(n)]
    texts[5::97] = [texts[0]] * len(texts[5::97])
    return write_jsonl(path, [{"id": i, "text": t} for i, t in enumerate(texts)])


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    return write_reviews(tmp_path_factory.mktemp("reviews") / "reviews.jsonl", 700, seed=3)


def test_growing_chunks_label_like_fixed_chunks_and_report_start_up(tmp_path, tiny_model, reviews):
    from mixedclf.engines.run import classify_file

    results = {}
    for name, first in (("fixed", 256), ("growing", 16)):
        opts = build_options({"input": reviews, "output": tmp_path / f"{name}.jsonl", "model": str(tiny_model),
                              "chunk_rows": 256, "first_chunk_rows": first, "cpu_workers": 1})
        results[name] = classify_file(opts)
    fixed, growing = ([json.loads(line) for line in r.output_path.read_text().splitlines()] for r in results.values())
    assert [r["id"] for r in growing] == [r["id"] for r in fixed]
    assert [r["label"] for r in growing] == [r["label"] for r in fixed]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(growing, fixed)) < 1e-4  # padding differs, little else
    report = results["growing"].report
    assert report.settings["first_chunk_rows"] == 16 and report.settings["chunk_rows"] == 256
    m = report.measurements
    assert m.cold_start_s is not None and m.cold_start_s > 0
    assert m.cold_start_s >= m.startup_s + m.stage_busy("model_load")  # the first batch runs after the load
    assert "start-up" in classify_to_markdown(report)


def test_the_first_chunks_go_to_the_pool_before_the_model_loads(tmp_path, tiny_model, reviews, monkeypatch):
    from mixedclf.engines.local import LocalEngine
    from mixedclf.models import backend

    seen = {}
    real_load = backend.load_model

    def load_model(*args, **kwargs):
        in_flight = engine.feed._in_flight
        seen["submitted"] = [len(entry[0].texts) for entry in in_flight if entry[1]]
        return real_load(*args, **kwargs)

    monkeypatch.setattr(backend, "load_model", load_model)
    opts = build_options({"input": reviews, "output": tmp_path / "out.jsonl", "model": str(tiny_model),
                          "chunk_rows": 256, "first_chunk_rows": 64, "cpu_workers": 1})
    engine = LocalEngine(opts)
    engine.run()
    assert seen["submitted"] == [64, 256]


@pytest.mark.slow
def test_cli_shows_start_up_and_writes_it_to_the_report(tmp_path, tiny_model, reviews):
    report = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "mixedclf", "classify", str(reviews), "-o", str(tmp_path / "o.jsonl"),
                           "--model", str(tiny_model), "--cpu-workers", "1", "--report", str(report)],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, COLUMNS="200"))
    assert proc.returncode == 0, proc.stderr
    assert "start-up" in proc.stdout and "to the first micro-batch" in proc.stdout
    m = load_report(report).measurements
    # From process start: interpreter, imports and model load come before the first micro-batch.
    assert m.cold_start_s > m.startup_s > 0 and m.process_s >= m.cold_start_s


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_resume_with_growing_chunks_is_byte_identical(tmp_path, tiny_model, fmt):
    source = write_reviews(tmp_path / "in.jsonl", 3000, seed=5)
    common = ["--model", tiny_model, "--chunk-rows", "400", "--first-chunk-rows", "25", "--cpu-workers", "1", "-q"]
    whole = tmp_path / f"whole.{fmt}"
    assert classify_process(source, "-o", whole, *common, wait=False).wait(timeout=300) == 0
    out = tmp_path / f"out.{fmt}"
    proc = classify_process(source, "-o", out, *common, wait=False)
    deadline = time.monotonic() + 120
    while not checkpoint_path(out).exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    done = json.loads(checkpoint_path(out).read_text())["chunks_done"]
    assert 1 <= done < 9  # 25, seven of 400, 175: stopped inside the run

    refused = runner.invoke(app, ["classify", str(source), "-o", str(out), "--model", str(tiny_model),
                                  "--chunk-rows", "400", "--first-chunk-rows", "50", "--resume"])
    assert refused.exit_code == 2 and "other options" in refused.output  # other boundaries: no resume
    with pytest.MonkeyPatch.context() as patch:  # the same options under another schedule (another version)
        patch.setattr(ChunkSizes, "SCHEDULE", "first, doubling up to most")
        refused = runner.invoke(app, ["classify", str(source), "-o", str(out), *map(str, common), "--resume"])
    assert refused.exit_code == 2 and "other options" in refused.output

    assert classify_process(source, "-o", out, "--resume", *common, wait=False).wait(timeout=300) == 0
    if fmt == "parquet":
        assert pq.read_table(out).equals(pq.read_table(whole))
    else:
        assert out.read_bytes() == whole.read_bytes()


def test_estimate_from_report_suggests_the_measured_start_up():
    from mixedclf.costs.estimate import inputs_from_report
    from mixedclf.costs.examples import classify_fields, mixed_run
    from mixedclf.costs.report import build_classify_report

    run = mixed_run().model_copy(update={"cold_start_s": 3.25})
    _, notes = inputs_from_report(build_classify_report(**classify_fields(run=run)), requests_per_day=5000)
    assert any("--cold-start-sec 3.25" in n and "first micro-batch" in n for n in notes)
    _, notes = inputs_from_report(build_classify_report(**classify_fields()), requests_per_day=5000)  # older report
    assert any("--cold-start-sec 1.50" in n for n in notes)


def test_json_summary_carries_the_start_up(tmp_path, tiny_model, reviews):
    report = tmp_path / "r.json"
    result = runner.invoke(app, ["classify", str(reviews), "-o", str(tmp_path / "o.jsonl"), "--model", str(tiny_model),
                                 "--cpu-workers", "1", "-f", "json", "--report", str(report)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    m = load_report(report).measurements
    assert summary["cold_start_s"] == m.cold_start_s and m.cold_start_s > m.startup_s > 0


@pytest.mark.slow
def test_tokenizer_is_built_once_then_read_from_the_cache_without_transformers(tmp_path):
    from mixedclf.models import tokenizer as tok
    from mixedclf.models.spec import resolve_model

    spec = resolve_model("default")
    env = dict(os.environ, HF_HUB_OFFLINE="1", MIXEDCLF_CACHE_DIR=str(tmp_path / "cache"))
    code = ("import sys, hashlib\nfrom mixedclf.models.spec import resolve_model\n"
            "from mixedclf.models.tokenizer import tokenizer_json_and_pad_id\n"
            "text, pad = tokenizer_json_and_pad_id(resolve_model('default'))\n"
            "print(hashlib.sha256(text.encode()).hexdigest(), pad, 'transformers' in sys.modules)\n")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
            for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr + runs[1].stderr
    (first_hash, first_pad, first_tf), (second_hash, second_pad, second_tf) = (r.stdout.split() for r in runs)
    assert first_tf == "True" and second_tf == "False"
    assert (first_hash, first_pad) == (second_hash, second_pad)
    built, pad = tok._build(spec.encoder_path)  # what transformers builds today
    import hashlib

    assert hashlib.sha256(built.encode()).hexdigest() == second_hash and str(pad) == second_pad


def test_tokenizer_cache_key_follows_the_tokenizer_files(tmp_path):
    import shutil

    from mixedclf.models import tokenizer as tok
    from mixedclf.models.spec import resolve_model

    folder = tmp_path / "enc"
    shutil.copytree(resolve_model("default").encoder_path, folder,
                    ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    before = tok._cache_key(folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["do_lower_case"] = not config.get("do_lower_case", True)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    assert tok._cache_key(folder) not in (None, before)
