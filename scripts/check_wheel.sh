#!/usr/bin/env bash
# Builds the wheel and runs it from a fresh virtual environment outside the checkout, the way a user installs it:
# it must carry everything it reads (configs, the default head) and run estimate, classify and check.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
builder=${BUILDER:-$python}
torch_version=${TORCH_VERSION:-2.13.0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$builder" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$repo"
"$python" -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check)
if ! command -v nvidia-smi >/dev/null 2>&1; then
  "${pip[@]}" "torch==$torch_version"   # the CPU build on these machines; a bare requirement pulls a CUDA build
fi
"${pip[@]}" "$work"/dist/mixedclf-*.whl

cd "$work"   # nothing of the checkout is importable from here
cli="$work/venv/bin/mixedclf"
"$cli" estimate --requests-per-day 10000 | tee estimate.txt
grep -q '94.80' estimate.txt
"$cli" classify "$repo/sample_data/reviews.jsonl" -o labeled.parquet --report report.json --quiet
"$work/venv/bin/python" -c "import pyarrow.parquet as pq; n = pq.read_table('labeled.parquet').num_rows; assert n == 300, n"
"$cli" check report.json --baseline report.json
echo "wheel check: ok ($(ls "$work"/dist))"
