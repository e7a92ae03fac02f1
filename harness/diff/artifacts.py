"""Which pinned artifacts changed between two runs: added, removed, or changed (version, sha256, the
flattened params that differ, and a unified diff of text artifacts when both files are at hand)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from harness.diff.records import ArtifactChange
from harness.storage import Layout
from harness.types import Artifact, Manifest, RunResult

MAX_DIFF_LINES = 200
"""Longest text diff of one artifact kept in a diff (and so in every report): outputs files and run files
change on thousands of lines, which no reader wants inline."""


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out |= _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def same_artifact(a: Artifact | None, b: Artifact | None) -> bool:
    """Two pinned artifacts are the same when their content and settings are, wherever their path points."""
    if a is None or b is None:
        return a is b
    return all(getattr(a, k) == getattr(b, k) for k in ("kind", "version", "sha256", "params", "uri"))


def artifact_changes(base: RunResult, head: RunResult, layout: Layout | None = None) -> list[ArtifactChange]:
    return manifest_changes(base.manifest, head.manifest, layout)


def manifest_changes(base: Manifest, head: Manifest, layout: Layout | None = None, *,
                     read_text: Callable[[Artifact], str | None] | None = None) -> list[ArtifactChange]:
    """What changed from manifest ``base`` to ``head``, per artifact role. A text diff is shown where both texts
    are at hand: from the snapshot store (``layout``), or else from ``read_text`` (for example a project file
    whose content still matches the artifact's pin)."""
    from harness.snapshots import read_text_artifact

    def text_of(art: Artifact) -> str | None:
        found = read_text_artifact(layout, art) if layout is not None else None
        return found if found is not None or read_text is None else read_text(art)

    ba, ha = base.artifacts, head.artifacts
    out: list[ArtifactChange] = []
    for role in sorted(set(ba) | set(ha)):
        b, h = ba.get(role), ha.get(role)
        if same_artifact(b, h):
            continue
        if b is None or h is None:
            out.append(
                ArtifactChange(
                    role=role,
                    change="added" if b is None else "removed",
                    kind=next(a.kind for a in (b, h) if a is not None),
                    base_version=None if b is None else b.version,
                    head_version=None if h is None else h.version,
                    base_sha256=None if b is None else b.sha256,
                    head_sha256=None if h is None else h.sha256,
                )
            )
            continue
        fb, fh = _flatten(b.params), _flatten(h.params)
        params_diff = {k: [fb.get(k), fh.get(k)] for k in sorted(set(fb) | set(fh)) if fb.get(k) != fh.get(k)}
        text = None
        if (layout is not None or read_text is not None) and b.path and h.path:
            tb = text_of(b)
            th = text_of(h)
            if tb is not None and th is not None and tb != th:
                lines = list(
                    difflib.unified_diff(
                        tb.splitlines(True), th.splitlines(True), f"base/{b.path}", f"head/{h.path}", n=2
                    )
                )
                if len(lines) > MAX_DIFF_LINES:  # a prompt's diff is read whole; a run file's is not
                    more = len(lines) - MAX_DIFF_LINES
                    lines = [*lines[:MAX_DIFF_LINES], f"... {more} more diff lines (the pins above name both files)\n"]
                text = "".join(lines)
        out.append(
            ArtifactChange(
                role=role,
                change="changed",
                kind=h.kind,
                base_version=b.version,
                head_version=h.version,
                base_sha256=b.sha256,
                head_sha256=h.sha256,
                params_diff=params_diff or None,
                text_diff=text,
            )
        )
    return out
