"""Load a resolved model onto a device as a module mapping (input_ids, attention_mask) to logits."""

from __future__ import annotations

import os

import torch
from torch import nn

from mixedclf.errors import ModelError
from mixedclf.models.pooled import PooledClassifier
from mixedclf.models.precision import PrecisionChoice, choose_for_module, choose_without_model
from mixedclf.models.spec import HEAD_WEIGHTS, ModelSpec


class _LogitsOnly(nn.Module):
    """Adapts a transformers *ForSequenceClassification model to the (ids, mask) -> logits contract."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda was asked for but no CUDA device is visible", hint="use --device auto or cpu")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelError("--device mps was asked for but MPS is not available", hint="use --device auto or cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ModelError(f"unknown device {device!r}", hint="use auto, cuda, mps or cpu") from exc


def default_dtype(device: torch.device, precision: str = "auto") -> torch.dtype:
    """The dtype `precision` means on this device, from the device and CPU flags (see mixedclf.models.precision)."""
    return choose_without_model(device, precision).dtype


def precision_name(device: torch.device, precision: str = "auto") -> str:
    """What `precision` means on this device before calibration: fp32, fp16, bf16 or int8."""
    return choose_without_model(device, precision).name


def resolve_backend(precision: str, backend: str | None) -> str:
    """torch unless asked otherwise; int8 runs on onnxruntime, torch's own int8 (torch.ao) being deprecated."""
    if backend is None:
        return "onnxruntime" if precision == "int8" else "torch"
    if backend == "torch" and precision == "int8":
        raise ModelError("--precision int8 runs on --backend onnxruntime, not torch",
                         hint="drop --backend torch, or use --precision bf16 / fp32")
    return backend


def build_module(spec: ModelSpec, implementation: str = "auto") -> nn.Module:
    """The fp32 module on the CPU, weights loaded; raises ModelError with the reason when it cannot.

    implementation "auto" runs BERT folders on mixedclf.models.bert (no transformers import: ~2 s less start-up)
    and everything else on transformers; "transformers" always uses transformers (the ONNX export wants its graph).
    """
    if implementation == "auto":
        module = _build_native(spec)
        if module is not None:
            return module
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        if spec.kind == "hf":
            return _LogitsOnly(_from_pretrained(AutoModelForSequenceClassification, spec.path))
        encoder = _from_pretrained(AutoModel, spec.encoder_path, add_pooling_layer=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model from {spec.path}: {exc}") from exc
    return _with_head(encoder, spec)


def _with_head(encoder: nn.Module, spec: ModelSpec) -> PooledClassifier:
    module = PooledClassifier(encoder, len(spec.labels), normalize=bool(spec.head_config.get("normalize", False)))
    load_head_weights(module, spec)
    return module


def _build_native(spec: ModelSpec) -> nn.Module | None:
    """The model on mixedclf.models.bert when it computes what transformers would, else None."""
    from mixedclf.models.bert import load_native, native_bert_config

    classifier = spec.kind == "hf"
    config = native_bert_config(spec.encoder_path, classifier)
    if config is None:
        return None
    try:
        if classifier:
            return load_native(spec.path, config, len(spec.labels))
        return _with_head(load_native(spec.encoder_path, config), spec)
    except (ModelError, RuntimeError, OSError, ValueError):  # shapes or names it does not know: transformers decides
        return None


def _from_pretrained(auto_class, path, **kwargs) -> nn.Module:
    """PyTorch's fused scaled-dot-product attention where the architecture has it, else the model's own."""
    try:
        return auto_class.from_pretrained(path, local_files_only=True, attn_implementation="sdpa", **kwargs)
    except (ValueError, ImportError) as exc:
        if not any(word in str(exc) for word in ("sdpa", "scaled_dot_product_attention", "attn_implementation")):
            raise
        return auto_class.from_pretrained(path, local_files_only=True, **kwargs)


def load_head_weights(module: PooledClassifier, spec: ModelSpec) -> None:
    """Put the trained head (and any overlaid encoder layers) over the packaged encoder's weights."""
    from safetensors.torch import load_file

    state = load_file(str(spec.path / HEAD_WEIGHTS))
    own = module.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise ModelError(f"{spec.path / HEAD_WEIGHTS} has tensors this encoder lacks: {unknown[:3]}")
    if "classifier.weight" not in state:
        raise ModelError(f"{spec.path / HEAD_WEIGHTS} has no classifier.weight")
    # copy_ casts each stored tensor (fp16 overlay) into its parameter once: no fp32 copy of the file first.
    module.load_state_dict(state, strict=False)


def load_model(spec: ModelSpec, device: torch.device, precision: str = "auto", backend: str | None = None) -> nn.Module:
    """The model ready to run, with `module.precision_choice` (what ran and why) and `module.backend` set."""
    backend = resolve_backend(precision, backend)
    if backend == "onnxruntime":
        module, choice = _load_onnxruntime(spec, device, precision)
    else:
        module = build_module(spec).eval()
        choice, converted = choose_for_module(module, device, precision, _model_key(spec, device, precision),
                                              _cache_dir())
        module = converted if converted is not None else module.to(device=device, dtype=choice.dtype)
    module.precision_choice = choice
    module.backend = backend
    return module


def precision_of(module: nn.Module, device: torch.device, precision: str) -> PrecisionChoice:
    """The precision a loaded model runs at (set by load_model), else the flags-only decision."""
    return getattr(module, "precision_choice", None) or choose_without_model(device, precision)


def _load_onnxruntime(spec: ModelSpec, device: torch.device, precision: str) -> tuple[nn.Module, PrecisionChoice]:
    from mixedclf.models.onnx_backend import load_ort_module

    if device.type != "cpu":  # refused before anything is converted
        asked = "--precision int8" if precision == "int8" else "--backend onnxruntime"
        raise ModelError(f"{asked} runs on the CPU only, not on {device.type}",
                         hint="use --precision fp16 or bf16 with --backend torch on an accelerator")
    if precision in ("fp16", "bf16"):
        raise ModelError(f"--backend onnxruntime runs fp32 or int8, not {precision}",
                         hint="use --precision int8, fp32 or auto")
    if precision == "auto":
        choice = PrecisionChoice("fp32", "fp32: onnxruntime's exact default (int8 with --precision int8)")
    else:
        choice = PrecisionChoice(precision, f"{precision}: asked for (--precision {precision})")
    return load_ort_module(spec, choice.name, torch.get_num_threads()), choice


def _cache_dir():
    from mixedclf.models.cache import cache_root

    return cache_root()


def _model_key(spec: ModelSpec, device: torch.device, precision: str) -> str | None:
    """The model's content hash, only where a calibration will want it (hashing is not free on a first run)."""
    if choose_without_model(device, precision).name != "bf16" or precision != "auto":
        return None
    from mixedclf.models.cache import content_hash

    try:
        return content_hash(spec)
    except OSError:
        return None
