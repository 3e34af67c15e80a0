"""`mixedclf train`: fit a classification head (optionally with the top encoder layers) on a sentence encoder.

What is written is a head folder that `resolve_model` / `build_module` load:

    head.json          labels, encoder, max_length, normalize, plus how it was made and its held-out accuracy
    head.safetensors   classifier.weight / classifier.bias (float32) and, with train_top_layers > 0, the
                       fine-tuned top encoder layers as `encoder.encoder.layer.N.*` (float16 by default), an
                       overlay on the packaged encoder's weights

How it trains, cheaply on a CPU:
1. Texts are cleaned with the same `clean_text` inference uses, and tokenized with the encoder's fast
   tokenizer exactly as the preprocess stage does (truncation to max_length, no padding).
2. A held-out split is drawn, by group (e.g. movie) when groups are given, else by row; seeded.
3. One pass of the frozen encoder over every text, in length-sorted batches, caches the mean-pooled output
   (for the linear head) and, with train_top_layers=k, the hidden states that enter the top k layers.
4. Baseline: a linear head on the frozen pooled output, fit to convergence (L-BFGS, L2-regularized).
5. With k > 0: the top k layers plus the head (warm-started from the baseline) are fine-tuned with AdamW on
   the cached hidden states, so an epoch costs k/num_layers of an encoder pass forward and backward.
   The cache holds texts x tokens x hidden float32 values (~0.5 GB for 12,800 short reviews on MiniLM).
6. Held-out accuracy is measured on exactly the weights that are saved (after the float16 round trip).

Deterministic for a given seed, data and thread count (torch.set_num_threads(num_threads) while it runs).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from mixedclf.errors import InputError
from mixedclf.models.pooled import mean_pool
from mixedclf.models.spec import HEAD_CONFIG, HEAD_WEIGHTS, PACKAGED_ENCODER, _max_length, packaged_encoder_dir

HEAD_FORMAT = "mixedclf-head"
HEAD_FORMAT_VERSION = 1
SUPPORTED_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


class TrainingDataError(InputError, ValueError):
    """Labeled data or training options that cannot be used (a ValueError, and exit code 2 in the CLI)."""


# --------------------------------------------------------------------------------------------------- loading


class LabeledData(NamedTuple):
    texts: list[str]
    labels: list[str]
    groups: list[str] | None
    dropped: int  # rows skipped because their text (or label, or group) was missing or blank


def _read_table(path: Path, fmt: str, columns: list[str]):
    import pyarrow as pa

    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
            _check_columns(path, names, columns)
            return pq.read_table(path, columns=columns).to_pandas()
        if fmt == "csv":
            import pyarrow.csv as pacsv

            table = pacsv.read_csv(path)
        else:
            import pyarrow.json as pajson

            try:
                table = pajson.read_json(path)
            except pa.ArrowInvalid:
                import pandas as pd  # pyarrow's JSON reader refuses mixed types; pandas is lenient

                frame = pd.read_json(path, lines=True, dtype=False)
                _check_columns(path, list(frame.columns), columns)
                return frame[columns]
    except (OSError, pa.ArrowInvalid, ValueError) as exc:
        if isinstance(exc, TrainingDataError):
            raise
        raise TrainingDataError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc
    _check_columns(path, table.column_names, columns)
    return table.select(columns).to_pandas()


def _check_columns(path: Path, names: Sequence[str], wanted: list[str]) -> None:
    flags = {0: "--text-field", 1: "--label-field", 2: "--group-field"}
    for i, column in enumerate(wanted):
        if column not in names:
            shown = ", ".join(map(str, names[:20])) + (", ..." if len(names) > 20 else "")
            raise TrainingDataError(
                f"{path} has no column {column!r} (columns: {shown}); choose one with {flags.get(i, 'the field option')}"
            )


def load_labeled(
    path: str | Path, text_field: str = "text", label_field: str = "label", group_field: str | None = None
) -> LabeledData:
    """Read texts, labels (as strings) and optional groups from a .jsonl, .parquet or .csv file.

    Rows whose text or label is missing are skipped (counted in `dropped`); a missing column, an unknown
    extension or a file with fewer than two labels raises TrainingDataError (a ValueError) saying which.
    """
    path = Path(path)
    fmt = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise TrainingDataError(f"{path}: unknown extension {path.suffix!r}; use .jsonl, .parquet or .csv")
    if not path.is_file():
        raise TrainingDataError(f"{path} does not exist")
    columns = [text_field, label_field] + ([group_field] if group_field else [])
    if len(set(columns)) != len(columns):
        raise TrainingDataError(f"the text, label and group fields must differ (got {columns})")
    frame = _read_table(path, fmt, columns)
    keep = frame[text_field].notna() & frame[label_field].notna()
    keep &= frame[text_field].astype(str).str.strip().str.len() > 0  # CSV readers turn a missing text into ""
    if group_field:
        keep &= frame[group_field].notna()
    dropped = int((~keep).sum())
    frame = frame[keep]
    if frame.empty:
        raise TrainingDataError(f"{path} has no rows with both {text_field!r} and {label_field!r}")
    texts = [str(t) for t in frame[text_field].tolist()]
    labels = [_label_name(v) for v in frame[label_field].tolist()]
    groups = [str(g) for g in frame[group_field].tolist()] if group_field else None
    return LabeledData(texts, labels, groups, dropped)


def _label_name(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 1.0 from a CSV or a column with nulls is the label "1"
    return str(value)


def _sorted_labels(labels: Sequence[str]) -> list[str]:
    names = set(labels)
    if all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


# ----------------------------------------------------------------------------------------------- the result


@dataclass
class TrainResult:
    out_dir: Path
    labels: list[str]
    accuracy: float | None  # held-out accuracy of the saved model (None without a held-out split)
    baseline_accuracy: float | None  # frozen encoder + linear head, same split
    train_accuracy: float
    n_train: int
    n_test: int
    split: str  # "group", "random" or "none"
    n_test_groups: int | None
    train_top_layers: int
    trained_layers: list[int]
    epochs: int
    lr: float
    seed: int
    seconds: float
    encode_seconds: float
    files: dict[str, int] = field(default_factory=dict)  # file name -> bytes
    test_indices: list[int] = field(default_factory=list, repr=False)  # rows of the input, in order
    test_predictions: list[str] = field(default_factory=list, repr=False)  # label per test_indices row

    def to_dict(self) -> dict:
        data = asdict(self)
        data["out_dir"] = str(self.out_dir)
        return data


# ----------------------------------------------------------------------------------------------- splitting


def split_indices(
    n: int, groups: Sequence[str] | None, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, str, int | None]:
    """(train rows, test rows, split kind, test group count). Whole groups go to one side when groups are given."""
    if not 0.0 <= test_fraction < 1.0:
        raise TrainingDataError(f"test_fraction must be in [0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    if test_fraction == 0.0 or n < 2:
        return np.arange(n), np.arange(0), "none", None
    target = max(1, round(n * test_fraction))
    if groups is None:
        order = rng.permutation(n)
        test = np.sort(order[:target])
        train = np.sort(order[target:])
        return train, test, "random", None
    if len(groups) != n:
        raise TrainingDataError(f"{len(groups)} groups for {n} texts")
    names, inverse, counts = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True, return_counts=True)
    if len(names) < 2:
        raise TrainingDataError("a split by group needs at least two groups")
    chosen, total = [], 0
    for g in rng.permutation(len(names)):
        if total >= target or len(chosen) == len(names) - 1:
            break
        chosen.append(g)
        total += counts[g]
    is_test = np.isin(inverse, chosen)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test), "group", len(chosen)


# ------------------------------------------------------------------------------------------------ encoding


class _Passthrough(nn.Module):
    """Stands in for the embeddings so a copy of the encoder runs only its top layers on cached hidden states."""

    def forward(self, *args, inputs_embeds=None, **kwargs):
        return inputs_embeds


def _layer_list(encoder: nn.Module) -> tuple[str, nn.ModuleList]:
    """The encoder's list of transformer layers and its state-dict prefix (BERT-like: encoder.layer)."""
    for prefix in ("encoder.layer", "transformer.layer", "layers"):
        obj = encoder
        for part in prefix.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList):
            return prefix, obj
    raise TrainingDataError(
        f"{type(encoder).__name__} has no encoder.layer list; use --train-top-layers 0 with this encoder"
    )


def _top_stack(encoder: nn.Module, k: int) -> nn.Module:
    """A copy of the encoder that maps the hidden states entering its top k layers to its last hidden state."""
    if not (hasattr(encoder, "embeddings") and hasattr(encoder, "encoder")):
        raise TrainingDataError(
            f"{type(encoder).__name__} is not a BERT-like encoder; use --train-top-layers 0 with this encoder"
        )
    _, layers = _layer_list(encoder)
    saved_embeddings, saved_layers = encoder.embeddings, encoder.encoder.layer
    try:  # deep-copy without the parts to be replaced, so no copy of the lower layers is made
        encoder.embeddings, encoder.encoder.layer = _Passthrough(), nn.ModuleList()
        top = copy.deepcopy(encoder)
    finally:
        encoder.embeddings, encoder.encoder.layer = saved_embeddings, saved_layers
    top.encoder.layer = copy.deepcopy(nn.ModuleList(list(layers[len(layers) - k :])))
    return top


def _tokenize(encoder_dir: Path, texts: list[str], max_length: int) -> tuple[list[list[int]], int]:
    """Token ids per text and the pad id, made exactly as the preprocess stage makes them at inference
    (the fast tokenizer's JSON, truncation to max_length, no padding)."""
    from mixedclf.models.spec import ModelSpec
    from mixedclf.models.tokenizer import tokenizer_json_and_pad_id
    from mixedclf.stages.preprocess import make_tokenizer

    spec = ModelSpec("train", "head", encoder_dir, encoder_dir, (), max_length)
    tokenizer_json, pad_id = tokenizer_json_and_pad_id(spec)
    tokenizer = make_tokenizer(tokenizer_json, max_length)
    return [e.ids for e in tokenizer.encode_batch(texts)], pad_id


def _pad(rows: list[torch.Tensor], value: float = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack variable-length rows ([len] ids or [len, hidden] states) with padding, plus the attention mask."""
    longest = max(r.shape[0] for r in rows)
    out = rows[0].new_full((len(rows), longest, *rows[0].shape[1:]), value)
    mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : r.shape[0]] = r
        mask[i, : r.shape[0]] = 1
    return out, mask


@torch.no_grad()  # not inference_mode: the cached tensors later feed autograd
def _encode(
    encoder: nn.Module,
    ids: list[list[int]],
    k: int,
    batch_size: int,
    log: Callable[[str], None] | None,
    pad_id: int = 0,
) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """Frozen pass in length-sorted batches: pooled last hidden states, and the states entering the top k layers."""
    n_layers = len(_layer_list(encoder)[1]) if k else 0
    pooled = torch.empty((len(ids), encoder.config.hidden_size))
    cached: list[torch.Tensor | None] | None = [None] * len(ids) if k else None
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    started, shown = time.perf_counter(), 0.0
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        input_ids, mask = _pad([torch.tensor(ids[i], dtype=torch.long) for i in rows], pad_id)
        out = encoder(input_ids=input_ids, attention_mask=mask, output_hidden_states=bool(k))
        pooled[rows] = mean_pool(out.last_hidden_state, mask)
        if k:
            states = out.hidden_states[n_layers - k]
            for j, i in enumerate(rows):
                cached[i] = states[j, : len(ids[i])].clone()
        now = time.perf_counter()
        if log and now - shown > 15:
            shown = now
            log(f"encoded {start + len(rows)}/{len(ids)} texts in {now - started:.0f}s")
    return pooled, cached


# ------------------------------------------------------------------------------------------------ fitting


class _StandardizedHead(nn.Module):
    """A linear head over features standardized with fixed (frozen-encoder) statistics.

    Training in standardized space keeps the head's weights O(1), so AdamW moves it at a useful rate while the
    encoder layers shift the features; `folded()` turns it into the plain Linear that PooledClassifier holds.
    """

    def __init__(self, mean: torch.Tensor, scale: torch.Tensor, num_labels: int):
        super().__init__()
        self.register_buffer("mean", mean.clone())
        self.register_buffer("scale", scale.clone())
        self.linear = nn.Linear(mean.shape[0], num_labels)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x - self.mean) / self.scale)

    @torch.no_grad()
    def folded(self) -> nn.Linear:
        head = nn.Linear(self.mean.shape[0], self.linear.out_features)
        weight = self.linear.weight / self.scale
        head.weight.copy_(weight)
        head.bias.copy_(self.linear.bias - weight @ self.mean)
        return head


def _fit_linear(
    features: torch.Tensor, targets: torch.Tensor, num_labels: int, l2: float, max_iter: int = 500
) -> _StandardizedHead:
    """Multinomial logistic regression, L2-penalized, solved with full-batch L-BFGS (deterministic)."""
    std = features.std(0)
    # Floor the scale: a (near-)constant dimension of the frozen features must not be blown up, or the top layer's
    # first updates, which do move it, would swing the logits.
    head = _StandardizedHead(features.mean(0), std.clamp(min=max(1e-6, 0.1 * float(std.median()))), num_labels)
    x = (features - head.mean) / head.scale
    params = list(head.linear.parameters())
    optimizer = torch.optim.LBFGS(
        params, lr=1.0, max_iter=max_iter, tolerance_grad=1e-7, tolerance_change=1e-10,
        history_size=20, line_search_fn="strong_wolfe",
    )

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(head.linear(x), targets) + l2 * head.linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return head


def _batches(lengths: list[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Shuffled batches of similar length: shuffle, sort within windows of 32 batches, shuffle the batches."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    window = batch_size * 32
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    perm = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[p] for p in perm]


class _TopModel(nn.Module):
    def __init__(self, top: nn.Module, head: nn.Module, normalize: bool):
        super().__init__()
        self.top, self.head, self.normalize = top, head, normalize

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.top(inputs_embeds=states, attention_mask=mask).last_hidden_state
        pooled = mean_pool(hidden, mask)
        if self.normalize:
            pooled = nn.functional.normalize(pooled, dim=-1)
        return self.head(pooled)


@torch.inference_mode()
def _predict_top(model: _TopModel, cached: list[torch.Tensor], rows: np.ndarray, batch_size: int) -> torch.Tensor:
    model.eval()
    preds = torch.empty(len(rows), dtype=torch.long)
    order = sorted(range(len(rows)), key=lambda j: cached[rows[j]].shape[0])
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        states, mask = _pad([cached[rows[j]] for j in chunk])
        preds[chunk] = model(states, mask).argmax(-1)
    return preds


def _finetune(
    model: _TopModel,
    cached: list[torch.Tensor],
    rows: np.ndarray,
    targets: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    head_lr: float,
    weight_decay: float,
    batch_size: int,
    seed: int,
    log: Callable[[str], None] | None,
    dropout: bool = True,
) -> None:
    generator = torch.Generator().manual_seed(seed)
    lengths = [cached[i].shape[0] for i in rows]
    steps_per_epoch = math.ceil(len(rows) / batch_size)
    total = max(1, epochs * steps_per_epoch)
    warmup = max(1, total // 10)
    optimizer = torch.optim.AdamW(
        [
            {"params": list(model.top.parameters()), "lr": lr, "weight_decay": weight_decay},
            {"params": list(model.head.parameters()), "lr": head_lr, "weight_decay": 0.0},
        ]
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    model.train(dropout)  # eval mode = no dropout; gradients flow either way
    for epoch in range(epochs):
        started, loss_sum = time.perf_counter(), 0.0
        for batch in _batches(lengths, batch_size, generator):
            states, mask = _pad([cached[rows[j]] for j in batch])
            loss = nn.functional.cross_entropy(model(states, mask), targets[torch.from_numpy(rows[batch])])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(batch)
        if log:
            log(f"epoch {epoch + 1}/{epochs}: loss {loss_sum / len(rows):.4f} ({time.perf_counter() - started:.0f}s)")


# --------------------------------------------------------------------------------------------------- main


@contextlib.contextmanager
def _torch_settings(num_threads: int | None, seed: int):
    """Fixed thread count and a seeded RNG while training; the caller's settings and RNG state come back after."""
    previous = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(previous)


def _resolve_encoder(encoder: str | Path) -> Path:
    if str(encoder) == PACKAGED_ENCODER:
        return packaged_encoder_dir()
    path = Path(encoder).expanduser().resolve()
    if not (path / "config.json").exists():
        raise TrainingDataError(f"encoder folder {path} has no config.json")
    return path


def _accuracy(pred: torch.Tensor, target: torch.Tensor) -> float | None:
    return float((pred == target).float().mean()) if len(target) else None


def train_head(
    texts: Sequence[str],
    labels: Sequence[str],
    out_dir: str | Path,
    *,
    groups: Sequence[str] | None = None,
    encoder: str | Path = PACKAGED_ENCODER,
    train_top_layers: int = 0,
    epochs: int = 3,
    lr: float = 3e-4,
    head_lr: float = 1e-3,
    weight_decay: float = 0.01,
    l2: float = 1e-3,
    batch_size: int = 32,
    seed: int = 0,
    test_fraction: float = 0.2,
    max_length: int | None = None,
    max_train_rows: int | None = None,
    normalize: bool = False,
    label_names: Sequence[str] | None = None,
    clean: bool = True,
    overlay_dtype: torch.dtype = torch.float16,
    num_threads: int | None = 2,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Fit a head (and optionally the top `train_top_layers` encoder layers) and write it to `out_dir`.

    `epochs`, `lr` (top layers), `head_lr`, `weight_decay` and `batch_size` drive the
    fine-tuning; the linear head alone (train_top_layers=0, and the baseline) is fit to convergence with
    L-BFGS and L2 penalty `l2`. The held-out split (`test_fraction`, whole `groups` when given) is drawn
    before `max_train_rows` subsamples the training rows, so the test set is never shrunk.
    """
    started = time.perf_counter()
    texts, labels = list(texts), [str(x) for x in labels]
    if len(texts) != len(labels):
        raise TrainingDataError(f"{len(texts)} texts but {len(labels)} labels")
    if groups is not None and len(groups) != len(texts):
        raise TrainingDataError(f"{len(texts)} texts but {len(groups)} groups")
    names = list(label_names) if label_names else _sorted_labels(labels)
    unknown = sorted(set(labels) - set(names))
    if unknown:
        raise TrainingDataError(f"labels not in label_names: {unknown[:5]}")
    if len(names) < 2:
        raise TrainingDataError(f"training needs at least two labels; found {names}")
    if train_top_layers < 0 or epochs < 0 or batch_size < 1:
        raise TrainingDataError("train_top_layers and epochs must be >= 0 and batch_size >= 1")
    encoder_dir = _resolve_encoder(encoder)

    with _torch_settings(num_threads, seed):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from safetensors.torch import save_file
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        say = log or (lambda _msg: None)
        config = json.loads((encoder_dir / "config.json").read_text(encoding="utf-8"))
        max_length = int(max_length or _max_length(encoder_dir, config))

        train_rows, test_rows, split, n_test_groups = split_indices(len(texts), groups, test_fraction, seed)
        if max_train_rows is not None and len(train_rows) > max_train_rows:
            keep = np.random.default_rng(seed + 1).choice(len(train_rows), size=max_train_rows, replace=False)
            train_rows = np.sort(train_rows[keep])
        if len(train_rows) == 0:
            raise TrainingDataError("no training rows left after the held-out split")
        present = {labels[i] for i in train_rows}
        if len(present) < 2:
            raise TrainingDataError(f"the training split holds only the label(s) {sorted(present)}")
        used = np.concatenate([train_rows, test_rows])
        say(f"{len(train_rows)} training rows, {len(test_rows)} held out ({split} split)")

        if clean:
            from mixedclf.stages.preprocess import clean_text

            cleaned = {int(i): clean_text(texts[i]) for i in used}
        else:
            cleaned = {int(i): texts[i] for i in used}
        ids_list, pad_id = _tokenize(encoder_dir, [cleaned[int(i)] for i in used], max_length)
        position = {int(i): p for p, i in enumerate(used)}  # input row -> index into the encoded arrays
        tr = np.array([position[int(i)] for i in train_rows], dtype=np.int64)
        te = np.array([position[int(i)] for i in test_rows], dtype=np.int64)
        index = {name: j for j, name in enumerate(names)}
        y = torch.tensor([index[labels[i]] for i in used], dtype=torch.long)

        model = AutoModel.from_pretrained(encoder_dir, local_files_only=True, add_pooling_layer=False).eval()
        prefix, layers = _layer_list(model) if train_top_layers else ("", [])
        if train_top_layers > len(layers):
            raise TrainingDataError(f"train_top_layers={train_top_layers} but the encoder has {len(layers)} layers")
        top = _top_stack(model, train_top_layers) if train_top_layers else None  # fails before the long pass

        t0 = time.perf_counter()
        pooled, cached = _encode(model, ids_list, train_top_layers, max(batch_size, 64), log, pad_id)
        encode_seconds = time.perf_counter() - t0
        say(f"encoded {len(ids_list)} texts in {encode_seconds:.1f}s")
        features = nn.functional.normalize(pooled, dim=-1) if normalize else pooled

        fitted = _fit_linear(features[tr], y[tr], len(names), l2)
        head = fitted.folded()
        with torch.no_grad():
            base_test = head(features[te]).argmax(-1)
            base_train = head(features[tr]).argmax(-1)
        baseline_accuracy = _accuracy(base_test, y[te])
        say(f"frozen encoder + linear head: held-out accuracy {baseline_accuracy}")

        tensors: dict[str, torch.Tensor] = {}
        trained_layers: list[int] = []
        if train_top_layers:
            top_model = _TopModel(top, fitted, normalize)
            _finetune(
                top_model, cached, tr, y, epochs=epochs, lr=lr, head_lr=head_lr, weight_decay=weight_decay,
                batch_size=batch_size, seed=seed, log=log,
            )
            first = len(layers) - train_top_layers
            trained_layers = list(range(first, len(layers)))
            with torch.no_grad():  # evaluate exactly what is saved: the overlay after its dtype round trip
                for j, layer in enumerate(top_model.top.encoder.layer):
                    for name, tensor in layer.state_dict().items():
                        stored = tensor.detach().to(overlay_dtype).contiguous()
                        tensors[f"encoder.{prefix}.{first + j}.{name}"] = stored
                        tensor.copy_(stored.to(tensor.dtype))
                head = fitted.folded()  # evaluate the folded head too: it is what is saved
                top_model.head = head
            test_pred = _predict_top(top_model, cached, te, batch_size * 2)
            train_pred = _predict_top(top_model, cached, tr, batch_size * 2)
        else:
            test_pred, train_pred = base_test, base_train
        accuracy = _accuracy(test_pred, y[te])
        train_accuracy = _accuracy(train_pred, y[tr]) or 0.0
        tensors["classifier.weight"] = head.weight.detach().float().contiguous()
        tensors["classifier.bias"] = head.bias.detach().float().contiguous()

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if str(encoder) == PACKAGED_ENCODER:
            encoder_ref = PACKAGED_ENCODER
        else:
            encoder_ref = os.path.relpath(encoder_dir, out_dir.resolve()).replace(os.sep, "/")
        seconds = time.perf_counter() - started
        from mixedclf import __version__

        head_json = {
            "format": HEAD_FORMAT,
            "version": HEAD_FORMAT_VERSION,
            "labels": names,
            "encoder": encoder_ref,
            "max_length": max_length,
            "normalize": bool(normalize),
            "trained_layers": trained_layers,
            "overlay_dtype": str(overlay_dtype).removeprefix("torch.") if trained_layers else None,
            "metrics": {
                "accuracy": accuracy,
                "baseline_accuracy": baseline_accuracy,
                "baseline": "frozen encoder + linear head (L-BFGS), same split",
                "train_accuracy": train_accuracy,
                "n_train": int(len(train_rows)),
                "n_test": int(len(test_rows)),
                "split": split,
                "n_test_groups": n_test_groups,
                "test_fraction": test_fraction,
            },
            "training": {
                "train_top_layers": train_top_layers,
                "epochs": epochs,
                "lr": lr,
                "head_lr": head_lr,
                "weight_decay": weight_decay,
                "l2": l2,
                "batch_size": batch_size,
                "seed": seed,
                "clean": "standard" if clean else "none",
                "max_train_rows": max_train_rows,
                "seconds": round(seconds, 1),
                "encode_seconds": round(encode_seconds, 1),
                "threads": torch.get_num_threads(),
            },
            "created_with": f"mixedclf {__version__} train",
        }
        weights_tmp = out_dir / (HEAD_WEIGHTS + ".tmp")
        save_file(tensors, str(weights_tmp), metadata={"format": "pt"})
        weights_tmp.replace(out_dir / HEAD_WEIGHTS)
        config_tmp = out_dir / (HEAD_CONFIG + ".tmp")
        config_tmp.write_text(json.dumps(head_json, indent=2) + "\n", encoding="utf-8")
        config_tmp.replace(out_dir / HEAD_CONFIG)
        files = {name: (out_dir / name).stat().st_size for name in (HEAD_CONFIG, HEAD_WEIGHTS)}
        say(f"held-out accuracy {accuracy} (baseline {baseline_accuracy}); wrote {out_dir} in {seconds:.0f}s")

        return TrainResult(
            out_dir=out_dir,
            labels=names,
            accuracy=accuracy,
            baseline_accuracy=baseline_accuracy,
            train_accuracy=train_accuracy,
            n_train=int(len(train_rows)),
            n_test=int(len(test_rows)),
            split=split,
            n_test_groups=n_test_groups,
            train_top_layers=train_top_layers,
            trained_layers=trained_layers,
            epochs=epochs,
            lr=lr,
            seed=seed,
            seconds=seconds,
            encode_seconds=encode_seconds,
            files=files,
            test_indices=[int(i) for i in test_rows],
            test_predictions=[names[int(p)] for p in test_pred],
        )
