"""Builds mixedclf/assets/default_onnx: the default model exported to ONNX (fp32), so that a core install with
onnxruntime (`pip install 'mixedclf[onnx]'`) classifies with the default model without torch. Run by
`make default-onnx` (and so before the wheel is built); needs the [torch] and [onnx] extras."""

from __future__ import annotations

import sys

from mixedclf.models.onnx_export import export_folder
from mixedclf.models.spec import DEFAULT_ONNX_DIR, resolve_model


def main() -> None:
    precision = sys.argv[1] if len(sys.argv) > 1 else "fp32"
    spec = resolve_model("default")
    if spec.kind == "onnx":
        raise SystemExit("the default model resolved to the ONNX export itself: install mixedclf[torch] first")
    folder = export_folder(spec, DEFAULT_ONNX_DIR, precision)
    size = sum(p.stat().st_size for p in folder.iterdir())
    print(f"wrote {folder} ({size / 1e6:.1f} MB, {precision})")


if __name__ == "__main__":
    main()
