"""One comparison: the same (base, head) pair gives the same adjusted p-values, labels and verdicts in
``harness diff``, ``harness gate``, ``harness report`` and the pytest plugin.

Before this change the diff corrected over every metric x segment (constant ones included) while the
gate corrected again over the tests its rules read, so the same test had two p_adj (0.199 in the diff,
0.0068 in the gate on the bundled example). Now the Diff carries the one family (tests that can reach
significance with the cases that changed; nothing-changed tests leave it) and every front end reads it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.manifest import lock
from harness.stats import holm
from tests.conftest import MANIFEST, write_jsonl

N = 40
STABLE = set(range(0, N, 5))  # their query words are in the title too: retrieval does not change for them


def build(root: Path) -> None:
    docs, cases = [], []
    for i in range(N):
        words = f"alpha{i} bravo{i} charlie{i}"
        title = f"Topic {i} {words}" if i in STABLE else f"Topic {i}"
        docs.append({"id": f"d{i}", "title": title, "text": f"{words} delta{i} and some shared filler text"})
        cases.append({"id": f"q{i}", "query": f"alpha{i} bravo{i} charlie{i}", "relevance": {f"d{i}": 1},
                      "tags": {"topic": "abcd"[i % 4], "stable": "yes" if i in STABLE else "no"}})
    write_jsonl(root / "golden" / "corpus.jsonl", docs)
    write_jsonl(root / "golden" / "cases.jsonl", cases)
    (root / "indexes").mkdir(parents=True, exist_ok=True)
    (root / "indexes" / "flat.toml").write_text('type = "flat"\n')
    base = MANIFEST.format(recipe="flat").replace("dim = 64", "dim = 1024")
    gates = """
[[gates]]
metric = "ndcg@10"
max_drop = 0.05

[[gates]]
name = "per topic"
metric = "recall@5"
segment = "topic=*"
max_drop = 0.05

[[gates]]
name = "stable cases"
metric = "mrr@10"
segment = "stable=*"
max_abs_drop = 0.01
"""
    (root / "harness.toml").write_text(base + gates)
    # head: documents embedded by title only, so the other 32 cases lose their relevant document
    (root / "head.toml").write_text(base.replace('text_fields = ["title", "text"]', 'text_fields = ["title"]')
                                    + gates)
    lock(root / "harness.toml")
    lock(root / "head.toml")


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Run base and head once; collect every front end's view of the comparison."""
    root = tmp_path_factory.mktemp("one")
    build(root)
    mp = pytest.MonkeyPatch()
    mp.delenv("HARNESS_HOME", raising=False)
    mp.delenv("HARNESS_CACHE_DIR", raising=False)
    mp.chdir(root)
    capsys = _Capture()
    try:
        assert capsys.run("run")[0] == 0
        assert capsys.run("baseline", "promote")[0] == 0
        code, gate_out, err = capsys.run("gate", "-f", "head.toml", "--format", "json")
        assert code == 1, gate_out + err
        code, diff_out, err = capsys.run("diff", "-f", "head.toml", "--json")
        assert code == 0, err
        code, md_out, err = capsys.run("diff", "-f", "head.toml", "--format", "md")
        code, report_out, err = capsys.run("report", "-f", "head.toml", "--against", "baseline", "--format", "json")
        assert code == 0, err
        code, _, err = capsys.run("report", "-f", "head.toml", "--against", "baseline", "-o",
                                          str(root / "r.html"))
        assert code == 0, err
    finally:
        mp.undo()
    plugin = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--harness-manifest",
                             "head.toml", "-k", "gate"], cwd=root, capture_output=True, text=True, timeout=300)
    return {"gate": json.loads(gate_out), "diff": json.loads(diff_out), "md": md_out,
            "report": json.loads(report_out), "html": (root / "r.html").read_text(), "pytest": plugin.stdout}


class _Capture:
    """In-process CLI with its own stdout/stderr capture (a module-scoped fixture cannot use capsys)."""

    def run(self, *args: str) -> tuple[int, str, str]:
        import contextlib
        import io

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(["-q", *args])
                code = 0
            except SystemExit as exc:
                code = int(exc.code or 0)
        return code, out.getvalue(), err.getvalue()


def by_test(diff: dict) -> dict[tuple[str, str], dict]:
    return {(m["metric"], m["segment"]): m for m in diff["metrics"] + diff["segments"]}


def fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def test_diff_gate_and_report_carry_identical_p_adjusted(compared: dict) -> None:
    diff = by_test(compared["diff"])
    for other in (compared["gate"]["diff"], compared["report"]["diff"]):
        assert {k: (m["p_adjusted"], m["significant"], m["in_family"]) for k, m in by_test(other).items()} == {
            k: (m["p_adjusted"], m["significant"], m["in_family"]) for k, m in diff.items()}
    assert compared["gate"]["diff"]["family_size"] == compared["diff"]["family_size"] > 0


def test_gate_verdicts_quote_the_diffs_p_adjusted(compared: dict) -> None:
    diff = by_test(compared["diff"])
    rows = [r for r in compared["gate"]["verdict"]["results"] if "p_adj=" in r["message"]]
    assert rows, compared["gate"]["verdict"]
    for r in rows:
        m = diff[(r["metric"], r["segment"] or "all")]
        quoted = re.search(r"p_adj=(\S+?)(?:[;,)]|\s|$)", r["message"])
        assert quoted and quoted.group(1) == fmt(m["p_adjusted"]), (r, m["p_adjusted"])
        # a drop over its limit fails exactly when the diff calls the test significant
        if r["observed"] is not None and r["limit"] is not None and r["observed"] > r["limit"]:
            assert (r["status"] == "fail") == m["significant"], r


def test_pytest_gate_item_reports_the_same_values(compared: dict) -> None:
    diff = by_test(compared["diff"])
    text = compared["pytest"]
    assert "checks failed" in text, text
    for line in text.splitlines():
        hit = re.search(r"FAIL (.+?)(?: \[(\S+)\])?: .*p_adj=(\S+?)(?:[;,)]|\s|$)", line)
        if hit is None:
            continue
        rule = hit.group(1)
        metric = "ndcg@10" if rule.startswith("ndcg@10") else {"per topic": "recall@5", "stable cases": "mrr@10"}[rule]
        assert hit.group(3) == fmt(diff[(metric, hit.group(2) or "all")]["p_adjusted"]), line


def test_tests_that_cannot_vary_leave_the_family(compared: dict) -> None:
    d = compared["diff"]
    tests = by_test(d)
    unchanged = [m for m in tests.values() if m["changed"] == 0]
    assert unchanged and all(not m["in_family"] and m["p_adjusted"] is None and not m["significant"]
                             for m in unchanged)
    # the stable cases retrieve the same document in both runs: every test on them is out of the family
    assert all(not m["in_family"] for (metric, seg), m in tests.items() if seg == "stable=yes")
    family = [m for m in tests.values() if m["in_family"]]
    assert len(family) == d["family_size"]
    # Holm over exactly the family's raw p-values reproduces every adjusted value (no second correction)
    assert list(holm([m["p_value"] for m in family])) == [m["p_adjusted"] for m in family]
    # a clear overall regression is significant in it
    assert tests[("ndcg@10", "all")]["significant"] and tests[("ndcg@10", "all")]["direction"] == "regressed"


def test_text_and_html_reports_state_the_diffs_family(compared: dict) -> None:
    d = compared["diff"]
    family = f"over the {d['family_size']} of {len(d['metrics']) + len(d['segments'])} metric x segment tests"
    assert family in compared["md"] and family in compared["html"]
    p = by_test(d)[("ndcg@10", "all")]["p_adjusted"]
    assert (f"{p:.3g}" if p >= 0.001 else "<0.001") in compared["md"]


def test_tarone_family_keeps_only_tests_that_can_reach_significance() -> None:
    from harness.stats.multiple import sign_flip_min_p, tarone_family

    assert sign_flip_min_p(0) == 1.0 and sign_flip_min_p(1) == 1.0 and sign_flip_min_p(11) == 2.0 ** -10
    # 3 tests with many changed cases, 1 with 5 (min p 1/16: never below alpha), 1 constant
    mins = [sign_flip_min_p(n) for n in (40, 30, 12, 5, 0)]
    assert tarone_family(mins, 0.05) == (True, True, True, False, False)
    # K is the smallest k with #{min_p <= alpha/k} <= k: 11 changed cases (2**-10) fit a family of 3...
    assert tarone_family([sign_flip_min_p(n) for n in (60, 60, 11)], 0.05) == (True, True, True)
    # ...but not one of 60, where alpha/K is below what they can reach
    assert sum(tarone_family([sign_flip_min_p(60)] * 59 + [sign_flip_min_p(11)], 0.05)) == 59
