"""`make eval` demonstrates changes the offline path really evaluates (issue 10).

Its first demo used to be a prompt-only change, which the extractive generator cannot see (it never
reads the prompt's wording): every answer stayed the same, so that gate could not fail. The first
demo now shows the generator 3 passages instead of 5: answers change, the gate judges them and
passes; the second is still the coarse IVF index, which fails and is attributed to the index.

`make eval` runs once, on a copy of the bundled example (real MiniLM, offline), with the project's
own venv; nothing is written into the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.runs import load_run
from tests.conftest import ROOT


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", "-q", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def _answers(project: Path, run_id: str) -> dict[str, str | None]:
    (path,) = (project / ".harness" / "runs").glob(f"*/{run_id}.json")
    run = load_run(path)
    return {o.case_id: o.answer for o in run.outputs}


pytestmark = pytest.mark.slow  # `make eval` on the bundled example loads the real MiniLM
Made = tuple[Path, subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    root = tmp_path_factory.mktemp("eval-demo")
    for name in ("golden", "indexes", "prompts", "validators", "variants"):
        shutil.copytree(ROOT / name, root / name)
    shutil.copy(ROOT / "harness.toml", root / "harness.toml")
    env = {k: v for k, v in os.environ.items()
           if k not in ("HARNESS_HOME", "HARNESS_CACHE_DIR", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "CI")}
    venv = Path(sys.executable).parent.parent
    # The Makefile's own recipe, run in the copy; -o: the venv is set up already, do not reinstall.
    out = subprocess.run(["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), "-o",
                          str(venv / ".installed"), f"VENV={venv}", "eval"],
                         cwd=root, env=env, capture_output=True, text=True, timeout=900)
    return root, out


def test_make_eval_ends_green_first_demo_passes_second_fails(made: Made) -> None:
    _, out = made
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    verdicts = [line for line in out.stdout.splitlines() if line.startswith("## harness gate:")]
    assert verdicts == ["## harness gate: PASS", "## harness gate: FAIL"]
    first, second = out.stdout.split("## harness gate: FAIL")
    assert "variants/passages-3.toml" in first and "prompt-v2" not in out.stdout
    assert "0 failed, 0 skipped of" in first  # every rule was judged, none skipped
    assert "`n_passages`: `5` -> `3`" in first
    attribution = second.split("**Attribution**")[1]
    assert "- ndcg@10 -" in attribution and "index -" in attribution


def test_the_passing_demo_changes_answers_and_scores_unlike_a_prompt_only_change(made: Made) -> None:
    root, out = made
    assert out.returncode == 0, out.stderr[-3000:]
    d = json.loads(harness("diff", "-f", "variants/passages-3.toml", "--json", cwd=root).stdout)
    assert {a["role"] for a in d["artifacts"]} == {"generator"}
    base, head = _answers(root, d["base_run"]), _answers(root, d["head_run"])
    assert base.keys() == head.keys() and len(base) == 76
    changed = [c for c in base if base[c] != head[c]]
    assert len(changed) >= 5, changed
    moved = {m["metric"] for m in d["metrics"] if m["wins"] + m["losses"] > 0}
    assert {"fact_recall", "groundedness", "format_pass"} <= moved
    assert not moved & {"ndcg@10", "recall@10"}  # retrieval did not change; only what the generator saw
    assert any("answer changed while retrieval did not" in c for f in d["flips"] for c in f["causes"])

    # The contrast that made the old demo meaningless: a prompt-only change leaves every offline answer as is.
    ran = harness("run", "-f", "variants/prompt-v2.toml", "--json", cwd=root)
    assert ran.returncode == 0, ran.stderr
    assert _answers(root, json.loads(ran.stdout)["run_id"]) == base


def test_the_failing_demo_reports_lost_passages_not_a_threshold_that_keeps_everything(
        made: Made) -> None:
    root, out = made
    assert out.returncode == 0, out.stderr[-3000:]
    d = json.loads(harness("diff", "-f", "variants/retrieval-v2.toml", "--json", cwd=root).stdout)
    c = d["calibration"]
    assert c["relevant_base"] == c["relevant_head"] > 0
    assert c["in_top_k_share_head"] < c["in_top_k_share_base"] - 0.2 < 1.0  # the IVF index loses passages
    assert 0.9 <= c["kept_base_at_threshold"] < 1.0  # a real score, not a floor below everything retrieved
    assert c["threshold"] > 0
    line = next(ln for ln in out.stdout.split("## harness gate: FAIL")[1].splitlines()
                if ln.startswith("**Score calibration**"))
    assert f"head {c['in_top_k_share_head']:.0%} ({c['relevant_in_top_k_head']}/{c['relevant_head']})" in line
