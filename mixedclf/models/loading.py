"""Load a resolved model onto a device as a module mapping (input_ids, attention_mask) to logits."""

from __future__ import annotations

import os

import torch
from torch import nn

from mixedclf.errors import ModelError
from mixedclf.models.device import as_torch
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
            model, info = _from_pretrained(AutoModelForSequenceClassification, spec.path, output_loading_info=True)
        else:
            model, info = _from_pretrained(AutoModel, spec.encoder_path, add_pooling_layer=False,
                                           output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model from {spec.path}: {exc}") from exc
    except RuntimeError as exc:  # transformers' "mismatched sizes": the config disagrees with the weights
        raise ModelError(f"cannot load model from {spec.path}: its weights do not fit its config.json "
                         f"({len(spec.labels)} labels there)",
                         hint="check config.json's id2label/num_labels against the saved classifier") from exc
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        # transformers fills them at random: labels would differ from load to load (and an ONNX conversion
        # would keep one draw), so a model without all its weights is refused.
        raise ModelError(f"{spec.path if spec.kind == 'hf' else spec.encoder_path} lacks weights for "
                         f"{', '.join(missing[:3])}{' …' if len(missing) > 3 else ''} ({len(missing)} in all)",
                         hint="use a folder saved from a trained model (save_pretrained writes every weight)")
    return _LogitsOnly(model) if spec.kind == "hf" else _with_head(model, spec)


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


def load_torch_module(spec: ModelSpec, device, precision: str = "auto") -> tuple[nn.Module, PrecisionChoice]:
    """The torch backend's module on `device` (a Device or torch.device) at the precision chosen, and the choice."""
    device = as_torch(device)
    module = build_module(spec).eval()
    choice, converted = choose_for_module(module, device, precision, _model_key(spec, device, precision), _cache_dir())
    return (converted if converted is not None else module.to(device=device, dtype=choice.dtype)), choice


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
