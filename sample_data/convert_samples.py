"""Convert the committed sample reviews (reviews.jsonl, the source; every text was invented for this project) to
Parquet and CSV with one schema, after checking each row. Run from anywhere: ``python sample_data/convert_samples.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

SOURCES = ("product", "restaurant", "movie", "app", "hotel")
SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("stars", pa.int64(), nullable=False),
    ]
)


def read_rows(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for row in rows:
        # Stars follow sentiment (4-5 positive, 1-2 negative, 3 mixed); a typo fails here rather than ship.
        if (set(row) != {"id", "text", "source", "stars"} or row["source"] not in SOURCES
                or not 1 <= row["stars"] <= 5 or not row["text"].strip()):
            raise ValueError(f"bad sample row {row.get('id')!r}")
    texts = [r["text"] for r in rows]
    if len(set(texts)) != len(texts) or len({r["id"] for r in rows}) != len(rows):
        raise ValueError("duplicate sample texts or ids")
    return rows


def main(folder: Path | None = None) -> None:
    folder = folder or Path(__file__).resolve().parent
    table = pa.Table.from_pylist(read_rows(folder / "reviews.jsonl"), schema=SCHEMA)
    pq.write_table(table, folder / "reviews.parquet")
    pacsv.write_csv(table, folder / "reviews.csv")
    print(f"wrote {table.num_rows} rows to {folder}/reviews.{{parquet,csv}}")


if __name__ == "__main__":
    main()
