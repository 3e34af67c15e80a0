"""Listing a local folder or glob the way the input is read: each real file once. Links are followed, but a
folder already walked (a loop like sub/up -> .., or a second way in) is not walked again, and a file reached by
two paths is read by the first in sorted order; links to nothing and links to each other are noted, so the run
can say so in one warning line per kind instead of skipping them silently."""

from __future__ import annotations

import errno
import os
import re
import stat

_GLOB_CHARS = "*?["


def _hidden(name: str) -> bool:
    """Files a folder holds beside its data, as Spark, Hadoop and pyarrow.dataset skip them: _SUCCESS, .crc, ..."""
    return name.startswith((".", "_"))


class Links:
    """What links in a local folder or glob did, for one warning line per kind."""

    def __init__(self, spec: str):
        self.spec = spec
        self.dangling: list[str] = []  # links to nothing
        self.looping: list[str] = []  # links that resolve to themselves (a -> b -> a)
        self.again: list[str] = []  # links (or glob paths) to a folder or file already read by another path

    def lines(self) -> list[str]:
        kinds = ((self.dangling, "link{s} to nothing skipped"), (self.looping, "looping link{s} skipped"),
                 (self.again, "path{s} through links to a file or folder already read, read once"))
        return [f"{self.spec}: {len(found):,} {what.format(s='' if len(found) == 1 else 's')} "
                f"(e.g. {found[0]})" for found, what in kinds if found]


def _stat_link(path: str, links: Links) -> os.stat_result | None:
    """The stat of what path points to; None (and noted) when it is a dangling or looping link."""
    try:
        return os.stat(path)
    except OSError as exc:
        if os.path.islink(path):
            (links.looping if exc.errno == errno.ELOOP else links.dangling).append(path)
            return None
        raise


def _walk(root: str, links: Links, hidden: bool = False, depth: int | None = None
                ) -> list[tuple[str, tuple[int, int]]]:
    """The regular files under a local folder (and their (st_dev, st_ino)), each real file once: a link to a
    folder is followed unless that folder is already read (a loop like sub/up -> .., or a second way in); a file
    reached twice (through a link) is read by the first path in sorted order. hidden: also names starting with
    . or _; depth: how many folders down at most (None: all)."""
    found: list[tuple[str, tuple[int, int]]] = []
    root_stat = os.stat(root)
    seen_dirs = {(root_stat.st_dev, root_stat.st_ino)}
    stack = [(root, 0)]
    while stack:
        folder, level = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
        except OSError:
            continue  # unreadable: the files that matter are reported when read
        for entry in entries:
            if not hidden and _hidden(entry.name):
                continue
            st = _stat_link(entry.path, links) if entry.is_symlink() else entry.stat(follow_symlinks=False)
            if st is None:
                continue
            key = (st.st_dev, st.st_ino)
            if stat.S_ISDIR(st.st_mode):
                if depth is not None and level >= depth:
                    continue
                if key in seen_dirs:
                    links.again.append(entry.path)
                else:
                    seen_dirs.add(key)
                    stack.append((entry.path, level + 1))
            elif stat.S_ISREG(st.st_mode):
                found.append((entry.path, key))
    return found


def folder_files(root: str, links: Links) -> list[str]:
    """The data files of a local folder, sorted, each real file once; names starting with . or _ skipped."""
    return _once(sorted(_walk(root, links)), links)


def _once(found: list[tuple[str, tuple[int, int]]], links: Links) -> list[str]:
    seen: set[tuple[int, int]] = set()
    paths = []
    for path, key in found:
        if key in seen:
            links.again.append(path)
        else:
            seen.add(key)
            paths.append(path)
    return paths


def _glob_regex(pattern: str) -> re.Pattern:
    """A glob as glob.glob(recursive=True) reads it: `**` any folders, `*` and `?` within one name and never a
    leading dot, [...] a class."""
    parts = []
    segments = pattern.split("/")
    for number, segment in enumerate(segments, start=1):
        if segment == "**":
            parts.append("(?:[^/.][^/]*/)*" + ("[^/.][^/]*/" if number == len(segments) else ""))
            continue
        text, i = "", 0
        while i < len(segment):
            c = segment[i]
            if c == "*":
                text += "[^/]*"
            elif c == "?":
                text += "[^/]"
            elif c == "[":
                j = i + 1 + (segment[i + 1:i + 2] == "!")
                j += segment[j:j + 1] == "]"  # a ] first in the class is one of its characters
                end = segment.find("]", j)
                if end < 0:
                    text += re.escape(c)
                else:
                    body = segment[i + 1:end]
                    body = "^" + body[1:] if body.startswith("!") else body
                    text += "[" + body.replace("\\", "\\\\") + "]"
                    i = end
            else:
                text += re.escape(c)
            i += 1
        if segment[:1] in ("*", "?", "["):
            text = "(?!\\.)" + text
        parts.append(text + "/")
    return re.compile("".join(parts)[:-1])


def glob_local(pattern: str, links: Links) -> list[str]:
    """glob.glob(pattern, recursive=True), but through _walk: a folder loop (sub/up -> ..) is walked
    once, not 40 levels deep (exponentially so with two), and each real file is matched once."""
    base = pattern
    while any(c in base for c in _GLOB_CHARS):
        base = os.path.dirname(base)
    if not os.path.isdir(base):
        return []
    rest = pattern[len(base):].lstrip("/")
    depth = None if "**" in rest.split("/") else rest.count("/")
    regex = _glob_regex(pattern)
    walked = Links(links.spec)
    found = [(p, key) for p, key in _walk(base, walked, hidden=True, depth=depth) if regex.fullmatch(p)]
    # Only the links the pattern names are news: a dangling b.csv says nothing about *.jsonl.
    links.dangling += [p for p in walked.dangling if regex.fullmatch(p)]
    links.looping += [p for p in walked.looping if regex.fullmatch(p)]
    links.again += walked.again if "**" in rest.split("/") else []
    return _once(sorted(found), links)
