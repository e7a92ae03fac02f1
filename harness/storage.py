"""Filesystem helpers: atomic writes (nothing half-written) and the project's .harness layout."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; a path that cannot be written is one
    :class:`~harness.errors.HarnessError` (exit 2) ``cannot write PATH: reason``, nothing left behind."""
    atomic_write_chunks(path, (data,))


def check_writable(path: str | Path) -> None:
    """Raise the error :func:`atomic_write_bytes` would for ``path``, before anything is computed: its
    nearest existing ancestor must be a writable folder, and the path itself not a folder."""
    from harness.errors import HarnessError

    path = Path(path)
    if path.is_dir():
        raise HarnessError(f"cannot write {path}: it is a folder")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise HarnessError(f"cannot write {path}: {folder} is not a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise HarnessError(f"cannot write {path}: permission denied")
    try:  # a real probe: permissions, read-only or pseudo file systems (/proc) all answer here
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise HarnessError(f"cannot write {path}: {exc.strerror or exc}") from None


@contextmanager
def atomic_writer(path: str | Path) -> Iterator[IO[bytes]]:
    """A binary file to write ``path`` through, streamed: a temp file in the same folder (made with its
    parents), with the mode of the file it replaces (else the umask's default), fsynced and renamed onto
    ``path`` when the block ends; on any exception in the block the temp file is removed and ``path`` is
    left as it was. OS errors pass through as they are (:func:`atomic_write_bytes` and
    :func:`atomic_write_chunks` say them as one :class:`~harness.errors.HarnessError`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            # mkstemp makes 0600 files: keep the mode of the file replaced, else the umask's default.
            try:
                mode = path.stat().st_mode & 0o777
            except FileNotFoundError:
                umask = os.umask(0)
                os.umask(umask)
                mode = 0o666 & ~umask
            os.fchmod(fh.fileno(), mode)
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _ChunkFailed(Exception):
    """An exception raised while making a chunk of :func:`atomic_write_chunks` (not while writing it)."""


def atomic_write_chunks(path: str | Path, chunks: Iterable[bytes]) -> None:
    """Write the concatenation of ``chunks`` to ``path`` atomically (:func:`atomic_writer`), one chunk in
    memory at a time. Failing to write is one :class:`~harness.errors.HarnessError` ``cannot write PATH:
    reason``; an exception raised while making a chunk passes through as it is; either way nothing is left
    behind."""
    path = Path(path)
    it = iter(chunks)
    try:
        with atomic_writer(path) as fh:
            while True:
                try:
                    chunk = next(it)
                except StopIteration:
                    break
                except BaseException as exc:
                    raise _ChunkFailed() from exc
                fh.write(chunk)
    except _ChunkFailed as wrapped:
        cause = wrapped.__cause__
        assert cause is not None
        raise cause from cause.__cause__
    except OSError as exc:
        from harness.errors import HarnessError

        check_writable(path)  # the clearer reason (a file where a folder must be), if that is it
        raise HarnessError(f"cannot write {path}: {exc.strerror or exc}") from None


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, value: Any, *, indent: int | None = None) -> None:
    atomic_write_text(path, json.dumps(value, indent=indent, ensure_ascii=False, sort_keys=False) + "\n")


MANIFEST_NAMES = ("harness.toml", "harness.yaml", "harness.yml")


def project_root(manifest_path: str | Path) -> Path:
    """The project a manifest belongs to: the nearest folder at or above the manifest's that holds a
    ``harness.toml``/``.yaml`` (so variant manifests in sub-folders share one store and cache), else the
    manifest's own folder."""
    here = Path(manifest_path).resolve().parent
    for folder in (here, *here.parents):
        if any((folder / n).is_file() for n in MANIFEST_NAMES):
            return folder
    return here


class Layout:
    """Where a project keeps its state: ``<home>/cache``, ``<home>/store``, ``<home>/runs``.

    ``home`` is ``$HARNESS_HOME`` if set, else ``.harness`` at the project's root. The embedding and
    generation caches can be shared between projects with ``$HARNESS_CACHE_DIR``. ``project`` is the
    project's root folder when known: stored records name files relative to it, so a moved, copied or
    cloned project keeps working.
    """

    def __init__(self, home: str | Path, project: str | Path | None = None) -> None:
        self.home = Path(home)
        self.project = Path(project) if project is not None else None
        cache_dir = os.environ.get("HARNESS_CACHE_DIR")
        self.cache_dir = Path(cache_dir) if cache_dir else self.home / "cache"

    @classmethod
    def for_manifest(cls, manifest_path: str | Path) -> Layout:
        """The state of the project the manifest belongs to (see :func:`project_root`)."""
        root = project_root(manifest_path)
        env = os.environ.get("HARNESS_HOME")
        return cls(env if env else root / ".harness", project=root)

    @property
    def cache_db(self) -> Path:
        return self.cache_dir / "cache.sqlite"

    @property
    def index_store(self) -> Path:
        return self.home / "store" / "indexes"

    @property
    def corpus_store(self) -> Path:
        """Passage stores, one SQLite file per corpus content (:mod:`harness.corpus`)."""
        return self.home / "store" / "corpora"

    @property
    def runs(self) -> Path:
        return self.home / "runs"

    @property
    def blobs(self) -> Path:
        return self.home / "store" / "blobs"

    @property
    def baseline_file(self) -> Path:
        return self.home / "baseline.json"
