"""The int8 candidates compared forward-only, on CPU time, on the default model's held-out set.

What chose `--backend onnxruntime` for int8. Every candidate runs the same length-sorted batches of 64 with ONE
thread, and is timed on the process's CPU clock (time.process_time), which a shared machine disturbs far less
than the wall clock; rounds interleave the candidates and each keeps its median. Accuracy, labels equal to torch
fp32 and max |Δp| are over all held-out rows.

    python benchmarks/backends.py [--repeat 3] [--every 5]

Candidates: torch fp32 / bf16 and torch.ao dynamic int8 (deprecated: the reference it replaces); onnxruntime fp32
/ int8 (as mixedclf converts them); CTranslate2 int8 and torchao int8 when installed (`pip install ctranslate2
torchao`; neither is a dependency: torchao's import from transformers prints load warnings on a CPU build).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from common import print_machine
from precision import held_out_rows


def batches_of(spec, texts, size=64):
    from mixedclf.core.preprocess import make_tokenizer, preprocess_texts
    from mixedclf.models.tokenizer import tokenizer_json_and_pad_id

    tokenizer_json, pad = tokenizer_json_and_pad_id(spec)
    prep = preprocess_texts(texts, make_tokenizer(tokenizer_json, spec.max_length))
    order = np.argsort(prep.lengths, kind="stable")
    out = []
    for i in range(0, len(order), size):
        rows = order[i:i + size]
        lengths = prep.lengths[rows]
        ids = np.full((len(rows), int(lengths.max())), pad, np.int64)
        mask = np.zeros_like(ids)
        for j, r in enumerate(rows):
            ids[j, :lengths[j]] = prep.token_ids[prep.offsets[r]:prep.offsets[r] + lengths[j]]
            mask[j, :lengths[j]] = 1
        out.append((rows, ids, mask))
    return out


def candidates(spec):
    import torch

    from mixedclf.models.backend import load_model
    from mixedclf.models.loading import build_module

    def torch_fn(module):
        def run(ids, mask):
            with torch.inference_mode():
                return module(torch.from_numpy(ids), torch.from_numpy(mask)).float().numpy()
        return run

    cpu = torch.device("cpu")
    fp32 = build_module(spec).eval()
    found = {"torch fp32": torch_fn(fp32), "torch bf16": torch_fn(copy.deepcopy(fp32).to(torch.bfloat16))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        found["torch.ao int8 (deprecated)"] = torch_fn(quantize_dynamic(copy.deepcopy(fp32), {torch.nn.Linear},
                                                                         dtype=torch.qint8))
    for precision in ("fp32", "int8"):  # the session maps numpy ids and mask to numpy logits itself
        found[f"onnxruntime {precision}"] = load_model(spec, cpu, precision, "onnxruntime").module
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        module = copy.deepcopy(fp32)
        quantize_(module, Int8DynamicActivationInt8WeightConfig())
        found["torchao int8"] = torch_fn(module)
    except ImportError:
        print("torchao not installed: skipped")
    try:
        found["ctranslate2 int8"] = ctranslate2_fn(spec, fp32)
    except ImportError:
        print("ctranslate2 not installed: skipped")
    return found


def ctranslate2_fn(spec, fp32):
    """CTranslate2 runs the encoder (overlay included); mean pooling and the head run in numpy."""
    import shutil

    import ctranslate2

    if spec.kind != "head":
        raise SystemExit("the CTranslate2 candidate is wired for the default model's encoder + pooled head only")
    work = Path(tempfile.mkdtemp(prefix="mixedclf-ct2-"))
    fp32.encoder.save_pretrained(work / "encoder")
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        if (spec.encoder_path / name).exists():
            shutil.copy(spec.encoder_path / name, work / "encoder" / name)
    ctranslate2.converters.TransformersConverter(str(work / "encoder")).convert(str(work / "ct2"), quantization="int8")
    encoder = ctranslate2.Encoder(str(work / "ct2"), device="cpu", intra_threads=1, inter_threads=1)
    weight = fp32.classifier.weight.detach().numpy()
    bias = fp32.classifier.bias.detach().numpy()

    def run(ids, mask):
        lengths = mask.sum(1)
        hidden = np.array(encoder.forward_batch([r[:n].tolist() for r, n in zip(ids, lengths)]).last_hidden_state)
        m = mask[:, :hidden.shape[1], None].astype(np.float32)
        return ((hidden * m).sum(1) / m.sum(1)) @ weight.T + bias
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--every", type=int, default=5, help="time every Nth batch (accuracy uses all)")
    args = parser.parse_args()
    import torch

    from mixedclf.models.spec import resolve_model

    torch.set_num_threads(1)
    print_machine()
    texts, labels = held_out_rows()
    spec = resolve_model("default")
    batches = batches_of(spec, texts)
    timed = batches[::args.every]
    found = candidates(spec)
    outputs, seconds = {}, {name: [] for name in found}
    for name, run in found.items():
        out = np.empty((len(texts), len(spec.labels)), np.float32)
        for rows, ids, mask in batches:
            out[rows] = run(ids, mask)
        outputs[name] = out
    for _ in range(args.repeat):
        for name, run in found.items():
            start = time.process_time()
            for _, ids, mask in timed:
                run(ids, mask)
            seconds[name].append(time.process_time() - start)
    truth = np.array([spec.labels.index(label) for label in labels])
    reference = outputs["torch fp32"]
    p_ref = torch.softmax(torch.from_numpy(reference), -1).numpy()
    base = statistics.median(seconds["torch fp32"])
    print(f"{len(texts)} held-out texts; {sum(len(r) for r, _, _ in timed)} timed per round, 1 thread, CPU clock")
    print(f"{'candidate':28s} {'x torch fp32':>12s} {'accuracy':>8s} {'labels equal':>12s} {'max |Δp|':>8s}")
    for name, out in outputs.items():
        p = torch.softmax(torch.from_numpy(out), -1).numpy()
        print(f"{name:28s} {base / statistics.median(seconds[name]):11.2f}x {(out.argmax(1) == truth).mean():8.2%} "
              f"{(out.argmax(1) == reference.argmax(1)).mean():12.1%} {np.abs(p - p_ref).max():8.3f}")


if __name__ == "__main__":
    sys.exit(main())
