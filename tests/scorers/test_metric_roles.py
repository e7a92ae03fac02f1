"""Metric roles: the scorer declares each metric's role (quality / diagnostic) and direction, the run records
them, and every reader (reports, diff, flips, attribution) reads the record, never the metric's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.diff import compare
from harness.report.export import main_metrics, run_markdown
from harness.report.text import diff_markdown
from harness.types import MetricSummary, RunResult

VALIDATORS = ("format_fail:json_cited.parses", "format_fail:json_cited.cites", "format_fail:short_plain.words")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, RunResult]:
    """Two runs of the tiny generation project: base, and head with a 3-word limit that fails validators."""
    from harness.manifest import lock
    from harness.pipeline import run_manifest
    from tests.conftest import CONTRACTS, add_generation, make_project

    root = tmp_path_factory.mktemp("roles")
    make_project(root, lock=False)
    manifest = add_generation(root)
    base = run_manifest(manifest).run
    (root / "validators" / "contracts.toml").write_text(CONTRACTS.format(short_max_words=3))
    lock(manifest)
    return base, run_manifest(manifest).run


def test_the_scorers_declare_roles_and_the_run_records_them(runs: tuple[RunResult, RunResult]) -> None:
    from harness.contracts import load_contracts
    from harness.scorers.answer import validator_metrics

    run = runs[0]
    overall = run.aggregates.overall
    assert run.aggregates.metrics("diagnostic") == list(VALIDATORS)
    for name in VALIDATORS:
        s = overall[name]
        assert (s.role, s.label, s.greater_is_better) == ("diagnostic", name.split(":", 1)[1], False)
        assert all(ms[name].role == "diagnostic" for ms in run.aggregates.segments.values() if name in ms)
    assert {overall[m].role for m in overall if m not in VALIDATORS} == {"quality"}
    assert overall["format_critical_fail"].greater_is_better is False and overall["ndcg@10"].greater_is_better
    infos = validator_metrics(load_contracts(Path(run.manifest_path or "").parent / "validators"))
    assert [(i.name, i.role, i.label) for i in infos] == [(n, "diagnostic", n.split(":", 1)[1]) for n in VALIDATORS]


def _with_roles(run: RunResult, roles: dict[str, tuple[str, str | None]]) -> RunResult:
    """The run with some metrics' recorded role and label changed, names untouched."""
    def summary(m: str, s: MetricSummary) -> MetricSummary:
        if m not in roles:
            return s
        role, label = roles[m]
        return s.model_copy(update={"role": role, "label": label})

    agg = run.aggregates
    return run.model_copy(update={"aggregates": agg.model_copy(update={
        "overall": {m: summary(m, s) for m, s in agg.overall.items()},
        "segments": {seg: {m: summary(m, s) for m, s in ms.items()} for seg, ms in agg.segments.items()}})})


def test_reports_follow_the_recorded_role_not_the_name(runs: tuple[RunResult, RunResult]) -> None:
    # swap roles: a validator recorded as quality, answer_f1 recorded as a diagnostic labelled "F1 part"
    run = _with_roles(runs[1], {"format_fail:short_plain.words": ("quality", None),
                                "answer_f1": ("diagnostic", "F1 part")})
    shown = main_metrics(run)
    assert "format_fail:short_plain.words" in shown and "answer_f1" not in shown
    md = run_markdown(run)
    main_table, details = md.split("<details>", 1)
    assert "| format_fail:short_plain.words |" in main_table and "answer_f1" not in main_table
    assert "| F1 part |" in details.split("</details>", 1)[0]


def test_html_report_names_a_diagnostic_by_its_label_or_name(runs: tuple[RunResult, RunResult]) -> None:
    from harness.report.html import render_html

    # a plugin's diagnostic need not look like format_fail:<contract>.<check> (this used to be exit 3)
    run = _with_roles(runs[1], {"truncated": ("diagnostic", None), "answer_f1": ("diagnostic", "F1 part")})
    html = render_html(run)
    assert "<code>truncated</code>" in html and "<code>F1 part</code>" in html
    assert "<code>short_plain.words</code>" in html


def test_the_diff_carries_each_metric_s_role_and_readers_use_it(runs: tuple[RunResult, RunResult]) -> None:
    base, head = runs
    diff = compare(base, head)
    roles = {d.metric: d.role for d in diff.metrics}
    assert {m: roles[m] for m in VALIDATORS} == dict.fromkeys(VALIDATORS, "diagnostic")
    assert roles["format_pass"] == "quality" and all(d.direction in (None, "improved", "regressed", "unchanged")
                                                      for d in diff.metrics)
    assert diff.model_dump(mode="json")["metrics"][0]["role"] == "quality"
    md = diff_markdown(diff)
    assert "| format_pass |" in md and "| format_fail:" not in md
    causes = [c for f in diff.flips for c in f.causes]
    assert any(c.startswith("validator newly failing: ") and "short_plain.words" in c for c in causes), causes
    assert all("format_fail:" not in m for f in diff.flips for m in f.deltas)  # diagnostics do not flip a case

    # recorded as quality, the same metric is compared, shown and flipped like any other: no name is parsed
    b, h = (_with_roles(r, {"format_fail:short_plain.words": ("quality", None)}) for r in runs)
    swapped = compare(b, h)
    assert "| format_fail:short_plain.words |" in diff_markdown(swapped)
    assert any("format_fail:short_plain.words" in f.deltas for f in swapped.flips)
