"""What --precision means on each device, and that int8 stays a CPU-only, close approximation."""

import numpy as np
import pytest
import torch
from torch import nn

from mixedclf.core.inference import InferenceRunner
from mixedclf.core.preprocess import make_tokenizer, preprocess_texts
from mixedclf.errors import ModelError
from mixedclf.models import loading
from mixedclf.models.loading import default_dtype, load_model, precision_name
from mixedclf.models.spec import resolve_model
from mixedclf.models.tokenizer import tokenizer_json_and_pad_id

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("native_bf16, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_is_bf16_only_on_a_cpu_that_computes_it(monkeypatch, native_bf16, expected):
    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: native_bf16)
    assert precision_name(CPU, "auto") == expected
    assert default_dtype(CUDA, "auto") == torch.float16  # whatever the CPU can do
    assert precision_name(CPU, "fp32") == "fp32" and precision_name(CPU, "int8") == "int8"


def test_int8_is_refused_off_the_cpu(tiny_model):
    with pytest.raises(ModelError, match="CPU only"):
        load_model(resolve_model(str(tiny_model)), torch.device("meta"), "int8")


def test_int8_quantizes_every_linear_and_stays_close_to_fp32(tiny_model):
    spec = resolve_model(str(tiny_model))
    tokenizer_json, pad_id = tokenizer_json_and_pad_id(spec)
    batch = preprocess_texts(["good food", "bad bad service", "it was fine, nothing more"],
                             make_tokenizer(tokenizer_json, spec.max_length))
    logits = {}
    for precision in ("fp32", "int8"):
        module = load_model(spec, CPU, precision)
        if precision == "int8":
            assert not any(type(m) is nn.Linear for m in module.modules())  # all replaced by quantized ones
        logits[precision] = InferenceRunner(module, CPU, len(spec.labels), pad_id).logits(batch, 8, 1024)
    assert not np.array_equal(logits["int8"], logits["fp32"])
    assert np.allclose(logits["int8"], logits["fp32"], atol=0.05)
