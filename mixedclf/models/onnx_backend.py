"""`--backend onnxruntime`: the model exported once to ONNX, fused by ONNX Runtime's transformer optimizer, and
for int8 quantized dynamically (int8 weights per output channel, activations per batch), then run by an ONNX
Runtime session on the CPU.

Chosen by measurement over CTranslate2 and torchao (benchmarks/backends.py, benchmarks/README.md): on the
default model ORT int8 ran 2.4-2.7x torch fp32 per CPU second at the same held-out accuracy, about as fast as
CTranslate2, and unlike CTranslate2 it runs any exported classifier head as is. torchao's int8 CPU path was
1.15x without torch.compile.

The conversion is cached per model content, backend settings and library versions (mixedclf.models.cache), so
classify, serve and Ray actors convert once per machine and then only open the file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from mixedclf.errors import ModelError
from mixedclf.models.spec import ModelSpec

EXTRA_HINT = "pip install 'mixedclf[onnx]'"
# Bump when the conversion below changes what it writes: old cache entries are then never read.
CONVERSION_VERSION = 1
# Encoder families the BERT optimizer fuses (attention, LayerNorm, GELU); others are run unfused.
_BERT_LIKE = {"bert", "roberta", "xlm-roberta", "camembert", "distilbert", "electra", "mpnet", "deberta-v2"}
# Kept in fp32 under int8: the classification head's few weights decide the label and cost nothing to run.
_HEAD_NODE_NAMES = ("classifier", "pooler", "pre_classifier", "out_proj")


def _require_ort():
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelError("onnxruntime is not installed (--backend onnxruntime and --precision int8 run on it)",
                         hint=EXTRA_HINT) from exc
    onnxruntime.set_default_logger_severity(3)  # errors only: its graph warnings are not the user's to act on
    return onnxruntime


def model_path(spec: ModelSpec, precision: str) -> Path:
    """The converted model for this spec and precision (fp32 or int8), converting it on first use; an ONNX
    export's own file."""
    ort = _require_ort()
    if spec.kind == "onnx":
        return spec.path / "model.onnx"
    from mixedclf.models.cache import cached_folder, content_hash

    key = f"{content_hash(spec)}-onnxruntime-{precision}-ort{ort.__version__}-v{CONVERSION_VERSION}"
    try:
        folder = cached_folder(key, lambda tmp: convert(spec, tmp, precision))
    except OSError as exc:
        raise ModelError(f"cannot write the converted model to the cache: {exc}",
                         hint="set MIXEDCLF_CACHE_DIR to a writable folder") from exc
    return folder / "model.onnx"


def _encoder_config(module):
    inner = getattr(module, "encoder", None) or getattr(module, "model", None)
    return inner.config


def convert(spec: ModelSpec, folder: Path, precision: str) -> None:
    """Export, optimize and (int8) quantize into folder/model.onnx. Needs torch, transformers and onnx."""
    import torch

    from mixedclf.models.loading import build_module

    module = build_module(spec, implementation="transformers").eval()
    config = _encoder_config(module)
    inner = getattr(module, "encoder", None) or module.model
    if hasattr(inner, "set_attn_implementation"):
        # The optimizer recognises the eager attention graph and fuses it into one Attention node.
        try:
            inner.set_attn_implementation("eager")
        except (ValueError, AttributeError):
            pass
    exported = folder / "exported.onnx"
    ids = torch.ones((2, 8), dtype=torch.int64)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (ids, torch.ones_like(ids)), str(exported), input_names=["input_ids", "attention_mask"],
            output_names=["logits"], opset_version=17, dynamo=False,
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                          "logits": {0: "batch"}},
        )
    optimized = folder / "optimized.onnx"
    if config.model_type in _BERT_LIKE:
        from onnxruntime.transformers.optimizer import optimize_model

        heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", 0)
        hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", 0)
        optimize_model(str(exported), model_type="bert", num_heads=int(heads), hidden_size=int(hidden),
                       opt_level=1).save_model_to_file(str(optimized))
        exported.unlink()
    else:
        exported.rename(optimized)
    if precision == "int8":
        _quantize(optimized, folder / "model.onnx")
        optimized.unlink()
    else:
        optimized.rename(folder / "model.onnx")


def _quantize(source: Path, target: Path) -> None:
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    head = [n.name for n in onnx.load(str(source), load_external_data=False).graph.node
            if any(part in n.name for part in _HEAD_NODE_NAMES)]
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # "run pre-processing" advice
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                     nodes_to_exclude=head, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


class OrtSession:
    """An ONNX Runtime session as the model: (input_ids, attention_mask) -> logits, all numpy arrays.

    `numpy_io` tells the device stage (core.inference) to call it on its host buffers as they are, so a run on
    this backend never imports torch. `threads` is its intra-op thread count (the report's `torch_threads`).
    """

    numpy_io = True
    backend = "onnxruntime"

    def __init__(self, path: Path, threads: int):
        ort = _require_ort()
        self.threads = max(1, threads)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # Idle threads spinning between micro-batches would take the cores the preprocessing workers need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise ModelError(f"onnxruntime cannot open {path}: {exc}",
                             hint=f"delete {path.parent} to convert again") from exc
        self.inputs = {i.name for i in self.session.get_inputs()}

    def __call__(self, input_ids, attention_mask):
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        return self.session.run(["logits"], {k: v for k, v in feed.items() if k in self.inputs})[0]


def load_ort_model(spec: ModelSpec, precision: str, threads: int) -> OrtSession:
    """The converted model (converted now if this is its first use) opened in a session."""
    return OrtSession(model_path(spec, precision), threads)
