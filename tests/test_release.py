"""diff -> gate -> baseline -> attribute -> rollback on the bundled example (real MiniLM, offline)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from tests.conftest import ROOT


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", "-q", *args], cwd=cwd, capture_output=True,
                          text=True)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("example")
    for name in ("golden", "indexes", "prompts", "validators", "variants"):
        shutil.copytree(ROOT / name, root / name)
    shutil.copy(ROOT / "harness.toml", root / "harness.toml")
    out = harness("run", "--json", cwd=root)
    assert out.returncode == 0, out.stderr
    promoted = harness("baseline", "promote", cwd=root)
    assert promoted.returncode == 0, promoted.stderr
    return root


@pytest.mark.slow
def test_neutral_change_passes_the_gate(example: Path) -> None:
    out = harness("gate", "-f", "variants/prompt-v2.toml", "--format", "json", cwd=example)
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads(out.stdout)
    assert data["passed"] is True
    changed = {a["role"] for a in data["diff"]["artifacts"]}
    assert changed == {"prompt"}  # moved paths with equal content are not changes
    prompt = next(a for a in data["diff"]["artifacts"] if a["role"] == "prompt")
    assert "+content = \"\"\"You are Quillstore's documentation assistant" in prompt["text_diff"]


@pytest.mark.slow
def test_retrieval_regression_fails_the_gate_with_junit_and_markdown(example: Path) -> None:
    junit = example / "gate.xml"
    summary = example / "summary.md"
    out = harness("gate", "-f", "variants/retrieval-v2.toml", "--format", "md", "-o", str(summary), "--junit",
                  str(junit), cwd=example)
    assert out.returncode == 1, out.stdout + out.stderr
    md = summary.read_text()
    assert "## harness gate: FAIL" in md and "| ndcg@10 max_drop=0.05 | all | FAIL |" in md
    assert "relevant docs lost from top-10" in md
    suite = ET.parse(junit).getroot()
    cases = suite.findall("testcase")
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert len(cases) == int(suite.get("tests") or 0) >= 9
    assert "ndcg@10 max_drop=0.05" in failed and "recall@10 max_drop=0.05" in failed
    assert not any("format_critical_fail" in (name or "") for name in failed)


@pytest.mark.slow
def test_diff_reports_statistics_flips_and_calibration(example: Path) -> None:
    out = harness("run", "-f", "variants/retrieval-v2.toml", cwd=example)
    assert out.returncode == 0, out.stderr
    # the coarse IVF says what it costs against exact search on the same corpus, measured over the run's queries
    quality = re.search(r"index (\S+) \(nprobe 1\): recall@20 (0\.\d{3}) against exact search on 76 sampled",
                        out.stdout)
    assert quality is not None and quality[1].startswith("IVF") and float(quality[2]) < 0.9, out.stdout
    out = harness("diff", "-f", "variants/retrieval-v2.toml", "--json", cwd=example)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    ndcg = next(m for m in d["metrics"] if m["metric"] == "ndcg@10")
    assert ndcg["n"] == 76 and ndcg["delta"] < 0 and ndcg["ci_high"] < 0 and ndcg["significant"]
    assert ndcg["wins"] + ndcg["ties"] + ndcg["losses"] == 76 and ndcg["losses"] > ndcg["wins"]
    assert {s["segment"] for s in d["segments"]} >= {"topic=storage", "difficulty=hard"}
    assert d["segment_sizes"]["topic=storage"] == 13
    assert d["flips"] and d["flips"][0]["impact"] >= d["flips"][-1]["impact"]
    assert any(c.startswith("relevant docs lost from top-10") for f in d["flips"] for c in f["causes"])
    assert {s["which"] for s in d["score_shift"]} == {"top1", "top10"}
    cal = d["calibration"]
    # over real scores only: base's 90% threshold keeps 90% of its retrieved relevant passages, and the
    # share of relevant passages the coarse index never retrieves is reported apart (it drops)
    assert cal["kept_base_at_threshold"] >= 0.9
    assert cal["in_top_k_share_head"] < cal["in_top_k_share_base"]
    # one comparison: the diff's family leaves out tests where nothing changed
    tests = d["metrics"] + d["segments"]
    assert 0 < d["family_size"] == sum(m["in_family"] for m in tests) < len(tests)
    assert all(m["p_adjusted"] is None for m in tests if m["changed"] == 0)


@pytest.mark.slow
def test_attribution_blames_the_index(example: Path) -> None:
    out = harness("run", "-f", "variants/both-v2.toml", cwd=example)
    assert out.returncode == 0, out.stderr
    out = harness("attribute", "-f", "variants/both-v2.toml", "-m", "ndcg@10", "-m", "fact_recall", "--json",
                  cwd=example)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["changed_roles"] == ["index", "prompt"] and report["method"] == "shapley"
    for a in report["attributions"]:
        assert a["delta"] < 0
        assert a["shares"]["index"] == pytest.approx(a["delta"], abs=1e-9)  # extractive ignores the prompt
        assert sum(a["shares"].values()) == pytest.approx(a["delta"], abs=1e-12)


@pytest.mark.slow
def test_rollback_restores_files_and_pins(example: Path) -> None:
    index = example / "indexes" / "flat-ip.toml"
    before = index.read_text()
    index.write_text('type = "ivf"\nmetric = "ip"\nnlist = 32\nnprobe = 1\n')
    assert harness("lock", cwd=example).returncode == 0
    assert harness("run", cwd=example).returncode == 0
    out = harness("rollback", cwd=example)
    assert out.returncode == 0, out.stderr
    assert "index" in out.stdout
    assert index.read_text() == before
    assert harness("verify", cwd=example).returncode == 0


def test_previous_commit_is_the_default_baseline(tmp_path: Path) -> None:
    """The manifest sits below the repository's top (as in a monorepo): git must still find its history."""
    from tests.conftest import make_project

    project = tmp_path / "evals"
    manifest = make_project(project)
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], cwd=tmp_path, check=True)
    first = harness("run", "--json", cwd=project)
    manifest.write_text(manifest.read_text().replace("k = 5", "k = 3"))
    assert harness("lock", cwd=project).returncode == 0
    subprocess.run([*git, "commit", "-qam", "v2"], cwd=tmp_path, check=True)
    assert harness("run", cwd=project).returncode == 0
    out = harness("diff", "--json", cwd=project)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["base_run"] == json.loads(first.stdout)["run_id"]
    (change,) = d["artifacts"]
    assert change["role"] == "retriever" and change["params_diff"] == {"k": [5, 3]}


def test_diff_lists_cases_in_one_run_only(tmp_path: Path) -> None:
    from harness.diff import compare
    from harness.manifest import lock
    from harness.pipeline import run_manifest
    from tests.conftest import make_project

    manifest = make_project(tmp_path)
    base = run_manifest(manifest).run
    cases = tmp_path / "golden" / "cases.jsonl"
    lines = cases.read_text().splitlines()
    cases.write_text("\n".join([*lines[1:], '{"id": "q9", "query": "phrase search", "relevance": {"d6": 1}}']) + "\n")
    lock(manifest)
    head = run_manifest(manifest).run
    d = compare(base, head)
    assert d.only_in_base == ("q1",) and d.only_in_head == ("q9",)
    assert all(m.n <= 2 for m in d.metrics)  # aligned cases only; never averaged away silently
