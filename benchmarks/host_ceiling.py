"""The host ceiling: how fast the pipeline runs when the model costs (almost) nothing.

A near-null classifier (1 layer, hidden size 8, all-MiniLM-L6-v2's tokenizer and vocabulary) over unique
review-like rows. What is left is the host's own cost, which caps any accelerator:

- pipeline rows/s: `mixedclf classify` end to end on the rows (1 preprocessing worker, `--precision fp32`);
- host time per micro-batch outside the model's forward: the runner's loop over the rows (pre-tokenized,
  16,384-row chunks as the local engine sends them) minus the time inside the model call, timed on the
  calling thread's CPU clock (stable on a loaded machine) and on the wall clock;
- per-worker preprocessing rows/s: clean + count + tokenize on one thread.

With --baseline REF the same measurements run on the code at git REF too, interleaved round by round in the
same run (before/after ratios are the numbers to trust on a shared machine). Usage:
    python benchmarks/host_ceiling.py [--rows 50000] [--rounds 3] [--baseline REF] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine

OUT = ROOT / "benchmarks" / "out" / "host-ceiling"


def cpu_description() -> str:
    """lscpu's model name and flags (printed beside every figure: the numbers depend on them)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "lscpu unavailable"
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    get = lambda key: fields.get(key, "?").strip()  # noqa: E731
    return f"{get('Model name')}, {get('CPU(s)')} CPUs, flags: {get('Flags')}"


def build_null_model(folder: Path) -> Path:
    """A 1-layer, hidden-size-8 BERT classifier with MiniLM's tokenizer, so tokenization is the real one."""
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from mixedclf.models.spec import packaged_encoder_dir

    tokenizer = AutoTokenizer.from_pretrained(packaged_encoder_dir())
    tokenizer.model_max_length = 256  # as sentence-transformers runs this encoder
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                        intermediate_size=8, max_position_embeddings=512, num_labels=2,
                        id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    folder.mkdir(parents=True, exist_ok=True)
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def unique_texts(n: int) -> list[str]:
    """n distinct review-like texts (the generator repeats some; repeats get a varying tail)."""
    from mixedclf.datagen import generate_texts

    seen: set[str] = set()
    texts = []
    for i, text in enumerate(generate_texts(n, seed=11)):
        if text in seen:
            text = f"{text} (review {i})"
        seen.add(text)
        texts.append(text)
    return texts


def write_rows(path: Path, texts: list[str]) -> Path:
    if not path.exists():
        path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)),
                        encoding="utf-8")
    return path


class _TimedModel:
    """Calls the module and adds the time spent inside it, on both clocks (works with any runner version)."""

    def __init__(self, module):
        self.module = module
        self.wall = self.cpu = 0.0

    def __call__(self, **kwargs):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return self.module(**kwargs)
        finally:
            self.cpu += time.thread_time() - cpu
            self.wall += time.perf_counter() - wall


def measure_loop(model_dir: Path, rows: int, threads: int, chunk_rows: int = 16384) -> dict:
    """Preprocessing rows/s on one thread, then the runner's loop minus the forward (run in a child process)."""
    import torch

    from mixedclf.models.loading import load_model
    from mixedclf.models.spec import resolve_model
    from mixedclf.models.tokenizer import tokenizer_json_and_pad_id
    from mixedclf.stages.inference import InferenceRunner
    from mixedclf.stages.preprocess import make_tokenizer, preprocess_texts, select_rows

    import numpy as np

    torch.set_num_threads(threads)
    texts = unique_texts(rows)
    spec = resolve_model(str(model_dir))
    tokenizer_json, pad_id = tokenizer_json_and_pad_id(spec)
    tokenizer = make_tokenizer(tokenizer_json, spec.max_length)
    preprocess_texts(texts[:256], tokenizer)  # warm-up
    wall, cpu = time.perf_counter(), time.thread_time()
    prep = preprocess_texts(texts, tokenizer)
    pre_wall, pre_cpu = time.perf_counter() - wall, time.thread_time() - cpu

    device = torch.device("cpu")
    timed = _TimedModel(load_model(spec, device, "fp32"))
    runner = InferenceRunner(timed, device, len(spec.labels), pad_id)
    chunks = [select_rows(prep, np.arange(i, min(i + chunk_rows, rows))) for i in range(0, rows, chunk_rows)]
    runner.logits(chunks[0], 64, 8192)  # warm-up (allocator, oneDNN primitives)
    timed.wall = timed.cpu = 0.0
    batches_before = runner.stats.batches
    wall, cpu = time.perf_counter(), time.thread_time()
    for chunk in chunks:
        runner.logits(chunk, 64, 8192)
    loop_wall, loop_cpu = time.perf_counter() - wall, time.thread_time() - cpu
    batches = runner.stats.batches - batches_before
    return {
        "preprocess_rows_per_s_cpu": rows / pre_cpu, "preprocess_rows_per_s_wall": rows / pre_wall,
        "batches": batches, "torch_threads": threads,
        "outside_ms_per_batch_cpu": 1e3 * (loop_cpu - timed.cpu) / batches,
        "outside_ms_per_batch_wall": 1e3 * (loop_wall - timed.wall) / batches,
        "forward_ms_per_batch_cpu": 1e3 * timed.cpu / batches,
        "forward_ms_per_batch_wall": 1e3 * timed.wall / batches,
        "loop_rows_per_s_wall": rows / loop_wall,
    }


def measure_pipeline(python_path: Path, model_dir: Path, source: Path, work: Path) -> dict:
    """`mixedclf classify` in a fresh process: rows/s over the process's wall time and after start-up."""
    out, report_path = work / "out.parquet", work / "report.json"
    env = {**os.environ, "PYTHONPATH": str(python_path), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "mixedclf", "classify", str(source), "-o", str(out), "--model", str(model_dir),
           "--cpu-workers", "1", "--precision", "fp32", "--device", "cpu", "--report", str(report_path), "-q"]
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    report = json.loads(report_path.read_text())
    rows = report["rows_out"]
    stages = {s["name"]: s for s in report["measurements"]["stages"]}
    extra = report.get("extra", {})
    startup = extra.get("startup_s") or 0.0
    return {
        "rows_per_s": rows / wall,
        "rows_per_s_in_run": rows / report["measurements"]["wall_s"],
        "rows_per_s_after_startup": rows / (report["measurements"]["wall_s"] - startup),
        "process_wall_s": wall, "startup_s": startup,
        "inference_busy_s": stages["inference"]["busy_s"],
        "preprocess_busy_s": stages["preprocess"]["busy_s"],
        "micro_batches": extra.get("micro_batches"),
        "host_overhead_ms_per_batch": extra.get("host_overhead_ms_per_batch"),
    }


def checkout(ref: str, into: Path) -> Path:
    """The package as it was at git ref (for an interleaved before/after run)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "mixedclf"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def child_loop(python_path: Path, model_dir: Path, rows: int, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{python_path}{os.pathsep}{ROOT / 'benchmarks'}", "HF_HUB_OFFLINE": "1"}
    code = ("import json, sys, host_ceiling as h; from pathlib import Path; "
            f"print(json.dumps(h.measure_loop(Path({str(model_dir)!r}), {rows}, {threads})))")
    done = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the loop measurement")
    parser.add_argument("--baseline", help="git ref to compare with, interleaved (e.g. main)")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--json", type=Path, default=OUT / "host_ceiling.json")
    args = parser.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="mixedclf-host-"))
    model_dir = build_null_model(OUT / "null-minilm")
    source = write_rows(OUT / f"unique-{args.rows}.jsonl", unique_texts(args.rows))
    variants = {"after": ROOT}
    if args.baseline:
        variants = {"before": checkout(args.baseline, work / "before"), **variants}
    print(f"machine: {machine()}\ncpu: {cpu_description()}\nload average: {os.getloadavg()}", flush=True)
    results: dict = {"machine": machine(), "cpu": cpu_description(), "rows": args.rows,
                     "load_average_start": os.getloadavg(), "rounds": []}
    names = list(variants)
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]  # alternate who goes first
        round_result = {}
        for name in order:
            loop = child_loop(variants[name], model_dir, args.rows, args.threads)
            pipe = {} if args.skip_pipeline else measure_pipeline(variants[name], model_dir, source, work)
            round_result[name] = {"loop": loop, "pipeline": pipe}
            print(f"round {r + 1} {name:6s} outside forward {loop['outside_ms_per_batch_cpu']:.3f} ms/batch cpu "
                  f"({loop['outside_ms_per_batch_wall']:.3f} wall), forward {loop['forward_ms_per_batch_cpu']:.3f} "
                  f"cpu, preprocess {loop['preprocess_rows_per_s_cpu']:,.0f} rows/s cpu"
                  + (f", pipeline {pipe['rows_per_s']:,.0f} rows/s ({pipe['rows_per_s_after_startup']:,.0f} after "
                     f"{pipe['startup_s']:.2f} s start-up)" if pipe else ""), flush=True)
        results["rounds"].append(round_result)
    results["load_average_end"] = os.getloadavg()

    def median(name: str, part: str, key: str) -> float:
        return statistics.median(r[name][part][key] for r in results["rounds"])

    keys = [("loop", "outside_ms_per_batch_cpu"), ("loop", "outside_ms_per_batch_wall"),
            ("loop", "forward_ms_per_batch_cpu"), ("loop", "preprocess_rows_per_s_cpu")]
    if not args.skip_pipeline:
        keys += [("pipeline", "rows_per_s"), ("pipeline", "rows_per_s_after_startup"), ("pipeline", "startup_s")]
    print(f"\nmedians of {args.rounds} rounds (load average now {os.getloadavg()}):")
    print(f"{'measure':42s}" + "".join(f"{n:>12s}" for n in names))
    results["medians"] = {}
    for part, key in keys:
        values = [median(n, part, key) for n in names]
        results["medians"][key] = dict(zip(names, values))
        print(f"{key:42s}" + "".join(f"{v:12.3f}" if v < 100 else f"{v:12,.0f}" for v in values))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
