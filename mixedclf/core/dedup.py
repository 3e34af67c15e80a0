"""Each distinct text of a chunk through the model once; repeats reuse its logits. Pure; no torch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mixedclf.core.preprocess import PreprocessedBatch, select_rows


def logits_with_dedup(prep: PreprocessedBatch,
                      infer: Callable[[PreprocessedBatch], np.ndarray]) -> tuple[np.ndarray, int]:
    """Logits for every row, computing each distinct cleaned text of the chunk once; also returns the hits.

    The scope is one chunk on purpose: a row's logits then depend only on its own chunk, so a resumed run
    writes the same bytes as an uninterrupted one.
    """
    first_of: dict[str, int] = {}
    unique_rows, row_to_unique = [], np.empty(len(prep), dtype=np.int64)
    for i, key in enumerate(prep.cleaned):
        j = first_of.setdefault(key, len(unique_rows))
        if j == len(unique_rows):
            unique_rows.append(i)
        row_to_unique[i] = j
    if len(unique_rows) == len(prep):
        return infer(prep), 0
    unique_logits = infer(select_rows(prep, np.asarray(unique_rows, dtype=np.int64)))
    return unique_logits[row_to_unique], len(prep) - len(unique_rows)
