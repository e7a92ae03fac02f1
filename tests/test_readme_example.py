"""The README's "Python API" example runs as written, in a copy of the bundled example project, and produces
what it says: a gate verdict, the run and diff as DataFrames and Arrow tables, and the run's own outputs
scored again through evaluate_outputs with the same values."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from tests.conftest import ROOT

EXAMPLE = ("harness.toml", "golden", "indexes", "prompts", "validators", "variants")
QUICK_CASES = 12
HASHING = ('[artifacts.embedding]\nkind = "embedding_model"\nversion = "hashing-64"\n'
           'params = { backend = "hashing", dim = 64 }\n')


def python_api_blocks() -> list[str]:
    """The fenced python blocks of the README's "Python API" section."""
    readme = (ROOT / "README.md").read_text("utf-8")
    section = re.search(r"^## Python API\n(.*?)(?=^## )", readme, re.S | re.M)
    assert section, "README.md has no '## Python API' section"
    blocks = re.findall(r"^```python\n(.*?)^```", section.group(1), re.S | re.M)
    assert blocks, "the Python API section has no python block"
    return blocks


def run_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, quick: bool) -> dict[str, Any]:
    """Copy the bundled example into ``tmp_path`` and execute the README's blocks there. ``quick``: its
    embedding swapped for the hashing backend (no model loads) and its golden set cut to its first
    ``QUICK_CASES`` cases, the manifests re-locked."""
    for name in EXAMPLE:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp_path / name)
    if quick:
        from harness.manifest import lock

        golden = tmp_path / "golden" / "cases.jsonl"
        golden.write_text("".join(golden.read_text("utf-8").splitlines(keepends=True)[:QUICK_CASES]), "utf-8")
        for manifest in (tmp_path / "harness.toml", *sorted((tmp_path / "variants").glob("*.toml"))):
            text = re.sub(r"^\[artifacts\.embedding\]\n.*?\n\n", HASHING + "\n", manifest.read_text(),
                          count=1, flags=re.S | re.M)
            assert HASHING in text, manifest
            manifest.write_text(text)
            lock(manifest)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    for block in python_api_blocks():
        exec(compile(block, "README.md (Python API)", "exec"), namespace)
    return namespace


def check_frames(ns: dict[str, Any], n_cases: int) -> None:
    head, diff = ns["head"], ns["diff"]
    cases, metrics, deltas, flips, table = (ns[k] for k in ("cases", "metrics", "deltas", "flips", "table"))
    assert all(isinstance(f, pd.DataFrame) for f in (cases, metrics, deltas, flips)) and isinstance(table, pa.Table)
    assert len(cases) == table.num_rows == len(head.outputs) == n_cases
    assert {"case_id", "tag:topic", "ndcg@10", "answer_f1", "answer", "error_kind"} <= set(cases.columns)
    agg = head.aggregates
    assert len(metrics) == len(agg.overall) + sum(len(ms) for ms in agg.segments.values())
    assert len(deltas) == len(diff.metrics) + len(diff.segments)
    assert len(flips) == sum(len(f.deltas) for f in diff.flips)
    assert (tmp_run := Path(ns["report"].path)).is_file() and ".harness" in tmp_run.parts
    # the run's own answers and rankings, evaluated as another system's outputs, score as the run did
    app = ns["app"]
    retrieval = set(head.manifest.metrics.retrieval) & set(app.manifest.metrics.retrieval)  # both computed
    same = [*sorted(retrieval), "answer_em", "answer_f1", "answer_contains", "fact_recall"]
    assert {"ndcg@10", "recall@10", "map@10", "mrr@10"} <= retrieval
    assert {m: app.metric_values(m) for m in same} == {m: head.metric_values(m) for m in same}
    assert app.counts["outputs_missing"] == 0 and not any(o.error for o in app.outputs)


def test_the_readme_example_runs_quickly_without_model_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    ns = run_example(tmp_path, monkeypatch, quick=True)
    check_frames(ns, QUICK_CASES)
    assert ns["verdict"].head_run == ns["head"].run_id and ns["verdict"].base_run == ns["base"].run_id
    assert "answer_f1" in capsys.readouterr().out  # the per-topic means printed


@pytest.mark.slow
def test_the_readme_example_runs_on_the_bundled_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As written, with MiniLM: what the README's bundled-example section says of the passage change holds
    (answers change, cases flip, and the gate passes)."""
    ns = run_example(tmp_path, monkeypatch, quick=False)
    check_frames(ns, 76)
    assert ns["verdict"].passed, [r.message for r in ns["verdict"].failed]
    assert len(ns["flips"]["case_id"].unique()) == len(ns["diff"].flips) > 0
