"""The prediction cache in real runs: a cached rerun writes the same bytes, every input of the key misses when it
changes, the report counts what the cache saved, and no cache problem changes a run's output or exit code."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest
from conftest import classify_process, write_jsonl

from mixedclf.core.options import build_options
from mixedclf.engines.run import classify_file

TEXTS = [f"the food was {w} and the staff {v}" for w in ("good", "bad", "fine", "awful", "great")
         for v in ("happy", "slow", "poor", "best")]


def _rows(n: int = len(TEXTS), start: int = 0) -> list[dict]:
    return [{"id": i, "text": TEXTS[i % len(TEXTS)] + f" {i}"} for i in range(start, start + n)]


def _run(tmp_path, model, out, *, cache=None, rows=None, **options):
    source = tmp_path / "in.jsonl"
    if rows is not None or not source.exists():
        write_jsonl(source, rows if rows is not None else _rows())
    values = dict(input=str(source), output=str(out), model=str(model), mode="gpu-only", precision="fp32")
    values.update(options)
    if cache is None:
        values["no_cache"] = True
    else:  # conftest turns the cache off for the suite: these tests turn it on
        values.update(cache=cache, no_cache=False)
    warnings: list[str] = []
    result = classify_file(build_options(values), warn=warnings.append)
    return result.report, warnings


def test_default_cache_follows_the_cache_dir_setting():
    from mixedclf.models.cache import prediction_cache_path

    assert str(prediction_cache_path()).startswith(os.environ["MIXEDCLF_CACHE_DIR"])


def test_the_cache_is_on_by_default(monkeypatch):
    monkeypatch.delenv("MIXEDCLF_NO_CACHE")
    opts = build_options(dict(input="x.jsonl", output="o.jsonl"))
    assert not opts.no_cache and opts.cache is None and opts.cache_max_bytes == 1 << 30
    monkeypatch.setenv("MIXEDCLF_CACHE", "/somewhere/c.sqlite3")
    assert str(build_options(dict(input="x.jsonl", output="o.jsonl")).cache) == "/somewhere/c.sqlite3"


def test_the_option_cap_and_the_store_cap_agree():
    from mixedclf.core.options import DEFAULT_CACHE_MAX_BYTES, MIN_CACHE_MAX_BYTES
    from mixedclf.io import prediction_cache

    assert DEFAULT_CACHE_MAX_BYTES == prediction_cache.DEFAULT_MAX_BYTES
    assert MIN_CACHE_MAX_BYTES == 64 * prediction_cache._PAGE_SIZE


@pytest.mark.parametrize("ext", ["jsonl", "parquet"])
def test_a_cached_rerun_writes_the_same_bytes_as_a_run_without_the_cache(tmp_path, tiny_model, ext):
    cache = tmp_path / "c.sqlite3"
    _run(tmp_path, tiny_model, tmp_path / f"plain.{ext}", mode="mixed", cpu_workers=1)
    first, _ = _run(tmp_path, tiny_model, tmp_path / f"first.{ext}", cache=cache, mode="mixed", cpu_workers=1)
    again, _ = _run(tmp_path, tiny_model, tmp_path / f"again.{ext}", cache=cache, mode="mixed", cpu_workers=1)
    assert first.cache.hits == 0 and first.cache.stored == len(TEXTS)
    assert again.cache.hits == len(TEXTS) and again.cache.misses == 0
    assert again.extra["micro_batches"] == 0  # nothing reached the device
    plain = (tmp_path / f"plain.{ext}").read_bytes()
    assert (tmp_path / f"first.{ext}").read_bytes() == plain
    assert (tmp_path / f"again.{ext}").read_bytes() == plain


def test_a_rerun_tokenizes_only_the_rows_the_cache_cannot_report(tmp_path, tiny_model):
    long_rows = [{"id": 40 + i, "text": " ".join(["long"] * 200) + f" {i}"} for i in range(4)]  # over max length
    rows = _rows(40)[:20] + long_rows + _rows(40)[20:]
    cache, small_chunks = tmp_path / "c.sqlite3", dict(mode="mixed", cpu_workers=1, chunk_rows=4, first_chunk_rows=4)
    _run(tmp_path, tiny_model, tmp_path / "plain.jsonl", rows=rows, **small_chunks)
    _run(tmp_path, tiny_model, tmp_path / "first.jsonl", cache=cache, **small_chunks)
    again, _ = _run(tmp_path, tiny_model, tmp_path / "again.jsonl", cache=cache, **small_chunks)
    assert (again.cache.hits, again.cache.misses) == (44, 0)
    # The first two chunks go to the workers while the model loads, before the run key is known; of the rest every
    # row is answered before tokenizing except the truncated ones, whose token counts the cache does not keep.
    assert again.cache.untokenized == 44 - 2 * 4 - len(long_rows)
    assert f"{again.cache.untokenized:,} hits not tokenized" in again.cache.describe()
    assert (tmp_path / "again.jsonl").read_bytes() == (tmp_path / "plain.jsonl").read_bytes()
    lines = [json.loads(line) for line in (tmp_path / "again.jsonl").read_text().splitlines()]
    assert sum(row["truncated"] for row in lines) == len(long_rows)


def test_a_grown_file_computes_only_its_new_rows_and_prices_the_hits(tmp_path, tiny_model):
    cache = tmp_path / "c.sqlite3"
    _run(tmp_path, tiny_model, tmp_path / "a.jsonl", cache=cache, rows=_rows(40))
    report, _ = _run(tmp_path, tiny_model, tmp_path / "b.jsonl", cache=cache, rows=_rows(50))
    c = report.cache
    assert (c.hits, c.misses, c.stored) == (40, 10, 10)
    assert c.device_s_per_row == pytest.approx(report.extra["device_busy_s"] / 10)
    assert c.avoided_device_s == pytest.approx(40 * c.device_s_per_row)
    assert c.avoided_usd == pytest.approx(c.avoided_device_s * report.pricing.gpu_per_sec, rel=1e-9)
    from mixedclf.costs.summary import classify_summary
    from mixedclf.render.report import report_to_markdown

    summary = classify_summary(report, tmp_path / "b.jsonl", None, tmp_path / "e")
    assert summary.cache == c
    assert "prediction cache: 40 hits, 10 misses" in report_to_markdown(report)


def _retrain(folder):
    from conftest import build_tiny_classifier

    build_tiny_classifier(folder, seed=1)


def _set_json(path, **fields):
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(fields)
    path.write_text(json.dumps(data), encoding="utf-8")


def _retokenize(folder):
    """A tokenizer that no longer lowercases: the same weights, other token ids for some texts."""
    _set_json(folder / "tokenizer_config.json", do_lower_case=False)
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    data["normalizer"]["lowercase"] = False
    (folder / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")


def _head(folder, bias: float):
    import torch

    from mixedclf.models.head_io import write_head

    head = folder.parent / "head"
    head.mkdir(exist_ok=True)
    torch.manual_seed(0)
    tensors = {"classifier.weight": torch.randn(2, 32), "classifier.bias": torch.full((2,), bias)}
    write_head(head, tensors, {"format": "mixedclf-head", "version": 1, "labels": ["n", "p"],
                               "encoder": f"../{folder.name}", "max_length": 64, "normalize": False,
                               "trained_layers": [], "overlay_dtype": None})
    return head


# Each case: (options of the first run, options of the rerun, what to change in the model folder in between).
KEY_INPUTS = {
    "weights": ({}, {}, _retrain),
    "precision": ({}, {"precision": "bf16"}, None),
    "backend": ({}, {"backend": "onnxruntime"}, None),
    "clean mode": ({}, {"clean": "none"}, None),
    "max length": ({}, {}, lambda folder: _set_json(folder / "tokenizer_config.json", model_max_length=32)),
    "tokenizer files": ({}, {}, _retokenize),
}


@pytest.mark.parametrize("case", [*KEY_INPUTS, "nothing"])
def test_changing_an_input_of_the_key_misses(tmp_path, tiny_model, case):
    model = shutil.copytree(tiny_model, tmp_path / "model")
    first, again, change = KEY_INPUTS.get(case, ({}, {}, None))
    cache = tmp_path / "c.sqlite3"
    _run(tmp_path, model, tmp_path / "a.jsonl", cache=cache, **first)
    if change is not None:
        change(model)
    report, _ = _run(tmp_path, model, tmp_path / "b.jsonl", cache=cache, **again)
    if case == "nothing":
        assert report.cache.hits == len(TEXTS)  # the control: the same run is answered from the cache
    else:
        assert (report.cache.hits, report.cache.misses) == (0, len(TEXTS))


def test_changing_the_head_overlay_misses(tmp_path, tiny_model):
    model = shutil.copytree(tiny_model, tmp_path / "model")
    cache = tmp_path / "c.sqlite3"
    head = _head(model, 0.0)
    _run(tmp_path, head, tmp_path / "a.jsonl", cache=cache)
    same, _ = _run(tmp_path, head, tmp_path / "b.jsonl", cache=cache)
    assert same.cache.hits == len(TEXTS)
    _head(model, 1.0)
    report, _ = _run(tmp_path, head, tmp_path / "c.jsonl", cache=cache)
    assert (report.cache.hits, report.cache.misses) == (0, len(TEXTS))


def test_a_corrupt_cache_file_is_one_warning_and_the_output_is_right(tmp_path, tiny_model):
    cache = tmp_path / "c.sqlite3"
    _run(tmp_path, tiny_model, tmp_path / "plain.jsonl")
    cache.write_bytes(b"this is not a database" * 500)
    report, warnings = _run(tmp_path, tiny_model, tmp_path / "out.jsonl", cache=cache)
    assert len(warnings) == 1 and "unusable" in warnings[0], warnings
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "plain.jsonl").read_bytes()
    assert report.cache.stored == len(TEXTS)  # rebuilt, and filled again


@pytest.mark.parametrize("where", ["read-only folder", "folder that is a file"])
def test_a_cache_it_cannot_write_leaves_the_run_going_and_says_so(tmp_path, tiny_model, where):
    folder = tmp_path / "cache"
    if where == "read-only folder":
        if os.geteuid() == 0:
            pytest.skip("root writes through read-only permissions")
        folder.mkdir()
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    else:  # what root meets where others meet a read-only folder: the cache file cannot be made
        folder.write_text("a file, not a folder")
    try:
        _run(tmp_path, tiny_model, tmp_path / "plain.jsonl")
        report, warnings = _run(tmp_path, tiny_model, tmp_path / "out.jsonl", cache=folder / "c.sqlite3")
    finally:
        if folder.is_dir():
            folder.chmod(stat.S_IRWXU)
    assert len(warnings) == 1 and "prediction cache off for this run" in warnings[0], warnings
    assert report.cache.disabled and report.cache.hits == 0
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "plain.jsonl").read_bytes()


def test_ray_opens_the_drivers_cache_but_not_through_ray_client(tmp_path, monkeypatch):
    from mixedclf.engines.run import open_cache

    said: list[str] = []
    values = dict(input="x.jsonl", output=str(tmp_path / "o.jsonl"), engine="ray", no_cache=False,
                  cache=str(tmp_path / "c.sqlite3"))
    cache = open_cache(build_options(values), said.append)
    assert cache is not None and cache.enabled and not said
    cache.close()
    assert open_cache(build_options({**values, "ray_address": "ray://head:10001"}), said.append) is None
    assert len(said) == 1 and "Ray Client" in said[0]
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    assert open_cache(build_options(values), said.append) is None and len(said) == 2


@pytest.mark.slow
def test_two_runs_share_one_cache_at_once(tmp_path, tiny_model):
    """Two processes fill and read one cache file together: both succeed with the output of a run without it."""
    rows = _rows(300)
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    cache = tmp_path / "shared.sqlite3"
    common = ["--model", tiny_model, "--mode", "gpu-only", "--precision", "fp32", "--chunk-rows", "32", "--quiet"]
    plain = classify_process(source, "-o", tmp_path / "plain.jsonl", "--no-cache", *common)
    assert plain.returncode == 0, plain.stderr
    on = {"MIXEDCLF_NO_CACHE": ""}  # conftest turns the cache off for the suite
    runs = [classify_process(source, "-o", tmp_path / f"{i}.jsonl", "--cache", cache, "--report",
                             tmp_path / f"{i}.json", *common, wait=False, env=on) for i in range(2)]
    for i, run in enumerate(runs):
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        assert "warning" not in err, err
        assert (tmp_path / f"{i}.jsonl").read_bytes() == (tmp_path / "plain.jsonl").read_bytes()
    third = classify_process(source, "-o", tmp_path / "3.jsonl", "--cache", cache, "--report", tmp_path / "3.json",
                             *common, env=on)
    assert third.returncode == 0, third.stderr
    assert json.loads((tmp_path / "3.json").read_text())["cache"]["hits"] == 300


@pytest.mark.slow
def test_a_cache_problem_never_changes_the_exit_code(tmp_path, tiny_model):
    """A run that skips a bad row ends 3 with or without a broken cache; one without bad rows ends 0."""
    source = write_jsonl(tmp_path / "in.jsonl", _rows(5) + [{"id": 99}])
    cache = tmp_path / "c.sqlite3"
    cache.write_bytes(b"\0" * 4096)
    common = ["--model", tiny_model, "--mode", "gpu-only", "--precision", "fp32", "--quiet"]
    plain = classify_process(source, "-o", tmp_path / "p.jsonl", "--no-cache", *common)
    broken = classify_process(source, "-o", tmp_path / "b.jsonl", "--cache", cache, *common,
                              env={"MIXEDCLF_NO_CACHE": ""})
    assert plain.returncode == broken.returncode == 3, (plain.stderr, broken.stderr)
    assert broken.stderr.count("prediction cache") == 1, broken.stderr
    assert (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "p.jsonl").read_bytes()



def test_serve_answers_a_repeated_text_from_the_cache_with_the_same_result(tmp_path, tiny_model):
    import httpx
    import torch
    from serve_helpers import serve_in_thread

    from mixedclf.serve.app import create_app
    from mixedclf.serve.settings import ServeSettings

    settings = ServeSettings(model=str(tiny_model), device="cpu", cpu_workers=1, torch_threads=torch.get_num_threads(),
                             cache=tmp_path / "serve.sqlite3")
    app = create_app(settings)
    with serve_in_thread(app) as running, httpx.Client(base_url=running.url, trust_env=False, timeout=30) as c:
        first = c.post("/classify", json={"text": "the staff was happy"}).json()
        again = c.post("/classify", json={"text": "the staff was happy"}).json()
        health = c.get("/health").json()
    per_request = ("cost_usd", "timings_ms")  # what this request spent, not what it answers
    assert {k: v for k, v in again.items() if k not in per_request} == {
        k: v for k, v in first.items() if k not in per_request}  # scores, label, counts: as computed
    cache = health["cache"]
    assert cache["path"] == str(tmp_path / "serve.sqlite3") and cache["hits"] == 1 and cache["enabled"]
    assert cache["untokenized"] == 1  # the CPU worker answered it from the cache before tokenizing
    assert app.state.server.cache.enabled is False  # closed at shutdown


def test_cache_options_reach_classify_and_serve(monkeypatch, tmp_path, tiny_model):
    from typer.testing import CliRunner

    import mixedclf.serve.app as serve_app
    from mixedclf.cli.app import app

    seen = {}
    monkeypatch.setattr(serve_app, "run_server", lambda s: seen.setdefault("settings", s))
    monkeypatch.delenv("MIXEDCLF_NO_CACHE")
    runner = CliRunner()
    ok = runner.invoke(app, ["serve", "--model", str(tiny_model), "--cache", str(tmp_path / "s.db"),
                             "--cache-max-bytes", "1000000"])
    assert ok.exit_code == 0, ok.output
    s = seen.pop("settings")
    assert (s.cache, s.no_cache, s.cache_max_bytes) == (tmp_path / "s.db", False, 1_000_000)
    assert runner.invoke(app, ["serve", "--model", str(tiny_model), "--no-cache"]).exit_code == 0
    assert seen.pop("settings").no_cache is True
    monkeypatch.setenv("MIXEDCLF_NO_CACHE", "1")
    assert runner.invoke(app, ["serve", "--model", str(tiny_model)]).exit_code == 0
    assert seen.pop("settings").no_cache is True
    small = runner.invoke(app, ["serve", "--model", str(tiny_model), "--cache-max-bytes", "10"])
    assert small.exit_code == 2 and "cache" in small.output
    help_text = runner.invoke(app, ["classify", "--help"], terminal_width=200).output
    assert "--cache" in help_text and "--no-cache" in help_text and "--cache-max-bytes" in help_text


def test_cache_max_bytes_caps_the_file_in_a_real_run(tmp_path, tiny_model):
    cache, cap = tmp_path / "c.sqlite3", 64 * 4096
    rows = [{"id": i, "text": f"row {i} was fine"} for i in range(3000)]
    report, _ = _run(tmp_path, tiny_model, tmp_path / "o.jsonl", cache=cache, rows=rows, cache_max_bytes=cap,
                     chunk_rows=1000)
    assert report.cache.stored > 0 and report.cache.evicted > 0
    on_disk = sum(p.stat().st_size for p in (cache, tmp_path / "c.sqlite3-wal") if p.exists())
    assert on_disk <= cap


def test_a_cache_named_as_the_input_is_off_for_the_run_and_the_input_is_untouched(tmp_path, tiny_model):
    """`--cache` naming the run's own input (a slip of the shell) is one warning: the input is read, not turned
    into a cache, and the output is a run without the cache's."""
    _run(tmp_path, tiny_model, tmp_path / "plain.jsonl")
    source = tmp_path / "in.jsonl"
    before = source.read_bytes()
    report, warnings = _run(tmp_path, tiny_model, tmp_path / "out.jsonl", cache=source)
    assert source.read_bytes() == before and not (tmp_path / "in.jsonl.unusable").exists()
    assert len(warnings) == 1 and "off for this run" in warnings[0], warnings
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "plain.jsonl").read_bytes()
    assert report.cache is None or report.cache.hits == 0
