"""The prediction cache on Ray: one actor on the driver's node holds the file; the inference actors ask it.

A row's key digests the precision that runs, and `--precision auto` is decided by each inference actor on its own
machine (its CPU flags, a measured bf16 speed-up, its GPU), so the key exists only once an actor has loaded its
model. Each actor's `StagePipeline` therefore asks the cache through the stage contract's `AnswerStore` seam, as
the local engine's does, before any row of a batch reaches its device, and hands it what the device computed.

The SQLite file is opened by one `CacheKeeper` actor pinned to the driver's node (the node `classify` runs on),
never by a worker on another machine: the cache is the driver's, as with the local engine. The keeper serves one
call at a time, so its connection is never shared between threads. Nothing here can fail a run: an inference
actor that cannot reach the keeper answers every row on its device, and the report says the cache stopped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from mixedclf.io.prediction_cache import CacheStats, PredictionCache

# A keeper call waits this long before the actor gives up on the cache for the rest of the run (a look-up of a
# 16,384-row batch takes well under a second on a 10M-entry cache).
KEEPER_TIMEOUT_S = 120.0


def is_ray_client(address: str | None) -> bool:
    """Ray Client (`ray://`): the driver runs on the cluster, not on the machine whose cache folder was named."""
    return bool(address) and str(address).startswith("ray://")


class CacheKeeper:
    """The one process that opens the cache file (a Ray actor on the driver's node); warnings are kept for the
    driver, which prints them, instead of going to a worker's log."""

    def __init__(self, path: str, max_bytes: int) -> None:
        self.warnings: list[str] = []
        self.cache = PredictionCache(path, max_bytes, warn=self.warnings.append)

    def _take_warnings(self) -> list[str]:
        taken, self.warnings = self.warnings, []
        return taken

    def ready(self) -> tuple[bool, list[str]]:
        """Whether the cache serves this run, and the warnings opening it gave."""
        return self.cache.enabled, self._take_warnings()

    def lookup(self, keys: list[bytes]) -> tuple[list[int], np.ndarray | None]:
        found = self.cache.lookup(keys)
        if not found:
            return [], None
        positions = sorted(found)
        return positions, np.stack([found[i] for i in positions])

    def store(self, keys: list[bytes], logits: np.ndarray, tokens: np.ndarray | None = None) -> None:
        self.cache.store(keys, logits, tokens)

    def record_hits(self, keys: list[bytes]) -> None:
        self.cache.record_hits(keys)

    def close(self) -> tuple[dict[str, Any], list[str]]:
        """Close the file; this run's counts and the warnings since `ready`."""
        self.cache.close()
        return asdict(self.cache.stats), self._take_warnings()


class KeeperAnswers:
    """An `AnswerStore` in an inference actor: the keeper's answers. A keeper that fails or does not answer in
    KEEPER_TIMEOUT_S is not asked again by this actor: its rows run on the device, which is always correct."""

    def __init__(self, keeper) -> None:
        self.keeper = keeper
        self.lost: str | None = None  # why this actor stopped asking, when it did

    def _call(self, method, *args):
        import ray

        if self.lost is not None:
            return None
        try:
            return ray.get(method.remote(*args), timeout=KEEPER_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - a cache never fails a run
            self.lost = f"the cache actor stopped answering: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            return None

    def lookup(self, keys: Sequence[bytes]) -> dict[int, np.ndarray]:
        answer = self._call(self.keeper.lookup, list(keys)) if keys else None
        if not answer or answer[1] is None:
            return {}
        positions, logits = answer
        return {i: logits[k] for k, i in enumerate(positions)}

    def store(self, keys: Sequence[bytes], logits: np.ndarray, tokens: np.ndarray | None = None) -> None:
        if len(keys):
            self._call(self.keeper.store, list(keys), np.ascontiguousarray(logits, dtype=np.float32), tokens)

    def record_hits(self, keys: Sequence[bytes]) -> None:
        if len(keys):
            self._call(self.keeper.record_hits, list(keys))


def start_keeper(cache: PredictionCache, warn):
    """The keeper for `cache` (the driver's own open of it, which checked the file and is closed here so the keeper
    is its one writer), pinned to this node; None when the cache does not serve this run."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    enabled = cache.enabled
    cache.close()
    if not enabled:
        return None
    node = ray.get_runtime_context().get_node_id()
    pinned = NodeAffinitySchedulingStrategy(node, soft=False)
    keeper: Any = ray.remote(CacheKeeper).options(num_cpus=0, max_restarts=0, scheduling_strategy=pinned).remote(
        str(cache.path), cache.max_bytes)
    try:
        serving, warnings = ray.get(keeper.ready.remote(), timeout=KEEPER_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - the run goes on without the cache
        why = f"the cache actor did not start: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        stop_keeper(keeper)
        cache.stats.disabled = why
        warn(f"prediction cache off for this run: {why}")
        return None
    for line in warnings:
        warn(line)
    if not serving:
        cache.stats.disabled = cache.stats.disabled or "the cache actor could not open it"
        stop_keeper(keeper)
        return None
    return keeper


def finish_keeper(keeper, cache: PredictionCache, hits: int, misses: int, lost: str | None, warn) -> None:
    """Close the keeper's file and put this run's counts on `cache` (what the report reads): hits and misses as the
    inference actors counted them, stored and evicted as the keeper did."""
    import ray

    stats = CacheStats(hits=hits, misses=misses, disabled=lost)
    try:
        kept, warnings = ray.get(keeper.close.remote(), timeout=KEEPER_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - a cache never fails a run
        stats.disabled = stats.disabled or f"the cache actor stopped: {type(exc).__name__}"
        warnings = []
    else:
        stats.stored, stats.evicted = kept["stored"], kept["evicted"]
        stats.disabled = kept["disabled"] or stats.disabled
    stop_keeper(keeper)
    for line in warnings:
        warn(line)
    if lost is not None and not warnings:
        warn(f"prediction cache off for part of this run: {lost}")
    cache.stats = stats


def stop_keeper(keeper) -> None:
    import ray

    with contextlib.suppress(Exception):  # gone already
        ray.kill(keeper)
