"""Shared by the benchmarks: texts to classify, and an HF classifier folder built from the default encoder."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The benchmarks measure the device's work: rows answered by the prediction cache (on by default) would skip it on
# every repeat. benchmarks/cache.py turns it on where it measures the cache itself.
os.environ.setdefault("MIXEDCLF_NO_CACHE", "1")

ROOT = Path(__file__).resolve().parents[1]


def load_texts(source: str, n: int) -> list[str]:
    """'datagen' (synthetic reviews), 'rotten' (the training-data cache), or a .jsonl/.parquet/.csv path."""
    if source == "datagen":
        from datagen import generate_texts

        return list(generate_texts(n, seed=7))
    if source == "rotten":
        source = str(ROOT / ".cache" / "mixedclf" / "rotten_tomatoes.parquet")
    path = Path(source)
    if path.suffix == ".jsonl":
        texts = [json.loads(line)["text"] for line in path.open(encoding="utf-8")]
    else:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        table = pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path)
        texts = table.column("text").to_pylist()
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    return (texts * (n // max(len(texts), 1) + 1))[:n]


def hf_classifier_from_default_encoder(folder: Path) -> Path:
    """all-MiniLM-L6-v2 as a transformers sequence classifier (2 labels), so transformers' own pipeline and
    mixedclf run the very same network. Its head is untrained: this folder is for timing, not for labels."""
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from mixedclf.models.spec import packaged_encoder_dir

    encoder = packaged_encoder_dir()
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(
        encoder, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1}
    )
    model.save_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    tokenizer.model_max_length = 256  # as sentence-transformers runs this encoder
    tokenizer.save_pretrained(folder)
    return folder


# The CPU features that decide which precision and which int8 kernels are fast (see docs/default-model.md).
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8",
               "avx_vnni", "asimd", "sve")


def cpu_model_and_flags() -> tuple[str, list[str]]:
    """The CPU model name and which of SPEED_FLAGS it has, from /proc/cpuinfo (platform names elsewhere)."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key = line.split(":", 1)[0].strip()
            if key == "model name" and cpu in (platform.processor(), platform.machine()):
                cpu = line.split(":", 1)[1].strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return cpu, [f for f in SPEED_FLAGS if f in flags]


def machine() -> str:
    """One line for every benchmark's output: cores, CPU model, its speed flags, GPU, torch, load."""
    import torch

    cpu, flags = cpu_model_and_flags()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (f"{os.cpu_count()} cores ({cpu}; flags: {' '.join(flags) or 'none of ' + '/'.join(SPEED_FLAGS[:5])}), "
            f"{gpu}, torch {torch.__version__}{load}")


def print_machine() -> str:
    """Print the machine line (every benchmark calls this first) and return it for the JSON results."""
    line = machine()
    print(f"machine: {line}", flush=True)
    return line


TINY_WORDS = [
    "good", "great", "excellent", "love", "wonderful", "perfect", "happy", "fine", "best", "amazing", "bad", "awful",
    "terrible", "hate", "broken", "poor", "worst", "boring", "slow", "refund", "the", "a", "it", "was", "is", "and",
    "but", "not", "very", "really", "phone", "food", "movie", "room", "app", "service", "staff",
]


def tiny_classifier(folder: Path, shape: str = "tiny") -> Path:
    """A randomly initialised 2-layer BERT, max length 64, with a real fast tokenizer; its labels mean nothing.

    shape "tiny": the tests' model (tests/conftest.py build_tiny_classifier, same vocabulary, shape and seed), hidden
    size 32: its device time per row is a small fraction of its host time, so runs of a million rows fit on a small
    CPU. "bert-tiny": the shape of the smallest published BERT (google/bert_uncased_L-2_H-128_A-2: hidden 128, 2
    heads, intermediate 512), the least a real classifier computes per token; how long a forward pass takes does
    not depend on the weights' values."""
    hidden, heads, intermediate = {"tiny": (32, 2, 37), "bert-tiny": (128, 2, 512)}[shape]
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = specials + sorted(set(TINY_WORDS)) + list("abcdefghijklmnopqrstuvwxyz")
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(str(folder / "vocab.txt"), do_lower_case=True, model_max_length=64).save_pretrained(folder)
    torch.manual_seed(0)
    labels = ("NEGATIVE", "POSITIVE")
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=heads,
                        intermediate_size=intermediate, max_position_embeddings=64, num_labels=len(labels),
                        id2label=dict(enumerate(labels)), label2id={name: i for i, name in enumerate(labels)})
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    return folder
