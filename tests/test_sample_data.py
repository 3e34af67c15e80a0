import json
import unicodedata
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

DATA = Path(__file__).resolve().parents[1] / "sample_data"
COLUMNS = ["id", "text", "source", "stars"]


def _jsonl_rows():
    with open(DATA / "reviews.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _parquet_rows():
    return pq.read_table(DATA / "reviews.parquet").select(COLUMNS).to_pylist()


def _csv_rows():
    # Texts contain newlines; types are pinned so an id or text is never re-typed.
    table = pacsv.read_csv(
        DATA / "reviews.csv",
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={"id": pa.string(), "text": pa.string(), "source": pa.string(), "stars": pa.int64()},
            strings_can_be_null=False,
        ),
    )
    return table.select(COLUMNS).to_pylist()


@pytest.fixture(scope="module")
def rows():
    return _jsonl_rows()


@pytest.mark.parametrize("name", ["reviews.jsonl", "reviews.parquet", "reviews.csv", "convert_samples.py"])
def test_files_exist(name):
    assert (DATA / name).is_file()


def test_at_least_250_rows(rows):
    assert len(rows) >= 250


def test_schema(rows):
    for r in rows:
        assert list(r) == COLUMNS
        assert isinstance(r["id"], str) and isinstance(r["text"], str) and r["text"].strip()
        assert r["source"] in {"product", "restaurant", "movie", "app", "hotel"}
        assert isinstance(r["stars"], int) and 1 <= r["stars"] <= 5


def test_ids_unique(rows):
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids)


def test_parquet_matches_jsonl(rows):
    assert _parquet_rows() == rows


def test_csv_matches_jsonl(rows):
    assert _csv_rows() == rows


def test_has_html_and_urls(rows):
    texts = [r["text"] for r in rows]
    assert sum("<" in t for t in texts) >= 10
    assert sum("http" in t for t in texts) >= 5
    assert sum("www." in t for t in texts) >= 3


def test_has_text_that_nfkc_changes(rows):
    assert sum(unicodedata.normalize("NFKC", r["text"]) != r["text"] for r in rows) >= 3


def test_sentiment_mix(rows):
    n = len(rows)
    pos = sum(r["stars"] >= 4 for r in rows) / n
    neg = sum(r["stars"] <= 2 for r in rows) / n
    assert 0.35 < pos < 0.55 and 0.35 < neg < 0.55


def test_length_variety(rows):
    words = [len(r["text"].split()) for r in rows]
    assert sum(w >= 150 for w in words) >= 10
    assert sum(w <= 40 for w in words) >= len(rows) // 2


def test_converted_files_match_the_jsonl_source(tmp_path):
    # The committed Parquet and CSV must be what the converter makes of the committed JSONL now.
    import importlib.util
    import shutil

    spec = importlib.util.spec_from_file_location("convert_samples", DATA / "convert_samples.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    shutil.copy(DATA / "reviews.jsonl", tmp_path / "reviews.jsonl")
    mod.main(tmp_path)
    assert (tmp_path / "reviews.csv").read_bytes() == (DATA / "reviews.csv").read_bytes()
    assert pq.read_table(tmp_path / "reviews.parquet").equals(pq.read_table(DATA / "reviews.parquet"))
