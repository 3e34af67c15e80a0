"""An ONNX export folder: a model that runs on onnxruntime alone, with neither torch nor transformers installed.

    model.onnx       the graph as `--backend onnxruntime` converts it (mixedclf.models.onnx_backend.convert)
    tokenizer.json   the fast tokenizer, as the CPU workers rebuild it (mixedclf.models.tokenizer)
    config.json      the encoder's config (read for the work counts: layers, hidden width)
    onnx.json        labels, token limit, pad id, precision, and the head.json of the model it came from

The default model's export is built by `make default-onnx` into mixedclf/assets/default_onnx (and so into the
wheel); a core install with onnxruntime then classifies with the default model (models.spec.resolve_model).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from mixedclf.models.spec import ONNX_CONFIG, ModelSpec

FORMAT = "mixedclf-onnx"


def export_folder(spec: ModelSpec, out_dir: Path, precision: str = "fp32") -> Path:
    """Write the export of `spec` into out_dir (replaced whole). Needs torch, transformers and onnx."""
    from mixedclf.models.onnx_backend import convert
    from mixedclf.models.tokenizer import tokenizer_json_and_pad_id

    if precision not in ("fp32", "int8"):
        raise ValueError(f"precision must be fp32 or int8, not {precision}")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        convert(spec, stage, precision)
        tokenizer_json, pad_id = tokenizer_json_and_pad_id(spec)
        (stage / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
        shutil.copyfile(spec.encoder_path / "config.json", stage / "config.json")
        meta = {"format": FORMAT, "version": 1, "name": spec.name, "labels": list(spec.labels),
                "max_length": spec.max_length, "pad_token_id": pad_id, "multi_label": spec.multi_label,
                "precision": precision, "head": spec.head_config}
        (stage / ONNX_CONFIG).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        for path in stage.iterdir():
            path.chmod(0o644)
        stage.chmod(0o755)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        stage.rename(out_dir)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out_dir
