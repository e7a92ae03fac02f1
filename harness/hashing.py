"""Content hashing: the identity of every artifact, cache entry and manifest.

Identity is a content hash (DESIGN principle 1): a file hashes its bytes, a directory hashes its
files' relative paths and bytes in sorted order, and a config hashes its canonical JSON form
(sorted keys, no whitespace, UTF-8), so equal content always gives equal ids.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20
_IGNORED_DIRS = {".git", "__pycache__", ".cache", ".harness"}


def canonical_json(value: Any) -> str:
    """The canonical JSON form used for hashing: sorted keys, compact separators, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_json(value: Any) -> str:
    return sha256_text(canonical_json(value))


def sha256_parts(*parts: str) -> str:
    """Hash of several strings with unambiguous boundaries (length-prefixed)."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def iter_dir_files(root: Path) -> Iterable[Path]:
    """Files below ``root`` in a stable order (sorted POSIX relative paths), skipping caches."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_DIRS)
        for name in filenames:
            found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def sha256_dir(root: str | Path, file_hash: Callable[[Path], str] = sha256_file) -> str:
    """Hash a directory: relative path and content hash of each file, in sorted path order.

    ``file_hash`` lets a caller supply memoized file hashes; the directory hash is the same.
    """
    root = Path(root)
    h = hashlib.sha256()
    for file in iter_dir_files(root):
        rel = file.relative_to(root).as_posix()
        h.update(sha256_parts(rel, file_hash(file)).encode("ascii"))
    return h.hexdigest()


def sha256_path(path: str | Path) -> str:
    path = Path(path)
    return sha256_dir(path) if path.is_dir() else sha256_file(path)
