"""Load a resolved model onto a device as a module mapping (input_ids, attention_mask) to logits."""

from __future__ import annotations

import os

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


def default_dtype(device: torch.device, precision: str = "auto") -> torch.dtype:
    """Half precision on CUDA (the model math is where the GPU second is spent); fp32 elsewhere."""
    table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if precision != "auto":
        return table[precision]
    return torch.float16 if device.type == "cuda" else torch.float32


def build_module(spec: ModelSpec) -> nn.Module:
    """The fp32 module on the CPU, weights loaded; raises ModelError with the reason when it cannot."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        if spec.kind == "hf":
            return _LogitsOnly(AutoModelForSequenceClassification.from_pretrained(spec.path, local_files_only=True))
        encoder = AutoModel.from_pretrained(spec.encoder_path, local_files_only=True, add_pooling_layer=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model from {spec.path}: {exc}") from exc
    module = PooledClassifier(encoder, len(spec.labels), normalize=bool(spec.head_config.get("normalize", False)))
    load_head_weights(module, spec)
    return module


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
    module = build_module(spec).eval()
    return module.to(device=device, dtype=default_dtype(device, precision))
