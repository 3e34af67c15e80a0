"""The prediction cache as a store: exact answers, the cap, sharing, and every way its file can be unusable."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat

import numpy as np
import pytest

from mixedclf.core.answers import answer_keys, run_key
from mixedclf.io.prediction_cache import PredictionCache

KEY = run_key(model="m", precision="fp32")


def _keys(n: int, start: int = 0) -> list[bytes]:
    return answer_keys(KEY, [f"row {i}" for i in range(start, start + n)])


def _logits(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3)).astype(np.float32)


def _cache(path, warnings=None, **kw) -> PredictionCache:
    return PredictionCache(path, warn=(warnings.append if warnings is not None else lambda m: None), **kw)


def test_stored_logits_come_back_bit_for_bit(tmp_path):
    keys, logits = _keys(500), _logits(500)
    with _cache(tmp_path / "c.db") as cache:
        assert cache.lookup(keys) == {}
        cache.store(keys, logits)
    with _cache(tmp_path / "c.db") as cache:
        found = cache.lookup(keys[::-1] + _keys(10, start=10_000))
        assert len(found) == 500 and cache.stats.hits == 500 and cache.stats.misses == 10
        got = np.stack([found[i] for i in range(500)])
        assert got.tobytes() == logits[::-1].tobytes()


def test_a_key_repeated_in_one_lookup_is_answered_at_every_position(tmp_path):
    keys = _keys(3)
    with _cache(tmp_path / "c.db") as cache:
        cache.store(keys, _logits(3))
        found = cache.lookup([keys[1], keys[0], keys[1]])
        assert sorted(found) == [0, 1, 2] and found[0].tobytes() == found[2].tobytes()


def test_another_run_key_misses(tmp_path):
    with _cache(tmp_path / "c.db") as cache:
        cache.store(_keys(5), _logits(5))
        other = answer_keys(run_key(model="m", precision="bf16"), [f"row {i}" for i in range(5)])
        assert cache.lookup(other) == {}


def test_the_cap_is_never_passed_and_recent_rows_survive(tmp_path):
    cap = 2 << 20
    with _cache(tmp_path / "c.db", max_bytes=cap) as cache:
        for batch in range(80):
            cache.store(_keys(1000, start=batch * 1000), _logits(1000, seed=batch))
            assert cache.file_bytes() <= cap
        assert cache.stats.evicted > 0
        assert len(cache.lookup(_keys(1000, start=79_000))) == 1000  # the newest batch is kept
        assert len(cache.lookup(_keys(1000, start=0))) == 0  # the oldest went first


def test_a_row_used_again_outlives_rows_stored_after_it(tmp_path):
    cap = 2 << 20
    with _cache(tmp_path / "c.db", max_bytes=cap) as cache:
        hot = _keys(200, start=10**6)
        cache.store(hot, _logits(200))
        for batch in range(60):
            assert len(cache.lookup(hot)) == 200, f"hot rows evicted at batch {batch}"
            cache.store(_keys(1000, start=batch * 1000), _logits(1000, seed=batch))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign", "empty"])
def test_an_unusable_file_is_started_anew_with_one_warning(tmp_path, damage):
    path = tmp_path / "c.db"
    with _cache(path) as cache:
        cache.store(_keys(3000), _logits(3000))
    if damage == "garbage":
        path.write_bytes(os.urandom(8192))
    elif damage == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif damage == "foreign":
        path.unlink()
        with sqlite3.connect(path) as other:
            other.execute("CREATE TABLE notes (body TEXT)")
    else:
        path.write_bytes(b"")
    warnings: list[str] = []
    with _cache(path, warnings) as cache:
        found = cache.lookup(_keys(3000))
        cache.store(_keys(10, start=5000), _logits(10))
        assert cache.enabled
    if damage == "empty":  # an empty file is a new database
        assert warnings == []
    else:
        assert len(warnings) == 1 and "starting it anew" in warnings[0]
        assert found == {}  # nothing from the damaged file is served
    with _cache(path) as cache:
        assert len(cache.lookup(_keys(10, start=5000))) == 10


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions")
def test_a_read_only_cache_turns_itself_off(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    with _cache(folder / "c.db") as cache:
        cache.store(_keys(5), _logits(5))
    os.chmod(folder / "c.db", stat.S_IRUSR)
    os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR)
    warnings: list[str] = []
    try:
        with _cache(folder / "c.db", warnings) as cache:
            cache.store(_keys(5, start=100), _logits(5))
            assert cache.lookup(_keys(5)) == {} or not cache.enabled
    finally:
        os.chmod(folder, stat.S_IRWXU)
    assert len(warnings) == 1


@pytest.mark.parametrize("pragma", ["max_page_count = 1", "query_only = 1"], ids=["disk-full", "read-only"])
def test_a_cache_that_cannot_be_written_turns_itself_off_and_the_run_goes_on(tmp_path, pragma):
    warnings: list[str] = []
    cache = _cache(tmp_path / "c.db", warnings)
    cache.store(_keys(5), _logits(5))
    cache._db.execute(f"PRAGMA {pragma}")  # SQLite then fails writes as a full disk or a read-only file does
    cache.store(_keys(2000, start=10), _logits(2000))
    assert not cache.enabled and len(warnings) == 1 and "off for this run" in warnings[0]
    assert cache.lookup(_keys(5)) == {}  # off: every row goes to the device
    cache.store(_keys(5, start=10), _logits(5))  # and nothing more is said
    assert len(warnings) == 1
    cache.close()


def _writer(path, start):
    with PredictionCache(path, warn=lambda m: None) as cache:
        for batch in range(20):
            keys = _keys(200, start=start + batch * 200)
            cache.lookup(keys)
            cache.store(keys, _logits(200, seed=start + batch))


def _opener(folder, trials, start, out):
    import time

    warnings: list[str] = []
    for trial in range(trials):
        while time.time() < start + trial * 0.015:  # both processes open the same new file at the same moment
            pass
        with PredictionCache(folder / f"{trial}.sqlite3", warn=warnings.append):
            pass
    out.put(warnings)


def test_two_runs_starting_on_a_new_file_at_once_neither_rebuild_nor_lose_it(tmp_path):
    """Two cron jobs that start together on a new cache: one creates it while the other looks at it. Seen half
    made (tables before the application id) or busy while the first switches it to write-ahead logging, it was
    taken as damaged and deleted under the other run (6% of such starts here)."""
    import time

    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start = time.time() + 2  # both started and imported by then
    procs = [ctx.Process(target=_opener, args=(tmp_path, 100, start, out)) for _ in range(2)]
    for p in procs:
        p.start()
    warnings = [out.get(timeout=120), out.get(timeout=120)]
    for p in procs:
        p.join(60)
    assert warnings == [[], []]


def test_two_runs_share_one_cache_at_once(tmp_path):
    path = tmp_path / "c.db"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, start)) for start in (0, 100_000)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with _cache(path) as cache:
        assert len(cache.lookup(_keys(4000) + _keys(4000, start=100_000))) == 8000


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs a folder no one can create files in")
def test_a_cache_that_cannot_be_created_is_one_warning_not_a_rebuild(tmp_path):
    """SQLite's 'unable to open database file' is a folder it may not write (as a read-only folder is to a user
    other than root): the cache is off for the run, with one line, and no file is deleted as if it were damaged."""
    warnings: list[str] = []
    cache = _cache("/proc/self/mixedclf-cache.sqlite3", warnings)
    assert not cache.enabled and len(warnings) == 1 and "off for this run" in warnings[0], warnings
    cache.store(_keys(2), _logits(2))
    assert cache.lookup(_keys(2)) == {} and cache.stats.misses == 2


def test_a_reader_answers_rows_with_their_token_counts_and_skips_truncated_ones(tmp_path):
    import pickle

    texts = [f"row {i}" for i in range(6)]
    logits = _logits(6)
    with _cache(tmp_path / "c.sqlite3") as cache:
        # row 1 was truncated (-1: its count is not kept); row 5 was never stored
        cache.store(_keys(5), logits[:5], np.asarray([3, -1, 4, 5, 6], np.int32))
        reader = pickle.loads(pickle.dumps(cache.reader(KEY, 3)))  # as a worker receives it: no connection travels
        found = reader.read(texts + ["row 0"])
        order = np.argsort(found.rows)  # in whatever order SQLite returns them
        assert found.rows[order].tolist() == [0, 2, 3, 4, 6] and found.tokens[order].tolist() == [3, 4, 5, 6, 3]
        np.testing.assert_array_equal(found.logits[order], logits[[0, 2, 3, 4, 0]])
        assert reader.read(["row 5"]) is None
        cache.record_hits(_keys(2))
        assert (cache.stats.hits, cache.stats.untokenized) == (2, 2)
        assert cache.reader(run_key(model="other"), 3).read(texts) is None  # another run key reads nothing


def test_a_reader_of_a_file_it_cannot_read_answers_nothing_and_does_not_raise(tmp_path):
    from mixedclf.io.cache_reader import CacheReader

    assert CacheReader(str(tmp_path / "missing.sqlite3"), KEY, 3).read(["row 0"]) is None
    assert not (tmp_path / "missing.sqlite3").exists()  # read-only: nothing is created
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"not a database" * 100)
    reader = CacheReader(str(garbage), KEY, 3)
    assert reader.read(["row 0"]) is None and reader.read(["row 0"]) is None


def test_a_cache_that_stopped_serving_gives_no_reader(tmp_path):
    cache = _cache(tmp_path / "c.sqlite3")
    assert cache.reader(KEY, 3) is not None
    cache.close()
    assert cache.reader(KEY, 3) is None


def test_a_reader_skips_answers_of_another_width_and_does_not_raise(tmp_path):
    """A file damaged or filled by hand may hold a blob that is not `width` float32s: that row is read as a miss
    (tokenized and looked up as usual), never a crash of the run nor a wrong answer."""
    texts = [f"row {i}" for i in range(4)]
    logits = _logits(4)
    with _cache(tmp_path / "c.sqlite3") as cache:
        cache.store(_keys(4), logits, np.asarray([3, 4, 5, 6], np.int32))
    db = sqlite3.connect(tmp_path / "c.sqlite3")
    db.execute("UPDATE answers SET logits = x'00000000' WHERE key = ?", (_keys(4)[1],))
    db.commit()
    db.close()
    with _cache(tmp_path / "c.sqlite3") as cache:
        found = cache.reader(KEY, 3).read(texts)
        order = np.argsort(found.rows)
        assert found.rows[order].tolist() == [0, 2, 3]
        np.testing.assert_array_equal(found.logits[order], logits[[0, 2, 3]])
        assert cache.reader(KEY, 2).read(texts) is None  # a model with two labels finds none of these


def test_a_reader_skips_token_counts_that_are_not_counts(tmp_path):
    """A hand-edited file's token count may be text, negative or past int32: that row is tokenized again (its
    count is written to the output), never a crash of the run nor a wrong count."""
    texts = [f"row {i}" for i in range(5)]
    with _cache(tmp_path / "c.sqlite3") as cache:
        cache.store(_keys(5), _logits(5), np.asarray([3, 4, 5, 6, 7], np.int32))
    db = sqlite3.connect(tmp_path / "c.sqlite3")
    for key, value in zip(_keys(4)[1:], ("abc", -7, 1 << 40), strict=True):
        db.execute("UPDATE answers SET tokens = ? WHERE key = ?", (value, key))
    db.commit()
    db.close()
    with _cache(tmp_path / "c.sqlite3") as cache:
        found = cache.reader(KEY, 3).read(texts)
        order = np.argsort(found.rows)
        assert found.rows[order].tolist() == [0, 4] and found.tokens[order].tolist() == [3, 7]


@pytest.mark.parametrize("kind", ["text", "foreign"])
def test_a_file_that_is_not_a_cache_is_moved_aside_never_deleted(tmp_path, kind):
    """`--cache` naming a user's file by mistake (their input, another SQLite database) must not lose it: the file
    is moved aside, byte for byte, and a cache is built in its place."""
    path = tmp_path / "reviews.jsonl"
    if kind == "text":
        path.write_text('{"text": "a review"}\n' * 200, encoding="utf-8")
    else:
        with sqlite3.connect(path) as other:
            other.execute("CREATE TABLE notes (body TEXT)")
            other.execute("INSERT INTO notes VALUES ('keep me')")
        other.close()
    before = path.read_bytes()
    warnings: list[str] = []
    with _cache(path, warnings) as cache:
        assert cache.enabled
    aside = tmp_path / "reviews.jsonl.unusable"
    assert aside.read_bytes() == before
    assert len(warnings) == 1 and "starting it anew" in warnings[0] and str(aside) in warnings[0], warnings
    path.write_text("not a cache either", encoding="utf-8")
    with _cache(path, warnings) as cache:  # an earlier file moved aside is not overwritten
        assert cache.enabled
    assert aside.read_bytes() == before and (tmp_path / "reviews.jsonl.unusable.1").read_text() == "not a cache either"


def test_a_damaged_cache_of_its_own_is_deleted_not_kept(tmp_path):
    path = tmp_path / "c.sqlite3"
    with _cache(path) as cache:
        cache.store(_keys(3000), _logits(3000))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # its header says it is a mixedclf cache: nothing to keep
    with _cache(path) as cache:
        assert cache.enabled
    assert [p.name for p in tmp_path.iterdir() if "unusable" in p.name] == []
