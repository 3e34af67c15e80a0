"""Start-up: process start to the first micro-batch on the device, for `mixedclf classify` on the default model,
plus the wall time of `mixedclf --help` and `mixedclf estimate` (which must not import torch).

    python benchmarks/startup.py [--rows 16384] [--unique 64] [--rounds 3] [--baseline DIR] [--padding-rows 20000]
                                 [--backend torch|onnxruntime]

Each run is a fresh `python -m mixedclf` subprocess (a cold start, as a serverless worker pays it; the page cache
is warm). `--baseline DIR` runs another checkout (e.g. `git archive` of main into DIR) interleaved with this one,
round by round, and prints the per-round ratios: on a shared machine those hold up where absolute seconds do not.

The input repeats `--unique` distinct texts: every row is read and preprocessed (the start-up path does the full
work), but dedup leaves the device few rows, so a round takes seconds of inference, not minutes. Start-up is the
report's `cold_start_s`; a report without it (older versions) gives the same quantity as
process_s - wall_s + extra.startup_s.

`--backend onnxruntime` measures the torch-free start-up: one classify before the timed rounds converts the model
into the user cache (MIXEDCLF_CACHE_DIR or the platform's) if it is not there yet, so no round pays the conversion.

`--padding-rows` tokenizes that many distinct texts and prints the padding of fixed 16,384-row windows against the
schedule (a first window of 1,024 rows, then 16,384): the price of the small first window, in padded tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, load_texts, print_machine


def _env(checkout: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(checkout), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")


def _run(cmd: list[str], checkout: Path, cwd: Path) -> subprocess.CompletedProcess:
    # cwd outside every checkout: `python -m` puts the working folder ahead of PYTHONPATH on sys.path.
    return subprocess.run(cmd, env=_env(checkout), cwd=cwd, capture_output=True, text=True)


def imported_from(checkout: Path, cwd: Path) -> str:
    proc = _run([sys.executable, "-c", "import mixedclf; print(mixedclf.__file__)"], checkout, cwd)
    return proc.stdout.strip() or proc.stderr.strip()


def cold_start(report: dict) -> float:
    m = report["measurements"]
    if m.get("cold_start_s") is not None:
        return float(m["cold_start_s"])
    return float(m["process_s"] - m["wall_s"] + report["extra"]["startup_s"])


def classify_once(checkout: Path, source: Path, work: Path, precision: str, backend: str = "torch") -> dict:
    out, rep = work / "out.jsonl", work / "report.json"
    cmd = [sys.executable, "-m", "mixedclf", "classify", str(source), "-o", str(out), "--report", str(rep),
           "-q", "--device", "cpu", "--precision", precision, "--backend", backend]
    start = time.perf_counter()
    proc = _run(cmd, checkout, work)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    report = json.loads(rep.read_text())
    m = report["measurements"]
    load = sum(s["busy_s"] for s in m["stages"] if s["name"] == "model_load")
    cold = cold_start(report)
    return {"cold_start_s": cold, "before_load_s": m["startup_s"], "model_load_s": load,
            "first_chunk_wait_s": max(0.0, cold - m["startup_s"] - load), "process_wall_s": wall}


def cli_once(checkout: Path, args: list[str], work: Path) -> tuple[float, list[str]]:
    """Wall seconds of `python -m mixedclf ARGS`, and the heavy modules it imported (from -X importtime)."""
    start = time.perf_counter()
    proc = _run([sys.executable, "-X", "importtime", "-m", "mixedclf", *args], checkout, work)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"mixedclf {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    heavy = ("torch", "transformers", "pyarrow", "pandas", "numpy", "tokenizers", "safetensors")
    names = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time")}
    return wall, sorted(h for h in heavy if h in names)


def padding(rows: int, first: int, most: int) -> dict:
    """Padded share of device tokens with fixed `most`-row windows vs a first window of `first` rows, then `most`."""
    from mixedclf.core.batching import ChunkSizes, batch_limits, padded_tokens, plan_micro_batches
    from mixedclf.core.preprocess import make_tokenizer, preprocess_texts
    from mixedclf.models.spec import resolve_model
    from mixedclf.models.tokenizer import tokenizer_json_and_pad_id

    spec = resolve_model("default")
    tokenizer_json, _ = tokenizer_json_and_pad_id(spec)
    lengths = preprocess_texts(load_texts("datagen", rows), make_tokenizer(tokenizer_json, spec.max_length)).lengths
    result = {}
    for name, sizes in (("fixed", ChunkSizes(most)), ("small first", ChunkSizes(most, first))):
        real = padded = start = index = 0
        while start < len(lengths):
            window = lengths[start : start + sizes(index)]
            padded += padded_tokens(window, plan_micro_batches(window, *batch_limits("cpu")))
            real += int(window.sum())
            start, index = start + len(window), index + 1
        result[name] = {"windows": index, "padded_tokens": padded, "padding_fraction": 1 - real / padded}
    result["extra_device_tokens"] = result["small first"]["padded_tokens"] / result["fixed"]["padded_tokens"] - 1
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=16384, help="input rows (16,384: one full default window)")
    parser.add_argument("--unique", type=int, default=64, help="distinct texts the rows cycle through")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"])
    parser.add_argument("--baseline", type=Path, help="another checkout to run interleaved with this one")
    parser.add_argument("--padding-rows", type=int, default=20000, help="0: skip the padding comparison")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "out" / "startup.json")
    args = parser.parse_args()

    machine = print_machine()
    variants = {"this": ROOT}
    if args.baseline is not None:
        variants = {"baseline": args.baseline.resolve(), "this": ROOT}
    texts = load_texts("datagen", args.unique)
    results: dict[str, dict[str, list]] = {v: {"classify": [], "help_s": [], "estimate_s": []} for v in variants}
    imports: dict[str, dict[str, list[str]]] = {}
    with tempfile.TemporaryDirectory(prefix="mixedclf-startup-") as tmp:
        work = Path(tmp)
        source = work / "in.jsonl"
        with source.open("w", encoding="utf-8") as handle:
            for i in range(args.rows):
                handle.write(json.dumps({"id": i, "text": texts[i % len(texts)]}) + "\n")
        for name, checkout in variants.items():
            print(f"{name}: {imported_from(checkout, work)}")
            if args.backend != "torch":  # the conversion, once per model and machine, is not start-up
                classify_once(checkout, source, work, args.precision, args.backend)
        for r in range(args.rounds):
            for name, checkout in variants.items():
                help_s, help_heavy = cli_once(checkout, ["--help"], work)
                est_s, est_heavy = cli_once(checkout, ["estimate", "-f", "json"], work)
                imports[name] = {"--help": help_heavy, "estimate": est_heavy}
                run = classify_once(checkout, source, work, args.precision, args.backend)
                results[name]["classify"].append(run)
                results[name]["help_s"].append(help_s)
                results[name]["estimate_s"].append(est_s)
                print(f"round {r + 1} {name:<8} start-up {run['cold_start_s']:6.2f} s (before load "
                      f"{run['before_load_s']:.2f}, load {run['model_load_s']:.2f}, then waiting for the first "
                      f"chunk {run['first_chunk_wait_s']:.2f}); --help {help_s:.2f} s; "
                      f"estimate {est_s:.2f} s", flush=True)

    print(f"\nmedians of {args.rounds} rounds ({args.rows:,} rows, {args.unique} distinct texts, "
          f"--precision {args.precision}, --backend {args.backend}, --device cpu):")
    print(f"{'checkout':<9} {'start-up s':>10} {'before load':>11} {'model load':>10} {'chunk wait':>10} "
          f"{'--help s':>9} {'estimate s':>10}  heavy imports of --help / estimate")
    summary = {}
    for name, res in results.items():
        med = {k: statistics.median(run[k] for run in res["classify"])
               for k in ("cold_start_s", "before_load_s", "model_load_s", "first_chunk_wait_s")}
        med["help_s"] = statistics.median(res["help_s"])
        med["estimate_s"] = statistics.median(res["estimate_s"])
        summary[name] = med
        heavy = imports[name]
        print(f"{name:<9} {med['cold_start_s']:>10.2f} {med['before_load_s']:>11.2f} {med['model_load_s']:>10.2f} "
              f"{med['first_chunk_wait_s']:>10.2f} {med['help_s']:>9.2f} {med['estimate_s']:>10.2f}  {','.join(heavy['--help']) or '-'} / "
              f"{','.join(heavy['estimate']) or '-'}")
    ratios = {}
    if "baseline" in results:
        for key, label in (("cold_start_s", "start-up"), ("help_s", "--help"), ("estimate_s", "estimate")):
            if key == "cold_start_s":
                pairs = [(b[key], t[key]) for b, t in zip(results["baseline"]["classify"], results["this"]["classify"])]
            else:
                pairs = list(zip(results["baseline"][key], results["this"][key]))
            per_round = [t / b for b, t in pairs]
            ratios[key] = per_round
            print(f"this / baseline, {label}: median {statistics.median(per_round):.2f} "
                  f"(rounds: {', '.join(f'{x:.2f}' for x in per_round)})")
    pad = None
    if args.padding_rows:
        pad = padding(args.padding_rows, 1024, 16384)
        f, g = pad["fixed"], pad["small first"]
        print(f"\npadding on {args.padding_rows:,} distinct texts: fixed 16,384-row windows {f['padding_fraction']:.1%} "
              f"({f['windows']} windows), first 1,024 then 16,384 {g['padding_fraction']:.1%} ({g['windows']} windows); "
              f"device tokens +{pad['extra_device_tokens']:.2%}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine,
                                     "args": {k: str(v) for k, v in vars(args).items()}, "runs": results,
                                     "medians": summary, "ratios": ratios, "imports": imports, "padding": pad},
                                    indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
