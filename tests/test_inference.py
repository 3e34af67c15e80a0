"""The device stage: logits per micro-batch shape, the device defaults, and the CUDA path run on a CPU stand-in."""

from __future__ import annotations

import contextlib
import time

import numpy as np
import pytest
import torch

from mixedclf.core import cuda_feed
from mixedclf.core.batching import BATCH_DEFAULTS, batch_limits, fill_padded, plan_micro_batches
from mixedclf.core.inference import InferenceRunner
from mixedclf.core.preprocess import make_tokenizer, preprocess_texts

TEXTS = [f"good food {'bad ' * (i % 9)}{'really ' * (i % 4)}service" for i in range(70)] + ["", "ok", "it was fine"]


@pytest.fixture(scope="module")
def loaded(tiny_model):
    from mixedclf.models.backend import load_model
    from mixedclf.models.spec import resolve_model
    from mixedclf.models.tokenizer import tokenizer_json_and_pad_id

    spec = resolve_model(tiny_model)
    tokenizer_json, pad_id = tokenizer_json_and_pad_id(spec)
    batch = preprocess_texts(TEXTS, make_tokenizer(tokenizer_json, spec.max_length))
    return load_model(spec, torch.device("cpu"), "fp32").module, batch, pad_id


def reference_logits(module, batch, batch_size, max_batch_tokens, pad_id):
    """The plainest version of the stage: each micro-batch padded row by row from Python lists, fresh tensors."""
    out = np.empty((len(batch), 2), dtype=np.float32)
    for rows in plan_micro_batches(batch.lengths, batch_size, max_batch_tokens):
        seqs = [batch.row_ids(r).tolist() for r in rows]
        width = max(max(map(len, seqs)), 1)
        ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in seqs], dtype=torch.int64)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], dtype=torch.int64)
        with torch.inference_mode():
            out[rows] = module(input_ids=ids, attention_mask=mask).float().numpy()
    return out


SHAPES = [(64, 8192), (16, 8192), (7, 100), (1, 8192), (73, 24), (1024, 65536)]


@pytest.mark.parametrize("batch_size,max_batch_tokens", SHAPES)
def test_logits_equal_the_plain_padding_bit_for_bit(loaded, batch_size, max_batch_tokens):
    module, batch, pad_id = loaded
    runner = InferenceRunner(module, torch.device("cpu"), 2, pad_id)
    got = runner.logits(batch, batch_size, max_batch_tokens)
    np.testing.assert_array_equal(got, reference_logits(module, batch, batch_size, max_batch_tokens, pad_id))
    again = runner.logits(batch, batch_size, max_batch_tokens)  # reused buffers hold the last batch's values
    np.testing.assert_array_equal(again, got)
    s = runner.stats
    assert s.rows == 2 * len(batch) and s.batches == 2 * len(plan_micro_batches(batch.lengths, batch_size,
                                                                                   max_batch_tokens))
    assert 0 < s.forward_s <= s.loop_s and s.wait_s == 0 and s.host_overhead_s > 0


def test_fill_padded_matches_row_by_row_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 12, size=40).astype(np.int32)
    tokens = rng.integers(5, 1000, size=int(lengths.sum())).astype(np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    rows = np.array([3, 17, 0, 39, 8])
    width = max(int(lengths[rows].max()), 1) + 2  # wider than the longest row: padding on every row
    for pad_id in (0, 3):
        ids, mask, scratch = (np.full((len(rows), width), -9, np.int64) for _ in range(3))
        fill_padded(tokens if tokens.size else np.zeros(1, np.int64), offsets, lengths, rows, pad_id, ids, mask,
                    scratch)
        for i, r in enumerate(rows):
            row = tokens[offsets[r] : offsets[r + 1]].tolist()
            assert ids[i].tolist() == row + [pad_id] * (width - len(row))
            assert mask[i].tolist() == [1] * len(row) + [0] * (width - len(row))


def test_device_defaults_in_one_place():
    assert batch_limits("cpu") == (64, 8192) == batch_limits("mps") == batch_limits("xpu")
    rows, tokens = batch_limits("cuda")
    assert tokens >= 65536 and rows >= 1024 and (rows, tokens) == BATCH_DEFAULTS["cuda"]
    assert batch_limits("cuda", 32) == (32, tokens) and batch_limits("cpu", None, 100) == (64, 100)


def test_cuda_device_selects_the_pipelined_path_without_touching_the_driver(loaded):
    module = loaded[0]
    cuda = InferenceRunner(module, torch.device("cuda"), 2)
    assert isinstance(cuda._feed, cuda_feed.PipelinedFeed) and cuda._feed._ops is None  # nothing created yet
    assert (cuda.batch_size, cuda.max_batch_tokens) == BATCH_DEFAULTS["cuda"]
    cpu = InferenceRunner(module, torch.device("cpu"), 2)
    assert cpu._feed is None and (cpu.batch_size, cpu.max_batch_tokens) == BATCH_DEFAULTS["cpu"]


def test_classify_reports_the_device_defaults_it_used(tmp_path, tiny_model):
    from mixedclf.core.options import build_options
    from mixedclf.engines.run import classify_file

    (tmp_path / "in.jsonl").write_text("".join(f'{{"text": "{t}"}}\n' for t in TEXTS[:40]), encoding="utf-8")
    opts = build_options({"input": tmp_path / "in.jsonl", "output": tmp_path / "o.jsonl", "model": str(tiny_model),
                          "mode": "gpu-only", "device": "cpu"})
    report = classify_file(opts).report
    assert (report.settings["batch_size"], report.settings["max_batch_tokens"]) == BATCH_DEFAULTS["cpu"]
    assert report.extra["host_overhead_ms_per_batch"] > 0 and report.extra["device_forward_s"] > 0


class _Stream:
    """A stream whose copies run only when an event recorded after them is waited on (like a real async DMA
    that has not happened yet): a forward that reads a slot before waiting for its copy sees stale data."""

    def __init__(self, name):
        self.name, self.queued, self.done = name, [], 0

    def run_until(self, mark):
        while self.done < mark:
            self.queued[self.done]()
            self.done += 1

    def wait_event(self, event):
        event.complete()

    def synchronize(self):
        self.run_until(len(self.queued))


class _Event:
    def __init__(self, log):
        self.log, self.stream, self.mark, self.at = log, None, 0, None

    def record(self, stream):
        self.stream, self.mark, self.at = stream, len(stream.queued), time.perf_counter()

    def complete(self):
        if self.stream is not None:
            self.stream.run_until(self.mark)

    def synchronize(self):
        self.complete()
        self.log.append(f"host waits on {self.stream.name if self.stream else 'nothing'}")

    def elapsed_time(self, end):
        return (end.at - self.at) * 1e3


class CpuStandIn:
    """TorchCudaOps' methods over CPU tensors: the compute stream runs at once, the side stream deferred."""

    def __init__(self):
        self.log: list[str] = []
        self.compute, self.current = _Stream("compute"), None
        self.pinned_calls = 0

    def pinned(self, numel, dtype):
        self.pinned_calls += 1
        return torch.zeros(numel, dtype=dtype)

    def device_empty(self, numel, dtype):
        return torch.full((numel,), 7, dtype=dtype)  # stale values, as uninitialised device memory would hold

    def new_stream(self):
        return _Stream("side")

    def current_stream(self):
        return self.current or self.compute

    def new_event(self, timing=False):
        return _Event(self.log)

    @contextlib.contextmanager
    def on(self, stream):
        self.current = stream
        try:
            yield
        finally:
            self.current = None

    def copy(self, dst, src):
        stream = self.current_stream()
        if stream is self.compute:
            dst.copy_(src)
        else:
            stream.queued.append(lambda: dst.copy_(src))

    def empty_cache(self):
        pass


@pytest.mark.parametrize("batch_size,max_batch_tokens", [(16, 8192), (7, 100), (1, 8192), (1024, 65536)])
def test_pipelined_path_gives_the_same_logits_with_one_synchronize_per_call(loaded, batch_size, max_batch_tokens):
    module, batch, pad_id = loaded
    expected = InferenceRunner(module, torch.device("cpu"), 2, pad_id).logits(batch, batch_size, max_batch_tokens)
    runner = InferenceRunner(module, torch.device("cuda"), 2, pad_id)
    ops = CpuStandIn()
    runner._feed = cuda_feed.PipelinedFeed(torch.device("cpu"), ops)  # the module lives on the CPU
    for call in range(3):
        np.testing.assert_array_equal(runner.logits(batch, batch_size, max_batch_tokens), expected)
        assert ops.log.count("host waits on compute") == call + 1  # the chunk's one synchronize
    micro = len(plan_micro_batches(batch.lengths, batch_size, max_batch_tokens))
    # the host waits on a slot's copy before each reuse; only the first call's first slots were never used
    assert ops.log.count("host waits on side") == 3 * micro - min(micro, cuda_feed.SLOTS)
    s = runner.stats
    assert s.batches == 3 * micro and s.rows == 3 * len(batch) and s.busy_s > 0 and s.forward_s > 0
    assert ops.pinned_calls == cuda_feed.SLOTS + 1  # slots and the logits buffer, allocated once


def test_pipelined_path_recovers_from_a_failed_forward(loaded):
    module, batch, pad_id = loaded
    expected = InferenceRunner(module, torch.device("cpu"), 2, pad_id).logits(batch, 8, 8192)
    calls = []

    def failing_once(**kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("device lost")
        return module(**kwargs)

    runner = InferenceRunner(failing_once, torch.device("cuda"), 2, pad_id)
    ops = CpuStandIn()
    runner._feed = cuda_feed.PipelinedFeed(torch.device("cpu"), ops)
    with pytest.raises(RuntimeError, match="device lost"):
        runner.logits(batch, 8, 8192)
    assert all(s.done == len(s.queued) for s in (ops.compute, runner._feed._side))  # drained before raising
    np.testing.assert_array_equal(runner.logits(batch, 8, 8192), expected)


def test_models_load_with_sdpa_attention_and_fall_back_where_unsupported(tiny_model):
    from mixedclf.models import loading
    from mixedclf.models.spec import resolve_model

    module = loading.build_module(resolve_model(tiny_model), implementation="transformers")
    assert module.model.config._attn_implementation == "sdpa"
    calls = []

    class NoSdpa:
        message = "X does not support an attention implementation through torch.nn.functional.scaled_dot_product_attention"  # noqa: E501

        @classmethod
        def from_pretrained(cls, path, **kwargs):
            calls.append(kwargs)
            if "attn_implementation" in kwargs:
                raise ValueError(cls.message)
            return "loaded"

    assert loading._from_pretrained(NoSdpa, "folder", add_pooling_layer=False) == "loaded"
    assert calls == [{"local_files_only": True, "attn_implementation": "sdpa", "add_pooling_layer": False},
                     {"local_files_only": True, "add_pooling_layer": False}]
    NoSdpa.message = "config.json is not valid"  # any other error is the model's own problem, reported as is
    with pytest.raises(ValueError, match="not valid"):
        loading._from_pretrained(NoSdpa, "folder")
