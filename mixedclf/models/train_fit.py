"""The fitting of `mixedclf train`: a linear head on frozen features (L-BFGS), then optionally the top encoder
layers with the head (AdamW on cached hidden states). Called by mixedclf.models.train.train_head."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from mixedclf.models.pooled import mean_pool
from mixedclf.models.train_encode import pad


class StandardizedHead(nn.Module):
    """A linear head over features standardized with fixed (frozen-encoder) statistics.

    Training in standardized space keeps the head's weights O(1), so AdamW moves it at a useful rate while the
    encoder layers shift the features; `folded()` turns it into the plain Linear that PooledClassifier holds.
    """

    def __init__(self, mean: torch.Tensor, scale: torch.Tensor, num_labels: int):
        super().__init__()
        self.register_buffer("mean", mean.clone())
        self.register_buffer("scale", scale.clone())
        self.linear = nn.Linear(mean.shape[0], num_labels)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x - self.mean) / self.scale)

    @torch.no_grad()
    def folded(self) -> nn.Linear:
        head = nn.Linear(self.mean.shape[0], self.linear.out_features)
        weight = self.linear.weight / self.scale
        head.weight.copy_(weight)
        head.bias.copy_(self.linear.bias - weight @ self.mean)
        return head


def fit_linear(
    features: torch.Tensor, targets: torch.Tensor, num_labels: int, l2: float, max_iter: int = 500
) -> StandardizedHead:
    """Multinomial logistic regression, L2-penalized, solved with full-batch L-BFGS (deterministic)."""
    std = features.std(0)
    # Floor the scale: a (near-)constant dimension of the frozen features must not be blown up, or the top layer's
    # first updates, which do move it, would swing the logits.
    head = StandardizedHead(features.mean(0), std.clamp(min=max(1e-6, 0.1 * float(std.median()))), num_labels)
    x = (features - head.mean) / head.scale
    params = list(head.linear.parameters())
    optimizer = torch.optim.LBFGS(
        params, lr=1.0, max_iter=max_iter, tolerance_grad=1e-7, tolerance_change=1e-10,
        history_size=20, line_search_fn="strong_wolfe",
    )

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(head.linear(x), targets) + l2 * head.linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return head


def length_batches(lengths: list[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Shuffled batches of similar length: shuffle, sort within windows of 32 batches, shuffle the batches."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    window = batch_size * 32
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    perm = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[p] for p in perm]


class TopModel(nn.Module):
    def __init__(self, top: nn.Module, head: nn.Module, normalize: bool):
        super().__init__()
        self.top, self.head, self.normalize = top, head, normalize

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.top(inputs_embeds=states, attention_mask=mask).last_hidden_state
        pooled = mean_pool(hidden, mask)
        if self.normalize:
            pooled = nn.functional.normalize(pooled, dim=-1)
        return self.head(pooled)


@torch.inference_mode()
def predict_top(model: TopModel, cached: list[torch.Tensor], rows: np.ndarray, batch_size: int) -> torch.Tensor:
    model.eval()
    preds = torch.empty(len(rows), dtype=torch.long)
    order = sorted(range(len(rows)), key=lambda j: cached[rows[j]].shape[0])
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        states, mask = pad([cached[rows[j]] for j in chunk])
        preds[chunk] = model(states, mask).argmax(-1)
    return preds


def finetune(
    model: TopModel,
    cached: list[torch.Tensor],
    rows: np.ndarray,
    targets: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    head_lr: float,
    weight_decay: float,
    batch_size: int,
    seed: int,
    log: Callable[[str], None] | None,
    dropout: bool = True,
) -> None:
    generator = torch.Generator().manual_seed(seed)
    lengths = [cached[i].shape[0] for i in rows]
    steps_per_epoch = math.ceil(len(rows) / batch_size)
    total = max(1, epochs * steps_per_epoch)
    warmup = max(1, total // 10)
    optimizer = torch.optim.AdamW(
        [
            {"params": list(model.top.parameters()), "lr": lr, "weight_decay": weight_decay},
            {"params": list(model.head.parameters()), "lr": head_lr, "weight_decay": 0.0},
        ]
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    model.train(dropout)  # eval mode = no dropout; gradients flow either way
    for epoch in range(epochs):
        started, loss_sum = time.perf_counter(), 0.0
        for batch in length_batches(lengths, batch_size, generator):
            states, mask = pad([cached[rows[j]] for j in batch])
            loss = nn.functional.cross_entropy(model(states, mask), targets[torch.from_numpy(rows[batch])])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(batch)
        if log:
            log(f"epoch {epoch + 1}/{epochs}: loss {loss_sum / len(rows):.4f} ({time.perf_counter() - started:.0f}s)")
