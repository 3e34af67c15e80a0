#!/usr/bin/env bash
# The GPU check (issues 4 and 13), for an H200-class machine with 16 cores; finishes in about 5 minutes.
# `mixedclf classify` on the default model, 15 CPU workers (every core but the one feeding the GPU), and records
# per run: texts/s, GPU busy share (GPU time inside forward passes, timed by CUDA events, over the run's wall),
# start-up (process start to first micro-batch on the device), and nvidia-smi's utilization sampled meanwhile.
# Then the same with the CPU-sized micro-batches (64 rows / 8,192 tokens) to see what the GPU-sized defaults
# buy, with 4 workers to see whether a smaller pool keeps up, and the near-null model (host ceiling on a GPU).
#   Here:   bash benchmarks/prepare_gpu_carry.sh      (once; builds .gpu-carry and .whl)
#   There:  bash benchmarks/gpu.sh                    (carry .gpu-carry and .whl; results under $OUT)
# Per-run time limits keep the whole script near 5 minutes even if a run hangs.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/out}
ROWS=${ROWS:-300000}
WORKERS=${WORKERS:-15}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu ROWS=2000 WORKERS=1: a smoke test of this script on a machine without a GPU
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
[ -d .gpu-carry/encoder ] && export MIXEDCLF_ENCODER_DIR=$PWD/.gpu-carry/encoder
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  lscpu | grep -E '^(Model name|CPU\(s\)|Flags):'
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
} 2>&1 | tee "$OUT/gpu-machine.txt"
INPUT=/tmp/mixedclf-gpu-$ROWS.jsonl
[ -f "$INPUT" ] || timeout 60 python3 benchmarks/datagen.py "$INPUT" --rows "$ROWS" --seed 5

# run NAME TIMEOUT_S classify-options...: one classify run, its report summarised on one line
run() {
  local name=$1 limit=$2
  shift 2
  nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 200 > "$OUT/gpu-$name.smi" 2>/dev/null &
  local smi=$!
  local start end
  start=$(date +%s.%N)
  timeout "$limit" python3 -m mixedclf classify "$INPUT" -o "/tmp/mixedclf-gpu-$name.parquet" --device "$DEVICE" \
    --report "$OUT/gpu-$name.json" -q "$@" > "$OUT/gpu-$name.log" 2>&1
  local rc=$?
  end=$(date +%s.%N)
  kill "$smi" 2>/dev/null; wait "$smi" 2>/dev/null
  if [ $rc -ne 0 ]; then echo "$name: stopped (exit $rc), see $OUT/gpu-$name.log"; tail -3 "$OUT/gpu-$name.log"; return; fi
  python3 - "$name" "$OUT/gpu-$name.json" "$OUT/gpu-$name.smi" "$start" "$end" <<'PY' | tee -a "$OUT/gpu-summary.txt"
import json, statistics, sys
name, report, smi, start, end = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3], *map(float, sys.argv[4:])
m, x, s = report["measurements"], report["extra"], report["settings"]
util = [float(v) for v in open(smi).read().split() if v.replace(".", "").isdigit()]
busy = x.get("device_busy_s") or 0.0
print(f"{name}: {report['rows_out']:,} texts in {end - start:.1f} s process wall = {report['rows_out'] / (end - start):,.0f} "
      f"texts/s ({report['rows_out'] / m['wall_s']:,.0f} in the run's own wall); start-up {m.get('cold_start_s') or 0:.2f} s (process start to first micro-batch); "
      f"GPU busy share {busy / m['wall_s']:.0%} of the run ({busy:.1f} s in forwards by CUDA events; "
      f"busy / GPU held {report['cost']['gpu_utilization']:.0%}); nvidia-smi utilization median "
      f"{statistics.median(util) if util else float('nan'):.0f}%; {s['cpu_workers']} workers, {s['precision']}, "
      f"batches {s['batch_size']} rows / {s['max_batch_tokens']} tokens, {x['micro_batches']} micro-batches, "
      f"host overhead {x.get('host_overhead_ms_per_batch') or 0:.3f} ms per micro-batch")
PY
}

: > "$OUT/gpu-summary.txt"
run "default-w$WORKERS-a" 60 --cpu-workers "$WORKERS"
run "default-w$WORKERS-b" 60 --cpu-workers "$WORKERS"
run "default-w$WORKERS-cpu-sized-batches" 60 --cpu-workers "$WORKERS" --batch-size 64 --max-batch-tokens 8192
run default-w4 45 --cpu-workers 4
if [ -d .gpu-carry/null-minilm ]; then
  run "null-model-w$WORKERS" 40 --cpu-workers "$WORKERS" --model "$PWD/.gpu-carry/null-minilm"
fi
echo "summary in $OUT/gpu-summary.txt"
