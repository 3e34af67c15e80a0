"""mixedclf serve: the micro-batcher, the settings and CLI, and a real server over loopback HTTP.

Servers are started by the tests themselves with uvicorn on 127.0.0.1 and a free port, in a thread of this
process (`serve_in_thread`), so a test can also slow the device or the CPU pool down on purpose (timeouts, a
full queue, graceful shutdown). tests/test_serve_load.py runs the server in a subprocess exactly as
`mixedclf serve` does (and checks its graceful exit). Offline; CPU only.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mixedclf.serve.batcher import BatchOutcome, MicroBatcher, QueueFull, ShuttingDown
from mixedclf.serve.settings import ServeSettings

os.environ["HF_HUB_OFFLINE"] = "1"

pytestmark = pytest.mark.timeout(180)


def client(url: str, **kw) -> httpx.Client:
    return httpx.Client(base_url=url, trust_env=False, timeout=30, **kw)  # loopback only: never a proxy


def metric_value(text: str, name: str, labels: str = "") -> float:
    """The value of one sample of the Prometheus text exposition (0 when absent)."""
    key = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# --- the micro-batcher, with a fake device -------------------------------------------------------------------
class FakeDevice:
    """Doubles each payload after `delay` seconds; remembers every batch it ran."""

    def __init__(self, delay: float = 0.0, fail: bool = False):
        self.delay = delay
        self.fail = fail
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()

    def __call__(self, payloads):
        self.threads.add(threading.current_thread().name)
        self.batches.append(list(payloads))
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("device on fire")
        return BatchOutcome([p * 2 for p in payloads], busy_s=self.delay, micro_batches=[len(payloads)])


def run_async(coro, timeout: float = 30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_batcher_merges_concurrent_requests_in_one_device_thread_and_keeps_order():
    device = FakeDevice(delay=0.01)

    async def main():
        batcher = MicroBatcher(device, max_batch_size=8, max_wait_ms=50, max_queue=100)
        await batcher.start()

        async def one(i):
            with batcher.admit(1):
                await asyncio.sleep(0.001 * (i % 3))  # arrive a little apart, as preprocessing finishes
                return await batcher.submit(i, 1)

        deliveries = await asyncio.gather(*(one(i) for i in range(40)))
        await batcher.stop()
        return batcher, deliveries

    batcher, deliveries = run_async(main())
    assert [d.result for d in deliveries] == [2 * i for i in range(40)]
    assert all(len(b) <= 8 for b in device.batches)
    assert sum(len(b) for b in device.batches) == 40
    assert batcher.stats.mean_batch_rows > 1
    assert len(device.threads) == 1 and next(iter(device.threads)).startswith("mixedclf-device")
    assert all(1 <= d.batch_rows <= 8 and d.batch_requests == d.batch_rows for d in deliveries)


def test_batcher_runs_a_lone_request_at_once_instead_of_waiting():
    device = FakeDevice()

    async def main():
        batcher = MicroBatcher(device, max_batch_size=8, max_wait_ms=2000, max_queue=10)
        await batcher.start()
        start = time.monotonic()
        with batcher.admit(1):
            delivery = await batcher.submit(21, 1)
        elapsed = time.monotonic() - start
        await batcher.stop()
        return delivery, elapsed

    delivery, elapsed = run_async(main())
    assert delivery.result == 42 and delivery.batch_rows == 1
    assert elapsed < 1.0  # nothing else was admitted, so it did not sit out max_wait_ms (2 s)


def test_batcher_with_batches_in_flight_sends_the_next_without_waiting_for_them():
    """max_in_flight 2 (a remote stage): a lone request runs in the free slot at once while the first batch is still
    out; that batch's rows are running, not on their way, so they are no reason to wait out max_wait_ms."""
    release = threading.Event()
    ran: list[int] = []

    def device(payloads):
        ran.extend(payloads)
        if payloads == [1]:
            assert release.wait(30)
        return BatchOutcome([p * 2 for p in payloads], micro_batches=[len(payloads)])

    async def main():
        batcher = MicroBatcher(device, max_batch_size=8, max_wait_ms=2000, max_queue=10, max_in_flight=2)
        await batcher.start()

        async def one(value: int):
            with batcher.admit(1):
                return await batcher.submit(value, 1)

        first = asyncio.ensure_future(one(1))
        while ran != [1]:
            await asyncio.sleep(0.01)
        start = time.monotonic()
        second = await one(2)
        elapsed = time.monotonic() - start
        release.set()
        await first
        await batcher.stop()
        return second, elapsed, first.result()

    second, elapsed, first = run_async(main())
    assert (second.result, first.result, second.batch_rows) == (4, 2, 1)
    assert elapsed < 1.0  # not max_wait_ms (2 s), and not after the first batch


def test_batcher_refuses_past_max_queue_with_retry_after():
    async def main():
        batcher = MicroBatcher(FakeDevice(), max_batch_size=4, max_wait_ms=1, max_queue=3)
        await batcher.start()
        with batcher.admit(2):
            with pytest.raises(QueueFull) as full:
                with batcher.admit(2):
                    pass
            with batcher.admit(1):  # exactly at the bound is fine
                assert batcher.inflight_rows == 3
        assert batcher.inflight_rows == 0
        await batcher.stop()
        with pytest.raises(ShuttingDown):
            with batcher.admit(1):
                pass
        return full.value, batcher.stats.rejected

    exc, rejected = run_async(main())
    assert exc.retry_after_s >= 1 and "--max-queue 3" in str(exc)
    assert rejected == 1


def test_batcher_drops_requests_whose_caller_gave_up_and_survives_device_errors():
    device = FakeDevice(delay=0.2)

    async def main():
        batcher = MicroBatcher(device, max_batch_size=1, max_wait_ms=0, max_queue=10)
        await batcher.start()
        first = asyncio.ensure_future(batcher.submit(1, 1))  # occupies the device for 0.2 s
        await asyncio.sleep(0.05)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(batcher.submit(2, 1), 0.05)  # gives up while queued
        assert (await first).result == 2
        device.fail = True
        with pytest.raises(RuntimeError, match="on fire"):
            await batcher.submit(3, 1)
        device.fail, device.delay = False, 0
        assert (await batcher.submit(4, 1)).result == 8  # the collector lives on
        await batcher.stop()
        return batcher

    batcher = run_async(main())
    assert [b for b in device.batches] == [[1], [3], [4]]  # 2 was never computed
    assert batcher.stats.dropped == 1


def test_batcher_respects_max_batch_size_and_lets_a_big_request_through_alone():
    device = FakeDevice()

    async def main():
        batcher = MicroBatcher(device, max_batch_size=4, max_wait_ms=100, max_queue=100)
        await batcher.start()

        async def one(payload, rows):
            with batcher.admit(rows):
                return await batcher.submit(payload, rows)

        out = await asyncio.gather(one(10, 10), one(1, 3), one(2, 3), one(3, 1))
        await batcher.stop()
        return out

    out = run_async(main())
    assert [d.result for d in out] == [20, 2, 4, 6]
    big = out[0]
    assert big.batch_rows == 10 and big.batch_requests == 1  # one request over the cap runs on its own
    assert all(d.batch_rows <= 4 for d in out[1:])


# --- device stage helpers -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_model):
    from mixedclf.core.preprocess import make_tokenizer
    from mixedclf.models.spec import resolve_model
    from mixedclf.models.tokenizer import tokenizer_json_and_pad_id

    spec = resolve_model(tiny_model)
    return make_tokenizer(tokenizer_json_and_pad_id(spec)[0], spec.max_length)


@hyp_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.text(max_size=40), min_size=1, max_size=4), min_size=1, max_size=4))
def test_joined_sequences_equal_preprocessing_all_texts_at_once(tiny_tokenizer, groups):
    from mixedclf.core.sequences import concat_sequences, to_sequences

    merged = concat_sequences([to_sequences(g, tiny_tokenizer) for g in groups]).batch  # a device batch's requests
    whole = to_sequences([t for g in groups for t in g], tiny_tokenizer).batch
    assert merged.cleaned == whole.cleaned
    for name in ("token_ids", "lengths", "truncated", "word_count", "sentence_count", "char_count"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(whole, name))


# --- settings and the command line ---------------------------------------------------------------------------
def test_settings_reject_a_queue_smaller_than_the_largest_batch():
    with pytest.raises(ValueError, match="max_queue"):
        ServeSettings(max_queue=4, max_batch_texts=8)
    with pytest.raises(ValueError):
        ServeSettings(max_wait_ms=-1)


def test_cli_serve_maps_options_to_settings_and_fails_in_one_line(monkeypatch, tmp_path, tiny_model):
    import mixedclf.serve.app as serve_app
    from mixedclf.cli.app import app

    runner = CliRunner()
    seen = {}
    monkeypatch.setattr(serve_app, "run_server", lambda s: seen.setdefault("settings", s))
    config = tmp_path / "serve.toml"
    config.write_text('[serve]\nmax_wait_ms = 7.5\nmax_queue = 300\n', encoding="utf-8")
    result = runner.invoke(app, ["serve", "--model", str(tiny_model), "--port", "9123", "--max-batch-size", "16",
                                 "--max-queue", "500", "--config", str(config), "--no-access-log"])
    assert result.exit_code == 0, result.output
    s = seen["settings"]
    assert (s.port, s.max_batch_size, s.max_wait_ms, s.max_queue, s.access_log) == (9123, 16, 7.5, 500, False)

    help_text = runner.invoke(app, ["serve", "--help"]).output
    for option in ("--max-batch-size", "--max-wait-ms", "--max-queue", "--max-text-chars", "--max-batch-texts"):
        assert option in help_text

    bad = runner.invoke(app, ["serve", "--max-queue", "2", "--max-batch-texts", "5"])
    assert bad.exit_code == 2 and "max_queue (2) must be at least" in bad.output and "Traceback" not in bad.output


def test_cli_serve_refuses_an_open_host_without_a_key(monkeypatch, tiny_model):
    import mixedclf.serve.app as serve_app
    from mixedclf.cli.app import app

    runner = CliRunner()
    seen = []
    monkeypatch.setattr(serve_app, "run_server", seen.append)
    monkeypatch.delenv("MIXEDCLF_API_KEY", raising=False)
    key = "k" * 24
    for host in ("0.0.0.0", "::", "192.168.1.20", "my-host.example"):
        refused = runner.invoke(app, ["serve", "--model", str(tiny_model), "--host", host])
        assert refused.exit_code == 2, refused.output
        lines = refused.output.strip().splitlines()
        assert len(lines) == 1 and "--api-key" in lines[0] and "--insecure-no-auth" in lines[0], refused.output
    assert not seen
    short = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--api-key", "short"])
    assert short.exit_code == 2 and "shorter than 16" in short.output and "Traceback" not in short.output
    for args, env in (
        (["--host", "0.0.0.0", "--insecure-no-auth"], {}),
        (["--host", "0.0.0.0", "--api-key", key], {}),
        (["--host", "0.0.0.0"], {"MIXEDCLF_API_KEY": key}),
        (["--host", "127.0.0.1"], {}),
        (["--host", "localhost"], {}),
    ):
        ok = runner.invoke(app, ["serve", "--model", str(tiny_model), *args], env=env)
        assert ok.exit_code == 0, (args, ok.output)
    assert [s.api_key for s in seen] == [None, key, key, None, None]
    assert key not in repr(seen[1])  # never printed


def test_create_app_reports_a_missing_model_before_serving(tmp_path):
    from mixedclf.errors import ModelError
    from mixedclf.serve.app import create_app

    with pytest.raises(ModelError, match="does not exist"):
        create_app(ServeSettings(model=str(tmp_path / "nope")))


# --- a real server (uvicorn on loopback, in a thread of this process) ---------------------------------------------
def in_process_settings(tiny_model, **overrides) -> ServeSettings:
    import torch

    # torch_threads: keep this test process's own torch setting (the server would otherwise pick one).
    base = dict(model=str(tiny_model), device="cpu", cpu_workers=1, torch_threads=torch.get_num_threads())
    return ServeSettings(**(base | overrides))


@pytest.fixture(scope="module")
def server(tiny_model):
    from serve_helpers import serve_in_thread

    from mixedclf.serve.app import create_app

    app = create_app(in_process_settings(tiny_model, max_text_chars=200, max_batch_texts=8, max_queue=256))
    with serve_in_thread(app) as running:
        yield running
    assert app.state.server.status == "stopping" and not app.state.server.batcher.running


STAGE_HEADERS = ("x-stage-preprocess-ms", "x-stage-queue-ms", "x-stage-inference-ms", "x-stage-postprocess-ms")


def test_classify_returns_label_score_bucket_counts_timings_and_cost_headers(server):
    with client(server.url) as c:
        r = c.post("/classify", json={"text": "Great <b>food</b>, awful service. See https://example.com now"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["label"] in ("NEGATIVE", "POSITIVE") and body["model"] == "tiny-bert"
    assert 0.5 <= body["score"] <= 1 and body["confidence"] in ("high", "medium", "low")
    assert set(body["scores"]) == {"NEGATIVE", "POSITIVE"} and abs(sum(body["scores"].values()) - 1) < 1e-6
    assert (body["word_count"], body["sentence_count"]) == (7, 2)  # tags out, the URL is one [URL] token
    assert body["token_count"] > 0 and body["truncated"] is False
    assert set(body["timings_ms"]) == {"preprocess", "queue", "inference", "postprocess", "total"}
    for name in STAGE_HEADERS + ("x-total-ms", "x-cost-usd", "x-batch-size"):
        assert float(r.headers[name]) >= 0, name
    cost = float(r.headers["x-cost-usd"])
    assert 0 < cost < 0.01 and cost == pytest.approx(body["cost_usd"], rel=1e-6)
    assert float(r.headers["x-cost-gpu-only-usd"]) >= cost  # the same seconds all at the GPU rate


def test_batch_matches_one_by_one_and_an_unbatched_reference(server, tiny_model):
    import torch

    from mixedclf.core.inference import InferenceRunner
    from mixedclf.core.postprocess import scores_from_logits
    from mixedclf.core.preprocess import make_tokenizer, preprocess_texts
    from mixedclf.models.backend import load_model
    from mixedclf.models.spec import resolve_model
    from mixedclf.models.tokenizer import tokenizer_json_and_pad_id

    texts = ["good movie", "the worst phone, broken and slow!", "It was fine. Staff was happy.", "a " * 80]
    with client(server.url) as c:
        batch = c.post("/classify/batch", json={"texts": texts})
        singles = [c.post("/classify", json={"text": t}).json() for t in texts]
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert batch.json()["count"] == 4 and len(results) == 4
    assert results[3]["truncated"] is True
    spec = resolve_model(tiny_model)
    tok_json, pad = tokenizer_json_and_pad_id(spec)
    prep = preprocess_texts(texts, make_tokenizer(tok_json, spec.max_length))
    runner = InferenceRunner(load_model(spec, torch.device("cpu")).module, torch.device("cpu"), 2, pad)
    expected = scores_from_logits(runner.logits(prep, 1, 8192), spec.activation)  # one text per forward
    for i, (row, single) in enumerate(zip(results, singles)):
        assert row["label"] == single["label"] == spec.labels[int(expected[i].argmax())]
        assert row["score"] == pytest.approx(expected[i].max(), abs=1e-5)
        assert single["score"] == pytest.approx(expected[i].max(), abs=1e-5)


@pytest.mark.parametrize(
    "route, body, message",
    [
        ("/classify", {"text": ""}, "text is empty"),
        ("/classify", {"text": "   \n\t"}, "text is empty"),
        ("/classify", {"text": "x" * 201}, "the limit is 200 (--max-text-chars)"),
        ("/classify", {"text": 5}, "valid string"),
        ("/classify", {}, "Field required"),
        ("/classify/batch", {"texts": []}, "texts is empty"),
        ("/classify/batch", {"texts": ["ok"] * 9}, "the limit is 8 (--max-batch-texts)"),
        ("/classify/batch", {"texts": ["ok", ""]}, "texts[1] is empty"),
        ("/cpu_worker/runsync", {"text": "y" * 500}, "--max-text-chars"),
        ("/gpu_worker/runsync", {"cleaned_text": " "}, "cleaned_text is empty"),
        ("/gpu_worker/runsync", {"cleaned_text": "ok", "word_count": -1}, "greater than or equal to 0"),
    ],
)
def test_invalid_input_is_a_422_with_a_clear_message(server, route, body, message):
    with client(server.url) as c:
        r = c.post(route, json=body)
    assert r.status_code == 422, r.text
    assert message in r.text


@pytest.mark.parametrize(
    "route, raw",
    [
        ("/classify", b'{"text": NaN}'),
        ("/classify", b'{"text": "fine", "extra": Infinity}'),
        ("/classify/batch", b'{"texts": ["fine", -Infinity]}'),
        ("/gpu_worker/runsync", b'{"cleaned_text": "fine", "word_count": NaN}'),
        ("/gpu_worker/runsync", b'{"input": {"cleaned_text": "fine"}, "webhook": NaN}'),
    ],
)
def test_a_bare_nan_or_infinity_is_a_422_and_the_connection_lives_on(server, route, raw):
    with client(server.url) as c:
        r = c.post(route, content=raw, headers={"content-type": "application/json"})
        again = c.post("/classify", json={"text": "still here"})  # the same keep-alive connection
    assert r.status_code == 422, r.text
    error = r.json()["detail"][0]
    assert error["type"] == "json_invalid" and "is not valid JSON" in error["ctx"]["error"]
    assert raw[error["loc"][1]:].lstrip(b"-").startswith((b"NaN", b"Infinity"))  # where it stands
    assert again.status_code == 200, again.text


def test_an_overflowing_number_is_a_422_not_a_crash(server):
    with client(server.url) as c:
        r = c.post("/gpu_worker/runsync", content=b'{"cleaned_text": "fine", "word_count": 1e400}',
                   headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert "finite" in r.text and "inf" not in r.text.lower().replace("finite", "")


def test_a_422_never_echoes_the_input_and_stays_small(server):
    with client(server.url) as c:
        many = c.post("/classify/batch", json={"texts": list(range(5_000))})
        long_text = c.post("/classify", json={"text": "secret-" * 40})
        wrong_type = c.post("/classify", json={"text": {"nested": "secret-value"}})
    assert many.status_code == 422 and len(many.content) < 4000, len(many.content)
    detail = many.json()["detail"]
    assert len(detail) == 11 and detail[-1]["msg"] == "4,990 more errors not shown"
    assert all("input" not in d for d in detail)
    assert long_text.status_code == 422 and "secret" not in long_text.text
    assert wrong_type.status_code == 422 and "secret" not in wrong_type.text


def test_more_json_values_than_the_item_limit_is_a_413_before_parsing(server):
    with client(server.url) as c:
        over = c.post("/classify/batch", content=b'{"texts": [' + b"1," * 10_000 + b'1]}',
                      headers={"content-type": "application/json"})
        nested = c.post("/classify", content=b'{"text": "fine", "x": [' + b"[]," * 10_000 + b"[]]}",
                        headers={"content-type": "application/json"})
        # Commas and brackets inside strings are text, not values.
        inside = c.post("/classify", json={"text": "a,[b,{c," * 24})
        metrics = c.get("/metrics").text
    for r in (over, nested):
        assert r.status_code == 413, r.text
        assert "more than 10,000 JSON values (--max-request-items)" in r.json()["detail"]
    assert inside.status_code == 200, inside.text
    assert metric_value(metrics, "mixedclf_rejected_total", 'reason="too_many_items"') == 2


@pytest.mark.parametrize(
    "route, raw",
    [
        ("/gpu_worker/runsync", b'{"cleaned_text": "bad \\udfff x"}'),
        ("/gpu_worker/runsync", b'{"input": {"cleaned_text": "bad \\ud800"}, "id": "job-7"}'),
        ("/gpu_worker/run", b'{"input": {"cleaned_text": "\\udfffbad"}}'),
    ],
)
def test_a_lone_surrogate_in_cleaned_text_is_a_422_not_a_500(server, route, raw):
    with client(server.url) as c:
        r = c.post(route, content=raw, headers={"content-type": "application/json"})
        paired = c.post("/gpu_worker/runsync", content=b'{"cleaned_text": "fine \\ud83d\\ude00"}',
                        headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert "lone surrogate" in r.text and "not valid Unicode" in r.text
    assert paired.status_code == 200, paired.text  # a surrogate pair is one real character


def test_under_clean_none_every_route_refuses_a_lone_surrogate_with_a_422(tiny_model):
    from serve_helpers import serve_in_thread

    from mixedclf.serve.app import create_app

    app = create_app(in_process_settings(tiny_model, clean="none"))
    raw = {"/classify": b'{"text": "bad \\udfff"}', "/classify/batch": b'{"texts": ["fine", "\\ud800 bad"]}',
           "/cpu_worker/runsync": b'{"text": "bad \\udfff"}', "/cpu_worker/run": b'{"input": {"text": "\\udfff"}}'}
    with serve_in_thread(app) as running, client(running.url) as c:
        answers = {route: c.post(route, content=body, headers={"content-type": "application/json"})
                   for route, body in raw.items()}
        fine = c.post("/classify", json={"text": "fine \U0001F600"})
    for route, r in answers.items():
        assert r.status_code == 422 and "lone surrogate" in r.text, (route, r.text)
    assert answers["/classify/batch"].json()["detail"][0]["loc"] == ["body", "texts", 1]
    assert fine.status_code == 200, fine.text


def test_a_body_that_is_not_text_is_a_400_with_a_json_body(server):
    with client(server.url) as c:
        r = c.post("/classify", content=b'{"text": "\xff\xfe\x00\x81"}', headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json() == {"detail": "There was an error parsing the body"}


def test_runsync_routes_answer_plain_and_runpod_style(server):
    with client(server.url) as c:
        plain = c.post("/cpu_worker/runsync", json={"text": "Loved it!!  <br/>Would go again &amp; again."})
        wrapped = c.post("/cpu_worker/runsync",
                         json={"id": "job-1", "input": {"text": "Loved it!!  <br/>Would go again &amp; again."}})
        gpu = c.post("/gpu_worker/runsync", json={"cleaned_text": plain.json()["cleaned_text"], "word_count": 99})
        gpu_wrapped = c.post("/gpu_worker/runsync", json={"input": {"cleaned_text": "great food"}})
        failed = c.post("/gpu_worker/runsync", json={"input": {"cleaned_text": ""}})
    assert plain.status_code == 200, plain.text
    out = plain.json()
    assert out["cleaned_text"] == "Loved it!! Would go again & again."
    assert (out["word_count"], out["sentence_count"], out["char_count"]) == (6, 2, len(out["cleaned_text"]))
    assert "x-stage-preprocess-ms" in plain.headers and float(plain.headers["x-cost-usd"]) >= 0

    w = wrapped.json()
    assert (w["id"], w["status"], w["output"]) == ("job-1", "COMPLETED", out)
    assert {"delayTime", "executionTime"} <= set(w)

    g = gpu.json()
    assert gpu.status_code == 200 and g["word_count"] == 99  # echoed, as the original GPU worker did
    assert g["label"] == g["predictions"][0]["label"] and len(g["predictions"]) == 2
    assert g["model_info"]["name"] == "tiny-bert" and g["model_info"]["labels"] == ["NEGATIVE", "POSITIVE"]
    assert all(h in gpu.headers for h in STAGE_HEADERS + ("x-cost-usd",))

    gw = gpu_wrapped.json()
    assert gw["status"] == "COMPLETED" and gw["id"].startswith("sync-")
    assert gw["output"]["word_count"] == 2 and gw["output"]["model_info"]["device"] == "cpu"
    assert failed.status_code == 422 and failed.json()["status"] == "FAILED" and "empty" in failed.json()["error"]


def wait_for_job(c: httpx.Client, worker: str, job_id: str, timeout: float = 20) -> tuple[dict, set[str]]:
    """Poll /status until the job is finished; returns its last answer and every status seen."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = c.get(f"/{worker}/status/{job_id}")
        assert r.status_code == 200, r.text
        body = r.json()
        seen.add(body["status"])
        if body["status"] in ("COMPLETED", "FAILED"):
            return body, seen
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} did not finish: {seen}")


def test_runpod_async_run_then_status_gives_the_runsync_output(server):
    text = "Loved it!!  <br/>Would go again &amp; again."
    with client(server.url) as c:
        start = time.monotonic()
        accepted = c.post("/cpu_worker/run", json={"input": {"text": text}, "id": "ignored"})
        answered_in = time.monotonic() - start
        sync = c.post("/cpu_worker/runsync", json={"input": {"text": text}}).json()
        cpu, _ = wait_for_job(c, "cpu_worker", accepted.json()["id"])
        gpu_accepted = c.post("/gpu_worker/run", json={"input": {"cleaned_text": "great food", "word_count": 7}})
        gpu, _ = wait_for_job(c, "gpu_worker", gpu_accepted.json()["id"])
        gpu_sync = c.post("/gpu_worker/runsync", json={"input": {"cleaned_text": "great food", "word_count": 7}})
        wrong_worker = c.get(f"/gpu_worker/status/{accepted.json()['id']}")
        unknown = c.get("/cpu_worker/status/no-such-job")
        invalid = c.post("/cpu_worker/run", json={"input": {"text": "  "}})
        plain = c.post("/gpu_worker/run", json={"cleaned_text": "not runpod-shaped"})
        metrics = c.get("/metrics").text
    assert accepted.status_code == 200 and answered_in < 5
    assert accepted.json()["status"] == "IN_QUEUE" and accepted.json()["id"] != "ignored"
    assert cpu["status"] == "COMPLETED" and cpu["output"] == sync["output"]
    assert cpu["delayTime"] >= 0 and cpu["executionTime"] >= 0 and cpu["id"] == accepted.json()["id"]
    assert gpu["status"] == "COMPLETED" and gpu["output"]["word_count"] == 7
    g, s_ = gpu["output"], gpu_sync.json()["output"]
    assert (g["label"], g["predictions"][0]["label"]) == (s_["label"], s_["predictions"][0]["label"])
    assert g["score"] == pytest.approx(s_["score"], abs=1e-5)
    assert wrong_worker.status_code == 404 and unknown.status_code == 404 and "--job-ttl" in unknown.json()["detail"]
    assert invalid.status_code == 422 and "text is empty" in invalid.text
    assert plain.status_code == 422
    assert metric_value(metrics, "mixedclf_texts_total", 'route="/cpu_worker/run"') == 1
    assert metric_value(metrics, "mixedclf_requests_total", 'route="/cpu_worker/status",status="404"') == 1


def test_health_docs_and_metrics(server):
    with client(server.url) as c:
        c.post("/classify", json={"text": "warm"})
        health = c.get("/health")
        docs = c.get("/docs")
        schema = c.get("/openapi.json").json()
        too_big = c.post("/classify", content=b'{"text": "' + b"a" * 2_000_000 + b'"}',
                         headers={"content-type": "application/json"})
        metrics = c.get("/metrics")
    h = health.json()
    assert health.status_code == 200 and h["status"] == "ok" and h["model"]["name"] == "tiny-bert"
    assert h["cpu_workers"] == 1 and h["device_batches"]["batches"] >= 1
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert {"/classify", "/classify/batch", "/cpu_worker/runsync", "/gpu_worker/runsync", "/health",
            "/metrics"} <= set(schema["paths"])
    assert too_big.status_code == 413
    text = metrics.text
    assert metrics.headers["content-type"].startswith("text/plain")
    for stage in ("preprocess", "queue", "inference", "postprocess"):
        assert metric_value(text, "mixedclf_stage_duration_seconds_count", f'stage="{stage}"') >= 1, stage
    assert metric_value(text, "mixedclf_batch_size_count") >= 1
    assert "mixedclf_queue_depth" in text and "mixedclf_inflight_texts" in text
    assert metric_value(text, "mixedclf_cost_dollars_total", 'billing="gpu",stage="inference"') > 0
    assert metric_value(text, "mixedclf_cost_dollars_total", 'billing="cpu",stage="preprocess"') > 0
    assert metric_value(text, "mixedclf_gpu_only_cost_dollars_total") > 0
    assert metric_value(text, "mixedclf_requests_total", 'route="/classify",status="200"') >= 1
    assert metric_value(text, "mixedclf_rejected_total", 'reason="too_large"') == 1


# --- a server in this process, slowed down on purpose ---------------------------------------------------------
class DelayedPool:
    """Stands in for the CPU pool: submits to the real one only after `delay` seconds."""

    def __init__(self, pool, delay: float):
        from concurrent.futures import ThreadPoolExecutor

        self.pool, self.delay = pool, delay
        self.threads = ThreadPoolExecutor(max_workers=4)

    def submit(self, fn, *args):
        def later():
            time.sleep(self.delay)
            return self.pool.submit(fn, *args).result()

        return self.threads.submit(later)


@pytest.fixture(scope="module")
def local_server(tiny_model):
    from serve_helpers import serve_in_thread

    from mixedclf.serve.app import create_app

    settings = in_process_settings(tiny_model, max_queue=3, max_batch_texts=3, max_wait_ms=1,
                                   stage_timeout_cpu=0.5, stage_timeout_gpu=0.5)
    app = create_app(settings)
    with serve_in_thread(app) as running:
        yield running


def test_slow_device_gives_504_and_a_full_queue_gives_503_with_retry_after(local_server):
    state = local_server.app.state.server
    batcher = state.batcher
    real = batcher.run_batch

    def slow(payloads):
        time.sleep(0.8)
        return real(payloads)

    batcher.run_batch = slow
    try:
        with client(local_server.url) as c:
            results = {}

            def occupy():
                results["slow"] = c.post("/classify/batch", json={"texts": ["one", "two"]})

            t = threading.Thread(target=occupy)
            t.start()
            deadline = time.monotonic() + 5
            while batcher.inflight_rows < 2 and time.monotonic() < deadline:
                time.sleep(0.005)
            full = c.post("/classify/batch", json={"texts": ["three", "four"]})  # 2 + 2 > --max-queue 3
            t.join(10)
            time.sleep(0.5)  # let the slow batch leave the device
    finally:
        batcher.run_batch = real
    assert full.status_code == 503, full.text
    assert int(full.headers["retry-after"]) >= 1 and "--max-queue 3" in full.json()["detail"]
    slow_answer = results["slow"]
    assert slow_answer.status_code == 504, slow_answer.text
    assert "--stage-timeout-gpu" in slow_answer.json()["detail"]
    with client(local_server.url) as c:
        assert c.post("/classify", json={"text": "back to normal"}).status_code == 200
        text = c.get("/metrics").text
    assert metric_value(text, "mixedclf_rejected_total", 'reason="queue_full"') == 1
    assert metric_value(text, "mixedclf_rejected_total", 'reason="timeout_inference"') == 1


def test_slow_preprocessing_gives_504_before_any_device_work(local_server):
    state = local_server.app.state.server
    real_pool = state.pool
    batches_before = state.batcher.stats.batches
    state.pool = DelayedPool(real_pool, 0.8)
    try:
        with client(local_server.url) as c:
            r = c.post("/classify", json={"text": "slow to clean"})
    finally:
        state.pool = real_pool
    assert r.status_code == 504 and "--stage-timeout-cpu" in r.json()["detail"]
    assert state.batcher.stats.batches == batches_before


def test_async_job_goes_through_in_queue_in_progress_and_fails_in_one_line(local_server):
    state = local_server.app.state.server
    batcher = state.batcher
    real = batcher.run_batch
    batcher.run_batch = lambda payloads: (time.sleep(0.8), real(payloads))[1]  # past --stage-timeout-gpu 0.5
    try:
        with client(local_server.url) as c:
            job_id = c.post("/gpu_worker/run", json={"input": {"cleaned_text": "slow"}}).json()["id"]
            failed, seen = wait_for_job(c, "gpu_worker", job_id)
            time.sleep(0.5)  # let the slow batch leave the device
    finally:
        batcher.run_batch = real
    assert "IN_PROGRESS" in seen and failed["status"] == "FAILED"
    assert "--stage-timeout-gpu" in failed["error"] and "output" not in failed


def test_job_store_is_bounded_lets_read_results_go_first_and_forgets_them_after_the_ttl():
    from mixedclf.serve.jobs import JobStore, JobStoreFull

    now = [1000.0]

    async def main():
        store = JobStore(max_jobs=2, ttl_s=60, runners=1, clock=lambda: now[0])
        await store.start()

        async def work():
            return {"ok": True}, 0.0, 1.0

        first, second = store.submit("cpu_worker", work), store.submit("cpu_worker", work)
        while not (first.done and second.done):
            await asyncio.sleep(0.001)
        with pytest.raises(JobStoreFull) as full:  # both finished, neither read: nothing may be dropped
            store.submit("cpu_worker", work)
        assert store.get("cpu_worker", first.id).public()["output"] == {"ok": True}  # read once
        third = store.submit("cpu_worker", work)  # the read one makes room
        assert store.get("cpu_worker", first.id) is None and store.get("cpu_worker", second.id) is second
        now[0] += 61
        gone = store.get("cpu_worker", second.id)
        while not third.done:
            await asyncio.sleep(0.001)
        await store.stop()
        return full.value, gone, len(store)

    full, gone, left = run_async(main())
    assert 1 <= full.retry_after_s <= 60 and "--max-jobs 2" in str(full)
    assert gone is None and left == 1


def test_graceful_shutdown_finishes_in_flight_requests_and_stops_the_pool(tiny_model):
    from serve_helpers import serve_in_thread

    from mixedclf.serve.app import create_app

    app = create_app(in_process_settings(tiny_model))
    state = app.state.server
    with serve_in_thread(app) as running:
        real = state.batcher.run_batch
        state.batcher.run_batch = lambda payloads: (time.sleep(0.5), real(payloads))[1]
        results = {}

        def request():
            with client(running.url) as c:
                results["r"] = c.post("/classify", json={"text": "finish me"})

        t = threading.Thread(target=request)
        t.start()
        deadline = time.monotonic() + 5
        while state.batcher.inflight_rows == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        pool = state.pool
        processes = list(pool._processes.values())
        running.server.should_exit = True  # what SIGINT / SIGTERM does
        t.join(20)
        running.thread.join(30)
    assert results["r"].status_code == 200, results["r"].text
    assert state.status == "stopping" and not state.batcher.running
    assert processes and not any(p.is_alive() for p in processes)
