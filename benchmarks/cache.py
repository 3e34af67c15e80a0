"""Prediction cache speed: look-up + store rows per second (per core, from process CPU time) on a cache that already
holds `--entries` rows, with a nightly mix of rows seen before and new ones, timed as a local run does it: a CPU
worker's `CacheReader` reads each batch (keys made from the cleaned texts), then the main process records the
reader's hits, looks up the rest and stores what was computed. Each side's CPU time is printed, and both together.

    python benchmarks/cache.py                      # 10M entries, the issue's target: >= 100,000 rows/s per core
    python benchmarks/cache.py --entries 1000000    # quicker

The cache file is built once in --dir (not timed) and reused by later runs with the same --entries.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import print_machine

from mixedclf.core.answers import answer_keys, run_key
from mixedclf.io.prediction_cache import PredictionCache

BATCH = 1024  # rows per look-up/store: a chunk's micro-batches are of this order
LABELS = 2


def _fill(cache: PredictionCache, key: bytes, entries: int) -> None:
    logits = np.zeros((50_000, LABELS), dtype=np.float32)
    for start in range(0, entries, 50_000):
        n = min(50_000, entries - start)
        cache.store(answer_keys(key, [f"review {i}" for i in range(start, start + n)]), logits[:n],
                    np.full(n, 24, dtype=np.int32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=10_000_000, help="rows the cache holds before timing")
    parser.add_argument("--rows", type=int, default=500_000, help="rows looked up (and the misses stored) while timed")
    parser.add_argument("--new", type=float, default=0.01, help="share of timed rows the cache has not seen")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "mixedclf-cache-bench")
    args = parser.parse_args()
    print_machine()

    key = run_key(model="bench", labels=LABELS)
    path = args.dir / f"cache-{args.entries}.sqlite3"
    with PredictionCache(path, max_bytes=16 << 30) as cache:
        held = cache._db.execute("SELECT count(*) FROM answers").fetchone()[0] if cache._db else 0
        if held < args.entries:
            t0 = time.perf_counter()
            _fill(cache, key, args.entries)
            print(f"built {args.entries:,} entries in {time.perf_counter() - t0:.1f} s, "
                  f"{cache.file_bytes() / 1e6:,.0f} MB")

    rng = np.random.default_rng(0)
    seen = rng.integers(0, args.entries, size=args.rows)
    fresh = rng.random(args.rows) < args.new
    texts = [f"new review {i}" if fresh[i] else f"review {seen[i]}" for i in range(args.rows)]
    logits = np.ones((BATCH, LABELS), dtype=np.float32)
    tokens = np.full(BATCH, 24, dtype=np.int32)

    with PredictionCache(path, max_bytes=16 << 30) as cache:
        reader = cache.reader(key, LABELS)
        reader_cpu = main_cpu = 0.0
        wall0 = time.perf_counter()
        for start in range(0, args.rows, BATCH):
            part = texts[start : start + BATCH]
            cpu0 = time.process_time()
            held = reader.read(part)  # in a worker: the cleaned texts in, the rows it answers out
            reader_cpu += time.process_time() - cpu0
            cpu0 = time.process_time()
            keys = answer_keys(key, part)  # the main process keys every row of its batch
            answered = set(held.rows.tolist()) if held is not None else set()
            cache.record_hits([keys[i] for i in answered])
            rest = [keys[i] for i in range(len(part)) if i not in answered]
            found = cache.lookup(rest)
            missed = [k for i, k in enumerate(rest) if i not in found]
            if missed:
                cache.store(missed, logits[: len(missed)], tokens[: len(missed)])
            main_cpu += time.process_time() - cpu0
        wall = time.perf_counter() - wall0
        stats = cache.stats
    print(f"{args.rows:,} rows against {args.entries:,} entries ({args.new:.0%} new, batches of {BATCH}): "
          f"{stats.hits:,} hits ({stats.untokenized:,} by the reader), {stats.misses:,} misses stored")
    print(f"reader (a CPU worker): {args.rows / reader_cpu:,.0f} rows/s per core (CPU {reader_cpu:.2f} s)")
    print(f"main process (record hits, look up the rest, store): {args.rows / main_cpu:,.0f} rows/s per core "
          f"(CPU {main_cpu:.2f} s)")
    print(f"look-up + store, both sides: {args.rows / (reader_cpu + main_cpu):,.0f} rows/s per core; "
          f"{args.rows / wall:,.0f} rows/s wall ({wall:.2f} s)")


if __name__ == "__main__":
    main()
