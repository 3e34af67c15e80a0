"""Shared by the benchmarks: texts to classify, and an HF classifier folder built from the default encoder."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} cores ({cpu}), {gpu}, torch {torch.__version__}"
