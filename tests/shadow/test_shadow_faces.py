"""The faces of a shadow replay and a canary verdict (text, markdown, JSON) laid out from hand-built reports:
the status line first, the per-segment evidence of a failure, what could not be judged; markdown that renders
user values as themselves (the oracle: markdown-it-py, a CommonMark renderer with GitHub tables); JSON that
reads back into the model."""

from __future__ import annotations

import json
import re
from html import unescape
from html.parser import HTMLParser

import numpy as np
import pytest
from markdown_it import MarkdownIt

from harness.diff import ArtifactChange, Diff, DiffSettings, MetricDelta
from harness.gates import GateResult
from harness.report.canary import canary_json, canary_md, canary_text, rolled_back_lines
from harness.report.replay import replay_json, replay_md, replay_text
from harness.shadow.model import (
    Agreement,
    CanaryReport,
    CanaryScore,
    CanarySide,
    CanaryTest,
    Quantiles,
    ReplayReport,
    ReplaySelection,
    ReplaySide,
    RolledBack,
    SignalMove,
)
from harness.stats import compare_paired

MD = MarkdownIt("commonmark").enable("table")
HOSTILE = "geo=*eu_1*"  # a segment value markdown would read as emphasis
ESCAPE = "\x1b[31mred"  # a terminal escape in user text: shown, never obeyed
ANSI = re.compile(r"\x1b\[[0-9;]*m")
COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-8]|9[0-7])(?:;[0-9;]*)?m")  # a foreground colour


def _delta(metric: str, base: list[float], head: list[float], segment: str = "all", *,
           p_adjusted: float | None = None, significant: bool = False) -> MetricDelta:
    comparison = compare_paired(base, head, greater_is_better=True, n_resamples=500)
    return MetricDelta(metric=metric, segment=segment, n_base=len(base), n_head=len(head), comparison=comparison,
                       p_adjusted=p_adjusted if p_adjusted is not None else comparison.p_value,
                       significant=significant, in_family=True,
                       changed=int(np.sum(np.array(base) != np.array(head))))


def _diff(metrics: tuple[MetricDelta, ...] = (), segments: tuple[MetricDelta, ...] = (),
          sizes: dict[str, int] | None = None) -> Diff:
    return Diff(base_run="20261201T100000Z-aaaaaa", head_run="20261201T100500Z-bbbbbb", base_manifest_id="a" * 64,
                head_manifest_id="b" * 64, settings=DiffSettings(correction="bh"),
                artifacts=(ArtifactChange(role="prompt", change="changed", kind="prompt", base_version="answer",
                                          head_version="answer-plain", base_sha256="1" * 64, head_sha256="2" * 64),),
                metrics=metrics, segments=segments, segment_sizes=sizes or {}, family_size=len(metrics) + len(segments),
                flips=(), only_in_base=(), only_in_head=())


def _side(label: str, mid: str, run: str, **kw: object) -> ReplaySide:
    fields: dict[str, object] = {
        "label": label, "manifest_path": "variants/format-broken.toml" if label == "candidate" else "harness.toml",
        "manifest_id": mid, "run_id": run, "run_path": f".harness/replays/runs/{mid}/{run}.json", "cases": 60,
        "errors": 0, "generated": 60, "cache_hits": 0, "seconds": 3.5,
        "latency": {"retrieve": Quantiles(n=60, p50=0.004, p95=0.009, p99=0.012),
                    "generate": Quantiles(n=60, p50=0.201, p95=0.215, p99=0.230)}}
    return ReplaySide.model_validate({**fields, **kw})


SELECTION = ReplaySelection(source="logs/prod.jsonl", window="2026-11-20T00:00:00+00:00 .. the last record",
                            sample=60, seed=3, matched=1200, replayed=60, skipped={"no query": 4})

# 60 paired cases, 30 in HOSTILE: the candidate's answers stop parsing there (1 -> 0), elsewhere 2 of 30 do
EU_BASE, EU_HEAD = [1.0] * 30, [0.0] * 30
US_BASE, US_HEAD = [1.0] * 30, [1.0] * 28 + [0.0] * 2


@pytest.fixture()
def failed_replay() -> ReplayReport:
    overall = _delta("format_pass", EU_BASE + US_BASE, EU_HEAD + US_HEAD, p_adjusted=1e-9, significant=True)
    seg = _delta("format_pass", EU_BASE, EU_HEAD, HOSTILE, p_adjusted=2e-9, significant=True)
    other = _delta("format_pass", US_BASE, US_HEAD, "geo=us", p_adjusted=0.49)
    return ReplayReport(
        status="fail", reasons=(f"format_pass dropped in {HOSTILE}",), selection=SELECTION,
        baseline=_side("baseline", "a" * 64, "20261201T100000Z-aaaaaa"),
        candidate=_side("candidate", "b" * 64, "20261201T100500Z-bbbbbb", errors=2,
                        errors_by_kind={"server_error": 2}),
        rules="default",
        results=(GateResult(rule="format_pass: not significantly worse", metric="format_pass", segment=HOSTILE,
                            status="fail", observed=-1.0, limit=0.0, message="1.000 -> 0.000, p adj 2e-09"),
                 GateResult(rule="format_pass: not significantly worse", metric="format_pass", segment="geo=us",
                            status="pass", observed=-0.0667, limit=0.0, message="not significant (p adj 0.49)")),
        diff=_diff((overall,), (seg, other), {HOSTILE: 30, "geo=us": 30}),
        agreement=(Agreement(segment="all", n=60, answer_exact=0.0, answer_token_f1=0.81, ranking_jaccard=1.0,
                             top1_same=1.0),
                   Agreement(segment=HOSTILE, n=30, answer_exact=0.0, answer_token_f1=0.8, ranking_jaccard=1.0,
                             top1_same=1.0)),
        moves=(SignalMove(signal="answer_length", segment="all", n=60, baseline_median=41.0, candidate_median=33.0,
                          baseline_mean=40.2, candidate_mean=32.9),),
        notes=(f"a hostile note {ESCAPE}",),
    )


@pytest.fixture()
def unjudged_replay() -> ReplayReport:
    empty = _diff()
    return ReplayReport(status="cannot_judge", reasons=("no logged record matched the window",),
                        selection=SELECTION.model_copy(update={"matched": 0, "replayed": 0, "sample": None}),
                        baseline=_side("baseline", "a" * 64, "20261201T100000Z-aaaaaa").model_copy(
                            update={"cases": 0, "generated": 0, "latency": {"generate": Quantiles(n=0)}}),
                        candidate=_side("candidate", "b" * 64, "20261201T100500Z-bbbbbb").model_copy(
                            update={"cases": 0, "generated": 0, "latency": {}}),
                        rules="manifest", results=(), diff=empty)


class _Tables(HTMLParser):
    """The rendered HTML's tables: each a list of rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self.emphasis = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag in ("em", "strong") and self._cell is not None:
            self.emphasis += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _tables(md: str) -> _Tables:
    parser = _Tables()
    parser.feed(MD.render(md))
    return parser


def _table_with(parsed: _Tables, first_header: str) -> list[list[str]]:
    found = [t for t in parsed.tables if t and t[0] and t[0][0] == first_header]
    assert found, [t[0] for t in parsed.tables]
    return found[0]


# ---- replay -------------------------------------------------------------------------------------------


def test_replay_text_opens_on_the_status_and_names_the_failing_segment(failed_replay: ReplayReport) -> None:
    text = replay_text(failed_replay, color=False)
    first = text.splitlines()[0]
    assert first == f"replay: FAIL: format_pass dropped in {HOSTILE}"
    assert not ANSI.search(text)
    assert "replayed 60 of 1,200 matched records from logs/prod.jsonl" in text
    assert "a seeded sample of 60 (seed 3); not replayed: 4 no query" in text
    # the gate's table (harness.report.text.print_verdict): the failing rule in its segment
    gate_rows = [line for line in text.splitlines() if "FAIL" in line and HOSTILE in line]
    assert gate_rows and "format_pass" in gate_rows[0], text
    # the diff's table (harness.report.text.print_diff): the overall drop, REGRESSED
    assert re.search(r"format_pass\s*│\s*1\.0000\s*│\s*0\.4667\s*│\s*-0\.5333", text), text
    assert "REGRESSED" in text
    # the significant segment: baseline 1 -> candidate 0 in HOSTILE (30 cases); geo=us (not significant) absent
    seg_rows = [line for line in text.splitlines() if f"{HOSTILE} (30)" in line]
    assert seg_rows and "-1.0000" in seg_rows[0] and "2e-09" in seg_rows[0], text
    assert "geo=us (30)" not in text
    assert "server_error 2" in text
    assert "201" in text and "230" in text  # generate p50 / p99 in ms
    # user text shows its escape, never carries it
    assert "\x1b" not in text and "\\x1b[31mred" in text
    assert "20261201T100500Z-bbbbbb" in text


def test_replay_text_in_colour_on_a_terminal(failed_replay: ReplayReport, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    coloured = replay_text(failed_replay, color=True)
    assert ANSI.search(coloured)
    plain = ANSI.sub("", coloured)
    assert plain.splitlines()[0] == f"replay: FAIL: format_pass dropped in {HOSTILE}"
    assert "\\x1b[31mred" in plain  # the user's escape is still shown as text, not sent
    assert COLOUR.search(coloured)
    monkeypatch.setenv("NO_COLOR", "1")  # rich keeps bold, drops colours
    assert not COLOUR.search(replay_text(failed_replay, color=True))


def test_replay_md_renders_the_tables_and_user_values_as_themselves(failed_replay: ReplayReport) -> None:
    md = replay_md(failed_replay)
    assert md.splitlines()[0] == "## harness replay: FAIL"
    parsed = _tables(md)
    sides = _table_with(parsed, "side")
    assert sides[0] == ["side", "manifest", "id", "run", "cases", "errors", "generated", "cached", "seconds"]
    assert sides[2][:3] == ["candidate", "variants/format-broken.toml", "b" * 12]
    assert sides[2][5] == "2 (server_error 2)"
    rules = _table_with(parsed, "rule")
    assert rules[1][1:3] == [HOSTILE, "FAIL"]  # the segment renders as itself: no emphasis swallowed its stars
    segments = _table_with(parsed, "segment (n)")
    assert segments[1][:2] == [f"{HOSTILE} (30)", "format_pass"] and len(segments) == 2
    agreement = _table_with(parsed, "segment")
    assert agreement[2] == [HOSTILE, "30", "0.0%", "0.8", "1", "100.0%"]
    assert parsed.emphasis == 0
    assert "## harness gate" not in md  # one headline: the gate's is replaced by a section heading
    html = MD.render(md)
    assert "\x1b" not in html and "\\x1b[31mred" in html


def test_replay_json_reads_back_into_the_model(failed_replay: ReplayReport, unjudged_replay: ReplayReport) -> None:
    assert ReplayReport.model_validate_json(replay_json(unjudged_replay)) == unjudged_replay
    text = replay_json(failed_replay)
    data = json.loads(text)
    assert data["status"] == "fail" and data["results"][0]["segment"] == HOSTILE
    assert data == json.loads(json.dumps(failed_replay.model_dump(mode="json")))
    # the diff's metric deltas are published flat (the `harness diff --json` layout, without every field of the
    # paired comparison): everything else reads back as it was
    assert data["diff"]["metrics"][0]["delta"] == pytest.approx(-16 / 30)
    rest = ReplayReport.model_validate({**data, "diff": failed_replay.diff})
    assert rest == failed_replay


def test_replay_faces_of_a_report_that_cannot_judge(unjudged_replay: ReplayReport) -> None:
    text = replay_text(unjudged_replay)
    assert text.splitlines()[0] == "replay: CANNOT JUDGE: no logged record matched the window"
    assert "rules: the candidate manifest's [[replay.gates]]" in text
    md = replay_md(unjudged_replay)
    assert "**CANNOT JUDGE**: no logged record matched the window" in md
    assert "No rule was evaluated." in md
    assert "latency" not in md.lower()  # no fresh call timed: no latency table


# ---- canary -------------------------------------------------------------------------------------------


def _test(signal: str, segment: str, *, failed: bool = False, cls: str = "pass", kind: str = "rate",
          b: float = 0.98, c: float = 0.97, n: tuple[int, int] = (400, 40), p: float = 0.6) -> CanaryTest:
    return CanaryTest(signal=signal, segment=segment, kind=kind, test="fisher" if kind == "rate" else "mann_whitney",  # type: ignore[arg-type]
                      bad="decrease", baseline_n=n[0], canary_n=n[1], baseline_value=b, canary_value=c,
                      effect=c - b, ci_low=c - b - 0.05, ci_high=c - b + 0.05, relative=(c - b) / b, p_value=p,
                      p_adjusted=min(1.0, p * 2), classification=cls, failed=failed)  # type: ignore[arg-type]


def _canary(status: str, tests: tuple[CanaryTest, ...], scores: tuple[CanaryScore, ...], **kw: object) -> CanaryReport:
    return CanaryReport(status=status,  # type: ignore[arg-type]
                        baseline=CanarySide(label="baseline", manifest_id="a" * 64, manifest_path="harness.toml",
                                            records=3600, first="2026-11-20T00:00:00+00:00",
                                            last="2026-11-22T23:59:00+00:00"),
                        canary=CanarySide(label="canary", manifest_id="b" * 64, records=400),
                        windows=("2026-11-20T00:00:00+00:00", "2026-11-22T00:00:00+00:00"), alpha=0.05,
                        correction="bh", family_size=len(tests), tests=tests, scores=scores, pass_score=95.0,
                        marginal_score=75.0, **kw)  # type: ignore[arg-type]


BROKEN = _test("format_pass", HOSTILE, failed=True, cls="low", b=0.99, c=0.05, n=(1800, 200), p=1e-40)
PASSING = (_test("format_pass", "all"), _test("groundedness", "all", kind="numeric", b=0.62, c=0.61),
           _test("groundedness", HOSTILE, kind="numeric", b=0.6, c=0.6))


def test_canary_faces_name_the_failing_signal_and_segment() -> None:
    report = _canary("fail", (*PASSING, BROKEN),
                     (CanaryScore(segment="all", score=100.0, passed=2, judged=2, nodata=0, status="pass"),
                      CanaryScore(segment=HOSTILE, score=50.0, passed=1, judged=2, nodata=0,
                                  critical_failed=("format_pass",), status="fail")),
                     reasons=(f"{HOSTILE}: score 50.0 below 75, critical signal format_pass failed",),
                     results=(GateResult(rule="format_pass floor", metric="format_pass", segment=HOSTILE,
                                         status="fail", observed=0.05, limit=0.9, message="0.05 < 0.9"),))
    text = canary_text(report, color=False)
    assert text.splitlines()[0] == f"canary: FAIL: {HOSTILE}: score 50.0 below 75, critical signal format_pass failed"
    evidence = [line for line in text.splitlines() if "format_pass" in line and HOSTILE in line and "LOW" in line]
    assert evidence and "0.99" in evidence[0] and "0.05" in evidence[0] and "1,800/200" in evidence[0], text
    assert "3 of 4 tests pass" in text
    md = canary_md(report)
    parsed = _tables(md)
    scores = _table_with(parsed, "segment")
    assert scores[2] == [HOSTILE, "50.0", "1", "2", "0", "format_pass", "FAIL"]
    tests = [t for t in parsed.tables if t[0][0] == "signal"]
    assert len(tests) == 2  # the failures, then every test in the collapsed block
    assert len(tests[0]) == 2 and tests[0][1][:3] == ["format_pass", HOSTILE, "fisher"]
    assert tests[0][1][-1].startswith("LOW") and len(tests[1]) == 5
    rules = _table_with(parsed, "rule")
    assert rules[1][:3] == ["format_pass floor", HOSTILE, "FAIL"]
    assert parsed.emphasis == 0
    assert CanaryReport.model_validate_json(canary_json(report)) == report


def test_canary_pass_and_cannot_judge_read_as_such() -> None:
    ok = _canary("pass", PASSING, (CanaryScore(segment="all", score=100.0, passed=3, judged=3, nodata=0,
                                               status="pass"),))
    assert canary_text(ok).splitlines()[0] == "canary: PASS: score 100.0 (pass at 95); no signal failed in 3 tests"
    assert "failed or not judged" not in canary_text(ok)
    nodata = _test("format_pass", "device=tablet", failed=True, cls="nodata", n=(12, 3))
    unjudged = _canary("cannot_judge", (*PASSING, nodata),
                       (CanaryScore(segment="all", score=None, passed=0, judged=0, nodata=1, status="cannot_judge"),),
                       reasons=("device=tablet: 3 canary records, fewer than min_records 50",))
    text = canary_text(unjudged)
    assert text.splitlines()[0].startswith("canary: CANNOT JUDGE: device=tablet: 3 canary records")
    rows = [line for line in text.splitlines() if "device=tablet" in line and "NODATA" in line]
    assert rows and "12/3" in rows[0]
    md = canary_md(unjudged)
    assert _table_with(_tables(md), "segment")[1] == ["all", "n/a", "0", "0", "1", "-", "CANNOT JUDGE"]
    assert CanaryReport.model_validate_json(canary_json(unjudged)) == unjudged


def test_rollback_lines_say_what_changed_per_role() -> None:
    records = (RolledBack(role="prompt", kind="prompt", before_version="answer-plain", after_version="answer",
                          before_sha256="c" * 64, after_sha256="d" * 64, restored_file="prompts/answer.toml"),
               RolledBack(role="generator", kind="generator", before_version="fake-chat", after_version="fake-chat",
                          before_sha256="e" * 64, after_sha256="f" * 64))
    assert rolled_back_lines(records) == [
        f"prompt (prompt): answer-plain -> answer, sha256 {'c' * 12} -> {'d' * 12}, restored prompts/answer.toml",
        f"generator (generator): fake-chat -> fake-chat, sha256 {'e' * 12} -> {'f' * 12}, pin only",
    ]
    report = _canary("fail", (BROKEN,), (), rolled_back=records)
    text = canary_text(report)
    assert "rolled back 2 roles to the baseline's pins" in text and "prompts/answer.toml" in text
    md = canary_md(report)
    rolled = _table_with(_tables(md), "role")
    assert rolled[1] == ["prompt", "prompt", "answer-plain -> answer", f"{'c' * 12} -> {'d' * 12}",
                         "prompts/answer.toml"]
    assert "nothing (the project already pins" in canary_text(_canary("pass", (), (), rolled_back=()))
    assert CanaryReport.model_validate_json(canary_json(report)) == report


def test_many_reasons_the_headline_shows_the_first_and_every_face_lists_them_all() -> None:
    reasons = (f"format_valid in {HOSTILE}: 0 vs 1", "format_valid in all: 0 vs 1", "score in all: 0.0 < 75")
    report = _canary("fail", (BROKEN,), (), reasons=reasons)
    lines = canary_text(report).splitlines()
    assert lines[0] == f"canary: FAIL: {reasons[0]} (and 2 more reasons, listed below)"
    assert lines[1:5] == ["why:", *(f"  - {r}" for r in reasons)]
    md = canary_md(report)
    items = [unescape(i) for i in re.findall(r"<li>(.*?)</li>", MD.render(md))]  # tight lists: no <p> in them
    assert items[:3] == list(reasons)  # HOSTILE's stars are text, not emphasis
    assert items[3].startswith("baseline: manifest")
    assert MD.render(md).count("<ul>") == 2  # the reasons, then the sides: two lists, not one
