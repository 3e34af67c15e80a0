"""The Ray engine's prediction cache pieces that need no Ray node: the key a digest makes, and an inference actor
that loses the cache actor (it answers every row on its device, and says why)."""

from __future__ import annotations

import numpy as np
import pytest

from mixedclf.core.answers import answer_keys, run_key, text_digest


def test_a_digest_of_the_cleaned_text_makes_the_same_key_as_the_text():
    key = run_key(model="m", precision="fp32")
    texts = ["the food was good", "caf\u00e9 \ud83d\ude00", "x" * 5000]
    assert answer_keys(key, [text_digest(t) for t in texts]) == answer_keys(key, texts)
    assert len(set(answer_keys(key, texts))) == len(texts)
    assert answer_keys(run_key(model="m", precision="bf16"), texts) != answer_keys(key, texts)


class _DeadMethod:
    """An actor method whose actor is gone: Ray raises on the call."""

    def __init__(self):
        self.calls = 0

    def remote(self, *args):
        self.calls += 1
        raise RuntimeError("The actor died unexpectedly before finishing this task.\nmore detail")


class _DeadKeeper:
    def __init__(self):
        self.lookup, self.store = _DeadMethod(), _DeadMethod()


@pytest.mark.slow  # imports ray (seconds)
def test_an_actor_that_loses_the_cache_actor_computes_its_rows_and_stops_asking():
    pytest.importorskip("ray")
    from mixedclf.engines.ray.cache import KeeperAnswers

    keeper = _DeadKeeper()
    answers = KeeperAnswers(keeper)
    assert answers.lookup([b"k" * 16, b"j" * 16]) == {}
    assert answers.lost is not None and "actor died" in answers.lost and "\n" not in answers.lost
    answers.store([b"k" * 16], np.zeros((1, 2), np.float32))
    assert answers.lookup([b"k" * 16]) == {}
    assert keeper.lookup.calls == 1 and keeper.store.calls == 0  # not asked again after the first failure
