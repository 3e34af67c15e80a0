"""The stage contract's JSON form (core/wire.py): sequences and scored rows survive the trip, and a payload a
stage cannot read is one line naming the column, never a wrong answer or a reshape traceback."""

from __future__ import annotations

import numpy as np
import pytest

from mixedclf.core.preprocess import PreprocessedBatch
from mixedclf.core.sequences import Sequences
from mixedclf.core.wire import StageInputError, decode_scored, decode_sequences, encode_scored, encode_sequences


def _seqs() -> Sequences:
    return Sequences(PreprocessedBatch(
        ["good food", "bad"], np.array([101, 7, 8, 102, 101, 9, 102], np.int32), np.array([4, 3], np.int32),
        np.array([False, True]), np.array([2, 1], np.int32), np.array([1, 1], np.int32), np.array([9, 3], np.int32)))


def test_sequences_and_scored_rows_round_trip():
    seqs = decode_sequences(encode_sequences(_seqs()))
    assert seqs.batch.token_ids.tolist() == [101, 7, 8, 102, 101, 9, 102] and seqs.batch.lengths.tolist() == [4, 3]
    assert seqs.batch.cleaned == ["good food", "bad"] and seqs.batch.truncated.tolist() == [False, True]
    logits = np.array([[0.5, -1.0], [2.0, 0.25]], np.float32)
    rows, back = decode_scored(encode_scored(seqs, logits), 2)
    assert back.tolist() == logits.tolist()
    assert rows.rows().lengths.tolist() == [4, 3] and rows.rows().word_count.tolist() == [2, 1]


@pytest.mark.parametrize(("payload", "line"), [
    ({"logits": [[1.0, 2.0, 3.0]], "token_count": [1], "truncated": [False], "word_count": [1],
      "sentence_count": [1], "char_count": [1]}, "scored.logits must be 1 lists of 2 numbers"),
    ({"logits": [[1.0, "x"]], "token_count": [1]}, "scored.logits must be 1 lists of 2 numbers"),
    ({"logits": [[1.0, 2.0]], "token_count": [1, 2]}, "scored.token_count must be a list of 1 values"),
    ({"token_count": [1]}, 'input needs "scored"'),
])
def test_a_scored_payload_a_stage_cannot_read_is_one_line(payload, line):
    with pytest.raises(StageInputError) as caught:
        decode_scored(payload, 2)
    assert line in str(caught.value) and "\n" not in str(caught.value)


def test_a_sequences_payload_a_stage_cannot_read_is_one_line():
    good = encode_sequences(_seqs())
    with pytest.raises(StageInputError, match="sequences.ids must be lists of token ids"):
        decode_sequences({**good, "ids": [[1, "a"], [2]]})
    with pytest.raises(StageInputError, match="sequences.word_count must be a list of 2 values"):
        decode_sequences({**good, "word_count": [1]})
