"""`harness import trec` on trec_eval's own test files: the golden set is the qrels, each run file a pinned
outputs artifact, and the imported project's runs score exactly what `harness metrics` (trec_eval-exact)
prints for the same files, then diff and gate as two runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.golden import load_golden
from harness.manifest import load_manifest, require_verified
from harness.metrics.trec.files import read_qrels
from harness.runs import load_run
from tests.reliability.clirun import cli_in_process


@pytest.fixture
def trec_data(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    return shared_data / "trec_eval"


def _import(capsys: pytest.CaptureFixture[str], data: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    return cli_in_process(capsys, "import", "trec", "--qrels", str(data / "qrels.test"), "--run",
                          str(data / "results.test"), "--run", str(data / "results.trunc"), "--out", str(out), *extra)


def test_qrels_become_the_golden_set_and_each_run_a_locked_manifest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], trec_data: Path) -> None:
    out = tmp_path / "proj"
    code, stdout, err = _import(capsys, trec_data, out)
    assert code == 0, err
    assert "3 cases" in stdout
    cases = load_golden(out / "golden" / "cases.jsonl")
    assert {c.id: dict(c.relevance) for c in cases} == read_qrels(trec_data / "qrels.test").to_mapping()
    assert all(c.query == c.id for c in cases)  # no topics file: the query is its id
    for name in ("results.test", "results.trunc"):
        assert (out / "runs" / name).read_bytes() == (trec_data / name).read_bytes()
    main, variant = load_manifest(out / "harness.toml"), load_manifest(out / "variants" / "results.trunc.toml")
    for loaded in (main, variant):
        require_verified(loaded)  # locked: every pin current
        assert set(loaded.manifest.artifacts) == {"golden", "outputs"}
        assert loaded.manifest.artifacts["outputs"].params == {"format": "trec"}
    assert variant.manifest.artifacts["golden"].path == "../golden/cases.jsonl"
    assert variant.manifest.artifacts["golden"].sha256 == main.manifest.artifacts["golden"].sha256
    assert main.resolve("outputs").resolve() == (out / "runs" / "results.test").resolve()
    assert variant.resolve("outputs").resolve() == (out / "runs" / "results.trunc").resolve()


def test_the_run_scores_what_harness_metrics_prints_per_query_and_two_runs_gate(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], trec_data: Path) -> None:
    out = tmp_path / "proj"
    assert _import(capsys, trec_data, out)[0] == 0
    runs = {}
    for name, manifest in (("results.test", out / "harness.toml"),
                           ("results.trunc", out / "variants" / "results.trunc.toml")):
        code, stdout, err = cli_in_process(capsys, "run", "--manifest", str(manifest), "--json")
        assert code == 0, err
        runs[name] = load_run(json.loads(stdout)["path"])
        # results.trunc has no line for query 302: it retrieved nothing and scores 0, as trec_eval -c says
        trec_flags = ["-c"] if name == "results.trunc" else []
        code, stdout, err = cli_in_process(capsys, "metrics", "-q", "--json", *trec_flags, "-m", "map", "-m", "ndcg",
                                           "-m", "ndcg_cut.10", "-m", "P.10", "-m", "recall.100",
                                           str(trec_data / "qrels.test"), str(trec_data / name))
        assert code == 0, err
        oracle = json.loads(stdout)["measures"]
        for ours, theirs in (("map", "map"), ("ndcg", "ndcg"), ("ndcg@10", "ndcg_cut_10"), ("precision@10", "P_10"),
                             ("recall@100", "recall_100")):
            values = runs[name].metric_values(ours)
            expected = {q: v for q, v in oracle[theirs].items() if q != "all"}
            assert set(values) == set(expected) == {"301", "302", "303"}
            for qid, value in expected.items():
                assert values[qid] == pytest.approx(value, abs=1e-12), (name, ours, qid)
    assert runs["results.trunc"].metric_values("map")["302"] == 0.0

    code, _, err = cli_in_process(capsys, "baseline", "promote", "--manifest", str(out / "harness.toml"))
    assert code == 0, err
    code, stdout, err = cli_in_process(capsys, "gate", "--manifest", str(out / "variants" / "results.trunc.toml"),
                                       "--format", "json")
    assert code in (0, 1), err
    verdict = json.loads(stdout)
    assert verdict["base"].startswith("promoted baseline")
    changed = {a["role"]: a for a in verdict["diff"]["artifacts"]}
    assert set(changed) == {"outputs"}  # the two manifests differ in the run file alone
    deltas = {d["metric"]: d for d in verdict["diff"]["metrics"] if d["segment"] == "all"}
    assert deltas["map"]["base_mean"] == pytest.approx(runs["results.test"].aggregates.overall["map"].mean)
    assert deltas["map"]["head_mean"] == pytest.approx(runs["results.trunc"].aggregates.overall["map"].mean)
    assert deltas["map"]["head_mean"] < deltas["map"]["base_mean"]
    assert [r["metric"] for r in verdict["verdict"]["results"]][:2] == ["map", "ndcg@10"]


def test_topics_give_the_query_texts(tmp_path: Path, capsys: pytest.CaptureFixture[str], trec_data: Path) -> None:
    tsv = tmp_path / "topics.tsv"
    tsv.write_text("301\tinternational organized crime\n302\tpoliomyelitis and post-polio\n303\thubble telescope\n")
    jsonl = tmp_path / "topics.jsonl"
    jsonl.write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in
                             [("301", "international organized crime"), ("302", "poliomyelitis and post-polio"),
                              ("303", "hubble telescope")]))
    for topics in (tsv, jsonl):
        out = tmp_path / topics.suffix.lstrip(".")
        code, _, err = _import(capsys, trec_data, out, "--topics", str(topics))
        assert code == 0, err
        assert {c.id: c.query for c in load_golden(out / "golden" / "cases.jsonl")}["303"] == "hubble telescope"


def test_yaml_manifests(tmp_path: Path, capsys: pytest.CaptureFixture[str], trec_data: Path) -> None:
    out = tmp_path / "proj"
    code, _, err = _import(capsys, trec_data, out, "--format", "yaml")
    assert code == 0, err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.yaml")) == [
        "harness.yaml", "variants/results.trunc.yaml"]
    require_verified(load_manifest(out / "variants" / "results.trunc.yaml"))


@pytest.mark.parametrize(("damage", "message"), [
    ("topics", r"topics.tsv: no text for the judged query '302' \(1 of 3 missing\)"),
    ("run", r"bad.run:2: expected 6 whitespace-separated fields"),
    ("unjudged", r"other.run: no query of this run is judged in .*qrels.test"),
    ("same name", r"two runs are named 'results.test'"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          trec_data: Path, damage: str, message: str) -> None:
    args = ["--qrels", str(trec_data / "qrels.test"), "--run", str(trec_data / "results.test")]
    if damage == "topics":
        (tmp_path / "topics.tsv").write_text("301\ta\n303\tb\n")
        args += ["--topics", str(tmp_path / "topics.tsv")]
    elif damage == "run":
        (tmp_path / "bad.run").write_text("301 Q0 d1 1 2.0 x\n301 Q0 d2 2\n")
        args += ["--run", str(tmp_path / "bad.run")]
    elif damage == "unjudged":
        (tmp_path / "other.run").write_text("999 Q0 d1 1 2.0 x\n")
        args += ["--run", str(tmp_path / "other.run")]
    else:
        (tmp_path / "copy").mkdir()
        (tmp_path / "copy" / "results.test").write_bytes((trec_data / "results.test").read_bytes())
        args += ["--run", str(tmp_path / "copy" / "results.test")]
    out = tmp_path / "out"
    code, _, err = cli_in_process(capsys, "import", "trec", *args, "--out", str(out))
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err
    assert not out.exists()
