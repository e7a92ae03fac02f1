"""The pytest plugin (pytester): golden cases as items, thresholds, the gate item, fixtures, selection, xdist."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

# Imported here so the in-process pytester runs find them loaded (and do not re-import them per run).
import harness.baseline
import harness.diff
import harness.gates
import harness.golden
from harness.manifest import lock
from harness.options import (
    DIFF_OPTIONS,
    THRESHOLD,
    Threshold,
    check_thresholds,
    click_options,
    diff_settings,
    effective_thresholds,
    parse_threshold,
)
from harness.pipeline import run_manifest
from harness.pytest import marker_name
from harness.storage import Layout
from harness.types import GoldenCase, Score
from tests.conftest import add_generation, make_project

pytest_plugins = ["pytester"]

# Until the pytest11 entry point is installed, load the plugin by module name (loading it both ways
# would register it twice).
PLUGIN = [] if any(ep.value == "harness.pytest" for ep in entry_points(group="pytest11")) else [
    "-p", "harness.pytest"]
# In-process runs find harness already imported (so not assertion-rewritten); that warning is noise here.
QUIET = ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
CASES = ["q1", "q2", "q3", "q4"]


@pytest.fixture(scope="module", autouse=True)
def _loaded_once(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Import every module a run needs before pytester's in-process runs: each run drops the modules it
    imported, and native extensions (faiss, rpds, jiter) crash or refuse to load a second time."""
    import openai  # noqa: F401

    from harness.types import GateRule

    root = tmp_path_factory.mktemp("warm")
    manifest = make_project(root / "retrieval")
    base, head = run_manifest(manifest).run, run_manifest(manifest).run
    rules = [GateRule(metric="ndcg@10", max_drop=0.1), GateRule(metric="success@1", max_rate=0.5)]
    harness.gates.gate(rules, head, base, layout=Layout.for_manifest(manifest))
    _generation_project(root / "generation", '{ name = "extractive", n_passages = 3 }')
    run_manifest(root / "generation" / "harness.toml")


@pytest.fixture
def proj(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)
    make_project(pytester.path)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*PLUGIN, *QUIET, "-rfEs", *args)


def with_manifest(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return run(pytester, "--harness-manifest", "harness.toml", *args)


def stored_runs(root: Path) -> list[Path]:
    return sorted((root / ".harness" / "runs").glob("*/*.json"))


def add_gates(root: Path, text: str) -> None:
    manifest = root / "harness.toml"
    manifest.write_text(manifest.read_text() + "\n" + text)


# --- inert ---------------------------------------------------------------------------------------------


def test_inert_without_a_manifest(proj: pytest.Pytester) -> None:
    proj.makepyfile(test_plain="def test_ok():\n    pass\n\ndef test_case(harness_case):\n    pass\n")
    result = run(proj, "-v")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*no harness manifest configured*"])
    result.stdout.no_fnmatch_line("*harness.toml::*")
    result.stdout.no_fnmatch_line("harness: manifest*")
    assert not (proj.path / ".harness" / "runs").exists()


# --- collection -----------------------------------------------------------------------------------------


def test_one_item_per_case_named_by_id_with_tag_markers(proj: pytest.Pytester) -> None:
    items, _ = proj.inline_genitems(*PLUGIN, *QUIET, "--harness-manifest", "harness.toml")
    assert [i.nodeid for i in items] == [f"harness.toml::{c}" for c in CASES] + ["harness.toml::gate"]
    marks = {i.name: {m.name for m in i.iter_markers()} for i in items}
    assert marks["q3"] == {"harness", "topic_storage", "difficulty_hard"}
    assert marks["q2"] == {"harness", "topic_security", "difficulty_easy"}
    assert marks["gate"] == {"harness"}
    assert not stored_runs(proj.path)  # collection alone never runs the pipeline

    result = with_manifest(proj, "--strict-markers", "-m", "topic_storage and not difficulty_hard", "-v")
    result.assert_outcomes(passed=1, deselected=4)
    result.stdout.fnmatch_lines(["harness.toml::q1 PASSED*"])


def test_entry_point_names_the_plugin_package() -> None:
    assert [ep.value for ep in entry_points(group="pytest11") if ep.name == "harness"] == ["harness.pytest"]


def test_marker_names_are_identifiers() -> None:
    assert marker_name("topic", "storage") == "topic_storage"
    assert marker_name("lang", "pt-BR") == "lang_pt_BR"
    assert marker_name("2024", "q1") == "tag_2024_q1"


def test_ini_manifest_collects_only_with_default_args(proj: pytest.Pytester) -> None:
    proj.makeini("[pytest]\nharness_manifest = harness.toml\n")
    proj.makepyfile(test_plain="def test_ok():\n    pass\n")
    run(proj).assert_outcomes(passed=5, skipped=1)  # 4 cases + test_ok; the gate skips (no rules)
    run(proj, "test_plain.py").assert_outcomes(passed=1)  # explicit args: golden cases left out


# --- thresholds -----------------------------------------------------------------------------------------


def test_global_threshold_floor_and_ceiling(proj: pytest.Pytester) -> None:
    result = with_manifest(proj, "--harness-threshold", "ndcg@10>=0.9")
    result.assert_outcomes(passed=2, failed=1, skipped=2)
    result.stdout.fnmatch_lines([
        "*case q3 (*): 1 of 1 thresholds broken",
        "*ndcg@10 = 0.859719 < floor 0.9 (threshold ndcg@10 >= 0.9) [[]--harness-threshold[]]",
        "FAILED harness.toml::q3*",
        "SKIPPED [[]1[]] golden/cases.jsonl:4: q4: every thresholded metric is unscored: ndcg@10 "
        "(no relevance judgments)",
    ])
    assert len(stored_runs(proj.path)) == 1  # one run per session

    result = with_manifest(proj, "--harness-threshold", "ndcg@10 <= 0.9")
    result.assert_outcomes(passed=1, failed=2, skipped=2)
    result.stdout.fnmatch_lines(["*ndcg@10 = 1 > ceiling 0.9 (threshold ndcg@10 <= 0.9)*"])
    # "=" means at least as good in the metric's own direction: a floor for ndcg
    with_manifest(proj, "--harness-threshold", "ndcg@10=0.9").assert_outcomes(passed=2, failed=1, skipped=2)


def test_ini_thresholds_with_tag_and_case_scopes(proj: pytest.Pytester) -> None:
    proj.makeini("""
        [pytest]
        harness_manifest = harness.toml
        harness_thresholds =
            # a comment
            ndcg@10 >= 0.9
            q3: ndcg@10 >= 0.8
            topic=security: precision@5 >= 0.5
    """)
    result = run(proj, "-v")
    result.stdout.fnmatch_lines(["*::q1 PASSED*", "*::q2 FAILED*", "*::q3 PASSED*", "*::q4 SKIPPED*"])
    result.stdout.fnmatch_lines(["*precision@5 = 0.2 < floor 0.5 (threshold topic=security: precision@5 >= 0.5) "
                                 "[[]ini harness_thresholds[]]"])
    # the command line comes after the ini: it replaces the same scope's threshold
    result = run(proj, "-v", "--harness-threshold", "q3: ndcg@10 >= 0.95")
    result.stdout.fnmatch_lines(["*::q3 FAILED*", "*ndcg@10 = 0.859719 < floor 0.95*"])


def test_unscored_policy_and_unknown_metric(proj: pytest.Pytester) -> None:
    result = with_manifest(proj, "--harness-threshold", "ndcg@10>=0.5", "--harness-unscored", "fail")
    result.assert_outcomes(passed=3, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*ndcg@10: unscored (no relevance judgments); threshold ndcg@10 >= 0.5*"])
    result = with_manifest(proj, "--harness-threshold", "ndcg@5>=0.1")
    # a typo never passes silently, and is one usage error before anything runs (not one failure per case)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*threshold 'ndcg@5 >= 0.1' [[]--harness-threshold[]] names metric 'ndcg@5', "
                                 "which no scorer of harness.toml produces (did you mean ndcg@10*"])
    assert "collected" not in result.stdout.str()


def test_bad_threshold_and_unknown_scope_are_errors(proj: pytest.Pytester) -> None:
    result = with_manifest(proj, "--harness-threshold", "ndcg@10 > 0.5")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*cannot parse threshold 'ndcg@10 > 0.5'; expected*"])
    result = with_manifest(proj, "--harness-threshold", "q9: ndcg@10>=0.5")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # an unknown scope is a usage error, not a collection error
    result.stderr.fnmatch_lines(["*names case 'q9', which is not in the golden set*"])
    result = with_manifest(proj, "--harness-threshold", "topic=storag: ndcg@10>=0.5")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no golden case is tagged topic=storag*"])
    result = with_manifest(proj, "-o", "harness_alpha=often")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*harness_alpha = 'often': expected a float*"])


def _generation_project(root: Path, generator: str) -> None:
    make_project(root, lock=False)
    add_generation(root, generator)


def test_thresholds_respect_metric_direction_and_explain(pytester: pytest.Pytester) -> None:
    _generation_project(pytester.path, '{ name = "extractive", n_passages = 3 }')
    # format_critical_fail is lower-is-better: "=0" is a ceiling; metric names may hold colons
    args = ["--harness-threshold", "format_critical_fail=0", "--harness-threshold",
            "q1: format_fail:json_cited.parses >= 1", "--harness-threshold", "q1: answer_contains <= 0"]
    result = with_manifest(pytester, *args)
    result.assert_outcomes(passed=1, failed=1, skipped=3)
    result.stdout.fnmatch_lines([
        "*case q1 (*): 2 of 3 thresholds broken",
        "*format_fail:json_cited.parses = 0 < floor 1 (threshold q1: format_fail:json_cited.parses >= 1)*",
        "*answer_contains = 1 > ceiling 0 (threshold q1: answer_contains <= 0) [[]--harness-threshold[]]: "
        "found 'hourly'",
    ])
    result = with_manifest(pytester, "--harness-threshold", "format_critical_fail >= 1")  # explicit: a floor
    result.assert_outcomes(failed=2, skipped=3)


def test_generation_error_fails_the_case(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.testing.fake_openai import FakeOpenAIServer, Fault

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with FakeOpenAIServer() as srv:
        _generation_project(pytester.path, f'{{ name = "openai", model = "fake-1", base_url = "{srv.base_url}", '
                                           'temperature = 0, max_retries = 0, timeout_s = 5 }')
        srv.push(Fault.server_error(500), match="Q: when are TLS certificates rotated")
        result = with_manifest(pytester)
    result.assert_outcomes(passed=3, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*case q2 (*): 1 error", "*generate error: *500*", "FAILED harness.toml::q2*"])


def test_run_error_fails_each_item_with_the_reason(proj: pytest.Pytester) -> None:
    (proj.path / "golden" / "corpus.jsonl").write_text('{"id": "d1", "text": "changed after lock"}\n')
    result = with_manifest(proj)
    result.assert_outcomes(failed=4, skipped=1)
    result.stdout.fnmatch_lines(["harness run failed: *corpus*"])


# --- the gate -------------------------------------------------------------------------------------------


def test_gate_item_passes_fails_and_skips(proj: pytest.Pytester) -> None:
    result = with_manifest(proj, "-k", "gate")
    result.assert_outcomes(skipped=1, deselected=4)
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] harness.toml:1: harness.toml has no [[][[]gates[]][]] rules"])

    manifest = proj.path / "harness.toml"
    original = manifest.read_text()
    add_gates(proj.path, '[[gates]]\nmetric = "ndcg@10"\nmin = 0.5\n')
    with_manifest(proj, "-k", "gate").assert_outcomes(passed=1, deselected=4)

    manifest.write_text(original)
    add_gates(proj.path, '[[gates]]\nmetric = "ndcg@10"\nmin = 0.99\n')
    result = with_manifest(proj, "-k", "gate")
    result.assert_outcomes(failed=1, deselected=4)
    result.stdout.fnmatch_lines(["gate: 1 of 2 checks failed (base: no baseline*",
                                 "*FAIL ndcg@10 min=0.99: mean 0.9532 vs floor 0.99"])

    manifest.write_text(original)
    add_gates(proj.path, '[[gates]]\nmetric = "recall@5"\nmax_abs_drop = 0.01\nrequire_significant = false\n')
    # a drop rule with no baseline cannot judge: it fails, naming the remedy, unless the user opts out
    result = with_manifest(proj, "-k", "gate")
    result.assert_outcomes(failed=1, deselected=4)
    result.stdout.fnmatch_lines(["*FAIL recall@5 max_abs_drop=0.01: cannot judge: no baseline*"
                                 "harness baseline promote*"])
    result = with_manifest(proj, "-k", "gate", "--harness-allow-no-baseline")
    result.assert_outcomes(skipped=1, deselected=4)
    result.stdout.fnmatch_lines(["*gate: every rule skipped (base: no baseline*no baseline run to compare with*"])

    # promote a baseline, then retrieve fewer documents: recall@5 drops on q3 (2 relevant, k = 1)
    base = run_manifest(manifest).run
    harness.baseline.promote(base, Layout.for_manifest(manifest))
    with_manifest(proj, "-k", "gate").assert_outcomes(passed=1, deselected=4)
    manifest.write_text(manifest.read_text().replace("params = { k = 5,", "params = { k = 1,"))
    lock(manifest)
    result = with_manifest(proj, "-k", "gate")
    result.assert_outcomes(failed=1, deselected=4)
    result.stdout.fnmatch_lines([f"gate: 1 of 2 checks failed (base: promoted baseline {base.run_id})",
                                 "*FAIL recall@5 max_abs_drop=0.01: absolute drop +0.1667 vs limit 0.01*"])


# --- selection, -x, --lf, xdist ---------------------------------------------------------------------------


def test_select_stop_and_rerun_failures(proj: pytest.Pytester) -> None:
    result = with_manifest(proj, "-k", "q2", "-v")
    result.assert_outcomes(passed=1, deselected=4)
    result.stdout.fnmatch_lines(["harness.toml::q2 PASSED*"])

    result = with_manifest(proj, "-x", "--harness-threshold", "ndcg@10<=0.9")
    result.assert_outcomes(failed=1)  # q1 fails first; nothing else runs

    with_manifest(proj, "--harness-threshold", "ndcg@10>=0.9").assert_outcomes(passed=2, failed=1, skipped=2)
    result = with_manifest(proj, "--lf", "--harness-threshold", "ndcg@10>=0.9", "-v")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure*", "harness.toml::q3 FAILED*"])


HAND_WRITTEN = """
import pytest


def test_manifest_and_run(harness_manifest, harness_run):
    assert harness_manifest.manifest.name == "tiny"
    assert harness_run.manifest_id == harness_manifest.id
    assert [o.case_id for o in harness_run.outputs] == ["q1", "q2", "q3", "q4"]


def test_every_case(harness_case):
    assert harness_case.id == harness_case.case.id == harness_case.output.case_id
    if harness_case.case.relevance:
        assert harness_case.score("ndcg@10") >= 0.8
    else:
        assert harness_case.score("ndcg@10") is None
        assert harness_case.explanations["ndcg@10"] == "no relevance judgments"
    with pytest.raises(KeyError, match="has no metric 'nope'"):
        harness_case.score("nope")


@pytest.mark.parametrize("harness_case", ["q3"], indirect=True)
def test_chosen_case(harness_case):
    assert harness_case.scores["recall@5"] == 1.0
"""


def test_fixtures(proj: pytest.Pytester) -> None:
    proj.makepyfile(test_hand=HAND_WRITTEN)
    result = with_manifest(proj, "-v")
    result.assert_outcomes(passed=4 + 1 + 4 + 1, skipped=1)
    result.stdout.fnmatch_lines(["test_hand.py::test_every_case[[]q4[]] PASSED*"])
    assert len(stored_runs(proj.path)) == 1  # items and fixtures share the session's run
    result = with_manifest(proj, "-v", "--strict-markers", "-m", "topic_security")
    result.assert_outcomes(passed=2, deselected=9)
    result.stdout.fnmatch_lines(["harness.toml::q2 PASSED*", "test_hand.py::test_every_case[[]q2[]] PASSED*"])


def test_xdist_two_workers_same_outcomes_one_run(proj: pytest.Pytester) -> None:
    proj.makepyfile(test_hand=HAND_WRITTEN)
    args = [*PLUGIN, "--harness-manifest", "harness.toml", "--harness-threshold", "ndcg@10>=0.9"]
    result = proj.runpytest_subprocess(*args, "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2 + 6, failed=1, skipped=2)
    result.stdout.fnmatch_lines(["*ndcg@10 = 0.859719 < floor 0.9*"])
    runs = stored_runs(proj.path)
    assert len(runs) == 1  # the second worker loaded the first one's run (file lock)
    record = json.loads((proj.path / ".harness" / "pytest-run.json").read_text())
    assert record["path"] == str(runs[0])
    proj.runpytest(*args, *QUIET, "-p", "no:cacheprovider").assert_outcomes(passed=8, failed=1, skipped=2)


# --- options and thresholds (pure) ------------------------------------------------------------------------


def _case(cid: str = "c1", **tags: str) -> GoldenCase:
    return GoldenCase(id=cid, query="q", tags=tags)


def test_parse_threshold_syntax() -> None:
    assert parse_threshold("ndcg@10=0.5") == Threshold("ndcg@10", "=", 0.5)
    assert parse_threshold(" topic=storage: fact_recall >= 0.6 ") == Threshold("fact_recall", ">=", 0.6,
                                                                                "topic=storage")
    t = parse_threshold("case-007: format_fail:c.parses <= 0", "ini")
    assert (t.scope, t.metric, t.op, t.value, t.level, t.source) == ("case-007", "format_fail:c.parses", "<=", 0.0,
                                                                     "case", "ini")
    assert parse_threshold("format_fail:c.parses<=0").scope is None  # no space after the colon: no scope
    assert str(parse_threshold("topic=storage:  ndcg@10>=0.5")) == "topic=storage: ndcg@10 >= 0.5"
    for bad in ("ndcg@10 > 0.5", "ndcg@10 >= high", "ndcg@10 >= nan", ">= 0.5", "=x: ndcg@10 >= 1", ""):
        with pytest.raises(ValueError):
            parse_threshold(bad)


def test_most_specific_scope_wins_per_metric_and_operator() -> None:
    ts = [parse_threshold(s) for s in ("m >= 0.5", "m <= 0.9", "topic=a: m >= 0.3", "c1: m >= 0.1",
                                       "d=x: m >= 0.2", "d=x: m >= 0.25", "n = 2")]
    directions = {"m": True, "n": False}
    got = {str(t) for t in effective_thresholds(ts, _case(topic="a", d="x"), directions)}
    assert got == {"c1: m >= 0.1", "m <= 0.9", "n <= 2"}
    got = {str(t) for t in effective_thresholds(ts, _case("c2", topic="a", d="x"), directions)}
    assert got == {"topic=a: m >= 0.3", "d=x: m >= 0.25", "m <= 0.9", "n <= 2"}  # same level: all apply
    got = {str(t) for t in effective_thresholds(ts, _case("c2", topic="b"), directions)}
    assert got == {"m >= 0.5", "m <= 0.9", "n <= 2"}


def test_check_thresholds_statuses() -> None:
    case = _case()
    scores = {"m": Score(case_id="c1", metric="m", value=0.4, explanation="why"),
              "u": Score(case_id="c1", metric="u", value=None, explanation="no facts"),
              "bad": Score(case_id="c1", metric="bad", value=1.0)}
    ts = [parse_threshold(s) for s in ("m >= 0.5", "u >= 1", "bad = 0", "zz >= 1", "m <= 0.4")]
    checks = {str(c.threshold): c for c in check_thresholds(ts, case, scores, {"m": True, "u": True, "bad": False})}
    assert {k: c.status for k, c in checks.items()} == {"m >= 0.5": "fail", "u >= 1": "unscored", "bad <= 0": "fail",
                                                       "zz >= 1": "missing", "m <= 0.4": "pass"}
    assert checks["m >= 0.5"].message() == "m = 0.4 < floor 0.5 (threshold m >= 0.5): why"
    assert checks["bad <= 0"].message() == "bad = 1 > ceiling 0 (threshold bad <= 0)"
    assert checks["m <= 0.4"].message() == "m = 0.4 <= ceiling 0.4 (threshold m <= 0.4): why"  # exact, inclusive
    assert "no such metric" in checks["zz >= 1"].message()


def test_options_are_defined_once_for_both_front_ends() -> None:
    from harness.diff import DiffSettings

    assert diff_settings({}) == DiffSettings()
    assert diff_settings({"alpha": 0.01, "test_name": "wilcoxon"}).test == "wilcoxon"
    assert [o.pytest_flag for o in DIFF_OPTIONS] == ["--harness-alpha", "--harness-correction", "--harness-test",
                                                     "--harness-resamples", "--harness-seed"]
    assert THRESHOLD.ini_name == "harness_thresholds"

    @click.command()
    @click_options(THRESHOLD, *DIFF_OPTIONS)
    def cmd(threshold: tuple[str, ...], alpha: float, correction: str, test_name: str, resamples: int,
            seed: int) -> None:
        click.echo(json.dumps([list(threshold), alpha, correction, test_name, resamples, seed]))

    out = CliRunner().invoke(cmd, ["--threshold", "m>=1", "--threshold", "n<=2", "--test", "bootstrap"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == [["m>=1", "n<=2"], 0.05, "holm", "bootstrap", 5000, 0]
    assert "--correction [holm|bh|none]" in CliRunner().invoke(cmd, ["--help"]).output


@pytest.mark.parametrize("threshold", ["error_rate <= 0.1", "latency <= 2", "unscored_rate <= 0.5"])
def test_run_level_metric_threshold_is_one_usage_error(proj: pytest.Pytester, threshold: str) -> None:
    """Before: every case item failed with 'no such metric' (76 failures on the example)."""
    result = with_manifest(proj, "--harness-threshold", threshold)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*a run-level metric*use a [[][[]gates[]][]] rule*"])


@pytest.mark.parametrize(("option", "value"), [("--harness-alpha", "0"), ("--harness-resamples", "0"),
                                               ("--harness-seed", "-1")])
def test_out_of_range_statistics_option_is_a_usage_error(proj: pytest.Pytester, option: str, value: str) -> None:
    result = with_manifest(proj, option, value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{option}: *is not in the range*"])
