"""harness report: markdown, JSON and JUnit exports, and the self-contained HTML report rendered by a real
headless browser (chromium --dump-dom: the DOM after the report's own script ran)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from click.testing import CliRunner

from harness.commands.report import report as report_cmd
from harness.diff import Diff, compare
from harness.errors import HarnessError
from harness.gates import Verdict, evaluate_gates
from harness.manifest import lock
from harness.pipeline import run_manifest
from harness.report import (
    FailurePolicy,
    build_report,
    find_failures,
    parse_thresholds,
    render_html,
    run_dict,
    run_json,
    run_junit,
    run_markdown,
)
from harness.storage import Layout
from harness.types import CaseError, GateRule, RunResult
from tests.conftest import add_generation, make_project
from tests.report.browser import OVERFLOW, Page, find_chromium

# Text that must come out as text: if any of it were parsed as markup, the browser test would see it.
HOSTILE = (
    '</script><script>document.body.setAttribute("data-pwned","1")</script>'
    "<img src=x onerror=\"document.body.setAttribute('data-pwned','2')\"> & <!--"
)


@dataclass
class Project:
    root: Path
    manifest: Path
    base: RunResult
    head: RunResult
    diff: Diff


def _add_generation(root: Path) -> Path:
    updates = {
        0: {"answers": ["hourly"], "facts": [{"text": "seven days"}], "contract": "json_cited"},
        1: {"answers": ["every ninety days"], "contract": "short_plain"},  # the 3-word limit fails: critical
        2: {"answers": ["a completely different answer"]},
    }
    return add_generation(root, short_max_words=3, case_updates=updates)


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """Two runs of the tiny project: base, then head with k = 2 and a reworded prompt."""
    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HARNESS_HOME", raising=False)
        mp.delenv("HARNESS_CACHE_DIR", raising=False)
        make_project(root, lock=False)
        manifest = _add_generation(root)
        base = run_manifest(manifest).run
        manifest.write_text(manifest.read_text().replace("k = 5,", "k = 2,"))
        prompt = root / "prompts" / "answer.toml"
        prompt.write_text(prompt.read_text().replace("Q: ", "Question: "))
        lock(manifest)
        head = run_manifest(manifest).run
    diff = compare(base, head, layout=Layout.for_manifest(manifest))
    return Project(root, manifest, base, head, diff)


def _with_error_and_hostile_text(run: RunResult) -> RunResult:
    """q1's generation failed; q3's query and tags carry markup-like text (the report must escape it)."""
    cases = tuple(c.model_copy(update={"query": c.query + " " + HOSTILE, "tags": c.tags | {"note": HOSTILE}})
                  if c.id == "q3" else c for c in run.cases)
    error = CaseError(stage="generate", kind="server_error", message="HTTP 500 " + HOSTILE)
    outputs = tuple(o.model_copy(update={"error": error, "answer": None})
                    if o.case_id == "q1" else o for o in run.outputs)
    return run.model_copy(update={"cases": cases, "outputs": outputs})


# ---- failing cases -------------------------------------------------------------------------------------


def test_failing_cases_follow_the_documented_definition(proj: Project) -> None:
    run = proj.head
    values = run.case_scores()
    failures = find_failures(run)
    # q2's answer breaks its contract's critical 3-word limit; q3's answer misses its reference answer
    assert "format_critical_fail" in failures["q2"].metrics
    assert any(r.startswith("format_critical_fail: words:") for r in failures["q2"].reasons)
    assert values["q3"]["answer_contains"] == 0.0 and "answer_contains" in failures["q3"].metrics
    # q4 has no judgments, answers or contract: only its groundedness (and truncation) is scored, and it never fails
    grounding = {"groundedness", "grounded", "unsupported_claims", "truncated"}
    assert all(v is None for m, v in values["q4"].items() if m not in grounding) and "q4" not in failures
    assert values["q4"]["groundedness"] is not None
    # the default threshold is the first retrieval metric at 0.5
    assert FailurePolicy().resolved_thresholds(run) == {"ndcg@10": 0.5}
    for cid, f in failures.items():
        if "ndcg@10" in f.metrics:
            assert (values[cid]["ndcg@10"] or 0) < 0.5
    strict = FailurePolicy(thresholds=parse_thresholds(["recall@5=1.01"], run))
    judged = [c for c, v in values.items() if v["recall@5"] is not None]
    assert set(judged) <= set(find_failures(run, strict))
    errored = _with_error_and_hostile_text(run)
    f1 = find_failures(errored)["q1"]
    assert f1.error and f1.reasons[0].startswith("generate error: HTTP 500")
    for bad in (["ndcg@10"], ["ndcg@10=x"], ["nope@3=0.5"]):
        with pytest.raises(HarnessError):
            parse_thresholds(bad, run)


# ---- markdown, JSON, JUnit ----------------------------------------------------------------------------


def test_markdown_has_summary_segments_failing_cases_and_the_diff(proj: Project) -> None:
    md = run_markdown(proj.head, proj.diff)
    assert md.startswith(f"## harness report: run `{proj.head.run_id}`")
    mean = proj.head.aggregates.overall["ndcg@10"].mean
    assert f"| ndcg@10 | {mean:.4f} | 3 | 1 | higher |" in md
    assert "| topic=storage | 2 |" in md and "**Segments**" in md
    assert "**Failing cases**" in md and "| `q2` |" in md
    assert "<summary>Per-validator failure rates</summary>" in md and "| json_cited.parses |" in md
    # the diff part is harness.report.text.diff_markdown, unchanged
    assert f"### Diff: base `{proj.base.run_id}` -> head `{proj.head.run_id}`" in md
    assert "- `retriever` (retriever) changed" in md and "`k`: `5` -> `2`" in md
    assert "<details><summary>prompt diff</summary>" in md and "+{% endfor %}Question: {{ query }}" in md
    hostile = run_markdown(_with_error_and_hostile_text(proj.head))
    row = next(line for line in hostile.splitlines() if line.startswith("| `q1` |"))
    assert row.count(" | ") == 2  # pipes in cell text are escaped, so the row keeps its 3 cells
    assert run_markdown(proj.head).count("### Diff") == 0


def test_json_parses_with_run_id_aggregates_failing_and_diff(proj: Project) -> None:
    data = json.loads(run_json(proj.head, proj.diff))
    assert data["run_id"] == proj.head.run_id and data["manifest_id"] == proj.head.manifest_id
    assert data["aggregates"]["overall"]["ndcg@10"]["mean"] == proj.head.aggregates.overall["ndcg@10"].mean
    assert data["aggregates"]["segments"]["topic=storage"]["recall@5"]["n"] == 2
    assert data["segment_sizes"]["topic=storage"] == 2
    assert {f["case_id"] for f in data["failing"]} == set(find_failures(proj.head))
    assert data["diff"]["base_run"] == proj.base.run_id and data["diff"]["head_run"] == proj.head.run_id
    assert data["cache_hits"]["retrieve"]["cases"] == 4
    assert json.loads(run_json(proj.head))["diff"] is None
    assert run_dict(proj.head)["failing_definition"].startswith("a case fails on an error")


def _all_unscored(run: RunResult, case_id: str) -> RunResult:
    scores = tuple(s.model_copy(update={"value": None}) if s.case_id == case_id else s for s in run.scores)
    return run.model_copy(update={"scores": scores})


def test_junit_has_one_testcase_per_case(proj: Project) -> None:
    run = _all_unscored(_with_error_and_hostile_text(proj.head), "q4")
    suite = ET.fromstring(run_junit(run))
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [o.case_id for o in run.outputs]
    by = {c.get("name"): c for c in cases}
    err = by["q1"].find("error")
    assert err is not None and err.get("type") == "generate" and HOSTILE in (err.get("message") or "")
    failure = by["q2"].find("failure")
    assert failure is not None and "format_critical_fail" in (failure.get("message") or "")
    assert by["q4"].find("skipped") is not None  # every metric unscored
    assert "ndcg@10=" in (by["q3"].findtext("system-out") or "")
    n_fail = sum(1 for c in cases if c.find("failure") is not None)
    assert suite.get("tests") == "4" and suite.get("failures") == str(n_fail) and suite.get("errors") == "1"
    assert suite.get("skipped") == "1"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["run_id"] == run.run_id


# ---- the command -----------------------------------------------------------------------------------------


def test_command_formats_default_paths_and_errors(proj: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(proj.root)
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    runner = CliRunner()
    out = runner.invoke(report_cmd, ["--format", "json", "--against", proj.base.run_id])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["run_id"] == proj.head.run_id and data["diff"]["base_run"] == proj.base.run_id

    out = runner.invoke(report_cmd, [])  # html, latest run of the current manifest, default path
    assert out.exit_code == 0, out.output
    path = Path(out.stdout.strip())
    assert path == proj.root / ".harness" / "reports" / f"{proj.head.run_id}.html" and path.is_file()

    junit = proj.root / "cases.xml"
    out = runner.invoke(report_cmd, [proj.base.run_id, "--format", "junit", "-o", str(junit)])
    assert out.exit_code == 0, out.output
    assert len(ET.parse(junit).getroot().findall("testcase")) == 4

    out = runner.invoke(report_cmd, ["--format", "md", "--fail-below", "recall@5=2"])
    assert out.exit_code == 0 and "recall@5 < 2" in out.stdout

    out = runner.invoke(report_cmd, ["--against", "baseline"])  # nothing promoted, no git history
    assert out.exit_code == 2 and "nothing to compare with" in out.output
    out = runner.invoke(report_cmd, ["--fail-below", "bogus=1"])
    assert out.exit_code == 2 and "bogus" in out.output
    out = runner.invoke(report_cmd, ["no-such-run"])
    assert out.exit_code == 2 and "no run matching" in out.output


# ---- HTML -------------------------------------------------------------------------------------------------


def test_html_is_self_contained_and_escaped(proj: Project) -> None:
    run = _with_error_and_hostile_text(proj.head)
    html = render_html(run, base=proj.base, diff=proj.diff, layout=Layout.for_manifest(proj.manifest))
    assert not re.search(r"""(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert not re.search(r"url\(\s*['\"]?\s*(?:https?:)?//|@import", html, re.I)
    assert "<script src" not in html and "<link" not in html
    assert "default-src 'none'" in html  # CSP: the file can fetch nothing even if a value slipped through
    assert 'document.body.setAttribute("data-pwned"' not in html.replace("\\u003c", "<")
    assert "&lt;/script&gt;&lt;script&gt;" in html  # the failing case's query, as text
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert data is not None and "</" not in data.group(1)
    payload = json.loads(data.group(1))
    assert [c["id"] for c in payload["cases"]] == ["q1", "q2", "q3", "q4"]
    assert payload["cases"][2]["q"].endswith(HOSTILE)  # the raw text survives the JSON escaping
    assert payload["diff"]["base"] == proj.base.run_id
    # corpus titles and snippets come from the run's snapshot; without a corpus, ids only
    assert "Backups run hourly" in html
    assert "Backups run hourly" not in render_html(run, corpus=False)


def test_html_renders_a_thousand_cases(proj: Project) -> None:
    """Not a timing assertion (see `make bench`): 1,000 cases render, and the case table data holds them all."""
    n = 250
    run = proj.head
    cases, outputs, scores = [], [], []
    for k in range(n):
        cases += [c.model_copy(update={"id": f"{c.id}-{k}"}) for c in run.cases]
        outputs += [o.model_copy(update={"case_id": f"{o.case_id}-{k}"}) for o in run.outputs]
        scores += [s.model_copy(update={"case_id": f"{s.case_id}-{k}"}) for s in run.scores]
    big = run.model_copy(update={"cases": tuple(cases), "outputs": tuple(outputs), "scores": tuple(scores)})
    rep = build_report(big, corpus=False, max_failing=100)
    assert len(json.loads(rep.data_json)["cases"]) == 4 * n
    assert len(rep.failing) == 100 and rep.failing_truncated == len(find_failures(big)) - 100


def _chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    return path


def _dump_dom(url: str, tmp: Path, timeout: float = 60.0) -> str:
    """The DOM after scripts ran. Chromium runs in its own process group, killed whole on timeout."""
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp}", "--virtual-time-budget=5000", "--dump-dom", url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium did not finish within {timeout}s")
    assert proc.returncode == 0, f"chromium exited with {proc.returncode}"
    return out


# Appended to a copy of the report: clicks and types like a user, then records the row order it saw.
PROBE = """<script>
(function () {
  var ids = function () { return Array.from(document.querySelectorAll("#case-rows tr")).map(function (tr) {
    return tr.getAttribute("data-id"); }); };
  var click = function (label) { Array.from(document.querySelectorAll("#case-head button")).find(function (b) {
    return b.textContent === label; }).click(); };
  var seen = {initial: ids()};
  click("ndcg@10"); seen.first = ids();
  click("ndcg@10"); seen.second = ids();
  var box = document.getElementById("case-filter");
  box.value = "topic=storage"; box.dispatchEvent(new Event("input"));
  setTimeout(function () {
    seen.filtered = ids();
    var only = document.getElementById("failing-only");
    only.checked = true; only.dispatchEvent(new Event("change"));
    seen.failing = ids();
    document.body.setAttribute("data-probe", JSON.stringify(seen));
  }, 300);
})();
</script>"""


def test_html_in_a_real_browser(proj: Project, tmp_path: Path) -> None:
    run = _with_error_and_hostile_text(proj.head)
    path = tmp_path / "report.html"
    html = render_html(run, base=proj.base, diff=proj.diff, layout=Layout.for_manifest(proj.manifest))
    path.write_text(html, "utf-8")
    dom = _dump_dom(path.as_uri(), tmp_path / "profile")
    assert 'data-ready="1"' in dom  # the report's script ran to the end
    assert 'data-pwned="' not in dom  # no value was parsed as markup or script (the text itself is shown)
    assert "setAttribute(&quot;data-pwned" in dom or 'setAttribute("data-pwned' in dom
    body = re.search(r'<tbody id="case-rows">(.*?)</tbody>', dom, re.S)
    assert body is not None
    rows = re.findall(r'<tr class="st-(\w+)" data-id="([^"]*)"', body.group(1))
    assert [r[1] for r in rows] == ["q1", "q2", "q3", "q4"]
    assert dict((cid, st) for st, cid in rows)["q1"] == "error"
    assert re.search(r'<input[^>]*id="case-filter"', dom) and re.search(r'<input[^>]*id="failing-only"', dom)
    head = re.search(r'<thead id="case-head">(.*?)</thead>', dom, re.S)
    n_metrics = len(json.loads(build_report(run, corpus=False).data_json)["metrics"])
    assert head is not None and head.group(1).count("data-col=") == 4 + n_metrics + 1  # id, query, tags, status, delta
    assert re.search(r'<div id="scatter"[^>]*><svg', dom) and "<circle" in dom  # base-vs-head scatter drawn
    assert re.search(r'<select id="diff-metric"[^>]*>\s*<option', dom)

    # state from the URL: failing only, sorted by ndcg@10 descending
    n_failing = len(find_failures(run))
    dom = _dump_dom(path.as_uri() + "#failing=1&sort=ndcg@10&dir=desc", tmp_path / "profile")
    body = re.search(r'<tbody id="case-rows">(.*?)</tbody>', dom, re.S)
    assert body is not None
    shown = re.findall(r'<tr class="st-(\w+)" data-id="([^"]*)"', body.group(1))
    assert len(shown) == n_failing and {st for st, _ in shown} <= {"fail", "error"}
    values = run.case_scores()
    ndcg = [values[cid]["ndcg@10"] for _, cid in shown]
    known = [v for v in ndcg if v is not None]
    assert known == sorted(known, reverse=True) and ndcg[: len(known)] == known  # unscored last
    assert f"{n_failing} of 4 cases" in dom

    # clicks and typing: sort ascending then descending (unscored last both ways), filter, failing only
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(html.replace("</body>", PROBE + "</body>"), "utf-8")
    dom = _dump_dom(probe_page.as_uri(), tmp_path / "profile")
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found is not None, "the interaction probe did not finish"
    seen = json.loads(unescape(found.group(1)))
    scored = {c: v["ndcg@10"] for c, v in values.items() if v["ndcg@10"] is not None}
    unscored = [c for c in ["q1", "q2", "q3", "q4"] if c not in scored]
    assert seen["initial"] == ["q1", "q2", "q3", "q4"]
    # a metric column sorts worst-first on the first click (lowest ndcg on top), ties in case order
    assert seen["first"] == sorted(scored, key=lambda c: scored[c]) + unscored
    assert seen["second"] == sorted(scored, key=lambda c: -scored[c]) + unscored
    assert sorted(seen["filtered"]) == ["q1", "q3"]  # the storage topic
    assert seen["failing"] == [c for c in seen["filtered"] if c in find_failures(run)]


# ---- the report's layout in a real browser, at a desktop and a phone width ----------------------------------

SHOWN_ROWS = """[...document.querySelectorAll("#case-rows tr")].filter(t => t.getClientRects().length)
  .map(t => t.getAttribute("data-id"))"""


def _big_pair(proj: Project, copies: int = 30) -> tuple[RunResult, RunResult]:
    """base and head with 4 x ``copies`` cases: enough for several pages and real flips."""
    def grow(run: RunResult) -> RunResult:
        cases, outputs, scores = [], [], []
        for k in range(copies):
            cases += [c.model_copy(update={"id": f"{c.id}-{k:02d}"}) for c in run.cases]
            outputs += [o.model_copy(update={"case_id": f"{o.case_id}-{k:02d}"}) for o in run.outputs]
            scores += [s.model_copy(update={"case_id": f"{s.case_id}-{k:02d}"}) for s in run.scores]
        return run.model_copy(update={"cases": tuple(cases), "outputs": tuple(outputs), "scores": tuple(scores)})

    return grow(proj.base), grow(proj.head)


@pytest.fixture(scope="module")
def big_report(proj: Project, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunResult, Verdict]:
    base, head = _big_pair(proj)
    diff = compare(base, head, layout=Layout.for_manifest(proj.manifest))
    rules = [GateRule(metric="ndcg@10", max_drop=0.05), GateRule(metric="recall@5", min=0.1)]
    verdict = evaluate_gates(rules, head, diff, base=base)
    html = render_html(head, base=base, diff=diff, layout=Layout.for_manifest(proj.manifest), verdict=verdict)
    path = tmp_path_factory.mktemp("big") / "report.html"
    path.write_text(html, "utf-8")
    return path, head, verdict



def test_html_opens_on_the_summary_with_one_page_of_cases(big_report: tuple[Path, RunResult, Verdict],
                                                          page: Page, tmp_path: Path) -> None:
    path, head, verdict = big_report
    n = len(head.outputs)
    html = path.read_text("utf-8")
    # every row is in the file itself, so the table works without JavaScript
    body = re.search(r'<tbody id="case-rows">(.*?)</tbody>', html, re.S)
    assert body is not None and len(re.findall(r"<tr ", body.group(1))) == n

    page.open(path.as_uri(), 1400)
    assert page.eval("document.documentElement.getAttribute('data-ready')") == "1"
    m = page.eval(OVERFLOW)
    # the report of 120 cases opens on summary, verdict, changes and one page of cases: a few screens, not
    # the ~30,000 px it was with every table and failing case open (the flips and cases set most of it)
    assert m["height"] < 7000, m
    assert m["overflowing"] == [] and m["scroll_width"] <= 1400
    assert page.eval(SHOWN_ROWS) == [o.case_id for o in head.outputs[:25]]
    assert "page 1 of 5" in page.eval("document.getElementById('case-pager').textContent")
    opened = page.eval("[...document.querySelectorAll('details.section')].map(d => d.id + ':' + d.open)")
    assert opened == ["metrics:false", "segments:false", "failing:false", "run:false"]
    gate = page.eval("document.querySelector('.verdict .headline').textContent")
    assert ("Gate PASSED" if verdict.passed else "Gate FAILED") in gate and f"of {len(verdict.results)} checks" in gate
    assert page.eval("!!document.querySelector('#changes') && document.querySelector('#changes').offsetHeight > 0")

    # the pager and the filter: the next page, then a search that fits one page
    page.eval("document.querySelector('#case-pager button[aria-label=\"next page\"]').click()")
    assert page.eval(SHOWN_ROWS) == [o.case_id for o in head.outputs[25:50]]
    page.eval("const f = document.getElementById('case-filter'); f.value = 'q3-0'; f.dispatchEvent(new Event('input'))")
    page.eval("new Promise(r => setTimeout(r, 300))")
    assert page.eval(SHOWN_ROWS) == [f"q3-{k:02d}" for k in range(10)]
    assert page.eval("document.getElementById('case-pager').hidden")

    # a link from the case table to a failing case opens the closed section it is in
    page.eval("document.getElementById('case-filter').value = ''; document.getElementById('case-filter')"
              ".dispatchEvent(new Event('input'))")
    page.eval("new Promise(r => setTimeout(r, 300))")
    page.eval("document.querySelector('#case-rows a[href^=\"#case-\"]').click()")
    assert page.eval("document.getElementById('failing').open")

    shot = tmp_path / "desktop.png"
    page.open(path.as_uri(), 1400)
    assert page.screenshot(shot)[1] == m["height"] and shot.stat().st_size > 10_000


def test_html_fits_a_phone_screen_and_labels_every_chart(big_report: tuple[Path, RunResult, Verdict],
                                                         page: Page) -> None:
    path, head, _ = big_report
    page.open(path.as_uri(), 400)
    m = page.eval(OVERFLOW)
    assert m["width"] == 400 and m["scroll_width"] <= 400, m
    assert m["overflowing"] == [], m  # wide tables scroll inside their own box
    page.eval("document.querySelectorAll('details').forEach(d => d.open = true)")
    m = page.eval(OVERFLOW)
    assert m["overflowing"] == [] and m["scroll_width"] <= 400, m
    charts = page.eval("""[...document.querySelectorAll('svg.chart, .chartbox svg')].map(s => ({
        titles: [...s.querySelectorAll('text.axis-title')].map(t => t.textContent),
        ticks: s.querySelectorAll('text.tick').length,
        legend: [...s.querySelectorAll('text.legend')].map(t => t.textContent)}))""")
    n_metrics = len(json.loads(build_report(head, corpus=False).data_json)["metrics"])
    assert len(charts) >= n_metrics + 2  # a histogram per metric (and segment charts), scatter, delta histogram
    for c in charts:
        assert c["titles"] and c["ticks"] >= 3, c
        assert c["legend"] in (["base", "head"], ["better", "worse", "unchanged"]), c  # every chart has a diff here
    hist = [c for c in charts if c["titles"] == ["ndcg@10 per case", "cases"]]
    assert hist and hist[0]["legend"] == ["base", "head"]


def test_html_without_javascript_lists_every_case(big_report: tuple[Path, RunResult, Verdict], page: Page) -> None:
    path, head, _ = big_report
    page.open(path.as_uri(), 1400, scripts=False)
    assert page.eval("document.documentElement.getAttribute('data-ready')") is None  # the script did not run
    assert page.eval(SHOWN_ROWS) == [o.case_id for o in head.outputs]
    assert page.eval("document.getElementById('case-pager').hidden")
    assert page.eval(OVERFLOW)["overflowing"] == []
