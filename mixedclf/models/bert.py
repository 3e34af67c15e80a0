"""BERT encoders and BERT sequence classifiers for inference, in plain torch: no transformers import at run time.

Importing transformers' model code costs 1.5-2.5 s on every process start (its modeling utilities pull in
torch._dynamo, torch.distributed and sympy), and that start-up is billed on every serverless cold start. The
default model's encoder (all-MiniLM-L6-v2) is a plain BERT, so a BERT folder whose config this module fully
understands runs here, with transformers' parameter names, so the same checkpoints and head overlays load
unchanged. Anything else (other architectures, other position or activation schemes, sharded or incomplete
weights) is left to transformers: `native_bert_config` returns None and loading.build_module falls back.

The arithmetic is transformers' BertModel with SDPA attention, in the same order, so logits agree with it to
float rounding (tests/test_bert.py compares both on the default model and on random BERT classifiers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from mixedclf.errors import ModelError

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# Checkpoints written before transformers renamed LayerNorm parameters.
_OLD_NAMES = {"gamma": "weight", "beta": "bias"}


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    model_type: str = "bert"


def native_bert_config(folder: Path, classifier: bool) -> BertConfig | None:
    """The config when this module computes exactly what transformers would for the folder, else None."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    architectures = config.get("architectures") or []
    wanted = "BertForSequenceClassification" if classifier else None
    if config.get("model_type") != "bert" or (classifier and architectures != [wanted]):
        return None
    if (config.get("position_embedding_type", "absolute") != "absolute" or config.get("hidden_act", "gelu") != "gelu"
            or config.get("is_decoder") or config.get("add_cross_attention") or config.get("chunk_size_feed_forward")
            or config.get("embedding_size") or weights_file(folder) is None):
        return None
    if classifier and config.get("problem_type") not in (None, "single_label_classification",
                                                         "multi_label_classification", "regression"):
        return None
    try:
        values = BertConfig(
            vocab_size=int(config["vocab_size"]), hidden_size=int(config["hidden_size"]),
            num_hidden_layers=int(config["num_hidden_layers"]), num_attention_heads=int(config["num_attention_heads"]),
            intermediate_size=int(config["intermediate_size"]),
            max_position_embeddings=int(config.get("max_position_embeddings", 512)),
            type_vocab_size=int(config.get("type_vocab_size", 2)),
            layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
        )
    except (KeyError, TypeError, ValueError):
        return None
    return values if values.hidden_size % values.num_attention_heads == 0 else None


def weights_file(folder: Path) -> Path | None:
    return next((folder / name for name in _WEIGHT_FILES if (folder / name).is_file()), None)


class _Linear(nn.Linear):
    # Every parameter comes from the checkpoint (load_native checks): random initialisation would be wasted, and
    # initialising on the meta device instead imports torch's decompositions (over a second).
    def reset_parameters(self) -> None:
        pass


class _Embedding(nn.Embedding):
    def reset_parameters(self) -> None:
        pass


class _LayerNorm(nn.LayerNorm):
    def reset_parameters(self) -> None:
        pass


class EncoderOutput(NamedTuple):
    last_hidden_state: torch.Tensor


class _Embeddings(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.word_embeddings = _Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = _Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = _Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = _LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # Token type 0 and positions 0..T-1, added in transformers' order (words + types, then positions).
        x = self.word_embeddings(input_ids) + self.token_type_embeddings.weight[0]
        x = x + self.position_embeddings.weight[: input_ids.shape[1]]
        return self.LayerNorm(x)


class _SelfAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.heads = c.num_attention_heads
        self.query = _Linear(c.hidden_size, c.hidden_size)
        self.key = _Linear(c.hidden_size, c.hidden_size)
        self.value = _Linear(c.hidden_size, c.hidden_size)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (proj(x).view(b, t, self.heads, -1).transpose(1, 2) for proj in (self.query, self.key, self.value))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        return out.transpose(1, 2).reshape(b, t, -1)


class _Residual(nn.Module):
    """dense, then LayerNorm over the sum with the block's input (BertSelfOutput and BertOutput)."""

    def __init__(self, c: BertConfig, width: int):
        super().__init__()
        self.dense = _Linear(width, c.hidden_size)
        self.LayerNorm = _LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class _Attention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.self = _SelfAttention(c)
        self.output = _Residual(c, c.hidden_size)


class _Intermediate(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = _Linear(c.hidden_size, c.intermediate_size)


class _Layer(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.attention = _Attention(c)
        self.intermediate = _Intermediate(c)
        self.output = _Residual(c, c.intermediate_size)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        x = self.attention.output(self.attention.self(x, keep), x)
        return self.output(F.gelu(self.intermediate.dense(x)), x)


class _Encoder(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))


class _Pooler(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = _Linear(c.hidden_size, c.hidden_size)


class BertModel(nn.Module):
    """transformers' BertModel without a pooler, for inference: (ids, mask) -> last hidden state."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embeddings = _Embeddings(config)
        self.encoder = _Encoder(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> EncoderOutput:
        keep = None if attention_mask is None else attention_mask.bool()[:, None, None, :]
        # Without padding no mask is needed (transformers drops it too); asked on the CPU only, where the
        # question costs no device synchronization.
        if keep is not None and keep.device.type == "cpu" and bool(keep.all()):
            keep = None
        x = self.embeddings(input_ids)
        for layer in self.encoder.layer:
            x = layer(x, keep)
        return EncoderOutput(x)


class BertForSequenceClassification(nn.Module):
    """transformers' BertForSequenceClassification for inference: (ids, mask) -> logits."""

    def __init__(self, config: BertConfig, num_labels: int):
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.bert.pooler = _Pooler(config)
        self.classifier = _Linear(config.hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.bert(input_ids, attention_mask).last_hidden_state
        return self.classifier(torch.tanh(self.bert.pooler.dense(hidden[:, 0])))


def load_native(folder: Path, config: BertConfig, num_labels: int | None = None) -> nn.Module:
    """A BertModel (num_labels None) or a BertForSequenceClassification with the folder's weights, in fp32.

    The layers are built uninitialised and given the checkpoint's tensors; a parameter the checkpoint lacks
    raises ModelError (transformers would initialise it at random, never what a classifier run wants).
    """
    module = BertModel(config) if num_labels is None else BertForSequenceClassification(config, num_labels)
    prefix = "" if num_labels is None else "bert."
    state = {}
    for name, tensor in _read(weights_file(folder)).items():
        name = _canonical(name)
        if num_labels is None:
            name = name.removeprefix("bert.")
        elif not name.startswith(("bert.", "classifier.")):
            name = prefix + name
        state[name] = tensor.float() if tensor.is_floating_point() else tensor
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        raise ModelError(f"{folder} lacks weights for {missing[:3]}")
    module.load_state_dict({k: state[k] for k in own}, assign=True)
    return module.eval()


def _canonical(name: str) -> str:
    head, _, last = name.rpartition(".")
    return f"{head}.{_OLD_NAMES[last]}" if "LayerNorm" in head and last in _OLD_NAMES else name


def _read(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)
