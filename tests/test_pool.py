"""The CPU worker pool: workers get the tokenizer through a file and preprocess exactly as in-process."""

import numpy as np

from mixedclf.core.preprocess import make_tokenizer, preprocess_texts
from mixedclf.models.spec import resolve_model
from mixedclf.models.tokenizer import tokenizer_json_and_pad_id
from mixedclf.runtime.pool import start_worker_pool, tokenizer_file
from mixedclf.runtime.workers import preprocess_task


def test_tokenizer_file_is_named_by_content(tmp_path):
    first, again, other = tokenizer_file('{"a": 1}'), tokenizer_file('{"a": 1}'), tokenizer_file('{"a": 2}')
    assert first == again != other
    assert first.read_text(encoding="utf-8") == '{"a": 1}'
    assert first.parent.stat().st_mode & 0o077 == 0  # a folder only this user can read or write


def test_pool_workers_start_at_once_and_preprocess_like_the_parent(tiny_model):
    spec = resolve_model(str(tiny_model))
    tokenizer_json, _ = tokenizer_json_and_pad_id(spec)
    texts = ["<b>good</b> food", "bad service " * 30, "fine"]
    pool, ready = start_worker_pool(2, tokenizer_json, spec.max_length, "standard")
    try:
        assert len(pool._processes) == 2  # both spawned already, not on the first piece of work
        assert all(f.result(timeout=60) for f in ready)
        seqs, start, end, _pid, _cpu = pool.submit(preprocess_task, texts).result(timeout=60)
        batch = seqs.batch
    finally:
        pool.shutdown()
    local = preprocess_texts(texts, make_tokenizer(tokenizer_json, spec.max_length))
    assert end >= start and seqs.row_of_sequence is None and batch.cleaned == local.cleaned
    assert np.array_equal(batch.token_ids, local.token_ids) and batch.truncated.tolist() == local.truncated.tolist()
