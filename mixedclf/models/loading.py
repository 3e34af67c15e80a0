"""Load a resolved model onto a device as a module mapping (input_ids, attention_mask) to logits."""

from __future__ import annotations

import os
import warnings

import torch
from torch import nn

from mixedclf.errors import ModelError
from mixedclf.models.pooled import PooledClassifier
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


def cpu_has_native_bf16() -> bool:
    """Whether this processor computes bf16 in hardware (AVX-512 BF16 or AMX); without it bf16 is emulated, slow."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def default_dtype(device: torch.device, precision: str = "auto") -> torch.dtype:
    """auto: fp16 on CUDA; bf16 on a CPU that computes it in hardware; fp32 elsewhere.

    The model math is where the device second goes. On the default model's held-out set bf16 on an AVX-512
    BF16 CPU ran 1.63x faster than fp32 with the same accuracy (81.2%), and fp16 is the norm on GPUs.
    """
    table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if precision != "auto":
        return table[precision]
    if device.type == "cuda":
        return torch.float16
    return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else torch.float32


def precision_name(device: torch.device, precision: str = "auto") -> str:
    """What `precision` means on this device: fp32, fp16, bf16 or int8 (reports show this, not "auto")."""
    if precision == "int8":
        return precision
    return {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[default_dtype(device, precision)]


def build_module(spec: ModelSpec) -> nn.Module:
    """The fp32 module on the CPU, weights loaded; raises ModelError with the reason when it cannot."""
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
    module = PooledClassifier(encoder, len(spec.labels), normalize=bool(spec.head_config.get("normalize", False)))
    load_head_weights(module, spec)
    return module


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
    module.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)


def load_model(spec: ModelSpec, device: torch.device, precision: str = "auto") -> nn.Module:
    if precision == "int8" and device.type != "cpu":  # refused before the weights are read
        raise ModelError(f"--precision int8 runs on the CPU only, not on {device.type}",
                         hint="use --precision fp16 or bf16 on an accelerator")
    module = build_module(spec).eval()
    if precision == "int8":
        return quantize_int8(module)
    return module.to(device=device, dtype=default_dtype(device, precision))


def quantize_int8(module: nn.Module) -> nn.Module:
    """Dynamic int8 quantization of every Linear layer (weights int8, activations quantized per batch).

    CPU only: these kernels exist for x86 and ARM processors, not for accelerators. On a 2-core x86 machine
    with AVX-512 VNNI it ran all-MiniLM-L6-v2 2.3-2.5x faster than fp32 in a forward-only loop, 2.15x end to end
    with 1.3 points less held-out accuracy (benchmarks/precision.py measures speed and accuracy side by side).
    """
    with warnings.catch_warnings():
        # torch marks torch.ao quantization deprecated in favour of torchao; the pinned torch 2.13 still has it.
        warnings.filterwarnings("ignore", message=".*deprecated.*")
        try:
            from torch.ao.quantization import quantize_dynamic
        except ImportError as exc:
            raise ModelError("this torch build has no torch.ao dynamic quantization",
                             hint="use --precision bf16") from exc
        return quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8)
