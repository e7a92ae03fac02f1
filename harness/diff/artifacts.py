"""Which pinned artifacts changed between two runs: added, removed, or changed (version, sha256, the
flattened params that differ, and a unified diff of text artifacts when both files are at hand)."""

from __future__ import annotations

import difflib
from typing import Any

from harness.diff.records import ArtifactChange
from harness.storage import Layout
from harness.types import RunResult


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out |= _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def same_artifact(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Two pinned artifacts are the same when their content and settings are, wherever their path points."""
    if a is None or b is None:
        return a is b
    return all(a.get(k) == b.get(k) for k in ("kind", "version", "sha256", "params", "uri"))


def artifact_changes(base: RunResult, head: RunResult, layout: Layout | None = None) -> list[ArtifactChange]:
    from harness.manifest import Artifact
    from harness.snapshots import read_text_artifact

    ba, ha = base.manifest.get("artifacts", {}), head.manifest.get("artifacts", {})
    out: list[ArtifactChange] = []
    for role in sorted(set(ba) | set(ha)):
        b, h = ba.get(role), ha.get(role)
        if same_artifact(b, h):
            continue
        if b is None or h is None:
            present = h if b is None else b
            out.append(
                ArtifactChange(
                    role=role,
                    change="added" if b is None else "removed",
                    kind=present["kind"],
                    base_version=None if b is None else b.get("version"),
                    head_version=None if h is None else h.get("version"),
                    base_sha256=None if b is None else b.get("sha256"),
                    head_sha256=None if h is None else h.get("sha256"),
                )
            )
            continue
        fb, fh = _flatten(b.get("params", {})), _flatten(h.get("params", {}))
        params_diff = {k: [fb.get(k), fh.get(k)] for k in sorted(set(fb) | set(fh)) if fb.get(k) != fh.get(k)}
        text = None
        if layout is not None and b.get("path") and h.get("path"):
            tb = read_text_artifact(layout, Artifact.model_validate(b))
            th = read_text_artifact(layout, Artifact.model_validate(h))
            if tb is not None and th is not None and tb != th:
                text = "".join(
                    difflib.unified_diff(
                        tb.splitlines(True), th.splitlines(True), f"base/{b['path']}", f"head/{h['path']}", n=2
                    )
                )
        out.append(
            ArtifactChange(
                role=role,
                change="changed",
                kind=h["kind"],
                base_version=b.get("version"),
                head_version=h.get("version"),
                base_sha256=b.get("sha256"),
                head_sha256=h.get("sha256"),
                params_diff=params_diff or None,
                text_diff=text,
            )
        )
    return out
