"""Content-addressed snapshots of a run's file artifacts, so diffs can show them and rollback and
attribution can put an earlier version back.

Each path artifact (prompt, index recipe, validators, golden set, corpus: anything under
``MAX_BYTES``) is copied once to ``<home>/store/blobs/<pin>/`` keeping its file name or tree. Models
referenced by uri are not copied: their pin identifies them and their package or cache keeps them.
A folder's snapshot holds exactly the files its pin covers; paths and symlinks leading out of the
project are refused (see :func:`harness.manifest.resolve_content`) unless the artifact opts in.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.hashing import iter_dir_files
from harness.storage import Layout
from harness.types import Artifact

MAX_BYTES = 256 * 1024 * 1024


def _size(path: Path, files: list[Path] | None) -> int:
    if files is None:
        return path.stat().st_size
    return sum(p.stat().st_size for p in files)


def _copy_tree(source: Path, files: list[Path], dest: Path) -> None:
    """Copy exactly the files the folder's pin covers (:func:`~harness.hashing.iter_dir_files`), symlinks
    as the content they point to, so the snapshot holds what was hashed and nothing from elsewhere."""
    dest.mkdir(parents=True)
    for file in files:
        target = dest / file.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)


def blob_path(layout: Layout, art: Artifact) -> Path | None:
    """Where the snapshot of ``art`` lives, if one was taken."""
    if art.sha256 is None or art.path is None:
        return None
    folder = layout.blobs / art.sha256
    target = folder / Path(art.path).name
    return target if target.exists() else None


@dataclass(frozen=True)
class SnapshotSource:
    """A pinned path artifact, where its content is (resolved by :func:`harness.pipeline.stage_inputs`, which
    refuses paths leaving the project unless the artifact opts in) and the root a folder's files must stay
    under (None: the artifact sets ``allow_outside``)."""

    artifact: Artifact
    path: Path
    confine: Path | None


def snapshot_artifacts(sources: Sequence[SnapshotSource], layout: Layout) -> None:
    for src in sources:
        art, source = src.artifact, src.path
        if art.path is None or art.sha256 is None:
            continue
        folder = layout.blobs / art.sha256
        target = folder / Path(art.path).name
        if target.exists() or not source.exists():
            continue
        files = None
        if source.is_dir():
            files = iter_dir_files(source, confine=src.confine)
        if _size(source, files) > MAX_BYTES:
            continue
        # Copy beside the target, then rename into place: a concurrent run or a crash never leaves a
        # half-copied snapshot, and the same content under other file names lives side by side.
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".snap-", dir=folder)) / target.name
        try:
            if files is not None:
                _copy_tree(source, files, tmp)
            else:
                shutil.copy2(source, tmp)
            try:
                tmp.rename(target)
            except OSError:
                if not target.exists():
                    raise
        finally:
            shutil.rmtree(tmp.parent, ignore_errors=True)


def read_text_artifact(layout: Layout, art: Artifact) -> str | None:
    """The text of a snapshotted single-file artifact (for diffs), or None."""
    path = blob_path(layout, art)
    if path is None or not path.is_file() or path.stat().st_size > 1024 * 1024:
        return None
    try:
        return path.read_text("utf-8")
    except UnicodeDecodeError:
        return None
