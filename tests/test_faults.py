"""Issue 5: dying workers, device out-of-memory, stage timeouts, signals, resume and atomic outputs."""

import json
import multiprocessing
import os
import signal
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import classify_process
from datagen import write_jsonl
from typer.testing import CliRunner

from mixedclf.cli.app import app
from mixedclf.core.options import build_options
from mixedclf.engines.local import LocalEngine
from mixedclf.io.checkpoint import checkpoint_path

pytestmark = pytest.mark.slow  # real classify processes killed and resumed

runner = CliRunner()


@pytest.fixture(scope="module")
def big_input(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("big") / "big.jsonl", 3000, seed=1)


def test_a_killed_worker_is_replaced_and_no_row_is_lost(tmp_path, tiny_model, big_input):
    killed = []

    def kill_a_worker(_rows):
        if not killed:
            victim = multiprocessing.active_children()[0]
            os.kill(victim.pid, signal.SIGKILL)
            killed.append(victim.pid)

    opts = build_options({"input": big_input, "output": tmp_path / "o.jsonl", "model": str(tiny_model),
                          "cpu_workers": 1, "chunk_rows": 200})
    engine = LocalEngine(opts, on_rows=kill_a_worker)
    result = engine.run()
    assert killed and engine.pool_restarts >= 1
    assert result.rows_out == 3000
    ids = [json.loads(line)["id"] for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert ids == list(range(3000))


def test_device_out_of_memory_splits_the_batch(tiny_model, monkeypatch):
    from mixedclf.core.inference import InferenceRunner
    from mixedclf.core.preprocess import make_tokenizer, preprocess_texts
    from mixedclf.models.backend import load_model
    from mixedclf.models.spec import resolve_model
    from mixedclf.models.tokenizer import tokenizer_json_and_pad_id

    spec = resolve_model(tiny_model)
    tokenizer = make_tokenizer(tokenizer_json_and_pad_id(spec)[0], spec.max_length)
    batch = preprocess_texts([f"good food {'bad ' * (i % 7)}" for i in range(40)], tokenizer)
    module = load_model(spec, torch.device("cpu")).module
    expected = InferenceRunner(module, torch.device("cpu"), 2).logits(batch, 32, 10_000)

    runner_ = InferenceRunner(module, torch.device("cpu"), 2)
    real_forward = runner_._forward

    def small_device(ids, mask):
        if len(ids) > 5:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(ids, mask)

    monkeypatch.setattr(runner_, "_forward", small_device)
    got = runner_.logits(batch, 32, 10_000)
    assert runner_.stats.oom_splits >= 3
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("option", ["--stage-timeout-cpu", "--stage-timeout-gpu"])
def test_a_stage_over_its_timeout_fails_the_run_clearly(tmp_path, tiny_model, big_input, option):
    out = tmp_path / "o.jsonl"
    result = runner.invoke(app, ["classify", str(big_input), "-o", str(out), "--model", str(tiny_model),
                                 "--cpu-workers", "1", option, "0.0005"])
    assert result.exit_code == 1, result.output
    assert "took longer than" in result.output and "Traceback" not in result.output
    assert not out.exists()


def _interrupt_when_checkpointed(proc, output, sig, deadline_s=120):
    """Send sig once the first chunks are safely written (the checkpoint file exists)."""
    start = time.monotonic()
    while not checkpoint_path(output).exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - start < deadline_s
        time.sleep(0.01)
    proc.send_signal(sig)
    return proc.wait(timeout=120)


@pytest.mark.parametrize("fmt, sig, code", [("jsonl", signal.SIGINT, 130), ("csv", signal.SIGTERM, 143),
                                            ("parquet", signal.SIGINT, 130)])
def test_interrupt_then_resume_equals_an_uninterrupted_run(tmp_path, tiny_model, big_input, fmt, sig, code):
    common = ["--model", tiny_model, "--chunk-rows", "100", "--cpu-workers", "1", "-q"]
    whole = tmp_path / f"whole.{fmt}"
    assert classify_process(big_input, "-o", whole, *common, wait=False).wait(timeout=300) == 0

    out = tmp_path / f"out.{fmt}"
    proc = classify_process(big_input, "-o", out, *common, wait=False)
    assert _interrupt_when_checkpointed(proc, out, sig) == code
    stderr = proc.stderr.read()
    assert "--resume" in stderr
    assert not out.exists() and checkpoint_path(out).exists()

    resumed = classify_process(big_input, "-o", out, "--resume", *common, wait=False)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert not checkpoint_path(out).exists()
    if fmt == "parquet":
        assert pq.read_table(out).equals(pq.read_table(whole))
    else:
        assert out.read_bytes() == whole.read_bytes()


def test_killed_run_leaves_the_old_output_untouched(tmp_path, tiny_model, big_input):
    out = tmp_path / "out.jsonl"
    out.write_text("previous run\n")
    proc = classify_process(big_input, "-o", out, "--model", tiny_model, "--chunk-rows", "100", "-q", wait=False)
    _interrupt_when_checkpointed(proc, out, signal.SIGKILL)
    assert out.read_text() == "previous run\n"


def test_resume_refuses_a_changed_input(tmp_path, tiny_model, big_input):
    out = tmp_path / "out.jsonl"
    proc = classify_process(big_input, "-o", out, "--model", tiny_model, "--chunk-rows", "100", "-q", wait=False)
    _interrupt_when_checkpointed(proc, out, signal.SIGINT)
    result = runner.invoke(app, ["classify", str(big_input), "-o", str(out), "--model", str(tiny_model),
                                 "--chunk-rows", "50", "--resume"])
    assert result.exit_code == 2 and "other options" in result.output
