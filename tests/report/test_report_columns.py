"""`harness report` of a format-4 run reads it by columns (harness.report.html.build_report_table,
export.run_markdown_table / run_json_table): the header's aggregates, the value/tag/error/latency columns and
the records of the cases the page shows only. Those builders are the only ones: a RunResult (render_html,
run_markdown, run_json of the public API) and an old single-file run are served to them from memory. Over
generated runs with errors of several kinds, unscored values, explanations, diagnostics, tags one case lacks,
cache hits, a base with flips, no golden cases, and an old single-file run, the run stored and read by columns
reports byte for byte as the same run held in memory (the golden texts of tests/report/test_report_golden.py
pin what both say); segment sizes are checked against a re-count over the golden cases. A run larger than the
case table's cap lists the failing cases first and says on the page how many it left out."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any, Literal

import pytest

from harness.aggregate import aggregate
from harness.diff import DiffSettings, compare
from harness.metrics.ir import MetricInfo
from harness.report import FailurePolicy, render_html
from harness.report.export import (
    cache_hits,
    column_segment_sizes,
    run_json,
    run_json_table,
    run_markdown,
    run_markdown_table,
    table_cache_hits,
)
from harness.report.html import build_report, build_report_table, render_html_table, render_report
from harness.runs import RunStore, load_run, open_run
from harness.types import CaseError, CaseOutput, GoldenCase, RankedDoc, RunResult, Score
from tests.report.browser import Page

TEMPLATE = Path(__file__).parent.parent / "data" / "run_v1_errors.json"
AT_ZERO_ONE = {"answer_contains", "fact_recall", "instructions_strict", "format_critical_fail", "format_pass",
               "answer_em", "grounded", "truncated", "instructions_loose"}
ERRORS: list[tuple[Literal["retrieve", "generate"], str, str]] = [
    ("retrieve", "RuntimeError", "boom \"quoted\" <b>NaN</b>"), ("generate", "empty_response", "empty"),
    ("generate", "content_filter", "withheld\nthe answer")]


def make_run(n: int, seed: int, *, run_id: str, error_rate: float = 0.1, with_cases: bool = True,
             base_of: RunResult | None = None) -> RunResult:
    """A run of ``n`` cases shaped like a real one (every metric of the template run, its roles and
    directions): errors of three kinds, unscored values with reasons, explanations, tags (``difficulty``
    missing on some cases), latency and cache hits of two stages (supplied-output-like cases with a retrieve
    latency but no cache hit). ``base_of``: perturb that run's values (a head with flips against it)."""
    rng = random.Random(seed)
    tpl = load_run(TEMPLATE)
    infos = {m: MetricInfo(name=m, base=m, cutoff=None, greater_is_better=s.greater_is_better, description="",
                           role=s.role, label=s.label) for m, s in tpl.aggregates.overall.items()}
    metrics = list(tpl.aggregates.overall)
    base_vals = base_of.case_scores() if base_of is not None else {}
    cases, outputs, scores = [], [], []
    for i in range(n):
        cid = f"q{i:05d}" if i % 7 else f"case <{i}> & \"x\""
        tags = {"topic": rng.choice(["storage", "security", "misc"])}
        if rng.random() < 0.8:
            tags["difficulty"] = rng.choice(["easy", "hard"])
        rel = {f"d{j}": rng.choice([0, 1, 2]) for j in rng.sample(range(12), 3)}
        cases.append(GoldenCase(id=cid, query=f"query {i} about <{tags['topic']}>", relevance=rel, tags=tags,
                                answers=("hourly",)))
        ranking = tuple(RankedDoc(doc_id=f"d{j}", score=round(1.0 - k * 0.1 - rng.random() * 0.05, 6))
                        for k, j in enumerate(rng.sample(range(12), 5)))
        error = None
        if rng.random() < error_rate:
            stage, kind, msg = rng.choice(ERRORS)
            error = CaseError(stage=stage, kind=kind, message=f"{msg} #{i}")
        supplied = rng.random() < 0.15
        latency = {"retrieve": rng.random() * 0.01, "generate": rng.random()}
        hits = {} if supplied else {"retrieve": rng.random() < 0.5, "generate": rng.random() < 0.3}
        outputs.append(CaseOutput(case_id=cid, ranking=ranking, ranking_scored=not supplied or i % 2 == 0,
                                  answer=None if error else f"answer {i}", error=error, latency_s=latency,
                                  cache_hits=hits))
        for m in metrics:
            if rng.random() < 0.05:
                continue  # a metric not scored for this case at all
            old = base_vals.get(cid, {}).get(m)
            if error is not None or rng.random() < 0.08:
                value = None
            elif old is not None and rng.random() < 0.7:
                value = old if rng.random() < 0.6 else float(1.0 - old if m in AT_ZERO_ONE else
                                                               round(min(1.0, max(0.0, old + rng.gauss(0, .3))), 4))
            else:
                value = float(rng.random() < 0.5) if m in AT_ZERO_ONE else round(rng.random(), 4)
            expl = ("not applicable: " + rng.choice(["no answer", "no facts"]) if value is None
                    else "missed <d3>" if rng.random() < 0.2 else None)
            scores.append(Score(case_id=cid, metric=m, value=value, explanation=expl))
    agg = aggregate(cases, scores, infos)
    counts = {"cases": n, "errors": sum(1 for o in outputs if o.error), "unscored": sum(1 for s in scores
                                                                                       if s.value is None)}
    return tpl.model_copy(update={
        "run_id": run_id, "cases": tuple(cases) if with_cases else (), "outputs": tuple(outputs),
        "scores": tuple(scores), "aggregates": agg, "counts": counts, "manifest_path": None})


def _store(tmp_path: Path, *runs: RunResult) -> list[Path]:
    return [RunStore(tmp_path / "runs").save(r) for r in runs]


def _v3(tmp_path: Path, run: RunResult) -> Path:
    """``run`` as a single-file (format 3) run file, which open_run loads whole."""
    path = tmp_path / "old" / run.manifest_id / f"{run.run_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run.model_dump_json(indent=1))
    return path


def segment_sizes(run: RunResult) -> dict[str, int]:
    """The oracle of column_segment_sizes: segment -> cases, counted over the run's golden cases in their order
    (a segment where it first occurs, a case's segments by tag key)."""
    sizes: dict[str, int] = {}
    for c in run.cases:
        for seg in c.segments():
            sizes[seg] = sizes.get(seg, 0) + 1
    return sizes


FAST = DiffSettings(n_resamples=300)  # the statistics are the diff's (tested there); a few resamples do here
POLICIES = [FailurePolicy(), FailurePolicy(thresholds={"answer_f1": 0.4, "unsupported_claims": 0.5})]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_stored_run_read_by_columns_reports_as_the_run_held_in_memory(tmp_path: Path, seed: int) -> None:
    base = make_run(80, seed, run_id=f"20260101T000000Z-b{seed:05d}")
    head = make_run(90, seed + 10, run_id=f"20260101T000001Z-h{seed:05d}", base_of=base,
                    error_rate=0.05 * seed)
    bpath, hpath = _store(tmp_path, base, head)
    bt, ht = open_run(bpath), open_run(hpath)
    bw, hw = bt.materialize(), ht.materialize()
    assert hw == load_run(hpath)
    policy = POLICIES[seed % 2]
    # no diff
    assert render_html_table(ht, policy=policy, corpus=False) == render_html(hw, policy=policy, corpus=False)
    # against a base: the same diff, computed as the command computes it (columns) and as the oracle (records)
    diff_cols = compare(bt.columns(metrics=None, tags=True, latency=True),
                        ht.columns(metrics=None, tags=True, latency=True), FAST)
    diff_whole = compare(bw, hw, FAST)
    assert diff_cols.model_dump() == diff_whole.model_dump()
    page = render_html_table(ht, base=bt, diff=diff_cols, base_how="given", policy=policy, corpus=False,
                             max_failing=7)
    assert page == render_html(hw, base=bw, diff=diff_whole, base_how="given", policy=policy, corpus=False,
                               max_failing=7)
    assert "cases-left-out" not in page and "cases-listed" not in page
    assert diff_whole.flips and "failing" in page
    # the other faces
    assert run_markdown_table(ht, diff_cols, policy) == run_markdown(hw, diff_whole, policy)
    assert run_markdown_table(ht, None, policy, max_failing=3) == run_markdown(hw, None, policy, max_failing=3)
    assert run_json_table(ht, diff_cols, policy) == run_json(hw, diff_whole, policy)
    assert table_cache_hits(ht, rows=17) == cache_hits(hw)
    sizes = column_segment_sizes(ht.columns(metrics=[], tags=True))
    assert list(sizes.items()) == list(segment_sizes(hw).items())


def test_a_run_without_golden_cases_and_an_old_run_file_report_the_same(tmp_path: Path) -> None:
    bare = make_run(40, 5, run_id="20260101T000002Z-nocase", with_cases=False)
    (path,) = _store(tmp_path, bare)
    table = open_run(path)
    whole = table.materialize()
    assert not whole.cases and table.columns().has_case() is not None
    assert render_html_table(table, corpus=False) == render_html(whole, corpus=False)
    assert run_json_table(table) == run_json(whole)
    old = make_run(50, 6, run_id="20260101T000003Z-oldrun")
    old_table = open_run(_v3(tmp_path, old))
    assert old_table.header.table is None  # loaded whole: served as a table all the same
    assert render_html_table(old_table, corpus=False) == render_html(old, corpus=False)
    assert run_markdown_table(old_table) == run_markdown(old)


def _rows(report_json: str) -> list[dict[str, Any]]:
    return list(json.loads(report_json)["cases"])


def test_a_run_over_the_cap_lists_its_failing_cases_first_and_says_how_many_it_left_out(tmp_path: Path) -> None:
    run = make_run(90, 7, run_id="20260101T000004Z-capped", error_rate=0.2)
    (path,) = _store(tmp_path, run)
    table = open_run(path)
    cap = 30
    capped = build_report_table(table, corpus=False, max_cases=cap, max_failing=5)
    full = build_report(run, corpus=False, max_failing=5)
    assert len(capped.cases) == cap and capped.cases_left_out == 90 - cap
    by_id = {r["id"]: r for r in full.cases}
    order = [r["id"] for r in full.cases]
    # every listed row is the whole report's row for that case, in run order
    assert [r["id"] for r in capped.cases] == sorted((r["id"] for r in capped.cases), key=order.index)
    assert all(r == by_id[r["id"]] for r in capped.cases)
    failing = [r["id"] for r in full.cases if r["st"] in ("fail", "error")]
    assert len(failing) >= cap  # this run fails more cases than the cap: the first `cap` of them are listed
    assert [r["id"] for r in capped.cases] == failing[:cap]
    # everything but the case table is the whole run's
    assert (capped.counts, capped.n_failing, capped.failing_truncated) == (full.counts, full.n_failing,
                                                                           full.failing_truncated)
    assert [f.case_id for f in capped.failing] == [f.case_id for f in full.failing]
    assert capped.metrics == full.metrics and capped.segment_tables == full.segment_tables
    page = render_report(capped)
    note = re.search(r'<p class="sub left-out" id="cases-left-out" role="note">(.*?)</p>', page, re.S)
    assert note is not None
    assert f"{cap:,} of 90 cases are listed" in note.group(1) and "60 are not" in note.group(1)
    assert "failing cases first" in note.group(1) and "--format json" in note.group(1)
    assert "All 30 cases are listed" not in page and "30 of 90 cases are listed (see the note above)" in page
    assert '<span id="cases-listed" class="sub">30 of 90 cases listed;</span>' in page
    assert page.count('id="cases-left-out"') == page.count('id="cases-listed"') == 1
    more = capped.n_failing - 5
    assert f"{more} more fail, 25 of them listed in the case table" in page and "more are in the case" not in page
    # with room to spare, the other cases follow worst first on the headline metric
    lenient = FailurePolicy(thresholds={"ndcg@10": 0.1}, at_zero=(), at_one=())
    full = build_report(run, corpus=False, policy=lenient)
    failing = [r["id"] for r in full.cases if r["st"] in ("fail", "error")]
    assert 10 < len(failing) < 60
    roomy = build_report_table(table, corpus=False, policy=lenient, max_cases=len(failing) + 10)
    by_id = {r["id"]: r for r in full.cases}
    assert all(r == by_id[r["id"]] for r in roomy.cases)
    extra = [r for r in roomy.cases if r["id"] not in set(failing)]
    assert len(extra) == 10 and len(roomy.cases) == len(failing) + 10
    at = json.loads(full.data_json)["metrics"].index("ndcg@10")
    chosen = [r["v"][at] for r in extra]
    rest = [r["v"][at] for r in full.cases if r["id"] not in set(failing) and r not in extra]
    assert all(v is not None for v in chosen)  # unscored ones come last
    assert max(chosen) <= min(v for v in rest if v is not None)


def refuse_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, loading a format-4 run whole (load_run, or materialize of its table) fails the test."""
    from harness.runs import RunTable

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("a format-4 run was loaded whole")

    import harness.baseline  # noqa: F401 - imported before load_run is patched (it binds load_run at import)

    for cls in RunTable.__subclasses__():
        if cls.__name__ == "_ParquetRun":
            monkeypatch.setattr(cls, "materialize", refuse)
    monkeypatch.setattr("harness.runs.load_run", refuse)


def test_the_report_command_never_loads_a_format_4_run_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    from click.testing import CliRunner

    from harness.commands.report import report as report_cmd

    base = make_run(60, 8, run_id="20260101T000005Z-cmdbas")
    head = make_run(60, 9, run_id="20260101T000006Z-cmdhed", base_of=base)
    bpath, hpath = _store(tmp_path, base, head)
    expected = render_html(load_run(hpath), base=load_run(bpath), diff=compare(load_run(bpath), load_run(hpath), FAST),
                           base_how=f"given: {bpath}", policy=FailurePolicy(), corpus=False)

    refuse_whole(monkeypatch)
    monkeypatch.chdir(tmp_path)
    out_html = tmp_path / "r.html"
    res = CliRunner().invoke(report_cmd, [str(hpath), "--against", str(bpath), "--no-corpus", "-o", str(out_html),
                                          "--resamples", "300"])
    assert res.exit_code == 0, res.output
    # the page (no manifest loaded: the run's own gates, none here) equals the whole-run oracle
    assert out_html.read_text() == expected
    for fmt in ("md", "json"):
        res = CliRunner().invoke(report_cmd, [str(hpath), "--format", fmt])
        assert res.exit_code == 0, res.output


SHOWN = """[...document.querySelectorAll("#case-rows tr")].filter(t => t.getClientRects().length)
  .map(t => t.getAttribute("data-id"))"""


def test_a_capped_report_works_in_a_browser_and_shows_its_note(tmp_path: Path, page: Page) -> None:
    run = make_run(90, 11, run_id="20260101T000007Z-browse", error_rate=0.2)
    (path,) = _store(tmp_path, run)
    report = build_report_table(open_run(path), corpus=False, max_cases=40)
    html = tmp_path / "capped.html"
    html.write_text(render_report(report), "utf-8")
    page.open(html.as_uri(), 1200)
    assert page.eval("document.documentElement.getAttribute('data-ready')") == "1"
    note = page.eval("document.getElementById('cases-left-out').textContent")
    assert "40 of 90 cases are listed" in note and "50 are not" in note
    assert page.eval("document.getElementById('cases-left-out').getClientRects().length") > 0
    count = page.eval("document.getElementById('cases-listed').parentNode.textContent")
    assert "40 of 90 cases listed; 40 cases (" in count and "showing 1\u201325" in count, count
    assert page.eval(SHOWN) == [r["id"] for r in report.cases[:25]]
    assert "page 1 of 2" in page.eval("document.getElementById('case-pager').textContent")
    assert page.eval("document.documentElement.scrollWidth") <= 1200
    w, h = page.screenshot(tmp_path / "capped.png", max_height=1400)
    assert w > 0 and h > 0


def test_attribution_means_from_columns_equal_the_means_over_the_records(tmp_path: Path) -> None:
    """harness attribute's per-metric means over the cases both runs have, read from a stored run's columns,
    an old single-file run and an in-memory run, equal those computed from the records (the former code)."""
    import math as _math

    import pyarrow.compute as pc

    from harness.aggregate import scored_mean
    from harness.attribute import _columns, _means

    base = make_run(70, 21, run_id="20260101T000008Z-attrba")
    head = make_run(80, 22, run_id="20260101T000009Z-attrhd", base_of=base)
    bpath, hpath = _store(tmp_path, base, head)
    ids_whole = {o.case_id for o in base.outputs} & {o.case_id for o in head.outputs}
    metrics = [*head.aggregates.metrics("quality"), "no_such_metric"]
    for run, stored in ((base, open_run(bpath)), (head, open_run(hpath)),
                        (head, open_run(_v3(tmp_path, head))), (head, head)):
        values = run.case_scores()
        expected = {m: scored_mean([values.get(c, {}).get(m) for c in ids_whole]) for m in metrics}
        bc, hc = _columns(open_run(bpath), None), _columns(open_run(hpath), None)


        ids = pc.filter(bc.case_ids, pc.is_in(bc.case_ids, value_set=hc.case_ids))
        got = _means(_columns(stored, metrics), ids, metrics)
        assert got == expected
        assert got["no_such_metric"] is None and all(v is None or _math.isfinite(v) for v in got.values())


def test_report_against_baseline_opens_the_run_of_an_earlier_commit(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``harness report --against baseline`` with neither a manifest baseline nor a promoted one: the base
    is the run of the manifest at an earlier git commit, found as ``resolve_base`` finds it (the opened
    run has no ``manifest_id`` attribute of its own: the found-how line reads it from the header)."""
    import subprocess

    from click.testing import CliRunner

    from harness.baseline import resolve_base, resolve_base_table, resolve_head, resolve_head_table, run_ref_table
    from harness.commands.report import report as report_cmd
    from harness.manifest import load_manifest, lock
    from harness.pipeline import run_manifest
    from harness.storage import Layout
    from tests.conftest import make_project

    manifest = make_project(tmp_path)
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], cwd=tmp_path, check=True)
    first = run_manifest(manifest).run
    text = manifest.read_text()
    assert "k = 5" in text
    manifest.write_text(text.replace("k = 5", "k = 3"))
    lock(manifest)
    subprocess.run([*git, "commit", "-qam", "v2"], cwd=tmp_path, check=True)
    second = run_manifest(manifest).run
    loaded, layout = load_manifest(manifest), Layout.for_manifest(manifest)
    found, how = resolve_base_table(loaded, layout)
    whole, how_whole = resolve_base(loaded, layout)
    assert found is not None and whole is not None
    assert found.header.run_id == whole.run_id == first.run_id and how == how_whole
    assert how == f"run of the manifest at an earlier commit ({first.manifest_id[:12]})"
    assert resolve_head_table(loaded, layout).header.run_id == resolve_head(loaded, layout).run_id == second.run_id
    assert run_ref_table(first.run_id, layout).header.run_id == first.run_id
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(report_cmd, ["--against", "baseline", "--manifest", str(manifest), "--no-corpus",
                                          "-o", str(tmp_path / "r.html"), "--resamples", "200"])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "r.html").read_text()
    assert f"compared with base <code>{first.run_id}</code>" in page and "at an earlier commit" in page


def test_a_run_the_store_would_not_save_is_refused_by_every_face_naming_why(tmp_path: Path) -> None:
    """The builders read one row per case: a run held in memory, or an old run file, with two outputs of a case,
    golden cases out of step with its outputs, a score of no output or two scores of a case and metric is
    refused (HarnessError; `harness report` exits 2 with one line), as the run store refuses to save it, not
    reported with rows merged."""
    from click.testing import CliRunner

    from harness.commands.report import report as report_cmd
    from harness.errors import HarnessError
    from harness.report import run_junit

    run = make_run(12, 31, run_id="20260101T000010Z-refuse")
    first = run.scores[0]
    bad = {
        "case 'q00003' has two outputs": {"outputs": (*run.outputs, run.outputs[3])},
        "golden cases and outputs are not of the same cases in the same order": {"cases": run.cases[::-1]},
        "a score of case 'nobody', which has no output": {
            "scores": (*run.scores, first.model_copy(update={"case_id": "nobody"}))},
        f"two scores of metric {first.metric!r} for case {first.case_id!r}": {"scores": (*run.scores, first)},
    }
    faces = [lambda r: render_html(r, corpus=False), run_markdown, run_json, run_junit]
    for i, (why, update) in enumerate(bad.items()):
        broken = run.model_copy(update=update)
        with pytest.raises(ValueError):
            RunStore(tmp_path / f"store{i}").save(broken)  # the store refuses it too
        for face in faces:
            with pytest.raises(HarnessError, match=re.escape(why)):
                face(broken)
        path = _v3(tmp_path / f"old{i}", broken)
        for fmt in ("html", "md", "json", "junit"):
            res = CliRunner().invoke(report_cmd, [str(path), "--format", fmt, "--no-corpus", "-o",
                                                  str(tmp_path / f"out{i}.{fmt}")])
            assert res.exit_code == 2 and why in res.output and not (tmp_path / f"out{i}.{fmt}").exists(), res.output
    for face in faces:  # and the run as it was is reported
        assert face(run)
