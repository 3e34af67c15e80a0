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
for workers in 15 4; do
  timeout 200 python3 benchmarks/throughput.py --n 60000 --device cuda --cpu-workers "$workers" \
    --json "$OUT/throughput-cuda-w$workers.json" 2>&1 | grep -v -i warn | tee "$OUT/throughput-cuda-w$workers.txt"
done
