#!/usr/bin/env bash
# Builds the wheel and runs it from a fresh virtual environment outside the checkout, the way a user installs it:
# it must carry everything it reads (configs, the default head). The core install (no torch) runs estimate and
# check, and classify says in one line which extra it needs; with [torch] added, classify runs.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
builder=${BUILDER:-$python}
torch_version=${TORCH_VERSION:-2.13.0}
torch_from=()
[ -n "${TORCH_INDEX:-}" ] && torch_from=(--index-url "$TORCH_INDEX")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The installed wheel must run the model itself: rows answered by the user's prediction cache would not show it.
export MIXEDCLF_NO_CACHE=1

"$builder" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$repo"
"$python" -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" "$work"/dist/mixedclf-*.whl

cd "$work"   # nothing of the checkout is importable from here
cli="$work/venv/bin/mixedclf"
"$work/venv/bin/python" -c "import importlib.util as u; assert u.find_spec('torch') is None, 'the core install pulled torch'"
"$cli" estimate --requests-per-day 10000 --report estimate.json | tee estimate.txt
grep -q '94.80' estimate.txt
"$cli" check estimate.json --baseline estimate.json
status=0
"$cli" classify "$repo/sample_data/reviews.jsonl" -o none.parquet -q 2> missing.txt || status=$?
[ "$status" = 2 ] && grep -q "pip install 'mixedclf\[" missing.txt && [ ! -e none.parquet ]

# With the default model's ONNX export in the wheel (make default-onnx), [onnx] alone classifies: no torch.
has_onnx="import sys, zipfile; sys.exit(not any(n.endswith('default_onnx/model.onnx') for n in zipfile.ZipFile(sys.argv[1]).namelist()))"
if "$python" -c "$has_onnx" "$work"/dist/mixedclf-*.whl; then
  "${pip[@]}" "$(ls "$work"/dist/mixedclf-*.whl)[onnx]"
  "$cli" classify "$repo/sample_data/reviews.jsonl" -o onnx.parquet --report onnx.json --quiet
  "$work/venv/bin/python" -c "import importlib.util as u, json, pyarrow.parquet as pq
assert u.find_spec('torch') is None, 'the [onnx] install pulled torch'
assert pq.read_table('onnx.parquet').num_rows == 300
assert json.load(open('onnx.json'))['settings']['backend'] == 'onnxruntime'"
  echo "without torch: $(du -sh "$work/venv" | cut -f1) installed"
fi

if ! command -v nvidia-smi >/dev/null 2>&1; then
  "${pip[@]}" "torch==$torch_version" "${torch_from[@]}"   # the CPU build on these machines; a bare requirement pulls a CUDA build
fi
wheel=$(ls "$work"/dist/mixedclf-*.whl)
"${pip[@]}" "$wheel[torch]"
"$cli" classify "$repo/sample_data/reviews.jsonl" -o labeled.parquet --report report.json --quiet
"$work/venv/bin/python" -c "import pyarrow.parquet as pq; n = pq.read_table('labeled.parquet').num_rows; assert n == 300, n"
"$cli" check report.json --baseline report.json
echo "wheel check: ok ($(ls "$work"/dist))"
