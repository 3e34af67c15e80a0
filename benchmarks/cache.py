"""Prediction cache speed: look-up + store rows per second (per core, from process CPU time) on a cache that already
holds `--entries` rows, with a nightly mix of rows seen before and new ones.

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
        cache.store(answer_keys(key, [f"review {i}" for i in range(start, start + n)]), logits[:n])


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
    keys = answer_keys(key, texts)  # keyed before timing: the pipeline computes keys in the CPU workers
    logits = np.ones((BATCH, LABELS), dtype=np.float32)

    with PredictionCache(path, max_bytes=16 << 30) as cache:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for start in range(0, args.rows, BATCH):
            part = keys[start : start + BATCH]
            found = cache.lookup(part)
            missed = [k for i, k in enumerate(part) if i not in found]
            if missed:
                cache.store(missed, logits[: len(missed)])
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        stats = cache.stats
    print(f"{args.rows:,} rows against {args.entries:,} entries ({args.new:.0%} new, batches of {BATCH}): "
          f"{stats.hits:,} hits, {stats.misses:,} misses stored")
    print(f"look-up + store: {args.rows / cpu:,.0f} rows/s per core (CPU {cpu:.2f} s), "
          f"{args.rows / wall:,.0f} rows/s wall ({wall:.2f} s)")


if __name__ == "__main__":
    main()
