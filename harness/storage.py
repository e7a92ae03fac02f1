"""Filesystem helpers: atomic writes (nothing half-written) and the project's .harness layout."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes 0600 files: keep the mode of the file replaced, else the umask's default.
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, value: Any, *, indent: int | None = None) -> None:
    atomic_write_text(path, json.dumps(value, indent=indent, ensure_ascii=False, sort_keys=False) + "\n")


class Layout:
    """Where a project keeps its state: ``<home>/cache``, ``<home>/store``, ``<home>/runs``.

    ``home`` is ``$HARNESS_HOME`` if set, else ``.harness`` beside the manifest. The embedding and
    generation caches can be shared between projects with ``$HARNESS_CACHE_DIR``.
    """

    def __init__(self, home: str | Path) -> None:
        self.home = Path(home)
        cache_dir = os.environ.get("HARNESS_CACHE_DIR")
        self.cache_dir = Path(cache_dir) if cache_dir else self.home / "cache"

    @classmethod
    def for_manifest(cls, manifest_path: str | Path) -> Layout:
        """The project's state lives at its root: the nearest folder at or above the manifest's that holds
        a ``harness.toml``/``.yaml`` (so variant manifests in sub-folders share one store and cache)."""
        env = os.environ.get("HARNESS_HOME")
        if env:
            return cls(env)
        here = Path(manifest_path).resolve().parent
        for folder in (here, *here.parents):
            if any((folder / n).is_file() for n in ("harness.toml", "harness.yaml", "harness.yml")):
                return cls(folder / ".harness")
        return cls(here / ".harness")

    @property
    def cache_db(self) -> Path:
        return self.cache_dir / "cache.sqlite"

    @property
    def index_store(self) -> Path:
        return self.home / "store" / "indexes"

    @property
    def runs(self) -> Path:
        return self.home / "runs"

    @property
    def blobs(self) -> Path:
        return self.home / "store" / "blobs"

    @property
    def baseline_file(self) -> Path:
        return self.home / "baseline.json"
