"""The model ready to run, on the backend asked for: a torch module (mixedclf.models.loading) or an ONNX Runtime
session (mixedclf.models.onnx_backend). Either maps (input_ids, attention_mask) to logits; the session takes and
gives numpy arrays. torch is imported only for the torch backend, so a run on onnxruntime whose conversion is
already cached starts without it.
"""

from __future__ import annotations

import sys

from mixedclf.errors import ModelError
from mixedclf.models.precision import PrecisionChoice
from mixedclf.models.spec import ModelSpec


def resolve_backend(precision: str, backend: str | None, spec: ModelSpec | None = None) -> str:
    """torch unless asked otherwise; int8 runs on onnxruntime, torch's own int8 (torch.ao) being deprecated; an
    ONNX export runs on onnxruntime only."""
    if spec is not None and spec.kind == "onnx":
        if backend == "torch":
            raise ModelError(f"{spec.path} is an ONNX export: it runs on --backend onnxruntime, not torch",
                             hint="pip install 'mixedclf[torch]' for the torch backend of the default model")
        return "onnxruntime"
    if backend is None:
        return "onnxruntime" if precision == "int8" else "torch"
    if backend == "torch" and precision == "int8":
        raise ModelError("--precision int8 runs on --backend onnxruntime, not torch",
                         hint="drop --backend torch, or use --precision bf16 / fp32")
    return backend


def load_model(spec: ModelSpec, device, precision: str = "auto", backend: str | None = None,
               threads: int | None = None):
    """The model ready to run, with `.precision_choice` (what ran and why) and `.backend` set.

    `device` is a models.device.Device or a torch.device. `threads` (--torch-threads) sets the model's intra-op
    threads: torch's process-wide setting, or the onnxruntime session's. None leaves torch's as it is; a session
    then takes torch's setting where torch is already imported (serve and Ray set it), else torch's default
    (models.threads), so the option means the same on both backends.
    """
    backend = resolve_backend(precision, backend, spec)
    if backend == "onnxruntime":
        model, choice = _load_onnxruntime(spec, device, precision, threads)
    else:
        import torch

        from mixedclf.models.loading import load_torch_module

        if threads:
            torch.set_num_threads(threads)
        model, choice = load_torch_module(spec, device, precision)
    model.precision_choice = choice
    model.backend = backend
    return model


def precision_of(model, device, precision: str) -> PrecisionChoice:
    """The precision a loaded model runs at (set by load_model), else the flags-only decision."""
    choice = getattr(model, "precision_choice", None)
    if choice is not None:
        return choice
    from mixedclf.models.precision import choose_without_model

    return choose_without_model(device, precision)


def model_run(model, device, precision: str) -> str:
    """What a loaded model computes with, in words: backend, precision and device kind ("torch bf16 on cpu")."""
    return f"{getattr(model, 'backend', 'torch')} {precision_of(model, device, precision).name} on {device.type}"


def model_threads(model) -> int | None:
    """The intra-op threads a loaded model runs with: the session's own, else torch's setting."""
    threads = getattr(model, "threads", None)
    if threads is not None:
        return threads
    import torch

    return torch.get_num_threads()


def _load_onnxruntime(spec: ModelSpec, device, precision: str, threads: int | None):
    from mixedclf.models.onnx_backend import load_ort_model

    if device.type != "cpu":  # refused before anything is converted
        asked = "--precision int8" if precision == "int8" else "--backend onnxruntime"
        raise ModelError(f"{asked} runs on the CPU only, not on {device.type}",
                         hint="use --precision fp16 or bf16 with --backend torch on an accelerator")
    if precision in ("fp16", "bf16"):
        raise ModelError(f"--backend onnxruntime runs fp32 or int8, not {precision}",
                         hint="use --precision int8, fp32 or auto")
    if spec.kind == "onnx":
        made = str(spec.head_config.get("precision", "fp32"))
        if precision not in ("auto", made):
            raise ModelError(f"{spec.path} is an ONNX export made at {made}, not {precision}",
                             hint=f"drop --precision, or give --precision {made}")
        choice = PrecisionChoice(made, f"{made}: the precision of this ONNX export")
    elif precision == "auto":
        choice = PrecisionChoice("fp32", "fp32: onnxruntime's exact default (int8 with --precision int8)")
    else:
        choice = PrecisionChoice(precision, f"{precision}: asked for (--precision {precision})")
    if threads is None:
        torch = sys.modules.get("torch")
        if torch is not None:
            threads = torch.get_num_threads()
        else:
            from mixedclf.models.threads import default_intra_op_threads

            threads = default_intra_op_threads()
    return load_ort_model(spec, choice.name, threads), choice
