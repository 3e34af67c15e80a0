"""deploy apply / verify / destroy against a recording fake control plane on 127.0.0.1 (tests/fake_runpod.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_runpod import FakeControlPlane
from typer.testing import CliRunner

from mixedclf.cli.app import app
from mixedclf.cloud.spec import INIT_TEMPLATE

GOLDEN = Path(__file__).parent / "golden" / "deploy_apply_requests.json"
KEY = "rpa_TESTKEY_never_printed_0123456789"
runner = CliRunner()


@pytest.fixture
def plane(monkeypatch):
    with FakeControlPlane(KEY) as fake:
        monkeypatch.setenv("RUNPOD_API_KEY", KEY)
        monkeypatch.setenv("RUNPOD_REST_API_URL", fake.url)
        monkeypatch.setenv("RUNPOD_API_BASE_URL", fake.url)
        yield fake


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "mixedclf-deploy.toml"
    path.write_text(INIT_TEMPLATE)
    return path


def _deploy(*args):
    result = runner.invoke(app, ["deploy", *args])
    assert KEY not in result.output
    return result


def test_apply_sends_the_golden_requests_then_nothing_more(plane, spec):
    result = _deploy("apply", str(spec))
    assert result.exit_code == 0, result.output
    sent = [{k: r[k] for k in ("method", "path", "body")} for r in plane.requests]
    assert sent == json.loads(GOLDEN.read_text())
    assert all(r["auth"] == f"Bearer {KEY}" for r in plane.requests)
    assert KEY not in json.dumps(sent)  # the key is a header, never a setting
    state = json.loads((spec.parent / "mixedclf-deploy.state.json").read_text())
    assert {r: e["id"] for r, e in state["endpoints"].items()} == {
        "pre": "ep001", "infer": "ep002", "post": "ep003", "orchestrator": "ep004"}
    assert state["endpoints"]["orchestrator"]["url"] == "https://ep004.api.runpod.ai"
    assert KEY not in json.dumps(state)
    orch_env = plane.endpoints["ep004"]["env"]
    assert orch_env["MIXEDCLF_ENDPOINT_PRE"] == "ep001" and orch_env["RUNPOD_API_KEY"].startswith("{{ RUNPOD_SECRET")

    plane.requests.clear()
    again = _deploy("apply", str(spec))
    assert again.exit_code == 0, again.output
    assert [(r["method"], r["path"]) for r in plane.requests] == [("GET", "/v2/serverless")]
    assert _deploy("verify", str(spec)).exit_code == 0


def test_apply_updates_only_what_differs(plane, spec):
    assert _deploy("apply", str(spec)).exit_code == 0
    spec.write_text(spec.read_text().replace("idle_timeout_s = 3\n", "idle_timeout_s = 7\n"))
    plane.requests.clear()
    assert _deploy("apply", str(spec)).exit_code == 0
    changes = [(r["method"], r["path"]) for r in plane.requests]
    assert changes == [("GET", "/v2/serverless"), ("PATCH", "/v2/serverless/ep003")]
    assert plane.requests[1]["body"]["workers"]["idleTimeout"] == 7
    assert "type" not in plane.requests[1]["body"]


@pytest.mark.parametrize("drift, shown", [
    ({"timeout": 0}, "post.timeout: spec 600000, deployed 0"),
    ({"flashboot": "FLASHBOOT"}, None),  # fine: the spec asks for FlashBoot
    ({"workers": {"idleTimeout": 5}}, "post.workers.idleTimeout: spec 3, deployed 5"),
    ({"env": {"RUNPOD_API_KEY": "rpa_LEAKED"}}, "post.env.RUNPOD_API_KEY: not in the spec, deployed <hidden>"),
])
def test_verify_reports_a_drift_the_control_plane_injects(plane, spec, drift, shown):
    assert _deploy("apply", str(spec)).exit_code == 0
    plane.drift["mixedclf-post"] = drift
    result = _deploy("verify", str(spec))
    if shown is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 1, result.output
    assert f"drift: {shown}" in result.output
    assert "rpa_LEAKED" not in result.output


def test_verify_reports_a_deleted_endpoint_and_a_changed_spec(plane, spec):
    assert _deploy("apply", str(spec)).exit_code == 0
    del plane.endpoints["ep002"]
    spec.write_text(spec.read_text() + "\n")
    result = _deploy("verify", str(spec))
    assert result.exit_code == 1
    assert "infer: cannot read mixedclf-infer (ep002) back" in result.output
    assert "changed since apply" in result.output


def test_destroy_removes_what_apply_made(plane, spec):
    assert _deploy("apply", str(spec)).exit_code == 0
    plane.endpoints["other"] = {"id": "other", "name": "not-ours"}
    plane.requests.clear()
    result = _deploy("destroy", str(spec))
    assert result.exit_code == 0, result.output
    assert [(r["method"], r["path"]) for r in plane.requests] == [
        ("DELETE", "/v2/serverless/ep004"), ("DELETE", "/v2/serverless/ep001"),
        ("DELETE", "/v2/serverless/ep002"), ("DELETE", "/v2/serverless/ep003")]
    assert list(plane.endpoints) == ["other"]
    assert not (spec.parent / "mixedclf-deploy.state.json").exists()


def test_without_a_key_apply_refuses_and_a_refusal_is_one_line(plane, spec, monkeypatch):
    monkeypatch.delenv("RUNPOD_API_KEY")
    result = _deploy("apply", str(spec))
    assert result.exit_code == 2 and "RUNPOD_API_KEY is not set" in result.output
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_wrong")
    result = runner.invoke(app, ["deploy", "apply", str(spec)])
    assert result.exit_code == 1 and "HTTP 401" in result.output and "rpa_wrong" not in result.output


def test_verify_and_destroy_refuse_a_local_state_file(plane, spec):
    from mixedclf.cloud.provision import DeployedEndpoint, DeployState, spec_digest, write_state

    write_state(spec, DeployState(spec=spec.name, spec_sha256=spec_digest(spec), applied_at=0.0, target="local",
                                  endpoints={"pre": DeployedEndpoint(id="local-pre", name="mixedclf-pre",
                                                                     api="local", url="http://127.0.0.1:1/v2/x")}))
    for command in ("verify", "destroy"):
        result = _deploy(command, str(spec))
        assert result.exit_code == 2 and "local topology" in result.output, command
    assert plane.requests == []


def test_a_graphql_refusal_is_one_line_and_the_state_keeps_what_was_made(plane, spec, monkeypatch):
    original = plane.route

    def refuse_graphql(method, path, body):
        if path == "/graphql":
            return 200, {"errors": [{"message": "instance cpu3c-1-2 is not available"}]}
        return original(method, path, body)

    monkeypatch.setattr(plane, "route", refuse_graphql)
    result = _deploy("apply", str(spec))
    assert result.exit_code == 1 and "instance cpu3c-1-2 is not available" in result.output
    state = json.loads((spec.parent / "mixedclf-deploy.state.json").read_text())
    assert set(state["endpoints"]) == {"pre", "infer", "post"}  # the next apply continues from here
    monkeypatch.setattr(plane, "route", original)
    plane.requests.clear()
    assert _deploy("apply", str(spec)).exit_code == 0
    assert [(r["method"], r["path"]) for r in plane.requests] == [("GET", "/v2/serverless"), ("POST", "/graphql")]
