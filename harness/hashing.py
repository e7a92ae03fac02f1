"""Content hashing: the identity of every artifact, cache entry and manifest.

Identity is a content hash (DESIGN principle 1): a file hashes its bytes, a directory hashes its
files' relative paths and bytes in sorted order, and a config hashes its canonical JSON form
(sorted keys, no whitespace, UTF-8), so equal content always gives equal ids.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import OutsideProjectError

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


def iter_dir_files(root: Path, confine: Path | None = None) -> list[Path]:
    """Files below ``root`` in a stable order (sorted POSIX relative paths), skipping caches.

    Symlinked files and folders are followed (their content is what gets hashed and snapshotted),
    each folder once, so a link cycle ends. With ``confine``, a symlink whose target lies outside
    that folder raises :class:`OutsideProjectError` naming the link: a folder artifact cannot pull
    in files from elsewhere.
    """
    confine_real = None if confine is None else Path(os.path.realpath(confine))
    found: list[Path] = []
    visited: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:
            dirnames[:] = []
            continue
        visited.add(real)
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_DIRS)
        if confine_real is not None:
            for name in (*dirnames, *filenames):
                link = Path(dirpath) / name
                if link.is_symlink():
                    target = Path(os.path.realpath(link))
                    if not target.is_relative_to(confine_real):
                        raise OutsideProjectError(f"{link} is a symlink to {target}, outside the project "
                                                  f"({confine_real}); symlinks may not leave it")
        for name in filenames:
            found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def project_root(base_dir: Path) -> Path:
    """The folder artifact paths must stay in: the top of the git work tree holding ``base_dir`` (the
    manifest's folder), else the nearest folder at or above it holding a harness manifest (so variant
    manifests in sub-folders may use ``../golden``), else ``base_dir`` itself. Resolved (symlinks followed)."""
    here = Path(os.path.realpath(base_dir))
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    for folder in (here, *here.parents):
        if any((folder / n).is_file() for n in ("harness.toml", "harness.yaml", "harness.yml")):
            return folder
    return here


def confine_path(path: Path, root: Path) -> Path:
    """``path`` if it, and every symlink below it when it is a folder, stays inside ``root``; else
    :class:`OutsideProjectError` saying where it leads."""
    root_real = Path(os.path.realpath(root))
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(root_real):
        if real == Path(os.path.abspath(path)):
            raise OutsideProjectError(f"{real} is outside the project ({root_real})")
        raise OutsideProjectError(f"{path} leads to {real} through a symlink, outside the project ({root_real})")
    if real.is_dir():
        iter_dir_files(path, confine=root_real)
    return path


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
