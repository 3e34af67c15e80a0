"""The host ceiling: how fast the pipeline runs when the model costs (almost) nothing.

A near-null classifier (1 layer, hidden size 8, all-MiniLM-L6-v2's tokenizer and vocabulary) over unique
review-like rows. What is left is the host's own cost, which caps any accelerator:

- pipeline rows/s: `mixedclf classify` end to end on the rows (1 preprocessing worker, `--precision fp32`,
  `--torch-threads` as --threads: with a model this small a second intra-op thread only adds barrier waits);
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
import resource
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
    from datagen import generate_texts

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
    import numpy as np
    import torch

    from mixedclf.core.inference import InferenceRunner
    from mixedclf.core.preprocess import make_tokenizer, preprocess_texts, select_rows
    from mixedclf.models.backend import load_model
    from mixedclf.models.spec import resolve_model
    from mixedclf.models.tokenizer import tokenizer_json_and_pad_id

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
    timed = _TimedModel(load_model(spec, device, "fp32").module)
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


def measure_pipeline(python_path: Path, model_dir: Path, source: Path, work: Path, threads: int) -> dict:
    """`mixedclf classify` in a fresh process: rows/s over the process's wall time and after start-up."""
    out, report_path = work / "out.parquet", work / "report.json"
    env = {**os.environ, "PYTHONPATH": str(python_path), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "mixedclf", "classify", str(source), "-o", str(out), "--model", str(model_dir),
           "--cpu-workers", "1", "--torch-threads", str(threads), "--precision", "fp32", "--device", "cpu",
           "--report", str(report_path), "-q"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # cwd = the variant's tree: `python -m` puts the working folder first on sys.path
    subprocess.run(cmd, env=env, check=True, capture_output=True, cwd=python_path)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
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
        # CPU seconds of the process and its workers per 1,000 rows: what the rows cost whatever the load
        "cpu_ms_per_row": 1e3 * cpu / rows,
        "inference_busy_s": stages["inference"]["busy_s"],
        "preprocess_busy_s": stages["preprocess"]["busy_s"],
        "micro_batches": extra.get("micro_batches"),
        "host_overhead_ms_per_batch": extra.get("host_overhead_ms_per_batch"),
        "mixedclf_version": report.get("mixedclf_version"),
    }


def measure_levers(model_dir: Path, rows: int, rounds: int = 5) -> dict:
    """Each host-side lever on its own, on the calling thread's CPU clock, alternating A/B: µs per micro-batch."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification

    from mixedclf.core.batching import fill_padded, plan_micro_batches
    from mixedclf.core.preprocess import make_tokenizer, preprocess_texts
    from mixedclf.models.spec import resolve_model
    from mixedclf.models.tokenizer import tokenizer_json_and_pad_id

    torch.set_num_threads(1)
    spec = resolve_model(str(model_dir))
    tokenizer_json, pad_id = tokenizer_json_and_pad_id(spec)
    prep = preprocess_texts(unique_texts(min(rows, 16384)), make_tokenizer(tokenizer_json, spec.max_length))
    plan = plan_micro_batches(prep.lengths, 64, 8192)
    tokens, tokens64, offsets = prep.token_ids, prep.token_ids.astype(np.int64), prep.offsets
    flat = np.empty(3 * 64 * 512, dtype=np.int64)

    def gather_fresh(rows):  # fresh arrays per batch: a where-gather, then int64 casts
        lengths = prep.lengths[rows].astype(np.int64)
        columns = np.arange(max(int(lengths.max()), 1))
        mask = columns < lengths[:, None]
        positions = np.minimum(offsets[rows][:, None] + columns, tokens.size - 1)
        return np.where(mask, tokens[positions], pad_id).astype(np.int64), mask.astype(np.int64)

    def fill_reused(rows):
        width = max(int(prep.lengths[rows[0]]), 1)
        n = len(rows) * width
        ids, mask, scratch = (flat[i * 64 * 512 : i * 64 * 512 + n].reshape(len(rows), width) for i in range(3))
        fill_padded(tokens64, offsets, prep.lengths, rows, pad_id, ids, mask, scratch)
        return ids, mask

    def per_batch(fn, items) -> float:
        cpu = time.thread_time()
        for item in items:
            fn(item)
        return 1e6 * (time.thread_time() - cpu) / len(items)

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="sdpa").eval()
    eager = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="eager").eval()
    inputs = [tuple(map(torch.from_numpy, gather_fresh(rows))) for rows in plan[len(plan) // 2 :][:100]]

    def forward(m, **kw):
        return lambda x: m(input_ids=x[0], attention_mask=x[1], **kw)

    def with_mode_per_batch(x):
        with torch.inference_mode():
            model(input_ids=x[0], attention_mask=x[1])

    levers = {
        "padding: where-gather, fresh arrays": (gather_fresh, plan),
        "padding: fill_padded into reused buffers": (fill_reused, plan),
        "logits.float().cpu().numpy() on fp32": (lambda t: t.float().cpu().numpy(), [torch.zeros(64, 2)] * 2000),
        "logits.numpy() (dtype and device checked)": (
            lambda t: (t if t.dtype == torch.float32 else t.float()).numpy(), [torch.zeros(64, 2)] * 2000),
        "forward, inference_mode entered per batch": (with_mode_per_batch, inputs),
        "forward, inference_mode once (per chunk)": (forward(model), inputs),
        "forward, return_dict=False": (forward(model, return_dict=False), inputs),
        "forward, eager attention": (forward(eager), inputs),
    }
    samples: dict[str, list[float]] = {name: [] for name in levers}
    with torch.inference_mode():
        for _ in range(rounds):
            for name, (fn, items) in levers.items():
                if name == "forward, inference_mode entered per batch":
                    with torch.inference_mode(False):
                        samples[name].append(per_batch(fn, items))
                else:
                    samples[name].append(per_batch(fn, items))
    return {name: statistics.median(v) for name, v in samples.items()}


def checkout(ref: str, into: Path) -> Path:
    """The package as it was at git ref (for an interleaved before/after run)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "mixedclf"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def child_loop(python_path: Path, model_dir: Path, rows: int, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{python_path}{os.pathsep}{ROOT / 'benchmarks'}", "HF_HUB_OFFLINE": "1"}
    code = ("import json, sys, host_ceiling as h, mixedclf; from pathlib import Path; "
            f"print(json.dumps(h.measure_loop(Path({str(model_dir)!r}), {rows}, {threads}) | "
            "{'package': mixedclf.__file__}))")
    done = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True,
                          cwd=python_path)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if not result["package"].startswith(str(python_path)):
        raise SystemExit(f"measured {result['package']}, not the tree at {python_path}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (loop and pipeline)")
    parser.add_argument("--baseline", help="git ref to compare with, interleaved (e.g. main)")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--levers", action="store_true", help="also time each host-side lever on its own")
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
            pipe = {} if args.skip_pipeline else measure_pipeline(variants[name], model_dir, source, work, args.threads)
            round_result[name] = {"loop": loop, "pipeline": pipe}
            print(f"round {r + 1} {name:6s} outside forward {loop['outside_ms_per_batch_cpu']:.3f} ms/batch cpu "
                  f"({loop['outside_ms_per_batch_wall']:.3f} wall), forward {loop['forward_ms_per_batch_cpu']:.3f} "
                  f"cpu, preprocess {loop['preprocess_rows_per_s_cpu']:,.0f} rows/s cpu"
                  + (f", pipeline {pipe['rows_per_s']:,.0f} rows/s ({pipe['rows_per_s_after_startup']:,.0f} after "
                     f"{pipe['startup_s']:.2f} s start-up)" if pipe else ""), flush=True)
        results["rounds"].append(round_result)
    results["load_average_end"] = os.getloadavg()
    if args.levers:
        results["levers_us_per_batch_cpu"] = measure_levers(model_dir, args.rows)
        print("\nlevers, µs per micro-batch on the thread's CPU clock (median of 5 alternating rounds):")
        for name, value in results["levers_us_per_batch_cpu"].items():
            print(f"  {name:48s}{value:10.1f}")

    def median(name: str, part: str, key: str) -> float:
        return statistics.median(r[name][part][key] for r in results["rounds"])

    keys = [("loop", "outside_ms_per_batch_cpu"), ("loop", "outside_ms_per_batch_wall"),
            ("loop", "forward_ms_per_batch_cpu"), ("loop", "preprocess_rows_per_s_cpu")]
    if not args.skip_pipeline:
        keys += [("pipeline", "rows_per_s"), ("pipeline", "rows_per_s_after_startup"), ("pipeline", "startup_s"),
                 ("pipeline", "cpu_ms_per_row")]
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
