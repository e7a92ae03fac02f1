"""A gate must fail when it cannot judge, and refuse a configuration it cannot apply.

Each test drives ``harness gate`` (or ``lock``) as a user does, on the tiny project of tests/conftest.py
(hashing embedder, 4 cases, seconds per run). On the code before this change every one of them passed
the gate with exit 0: unknown names and no-limit rules became SKIP, a missing baseline skipped the drop
rules, an all-unscored metric skipped, and errored cases passed when no error_rate rule existed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.manifest import lock
from harness.runs import load_run
from tests.conftest import add_generation, make_project
from tests.reliability.clirun import cli_in_process

cli = cli_in_process


def with_gates(root: Path, gates: str) -> Path:
    manifest = root / "harness.toml"
    manifest.write_text(manifest.read_text() + "\n" + gates)
    lock(manifest)
    return manifest


def line_of(manifest: Path, needle: str) -> int:
    return next(i for i, ln in enumerate(manifest.read_text().splitlines(), 1) if needle in ln)


def test_unknown_metric_is_exit_2_with_did_you_mean_before_anything_runs(
        proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = with_gates(proj, '[[gates]]\nmetric = "ndcg@01"\nmin = 0.5\n')
    code, out, err = cli(capsys, "gate")
    assert code == 2, out + err
    assert f"harness.toml:{line_of(manifest, 'ndcg@01')}: field 'gates.0.metric'" in err
    assert "did you mean 'ndcg@10'" in err
    assert len(err.strip().splitlines()) == 1
    assert not (proj / ".harness" / "runs").exists()  # refused before the run


@pytest.mark.parametrize(("rule", "needle", "expected"), [
    ('metric = "latency"\nstage = "generat"\nmax_seconds = 1.0', "generat", "did you mean 'generate'"),
    ('metric = "ndcg@10"\nsegment = "topc=*"\nmin = 0.1', "topc", "did you mean 'topic'"),
    ('metric = "ndcg@10"\nsegment = "topic=secrity"\nmin = 0.1', "secrity", "did you mean 'security'"),
])
def test_unknown_stage_or_segment_is_exit_2(proj: Path, capsys: pytest.CaptureFixture[str], rule: str,
                                            needle: str, expected: str) -> None:
    manifest = with_gates(proj, f"[[gates]]\n{rule}\n")
    code, out, err = cli(capsys, "gate")
    assert code == 2, out + err
    assert f"harness.toml:{line_of(manifest, needle)}:" in err and expected in err


def test_second_rule_is_located_by_its_own_line(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = with_gates(proj, '[[gates]]\nmetric = "ndcg@10"\nmin = 0.1\n\n'
                                '[[gates]]\nmetric = "recal@5"\nmin = 0.1\n')
    code, _, err = cli(capsys, "gate")
    assert code == 2 and f"harness.toml:{line_of(manifest, 'recal@5')}: field 'gates.1.metric'" in err
    assert "did you mean 'recall@5'" in err


def test_rule_that_sets_no_limit_is_a_config_error(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = proj / "harness.toml"
    manifest.write_text(manifest.read_text() + '\n[[gates]]\nmetric = "ndcg@10"\nsegment = "topic=*"\n')
    code, out, err = cli(capsys, "lock")
    assert code == 2, out + err
    assert "harness.toml:" in err and "sets no limit" in err
    assert "sha256" not in manifest.read_text()  # nothing written


def test_drop_rule_without_baseline_fails_naming_promote_unless_allowed(
        proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with_gates(proj, '[[gates]]\nmetric = "ndcg@10"\nmax_drop = 0.05\n')
    code, out, err = cli(capsys, "gate", "--format", "json")
    assert code == 1, out + err
    results = json.loads(out)["verdict"]["results"]
    drop = next(r for r in results if r["rule"] == "ndcg@10 max_drop=0.05")
    assert drop["status"] == "fail" and "harness baseline promote" in drop["message"]

    code, out, err = cli(capsys, "gate", "--format", "json", "--allow-no-baseline")
    assert code == 0, out + err
    drop = next(r for r in json.loads(out)["verdict"]["results"] if r["rule"] == "ndcg@10 max_drop=0.05")
    assert drop["status"] == "skip" and "--allow-no-baseline" in drop["message"]  # visible, not silent


def test_metric_unscored_everywhere_in_the_head_run_fails(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # q4, the only case tagged topic=misc, has no relevance judgments: ndcg@10 is unscored for all of it
    with_gates(proj, '[[gates]]\nmetric = "ndcg@10"\nsegment = "topic=misc"\nmin = 0.1\n')
    code, out, err = cli(capsys, "gate", "--format", "json")
    assert code == 1, out + err
    (row,) = [r for r in json.loads(out)["verdict"]["results"] if r["segment"] == "topic=misc"]
    assert row["status"] == "fail" and "cannot judge" in row["message"] and "unscored" in row["message"]


def test_small_segment_skips_are_counted_and_bounded_by_max_skipped(
        proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # topic=storage has 2 cases, topic=security and topic=misc 1 each: two segments skip at size 2
    rule = '[[gates]]\nmetric = "ndcg@10"\nsegment = "topic=*"\nmin_segment_size = 2\nmin = 0.0\n'
    manifest = with_gates(proj, rule + "max_skipped = 2\n")
    code, out, err = cli(capsys, "gate", "--format", "json")
    assert code == 0, out + err
    rows = json.loads(out)["verdict"]["results"]
    assert sorted(r["segment"] for r in rows if r["status"] == "skip") == ["topic=misc", "topic=security"]

    manifest.write_text(manifest.read_text().replace("max_skipped = 2", "max_skipped = 1"))
    lock(manifest)
    code, out, err = cli(capsys, "gate", "--format", "json", "--junit", str(proj / "gate.xml"))
    assert code == 1, out + err
    failed = [r for r in json.loads(out)["verdict"]["results"] if r["status"] == "fail"]
    assert len(failed) == 1 and "2 segments skipped" in failed[0]["message"] and "max_skipped=1" in failed[0]["message"]
    junit = (proj / "gate.xml").read_text()
    assert re.search(r'skipped="2"', junit) and re.search(r'failures="1"', junit)


def test_errored_cases_fail_the_gate_unless_an_error_rate_rule_allows_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.testing.fake_openai import FakeOpenAIServer, Fault

    monkeypatch.delenv("HARNESS_HOME", raising=False)
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.chdir(tmp_path)
    make_project(tmp_path, lock=False)
    with FakeOpenAIServer() as srv:
        manifest = add_generation(tmp_path, f'{{ name = "openai", model = "fake-1", base_url = "{srv.base_url}", '
                                            'temperature = 0, max_retries = 0, timeout_s = 5 }')
        manifest.write_text(manifest.read_text() + '\n[[gates]]\nmetric = "ndcg@10"\nmin = 0.1\n')
        lock(manifest)
        srv.push(Fault.server_error(500), match="Q: when are TLS certificates rotated")
        code, out, err = cli(capsys, "gate", "--format", "json")
        assert code == 1, out + err
        rows = json.loads(out)["verdict"]["results"]
        implicit = [r for r in rows if r["metric"] == "error_rate"]
        assert len(implicit) == 1 and implicit[0]["status"] == "fail"
        assert "1/4 cases errored" in implicit[0]["message"] and "q2" in implicit[0]["message"]
        assert all(r["status"] == "pass" for r in rows if r is not implicit[0])

        # an explicit error_rate rule governs errors instead (1 of 4 is within a 50% point limit)
        manifest.write_text(manifest.read_text() + '\n[[gates]]\nmetric = "error_rate"\nmax_rate = 0.5\n'
                            "wilson = false\n")
        lock(manifest)
        srv.push(Fault.server_error(500), match="Q: when are TLS certificates rotated")
        code, out, err = cli(capsys, "gate", "--format", "json")
    assert code == 0, out + err
    rows = json.loads(out)["verdict"]["results"]
    assert [(r["rule"], r["status"]) for r in rows if r["metric"] == "error_rate"] == [("error_rate max_rate=0.5",
                                                                                       "pass")]


# --- defects found in review: each was exit 3, or a PASS with nothing judged -------------------------------


def _runs(root: Path) -> list[Path]:
    return sorted((root / ".harness" / "runs").glob("*/*.json"))


def test_run_file_with_nan_is_exit_2_naming_file_and_field_and_gate_stores_nothing(
        proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock(proj / "harness.toml")
    assert cli(capsys, "run")[0] == 0
    [run_file] = _runs(proj)
    data = json.loads(load_run(run_file).model_dump_json())
    data["scores"][0]["value"] = float("nan")
    bad = proj / "bad-run.json"
    bad.write_text(json.dumps(data))  # Python writes NaN, which json.loads accepts
    code, out, err = cli(capsys, "diff", str(bad), str(run_file))
    assert code == 2, out + err
    assert "bad-run.json: field 'scores.0.value'" in err and "not a finite number" in err
    code, out, err = cli(capsys, "gate", "--base", str(bad))
    assert code == 2 and "scores.0.value" in err, out + err
    assert _runs(proj) == [run_file]  # the base was refused before the head run was executed and stored


@pytest.mark.parametrize("args", [("gate", "--alpha", "0"), ("diff", "--alpha", "1.5"), ("gate", "--resamples", "0"),
                                  ("diff", "--resamples", "-5"), ("gate", "--seed", "-1"), ("diff", "--alpha", "nan")])
def test_out_of_range_statistics_options_are_usage_errors(proj: Path, capsys: pytest.CaptureFixture[str],
                                                          args: tuple[str, ...]) -> None:
    code, out, err = cli(capsys, *args)
    assert code == 2, out + err
    assert f"Invalid value for '{args[1]}'" in err and "range" in err


@pytest.mark.parametrize("args", [("--format", "md", "-o", "afile/x.md"), ("--junit", "afile/x.xml"),
                                  ("--format", "md", "-o", "/proc/version")])
def test_unwritable_gate_output_is_exit_2_before_anything_runs(proj: Path, capsys: pytest.CaptureFixture[str],
                                                               args: tuple[str, ...]) -> None:
    lock(proj / "harness.toml")
    (proj / "afile").write_text("a file, not a folder\n")
    code, out, err = cli(capsys, "gate", *args)
    assert code == 2, out + err
    assert err.strip().startswith(f"error: cannot write {args[-1]}") or f"cannot write {args[-1]}" in err
    assert not _runs(proj)  # no verdict computed and then hidden


def test_init_under_a_file_is_exit_2(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "init", "golden/cases.jsonl/x")
    assert code == 2, out + err
    assert "cannot write golden/cases.jsonl/x/harness.toml" in err


def test_promote_without_a_baseline_still_applies_the_rules_that_need_none(
        proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with_gates(proj, '[[gates]]\nmetric = "ndcg@10"\nmin = 0.99\n\n[[gates]]\nmetric = "ndcg@10"\nmax_drop = 0.1\n')
    assert cli(capsys, "run")[0] == 0
    code, out, err = cli(capsys, "baseline", "promote")
    assert code == 2, out + err
    assert "fails the gates (ndcg@10 min=0.99)" in err  # the drop rule is not applicable with no baseline
    assert not (proj / ".harness" / "baseline.json").exists()


def test_a_segment_gone_from_head_fails_its_tag_rule(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = with_gates(proj, '[[gates]]\nmetric = "ndcg@10"\nsegment = "topic=*"\nmax_drop = 0.5\n'
                                "require_significant = false\n")
    assert cli(capsys, "run")[0] == 0
    assert cli(capsys, "baseline", "promote", "--force")[0] == 0  # topic=misc is unscored: forced
    golden = proj / "golden" / "cases.jsonl"
    golden.write_text("".join(ln + "\n" for ln in golden.read_text().splitlines() if '"storage"' not in ln))
    lock(manifest)
    code, out, err = cli(capsys, "gate", "--format", "json")
    assert code == 1, out + err
    rows = [r for r in json.loads(out)["verdict"]["results"] if r["segment"] == "topic=storage"]
    assert [r["status"] for r in rows] == ["fail"]
    assert "segment topic=storage has no cases in head (2 in base)" in rows[0]["message"]


def test_latency_with_every_case_cached_is_a_counted_skip_not_a_pass(
        proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with_gates(proj, '[[gates]]\nmetric = "latency"\nstage = "retrieve"\nmax_seconds = 10\n')
    assert cli(capsys, "run")[0] == 0
    (proj / ".harness" / "runs").rename(proj / "old-runs")  # the next run is served from the cache
    code, out, err = cli(capsys, "gate", "--format", "json")
    rows = [r for r in json.loads(out)["verdict"]["results"] if r["metric"] == "latency"]
    assert code == 0 and [r["status"] for r in rows] == ["skip"], out + err
    assert "no case was measured: all 4 served from cache" in rows[0]["message"]


@pytest.mark.parametrize(("rule", "key", "expected"), [
    ('metric = "error_rate"\nmax_drop = 0.1', "max_drop", "a drop rule needs a per-case metric"),
    ('metric = "latency"\nstage = "retrieve"\nmax_seconds = 1\nmax_abs_drop = 0.1', "max_abs_drop",
     "a drop rule needs a per-case metric"),
    ('metric = "ndcg@10"\nmin = 0.1\nquantile = 0.5', "quantile", "quantile applies only"),
    ('metric = "recall@5"\nmax_rate = 0.5', "max_rate", "higher-is-better"),
])
def test_rule_a_metric_cannot_have_is_exit_2(proj: Path, capsys: pytest.CaptureFixture[str], rule: str, key: str,
                                             expected: str) -> None:
    manifest = proj / "harness.toml"
    manifest.write_text(manifest.read_text() + f"\n[[gates]]\n{rule}\n")
    code, out, err = cli(capsys, "lock")
    if code == 0:  # checked when the gate starts (the direction of a metric needs its scorers)
        code, out, err = cli(capsys, "gate")
    assert code == 2, out + err
    assert expected in err
    assert not _runs(proj)
