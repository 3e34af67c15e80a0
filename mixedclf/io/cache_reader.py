"""What a CPU worker reads of the prediction cache (io/prediction_cache.py): rows answered before, with their token
counts, so they are not tokenized. Read-only, and apart from the cache that writes the file, so a worker imports
only this."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from mixedclf.core.answers import HeldAnswers, answer_keys

BUSY_TIMEOUT_MS = 5000
_SQL_VARIABLES = 900  # under SQLite's oldest default limit of 999 host parameters per statement


def rows_by_key(db: sqlite3.Connection, columns: str, keys: list[bytes], where: str = "",
                params: tuple = ()) -> Iterator[tuple]:
    """(key, *columns) of the answers held for `keys` (distinct), asked in parts that fit SQLite's parameter limit;
    `where` narrows them further with `params`."""
    for start in range(0, len(keys), _SQL_VARIABLES):
        part = keys[start : start + _SQL_VARIABLES]
        marks = ",".join("?" * len(part))
        yield from db.execute(f"SELECT key, {columns} FROM answers WHERE key IN ({marks}) {where}", [*part, *params])


class CacheReader:
    """A `core.answers.AnswerReader` on the cache file, for a CPU worker: the rows answered before under one run
    key, with their token counts, so they are not tokenized. Its own read-only connection, opened on first use
    (it travels to the worker by pickle, without one); any error ends its reading, and the main process's look-up
    answers those rows instead, so a reader never changes an answer or fails a run."""

    def __init__(self, path: str, run_key: bytes, width: int, generation: int = 0):
        # width: labels per answer; a blob of another size (a damaged or hand-filled file) is not read
        self.path, self.run_key, self.width, self.generation = path, run_key, width, generation
        self._db: sqlite3.Connection | None = None
        self._failed = False

    @property
    def identity(self) -> tuple[str, bytes, int, int]:
        return self.path, self.run_key, self.width, self.generation

    def __getstate__(self) -> dict:
        return {"path": self.path, "run_key": self.run_key, "width": self.width, "generation": self.generation}

    def __setstate__(self, state: dict) -> None:
        self.path, self.run_key, self.width = state["path"], state["run_key"], state["width"]
        self.generation = state["generation"]
        self._db, self._failed = None, False

    def read(self, cleaned: Sequence[str]) -> HeldAnswers | None:
        if self._failed or not cleaned:
            return None
        keys = answer_keys(self.run_key, cleaned)
        position: dict[bytes, list[int]] = {}
        for i, key in enumerate(keys):
            position.setdefault(key, []).append(i)
        rows: list[int] = []
        logits: list[bytes] = []
        tokens: list[int] = []
        try:
            if self._db is None:
                self._db = sqlite3.connect(f"{Path(self.path).resolve().as_uri()}?mode=ro", uri=True,
                                           timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            # a count that is an int32 (not NULL: the row was not truncated), an answer of this model's width
            only = "AND length(logits) = ? AND typeof(tokens) = 'integer' AND tokens BETWEEN 0 AND 2147483647"
            for key, value, count in rows_by_key(self._db, "logits, tokens", list(position), only, (4 * self.width,)):
                for i in position[key]:
                    rows.append(i)
                    logits.append(value)
                    tokens.append(count)
        except (sqlite3.Error, OSError):
            self._failed = True
            self.close()
            return None
        if not rows:
            return None
        return HeldAnswers(np.asarray(rows, dtype=np.int64),
                           np.frombuffer(b"".join(logits), dtype=np.float32).reshape(len(rows), -1),
                           np.asarray(tokens, dtype=np.int32))

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
