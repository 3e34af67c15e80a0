"""classify --engine runpod against a tiny in-process data plane (no model, no runpod package): every row written
in input order with the columns a local run writes, a failed job sent again, a job that keeps failing stops the
run with the chunks before it checkpointed and --resume completes it, an unreachable deployment is one line, and
the bill counts each worker's execution plus idle timeout rounded up to the whole second."""

from __future__ import annotations

import itertools
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from mixedclf.cli.app import app
from mixedclf.core.options import ClassifyOptions
from mixedclf.costs.fmt import fmt_money
from mixedclf.costs.runpod_jobs import worker_bill
from mixedclf.engines.run import classify_file
from mixedclf.engines.runpod import RemoteJobError, job_slices
from mixedclf.errors import EXIT_FAILURE, EXIT_USAGE
from mixedclf.io.checkpoint import checkpoint_path
from mixedclf.io.runpod_jobs import JobEndpoint, RunpodTarget
from mixedclf.render.report import report_to_markdown

LABELS = ("negative", "positive")


def fake_result(text: str) -> dict:
    """What the fake `all` endpoint answers for a text: positive when its length is even."""
    p = 0.9 if len(text) % 2 == 0 else 0.3
    return {"label": "positive" if p > 0.5 else "negative", "score": max(p, 1 - p),
            "confidence": "high" if max(p, 1 - p) > 0.8 else "medium", "scores": {"negative": 1 - p, "positive": p},
            "word_count": len(text.split()), "sentence_count": 1, "char_count": len(text), "token_count": 3,
            "truncated": False}


class FakePlane:
    """/v2/{id}/run queues a job, /status answers it (COMPLETED, or FAILED while `fail` says so), /health 200.
    Answers carry delayTime, executionTime and workerId as Runpod's do."""

    def __init__(self, fail=lambda texts, attempt: False):
        self.fail = fail
        self.jobs: dict[str, list[str]] = {}
        self.attempts: dict[tuple, int] = {}
        self.ids = itertools.count()
        plane = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, payload):
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                _, _, endpoint, action, *rest = self.path.split("/")
                if action == "health":
                    return self._send({"workers": {"ready": 1}})
                texts = plane.jobs.pop(rest[0])
                attempt = plane.attempts[tuple(texts)] = plane.attempts.get(tuple(texts), 0) + 1
                times = {"id": rest[0], "delayTime": 40, "executionTime": 1200, "workerId": f"w{int(rest[0][4:]) % 2}"}
                if plane.fail(texts, attempt):
                    return self._send({**times, "status": "FAILED", "error": "worker lost"})
                self._send({**times, "status": "COMPLETED",
                            "output": {"results": [fake_result(t) for t in texts]}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                job = f"job-{next(plane.ids)}"
                plane.jobs[job] = body["input"]["texts"]
                self._send({"id": job, "status": "IN_QUEUE"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v2"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def target(self, url: str | None = None) -> RunpodTarget:
        ep = JobEndpoint(role="all", id="ep-all", url=f"{url or self.url}/ep-all", worker="gpu", rate_per_s=0.001,
                         rate_source="test", idle_timeout_s=5.0)
        return RunpodTarget(spec="spec.toml", target="local", model="default", precision="auto",
                            endpoints={"all": ep}, in_flight=3, job_timeout_s=30, backoff_s=0.01)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def plane():
    p = FakePlane()
    yield p
    p.close()


def _input(tmp_path, n=120):
    path = tmp_path / "in.jsonl"
    rows = [{"id": f"r{i:03d}", "text": "ok " * (i % 7 + 1) + "x" * (i % 3) + " late" * (i >= 100),
             "stars": i % 5} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def _opts(tmp_path, src, **kw):
    return ClassifyOptions(input=str(src), output=tmp_path / "out.jsonl", engine="runpod", batch_size=16,
                           chunk_rows=40, first_chunk_rows=40, no_cache=True, **kw)


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_row_is_written_in_input_order_with_the_local_columns(tmp_path, plane):
    src, rows = _input(tmp_path)
    result = classify_file(_opts(tmp_path, src, all_scores=True), target=plane.target())
    out = _rows(result.output_path)
    assert [r["id"] for r in out] == [r["id"] for r in rows]
    for row, got in zip(rows, out, strict=True):
        want = fake_result(row["text"])
        assert got["label"] == want["label"] and got["score"] == want["score"] and got["stars"] == row["stars"]
        assert got["score_positive"] == want["scores"]["positive"] and got["model"] == "default"
    assert list(out[0]) == ["id", "stars", "label", "score", "confidence", "score_negative", "score_positive",
                            "word_count", "sentence_count", "char_count", "token_count", "truncated", "model"]
    report = result.report
    assert report.engine == "runpod" and report.rows_out == len(rows)
    bill = report.runpod
    (endpoint,) = bill.endpoints
    assert endpoint.jobs == 9 and endpoint.failed_attempts == 0  # 3 chunks of 40 rows, jobs of 16 (16+16+8)
    assert {w.worker_id for w in endpoint.workers} == {"w0", "w1"}
    for w in endpoint.workers:  # each worker: its jobs' 1.2 s each + the idle timeout, rounded up
        assert w.billed_s == math.ceil(1.2 * w.jobs + 5.0)
    assert bill.usd == pytest.approx(sum(w.billed_s for w in endpoint.workers) * 0.001)
    assert "rounded up" in bill.billing_model and bill.estimate_usd == pytest.approx(9 * 1.2 * 0.001)
    markdown = report_to_markdown(report)
    assert f"Runpod bill {fmt_money(bill.usd)} (runpod: per worker" in markdown and "| all total |" in markdown


def test_a_job_that_fails_once_is_sent_again_and_the_output_is_complete(tmp_path):
    plane = FakePlane(fail=lambda texts, attempt: attempt == 1 and texts[0].startswith("ok ok ok"))
    try:
        src, rows = _input(tmp_path)
        result = classify_file(_opts(tmp_path, src), target=plane.target())
    finally:
        plane.close()
    assert [r["id"] for r in _rows(result.output_path)] == [r["id"] for r in rows]
    (endpoint,) = result.report.runpod.endpoints
    assert endpoint.failed_attempts >= 1 and endpoint.sends == endpoint.jobs + endpoint.failed_attempts


def test_a_job_that_keeps_failing_stops_the_run_and_resume_completes_it(tmp_path):
    broken = {"on": True}
    plane = FakePlane(fail=lambda texts, attempt: broken["on"] and any("late" in t for t in texts))
    try:
        src, rows = _input(tmp_path)
        opts = _opts(tmp_path, src)
        with pytest.raises(RemoteJobError, match="worker lost.*--resume") as info:
            classify_file(opts, target=plane.target())
        assert info.value.exit_code == EXIT_FAILURE
        assert checkpoint_path(opts.output).exists() and not opts.output.exists()
        broken["on"] = False
        result = classify_file(opts.model_copy(update={"resume": True}), target=plane.target())
    finally:
        plane.close()
    out = _rows(result.output_path)
    assert [r["id"] for r in out] == [r["id"] for r in rows]
    assert result.report.resumed is not None and result.report.resumed.from_chunk == 2  # rows 100+: chunk 2


def test_an_unreachable_deployment_is_one_line_and_writes_nothing(tmp_path, plane):
    src, _ = _input(tmp_path, 5)
    opts = _opts(tmp_path, src)
    with pytest.raises(RemoteJobError, match="do not answer") as info:
        classify_file(opts, target=plane.target("http://127.0.0.1:9/v2"))
    assert "\n" not in info.value.one_line() and not opts.output.exists()
    assert not checkpoint_path(opts.output).exists()


def test_a_model_other_than_the_deployed_one_is_refused(tmp_path, plane):
    from mixedclf.errors import InputError

    src, _ = _input(tmp_path, 3)
    with pytest.raises(InputError, match="deploys model default"):
        classify_file(_opts(tmp_path, src, model="other"), target=plane.target())


def test_the_cli_needs_a_deploy_spec_with_a_state_file(tmp_path):
    from mixedclf.cloud.spec import INIT_TEMPLATE

    src, _ = _input(tmp_path, 3)
    runner = CliRunner()
    out = str(tmp_path / "o.jsonl")
    res = runner.invoke(app, ["classify", str(src), "-o", out, "--engine", "runpod"])
    assert res.exit_code == EXIT_USAGE and "--deploy" in res.output
    spec = tmp_path / "mixedclf-deploy.toml"
    spec.write_text(INIT_TEMPLATE)
    res = runner.invoke(app, ["classify", str(src), "-o", out, "--engine", "runpod", "--deploy", str(spec)])
    assert res.exit_code == EXIT_USAGE and "no state file" in res.output
    res = runner.invoke(app, ["classify", str(src), "-o", out, "--deploy", str(spec)])
    assert res.exit_code == EXIT_USAGE and "--engine runpod" in res.output


def test_jobs_are_cut_by_rows_and_by_characters():
    assert job_slices(["a"] * 5, 2) == [(0, 2), (2, 4), (4, 5)]
    assert job_slices(["aaaa", "bb", "cc", "dd"], 10, chars=5) == [(0, 1), (1, 3), (3, 4)]
    assert job_slices(["x" * 50], 10, chars=5) == [(0, 1)]  # a text longer than the cap goes alone
    assert job_slices([], 3) == []


def test_a_worker_is_billed_its_execution_and_idle_timeout_rounded_up_to_the_second():
    assert worker_bill("w", 3, 3600.0, 5.0, 0.001).billed_s == 9  # 3 jobs, 3.6 s in all, + 5 -> 9
    assert worker_bill("w", 1, 1000.0, 5.0, 0.5).model_dump()["usd"] == 3.0  # exactly 6 s: not rounded past
    assert worker_bill("w", 0, 0.0, 5.0, 1.0).billed_s == 0


def test_the_target_prices_each_endpoint_as_deployed_and_refuses_a_stale_state(tmp_path, monkeypatch):
    from mixedclf.cloud.batch import runpod_target
    from mixedclf.cloud.provision import DeployedEndpoint, DeployState, spec_digest, write_state
    from mixedclf.cloud.spec import INIT_TEMPLATE
    from mixedclf.costs import load_pricing
    from mixedclf.errors import InputError

    spec = tmp_path / "mixedclf-deploy.toml"
    spec.write_text(INIT_TEMPLATE)
    endpoints = {r: DeployedEndpoint(id=f"id-{r}", name=r, api="rest-v2", url=f"https://api.runpod.ai/v2/id-{r}")
                 for r in ("pre", "infer", "post", "orchestrator")}
    write_state(spec, DeployState(spec=spec.name, spec_sha256=spec_digest(spec), applied_at=0.0, target="runpod",
                                  endpoints=endpoints))
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    with pytest.raises(InputError, match="RUNPOD_API_KEY"):
        runpod_target(spec)
    monkeypatch.setenv("RUNPOD_API_KEY", "k")
    target = runpod_target(spec)
    pricing = load_pricing(None, "runpod-4090-pro")  # the ADA_24 pool's profile
    assert target.chain == ["pre", "infer", "post"] and target.base_url() == "https://api.runpod.ai/v2"
    assert target.endpoints["infer"].rate_per_s == pricing.gpu_per_sec
    assert target.endpoints["pre"].rate_per_s == pricing.cpu_rate(2)  # cpu3c-2-4
    assert target.endpoints["post"].idle_timeout_s == 3.0 and target.in_flight == 3 * 8  # infer: 0:3 x 8 jobs
    spec.write_text(INIT_TEMPLATE.replace('precision = "auto"', 'precision = "fp32"'))
    with pytest.raises(InputError, match="another version"):
        runpod_target(spec)


def test_predictions_sent_as_json_come_back_as_the_same_columns():
    import numpy as np
    import pyarrow as pa

    from mixedclf.core.postprocess import columns_from_predictions, label_columns, prediction_rows
    from mixedclf.core.sequences import sequences_without_tokens

    seqs = sequences_without_tokens(np.array([3, 5], dtype=np.int32), np.array([False, True]),
                                    *(np.array(v, dtype=np.int32) for v in ([1, 2], [1, 1], [10, 20])))
    logits = np.array([[0.1, 2.0], [1.5, -0.3]], dtype=np.float32)
    for all_scores in (False, True):
        want = label_columns(logits, LABELS, "softmax", seqs.rows(), "m", all_scores)
        wire = json.loads(json.dumps(prediction_rows(logits, seqs.rows(), LABELS, "softmax")))
        assert pa.table(columns_from_predictions(wire, LABELS, "m", all_scores)).equals(pa.table(want))
    with pytest.raises(ValueError, match="lacks a field"):
        columns_from_predictions([{"label": "x"}], LABELS, "m")


def test_bad_rows_go_to_the_errors_file_and_stdout_output_works(tmp_path, plane, capsys):
    src, rows = _input(tmp_path, 30)
    lines = src.read_text().splitlines()
    lines[3] = json.dumps({"id": "r003", "text": None, "stars": 1})
    src.write_text("\n".join(lines) + "\n")
    result = classify_file(_opts(tmp_path, src), target=plane.target())
    assert result.report.rows_errored == 1 and result.report.rows_out == 29
    assert "r003" not in {r["id"] for r in _rows(result.output_path)}
    assert "text is null" in result.errors_path.read_text()
    opts = _opts(tmp_path, src).model_copy(update={"output": "-"})
    classify_file(opts, target=plane.target())
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in out] == [r["id"] for r in rows if r["id"] != "r003"]


def test_a_command_line_engine_overrides_a_config_or_env_deploy(tmp_path, monkeypatch, tiny_model):
    """A --config (or MIXEDCLF_*) that runs on Runpod is overridden by `--engine local` on the command line: the
    deploy spec it names goes with its engine instead of refusing the run. A --deploy at the engine's layer or
    above still needs --engine runpod."""
    from mixedclf.cloud.spec import INIT_TEMPLATE

    for name in ("MIXEDCLF_ENGINE", "MIXEDCLF_DEPLOY"):
        monkeypatch.delenv(name, raising=False)
    src, _ = _input(tmp_path, 3)
    spec = tmp_path / "mixedclf-deploy.toml"
    spec.write_text(INIT_TEMPLATE)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[classify]\nengine = "runpod"\ndeploy = "{spec}"\n')
    runner = CliRunner()
    out = tmp_path / "o.jsonl"
    base = ["classify", str(src), "-o", str(out), "--config", str(cfg), "--model", str(tiny_model), "-q",
            "--cpu-workers", "1", "--torch-threads", "1", "--no-cache"]
    res = runner.invoke(app, [*base, "--engine", "local"])
    assert res.exit_code == 0, res.output
    assert len(out.read_text().splitlines()) == 3
    monkeypatch.setenv("MIXEDCLF_ENGINE", "local")
    res = runner.invoke(app, [*base, "-o", str(tmp_path / "o2.jsonl")])
    assert res.exit_code == 0, res.output
    monkeypatch.setenv("MIXEDCLF_DEPLOY", str(spec))  # now deploy sits at the engine's layer: a contradiction
    res = runner.invoke(app, [*base, "-o", str(tmp_path / "o3.jsonl")])
    assert res.exit_code == EXIT_USAGE and "--engine runpod" in res.output
    monkeypatch.delenv("MIXEDCLF_DEPLOY")
    res = runner.invoke(app, [*base, "-o", str(tmp_path / "o4.jsonl"), "--engine", "local", "--deploy", str(spec)])
    assert res.exit_code == EXIT_USAGE and "--engine runpod" in res.output


def _local_deployment(tmp_path, precision="auto"):
    """A spec deploying `precision` and a `deploy local` state file whose endpoints do not answer: a run the
    options let through stops at the health check ("do not answer", exit 1), one they refuse exits 2 first."""
    from mixedclf.cloud.provision import DeployedEndpoint, DeployState, spec_digest, write_state
    from mixedclf.cloud.spec import INIT_TEMPLATE

    spec = tmp_path / "mixedclf-deploy.toml"
    spec.write_text(INIT_TEMPLATE.replace('precision = "auto"', f'precision = "{precision}"'))
    endpoints = {r: DeployedEndpoint(id=f"id-{r}", name=r, api="local", url=f"http://127.0.0.1:9/v2/id-{r}")
                 for r in ("pre", "infer", "post")}
    write_state(spec, DeployState(spec=spec.name, spec_sha256=spec_digest(spec), applied_at=0.0, target="local",
                                  endpoints=endpoints))
    return spec


DEPLOYED_NAMES = ("MODEL", "PRECISION", "DEVICE", "BACKEND", "MODE", "CONFIG")


@pytest.mark.parametrize("flag, value", [("--precision", "fp16"), ("--device", "cuda"), ("--backend", "onnxruntime"),
                                         ("--mode", "gpu-only")])
def test_options_the_deployment_decides_are_refused_not_ignored(tmp_path, monkeypatch, flag, value):
    """The deployed workers run the spec's model at its precision on their device, in the spec's topology: a
    --precision, --device or --backend on the command line used to be dropped without a word (the run said
    `precision auto`), and --mode gpu-only priced the split stages' seconds as one GPU's."""
    for name in DEPLOYED_NAMES:
        monkeypatch.delenv(f"MIXEDCLF_{name}", raising=False)
    spec = _local_deployment(tmp_path)
    src, _ = _input(tmp_path, 3)
    out = tmp_path / "o.jsonl"
    base = ["classify", str(src), "-o", str(out), "--engine", "runpod", "--deploy", str(spec)]
    res = CliRunner().invoke(app, [*base, flag, value])
    assert res.exit_code == EXIT_USAGE and flag in res.output and str(spec) in res.output, res.output
    assert not out.exists()
    res = CliRunner().invoke(app, [*base, "--precision", "auto"])  # the deployed one: nothing to refuse
    assert res.exit_code != EXIT_USAGE and "do not answer" in res.output, res.output


@pytest.mark.parametrize("layer", ["command line", "environment", "config file"])
@pytest.mark.parametrize("name, value", [("precision", "fp32"), ("model", "other"), ("device", "cpu"),
                                         ("backend", "torch"), ("mode", "gpu-only")])
def test_a_deployed_setting_from_any_layer_is_refused_naming_where_it_was_set(tmp_path, monkeypatch, layer, name,
                                                                            value):
    """A MIXEDCLF_PRECISION=fp32 set for every cron job, or a --config file's [classify] precision, used to be
    replaced by the deployment's without a word: the user believed the run was fp32. Each layer is refused as the
    command line is, and the line names the variable, the file and key, or the flag."""
    for var in DEPLOYED_NAMES:
        monkeypatch.delenv(f"MIXEDCLF_{var}", raising=False)
    spec = _local_deployment(tmp_path, precision="bf16")
    src, _ = _input(tmp_path, 3)
    out = tmp_path / "o.jsonl"
    cfg = tmp_path / "c.toml"
    cfg.write_text("[classify]\n")
    args = ["classify", str(src), "-o", str(out), "--engine", "runpod", "--deploy", str(spec), "--config", str(cfg)]
    flag = f"--{name}"
    if layer == "command line":
        args += [flag, value]
        where, fix = flag, f"leave {flag} out"
    elif layer == "environment":
        monkeypatch.setenv(f"MIXEDCLF_{name.upper()}", value)
        where = fix = f"MIXEDCLF_{name.upper()}"
    else:
        cfg.write_text(f'[classify]\n{name} = "{value}"\n')
        where, fix = f"{cfg} [classify] {name}", f"remove {name} from [classify] in {cfg}"
    res = CliRunner().invoke(app, args)
    assert res.exit_code == EXIT_USAGE, res.output
    line = " ".join(res.output.split())  # as one line, whatever width the terminal wraps it at
    assert f"{name} {value} (from {where})" in line and fix in line and str(spec) in line, line
    if name == "precision":
        assert "deploys precision bf16" in line
    assert not out.exists()


@pytest.mark.parametrize("layer", ["command line", "environment", "config file"])
def test_a_deployed_setting_equal_to_the_deployments_and_the_defaults_are_accepted(tmp_path, monkeypatch, layer):
    """The spec's own model and precision, from any layer, ask for nothing else; so does `auto` (the device and
    precision left to the deployment) and mode mixed (what a Runpod run is reported as). The packaged defaults set
    every one of them and are never refused: a copy of configs/default.toml as --config neither."""
    from mixedclf.core.options import DEFAULT_CONFIG

    for var in DEPLOYED_NAMES:
        monkeypatch.delenv(f"MIXEDCLF_{var}", raising=False)
    spec = _local_deployment(tmp_path, precision="bf16")
    src, _ = _input(tmp_path, 3)
    cfg = tmp_path / "c.toml"
    cfg.write_text(DEFAULT_CONFIG.read_text())
    base = ["classify", str(src), "-o", str(tmp_path / "o.jsonl"), "--engine", "runpod", "--deploy", str(spec)]
    runner = CliRunner()
    res = runner.invoke(app, base)  # every deployed setting from the defaults
    assert res.exit_code != EXIT_USAGE and "do not answer" in res.output, res.output
    settings = {"precision": "bf16", "model": "default", "device": "auto", "mode": "mixed"}
    if layer == "command line":
        extra = [a for k, v in settings.items() for a in (f"--{k}", v)]
    elif layer == "environment":
        extra = []
        for k, v in settings.items():
            monkeypatch.setenv(f"MIXEDCLF_{k.upper()}", v)
    else:
        extra = ["--config", str(cfg)]
        cfg.write_text(cfg.read_text().replace('precision = "auto"', 'precision = "bf16"'))
    res = runner.invoke(app, [*base, *extra])
    assert res.exit_code != EXIT_USAGE and "do not answer" in res.output, res.output
