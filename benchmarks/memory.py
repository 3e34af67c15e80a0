"""Peak memory of `mixedclf classify` (main process + CPU workers, summed) on generated JSONL inputs of
different sizes, side by side: flat memory means the peak does not grow with the input.

    python benchmarks/memory.py [--rows 100000 1000000] [--model default|tiny|PATH] [--device cpu]

The model only adds its weights to the peak; `--model tiny` (a 2-layer random BERT built on the fly) lets a
2-core machine stream a million rows in minutes instead of hours, and measures the same queues and buffers.
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

from common import ROOT, print_machine


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, StopIteration, ValueError):
            continue
    return total


def run_and_measure(args: list[str]) -> tuple[int, float, int]:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "mixedclf", "classify", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss_bytes(proc.pid))
        time.sleep(0.1)
    if proc.returncode != 0:
        raise SystemExit(f"classify failed ({proc.returncode}): {proc.stderr.read()[-2000:]}")
    return peak, time.perf_counter() - start, proc.returncode


def tiny_model(folder: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import build_tiny_classifier

    return folder if (folder / "config.json").exists() else build_tiny_classifier(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "out" / "memory.json")
    args = parser.parse_args()

    from datagen import write_jsonl

    work = Path(tempfile.mkdtemp(prefix="mixedclf-mem-"))
    model = str(tiny_model(work / "tiny")) if args.model == "tiny" else args.model
    results = {"machine": print_machine(), "model": args.model, "runs": []}
    print(f"model: {args.model}", flush=True)
    for rows in args.rows:
        source = write_jsonl(work / f"rows-{rows}.jsonl", rows, seed=3)
        out = work / f"out-{rows}.parquet"
        peak, wall, _ = run_and_measure([str(source), "-o", str(out), "--model", model, "--device", args.device, "-q"])
        results["runs"].append({"rows": rows, "peak_rss_mb": peak / 2**20, "wall_s": wall, "rows_per_s": rows / wall})
        print(f"{rows:>10,} rows: peak RSS {peak / 2**20:8.1f} MB, {wall:7.1f} s ({rows / wall:,.0f} rows/s)",
              flush=True)
        source.unlink()
        out.unlink()
    peaks = [r["peak_rss_mb"] for r in results["runs"]]
    results["ratio_largest_to_smallest"] = peaks[-1] / peaks[0]
    print(f"peak RSS ratio, {args.rows[-1]:,} vs {args.rows[0]:,} rows: {peaks[-1] / peaks[0]:.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
