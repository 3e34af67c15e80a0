"""The head folder that `mixedclf train` writes, and that `resolve_model` / `build_module` load:

    head.json          labels, encoder, max_length, normalize, plus how it was made and its held-out accuracy
    head.safetensors   classifier.weight / classifier.bias (float32) and, with train_top_layers > 0, the
                       fine-tuned top encoder layers as `encoder.encoder.layer.N.*` (float16 by default), an
                       overlay on the packaged encoder's weights

Reading it back: mixedclf.models.spec (head.json) and mixedclf.models.loading (the weights).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from mixedclf.models.spec import HEAD_CONFIG, HEAD_WEIGHTS, PACKAGED_ENCODER

HEAD_FORMAT = "mixedclf-head"
HEAD_FORMAT_VERSION = 1


@torch.no_grad()
def overlay_tensors(layers: nn.ModuleList, prefix: str, first: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The fine-tuned `layers` (encoder layers first, first + 1, ...) as overlay tensors in `dtype`, named as in the
    encoder's state dict. Each weight is set to its stored value in place, so the model evaluated afterwards is
    exactly what is saved: the overlay after its dtype round trip."""
    tensors: dict[str, torch.Tensor] = {}
    for j, layer in enumerate(layers):
        for name, tensor in layer.state_dict().items():
            stored = tensor.detach().to(dtype).contiguous()
            tensors[f"encoder.{prefix}.{first + j}.{name}"] = stored
            tensor.copy_(stored.to(tensor.dtype))
    return tensors


def classifier_tensors(head: nn.Linear) -> dict[str, torch.Tensor]:
    """The linear head as saved: float32, whatever it was trained in."""
    return {
        "classifier.weight": head.weight.detach().float().contiguous(),
        "classifier.bias": head.bias.detach().float().contiguous(),
    }


def encoder_reference(encoder: str | Path, encoder_dir: Path, out_dir: Path) -> str:
    """How head.json names the encoder: the packaged encoder by name, any other by its path from the head folder."""
    if str(encoder) == PACKAGED_ENCODER:
        return PACKAGED_ENCODER
    return os.path.relpath(encoder_dir, out_dir.resolve()).replace(os.sep, "/")


def head_config(
    *,
    labels: list[str],
    encoder: str,
    max_length: int,
    normalize: bool,
    trained_layers: list[int],
    overlay_dtype: torch.dtype,
    metrics: dict,
    training: dict,
) -> dict:
    """The content of head.json; `metrics` and `training` record how this head was made."""
    from mixedclf import __version__

    return {
        "format": HEAD_FORMAT,
        "version": HEAD_FORMAT_VERSION,
        "labels": labels,
        "encoder": encoder,
        "max_length": max_length,
        "normalize": bool(normalize),
        "trained_layers": trained_layers,
        "overlay_dtype": str(overlay_dtype).removeprefix("torch.") if trained_layers else None,
        "metrics": metrics,
        "training": training,
        "created_with": f"mixedclf {__version__} train",
    }


def write_head(out_dir: Path, tensors: dict[str, torch.Tensor], config: dict) -> dict[str, int]:
    """Write head.safetensors, then head.json, each through a temporary file; returns file name -> bytes.

    The weights go first: a folder with head.json but no head.safetensors is an error to `resolve_model`.
    """
    from safetensors.torch import save

    weights_tmp = out_dir / (HEAD_WEIGHTS + ".tmp")
    # Written by Python, not by safetensors' save_file, which creates its file 0600 whatever the umask.
    weights_tmp.write_bytes(save(tensors, metadata={"format": "pt"}))
    weights_tmp.replace(out_dir / HEAD_WEIGHTS)
    config_tmp = out_dir / (HEAD_CONFIG + ".tmp")
    config_tmp.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    config_tmp.replace(out_dir / HEAD_CONFIG)
    return {name: (out_dir / name).stat().st_size for name in (HEAD_CONFIG, HEAD_WEIGHTS)}
