"""What the command line shows: honest progress, JSON for scripts, settings from the environment, help that
keeps its defaults, tables that fit the terminal, and no third-party chatter."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, write_classify_report, write_jsonl
from typer.testing import CliRunner

from mixedclf.errors import EXIT_ROWS_SKIPPED

WIDE = {"COLUMNS": "160"}


@pytest.fixture(autouse=True)
def _no_user_settings(monkeypatch):
    """The developer's own MIXEDCLF_* variables must not leak into these tests."""
    for name in list(os.environ):
        if name.startswith("MIXEDCLF_") and name != "MIXEDCLF_CONFIG_DIR":
            monkeypatch.delenv(name)


def invoke(*args, env=None):
    from mixedclf.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args], env={**WIDE, **(env or {})})


def reviews(n: int, repeat_every: int = 0) -> list[dict]:
    words = ["good food", "bad service", "great phone", "awful room", "love it", "hate the app"]
    rows = []
    for i in range(n):
        text = words[0] if repeat_every and i % repeat_every == 0 else f"{words[i % 6]} {'very ' * (i % 9)}{i}"
        rows.append({"id": i, "text": text})
    return rows


def light_options(inp: Path, out: Path, model: Path, **over):
    from mixedclf.core.options import build_options

    return build_options({"input": inp, "output": out, "model": str(model), "device": "cpu", "mode": "gpu-only",
                          "torch_threads": 1, **over})


# --- progress ---------------------------------------------------------------------------------------------------
def test_progress_moves_per_micro_batch_and_counts_every_row(tmp_path, tiny_model):
    from mixedclf.engines.local import LocalEngine

    rows = reviews(90, repeat_every=5) + [{"id": 90, "text": ""}]  # repeats (dedup) and one bad row
    inp = write_jsonl(tmp_path / "in.jsonl", rows)
    calls: list[int] = []
    opts = light_options(inp, tmp_path / "out.jsonl", tiny_model, batch_size=4, chunk_rows=40)
    result = LocalEngine(opts, on_rows=calls.append).run()
    assert sum(calls) == result.rows_in == 91
    chunks = 3
    assert result.extra.micro_batches > chunks
    # One call per micro-batch (at most batch_size rows each), plus one per chunk for the rows no batch carried.
    assert len(calls) >= result.extra.micro_batches and len(calls) <= result.extra.micro_batches + chunks
    assert sum(1 for c in calls if c > 4) <= chunks


def test_the_total_is_known_for_parquet_and_estimated_for_jsonl_and_csv(tmp_path):
    from mixedclf.engines.progress import SAMPLE_BYTES, expected_rows

    table = pa.table({"id": list(range(1234)), "text": [f"row {i}" for i in range(1234)]})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=100)
    assert expected_rows(tmp_path / "in.parquet", "parquet") == (1234, True)

    small = write_jsonl(tmp_path / "small.jsonl", reviews(50))
    assert expected_rows(small, "jsonl") == (50, True)

    n = 60_000  # several megabytes: past the sample, so the total is estimated from the mean line length
    big = write_jsonl(tmp_path / "big.jsonl", reviews(n))
    assert big.stat().st_size > 2 * SAMPLE_BYTES
    total = expected_rows(big, "jsonl")
    assert not total.exact and abs(total.rows - n) / n < 0.1, total

    csv = tmp_path / "in.csv"
    csv.write_text("id,text\n" + "".join(f"{r['id']},{r['text']}\n" for r in reviews(70)), encoding="utf-8")
    assert expected_rows(csv, "csv") == (70, True)


@pytest.mark.slow
@pytest.mark.parametrize("ext, codec", [(".gz", "gzip"), (".bz2", "bz2"), (".zst", "zstd")])
def test_a_compressed_input_gets_a_sampled_total_marked_approximate(tmp_path, ext, codec):
    """The nightly .jsonl.gz gets a total (and so an ETA): the rows of a decompressed sample scaled by the
    compression ratio it had, shown with a "~"."""
    from mixedclf.engines.progress import RowProgress, source_rows
    from mixedclf.io.sources import resolve_source

    rng = random.Random(0)
    words = "good bad food service room staff phone app battery screen price slow fast great awful love".split()

    def compressed(name: str, n: int) -> Path:
        rows = [{"id": i, "text": " ".join(rng.choice(words) for _ in range(rng.randint(3, 40)))} for i in range(n)]
        plain = write_jsonl(tmp_path / f"{name}.jsonl", rows)
        path = tmp_path / f"{name}.jsonl{ext}"
        with pa.CompressedOutputStream(str(path), codec) as out:
            out.write(plain.read_bytes())
        return path

    n = 150_000  # about 20 MB of JSONL: past the 4 MB sample
    total = source_rows(resolve_source(str(compressed("big", n)), None))
    assert total.rows is not None and not total.exact and abs(total.rows - n) / n < 0.15, total
    assert source_rows(resolve_source(str(compressed("small", 300)), None)) == (300, True)
    with RowProgress(total, file=open(os.devnull, "w")) as bar:
        assert f"/~{{total_fmt}}" in bar.bar.bar_format


def test_a_resumed_run_starts_its_bar_at_the_rows_already_done(tmp_path, tiny_model, monkeypatch):
    import mixedclf.engines.run as pipeline
    from mixedclf.engines.local import LocalEngine
    from mixedclf.engines.progress import RowProgress
    from mixedclf.errors import Interrupted
    from mixedclf.io.checkpoint import Checkpoint

    inp = write_jsonl(tmp_path / "in.jsonl", reviews(120))
    out = tmp_path / "out.jsonl"
    opts = light_options(inp, out, tiny_model, chunk_rows=30)
    seen: list[int] = []

    def stop_after_two_chunks(rows: int) -> None:
        seen.append(rows)
        if sum(seen) >= 45:
            engine.signals.signum = signal.SIGTERM  # as the handler would: stop after the chunk in hand

    engine = LocalEngine(opts, on_rows=stop_after_two_chunks)
    with pytest.raises(Interrupted):
        engine.run()
    done = Checkpoint.load(out).rows_in
    assert done == 60

    bars: list[RowProgress] = []

    class Recorded(RowProgress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.start = self.bar.n
            bars.append(self)

    monkeypatch.setattr(pipeline, "RowProgress", Recorded)
    result = pipeline.classify_file(opts.model_copy(update={"resume": True}), progress=True)
    assert result.report.rows_out == 120
    assert bars[0].start == done and bars[0].bar.n == 120 and bars[0].bar.total == 120


# --- JSON on stdout -----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_classify_format_json_prints_one_object_and_nothing_else(tmp_path, tiny_model):
    inp = write_jsonl(tmp_path / "in.jsonl", reviews(40) + [{"id": 40, "text": None}])
    out, report = tmp_path / "out.parquet", tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIXEDCLF_")}
    env.update(PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", COLUMNS="160")
    proc = subprocess.run(
        [sys.executable, "-m", "mixedclf", "classify", str(inp), "-o", str(out), "--model", str(tiny_model),
         "--device", "cpu", "--mode", "gpu-only", "--report", str(report), "--format", "json"],
        capture_output=True, text=True, env=env, timeout=240, cwd=tmp_path,
    )
    assert proc.returncode == EXIT_ROWS_SKIPPED, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["rows_in"], summary["rows_out"], summary["rows_errored"]) == (41, 40, 1)
    assert summary["output"] == str(out) and summary["report"] == str(report)
    assert summary["errors"] == str(out) + ".errors.jsonl" and summary["seconds"] > 0
    saved = json.loads(report.read_text())
    for basis, name in (("pay_per_use", "pay-per-use"), ("provisioned", "provisioned")):
        for key in ("mixed", "gpu_only", "mixed_per_1k"):
            assert summary[basis][key] == saved["cost"][basis][key]
        # a CPU run: its GPU-only figure is CPU seconds at the GPU rate, so no saving is claimed
        assert summary[basis]["billing"] == name and summary[basis]["savings_claimed"] is False
        assert summary[basis]["savings"] is None and summary[basis]["savings_pct"] is None
    # stderr holds the one line about the skipped row, and none of the libraries' chatter
    assert proc.stderr.strip().splitlines() == [f"1 rows skipped: see {out}.errors.jsonl"], proc.stderr


def _mixedclf(args, tmp_path, **env_over) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIXEDCLF_") and k != "COLUMNS"}
    env.update(PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", **env_over)
    return subprocess.run([sys.executable, "-m", "mixedclf", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=240, cwd=tmp_path)


@pytest.mark.slow
def test_quiet_prints_nothing_on_success_and_the_summary_only_when_asked(tmp_path, tiny_model):
    """Cron mails whatever a job prints: a quiet success prints nothing, on either stream."""
    inp = write_jsonl(tmp_path / "in.jsonl", reviews(30))
    common = ["classify", inp, "--model", tiny_model, "--device", "cpu", "--mode", "gpu-only", "-q"]
    done = _mixedclf([*common, "-o", tmp_path / "a.jsonl"], tmp_path)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", (done.stdout, done.stderr)
    asked = _mixedclf([*common, "-o", tmp_path / "b.jsonl", "--format", "json"], tmp_path)
    assert asked.returncode == 0 and json.loads(asked.stdout)["rows_out"] == 30 and asked.stderr == ""
    bad = write_jsonl(tmp_path / "bad.jsonl", reviews(3) + [{"id": 3, "text": None}])
    skipped = _mixedclf([*common[:1], bad, *common[2:], "-o", tmp_path / "c.jsonl"], tmp_path)
    assert skipped.returncode == EXIT_ROWS_SKIPPED and skipped.stdout == ""
    assert "1 rows skipped" in skipped.stderr  # a problem is still said, on stderr


def test_a_closed_pipe_is_its_own_exit_code_with_one_line(tmp_path):
    """`mixedclf ... | head -1`: the reader goes away; the exit says so (141), and stderr has one line."""
    from mixedclf.errors import EXIT_PIPE_CLOSED

    env = {k: v for k, v in os.environ.items() if not k.startswith("MIXEDCLF_")}
    env.update(PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    report = write_classify_report(tmp_path / "r.json")
    for args in (["estimate", "--requests-per-day", "10000"], ["estimate", "--format", "markdown"],
                 ["check", report, "--baseline", report], ["--help"], ["classify", "--help"]):
        proc = subprocess.Popen([sys.executable, "-m", "mixedclf", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, cwd=tmp_path)
        proc.stdout.close()  # before anything is read, as a `| head -0` would
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == EXIT_PIPE_CLOSED, (args, err)
        assert err.strip().splitlines() == ["error: stdout was closed before everything was written (broken pipe)"]


def test_tables_in_a_log_are_never_wrapped_mid_cell(tmp_path):
    """Cron mail and CI logs are not terminals: with no COLUMNS a table keeps its natural width (rich's default
    there is 80 columns, which cut every long row in two); COLUMNS, when set, still rules."""
    report = write_classify_report(tmp_path / "r.json")
    wide = _mixedclf(["report", "show", report], tmp_path)
    assert wide.returncode == 0, wide.stderr
    title = "Per stage (pay-per-use: busy seconds × rate; model load is in the provisioned totals)"
    lines = wide.stdout.splitlines()
    assert title in lines and max(map(len, lines)) > 80
    row = next(line for line in lines if line.startswith("provisioned"))
    assert row.count("$") >= 4  # every cost of the row on the row's own line
    narrow = _mixedclf(["report", "show", report], tmp_path, COLUMNS="60")
    assert max(map(len, narrow.stdout.splitlines())) <= 60


def test_models_format_json(tmp_path, tiny_model):
    result = invoke("models", "--search", tiny_model.parent, "--format", "json")
    assert result.exit_code == 0, result.output
    models = json.loads(result.stdout)
    by_name = {m["name"]: m for m in models}
    assert "tiny-bert" in by_name and by_name["tiny-bert"]["labels"] == ["NEGATIVE", "POSITIVE"]
    assert by_name["tiny-bert"]["path"] == str(tiny_model)


def test_an_unknown_format_is_a_one_line_error(tmp_path):
    result = invoke("classify", tmp_path / "in.jsonl", "-o", tmp_path / "o.jsonl", "--format", "yaml")
    assert result.exit_code == 2 and "--format must be one of" in result.output and "Traceback" not in result.output


# --- settings: command line > environment > --config > packaged defaults ------------------------------------------
def test_settings_precedence(tmp_path, monkeypatch):
    from mixedclf.core.options import build_options

    config = tmp_path / "mine.toml"
    config.write_text('[classify]\nbatch_size = 10\ndevice = "cuda"\nmax_batch_tokens = 999\n', encoding="utf-8")
    base = {"input": tmp_path / "in.jsonl", "output": tmp_path / "out.jsonl"}

    packaged = build_options(base)
    # batch caps unset: the runner takes the device's own (64 / 8,192 on a CPU, 1,024 / 65,536 on CUDA)
    assert (packaged.batch_size, packaged.device, packaged.max_batch_tokens, packaged.profile) == (
        None, "auto", None, "reference")
    from_file = build_options(base, config)
    assert (from_file.batch_size, from_file.device, from_file.max_batch_tokens) == (10, "cuda", 999)

    monkeypatch.setenv("MIXEDCLF_BATCH_SIZE", "20")
    monkeypatch.setenv("MIXEDCLF_DEVICE", "cpu")
    monkeypatch.setenv("MIXEDCLF_PROFILE", "aws")
    monkeypatch.setenv("MIXEDCLF_DEDUP", "false")
    env = build_options(base, config)
    assert (env.batch_size, env.device, env.max_batch_tokens, env.profile, env.dedup) == (20, "cpu", 999, "aws", False)

    cli = build_options({**base, "batch_size": 30, "dedup": True}, config)
    assert (cli.batch_size, cli.device, cli.dedup) == (30, "cpu", True)

    monkeypatch.setenv("MIXEDCLF_CONFIG", str(config))  # the config file itself may come from the environment
    monkeypatch.delenv("MIXEDCLF_BATCH_SIZE")
    assert build_options(base).batch_size == 10


def test_a_bad_environment_value_is_a_one_line_error_naming_the_variable(tmp_path):
    inp = write_jsonl(tmp_path / "in.jsonl", reviews(3))
    result = invoke("classify", inp, "-o", tmp_path / "o.jsonl", env={"MIXEDCLF_BATCH_SIZE": "many"})
    assert result.exit_code == 2 and "MIXEDCLF_BATCH_SIZE" in result.output and "Traceback" not in result.output


def test_serve_reads_the_environment_between_the_command_line_and_the_config(tmp_path, monkeypatch, tiny_model):
    pytest.importorskip("fastapi")
    import mixedclf.serve.app as serve_app

    seen = {}
    monkeypatch.setattr(serve_app, "run_server", lambda s: seen.setdefault("settings", s))
    config = tmp_path / "serve.toml"
    config.write_text("[serve]\nmax_wait_ms = 7.5\nmax_batch_size = 4\n", encoding="utf-8")
    result = invoke("serve", "--model", tiny_model, "--port", "9123", "--config", config,
                    env={"MIXEDCLF_PORT": "9999", "MIXEDCLF_MAX_WAIT_MS": "2", "MIXEDCLF_DEVICE": "cpu"})
    assert result.exit_code == 0, result.output
    s = seen["settings"]
    assert (s.port, s.max_wait_ms, s.max_batch_size, s.device) == (9123, 2.0, 4, "cpu")


def test_shell_completion_is_offered():
    result = invoke("--help")
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout


# --- help ---------------------------------------------------------------------------------------------------------
def _commands():
    import typer.main

    from mixedclf.cli.app import app

    root = typer.main.get_command(app)
    stack = [((), root)]
    while stack:
        path, command = stack.pop()
        yield path, command
        for name, sub in (getattr(command, "commands", None) or {}).items():
            stack.append(((*path, name), sub))


def _option_rows(help_text: str) -> dict[str, str]:
    """The rows of rich's option panels, joined across wrapped lines: {'--batch-size': 'row text', ...}."""
    rows: dict[str, str] = {}
    current = None
    for line in help_text.splitlines():
        body = line.strip().strip("│").strip()
        # An option starts its row; a wrapped help line that happens to begin with an option is indented deeper.
        match = re.match(r"^\s*│\s{1,4}(?:\*\s+)?(--[a-z0-9-]+)", line)
        if match:
            current = match.group(1)
            rows[current] = body
        elif current and body and not line.lstrip().startswith(("╰", "╭")):
            rows[current] += " " + body
        elif line.lstrip().startswith("╰"):
            current = None
    return rows


def test_help_of_every_command_keeps_its_defaults_once_and_shows_flags_as_flags():
    paths = [path for path, _ in _commands()]
    assert ("classify",) in paths and ("report", "show") in paths and ("serve",) in paths
    for path in paths:
        result = invoke(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.stdout, path
        for option, row in _option_rows(result.stdout).items():
            assert row.count("[default:") <= 1, (path, option, row)


def test_classify_help_shows_the_defaults_a_run_actually_uses(tmp_path):
    from mixedclf.core.options import DEFAULT_CHUNK_ROWS, build_options

    rows = _option_rows(invoke("classify", "--help").stdout)
    opts = build_options({"input": tmp_path / "i.jsonl", "output": tmp_path / "o.jsonl"})
    for name in ("text_field", "id_field", "model", "device", "precision", "mode", "clean", "engine",
                 "on_error", "profile"):
        option = "--" + name.replace("_", "-")
        assert f"[default: {getattr(opts, name)}]" in rows[option], (option, rows[option])
    from mixedclf.core.batching import BATCH_DEFAULTS

    cpu, cuda = BATCH_DEFAULTS["cpu"], BATCH_DEFAULTS["cuda"]
    assert f"[default: {cpu[0]} on a CPU, {cuda[0]} on CUDA]" in rows["--batch-size"]
    assert f"[default: {cpu[1]} on a CPU, {cuda[1]} on CUDA]" in rows["--max-batch-tokens"]
    assert (f"[default: {DEFAULT_CHUNK_ROWS['local']}; {DEFAULT_CHUNK_ROWS['ray']} with --engine ray, "
            f"{DEFAULT_CHUNK_ROWS['runpod']} with --engine runpod]") in rows["--chunk-rows"]
    assert opts.dedup and "[default: dedup]" in rows["--dedup"]
    assert "--no-dedup" in rows["--dedup"]
    estimate = _option_rows(invoke("estimate", "--help").stdout)
    assert "[default: 0.05]" in estimate["--pre-sec"] and "[default: reference]" in estimate["--profile"]
    assert estimate["--active-hours"].count("24") == 1


# --- width --------------------------------------------------------------------------------------------------------
def test_titles_and_paths_stay_on_one_line_in_a_wide_terminal(tmp_path, tiny_model, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths: a title of two of them fits in 160 columns, not in 78
    deep = Path("nightly-benchmark-reports") / "2024-06-01"
    deep.mkdir(parents=True)
    current = write_classify_report(deep / "current-classify-report.json")
    baseline = write_classify_report(deep / "baseline-classify-report.json")

    shown = invoke("report", "show", current)
    assert shown.exit_code == 0, shown.output
    title = "Per stage (pay-per-use: busy seconds × rate; model load is in the provisioned totals)"
    assert any(title in line for line in shown.stdout.splitlines()), shown.stdout

    checked = invoke("check", current, "--baseline", baseline)
    assert checked.exit_code == 0, checked.output
    assert any(str(baseline) in line and str(current) in line for line in checked.stdout.splitlines()), checked.stdout

    models_dir = tmp_path / "model-zoo"  # fits in 160 columns beside the other columns, not in 80
    shutil.copytree(tiny_model, models_dir / "tiny-bert")
    listed = invoke("models", "--search", models_dir)
    assert listed.exit_code == 0, listed.output
    assert "…" not in listed.stdout
    assert any(str(models_dir / "tiny-bert") in line for line in listed.stdout.splitlines()), listed.stdout


# --- train --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def labeled(tmp_path_factory):
    from test_train import build_tiny_encoder, synthetic

    folder = tmp_path_factory.mktemp("train")
    texts, labels, groups = synthetic()
    data = folder / "labeled.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": l, "movie": g}) + "\n"
                            for t, l, g in zip(texts, labels, groups)), encoding="utf-8")
    return data, build_tiny_encoder(folder / "encoder")


@pytest.mark.slow
def test_train_prints_percentages_no_unrun_baseline_and_no_library_chatter(tmp_path, labeled):
    data, encoder = labeled
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIXEDCLF_", "TRANSFORMERS_", "HF_HUB_DIS"))}
    env.update(PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", COLUMNS="160")
    proc = subprocess.run(
        [sys.executable, "-m", "mixedclf", "train", str(data), "--out", str(tmp_path / "head"), "--encoder",
         str(encoder), "--group-field", "movie"],
        capture_output=True, text=True, env=env, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    both = proc.stdout + proc.stderr
    assert re.search(r"held-out accuracy\s*│?\s*\d+\.\d%", both), both
    assert not re.search(r"accuracy \d\.\d{3,}", both), both  # no raw float digits
    assert "baseline" not in both.lower()  # nothing was trained beyond the head, so there is no baseline
    for chatter in ("Loading weights", "Failed to load", "it/s]", "_pytree"):
        assert chatter not in proc.stderr, proc.stderr


def test_train_names_the_baseline_when_it_ran_one(tmp_path, labeled):
    from mixedclf.models.train import train_head
    from mixedclf.io.labeled import load_labeled

    data, encoder = labeled
    loaded = load_labeled(data, "text", "label", "movie")
    lines: list[str] = []
    train_head(loaded.texts, loaded.labels, tmp_path / "head", groups=loaded.groups, encoder=str(encoder),
               train_top_layers=1, epochs=1, log=lines.append)
    baseline = [line for line in lines if "baseline" in line]
    assert baseline and all(re.search(r"\d+\.\d%", line) for line in baseline), lines


# --- help that teaches: panels, examples, completion (issue 24) -------------------------------------------------
def test_classify_options_are_grouped_in_panels():
    text = invoke("classify", "--help").stdout
    titles = re.findall(r"╭─ ([A-Za-z ]+?) ─", text)
    assert {"Input and output", "Model", "Speed", "Cost", "Reliability"} <= set(titles), titles
    panel_of, current = {}, None
    for line in text.splitlines():
        found = re.match(r"\s*╭─ ([A-Za-z ]+?) ─", line)
        if found:
            current = found.group(1)
        option = re.match(r"^│\s+\*?\s*(--[a-z0-9-]+)", line)
        if option:
            panel_of[option.group(1)] = current
    assert (panel_of["--output"], panel_of["--precision"], panel_of["--chunk-rows"], panel_of["--max-cost"],
            panel_of["--resume"]) == ("Input and output", "Model", "Speed", "Cost", "Reliability")


def test_every_command_shows_two_or_three_examples_that_name_real_options():
    for path, command in _commands():
        if getattr(command, "commands", None):  # a group: its commands carry the examples
            continue
        text = invoke(*path, "--help").stdout
        examples = [line.strip()[2:] for line in text.splitlines() if line.strip().startswith("$ ")]
        assert 2 <= len(examples) <= 3 and "Examples" in text, (path, examples)
        options = {o for p in command.params for o in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]}
        for example in examples:
            mine = example[example.index("mixedclf "):].split("|")[0]
            for word in mine.split():
                assert not word.startswith("-") or word == "-" or word in options, (path, word)


def test_choice_options_complete_their_values():
    import typer.main

    from mixedclf.cli.app import app

    classify_cmd = typer.main.get_command(app).commands["classify"]
    ctx = classify_cmd.make_context("classify", ["x", "-o", "y"], resilient_parsing=True)
    params = {p.name: p for p in classify_cmd.params}
    complete = {name: [c.value for c in params[name].shell_complete(ctx, prefix)]
                for name, prefix in (("device", "c"), ("precision", "f"), ("backend", ""))}
    assert complete == {"device": ["cpu", "cuda", "cuda:0"], "precision": ["fp32", "fp16"],
                        "backend": ["torch", "onnxruntime"]}
