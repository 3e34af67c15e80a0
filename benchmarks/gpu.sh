#!/usr/bin/env bash
# The GPU check of issue 4, for an H200-class machine with 16 cores; finishes well within 5 minutes.
# Records texts/s of the four methods, GPU busy fraction (inference busy / GPU held) and whether the CPU pool
# keeps up (GPU utilization near 100% means the device never waited for preprocessing).
#   Here:   bash benchmarks/prepare_gpu_carry.sh      (once; builds .gpu-carry and .whl)
#   There:  bash benchmarks/gpu.sh                    (with .gpu-carry and .whl carried along)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/out}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
[ -d .gpu-carry/encoder ] && export MIXEDCLF_ENCODER_DIR=$PWD/.gpu-carry/encoder
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
# 15 workers (every core but the one feeding the GPU), 2 rounds; then 4 workers, 1 round, to see whether the
# pool keeps up with fewer. Timeouts keep the whole script under 5 minutes.
timeout 190 python3 benchmarks/throughput.py --n 60000 --device cuda --cpu-workers 15 --repeat 2 \
  --json "$OUT/throughput-cuda-w15.json" 2>&1 | grep -v -i warn | tee "$OUT/throughput-cuda-w15.txt" || echo "15-worker run stopped early"
timeout 80 python3 benchmarks/throughput.py --n 60000 --device cuda --cpu-workers 4 --repeat 1 --skip-pipeline \
  --json "$OUT/throughput-cuda-w4.json" 2>&1 | grep -v -i warn | tee "$OUT/throughput-cuda-w4.txt" || echo "4-worker run stopped early"
