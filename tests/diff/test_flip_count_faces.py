"""The text and markdown faces of a diff count every flipped case (``Diff.flips_total``) while showing
only the largest: a diff that kept only the shown flips (``compare(max_flips=...)``, what ``harness diff``
and ``harness gate`` ask for outside --json) renders exactly as the diff of every flip."""

from __future__ import annotations

import numpy as np
import pytest

from harness.diff import Diff, DiffSettings, compare
from harness.report.text import SHOWN_FLIPS_MD, SHOWN_FLIPS_TEXT, diff_markdown, flip_count, print_diff
from harness.types import Aggregates, CaseOutput, GoldenCase, Manifest, MetricSummary, RankedDoc, RunResult, Score


def _run(run_id: str, values: np.ndarray) -> RunResult:
    ids = [f"c{i:03d}" for i in range(len(values))]
    return RunResult(
        run_id=run_id, created_at="", manifest_id="m", manifest=Manifest(name="m", artifacts={}),
        cases=tuple(GoldenCase(id=c, query=c, relevance={"d1": 1}) for c in ids),
        outputs=tuple(CaseOutput(case_id=c, ranking=(RankedDoc(doc_id="d1", score=0.5),)) for c in ids),
        scores=tuple(Score(case_id=c, metric="ndcg", value=float(v)) for c, v in zip(ids, values, strict=True)),
        aggregates=Aggregates(overall={"ndcg": MetricSummary(mean=float(values.mean()), n=len(ids), n_unscored=0)}))


def _text(diff: Diff, capsys: pytest.CaptureFixture[str]) -> str:
    print_diff(diff)  # piped under pytest: plain text, 160 columns
    return capsys.readouterr().out


@pytest.mark.parametrize("n_moved", [0, 3, SHOWN_FLIPS_TEXT, SHOWN_FLIPS_MD + 1, 40])
def test_faces_of_a_diff_with_the_shown_flips_equal_those_with_all(n_moved: int,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(n_moved)
    base = rng.random(60) * 0.5
    head = base.copy()
    head[:n_moved] += 0.2 + rng.random(n_moved) * 0.3
    b, h = _run("b", base), _run("h", head)
    ds = DiffSettings(n_resamples=20)
    full = compare(b, h, ds)
    assert len(full.flips) == n_moved and flip_count(full) == n_moved
    md = compare(b, h, ds, max_flips=SHOWN_FLIPS_MD)
    text = compare(b, h, ds, max_flips=SHOWN_FLIPS_TEXT)
    assert len(md.flips) == min(n_moved, SHOWN_FLIPS_MD) and flip_count(md) == n_moved
    assert diff_markdown(md) == diff_markdown(full)
    assert _text(text, capsys) == _text(full, capsys)
    if n_moved > SHOWN_FLIPS_TEXT:
        assert f"... {n_moved - SHOWN_FLIPS_TEXT} more flipped cases" in _text(text, capsys)
    if n_moved:
        assert f"**Cases that flipped** ({n_moved}; top {min(n_moved, SHOWN_FLIPS_MD)} by impact)" in diff_markdown(md)
