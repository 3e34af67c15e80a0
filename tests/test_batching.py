import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mixedclf.core.batching import padded_tokens, plan_micro_batches


def test_sorted_longest_first_and_capped_by_rows():
    lengths = np.array([5, 50, 10, 40, 20])
    batches = plan_micro_batches(lengths, batch_size=2, max_batch_tokens=10_000)
    assert [b.tolist() for b in batches] == [[1, 3], [4, 2], [0]]


def test_token_budget_caps_rows():
    lengths = np.array([100] * 10)
    batches = plan_micro_batches(lengths, batch_size=64, max_batch_tokens=300)
    assert [len(b) for b in batches] == [3, 3, 3, 1]


def test_row_longer_than_budget_gets_its_own_batch():
    batches = plan_micro_batches(np.array([500, 10]), batch_size=8, max_batch_tokens=100)
    assert [b.tolist() for b in batches] == [[0], [1]]


def test_sorting_cuts_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 200, size=1000)
    sorted_plan = plan_micro_batches(lengths, 64, 10**9)
    unsorted_plan = [np.arange(i, min(i + 64, 1000)) for i in range(0, 1000, 64)]
    assert padded_tokens(lengths, sorted_plan) < 0.7 * padded_tokens(lengths, unsorted_plan)


def test_invalid_limits():
    with pytest.raises(ValueError):
        plan_micro_batches(np.array([1]), 0, 10)


@given(
    st.lists(st.integers(min_value=1, max_value=512), max_size=300),
    st.integers(min_value=1, max_value=128),
    st.integers(min_value=1, max_value=20_000),
)
def test_plan_covers_every_row_once_within_limits(lengths, batch_size, budget):
    lengths = np.array(lengths, dtype=np.int64)
    batches = plan_micro_batches(lengths, batch_size, budget)
    seen = np.concatenate(batches) if batches else np.array([], dtype=np.int64)
    assert sorted(seen.tolist()) == list(range(len(lengths)))
    for b in batches:
        assert 1 <= len(b) <= batch_size
        assert len(b) == 1 or len(b) * lengths[b].max() <= budget
