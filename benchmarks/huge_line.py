"""Peak memory of `mixedclf classify` on normal lines vs the same lines plus one huge single-line text.

    python benchmarks/huge_line.py [--mb 50] [--rows 2000] [--rounds 2] [--code DIR]

Both inputs are JSONL with the same normal rows (synthetic reviews); the second also holds one row whose text
is --mb megabytes on one line. Each run is `mixedclf classify` with default options and the tiny test model,
in a subprocess; the runs alternate, and each input keeps its lowest peak over the rounds. Two figures per run:
  - tree peak: main process + CPU workers, summed, sampled every 20 ms from /proc (may miss a short spike);
  - sum of HWMs: each process's own high-water mark (VmHWM) summed, an upper bound that misses nothing.
--code runs another checkout's mixedclf (e.g. the code before a fix) for comparison.
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

from common import ROOT, machine
from memory import tiny_model


def _tree(pid: int) -> list[int]:
    pids, stack = [], [pid]
    while stack:
        p = stack.pop()
        pids.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return pids


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def measure(code: Path, args: list[str]) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(code))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "mixedclf", "classify", *args], cwd=code, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tree_peak, hwm = 0, {}
    while proc.poll() is None:
        pids = _tree(proc.pid)
        tree_peak = max(tree_peak, sum(_status_kb(p, "VmRSS:") for p in pids))
        for p in pids:
            hwm[p] = max(hwm.get(p, 0), _status_kb(p, "VmHWM:"))
        time.sleep(0.02)
    if proc.returncode not in (0, 3):
        raise SystemExit(f"classify failed ({proc.returncode}): {proc.stderr.read()[-2000:]}")
    return {"tree_peak_mb": tree_peak / 1024, "sum_hwm_mb": sum(hwm.values()) / 1024,
            "processes": len(hwm), "wall_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=50.0, help="size of the huge line's text, in MB")
    parser.add_argument("--rows", type=int, default=2000, help="normal rows in both inputs")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose mixedclf runs")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "out" / "huge_line.json")
    args = parser.parse_args()

    from datagen import generate_texts

    work = Path(tempfile.mkdtemp(prefix="mixedclf-huge-"))
    model = tiny_model(work / "tiny")
    lines = [json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(generate_texts(args.rows, seed=3))]
    normal = work / "normal.jsonl"
    normal.write_text("".join(lines), encoding="utf-8")
    huge = work / "huge.jsonl"
    word = "great food and friendly staff "  # 30 characters, spaces included
    text = (word * int(args.mb * 1e6 / len(word) + 1))[: int(args.mb * 1e6)]
    huge.write_text(lines[0] + json.dumps({"id": "huge", "text": text}) + "\n" + "".join(lines[1:]), encoding="utf-8")
    del text
    print(f"machine: {machine()}\ncode: {args.code}\nhuge line: {huge.stat().st_size / 1e6:.1f} MB file", flush=True)
    best: dict[str, dict] = {}
    for round_ in range(args.rounds):
        for name, source in (("normal", normal), ("huge", huge)):
            out = work / f"out-{name}.jsonl"
            run = measure(args.code, [str(source), "-o", str(out), "--model", str(model), "--device", "cpu", "-q"])
            if name == "huge":
                big = next((json.loads(line) for line in out.open(encoding="utf-8") if "huge" in line[:40]), None)
                if big is not None:  # the code before the fix wrote this id re-quoted; find it all the same
                    run["huge_row"] = {k: big[k] for k in ("id", "truncated", "token_count", "char_count",
                                                           "word_count")}
            print(f"round {round_ + 1} {name:>6}: tree peak {run['tree_peak_mb']:7.1f} MB, sum of HWMs "
                  f"{run['sum_hwm_mb']:7.1f} MB ({run['processes']} processes), {run['wall_s']:5.1f} s", flush=True)
            if name not in best or run["sum_hwm_mb"] < best[name]["sum_hwm_mb"]:
                best[name] = run
    ratio_tree = best["huge"]["tree_peak_mb"] / best["normal"]["tree_peak_mb"]
    ratio_hwm = best["huge"]["sum_hwm_mb"] / best["normal"]["sum_hwm_mb"]
    print(f"huge / normal: tree peak {ratio_tree:.2f}x, sum of HWMs {ratio_hwm:.2f}x (target: within 2x)")
    results = {"machine": machine(), "code": str(args.code), "mb": args.mb, "rows": args.rows, "best": best,
               "ratio_tree_peak": ratio_tree, "ratio_sum_hwm": ratio_hwm}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
