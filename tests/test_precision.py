"""What --precision auto picks on each machine and why; int8 and fp32 on the onnxruntime backend stay close to
torch fp32 and are converted once per model."""

import numpy as np
import pytest
import torch

from mixedclf.core.inference import InferenceRunner
from mixedclf.core.preprocess import make_tokenizer, preprocess_texts
from mixedclf.errors import ModelError
from mixedclf.models import loading, onnx_backend, precision
from mixedclf.models.backend import load_model
from mixedclf.models.device import resolve_device
from mixedclf.models.spec import resolve_model
from mixedclf.models.tokenizer import tokenizer_json_and_pad_id

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
TEXTS = ["good food", "bad bad service", "it was fine, nothing more", "terrible slow app", "love it, great staff",
         "the room was not very good but the staff was"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXEDCLF_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def flags(monkeypatch, *, avx512_bf16=False, amx=False, cpuinfo=()):
    """Mock what the CPU reports, through mixedclf's own seams (torch's probes are private: patching them with
    raising=False would silently test nothing after a rename; test_torch_has_the_cpu_probes_we_call guards them)."""
    monkeypatch.setattr(precision, "torch_cpu_probes",
                        lambda: {"_is_avx512_bf16_supported": avx512_bf16, "_is_amx_tile_supported": amx})
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512f", "avx512bw", "avx512_vnni", *cpuinfo})


def test_torch_has_the_cpu_probes_we_call():
    """precision.torch_cpu_probes calls these private torch.cpu functions; a torch that renamed them would turn
    the native-bf16 check into /proc/cpuinfo alone without a word."""
    assert all(callable(getattr(torch.cpu, name, None)) for name in precision.TORCH_CPU_PROBES)
    assert set(precision.torch_cpu_probes()) == set(precision.TORCH_CPU_PROBES)


@pytest.mark.parametrize("kw, expected, why", [
    ({}, "fp32", "no native bf16 on this CPU (avx512_bf16/amx absent)"),  # Ice Lake: emulated bf16
    ({"avx512_bf16": True}, "bf16", "CPU has AVX512_BF16"),
    ({"amx": True}, "bf16", "CPU has AMX"),
    ({"cpuinfo": ("avx512_bf16",)}, "bf16", "CPU has AVX512_BF16"),  # torch too old to probe: /proc/cpuinfo
    ({"cpuinfo": ("amx_bf16", "amx_tile")}, "bf16", "CPU has AMX"),
])
def test_auto_is_bf16_only_where_the_cpu_computes_it_natively(monkeypatch, kw, expected, why):
    flags(monkeypatch, **kw)
    choice = precision.choose_without_model(CPU, "auto")
    assert (choice.name, choice.reason) == (expected, f"{expected}: {why}")
    assert choice.dtype == {"fp32": torch.float32, "bf16": torch.bfloat16}[expected]


def test_auto_is_fp16_on_cuda_whatever_the_cpu(monkeypatch):
    flags(monkeypatch)
    monkeypatch.setattr("mixedclf.models.device.accelerator_driver_present", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    device = resolve_device("auto")
    assert device.type == "cuda"
    assert precision.choose_without_model(device, "auto").name == "fp16"
    assert precision.choose_without_model(device, "auto").dtype == torch.float16
    assert precision.choose_without_model(device).reason == "fp16: CUDA device"
    assert precision.choose_without_model(device, "fp32").name == "fp32"
    assert precision.choose_without_model(CPU, "int8").name == "int8"


@pytest.mark.parametrize("speedup, expected", [(1.9, "bf16"), (1.15, "fp32"), (0.4, "fp32")])
def test_calibration_keeps_fp32_when_bf16_is_not_faster(monkeypatch, cache, tiny_model, speedup, expected):
    flags(monkeypatch, avx512_bf16=True)
    monkeypatch.setattr(precision, "measure_bf16_speedup", lambda fp32, bf16: speedup)
    model = load_model(resolve_model(str(tiny_model)), CPU, "auto")
    assert model.precision.name == expected and model.backend == "torch"
    assert f"measured {speedup:.2f}x fp32" in model.precision.reason
    assert next(model.module.parameters()).dtype == {"bf16": torch.bfloat16, "fp32": torch.float32}[expected]


def test_calibration_runs_once_per_model_and_is_cheap(monkeypatch, cache, tiny_model, tmp_path):
    from conftest import build_tiny_classifier

    flags(monkeypatch, avx512_bf16=True)
    calls = []
    real = precision.measure_bf16_speedup

    def counted(fp32, bf16):
        start = __import__("time").thread_time()
        calls.append(real(fp32, bf16))
        assert __import__("time").thread_time() - start < 1.0
        return calls[-1]

    monkeypatch.setattr(precision, "measure_bf16_speedup", counted)
    spec = resolve_model(str(tiny_model))
    threads = torch.get_num_threads()
    first = load_model(spec, CPU, "auto").precision
    second = load_model(spec, CPU, "auto").precision
    assert len(calls) == 1 and calls[0] > 0 and first == second
    other = build_tiny_classifier(tmp_path / "other", seed=3)  # other weights: measured again
    load_model(resolve_model(str(other)), CPU, "auto")
    assert len(calls) == 2
    assert torch.get_num_threads() == threads  # restored after timing on one thread


def test_no_calibration_where_the_flags_say_fp32(monkeypatch, cache, tiny_model):
    flags(monkeypatch)
    monkeypatch.setattr(precision, "measure_bf16_speedup", lambda *a: pytest.fail("calibrated without bf16"))
    assert load_model(resolve_model(str(tiny_model)), CPU, "auto").precision.name == "fp32"
    assert load_model(resolve_model(str(tiny_model)), CPU, "bf16").precision.reason.startswith("bf16: asked")


def probabilities(spec, model):
    tokenizer_json, pad_id = tokenizer_json_and_pad_id(spec)
    batch = preprocess_texts(TEXTS, make_tokenizer(tokenizer_json, spec.max_length))
    logits = InferenceRunner(model.module, CPU, len(spec.labels), pad_id).logits(batch, 4, 1024)
    return torch.softmax(torch.from_numpy(logits), -1).numpy()


def test_onnxruntime_fp32_and_int8_match_torch_fp32(cache, tiny_model):
    spec = resolve_model(str(tiny_model))
    reference = probabilities(spec, load_model(spec, CPU, "fp32"))
    exact = load_model(spec, CPU, "auto", "onnxruntime")
    assert exact.precision.name == "fp32" and exact.backend == "onnxruntime"
    assert np.abs(probabilities(spec, exact) - reference).max() < 1e-4
    int8 = load_model(spec, CPU, "int8")  # int8 alone means onnxruntime
    assert int8.backend == "onnxruntime" and int8.precision.name == "int8"
    ops = {n.op_type for n in __import__("onnx").load(str(onnx_backend.model_path(spec, "int8"))).graph.node}
    assert ops & {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul", "QAttention"}
    got = probabilities(spec, int8)
    assert not np.array_equal(got, reference)
    assert np.abs(got - reference).max() < 0.05
    assert (got.argmax(1) == reference.argmax(1)).mean() >= 5 / 6


def test_conversion_is_cached_whole_and_reused(cache, tiny_model, monkeypatch):
    spec = resolve_model(str(tiny_model))
    path = onnx_backend.model_path(spec, "int8")
    monkeypatch.setattr(onnx_backend, "convert", lambda *a: pytest.fail("converted twice"))
    assert onnx_backend.model_path(spec, "int8") == path
    load_model(spec, CPU, "int8")  # classify, serve and Ray actors all load through here
    entries = list((cache / "converted").iterdir())
    assert all(not e.name.startswith(".") for e in entries)  # no half-written temp folders left
    assert (path.parent / "complete.json").exists() and path.exists()


def test_a_failed_conversion_leaves_nothing_behind(cache, tiny_model, monkeypatch):
    def broken(spec, folder, precision):
        (folder / "model.onnx").write_bytes(b"half")
        raise ModelError("export failed")

    monkeypatch.setattr(onnx_backend, "convert", broken)
    with pytest.raises(ModelError, match="export failed"):
        onnx_backend.model_path(resolve_model(str(tiny_model)), "int8")
    assert list((cache / "converted").iterdir()) == []


@pytest.mark.parametrize("device, precision_, backend, message", [
    ("meta", "int8", None, "CPU only"),
    ("meta", "fp32", "onnxruntime", "CPU only"),
    ("cpu", "bf16", "onnxruntime", "fp32 or int8"),
    ("cpu", "int8", "torch", "int8 runs on --backend onnxruntime"),
])
def test_impossible_combinations_are_refused_before_loading(tiny_model, monkeypatch, device, precision_, backend,
                                                            message):
    monkeypatch.setattr(loading, "build_module", lambda spec: pytest.fail("weights read"))
    with pytest.raises(ModelError, match=message):
        load_model(resolve_model(str(tiny_model)), torch.device(device), precision_, backend)


def test_the_report_says_what_ran_and_why(tmp_path):
    from rich.console import Console

    from mixedclf.costs.examples import classify_fields
    from mixedclf.costs.report import build_classify_report
    from mixedclf.render.report import classify_to_markdown, render_classify

    settings = {"precision": "fp32", "precision_reason": "fp32: no native bf16 on this CPU (avx512_bf16/amx absent)",
                "backend": "torch"}
    report = build_classify_report(**classify_fields(settings=settings))
    console = Console(record=True, width=160)
    render_classify(report, console, advice=False)
    line = "precision fp32 (no native bf16 on this CPU (avx512_bf16/amx absent)) on torch"
    assert line in console.export_text() and line in classify_to_markdown(report, advice=False)


def test_without_onnxruntime_int8_says_how_to_get_it(tiny_model, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as when it is not installed
    monkeypatch.setattr(loading, "build_module", lambda spec: pytest.fail("weights read"))
    with pytest.raises(ModelError, match=r"onnxruntime is not installed") as info:
        load_model(resolve_model(str(tiny_model)), CPU, "int8")
    assert "mixedclf[onnx]" in info.value.one_line()


def test_classify_int8_end_to_end_reports_backend_and_reason(tmp_path, tiny_model):
    import json

    from conftest import write_jsonl
    from typer.testing import CliRunner

    from mixedclf.cli.app import app
    from mixedclf.costs.report import load_report

    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": t} for i, t in enumerate(TEXTS)])
    rows = {}
    for precision_ in ("fp32", "int8"):
        out, report = tmp_path / f"{precision_}.jsonl", tmp_path / f"{precision_}.json"
        result = CliRunner().invoke(app, ["classify", str(source), "-o", str(out), "--model", str(tiny_model),
                                          "--precision", precision_, "--mode", "gpu-only", "--report", str(report)],
                                    terminal_width=200)
        assert result.exit_code == 0, result.output
        settings = load_report(report).settings
        rows[precision_] = [json.loads(line) for line in out.read_text().splitlines()]
        assert settings["precision"] == precision_
        assert settings["precision_reason"] == f"{precision_}: asked for (--precision {precision_})"
        assert settings["backend"] == {"fp32": "torch", "int8": "onnxruntime"}[precision_]
        assert f"precision {precision_} (asked for (--precision {precision_})) on {settings['backend']}" in result.output
    assert max(abs(a["score"] - b["score"]) for a, b in zip(rows["fp32"], rows["int8"])) < 0.05


# --- the converted-model cache: entries checked by content, conversions keyed by content ---------------------------
def quantized(path) -> bool:
    import onnx

    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    return bool(ops & {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul", "QAttention"})


def warnings_in(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def test_an_int8_entry_overwritten_with_fp32_is_rebuilt_with_one_warning(cache, tiny_model, capsys):
    spec = resolve_model(str(tiny_model))
    fp32, int8 = onnx_backend.model_path(spec, "fp32"), onnx_backend.model_path(spec, "int8")
    assert quantized(int8) and not quantized(fp32)
    capsys.readouterr()
    int8.write_bytes(fp32.read_bytes())  # loadable, and would silently run as fp32
    again = onnx_backend.model_path(spec, "int8")
    assert again == int8 and quantized(again)
    warned = warnings_in(capsys.readouterr().err)
    assert len(warned) == 1 and "model.onnx changed size since it was built" in warned[0], warned
    assert onnx_backend.model_path(spec, "int8") == int8 and warnings_in(capsys.readouterr().err) == []


def test_a_damaged_but_loadable_graph_is_rebuilt_and_gives_the_right_labels(cache, tiny_model, capsys):
    import onnx
    from onnx import numpy_helper

    spec = resolve_model(str(tiny_model))
    reference = probabilities(spec, load_model(spec, CPU, "fp32", "onnxruntime"))
    path = onnx_backend.model_path(spec, "fp32")
    graph = onnx.load(str(path))
    biggest = max(graph.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    damaged = numpy_helper.to_array(biggest).copy()
    damaged.flat[::7] *= -3.0  # what a few flipped bits in the weights do: still a valid graph
    biggest.CopyFrom(numpy_helper.from_array(damaged, biggest.name))
    onnx.save(graph, str(path))
    capsys.readouterr()
    got = probabilities(spec, load_model(spec, CPU, "fp32", "onnxruntime"))
    warned = warnings_in(capsys.readouterr().err)
    assert len(warned) == 1 and "model.onnx changed since it was built (its sha256 differs)" in warned[0], warned
    assert np.abs(got - reference).max() < 1e-6


def test_an_entry_without_its_completion_marker_is_rebuilt_not_a_dead_end(cache, tiny_model, capsys):
    spec = resolve_model(str(tiny_model))
    path = onnx_backend.model_path(spec, "int8")
    (path.parent / "complete.json").unlink()  # a conversion killed between its files and its marker
    capsys.readouterr()
    again = onnx_backend.model_path(spec, "int8")
    assert again == path and (path.parent / "complete.json").exists() and quantized(again)
    warned = warnings_in(capsys.readouterr().err)
    assert len(warned) == 1 and "completion marker" in warned[0], warned


def test_weights_rewritten_in_place_with_the_same_stat_get_a_new_conversion(cache, tiny_model, tmp_path):
    import json
    import os
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    spec = resolve_model(str(folder))
    before = probabilities(spec, load_model(spec, CPU, "fp32", "onnxruntime"))
    first = onnx_backend.model_path(spec, "fp32")
    weights = next(p for p in folder.iterdir() if p.suffix == ".safetensors")
    st = weights.stat()
    data = bytearray(weights.read_bytes())
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + header_len])
    start, end = max((v["data_offsets"] for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32"),
                     key=lambda o: o[1] - o[0])
    base = 8 + header_len
    for i in range(base + start + 3, base + end, 4):  # negate every float32 of the biggest tensor: the sign bit
        data[i] ^= 0x80
    new_bytes = bytes(data)
    with open(weights, "r+b") as handle:  # in place: the same inode
        handle.write(new_bytes)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = weights.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    spec = resolve_model(str(folder))
    second = onnx_backend.model_path(spec, "fp32")
    assert second != first
    expected = probabilities(spec, load_model(spec, CPU, "fp32"))  # torch on the new weights
    got = probabilities(spec, load_model(spec, CPU, "fp32", "onnxruntime"))
    assert np.abs(got - expected).max() < 1e-4 and np.abs(got - before).max() > 1e-3
