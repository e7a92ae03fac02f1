"""The public API a notebook user meets: ``import harness`` is cheap, every exported name resolves, and
load -> run -> compare -> gate works through it alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import harness


def test_import_harness_loads_nothing_heavy() -> None:
    code = ("import sys, harness; heavy = [m for m in ('pydantic', 'click', 'numpy', 'harness.types', "
            "'harness.pipeline') if m in sys.modules]; print(heavy); assert not heavy")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_exported_name_resolves() -> None:
    for name in harness.__all__:
        assert getattr(harness, name) is not None, name
    assert set(harness.__all__) == set(harness._HOMES) | {"__version__"}  # the literal list cannot drift
    assert set(harness.__all__) <= set(dir(harness))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = harness.nope  # type: ignore[attr-defined]


def test_load_run_compare_gate_through_the_api(project: Path) -> None:
    loaded = harness.load_manifest(project)
    report = harness.run(project)
    head = report.run
    assert isinstance(head, harness.RunResult) and head.manifest_id == loaded.id
    assert harness.load_run(report.path).run_id == head.run_id

    diff = harness.compare(head, head)
    assert isinstance(diff, harness.Diff)
    assert diff.metrics and not any(d.significant for d in diff.metrics)

    drop = harness.GateRule(metric="ndcg@10", max_drop=0.05)
    floor = harness.GateRule(metric="ndcg@10", min=0.0)
    assert harness.gate([drop, floor], head, head).passed
    # no baseline: the drop rule cannot judge, so the gate fails closed (the floor still applies)
    verdict = harness.gate([drop, floor], head, None)
    assert not verdict.passed
    assert [r.status for r in verdict.results if r.rule == floor.label] == ["pass"]
    assert "ndcg@10" in harness.SCORERS.build("retrieval", {"metrics": ["ndcg@10"]}).metrics()[0].name
