"""Rows that kill a preprocessing worker every time: found by halving the chunk that keeps killing it, and set
aside as row errors so the rest of the chunk is classified (instead of restarting the pool forever)."""

from __future__ import annotations

from collections import deque
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Callable, TypeVar

from mixedclf.io.chunks import InputChunk, RowProblem

WORKER_DIED = "the preprocessing worker died on this row"
# Pool restarts one chunk gets as a whole before it is split: a worker killed from outside (the OOM killer under
# a passing memory spike, an operator) costs one retry; the same chunk killing it twice is the chunk's fault.
RESTARTS_BEFORE_SPLIT = 2

R = TypeVar("R")


def isolate(texts: list[str], run_piece: Callable[[list[str]], R], restart: Callable[[], None]
            ) -> tuple[list[R], list[int]]:
    """Preprocess texts piece by piece, in order; a piece whose worker dies gets a fresh pool and is halved,
    down to single rows. Returns (the results of the pieces that survived, in order; the indices of the rows
    that killed a worker on their own). `run_piece` raises BrokenProcessPool when its worker died."""
    results: list[R] = []
    poison: list[int] = []
    todo = deque([(0, len(texts))])
    while todo:
        start, end = todo.popleft()
        try:
            results.append(run_piece(texts[start:end]))
        except BrokenProcessPool:
            restart()
            if end - start == 1:
                poison.append(start)
            else:
                mid = (start + end) // 2
                todo.extendleft([(mid, end), (start, mid)])  # the first half is tried next
    return results, poison


def set_aside(chunk: InputChunk, poison: list[int], id_field: str) -> InputChunk:
    """The chunk without its valid rows at the indices `poison`, each one a row problem instead."""
    if not poison:
        return chunk
    known = {p.row for p in chunk.problems}
    # The chunk holds rows first_row.. in file order: the valid ones are those that are not problems.
    rows = [r for r in range(chunk.first_row, chunk.first_row + chunk.rows_in) if r not in known]
    ids = chunk.passthrough.column(id_field).to_pylist()
    bad = set(poison)
    keep = [i for i in range(len(chunk.texts)) if i not in bad]
    problems = chunk.problems + [RowProblem(rows[i], None, ids[i], WORKER_DIED) for i in poison]
    return replace(chunk, texts=[chunk.texts[i] for i in keep], passthrough=chunk.passthrough.take(keep),
                   problems=sorted(problems, key=lambda p: p.row))
