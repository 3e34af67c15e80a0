"""The per-user cache of things derived from a model: converted graphs and measured decisions.

Entries are keyed by the model's content hash (the bytes of its weights and config files, wherever the folder
lives), so a moved or copied model reuses its entry and a retrained one never does. Every entry is built in a
temporary folder beside its final place and renamed into it: a reader sees a whole entry or none, and two
processes converting the same model at once both succeed (the second rename loses and its copy is dropped).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
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
    """sha256 of a file, remembered by (path, size, mtime, inode): hashing 90 MB of weights costs ~0.7 s."""
    st = path.stat()
    stamp = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
    memo = cache_root() / "digests" / hashlib.sha256(stamp.encode()).hexdigest()
    try:
        return memo.read_text(encoding="ascii").strip()
    except OSError:
        pass
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            h.update(block)
    digest = h.hexdigest()
    try:
        write_atomically(memo, digest)
    except OSError:  # a read-only cache only costs the hashing again
        pass
    return digest


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


def cached_folder(key: str, build: Callable[[Path], None]) -> Path:
    """The cache folder for `key`, built by `build(tmp_dir)` the first time; the rename makes it appear whole."""
    final = cache_root() / "converted" / key
    if (final / "complete.json").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        build(tmp)
        (tmp / "complete.json").write_text(json.dumps({"key": key}), encoding="utf-8")
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / "complete.json").exists():  # not lost to a concurrent build: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


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
