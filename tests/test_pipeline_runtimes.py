"""Every runtime drives the one stage contract (core.pipeline): the local engine, the Ray stages and the server
each call its three steps, and nothing else runs the model or assembles output rows."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow as pa
import pytest
import torch
from conftest import SAMPLE_JSONL

from mixedclf.core.pipeline import OutputStep, StagePipeline
from mixedclf.core.sequences import Sequences


@pytest.fixture
def calls(monkeypatch):
    """Counts each contract step; `infer` also checks it is handed Sequences."""
    seen: Counter = Counter()

    def spy(owner, name):
        real = getattr(owner, name)

        def wrapper(*args, **kwargs):
            seen[name] += 1
            if name == "infer":
                assert isinstance(args[1], Sequences)
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    spy(StagePipeline, "infer")
    spy(OutputStep, "table")
    spy(OutputStep, "predictions")
    seen.spy = spy  # type: ignore[attr-defined]
    return seen


def test_the_local_engine_drives_the_contract(calls, tiny_model, tmp_path):
    import mixedclf.engines.feed as feed
    from mixedclf.core.options import build_options
    from mixedclf.engines.local import LocalEngine

    calls.spy(feed, "to_sequences")  # gpu-only: the rows -> sequences step runs in this process
    opts = build_options({"input": SAMPLE_JSONL, "output": tmp_path / "out.jsonl", "model": str(tiny_model),
                          "mode": "gpu-only", "chunk_rows": 100, "first_chunk_rows": 100})
    result = LocalEngine(opts).run()
    chunks = -(-result.rows_in // 100)
    assert calls["to_sequences"] == calls["infer"] == calls["table"] == chunks
    assert result.extra.micro_batches > 0 and result.extra.tokens > 0  # the report reads the contract's totals


class _Remote:
    def __init__(self):
        self.calls = []

    def remote(self, *args, **kwargs):
        self.calls.append((args, kwargs))


class _Collector:
    """Stands in for the Ray actor: records what each stage reports."""

    def __init__(self):
        self.add, self.loaded, self.numbered = _Remote(), _Remote(), _Remote()


def test_the_ray_stages_drive_the_contract(calls, tiny_model, monkeypatch):
    ray = pytest.importorskip("ray")
    import mixedclf.engines.ray.stages as stages
    from mixedclf.models.spec import resolve_model
    from mixedclf.models.tokenizer import tokenizer_json_and_pad_id

    monkeypatch.setattr(ray, "get", lambda ref, **kwargs: ref)  # the callables run here, not as Ray tasks
    calls.spy(stages, "to_sequences")
    spec = resolve_model(str(tiny_model))
    tokenizer_json, pad_id = tokenizer_json_and_pad_id(spec)
    rows = [json.loads(line) for line in SAMPLE_JSONL.read_text().splitlines()][:40]
    collector = _Collector()
    table = stages.RowNumberer(collector)(pa.Table.from_pylist(rows))
    table = stages.Preprocess(tokenizer_json, spec.max_length, "standard", "text", "id", 1, "skip", "in.jsonl",
                              False, True, collector)(table)
    table = stages.Infer(str(tiny_model), "cpu", "fp32", torch.get_num_threads(), pad_id, 8, 4096, True,
                         collector)(table)
    out = stages.Postprocess(spec, "text", "id", False, False, collector)(table)
    assert calls["to_sequences"] == calls["infer"] == calls["table"] == 1
    assert out.column("id").to_pylist() == [r["id"] for r in rows]
    inference = [kw["stats"] for args, kw in collector.add.calls if args[0] == "inference"]
    assert inference[0]["sequences"] == len(rows) and inference[0]["batches"] > 0  # one call's own figures


def test_the_server_drives_the_contract(calls, tiny_model):
    import httpx
    from serve_helpers import serve_in_thread

    from mixedclf.serve.app import create_app
    from mixedclf.serve.settings import ServeSettings

    settings = ServeSettings(model=str(tiny_model), device="cpu", cpu_workers=1, torch_threads=torch.get_num_threads())
    app = create_app(settings)
    with serve_in_thread(app) as running:
        # the start-up's warm-up: a forward pass outside `infer` (never answered from a store), then the routes'
        # postprocess once, through the contract's predictions step
        assert (calls["infer"], calls["predictions"]) == (0, 1)
        with httpx.Client(base_url=running.url, trust_env=False, timeout=30) as c:
            assert c.post("/classify", json={"text": "good food"}).status_code == 200
            assert c.post("/classify/batch", json={"texts": ["bad", "fine"]}).status_code == 200
        assert calls["infer"] == 2 and calls["predictions"] == 1 + 2
        assert app.state.server.pipeline.work.sequences >= 3


def test_the_runpod_stage_workers_drive_the_contract(calls, tiny_model):
    import asyncio

    import mixedclf.cloud.stages as stages
    from mixedclf.cloud.workers import build_handler

    calls.spy(stages, "to_sequences")
    handler = build_handler("all", stages.load_stages("all", str(tiny_model)))
    out = asyncio.run(handler({"input": {"texts": ["good food", "bad", "fine"]}}))
    assert calls["to_sequences"] == calls["infer"] == calls["predictions"] == 1
    assert [r["word_count"] for r in out["results"]] == [2, 1, 1]


def test_the_local_engine_answers_held_rows_without_the_device(tiny_model, tmp_path):
    from test_pipeline import MemoryAnswers

    from mixedclf.core.options import build_options
    from mixedclf.engines.local import LocalEngine

    answers = MemoryAnswers()

    def run(name: str):
        opts = build_options({"input": SAMPLE_JSONL, "output": tmp_path / name, "model": str(tiny_model),
                              "dedup": True, "cpu_workers": 1})
        return LocalEngine(opts, answers=answers).run()

    first, second = run("first.jsonl"), run("second.jsonl")
    assert first.extra.micro_batches > 0 and second.extra.micro_batches == 0  # every row held: no forward pass
    assert second.rows_out == first.rows_out and answers.asked == first.rows_out + second.rows_out
    assert (tmp_path / "second.jsonl").read_bytes() == (tmp_path / "first.jsonl").read_bytes()


def test_the_server_answers_held_texts_without_the_device(tiny_model):
    import httpx
    from serve_helpers import serve_in_thread
    from test_pipeline import MemoryAnswers

    from mixedclf.serve.app import create_app
    from mixedclf.serve.settings import ServeSettings

    answers = MemoryAnswers()
    settings = ServeSettings(model=str(tiny_model), device="cpu", cpu_workers=1, torch_threads=torch.get_num_threads())
    app = create_app(settings, answers=answers)
    with serve_in_thread(app) as running:
        pipeline = app.state.server.pipeline
        rows_after_warm_up = pipeline.work.device.rows  # the warm-up pass is never answered from the store
        assert rows_after_warm_up == 1 and not answers.held
        with httpx.Client(base_url=running.url, trust_env=False, timeout=30) as c:
            first = c.post("/classify", json={"text": "good food, slow service"}).json()
            again = c.post("/classify", json={"text": "good food, slow service"}).json()
        assert pipeline.work.device.rows == rows_after_warm_up + 1  # the repeat never reached the device
        assert (pipeline.work.answer_hits, pipeline.work.answer_misses) == (1, 1)
        assert again["label"] == first["label"] and again["scores"] == first["scores"]
