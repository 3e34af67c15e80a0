import json
import subprocess
import sys
from pathlib import Path

import pytest
from datagen import generate_texts, write_jsonl


def test_same_seed_same_texts():
    a = list(generate_texts(500, seed=7))
    b = list(generate_texts(500, seed=7))
    assert a == b


def test_different_seed_different_texts():
    a = list(generate_texts(200, seed=1))
    b = list(generate_texts(200, seed=2))
    assert sum(x == y for x, y in zip(a, b)) < 20


def test_prefix_stable_across_n():
    # A 1M-row benchmark file must start with the same rows as a small one.
    assert list(generate_texts(50, seed=3)) == list(generate_texts(300, seed=3))[:50]


def test_ignores_global_random_state():
    import random

    random.seed(1)
    a = list(generate_texts(100, seed=0))
    random.seed(2)
    b = list(generate_texts(100, seed=0))
    assert a == b


def test_count_and_types():
    texts = list(generate_texts(1234, seed=0))
    assert len(texts) == 1234
    assert all(isinstance(t, str) and t.strip() for t in texts)
    assert list(generate_texts(0)) == []


def test_negative_n_rejected():
    with pytest.raises(ValueError):
        generate_texts(-1)


def test_duplicate_rate_below_5_percent():
    texts = list(generate_texts(20_000, seed=0))
    dup_rate = 1 - len(set(texts)) / len(texts)
    assert dup_rate < 0.05, dup_rate


def test_length_variety():
    lengths = [len(t.split()) for t in generate_texts(5_000, seed=0)]
    assert min(lengths) >= 5
    assert max(lengths) <= 150
    assert len(set(lengths)) >= 40
    short = sum(n <= 15 for n in lengths) / len(lengths)
    long = sum(n >= 60 for n in lengths) / len(lengths)
    # Mostly short texts plus a real long tail.
    assert short > 0.3, short
    assert 0.005 < long < 0.2, long


def test_write_jsonl_rows_and_ids(tmp_path: Path):
    out = tmp_path / "rows.jsonl"
    ret = write_jsonl(out, 1000, seed=5)
    assert Path(ret) == out
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1000
    rows = [json.loads(line) for line in lines]
    assert [r["id"] for r in rows] == list(range(1000))
    assert [r["text"] for r in rows] == list(generate_texts(1000, seed=5))
    assert all(set(r) == {"id", "text"} for r in rows)


def test_write_jsonl_custom_fields(tmp_path: Path):
    out = tmp_path / "rows.jsonl"
    write_jsonl(out, 10, text_field="body", id_field="rid")
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["rid"] for r in rows] == list(range(10))
    assert all(isinstance(r["body"], str) for r in rows)


def test_module_entry_point(tmp_path: Path):
    out = tmp_path / "cli.jsonl"
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve().parents[1] / "benchmarks" / "datagen.py"), str(out), "--rows", "25", "--seed", "4"],
        check=True,
        capture_output=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == list(range(25))
    assert [r["text"] for r in rows] == list(generate_texts(25, seed=4))


def test_no_torch_import():
    code = "import sys; sys.path.insert(0, 'benchmarks'); import datagen; assert 'torch' not in sys.modules"
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1]
    )
