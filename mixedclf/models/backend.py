"""The model ready to run, on the backend asked for: a torch module (mixedclf.models.loading) or an ONNX Runtime
session (mixedclf.models.onnx_backend). Either maps (input_ids, attention_mask) to logits; the session takes and
gives numpy arrays. torch is imported only for the torch backend, so a run on onnxruntime whose conversion is
already cached starts without it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to run and what it runs as: the module (a torch module or an onnxruntime session), the
    backend, the precision chosen (and why) and the device."""

    module: Any
    backend: str
    precision: PrecisionChoice
    device: Any

    @property
    def threads(self) -> int:
        """The intra-op threads it runs with: the session's own, else torch's setting."""
        threads = getattr(self.module, "threads", None)
        if threads is not None:
            return threads
        import torch

        return torch.get_num_threads()

    @property
    def run(self) -> str:
        """What it computes with, in words: backend, precision and device kind ("torch bf16 on cpu"); a
        checkpoint records it so a resume computes rows the same way."""
        return f"{self.backend} {self.precision.name} on {self.device.type}"


def load_model(spec: ModelSpec, device, precision: str = "auto", backend: str | None = None,
               threads: int | None = None) -> LoadedModel:
    """The model ready to run, with what it runs as (backend, the precision chosen and why).

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
    return LoadedModel(model, backend, choice, device)


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


def answer_run_key(spec: ModelSpec, model: LoadedModel, clean: str, tokenizer_json: str) -> bytes:
    """The run key an AnswerStore files this model's answers under (core.answers): every setting that decides a
    row's logits. The model's files are hashed by content (remembered per file), so a retrained model misses."""
    import hashlib

    from mixedclf.core.answers import run_key
    from mixedclf.models.cache import content_hash

    return run_key(model=content_hash(spec), backend=model.backend, precision=model.precision.name,
                   device=model.device.type, clean=clean, max_length=spec.max_length,
                   tokenizer=hashlib.sha256(tokenizer_json.encode("utf-8")).hexdigest())
