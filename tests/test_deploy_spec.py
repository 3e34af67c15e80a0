"""The deploy spec (mixedclf-deploy.toml): init, validation, and the exact control-plane requests it becomes."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mixedclf.cli.app import app
from mixedclf.cloud.provision import plan
from mixedclf.cloud.spec import INIT_TEMPLATE, DeploySpec, load_spec
from mixedclf.errors import InputError

GOLDEN = Path(__file__).parent / "golden" / "deploy_plan.json"
runner = CliRunner()


def _spec_dict() -> dict:
    return tomllib.loads(INIT_TEMPLATE)


def test_init_writes_the_original_design_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "mixedclf-deploy.toml"
    assert runner.invoke(app, ["deploy", "init", str(path)]).exit_code == 0
    spec = load_spec(path)
    eps = spec.endpoints
    assert [eps[r].idle_timeout_s for r in ("pre", "infer", "post")] == [180, 300, 3]
    assert [eps[r].workers for r in ("pre", "infer", "post", "orchestrator")] == ["0:10", "0:3", "0:10", "1:3"]
    assert eps["orchestrator"].instance == "cpu3c-1-2"
    assert "# " in path.read_text()  # commented
    path.write_text("# mine\n")
    result = runner.invoke(app, ["deploy", "init", str(path)])
    assert result.exit_code == 2 and "already exists" in result.output
    assert path.read_text() == "# mine\n"


def _assert_one_line_exit_2(path, message):
    """Loading the spec is one InputError line naming the file, and `deploy plan` on it exits 2 saying so."""
    with pytest.raises(InputError) as caught:
        load_spec(path)
    line = str(caught.value)
    assert message in line and "\n" not in line and line.startswith(str(path))
    result = runner.invoke(app, ["deploy", "plan", str(path)])
    assert result.exit_code == 2 and message in result.output


@pytest.mark.parametrize("change, message", [
    (lambda d: d["endpoints"]["pre"].update(bogus=1), "Extra inputs are not permitted"),
    (lambda d: d.update(colour="red"), "Extra inputs are not permitted"),
    (lambda d: d["endpoints"]["pre"].update(workers="10"), 'workers must be "min:max"'),
    (lambda d: d["endpoints"]["pre"].update(workers="5:2"), "min <= max"),
    (lambda d: d["endpoints"]["pre"].update(instance="cpu3c-3-6"), "unknown CPU instance"),
    (lambda d: d["endpoints"]["pre"].update(instance="cpu3c-2-8"), "unknown CPU instance"),
    (lambda d: d["endpoints"]["infer"].update(gpu_pool="RTX_9999"), "unknown GPU pool"),
    (lambda d: d["endpoints"]["post"].update(idle_timeout_s=0), "greater than or equal to 1"),
    (lambda d: d["endpoints"]["post"].update(execution_timeout_s=1), "greater than or equal to 5"),
    (lambda d: d["endpoints"]["post"].update(image="ghcr.io/x/y:latest"), "pinned tag"),
    (lambda d: d["endpoints"].pop("post"), "needs [endpoints.post]"),
    (lambda d: d.update(orchestrator="client"), "[endpoints.orchestrator] is not part of"),
    (lambda d: d["endpoints"]["orchestrator"].update(scaler="QUEUE_DELAY"), "REQUEST_COUNT only"),
])
def test_bad_specs_are_one_clear_line(tmp_path, change, message):
    data = _spec_dict()
    change(data)
    path = _write(tmp_path, data)
    _assert_one_line_exit_2(path, message)


def test_the_written_template_round_trips_through_the_test_writer(tmp_path):
    assert load_spec(_write(tmp_path, _spec_dict())) == DeploySpec.model_validate(_spec_dict())


def _write(tmp_path: Path, data: dict) -> Path:
    lines = []

    def emit(table: str, values: dict):
        scalars = {k: v for k, v in values.items() if not isinstance(v, dict)}
        if table:
            lines.append(f"[{table}]")
        lines.extend(f"{k} = {json.dumps(v)}" for k, v in scalars.items())
        for k, v in values.items():
            if isinstance(v, dict):
                emit(f"{table}.{k}" if table else k, v)

    emit("", data)
    path = tmp_path / "spec.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_plan_json_is_the_golden_requests_and_needs_no_key(tmp_path, monkeypatch):
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    monkeypatch.setenv("RUNPOD_REST_API_URL", "https://rest.example")
    monkeypatch.setenv("RUNPOD_API_BASE_URL", "https://graphql.example")
    path = tmp_path / "mixedclf-deploy.toml"
    path.write_text(INIT_TEMPLATE)
    result = runner.invoke(app, ["deploy", "plan", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown == json.loads(GOLDEN.read_text())
    # The settings runpod-flash 1.21 dropped are all sent; the 1-vCPU orchestrator goes through GraphQL.
    by_role = {r["role"]: r for r in shown}
    assert by_role["pre"]["body"]["timeout"] == 600_000 and by_role["pre"]["body"]["flashboot"] == "FLASHBOOT"
    assert by_role["orchestrator"]["api"] == "graphql"
    assert by_role["orchestrator"]["body"]["variables"]["input"]["instanceIds"] == ["cpu3c-1-2"]
    assert all(r["headers"]["Authorization"] == "Bearer <RUNPOD_API_KEY>" for r in shown)


def test_flashboot_off_and_two_vcpu_orchestrator_stay_on_rest_v2():
    data = _spec_dict()
    data["endpoints"]["orchestrator"]["instance"] = "cpu3c-2-4"
    data["endpoints"]["post"]["flashboot"] = False
    requests = {r.role: r for r in plan(DeploySpec.model_validate(data))}
    assert requests["orchestrator"].api == "rest-v2"
    assert requests["orchestrator"].body["type"] == "LOAD_BALANCER"
    assert requests["orchestrator"].body["scaling"] == {"type": "REQUEST_COUNT", "requestCount": 4}
    assert requests["post"].body["flashboot"] == "OFF"
    assert "RUNPOD_API_KEY" not in requests["pre"].body["env"]  # stages call nobody: no key


def test_single_topology_with_a_client_orchestrator_is_one_gpu_endpoint():
    data = _spec_dict()
    data.update(topology="single", orchestrator="client")
    data["endpoints"] = {"all": data["endpoints"]["infer"]}
    requests = plan(DeploySpec.model_validate(data))
    assert [(r.role, r.api, r.body["name"], r.body["type"]) for r in requests] == [
        ("all", "rest-v2", "mixedclf-all", "QUEUE")]
    assert requests[0].body["gpu"] == {"pools": ["ADA_24"], "count": 1}
    assert requests[0].body["env"]["MIXEDCLF_STAGE"] == "all"


@pytest.mark.parametrize("kind, message", [
    ("folder", "is a directory"),
    ("binary", "not UTF-8 text"),
])
def test_a_spec_that_is_a_folder_or_binary_is_one_line_exit_2(tmp_path, kind, message):
    path = tmp_path / "spec.toml"
    if kind == "folder":
        path.mkdir()
    else:
        path.write_bytes(b"PAR1\x15\x04\x98\xff\x00")
    _assert_one_line_exit_2(path, message)
