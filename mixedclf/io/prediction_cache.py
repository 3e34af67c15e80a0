"""The prediction cache: rows answered before are answered again without the device.

An `AnswerStore` (core/answers.py) on one SQLite file in WAL mode, so several runs can share it at once (readers never
wait for a writer; writers wait up to BUSY_TIMEOUT_MS for each other). A row's key digests every setting that decides
its logits with its cleaned text; the value is the logits as float32 bytes, so a cached answer goes through the same
postprocess as a computed one and gives the same output bytes, and the row's token count (NULL for a truncated
row), so a `CacheReader` in a CPU worker can answer the row before it is tokenized.

The cache never decides a run's outcome: a file that is corrupt, truncated or not a cache is set aside and built
anew, and a cache that cannot be written (read-only, disk full, locked too long) is dropped for the rest of the run.
Each of these says so once through `warn`. The size cap counts the database and its write-ahead log; the least
recently used entries are evicted before an insert would pass it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixedclf.io.cache_reader import BUSY_TIMEOUT_MS, CacheReader, rows_by_key

# "mxcl": tells this project's cache from any other SQLite file at the same path.
APPLICATION_ID = 0x6D78636C
SCHEMA_VERSION = 3  # 2: keys digest the cleaned text's digest (core.answers.text_digest); 3: token counts
DEFAULT_MAX_BYTES = 1 << 30
_PAGE_SIZE = 4096
# Per stored row besides its key and logits: the b-tree cell and page slack (an estimate for the first insert; the
# cap itself is enforced from the pages in use).
_ROW_OVERHEAD_BYTES = 64
_FOLD_AT = 1_000_000  # hits kept in the append-only log before they are folded into the use order
_EVICT_TO = 0.9  # evict down to this share of the cap, so a full cache does not evict on every insert


def _check_length(path: Path) -> None:
    """A truncated file opens cleanly and fails only on the first page it lacks: compare its length with the page
    count its header records at the last checkpoint (bytes 16-17 page size, 28-31 pages; SQLite's file format)."""
    with open(path, "rb") as handle:
        header = handle.read(100)
    if len(header) < 100:
        return  # a new, empty database
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    if os.path.getsize(path) < pages * page_size:
        raise sqlite3.DatabaseError("the file is shorter than its header says (truncated)")


def _is_own_cache(path: Path) -> bool:
    """Whether the file's header says it is a mixedclf prediction cache (or it is empty): a damaged one holds
    nothing worth keeping. Anything else named as the cache (an input file, another database) is only moved."""
    try:
        with open(path, "rb") as f:
            header = f.read(72)
    except FileNotFoundError:
        return True
    return not header or (header[:16] == b"SQLite format 3\x00" and len(header) == 72
                          and int.from_bytes(header[68:72], "big") == APPLICATION_ID)


def _free_name(path: Path) -> Path:
    """`path`, or `path.1`, `path.2`, ...: the first name no file has."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = Path(f"{path}.{n}")
    return candidate


def _cannot_open(exc: sqlite3.Error) -> bool:
    """SQLite could not open or create the file (permissions, a read-only file system), as opposed to a file it
    opened and found damaged."""
    message = str(exc).lower()
    return "unable to open" in message or "readonly" in message or "read-only" in message


def _locked(exc: sqlite3.Error) -> bool:
    message = str(exc).lower()
    return "locked" in message or "busy" in message


def _stderr_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    untokenized: int = 0  # of the hits, those a CacheReader answered before the tokenizer ran
    stored: int = 0
    evicted: int = 0
    disabled: str | None = None  # why the cache stopped serving this run, if it did


class PredictionCache:
    """Logits by row key, in one SQLite file capped at `max_bytes`."""

    def __init__(self, path: Path | str, max_bytes: int = DEFAULT_MAX_BYTES,
                 warn: Callable[[str], None] = _stderr_warning):
        if max_bytes < 64 * _PAGE_SIZE:
            raise ValueError(f"a prediction cache needs at least {64 * _PAGE_SIZE} bytes, got {max_bytes}")
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self.stats = CacheStats()
        self._warn = warn
        self._db: sqlite3.Connection | None = None
        self._tick = time.time_ns()  # the use order, advanced by every store: the oldest use is evicted first
        self._touched: list[bytes] = []
        self.generation = 0  # counts the file's rebuilds: a reader of an earlier generation reads a file now gone
        self._reader: CacheReader | None = None
        self._open()

    # -- opening, and what to do with a file that is not a healthy cache

    def _open(self) -> None:
        try:
            self._db = self._connect_when_free()
        except sqlite3.OperationalError as exc:
            if _cannot_open(exc):  # a folder or file it may not write: nothing to rebuild
                self._disable(f"cannot open {self.path}: {exc}")
            elif _locked(exc):  # another run holds it: never a reason to rebuild the file under it
                self._disable(f"{self.path} stayed locked by another run: {exc}")
            else:
                self._rebuild(f"{exc}")
        except sqlite3.DatabaseError as exc:  # not a database, a damaged header, a foreign schema
            self._rebuild(f"{exc}")
        except OSError as exc:
            self._disable(f"cannot open {self.path}: {exc}")

    def _connect_when_free(self) -> sqlite3.Connection:
        """_connect, tried again while another run holds the file: a switch to write-ahead logging can find it
        busy at once, without waiting out the busy timeout."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                return self._connect()
            except sqlite3.OperationalError as exc:
                if not _locked(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                             check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # One opener at a time reads what the file is and creates it if new: two runs starting on a new file
            # at once would otherwise see it half made (tables, not yet its application id) and rebuild it.
            db.execute("BEGIN IMMEDIATE")
            try:
                app_id = db.execute("PRAGMA application_id").fetchone()[0]
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if app_id == 0 and not tables:
                    self._create(db)
                elif app_id != APPLICATION_ID:
                    raise sqlite3.DatabaseError("the file is not a mixedclf prediction cache")
                elif db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                    raise sqlite3.DatabaseError("the cache was written by another version of mixedclf")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            if db.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                raise sqlite3.DatabaseError("the cache cannot use write-ahead logging")
            db.execute("PRAGMA synchronous = NORMAL")  # WAL stays consistent on a crash; only the last commits may go
            # The log is checkpointed before it takes more than a small share of the cap.
            db.execute(f"PRAGMA wal_autocheckpoint = {max(16, self.max_bytes // _PAGE_SIZE // 32)}")
            db.execute(f"PRAGMA journal_size_limit = {self.max_bytes // 16}")
            _check_length(self.path)
        except BaseException:
            db.close()
            raise
        return db

    def _create(self, db: sqlite3.Connection) -> None:
        """The tables of a new file, inside the caller's transaction."""
        db.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
        db.execute("PRAGMA auto_vacuum = NONE")
        db.execute("CREATE TABLE IF NOT EXISTS answers (key BLOB PRIMARY KEY, logits BLOB NOT NULL, "
                   "used INTEGER NOT NULL, tokens INTEGER) WITHOUT ROWID")
        # Hits are appended here and folded into answers.used before an eviction: an append costs a fraction of
        # rewriting the hit row in place, and the use order is only read when evicting.
        db.execute("CREATE TABLE IF NOT EXISTS touched (key BLOB NOT NULL, used INTEGER NOT NULL)")
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _rebuild(self, why: str) -> None:
        self._close_db()
        try:
            aside = None if _is_own_cache(self.path) else _free_name(Path(f"{self.path}.unusable"))
            self._warn(f"prediction cache {self.path} is unusable ({why}); starting it anew"
                       + (f" (the file is moved to {aside})" if aside is not None else ""))
            for suffix in ("", "-wal", "-shm"):
                part = Path(f"{self.path}{suffix}")
                if aside is not None and part.exists():  # not a cache of ours: perhaps the user's data
                    part.rename(f"{aside}{suffix}")
                else:
                    part.unlink(missing_ok=True)
            self.generation += 1
            self._db = self._connect()
        except (sqlite3.Error, OSError) as exc:
            self._disable(f"cannot rebuild {self.path}: {exc}")

    def _disable(self, why: str) -> None:
        self._close_db()
        if self.stats.disabled is None:
            self.stats.disabled = why
            self._warn(f"prediction cache off for this run: {why}")

    def _close_db(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def _failed(self, exc: sqlite3.Error, writing: bool) -> None:
        message = str(exc)
        lowered = message.lower()
        if _locked(exc):
            return  # another run held the lock past the timeout: these rows wait for a later run
        damaged = not isinstance(exc, sqlite3.OperationalError) or "malformed" in lowered or "not a database" in lowered
        if damaged:
            self._rebuild(message)
        else:  # read-only, disk full, I/O error: the run goes on without the cache
            self._disable(message)

    # -- the AnswerStore protocol

    @property
    def enabled(self) -> bool:
        return self._db is not None

    def lookup(self, keys: Sequence[bytes]) -> dict[int, np.ndarray]:
        found: dict[int, np.ndarray] = {}
        if self._db is None or not keys:
            self.stats.misses += len(keys)
            return found
        position = {key: i for i, key in enumerate(keys)}
        try:
            for key, logits in rows_by_key(self._db, "logits", list(position)):
                found[position[key]] = np.frombuffer(logits, dtype=np.float32)
        except sqlite3.Error as exc:
            self._failed(exc, writing=False)
            self.stats.misses += len(keys)
            return {}
        if len(position) < len(keys):  # a key repeated in the batch: every copy is answered
            for i, key in enumerate(keys):
                j = position[key]
                if j != i and j in found:
                    found[i] = found[j]
        self._touched.extend(keys[i] for i in found)
        self.stats.hits += len(found)
        self.stats.misses += len(keys) - len(found)
        return found

    def record_hits(self, keys: Sequence[bytes]) -> None:
        self._touched.extend(keys)
        self.stats.hits += len(keys)
        self.stats.untokenized += len(keys)

    def reader(self, run_key: bytes, width: int) -> CacheReader | None:
        """What a CPU worker reads of this cache under `run_key` for a model with `width` labels (one object while
        the file stays the same, so a reader in this process keeps its connection); None while the cache does not
        serve the run."""
        if self._db is None:
            return None
        if self._reader is None or self._reader.identity != (str(self.path), run_key, width, self.generation):
            self._reader = CacheReader(str(self.path), run_key, width, self.generation)
        return self._reader

    def store(self, keys: Sequence[bytes], logits: np.ndarray, tokens: np.ndarray | None = None) -> None:
        if self._db is None:
            return
        values = np.ascontiguousarray(logits, dtype=np.float32)
        counts = [None if tokens is None or tokens[i] < 0 else int(tokens[i]) for i in range(len(keys))]
        self._tick = max(self._tick + 1, time.time_ns())
        rows = [(key, values[i].tobytes(), self._tick, counts[i]) for i, key in enumerate(keys)]
        entry = len(rows[0][0]) + len(rows[0][1]) + 8 + _ROW_OVERHEAD_BYTES if rows else 0
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._touch()
                if self._make_room(entry * len(rows)):
                    self._db.executemany("INSERT OR REPLACE INTO answers (key, logits, used, tokens) "
                                         "VALUES (?, ?, ?, ?)", rows)
                else:  # a batch too large for the cap is not stored: rows are recomputed next time
                    rows = []
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._failed(exc, writing=True)
            return
        self.stats.stored += len(rows)

    def close(self) -> None:
        if self._reader is not None:  # this process's own reader (a run without CPU workers)
            self._reader.close()
        if self._db is not None and self._touched:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._touch()
                self._db.execute("COMMIT")
            except sqlite3.Error:
                pass  # the use order is advisory: losing it only makes eviction less accurate
        self._close_db()

    def __enter__(self) -> PredictionCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- use order and the cap

    def _touch(self) -> None:
        assert self._db is not None
        touched, self._touched = self._touched, []
        self._db.executemany("INSERT INTO touched (key, used) VALUES (?, ?)", ((k, self._tick) for k in touched))
        if self._db.execute("SELECT coalesce(max(rowid), 0) FROM touched").fetchone()[0] > _FOLD_AT:
            self._fold_touches()

    def _fold_touches(self) -> None:
        assert self._db is not None
        self._db.execute("UPDATE answers SET used = t.used FROM (SELECT key, max(used) AS used FROM touched "
                         "GROUP BY key) AS t WHERE answers.key = t.key AND answers.used < t.used")
        self._db.execute("DELETE FROM touched")

    def file_bytes(self) -> int:
        return sum(os.path.getsize(p) for p in (self.path, Path(f"{self.path}-wal")) if p.exists())

    def _wal_bytes(self) -> int:
        try:
            return os.path.getsize(f"{self.path}-wal")
        except OSError:
            return 0

    def _make_room(self, incoming: int) -> bool:
        """Evict the least recently used entries until `incoming` more bytes fit under the cap; False when they
        cannot fit at all. New rows fill freed pages before the file grows, so pages in use bound the file."""
        assert self._db is not None
        # Rows go to the log first and are copied into the database at its checkpoint: room for both, and for the
        # log as large as it already is (a reader in another run can hold a checkpoint back).
        budget = self.max_bytes - max(self._wal_bytes(), self.max_bytes // 32) - 2 * incoming
        if budget <= 0:
            return False
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        in_use = (pages - self._db.execute("PRAGMA freelist_count").fetchone()[0]) * _PAGE_SIZE
        if in_use + incoming <= budget:
            return True
        self._fold_touches()
        rows = self._db.execute("SELECT count(*) FROM answers").fetchone()[0]
        per_row = max(1, in_use // max(rows, 1))
        keep = max(0, int(budget * _EVICT_TO) - incoming) // per_row
        if rows > keep:
            # No index on the use order: it would double the cost of every store and hit, while eviction runs once per
            # tenth of the cap filled and scans the table then.
            self._db.execute("DELETE FROM answers WHERE used <= (SELECT used FROM answers ORDER BY used LIMIT 1 "
                             "OFFSET ?)", (rows - keep - 1,))
            self.stats.evicted += rows - keep
        return True
