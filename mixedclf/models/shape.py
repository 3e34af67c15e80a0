"""The encoder's dimensions for the FLOPs count, read from config.json without torch."""

from __future__ import annotations

import json
from typing import NamedTuple

from mixedclf.models.spec import ModelSpec

# Names the common encoder configs use: BERT-likes first, then DistilBERT, then GPT-style.
_LAYERS = ("num_hidden_layers", "n_layers", "n_layer", "num_layers")
_HIDDEN = ("hidden_size", "dim", "d_model", "n_embd")
_INTERMEDIATE = ("intermediate_size", "hidden_dim", "ffn_dim", "n_inner", "encoder_ffn_dim")


def _first(config: dict, keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


class EncoderDims(NamedTuple):
    layers: int
    hidden: int
    intermediate: int


def model_shape(spec: ModelSpec) -> EncoderDims | None:
    """Layers, hidden and feed-forward width of the encoder; None when its config names none of them."""
    try:
        config = json.loads((spec.encoder_path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    layers, hidden = _first(config, _LAYERS), _first(config, _HIDDEN)
    if layers is None or hidden is None:
        return None
    # A feed-forward 4x the hidden width is the transformer default when the config leaves it out.
    return EncoderDims(layers=layers, hidden=hidden, intermediate=_first(config, _INTERMEDIATE) or 4 * hidden)
