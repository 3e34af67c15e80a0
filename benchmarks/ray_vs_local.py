"""Local engine vs Ray engine on the same machine, same model, same input: texts/s of each and their ratio.

    python benchmarks/ray_vs_local.py                     # 2,000 rows made from sample_data, --model default
    python benchmarks/ray_vs_local.py --rows 300 --model tests-tiny

Three runs, one after another, on one input file:
  local       the default engine (process pool + device loop);
  ray cold    --engine ray starting its own local Ray (what `mixedclf classify --engine ray` pays on a laptop);
  ray warm    --engine ray joining a Ray already running (what a job on a standing cluster pays).
Throughput is rows / end-to-end seconds of the classify call (model load, Ray start-up and the merge included).
Predictions of the three runs are compared row for row.

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
    from mixedclf.config import ClassifyOptions
    from mixedclf.pipeline import classify_file

    opts = ClassifyOptions(input=inp, output=out, model=model, engine=engine, device=args.device,
                           cpu_workers=args.cpu_workers, chunk_rows=args.chunk_rows, batch_size=args.batch_size)
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
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import ray

    with tempfile.TemporaryDirectory(prefix="mixedclf-ray-bench-") as tmp_name:
        tmp = Path(tmp_name)
        model, model_desc = resolve_model_arg(args.model, tmp)
        inp = make_input(tmp / "input.jsonl", args.rows)
        runs: dict[str, dict] = {}

        seconds, report = classify("local", inp, tmp / "local.jsonl", model, args)
        runs["local"] = {"seconds": seconds, "report": report, "out": tmp / "local.jsonl"}
        seconds, report = classify("ray", inp, tmp / "ray_cold.jsonl", model, args)
        runs["ray cold"] = {"seconds": seconds, "report": report, "out": tmp / "ray_cold.jsonl"}

        ray_start = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        ray_start = time.perf_counter() - ray_start
        try:
            seconds, report = classify("ray", inp, tmp / "ray_warm.jsonl", model, args)
            runs["ray warm"] = {"seconds": seconds, "report": report, "out": tmp / "ray_warm.jsonl"}
        finally:
            ray.shutdown()

        local_rows = read_rows(runs["local"]["out"])
        print(f"model: {model_desc}; rows: {args.rows:,}; cores: {os.cpu_count()}; device: {runs['local']['report']['device']}")
        print(f"{'run':<10} {'seconds':>8} {'texts/s':>9} {'vs local':>9}  {'startup s':>9}  same predictions")
        local_rate = args.rows / runs["local"]["seconds"]
        numbers = {"rows": args.rows, "model": model_desc, "cores": os.cpu_count(), "ray_init_s": ray_start}
        for name, run in runs.items():
            rate = args.rows / run["seconds"]
            startup = run["report"].get("extra", {}).get("startup_s")
            same = same_predictions(local_rows, read_rows(run["out"]))
            print(f"{name:<10} {run['seconds']:>8.2f} {rate:>9.1f} {rate / local_rate:>8.2f}x  "
                  f"{startup if startup is not None else float('nan'):>9.2f}  {'yes' if same else 'NO'}")
            numbers[name] = {"seconds": run["seconds"], "texts_per_s": rate, "ratio_vs_local": rate / local_rate,
                             "startup_s": startup, "same_predictions": same}
        print(f"ray cold / local texts/s ratio: {numbers['ray cold']['ratio_vs_local']:.2f}; "
              f"ray warm / local: {numbers['ray warm']['ratio_vs_local']:.2f} "
              f"(starting Ray by hand took {ray_start:.1f}s)")
        if args.json:
            args.json.write_text(json.dumps(numbers, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
