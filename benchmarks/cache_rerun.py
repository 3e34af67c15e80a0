"""What the prediction cache saves a nightly job: a rerun over a file that grew by 1% new rows, against the same rerun
without the cache (what the job paid before) and the first run that filled the cache. Device seconds (the report's
device busy seconds) and wall time (process start to exit, measured outside), side by side.

    python benchmarks/cache_rerun.py                       # 10,000 rows, the default model
    python benchmarks/cache_rerun.py --rows 1000000        # the issue's size: hours on a 2-core CPU

Each run is the real command line (`python -m mixedclf classify ... --report`), as a cron job runs it. Every text is
unique (a row number is appended), so the new rows are misses and the others hits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import print_machine
from datagen import generate_texts


def _write(path: Path, n: int, start: int = 0, seed: int = 7) -> None:
    with path.open("w", encoding="utf-8") as out:
        for i, text in enumerate(generate_texts(n, seed=seed), start=start):
            out.write(json.dumps({"id": i, "text": f"{text} (#{i})"}) + "\n")


def _classify(source: Path, folder: Path, name: str, model: str, cache: Path | None) -> dict:
    report = folder / f"{name}.json"
    cmd = [sys.executable, "-m", "mixedclf", "classify", str(source), "-o", str(folder / f"{name}.jsonl"),
           "--model", model, "--report", str(report), "--quiet"]
    cmd += ["--cache", str(cache)] if cache is not None else ["--no-cache"]
    env = {k: v for k, v in os.environ.items() if k != "MIXEDCLF_NO_CACHE"}  # common.py turns it off
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    wall = time.perf_counter() - start
    data = json.loads(report.read_text(encoding="utf-8"))
    cache_part = data.get("cache") or {}
    return {"run": name, "rows": data["rows_in"], "device_s": data["extra"]["device_busy_s"], "wall_s": wall,
            "hits": cache_part.get("hits", 0), "misses": cache_part.get("misses", data["rows_in"]),
            "avoided_usd": cache_part.get("avoided_usd")}


def _compare(a: Path, b: Path) -> tuple[bool, bool, float]:
    """(bytes equal, every label equal, the largest |score| difference) of two output files."""
    rows_a = [json.loads(line) for line in a.open(encoding="utf-8")]
    rows_b = [json.loads(line) for line in b.open(encoding="utf-8")]
    labels = [r["label"] for r in rows_a] == [r["label"] for r in rows_b]
    diff = max((abs(x["score"] - y["score"]) for x, y in zip(rows_a, rows_b, strict=True)), default=0.0)
    return a.read_bytes() == b.read_bytes(), labels, diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000, help="rows of the first night's file")
    parser.add_argument("--new", type=float, default=0.01, help="the file grows by this share of new rows")
    parser.add_argument("--model", default="default")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    machine = print_machine()
    new = max(1, round(args.rows * args.new))
    with tempfile.TemporaryDirectory(prefix="mixedclf-cache-rerun-") as tmp:
        folder = Path(tmp)
        first, grown = folder / "night1.jsonl", folder / "night2.jsonl"
        _write(first, args.rows)
        _write(grown, args.rows)
        _write(folder / "new.jsonl", new, start=args.rows, seed=8)
        with grown.open("a", encoding="utf-8") as out:
            out.write((folder / "new.jsonl").read_text(encoding="utf-8"))
        cache = folder / "predictions.sqlite3"
        results = [
            _classify(grown, folder, "rerun without the cache", args.model, None),
            _classify(first, folder, "first run (fills the cache)", args.model, cache),
            _classify(grown, folder, "rerun with the cache", args.model, cache),
        ]
        same, labels_same, score_diff = _compare(folder / "rerun without the cache.jsonl",
                                                 folder / "rerun with the cache.jsonl")
    base, cached = results[0], results[2]
    print(f"{args.rows:,} rows, then {args.rows + new:,} ({new:,} new), model {args.model}")
    print(f"{'run':<30} {'rows':>8} {'hits':>8} {'device s':>10} {'wall s':>8}")
    for r in results:
        print(f"{r['run']:<30} {r['rows']:>8,} {r['hits']:>8,} {r['device_s']:>10.2f} {r['wall_s']:>8.2f}")
    device_ratio = cached["device_s"] / base["device_s"]
    wall_ratio = cached["wall_s"] / base["wall_s"]
    print(f"rerun with the cache / without: device seconds {device_ratio:.2%}, wall time {wall_ratio:.2%}")
    print(f"outputs byte-identical: {same}; labels identical: {labels_same}; largest score difference "
          f"{score_diff:.2e} (a row computed in another micro-batch is padded to another width)")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "rows": args.rows, "new": new, "model": args.model,
                                         "results": results, "device_ratio": device_ratio,
                                         "wall_ratio": wall_ratio, "identical": same, "labels_identical": labels_same,
                                         "max_score_diff": score_diff}, indent=2) + "\n")


if __name__ == "__main__":
    main()
