"""The work a classify run did, counted rather than timed, and the rate that turns it into seconds.

Counts (rows, real and padded tokens, micro-batches, workers, model FLOPs) are the same on a busy machine and an
idle one, so `mixedclf check` rests its verdict on them. One short micro-benchmark per report converts FLOPs into
seconds (and dollars); see docs/cost-model.md "Work and calibration". Pure module: no torch, no pools.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class ModelShape(BaseModel):
    """The encoder dimensions the FLOPs formula needs (read from the model's config.json)."""

    layers: int = Field(ge=0)
    hidden: int = Field(ge=0)
    intermediate: int = Field(ge=0)

    @property
    def layer_params(self) -> int:
        """Weights of one encoder layer: Q, K, V, output projections (4 H^2) and the feed-forward (2 H I)."""
        return 4 * self.hidden * self.hidden + 2 * self.hidden * self.intermediate

    @property
    def linear_flops_per_token(self) -> int:
        """2 FLOPs (a multiply and an add) per encoder weight per token."""
        return 2 * self.layers * self.layer_params


def model_flops(shape: ModelShape, padded_tokens: int, token_width_sum: int) -> float:
    """FLOPs of the encoder forward over micro-batches.

    A micro-batch of b rows padded to width S computes b*S tokens: each pays 2 x layer weights per layer, and the
    attention scores and weighted sum (Q K^T and A V) add 4 x layers x hidden x S. Summed over micro-batches:
    linear = 2 L N x sum(b S), attention = 4 L H x sum(b S^2); ``token_width_sum`` is sum(b S^2).
    """
    return float(shape.linear_flops_per_token * padded_tokens + 4 * shape.layers * shape.hidden * token_width_sum)


class WorkCounts(BaseModel):
    """What the device and the pool were asked to do (deterministic for a given input, model and settings)."""

    rows: int = Field(ge=0)  # rows classified in this process
    real_tokens: int = Field(ge=0)
    padded_tokens: int = Field(ge=0)  # rows x width, summed over micro-batches: what the device computes
    token_width_sum: int = Field(ge=0)  # sum over micro-batches of rows x width^2 (attention term)
    micro_batches: int = Field(ge=0)
    cpu_workers: int = Field(ge=0)
    shape: ModelShape
    gflop: float = Field(ge=0)  # model_flops(...) / 1e9

    def per_1k(self, value: float) -> float:
        return value / self.rows * 1000.0 if self.rows else 0.0

    @property
    def gflop_per_1k(self) -> float:
        return self.per_1k(self.gflop)


def count_work(*, rows: int, real_tokens: int, padded_tokens: int, token_width_sum: int, micro_batches: int,
               cpu_workers: int, shape: ModelShape) -> WorkCounts:
    return WorkCounts(rows=rows, real_tokens=real_tokens, padded_tokens=padded_tokens,
                      token_width_sum=token_width_sum, micro_batches=micro_batches, cpu_workers=cpu_workers,
                      shape=shape, gflop=model_flops(shape, padded_tokens, token_width_sum) / 1e9)


class Calibration(BaseModel):
    """One fixed micro-benchmark, timed on the calling thread's CPU clock: how fast this machine does a GFLOP."""

    method: str  # what was run, in words
    gflop: float = Field(gt=0)  # the benchmark's size
    seconds: float = Field(gt=0)  # best of `repeats`, thread CPU time
    repeats: int = Field(ge=1)
    s_per_gflop: float = Field(gt=0)
