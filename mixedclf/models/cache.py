"""The per-user cache of things derived from a model: converted graphs and measured decisions.

Entries are keyed by the model's content hash (the bytes of its weights and config files, hashed on every
run, wherever the folder lives), so a moved or copied model reuses its entry and a retrained one never does,
even when its weights were rewritten in place with the same size, inode and mtime. Every entry is built in a
temporary folder beside its final place and renamed into it: a reader sees a whole entry or none, and two
processes converting the same model at once both succeed (the second rename loses and its copy is dropped).

An entry's completion marker (complete.json) records the size and sha256 of every file in it, and each use
checks them: an entry without its marker, or one whose files were damaged, truncated or replaced (an int8
graph overwritten by an fp32 one), is discarded with one warning line and built again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

from mixedclf.models.spec import HEAD_CONFIG, HEAD_WEIGHTS, ONNX_CONFIG, ModelSpec

# Files that decide a model's outputs; the tokenizer runs in the CPU stages and is not part of a converted graph.
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def cache_root() -> Path:
    """MIXEDCLF_CACHE_DIR, else the platform's user cache folder ($XDG_CACHE_HOME/mixedclf on Linux)."""
    override = os.environ.get("MIXEDCLF_CACHE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_cache_path

    return user_cache_path("mixedclf", appauthor=False)


def model_files(spec: ModelSpec) -> list[Path]:
    folders = [spec.encoder_path] + ([spec.path] if spec.path != spec.encoder_path else [])
    files = []
    for folder in folders:
        files += [folder / "config.json"] if (folder / "config.json").exists() else []
        files += sorted(p for p in folder.iterdir() if p.suffix in _WEIGHT_SUFFIXES and p.is_file())
    if spec.kind == "head":
        files += [spec.path / HEAD_CONFIG, spec.path / HEAD_WEIGHTS]
    if spec.kind == "onnx":
        files += [spec.path / ONNX_CONFIG, spec.path / "model.onnx"]
    return list(dict.fromkeys(files))


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, read on every call: a digest remembered by the file's stat would be reused for
    weights rewritten in place with the same size, inode and mtime. Measured 0.12-0.20 s for the default model's
    98 MB (2-core Xeon with SHA-NI, load average 11), paid only where a converted graph or a calibration is
    looked up."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def content_hash(spec: ModelSpec) -> str:
    """One hash over every file that decides the model's outputs (names relative to their folder)."""
    h = hashlib.sha256()
    for path in model_files(spec):
        h.update(f"{path.name}\0{file_digest(path)}\0".encode())
    return h.hexdigest()[:32]


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prediction_cache_path() -> Path:
    """Where the prediction cache (io/prediction_cache.py) lives unless --cache or MIXEDCLF_CACHE says otherwise."""
    return cache_root() / "predictions.sqlite3"


MARKER = "complete.json"
_MARKER_FORMAT = 2  # 1 recorded only the key: such entries cannot be checked and are built again
_OLD_FORMAT = "was written by an older mixedclf"


def cached_folder(key: str, build: Callable[[Path], None]) -> Path:
    """The cache folder for `key`, built by `build(tmp_dir)` the first time; the rename makes it appear whole.

    An entry that fails its check (entry_problem) is discarded with one warning line on stderr and built again."""
    final = cache_root() / "converted" / key
    problem = entry_problem(final, key)
    if problem is None:
        return final
    if problem == _OLD_FORMAT:
        discard_folder(final)  # written by an older mixedclf: nothing to warn about
    elif final.exists():
        print(f"warning: the cached {final} {problem}: discarded, building it again", file=sys.stderr, flush=True)
        discard_folder(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        build(tmp)
        write_marker(tmp, key)
        try:
            os.replace(tmp, final)
        except OSError:
            if entry_problem(final, key) is not None:  # not lost to a concurrent build: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def write_marker(folder: Path, key: str) -> None:
    """Record every file's size and sha256 in the folder's completion marker (written last)."""
    files = {p.name: {"bytes": p.stat().st_size, "sha256": file_digest(p)}
             for p in sorted(folder.iterdir()) if p.is_file() and p.name != MARKER}
    (folder / MARKER).write_text(json.dumps({"key": key, "format": _MARKER_FORMAT, "files": files}),
                                 encoding="utf-8")


def entry_problem(folder: Path, key: str) -> str | None:
    """Why the entry at `folder` cannot be used as it is ("has no completion marker", "...model.onnx changed
    since it was built"), or None when every file it recorded is there with its size and sha256."""
    if not folder.exists():
        return "does not exist"
    marker = read_json(folder / MARKER)
    if not isinstance(marker, dict):
        return "has no readable completion marker (an interrupted or damaged entry)"
    files = marker.get("files")
    if marker.get("key") == key and "format" not in marker:
        return _OLD_FORMAT
    if marker.get("key") != key or marker.get("format") != _MARKER_FORMAT or not isinstance(files, dict) or not files:
        return "has a completion marker of another key or format"
    for name, expected in files.items():
        path = folder / name
        if not isinstance(expected, dict):
            return "has a damaged completion marker"
        try:
            if path.stat().st_size != expected.get("bytes"):
                return f"is damaged: {name} changed size since it was built"
            if file_digest(path) != expected.get("sha256"):
                return f"is damaged: {name} changed since it was built (its sha256 differs)"
        except FileNotFoundError:
            return f"is damaged: {name} is missing"
        except OSError as exc:
            return f"is damaged: {name} cannot be read ({exc.strerror or exc})"
    return None


def discard_folder(folder: Path) -> None:
    """Remove a damaged entry: renamed aside first, so no reader sees it half deleted."""
    aside = folder.with_name(f".{folder.name}.discarded-{os.getpid()}")
    try:
        os.replace(folder, aside)
    except OSError:
        return  # already discarded (or replaced) by another process
    shutil.rmtree(aside, ignore_errors=True)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
