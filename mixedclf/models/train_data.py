"""Labeled data for `mixedclf train`: the label order and the held-out split (io.labeled reads the file)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mixedclf.errors import TrainingDataError

__all__ = ["TrainingDataError", "sorted_labels", "split_indices"]


def sorted_labels(labels: Sequence[str]) -> list[str]:
    names = set(labels)
    if all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


# ----------------------------------------------------------------------------------------------- splitting


def split_indices(
    n: int, groups: Sequence[str] | None, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, str, int | None]:
    """(train rows, test rows, split kind, test group count). Whole groups go to one side when groups are given."""
    if not 0.0 <= test_fraction < 1.0:
        raise TrainingDataError(f"test_fraction must be in [0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    if test_fraction == 0.0 or n < 2:
        return np.arange(n), np.arange(0), "none", None
    target = max(1, round(n * test_fraction))
    if groups is None:
        order = rng.permutation(n)
        test = np.sort(order[:target])
        train = np.sort(order[target:])
        return train, test, "random", None
    if len(groups) != n:
        raise TrainingDataError(f"{len(groups)} groups for {n} texts")
    names, inverse, counts = np.unique(
        np.asarray(groups, dtype=object).astype(str), return_inverse=True, return_counts=True
    )
    if len(names) < 2:
        raise TrainingDataError("a split by group needs at least two groups")
    chosen: list[int] = []
    total = 0
    for g in rng.permutation(len(names)):
        if total >= target or len(chosen) == len(names) - 1:
            break
        chosen.append(g)
        total += counts[g]
    is_test = np.isin(inverse, chosen)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test), "group", len(chosen)

