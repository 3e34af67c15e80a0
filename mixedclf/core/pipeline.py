"""The stage contract: rows -> sequences -> logits -> output rows, the one object every runtime drives.

- rows -> sequences (`to_sequences`): clean, count and tokenize a batch of texts. A pure module-level function,
  so a CPU pool (local engine, server) or a Ray task runs it where it likes.
- sequences -> logits (`StagePipeline.infer`): rows answered without the device first (an `AnswerStore`), then
  each distinct sequence left through the device once (length-sorted micro-batches, `InferenceRunner`), then the
  logits of a row's sequences reduced to the row's own. It owns the runner and keeps the device's and the
  dedup's figures as running totals; each call also returns its own figures, so no caller subtracts snapshots.
- logits -> output rows (`StagePipeline.output_table` for files, `StagePipeline.predictions` for the server's
  JSON): the one place output rows are assembled.

A row may be several sequences (`Sequences.row_of_sequence`, e.g. the windows of a long text): their logits are
averaged into one row. Preprocessing makes one sequence per row today.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from mixedclf.core.answers import AnswerStore, answer_keys
from mixedclf.core.columns import output_table
from mixedclf.core.inference import InferenceRunner, InferenceStats
from mixedclf.core.postprocess import label_columns, prediction_rows
from mixedclf.core.preprocess import select_rows
from mixedclf.core.sequences import Sequences, concat_sequences, to_sequences


class Classifier(Protocol):
    """What the output step needs to know of a model (models.spec.ModelSpec is one)."""

    @property
    def name(self) -> str: ...

    @property
    def labels(self) -> tuple[str, ...]: ...

    @property
    def activation(self) -> str: ...


@dataclass
class DeviceWork:
    """What the sequences -> logits step did: the device's figures and how many sequences never reached it.

    One type for a single call (`StagePipeline.infer`) and for the running total (`StagePipeline.work`): every
    field adds up, and the total keeps no per-call lists.
    """

    device: InferenceStats = field(default_factory=InferenceStats)
    sequences: int = 0  # sequences asked for
    duplicates: int = 0  # sequences repeating an earlier one of their call (skipped only with dedup)
    dedup_hits: int = 0  # sequences answered by an earlier identical one of their call
    answer_hits: int = 0  # sequences answered by the AnswerStore
    answer_misses: int = 0  # sequences the AnswerStore did not hold

    COUNTS = ("sequences", "duplicates", "dedup_hits", "answer_hits", "answer_misses")

    def merge(self, other: DeviceWork) -> None:
        self.device.merge(other.device)
        for name in self.COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def totals(self) -> dict[str, float]:
        """Every additive figure by name (what a Ray stage reports to its collector, which sums them)."""
        out: dict[str, float] = {name: getattr(self.device, name) for name in InferenceStats.ADDITIVE}
        out.update({name: getattr(self, name) for name in self.COUNTS})
        return out

    @classmethod
    def from_totals(cls, totals: dict[str, float]) -> DeviceWork:
        device = InferenceStats()
        for name in InferenceStats.ADDITIVE:
            setattr(device, name, type(getattr(device, name))(totals.get(name, 0)))
        return cls(device, **{n: int(totals.get(n, 0)) for n in cls.COUNTS})

    def report(self) -> dict[str, Any]:
        """The run statistics (core.run.RunStats fields) these figures decide, the same for every engine."""
        d = self.device
        return {
            "micro_batches": d.batches,
            "mean_batch_rows": (d.rows / d.batches) if d.batches else 0.0,
            "padding_fraction": (1 - d.real_tokens / d.padded_tokens) if d.padded_tokens else 0.0,
            "tokens": int(d.real_tokens),
            "padded_tokens": int(d.padded_tokens),
            "token_width_sum": int(d.token_width_sum),
            "device_busy_s": float(d.busy_s),
            "device_forward_s": float(d.forward_s),
            "host_overhead_ms_per_batch": 1e3 * d.host_overhead_s / d.batches if d.batches else None,
            "oom_splits": int(d.oom_splits),
            "duplicate_fraction": self.duplicates / self.sequences if self.sequences else 0.0,
            "dedup_hit_rate": self.dedup_hits / self.sequences if self.sequences else 0.0,
        }


@dataclass
class Inferred:
    """One call's logits (float32, one vector per row, in row order) and what the call did."""

    logits: np.ndarray
    work: DeviceWork


class StagePipeline:
    """The stages of one loaded model: the one object the local engine, the Ray stages and the server drive.

    `module` and `device` are what models.backend.load_model returned; `batch_size` / `max_batch_tokens` cap
    each forward pass (None: the device's defaults). With `dedup` each distinct sequence of a call reaches the
    device once (the scope is one call on purpose: a row's logits then depend only on its own call's rows, so a
    resumed run writes the same bytes as an uninterrupted one). With `answers` (and `run_key`, the digest of
    every setting that decides a row's logits) rows it holds never reach the device, and what the device
    computes is stored there.
    """

    def __init__(self, module, device, model: Classifier, pad_id: int = 0, *, batch_size: int | None = None,
                 max_batch_tokens: int | None = None, dedup: bool = False, all_scores: bool = False,
                 answers: AnswerStore | None = None, run_key: bytes = b"", output_prefix: str = "",
                 on_batch: Callable[[int], None] | None = None):
        if answers is not None and not run_key:
            raise ValueError("an answer store needs the run key its answers are filed under")
        self.model = model
        self.runner = InferenceRunner(module, device, len(model.labels), pad_id, on_batch=on_batch)
        self.batch_size, self.max_batch_tokens = batch_size, max_batch_tokens
        self.dedup = dedup
        self.answers, self.run_key = answers, run_key
        self.output = OutputStep(model, all_scores, output_prefix)
        self.work = DeviceWork(self.runner.stats)  # the running total: the runner adds each call's device figures

    @property
    def device(self):
        return self.runner.device

    # --- sequences -> logits --------------------------------------------------------------------------------
    def infer(self, seqs: Sequences) -> Inferred:
        batch = seqs.batch
        n, labels = len(batch), len(self.model.labels)
        work = DeviceWork(sequences=n, duplicates=n - len(set(batch.cleaned)))
        out = np.empty((n, labels), dtype=np.float32)
        todo = np.arange(n)
        keys: list[bytes] = []
        if self.answers is not None and n:
            keys = answer_keys(self.run_key, batch.cleaned)
            answered = np.zeros(n, dtype=bool)
            if batch.held is not None and batch.held_logits is not None:  # the store's reader answered these
                answered[batch.held] = True
                out[batch.held] = batch.held_logits[batch.held]
                self.answers.record_hits([keys[i] for i in np.flatnonzero(batch.held)])
            asked = np.flatnonzero(~answered)
            for k, logits in self.answers.lookup([keys[i] for i in asked]).items():
                if logits.shape != (labels,):  # a damaged store's blob: computed (and stored) again
                    continue
                out[asked[k]] = logits
                answered[asked[k]] = True
            todo = np.flatnonzero(~answered)
            work.answer_hits, work.answer_misses = n - len(todo), len(todo)
        computed_rows = todo
        if self.dedup and len(todo):
            first_of: dict[Any, int] = {}
            unique: list[int] = []
            slot = np.empty(len(todo), dtype=np.int64)
            for k, i in enumerate(todo.tolist()):
                j = first_of.setdefault(batch.cleaned[i], len(unique))
                if j == len(unique):
                    unique.append(i)
                slot[k] = j
            computed_rows = np.asarray(unique, dtype=np.int64)
            work.dedup_hits = len(todo) - len(unique)
        if len(computed_rows):
            whole = len(computed_rows) == n
            logits = self.runner.logits(batch if whole else select_rows(batch, computed_rows), self.batch_size,
                                        self.max_batch_tokens)
            work.device = self.runner.call_stats
            out[todo] = logits[slot] if len(computed_rows) < len(todo) else logits
            if self.answers is not None:
                rows = computed_rows
                self.answers.store([keys[i] for i in rows], logits,
                                   np.where(batch.truncated[rows], -1, batch.lengths[rows]))
        for name in DeviceWork.COUNTS:  # the device figures reached the total through the runner
            setattr(self.work, name, getattr(self.work, name) + getattr(work, name))
        return Inferred(seqs.reduce(out), work)

    def warm_up(self, seqs: Sequences) -> np.ndarray:
        """One forward pass for its side effects (allocations, kernels): never answered from the store."""
        return self.runner.logits(seqs.batch, self.batch_size, self.max_batch_tokens)

    # --- logits -> output rows ------------------------------------------------------------------------------
    def output_table(self, seqs: Sequences, logits: np.ndarray, passthrough: pa.Table,
                     text: tuple[str, pa.Array] | None = None) -> tuple[pa.Table, dict[str, pa.Array]]:
        return self.output.table(seqs, logits, passthrough, text)

    def predictions(self, seqs: Sequences, logits: np.ndarray) -> list[dict]:
        return self.output.predictions(seqs, logits)


@dataclass(frozen=True)
class OutputStep:
    """The logits -> output rows step: needs the model's labels, not the model, so a stage without one (a Ray
    postprocess task) runs the same code."""

    model: Classifier
    all_scores: bool = False
    prefix: str = ""  # --output-prefix: what the classifier's column names start with

    def label_columns(self, seqs: Sequences, logits: np.ndarray) -> dict[str, pa.Array]:
        m = self.model
        return label_columns(logits, m.labels, m.activation, seqs.rows(), m.name, self.all_scores)

    def table(self, seqs: Sequences, logits: np.ndarray, passthrough: pa.Table,
              text: tuple[str, pa.Array] | None = None) -> tuple[pa.Table, dict[str, pa.Array]]:
        """The output rows: the input's other columns (`passthrough`, id first), the text when kept (`text`: its
        column name and values), then the classifier's columns; InputError when one of them would replace an
        input column (core/columns.py). Also returns the classifier's columns (for a run's label tally)."""
        columns = self.label_columns(seqs, logits)
        text_field, texts = text if text is not None else ("", None)
        table = output_table(passthrough, columns, id_field=passthrough.column_names[0], text_field=text_field,
                             texts=texts, prefix=self.prefix)
        return table, columns

    def predictions(self, seqs: Sequences, logits: np.ndarray) -> list[dict]:
        """One dict per row, every label's score under "scores" (the server's JSON shape)."""
        m = self.model
        return prediction_rows(logits, seqs.rows(), m.labels, m.activation)


__all__ = ["Classifier", "DeviceWork", "Inferred", "OutputStep", "Sequences", "StagePipeline", "concat_sequences",
           "to_sequences"]
