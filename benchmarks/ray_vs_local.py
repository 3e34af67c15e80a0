"""Local engine vs Ray engine on the same machine, same model, same input: texts/s of each and their ratio.

    python benchmarks/ray_vs_local.py                     # 2,000 rows made from sample_data, --model default
    python benchmarks/ray_vs_local.py --rows 300 --model tests-tiny

Three runs, one after another, on one input file:
  local       the default engine (process pool + device loop);
  ray cold    --engine ray starting its own local Ray (what `mixedclf classify --engine ray` pays on a laptop);
  ray warm    --engine ray joining a Ray already running (what a job on a standing cluster pays).
Throughput is rows / end-to-end seconds of the classify call (model load, Ray start-up and the merge included);
"after start-up" counts from each run's first inference batch (the report's startup_s) to its end. Predictions
of the three runs are compared row for row. Dedup is off unless --dedup: the input cycles the sample data.

--model default uses mixedclf/assets/default_head when it exists; otherwise a random two-label head over the
packaged all-MiniLM-L6-v2 encoder (same compute as the default model, labels meaningless). `tests-tiny` builds
the 2-layer test model of tests/conftest.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data" / "reviews.jsonl"


def make_input(path: Path, rows: int) -> Path:
    """`rows` rows cycled from the sample data, ids made unique."""
    base = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    with open(path, "w", encoding="utf-8") as out:
        for i in range(rows):
            row = dict(base[i % len(base)])
            row["id"] = f"{row['id']}-{i // len(base)}"
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def random_minilm_head(folder: Path) -> Path:
    """A head folder over the packaged encoder with random weights: the default model's compute, no training."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    (folder / "head.json").write_text(json.dumps({"labels": ["negative", "positive"]}), encoding="utf-8")
    save_file({"classifier.weight": torch.randn(2, 384) * 0.05, "classifier.bias": torch.zeros(2)},
              str(folder / "head.safetensors"))
    return folder


def resolve_model_arg(name: str, tmp: Path) -> tuple[str, str]:
    if name == "default":
        if (REPO / "mixedclf" / "assets" / "default_head" / "head.json").exists():
            return "default", "default (mixedclf/assets/default_head)"
        return str(random_minilm_head(tmp / "minilm-random-head")), "all-MiniLM-L6-v2 + random head"
    if name == "tests-tiny":
        sys.path.insert(0, str(REPO / "tests"))
        from conftest import build_tiny_classifier

        return str(build_tiny_classifier(tmp / "tiny-bert")), "tests' tiny 2-layer BERT"
    return name, name


def classify(engine: str, inp: Path, out: Path, model: str, args) -> tuple[float, dict]:
    from mixedclf.core.options import ClassifyOptions
    from mixedclf.engines.run import classify_file

    opts = ClassifyOptions(input=inp, output=out, model=model, engine=engine, device=args.device,
                           cpu_workers=args.cpu_workers, chunk_rows=args.chunk_rows, batch_size=args.batch_size,
                           dedup=args.dedup)
    start = time.perf_counter()
    result = classify_file(opts)
    return time.perf_counter() - start, json.loads(result.report.model_dump_json())


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def same_predictions(a: list[dict], b: list[dict], tol: float = 1e-4) -> bool:
    return len(a) == len(b) and all(
        x["id"] == y["id"] and x["label"] == y["label"] and abs(x["score"] - y["score"]) <= tol for x, y in zip(a, b)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--model", default="default", help="default, tests-tiny, or a model folder")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cpu-workers", type=int, default=None)
    parser.add_argument("--chunk-rows", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dedup", action="store_true",
                        help="reuse predictions of repeated texts (off: the input repeats the sample data, and dedup "
                             "would measure the cache, not the engines)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each engine; the median is shown")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import print_machine

    print_machine()

    import ray

    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="mixedclf-ray-bench-") as tmp_name:
        tmp = Path(tmp_name)
        model, model_desc = resolve_model_arg(args.model, tmp)
        inp = make_input(tmp / "input.jsonl", args.rows)
        runs: dict[str, dict] = {}

        def record(name: str, seconds: float, report: dict, out: Path) -> None:
            run = runs.setdefault(name, {"all": [], "out": out})
            run["all"].append((seconds, report))

        ray_start = float("nan")
        for _ in range(args.repeat):  # interleaved, so a noisy neighbour hurts every engine alike
            record("local", *classify("local", inp, tmp / "local.jsonl", model, args), tmp / "local.jsonl")
            record("ray cold", *classify("ray", inp, tmp / "ray_cold.jsonl", model, args), tmp / "ray_cold.jsonl")
            began = time.perf_counter()
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR)
            ray_start = time.perf_counter() - began
            try:
                record("ray warm", *classify("ray", inp, tmp / "ray_warm.jsonl", model, args), tmp / "ray_warm.jsonl")
            finally:
                ray.shutdown()
        for run in runs.values():  # the median run by seconds
            run["seconds"], run["report"] = sorted(run["all"], key=lambda x: x[0])[len(run["all"]) // 2]

        local_rows = read_rows(runs["local"]["out"])
        print(f"model: {model_desc}; rows: {args.rows:,}; cores: {os.cpu_count()}; "
              f"device: {runs['local']['report']['device']}; median of {args.repeat} run(s) each; "
              f"load average before: {load_before}")
        print(f"{'run':<10} {'seconds':>8} {'texts/s':>9} {'vs local':>9}  {'startup s':>9}  {'after start-up':>14}"
              f"  same predictions")
        local_rate = args.rows / runs["local"]["seconds"]
        numbers = {"rows": args.rows, "model": model_desc, "cores": os.cpu_count(), "ray_init_s": ray_start,
                   "repeat": args.repeat, "load_average_before": load_before,
                   "all_seconds": {k: [round(x[0], 2) for x in v["all"]] for k, v in runs.items()}}
        for name, run in runs.items():
            rate = args.rows / run["seconds"]
            startup = run["report"].get("extra", {}).get("startup_s") or 0.0
            # texts/s from the first inference batch on: the engines' per-row cost without their fixed start-up
            steady = args.rows / (run["seconds"] - startup) if run["seconds"] > startup else float("nan")
            same = same_predictions(local_rows, read_rows(run["out"]))
            print(f"{name:<10} {run['seconds']:>8.2f} {rate:>9.1f} {rate / local_rate:>8.2f}x  "
                  f"{startup:>9.2f}  {steady:>9.1f} /s  {'yes' if same else 'NO'}")
            numbers[name] = {"seconds": run["seconds"], "texts_per_s": rate, "ratio_vs_local": rate / local_rate,
                             "startup_s": startup, "texts_per_s_after_startup": steady, "same_predictions": same,
                             "busy_s_per_item": {st["name"]: st["busy_s"] / st["items"]
                                                 for st in run["report"]["measurements"]["stages"] if st["items"]}}
        if args.repeat > 1:  # on a shared machine the fastest run is the least disturbed one
            best = {name: min(x[0] for x in run["all"]) for name, run in runs.items()}
            print("best of " + str(args.repeat) + ": " + "; ".join(
                f"{name} {args.rows / sec:.1f} texts/s ({best['local'] / sec:.2f}x)" for name, sec in best.items()))
            numbers["best_texts_per_s"] = {name: args.rows / sec for name, sec in best.items()}
        print(f"ray cold / local texts/s ratio: {numbers['ray cold']['ratio_vs_local']:.2f}; "
              f"ray warm / local: {numbers['ray warm']['ratio_vs_local']:.2f} "
              f"(starting Ray by hand took {ray_start:.1f}s)")
        if args.json:
            args.json.write_text(json.dumps(numbers, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
