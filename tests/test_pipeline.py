"""The stage contract (core.pipeline): answers without the device, several sequences per row, running totals."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import torch

from mixedclf.core.answers import HeldAnswers, answer_keys, run_key
from mixedclf.core.pipeline import DeviceWork, StagePipeline
from mixedclf.core.preprocess import make_tokenizer, select_rows
from mixedclf.core.sequences import Sequences, concat_sequences, slice_rows, to_sequences

TEXTS = ["good food", "bad service, never again", "good food", "it was fine. staff was happy", "meh", "ok"]
CPU = torch.device("cpu")


class MemoryAnswers:
    """The smallest AnswerStore: a dict, counting what it is asked; `reader(key)` reads it as a CPU worker would."""

    def __init__(self):
        self.held: dict[bytes, np.ndarray] = {}
        self.tokens: dict[bytes, int] = {}
        self.asked = 0
        self.recorded = 0

    def lookup(self, keys):
        self.asked += len(keys)
        return {i: self.held[k] for i, k in enumerate(keys) if k in self.held}

    def store(self, keys, logits, tokens=None):
        for i, (k, row) in enumerate(zip(keys, logits)):
            self.held[k] = np.array(row, dtype=np.float32)
            if tokens is not None and tokens[i] >= 0:
                self.tokens[k] = int(tokens[i])

    def record_hits(self, keys):
        self.recorded += len(keys)

    def reader(self, key):
        store = self

        class Reader:
            def read(self, cleaned):
                keys = answer_keys(key, cleaned)
                rows = [i for i, k in enumerate(keys) if k in store.tokens]
                if not rows:
                    return None
                return HeldAnswers(np.asarray(rows), np.stack([store.held[keys[i]] for i in rows]),
                                   np.asarray([store.tokens[keys[i]] for i in rows], np.int32))

        return Reader()


class CountingTokenizer:
    """A tokenizer that remembers every text it was given."""

    def __init__(self, inner):
        self.inner, self.seen = inner, []

    def encode_batch(self, texts):
        self.seen.extend(texts)
        return self.inner.encode_batch(texts)


@pytest.fixture(scope="module")
def model(tiny_model):
    from mixedclf.models.backend import load_model
    from mixedclf.models.spec import resolve_model
    from mixedclf.models.tokenizer import tokenizer_json_and_pad_id

    spec = resolve_model(tiny_model)
    tokenizer_json, pad_id = tokenizer_json_and_pad_id(spec)
    return spec, load_model(spec, CPU, "fp32"), make_tokenizer(tokenizer_json, spec.max_length), pad_id


def _pipeline(model, **kwargs) -> StagePipeline:
    spec, loaded, _tokenizer, pad_id = model
    return StagePipeline(loaded.module, CPU, spec, pad_id, batch_size=4, max_batch_tokens=4096, **kwargs)


def _output_bytes(pipeline: StagePipeline, seqs: Sequences, logits: np.ndarray) -> bytes:
    passthrough = pa.table({"id": pa.array(range(len(seqs)), pa.int64())})
    table, _ = pipeline.output_table(seqs, logits, passthrough)
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    return sink.getvalue()


def test_a_held_answer_skips_the_device_and_the_output_is_byte_identical(model):
    spec, _loaded, tokenizer, _pad = model
    seqs = to_sequences(TEXTS, tokenizer)
    answers = MemoryAnswers()
    key = run_key(model=str(spec.path), backend="torch", precision="fp32", clean="standard")
    # With dedup each distinct text is computed once, as the store holds it once (without, two copies of a text in
    # different micro-batches may differ in the last bit, and the store keeps one of them).
    first = _pipeline(model, answers=answers, run_key=key, dedup=True)
    computed = first.infer(seqs)
    assert computed.work.answer_misses == len(TEXTS) and computed.work.answer_hits == 0
    assert computed.work.device.rows == len(set(TEXTS))
    assert len(answers.held) == len(set(TEXTS))

    second = _pipeline(model, answers=answers, run_key=key, dedup=True)
    again = second.infer(seqs)
    assert again.work.answer_hits == len(TEXTS) and again.work.answer_misses == 0
    assert again.work.device.batches == 0 and second.work.device.batches == 0  # the device never ran
    assert _output_bytes(second, seqs, again.logits) == _output_bytes(first, seqs, computed.logits)

    plain = _pipeline(model, dedup=True).infer(seqs)  # no store: the same logits, bit for bit
    np.testing.assert_array_equal(plain.logits, computed.logits)


def test_only_the_misses_reach_the_device_once_each(model):
    spec, _loaded, tokenizer, _pad = model
    key = run_key(model=str(spec.path))
    answers = MemoryAnswers()
    seqs = to_sequences(TEXTS, tokenizer)
    held = [1, 4]  # rows answered before
    reference = _pipeline(model).infer(seqs).logits
    answers.store([answer_keys(key, seqs.batch.cleaned)[i] for i in held], reference[held])
    pipeline = _pipeline(model, answers=answers, run_key=key, dedup=True)
    got = pipeline.infer(seqs)
    w = got.work
    assert (w.answer_hits, w.answer_misses, w.dedup_hits) == (2, 4, 1)  # "good food" twice among the misses
    assert w.device.rows == 3  # 6 rows - 2 held - 1 repeat
    np.testing.assert_allclose(got.logits, reference, atol=1e-5)
    np.testing.assert_array_equal(got.logits[held], reference[held])
    assert len(answers.held) == 5  # the 3 computed were stored


def test_a_stored_answer_of_another_width_is_a_miss_not_an_answer(model):
    """A damaged store may hand back a vector that is not one logit per label: the row is computed, never
    answered with a broadcast or a crash."""
    spec, _loaded, tokenizer, _pad = model
    key = run_key(model=str(spec.path))
    answers = MemoryAnswers()
    seqs = to_sequences(TEXTS, tokenizer)
    reference = _pipeline(model).infer(seqs).logits
    keys = answer_keys(key, seqs.batch.cleaned)
    answers.store([keys[1], keys[3]], np.zeros((2, 1), np.float32))  # one float where the model has two labels
    answers.held[keys[4]] = np.zeros(3, np.float32)
    got = _pipeline(model, answers=answers, run_key=key).infer(seqs)
    assert (got.work.answer_hits, got.work.answer_misses) == (0, len(TEXTS))
    np.testing.assert_array_equal(got.logits, reference)
    assert answers.held[keys[1]].shape == (len(spec.labels),)  # computed and stored again, right this time


def test_rows_the_reader_answers_are_neither_tokenized_nor_computed_and_their_output_is_byte_identical(model):
    spec, _loaded, tokenizer, _pad = model
    long_text = " ".join(["word"] * 500)  # truncated at the model's max length: its count is not kept
    texts = TEXTS + [long_text, "a new text never seen"]
    key = run_key(model=str(spec.path))
    answers = MemoryAnswers()
    first = _pipeline(model, answers=answers, run_key=key, dedup=True)
    seen_before = to_sequences(texts[:-1], tokenizer)
    first_out = first.infer(seen_before)
    assert len(answers.tokens) == len(set(TEXTS))  # every distinct untruncated text, not the truncated one

    counting = CountingTokenizer(tokenizer)
    seqs = to_sequences(texts, counting, reader=answers.reader(key))
    assert counting.seen == [long_text, "a new text never seen"]  # the truncated row and the new one only
    assert seqs.batch.held.tolist() == [True] * len(TEXTS) + [False, False]
    reference = to_sequences(texts, tokenizer)
    for name in ("lengths", "truncated", "word_count", "sentence_count", "char_count"):
        np.testing.assert_array_equal(getattr(seqs.batch, name), getattr(reference.batch, name))

    second = _pipeline(model, answers=answers, run_key=key, dedup=True)
    got = second.infer(seqs)
    assert (got.work.answer_hits, got.work.answer_misses) == (len(texts) - 1, 1)  # the long row: the store's
    assert answers.recorded == len(TEXTS) and got.work.device.rows == 1
    expected_logits = np.concatenate([first_out.logits, second.infer(reference).logits[-1:]])
    np.testing.assert_array_equal(got.logits, expected_logits)
    assert _output_bytes(second, seqs, got.logits) == _output_bytes(second, reference, expected_logits)


def test_a_batch_with_held_rows_slices_selects_and_concatenates_by_its_own_ids(model):
    spec, _loaded, tokenizer, _pad = model
    key = run_key(model=str(spec.path))
    answers = MemoryAnswers()
    _pipeline(model, answers=answers, run_key=key).infer(to_sequences(TEXTS[:3], tokenizer))
    parts = [to_sequences(TEXTS[:4], tokenizer, reader=answers.reader(key)), to_sequences(TEXTS[4:], tokenizer)]
    whole = concat_sequences(parts)
    plain = to_sequences(TEXTS, tokenizer).batch
    assert whole.batch.held.tolist() == [True, True, True, False, False, False]
    for row in range(3, len(TEXTS)):  # rows with ids find their own
        np.testing.assert_array_equal(whole.batch.row_ids(row), plain.row_ids(row))
    picked = select_rows(whole.batch, np.asarray([5, 3]))
    np.testing.assert_array_equal(picked.token_ids, np.concatenate([plain.row_ids(5), plain.row_ids(3)]))
    piece = slice_rows(whole, 2, 5).batch
    assert piece.held.tolist() == [True, False, False]
    np.testing.assert_array_equal(piece.token_ids, np.concatenate([plain.row_ids(3), plain.row_ids(4)]))


def test_an_answer_store_needs_a_run_key(model):
    with pytest.raises(ValueError, match="run key"):
        _pipeline(model, answers=MemoryAnswers())


def test_a_row_of_two_windows_comes_back_as_one_row_in_order(model):
    _spec, _loaded, tokenizer, _pad = model
    # Row 1 is split into two windows: its logits are the mean of theirs; rows 0 and 2 stay whole.
    windows = ["good food", "bad service", "never again", "it was fine"]
    per_window = _pipeline(model).infer(to_sequences(windows, tokenizer)).logits
    seqs = Sequences(to_sequences(windows, tokenizer).batch, np.array([0, 1, 1, 2]))
    assert len(seqs) == 3
    got = _pipeline(model).infer(seqs).logits
    assert got.shape == (3, 2)
    np.testing.assert_allclose(got, [per_window[0], per_window[1:3].mean(axis=0), per_window[3]], rtol=1e-6)
    rows = seqs.rows()
    assert rows.lengths.tolist() == [int(seqs.batch.lengths[0]), int(seqs.batch.lengths[1:3].sum()),
                                     int(seqs.batch.lengths[3])]
    table, _ = _pipeline(model).output_table(seqs, got, pa.table({"id": pa.array([10, 11, 12])}))
    assert table.column("id").to_pylist() == [10, 11, 12] and table.num_rows == 3
    # Joined with a whole-row batch, the mapping shifts with the rows before it.
    joined = concat_sequences([to_sequences(["ok"], tokenizer), seqs])
    assert joined.row_of_sequence.tolist() == [0, 1, 2, 2, 3] and len(joined) == 4


def test_the_running_totals_keep_no_list_per_micro_batch(model):
    _spec, _loaded, tokenizer, _pad = model
    pipeline = _pipeline(model)
    seqs = to_sequences(TEXTS * 3, tokenizer)
    calls = [pipeline.infer(seqs).work for _ in range(3)]
    assert all(len(w.device.batch_sizes) == w.device.batches > 0 for w in calls)  # a call knows its passes
    total = pipeline.work
    assert total.device.batch_sizes == [] and total.device.batches == sum(w.device.batches for w in calls)
    assert total.sequences == 3 * len(TEXTS) * 3 and total.duplicates == sum(w.duplicates for w in calls)
    summed = DeviceWork()
    for w in calls:
        summed.merge(w)
    assert DeviceWork.from_totals(summed.totals()).report() == total.report()
