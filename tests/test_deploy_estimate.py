"""estimate --deploy SPEC prices the spec's settings: the same numbers as the equivalent options."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from mixedclf.cli.app import app
from mixedclf.cloud.spec import INIT_TEMPLATE

runner = CliRunner()


def _estimate(*args: str) -> dict:
    result = runner.invoke(app, ["estimate", "--no-usage", "--format", "json", *args])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("created_at", "notes"):
        data.pop(key, None)
    data["inputs"].pop("source", None)
    return data


def test_deploy_spec_equals_the_equivalent_options(tmp_path):
    spec = tmp_path / "mixedclf-deploy.toml"
    spec.write_text(INIT_TEMPLATE.replace('gpu_pool = "ADA_24"', 'gpu_pool = "AMPERE_80"'))
    from_spec = _estimate("--deploy", str(spec))
    by_hand = _estimate("--billing", "runpod", "--profile", "runpod-a100", "--idle-timeout-pre", "180",
                        "--idle-timeout-gpu", "300", "--idle-timeout-post", "3", "--gpu-workers", "0:3",
                        "--cpu-workers", "0:10", "--orchestrator-workers", "1")
    assert from_spec == by_hand
    assert from_spec["pricing"]["name"] == "runpod-a100"
    # the command line still wins over the spec
    assert _estimate("--deploy", str(spec), "--idle-timeout-gpu", "5")["inputs"]["idle_timeout_gpu"] == 5.0


def test_client_orchestrator_means_no_always_on_worker(tmp_path):
    head, _, _ = INIT_TEMPLATE.partition("[endpoints.orchestrator]")
    spec = tmp_path / "s.toml"
    spec.write_text(head.replace('orchestrator = "lb"', 'orchestrator = "client"'))
    assert _estimate("--deploy", str(spec))["inputs"]["orchestrator_workers"] == 0


def test_a_usage_file_that_disagrees_with_the_spec_is_refused(tmp_path):
    spec = tmp_path / "mixedclf-deploy.toml"
    spec.write_text(INIT_TEMPLATE)
    usage = tmp_path / "u.toml"
    usage.write_text("version = 1\nidle_timeout_gpu = 60\n")
    result = runner.invoke(app, ["estimate", "--usage", str(usage), "--deploy", str(spec)])
    assert result.exit_code == 2 and "disagree on idle_timeout_gpu" in result.output
    usage.write_text("version = 1\nidle_timeout_gpu = 300\nrequests_per_day = 500\n")
    result = runner.invoke(app, ["estimate", "--usage", str(usage), "--deploy", str(spec), "--format", "json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["inputs"]["requests_per_day"] == 500
