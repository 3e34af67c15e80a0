"""The native BERT (mixedclf.models.bert) computes what transformers computes, is used only where it can, and
keeps transformers out of a run's imports."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import build_tiny_classifier

from mixedclf.errors import ModelError
from mixedclf.models import bert
from mixedclf.models.loading import build_module
from mixedclf.models.spec import resolve_model


def _padded_batch(rows: int, width: int, vocab: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (rows, width), generator=g)
    mask = torch.ones_like(ids)
    for i in range(rows):
        real = max(1, width - (i * 3) % width)
        ids[i, real:], mask[i, real:] = 0, 0
    return ids, mask


def _logits(module, ids, mask, dtype=torch.float32):
    with torch.inference_mode():
        return module.to(dtype)(ids, mask).float()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_default_model_native_equals_transformers(dtype):
    spec = resolve_model("default")
    native, reference = build_module(spec), build_module(spec, implementation="transformers")
    assert isinstance(native.encoder, bert.BertModel) and not isinstance(reference.encoder, bert.BertModel)
    ids, mask = _padded_batch(12, 33, 30000)
    torch.testing.assert_close(_logits(native, ids, mask, dtype), _logits(reference, ids, mask, dtype),
                               atol=1e-5 if dtype == torch.float32 else 1e-2, rtol=0)
    unpadded = mask[:, :1].expand_as(mask[:, :4]).contiguous()  # every row real: no mask in SDPA
    torch.testing.assert_close(_logits(native, ids[:, :4], unpadded, dtype),
                               _logits(reference, ids[:, :4], unpadded, dtype),
                               atol=1e-5 if dtype == torch.float32 else 1e-2, rtol=0)


@pytest.mark.parametrize("layers,labels", [(1, ("a", "b", "c")), (3, ("NEG", "POS"))])
def test_bert_classifiers_native_equal_transformers(tmp_path, layers, labels):
    folder = build_tiny_classifier(tmp_path / "m", labels=labels, seed=layers, layers=layers)
    spec = resolve_model(folder)
    native, reference = build_module(spec), build_module(spec, implementation="transformers")
    assert isinstance(native, bert.BertForSequenceClassification)
    ids, mask = _padded_batch(9, 17, 40, seed=layers)
    torch.testing.assert_close(_logits(native, ids, mask), _logits(reference, ids, mask), atol=1e-5, rtol=0)


def _edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("changes", [
    {"position_embedding_type": "relative_key"},
    {"hidden_act": "gelu_new"},
    {"architectures": ["BertForTokenClassification"]},
    {"model_type": "roberta"},
    {"is_decoder": True},
])
def test_configs_it_does_not_model_go_to_transformers(tmp_path, changes):
    folder = build_tiny_classifier(tmp_path / "m")
    assert bert.native_bert_config(folder, classifier=True) is not None
    _edit_config(folder, **changes)
    assert bert.native_bert_config(folder, classifier=True) is None


def test_a_checkpoint_missing_weights_is_refused_not_filled_at_random(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = build_tiny_classifier(tmp_path / "m")
    state = load_file(str(folder / "model.safetensors"))
    del state["classifier.weight"]
    save_file(state, str(folder / "model.safetensors"))
    config = bert.native_bert_config(folder, classifier=True)
    with pytest.raises(Exception, match="lacks weights"):
        bert.load_native(folder, config, 2)
    for implementation in ("auto", "transformers"):  # native declines it; transformers would draw it at random
        with pytest.raises(ModelError, match="lacks weights for classifier.weight"):
            build_module(resolve_model(folder), implementation=implementation)


def test_pytorch_bin_with_old_layernorm_names_loads(tmp_path):
    from safetensors.torch import load_file

    folder = build_tiny_classifier(tmp_path / "m")
    reference = build_module(resolve_model(folder))
    state = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
             for k, v in load_file(str(folder / "model.safetensors")).items()}
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    native = build_module(resolve_model(folder))
    assert isinstance(native, bert.BertForSequenceClassification)
    ids, mask = _padded_batch(4, 9, 40)
    torch.testing.assert_close(_logits(native, ids, mask), _logits(reference, ids, mask), atol=0, rtol=0)


def test_loading_the_default_model_imports_no_transformers(tmp_path):
    code = ("import sys\nfrom mixedclf.models.spec import resolve_model\n"
            "from mixedclf.models.backend import load_model\nfrom mixedclf.models.device import resolve_device\n"
            "load_model(resolve_model('default'), resolve_device('cpu'), 'fp32')\n"
            "print('transformers' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "False"


def test_head_overlay_over_a_copied_encoder_runs_natively(tmp_path):
    spec = resolve_model("default")
    head = tmp_path / "head"
    shutil.copytree(spec.path, head)
    shutil.copytree(spec.encoder_path, head / "enc")
    config = json.loads((head / "head.json").read_text())
    (head / "head.json").write_text(json.dumps({**config, "encoder": "enc"}))
    module = build_module(resolve_model(head))
    assert isinstance(module.encoder, bert.BertModel)
    ids, mask = _padded_batch(3, 8, 30000)
    torch.testing.assert_close(_logits(module, ids, mask), _logits(build_module(spec), ids, mask), atol=0, rtol=0)


def test_labels_that_do_not_fit_the_weights_are_one_clear_error(tmp_path):
    folder = build_tiny_classifier(tmp_path / "m")
    _edit_config(folder, id2label={"0": "a", "1": "b", "2": "c"}, label2id={"a": 0, "b": 1, "c": 2})
    with pytest.raises(ModelError, match="weights do not fit its config.json"):
        build_module(resolve_model(folder))
