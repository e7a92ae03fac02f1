"""rollback_to a baseline manifest: what changed is reported per role, a role the baseline lacks included."""

from __future__ import annotations

import re
from pathlib import Path

from harness.baseline import rollback_to
from harness.manifest import load_manifest, lock
from harness.monitor.synthetic import StreamSpec
from harness.storage import Layout
from harness.testing.shadow import write_shadow_project


def test_a_role_the_baseline_lacks_is_removed_and_reported(tmp_path: Path) -> None:
    project = write_shadow_project(tmp_path / "p", base_url="http://127.0.0.1:9/v1",
                                   spec=StreamSpec(days=1, records_per_day=50), n_distractors=10)
    text = project.baseline.read_text()
    old = project.root / "variants" / "old.toml"
    no_validators = re.sub(r'\[artifacts\.validators\][^\[]*', "", text).replace('path = "', 'path = "../')
    old.write_text(no_validators)
    lock(old)
    current = load_manifest(project.baseline)
    changes = rollback_to(current, Layout.for_manifest(project.baseline), load_manifest(old).manifest,
                          "variants/old.toml")
    removed = [c for c in changes if c.removed]
    assert [c.role for c in removed] == ["validators"]
    assert removed[0].before_sha256 == current.manifest.artifacts["validators"].sha256
    after = load_manifest(project.baseline)
    assert "validators" not in after.manifest.artifacts
    pins = {role: (a.kind, a.sha256) for role, a in after.manifest.artifacts.items()}
    assert pins == {role: (a.kind, a.sha256) for role, a in load_manifest(old).manifest.artifacts.items()}
