"""The diff's calibration line is computed over real scores only (issue 10).

Relevant passages a run did not retrieve in its top k have no score. They used to get a stand-in
score below everything retrieved, so "the base's 90%-recall threshold" could land on the stand-in
and be reported as keeping 100% of relevant passages when 18% were never retrieved. Now the
retrieved share is reported on its own and the threshold, ECE and Brier see real scores only.

Hand-computed example (k = 10, relevance level 1):

    base  q1: a .95 (rel)  x .85  b .75 (rel)     c (rel) not retrieved
          q2: d .65 (rel)  y .45                  e (rel) not retrieved
    head  q1: x .85  a .55 (rel)  z .35           b, c (rel) not retrieved
          q2: d .72 (rel)  y .45                  e (rel) not retrieved

relevant in top-10: base 3/5 = 60%, head 2/5 = 40%. Base's retrieved relevant scores are .95, .75,
.65; 90% of 3 needs all 3, so the threshold is .65, which keeps 3/3 in base and 1/2 (.72, not .55)
in head. Raw ECE (scores clipped to [0, 1], 10 uniform bins, one item per bin) is the mean |y - p|:
base (.05 + .85 + .25 + .35 + .45) / 5 = .39, head (.85 + .45 + .35 + .28 + .45) / 5 = .476.
"""

from __future__ import annotations

import pytest

from harness.diff import compare
from harness.report.text import diff_markdown
from harness.stats import calibration_drift
from harness.stats.calibration import CLIP, brier_score, expected_calibration_error, fit_platt
from harness.types import Aggregates, CaseOutput, GoldenCase, Manifest, RankedDoc, RunResult

RELEVANCE = {"q1": {"a": 1, "b": 1, "c": 1}, "q2": {"d": 1, "e": 1}}
BASE = {"q1": [("a", 0.95), ("x", 0.85), ("b", 0.75)], "q2": [("d", 0.65), ("y", 0.45)]}
HEAD = {"q1": [("x", 0.85), ("a", 0.55), ("z", 0.35)], "q2": [("d", 0.72), ("y", 0.45)]}
BASE_REAL = ([0.95, 0.85, 0.75, 0.65, 0.45], [1, 0, 1, 1, 0])
HEAD_REAL = ([0.85, 0.55, 0.35, 0.72, 0.45], [0, 1, 0, 1, 0])


def _run(run_id: str, rankings: dict[str, list[tuple[str, float]]],
         relevance: dict[str, dict[str, int]] = RELEVANCE) -> RunResult:
    return RunResult(
        run_id=run_id, created_at="", manifest_id=run_id, manifest=Manifest(name=run_id, artifacts={}),
        cases=tuple(GoldenCase(id=q, query=q, relevance=rel) for q, rel in relevance.items()),
        outputs=tuple(CaseOutput(case_id=q, ranking=tuple(RankedDoc(doc_id=d, score=s) for d, s in r))
                      for q, r in rankings.items()),
        scores=(), aggregates=Aggregates(overall={}),
    )


def test_diff_reports_the_retrieved_share_apart_and_thresholds_over_real_scores() -> None:
    c = compare(_run("base", BASE), _run("head", HEAD)).calibration
    assert c is not None
    assert (c.k, c.n_base, c.n_head) == (10, 5, 5)  # scored pairs only: no stand-in for c, e, b
    assert (c.relevant_base, c.relevant_in_top_k_base, c.relevant_head, c.relevant_in_top_k_head) == (5, 3, 5, 2)
    assert c.in_top_k_share_base == pytest.approx(0.6) and c.in_top_k_share_head == pytest.approx(0.4)
    assert c.threshold == pytest.approx(0.65)  # a real score, not one below everything retrieved
    assert c.kept_base_at_threshold == pytest.approx(1.0) and c.kept_head_at_threshold == pytest.approx(0.5)
    assert c.raw_ece_base == pytest.approx(0.39) and c.raw_ece_head == pytest.approx(0.476)
    platt = fit_platt(*BASE_REAL)  # fitted on base's real pairs, applied unchanged to head
    assert c.brier_base == pytest.approx(brier_score(platt.apply(BASE_REAL[0]), BASE_REAL[1]))
    assert c.brier_head == pytest.approx(brier_score(platt.apply(HEAD_REAL[0]), HEAD_REAL[1]))
    assert c.ece_head == pytest.approx(expected_calibration_error(platt.apply(HEAD_REAL[0]), HEAD_REAL[1]))


def test_the_rendered_calibration_line_says_what_was_retrieved_and_what_the_threshold_keeps() -> None:
    md = diff_markdown(compare(_run("base", BASE), _run("head", HEAD)))
    (line,) = [ln for ln in md.splitlines() if ln.startswith("**Score calibration**")]
    assert "real scores only" in line
    assert "relevant passages in top-10: base 60% (3/5), head 40% (2/5)" in line
    assert "among them, base's 90%-recall threshold 0.6500 keeps 100% in base, 50% in head" in line


def test_unretrieved_relevant_passages_change_only_the_share() -> None:
    """Dropping the never-retrieved passages from the judgments leaves every score-based number as is."""
    judged_retrieved = {"q1": {"a": 1, "b": 1}, "q2": {"d": 1}}
    full = compare(_run("base", BASE), _run("head", HEAD)).calibration
    only = compare(_run("base", BASE, judged_retrieved), _run("head", HEAD, judged_retrieved)).calibration
    assert full is not None and only is not None
    assert only.in_top_k_share_base == pytest.approx(1.0) and only.in_top_k_share_head == pytest.approx(2 / 3)
    for name in ("threshold", "kept_base_at_threshold", "ece_base", "brier_base", "raw_ece_base", "n_base"):
        assert getattr(only, name) == pytest.approx(getattr(full, name)), name


def test_calibration_drift_takes_unretrieved_items_as_a_count() -> None:
    bs, by = BASE_REAL
    hs, hy = HEAD_REAL
    d = calibration_drift(bs, by, hs, hy, base_unretrieved=2, head_unretrieved=3)
    assert (d.base_relevant, d.head_relevant) == (5, 5)
    assert d.base_retrieved_share == pytest.approx(0.6) and d.head_retrieved_share == pytest.approx(0.4)
    assert d.threshold == pytest.approx(0.65) and d.base_recall == 1.0 and d.head_recall == 0.5
    assert d.raw_base.ece == pytest.approx(0.39) and d.raw_head.ece == pytest.approx(0.476)
    assert d.raw_base.brier == pytest.approx((0.05**2 + 0.85**2 + 0.25**2 + 0.35**2 + 0.45**2) / 5)
    assert d.raw_base.brier == pytest.approx(brier_score(CLIP.apply(bs), by))
    same = calibration_drift(bs, by, hs, hy)
    assert (same.threshold, same.platt, same.platt_head, same.raw_head) == (d.threshold, d.platt, d.platt_head,
                                                                            d.raw_head)
    assert same.base_retrieved_share == 1.0
    none = calibration_drift([0.3], [0], [0.2], [0], base_unretrieved=0)
    assert none.base_retrieved_share is None and none.threshold is None
    with pytest.raises(ValueError, match="base_unretrieved"):
        calibration_drift(bs, by, hs, hy, base_unretrieved=-1)


def test_the_html_report_says_the_same() -> None:
    from harness.report.html import render_html

    base, head = _run("base", BASE), _run("head", HEAD)
    html = render_html(head, base=base, diff=compare(base, head), corpus=False)
    assert "relevant passages in top-10: base 60% (3/5), head 40% (2/5)" in html
    assert "base's 90%-recall threshold 0.6500 keeps 100% in base and 50% in head" in html
