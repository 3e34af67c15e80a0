"""The frozen encoder pass of `mixedclf train`: tokenizing as inference does, and caching what training reuses.

One pass over every text, in length-sorted batches, gives the mean-pooled output (for the linear head) and, with
train_top_layers=k, the hidden states that enter the top k layers; `top_stack` is the copy of the encoder that
fine-tuning runs on those cached states.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from mixedclf.models.pooled import mean_pool
from mixedclf.models.train_data import TrainingDataError


class _Passthrough(nn.Module):
    """Stands in for the embeddings so a copy of the encoder runs only its top layers on cached hidden states."""

    def forward(self, *args, inputs_embeds=None, **kwargs):
        return inputs_embeds


def layer_list(encoder: nn.Module) -> tuple[str, nn.ModuleList]:
    """The encoder's list of transformer layers and its state-dict prefix (BERT-like: encoder.layer)."""
    for prefix in ("encoder.layer", "transformer.layer", "layers"):
        obj = encoder
        for part in prefix.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList):
            return prefix, obj
    raise TrainingDataError(
        f"{type(encoder).__name__} has no encoder.layer list; use --train-top-layers 0 with this encoder"
    )


def top_stack(encoder: nn.Module, k: int) -> nn.Module:
    """A copy of the encoder that maps the hidden states entering its top k layers to its last hidden state."""
    if not (hasattr(encoder, "embeddings") and hasattr(encoder, "encoder")):
        raise TrainingDataError(
            f"{type(encoder).__name__} is not a BERT-like encoder; use --train-top-layers 0 with this encoder"
        )
    _, layers = layer_list(encoder)
    saved_embeddings, saved_layers = encoder.embeddings, encoder.encoder.layer
    try:  # deep-copy without the parts to be replaced, so no copy of the lower layers is made
        encoder.embeddings, encoder.encoder.layer = _Passthrough(), nn.ModuleList()
        top = copy.deepcopy(encoder)
    finally:
        encoder.embeddings, encoder.encoder.layer = saved_embeddings, saved_layers
    top.encoder.layer = copy.deepcopy(nn.ModuleList(list(layers[len(layers) - k :])))
    return top


def tokenize(encoder_dir: Path, texts: list[str], max_length: int) -> tuple[list[list[int]], int]:
    """Token ids per text and the pad id, made exactly as the preprocess stage makes them at inference
    (the fast tokenizer's JSON, truncation to max_length, no padding)."""
    from mixedclf.core.preprocess import make_tokenizer
    from mixedclf.models.spec import ModelSpec
    from mixedclf.models.tokenizer import tokenizer_json_and_pad_id

    spec = ModelSpec("train", "head", encoder_dir, encoder_dir, (), max_length)
    tokenizer_json, pad_id = tokenizer_json_and_pad_id(spec)
    tokenizer = make_tokenizer(tokenizer_json, max_length)
    return [e.ids for e in tokenizer.encode_batch(texts)], pad_id


def pad(rows: list[torch.Tensor], value: float = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack variable-length rows ([len] ids or [len, hidden] states) with padding, plus the attention mask."""
    longest = max(r.shape[0] for r in rows)
    out = rows[0].new_full((len(rows), longest, *rows[0].shape[1:]), value)
    mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : r.shape[0]] = r
        mask[i, : r.shape[0]] = 1
    return out, mask


@torch.no_grad()  # not inference_mode: the cached tensors later feed autograd
def encode(
    encoder: nn.Module,
    ids: list[list[int]],
    k: int,
    batch_size: int,
    log: Callable[[str], None] | None,
    pad_id: int = 0,
) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """Frozen pass in length-sorted batches: pooled last hidden states, and the states entering the top k layers."""
    n_layers = len(layer_list(encoder)[1]) if k else 0
    pooled = torch.empty((len(ids), encoder.config.hidden_size))
    cached: list[torch.Tensor | None] | None = [None] * len(ids) if k else None
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    started, shown = time.perf_counter(), 0.0
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        input_ids, mask = pad([torch.tensor(ids[i], dtype=torch.long) for i in rows], pad_id)
        out = encoder(input_ids=input_ids, attention_mask=mask, output_hidden_states=bool(k))
        pooled[rows] = mean_pool(out.last_hidden_state, mask)
        if k:
            states = out.hidden_states[n_layers - k]
            for j, i in enumerate(rows):
                cached[i] = states[j, : len(ids[i])].clone()
        now = time.perf_counter()
        if log and now - shown > 15:
            shown = now
            log(f"encoded {start + len(rows)}/{len(ids)} texts in {now - started:.0f}s")
    return pooled, cached
