"""One comparison: ``harness diff``, ``harness gate``, ``harness baseline promote`` and ``harness report``
give what :func:`harness.diff.compare` and :func:`harness.gates.gate` give when called directly, and the
reports render the :class:`~harness.diff.Diff` they are handed (they never compute one)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from harness.baseline import load_run_ref, resolve_base
from harness.cli import cli as harness_cli
from harness.diff import ArtifactChange, Diff, DiffSettings, compare
from harness.gates import gate
from harness.manifest import load_manifest, lock
from harness.storage import Layout
from tests.conftest import make_project

GATES = """
[[gates]]
metric = "ndcg@10"
max_drop = 0.05
require_significant = false

[[gates]]
name = "ndcg floor"
metric = "ndcg@10"
min = 0.99
"""


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(harness_cli, ["-q", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Base run promoted, then the head manifest (title-only embedding text) gated once through the CLI."""
    root = tmp_path_factory.mktemp("compare")
    make_project(root, lock=False)
    base_text = (root / "harness.toml").read_text() + GATES
    (root / "harness.toml").write_text(base_text.replace("min = 0.99", "min = 0.0"))
    (root / "head.toml").write_text(base_text.replace('text_fields = ["title", "text"]', 'text_fields = ["title"]'))
    lock(root / "harness.toml")
    lock(root / "head.toml")
    mp = pytest.MonkeyPatch()
    mp.delenv("HARNESS_HOME", raising=False)
    mp.delenv("HARNESS_CACHE_DIR", raising=False)
    mp.chdir(root)
    try:
        assert cli("run")[0] == 0
        assert cli("baseline", "promote")[0] == 0
        code, gate_json, err = cli("gate", "-f", "head.toml", "--format", "json")
        assert code == 1, gate_json + err
        code, diff_json, err = cli("diff", "-f", "head.toml", "--json")
        assert code == 0, err
        code, diff_md, err = cli("diff", "-f", "head.toml", "--format", "md")
        assert code == 0, err
        code, report_json, err = cli("report", "-f", "head.toml", "--against", "baseline", "--format", "json")
        assert code == 0, err
        code, _, promote_err = cli("baseline", "promote", "-f", "head.toml")
        assert code != 0
        loaded = load_manifest(root / "head.toml")
        layout = Layout.for_manifest(root / "head.toml")
        base, _ = resolve_base(loaded, layout)
        gated = json.loads(gate_json)
        head = load_run_ref(gated["verdict"]["head_run"], layout)
    finally:
        mp.undo()
    assert base is not None
    return {"root": root, "loaded": loaded, "layout": layout, "base": base, "head": head, "gate": gated,
            "diff": json.loads(diff_json), "md": diff_md, "report": json.loads(report_json),
            "promote_err": promote_err}


def test_cli_diff_is_compare(compared: dict) -> None:
    direct = compare(compared["base"], compared["head"], DiffSettings(), compared["layout"])
    assert compared["diff"] == direct.model_dump(mode="json")
    from harness.report.text import diff_markdown

    assert compared["md"] == diff_markdown(direct)


def test_cli_gate_is_gate(compared: dict) -> None:
    loaded = compared["loaded"]
    verdict = gate(loaded.manifest.gates, compared["head"], compared["base"], settings=DiffSettings(),
                   layout=compared["layout"])
    assert not verdict.passed
    assert compared["gate"]["verdict"] == verdict.model_dump(mode="json")
    assert verdict.diff is not None
    assert compared["gate"]["diff"] == verdict.diff.model_dump(mode="json")
    assert "diff" not in verdict.model_dump()  # published beside the verdict, never inside it


def test_promote_refuses_what_gate_fails(compared: dict) -> None:
    loaded = compared["loaded"]
    verdict = gate(loaded.manifest.gates, compared["head"], compared["base"])
    names = ", ".join(r.rule for r in verdict.failed)
    assert names and f"fails the gates ({names}); not promoted" in compared["promote_err"]


def test_report_json_carries_compare(compared: dict) -> None:
    direct = compare(compared["base"], compared["head"], DiffSettings(), compared["layout"])
    assert compared["report"]["diff"] == direct.model_dump(mode="json")


def test_gate_without_a_baseline_fails_drop_rules_unless_allowed(compared: dict) -> None:
    rules = compared["loaded"].manifest.gates
    strict = gate(rules, compared["head"], None)
    allowed = gate(rules, compared["head"], None, allow_no_baseline=True)
    assert strict.diff is None and strict.base_run is None
    drop = [r for r in strict.results if r.rule.startswith("ndcg@10 max_drop")]
    assert [r.status for r in drop] == ["fail"] and "no baseline" in drop[0].message
    assert [r.status for r in allowed.results if r.rule.startswith("ndcg@10 max_drop")] == ["skip"]


def _marked(diff: Diff) -> Diff:
    """The diff with a hand-made artifact change and an overall delta nothing could compute."""
    from dataclasses import replace

    first = diff.metrics[0]
    moved = first.model_copy(update={"comparison": replace(first.comparison, delta=0.123456)})
    return diff.model_copy(update={
        "artifacts": (*diff.artifacts, ArtifactChange(role="hand_made_role", change="added", kind="other")),
        "metrics": (moved, *diff.metrics[1:]),
    })


def test_reports_render_the_diff_they_are_given(compared: dict) -> None:
    from harness.report import FailurePolicy, render_html, run_markdown
    from harness.report.text import diff_markdown

    base, head = compared["base"], compared["head"]
    diff = _marked(compare(base, head))
    assert diff.metrics[0].delta == 0.123456
    md = diff_markdown(diff)
    assert "hand_made_role" in md and "+0.1235" in md
    assert "hand_made_role" in run_markdown(head, diff, FailurePolicy())
    html = render_html(head, base=base, diff=diff, corpus=False)
    assert "hand_made_role" in html and "+0.1235" in html


def test_report_never_computes_a_diff(compared: dict) -> None:
    from harness.report import render_html

    with pytest.raises(ValueError, match="pass both or neither"):
        render_html(compared["head"], base=compared["base"], corpus=False)


def test_metric_delta_holds_one_comparison_and_publishes_the_flat_layout(compared: dict) -> None:
    md = compare(compared["base"], compared["head"]).metrics[0]
    c = md.comparison
    assert (md.delta, md.p_value, md.ci_low, md.direction, md.n) == (c.delta, c.p_value, c.ci_low, c.direction, c.n)
    assert list(md.model_dump()) == [
        "metric", "segment", "greater_is_better", "role", "n", "n_base", "n_head", "base_mean", "head_mean", "delta",
        "rel_delta", "ci_low", "ci_high", "p_value", "p_adjusted", "significant", "in_family", "changed", "wins",
        "ties", "losses", "cohens_dz", "direction"]

