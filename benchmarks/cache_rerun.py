"""What the prediction cache saves a nightly job: a rerun over a file that grew by 1% new rows, against the first run
that filled the cache (the issue's comparison) and the same rerun without the cache (what the job paid before).
Device seconds (the report's device busy seconds) and wall time (process start to exit, measured outside), side by
side.

    python benchmarks/cache_rerun.py                                   # 10,000 rows, the default model
    python benchmarks/cache_rerun.py --case tiny:1000000 --case default:20000   # both sizes, one table
    python benchmarks/cache_rerun.py --case tiny:200000 --baseline /path/to/other/checkout --rounds 3

`--baseline DIR` runs another checkout of mixedclf beside this one (its own cache), the reruns interleaved round by
round, and prints each round's rerun wall time of this code over the baseline's.

`--case MODEL:ROWS` (repeatable): MODEL is `default`, `tiny` (the tests' 2-layer, hidden-32 BERT: a million rows fit
on a small CPU), `bert-tiny` (the smallest published BERT's shape, hidden 128, random weights) or a model path.
Each run is the real command line (`python -m mixedclf classify ... --report`), as a cron job starts it. Every
text is unique (a row number is appended), so the new rows are misses and the others hits.
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

from common import print_machine, tiny_classifier
from datagen import generate_texts


def _write(path: Path, n: int, start: int = 0, seed: int = 7) -> None:
    with path.open("w", encoding="utf-8") as out:
        for i, text in enumerate(generate_texts(n, seed=seed), start=start):
            out.write(json.dumps({"id": i, "text": f"{text} (#{i})"}) + "\n")


def _classify(source: Path, folder: Path, name: str, model: str, cache: Path | None, code: Path | None = None
              ) -> dict:
    report = folder / f"{name}.json"
    cmd = [sys.executable, "-m", "mixedclf", "classify", str(source), "-o", str(folder / f"{name}.jsonl"),
           "--model", model, "--report", str(report), "--quiet"]
    cmd += ["--cache", str(cache)] if cache is not None else ["--no-cache"]
    env = {k: v for k, v in os.environ.items() if k != "MIXEDCLF_NO_CACHE"}  # common.py turns it off
    if code is not None:  # another checkout's mixedclf first on the path
        env["PYTHONPATH"] = str(code)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    wall = time.perf_counter() - start
    data = json.loads(report.read_text(encoding="utf-8"))
    cache_part = data.get("cache") or {}
    result = {"run": name, "rows": data["rows_in"], "device_s": data["extra"]["device_busy_s"], "wall_s": wall,
              "hits": cache_part.get("hits", 0), "misses": cache_part.get("misses", data["rows_in"]),
              "avoided_usd": cache_part.get("avoided_usd")}
    # As each run ends: a long case on a shared machine is worth reading before it is over.
    print(f"  {name}: {result['rows']:,} rows, {result['hits']:,} hits, device {result['device_s']:.2f} s, "
          f"wall {wall:.2f} s, load average now {_load():.1f}", flush=True)
    return result


def _compare(a: Path, b: Path) -> tuple[bool, bool, float]:
    """(bytes equal, every label equal, the largest |score| difference) of two output files, read line by line."""
    labels, diff = True, 0.0
    with a.open(encoding="utf-8") as fa, b.open(encoding="utf-8") as fb:
        for line_a, line_b in zip(fa, fb, strict=True):
            if line_a != line_b:
                x, y = json.loads(line_a), json.loads(line_b)
                labels = labels and x["label"] == y["label"]
                diff = max(diff, abs(x["score"] - y["score"]))
    same = diff == 0.0 and labels and a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()
    return same, labels, diff


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def run_case(model: str, rows: int, new_share: float, model_dir: Path) -> dict:
    """The three runs of one case and their ratios."""
    new = max(1, round(rows * new_share))
    synthetic = model in ("tiny", "bert-tiny")
    model_arg = str(tiny_classifier(model_dir / model, shape=model)) if synthetic else model
    load_start = _load()
    with tempfile.TemporaryDirectory(prefix="mixedclf-cache-rerun-") as tmp:
        folder = Path(tmp)
        first, grown = folder / "night1.jsonl", folder / "night2.jsonl"
        _write(first, rows)
        _write(folder / "new.jsonl", new, start=rows, seed=8)
        with grown.open("wb") as out:
            out.write(first.read_bytes())
            out.write((folder / "new.jsonl").read_bytes())
        cache = folder / "predictions.sqlite3"
        results = [
            _classify(first, folder, "first run (fills the cache)", model_arg, cache),
            _classify(grown, folder, "rerun with the cache", model_arg, cache),
            _classify(grown, folder, "rerun without the cache", model_arg, None),
        ]
        same, labels_same, score_diff = _compare(folder / "rerun without the cache.jsonl",
                                                 folder / "rerun with the cache.jsonl")
    first_run, cached, base = results
    case = {"model": model, "rows": rows, "new": new, "results": results,
            "device_vs_first": cached["device_s"] / first_run["device_s"],
            "wall_vs_first": cached["wall_s"] / first_run["wall_s"],
            "device_vs_uncached": cached["device_s"] / base["device_s"],
            "wall_vs_uncached": cached["wall_s"] / base["wall_s"],
            "identical": same, "labels_identical": labels_same, "max_score_diff": score_diff,
            "load_start": load_start, "load_end": _load()}
    print(f"\n{model}: {rows:,} rows, then {rows + new:,} ({new:,} new); load average {load_start:.1f} -> "
          f"{case['load_end']:.1f}")
    print(f"{'run':<30} {'rows':>10} {'hits':>10} {'device s':>10} {'wall s':>9}")
    for r in results:
        print(f"{r['run']:<30} {r['rows']:>10,} {r['hits']:>10,} {r['device_s']:>10.2f} {r['wall_s']:>9.2f}")
    print(f"outputs of the reruns with and without the cache byte-identical: {same}; labels identical: "
          f"{labels_same}; largest score difference {score_diff:.2e} (a row computed in another micro-batch is padded "
          "to another width)", flush=True)
    return case


def run_against_baseline(model: str, rows: int, new_share: float, model_dir: Path, baseline: Path,
                         rounds: int) -> None:
    """This code and `baseline`'s, each with its own cache: both first runs, then the reruns with the cache
    interleaved (baseline, this) `rounds` times; the rerun wall ratio of each round."""
    new = max(1, round(rows * new_share))
    synthetic = model in ("tiny", "bert-tiny")
    model_arg = str(tiny_classifier(model_dir / model, shape=model)) if synthetic else model
    with tempfile.TemporaryDirectory(prefix="mixedclf-cache-rerun-") as tmp:
        folder = Path(tmp)
        first, grown = folder / "night1.jsonl", folder / "night2.jsonl"
        _write(first, rows)
        _write(folder / "new.jsonl", new, start=rows, seed=8)
        grown.write_bytes(first.read_bytes() + (folder / "new.jsonl").read_bytes())
        codes = {"baseline": baseline, "this": None}
        firsts = {v: _classify(first, folder, f"{v} first run", model_arg, folder / f"{v}.sqlite3", code)
                  for v, code in codes.items()}
        ratios = []
        for r in range(rounds):
            walls = {v: _classify(grown, folder, f"{v} rerun {r + 1}", model_arg, folder / f"{v}.sqlite3", code)
                     ["wall_s"] for v, code in codes.items()}
            ratios.append(walls["this"] / walls["baseline"])
            print(f"round {r + 1}: rerun wall this / baseline = {ratios[-1]:.3f} ({walls['this']:.2f} s / "
                  f"{walls['baseline']:.2f} s); rerun / first run: this {walls['this'] / firsts['this']['wall_s']:.1%}"
                  f", baseline {walls['baseline'] / firsts['baseline']['wall_s']:.1%}", flush=True)
    print(f"\n{model}, {rows:,} rows (+{new:,}): rerun wall this / baseline {min(ratios):.3f}-{max(ratios):.3f} over "
          f"{rounds} interleaved rounds; first runs: this {firsts['this']['wall_s']:.2f} s, baseline "
          f"{firsts['baseline']['wall_s']:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000, help="rows of the first night's file (without --case)")
    parser.add_argument("--model", default="default", help="default, tiny or a model path (without --case)")
    parser.add_argument("--case", action="append", default=[], metavar="MODEL:ROWS",
                        help="a model and a size; repeat to compare several in one table")
    parser.add_argument("--new", type=float, default=0.01, help="the file grows by this share of new rows")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--baseline", type=Path, help="another checkout of mixedclf to interleave with this one")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved reruns with --baseline")
    args = parser.parse_args()
    cases = [(c.rsplit(":", 1)[0], int(c.rsplit(":", 1)[1])) for c in args.case] or [(args.model, args.rows)]
    machine = print_machine()
    if args.baseline is not None:
        with tempfile.TemporaryDirectory(prefix="mixedclf-cache-model-") as model_dir:
            for model, rows in cases:
                run_against_baseline(model, rows, args.new, Path(model_dir), args.baseline.resolve(), args.rounds)
        print(f"machine: {machine}")
        return
    with tempfile.TemporaryDirectory(prefix="mixedclf-cache-model-") as model_dir:
        done = [run_case(model, rows, args.new, Path(model_dir)) for model, rows in cases]
    print(f"\nmachine: {machine}")
    print("rerun over the grown file with the cache, as a share of the first run (the issue: <= 2% device, <= 20% wall)"
          " and of the same rerun without the cache")
    print(f"{'model':<10} {'rows':>10} {'device/first':>13} {'wall/first':>11} {'device/uncached':>16} "
          f"{'wall/uncached':>14} {'identical':>10}")
    for c in done:
        print(f"{c['model']:<10} {c['rows']:>10,} {c['device_vs_first']:>13.2%} {c['wall_vs_first']:>11.2%} "
              f"{c['device_vs_uncached']:>16.2%} {c['wall_vs_uncached']:>14.2%} {c['identical']!s:>10}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "cases": done}, indent=2) + "\n")


if __name__ == "__main__":
    main()
