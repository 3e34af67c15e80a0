"""Encoder + masked mean pooling + linear head: the shape of the default model and of `mixedclf train`."""

from __future__ import annotations

import torch
from torch import nn


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens only, as sentence-transformers pools all-MiniLM-L6-v2."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(dim=1)
    return summed / mask.sum(dim=1).clamp(min=1e-9)


class PooledClassifier(nn.Module):
    """Any transformers encoder (AutoModel) followed by mean pooling, optional L2 norm, and a linear head."""

    def __init__(self, encoder: nn.Module, num_labels: int, normalize: bool = False):
        super().__init__()
        self.encoder = encoder
        self.normalize = normalize
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = mean_pool(hidden, attention_mask)
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(input_ids, attention_mask))
