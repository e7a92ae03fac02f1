"""`harness import hotpotqa` on the real dev subset: questions, answers, one deduplicated corpus with stable
content ids, supporting paragraphs judged relevant; HotpotQA's own layout too (type and level as tags)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness.golden import load_corpus, load_golden
from harness.hashing import sha256_parts
from harness.manifest import load_manifest, require_verified
from harness.runs import load_run
from tests.reliability.clirun import cli_in_process


@pytest.fixture
def dev(shared_data: Path) -> Path:
    return shared_data / "hotpotqa" / "dev_500.jsonl"


def _records(path: Path, n: int | None = None) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines[:n]]


def test_questions_paragraphs_and_supporting_facts(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   dev: Path) -> None:
    out = tmp_path / "proj"
    code, stdout, err = cli_in_process(capsys, "import", "hotpotqa", str(dev), "--out", str(out))
    assert code == 0, err
    records = _records(dev)
    paragraphs = {(c["title"], c["paragraph_text"]) for r in records for c in r["contexts"]}
    assert stdout.strip() == f"wrote {out / 'harness.toml'}: 500 cases, {len(paragraphs)} corpus documents"
    assert len(paragraphs) < sum(len(r["contexts"]) for r in records)  # some paragraphs are shared: one doc each
    docs = {d.id: d for d in load_corpus(out / "golden" / "corpus.jsonl")}
    cases = load_golden(out / "golden" / "cases.jsonl", doc_ids=set(docs))
    assert {(d.title, d.text) for d in docs.values()} == paragraphs
    for case, rec in zip(cases, records, strict=True):
        assert case.id == rec["question_id"] and case.query == rec["question_text"]
        assert list(case.answers) == [s for a in rec["answers_objects"] for s in a["spans"]]
        expected = {"p-" + sha256_parts(c["title"], c["paragraph_text"])[:16]: int(c["is_supporting"])
                    for c in rec["contexts"]}
        assert dict(case.relevance) == expected
        assert sum(case.relevance.values()) == 2  # exactly two supporting paragraphs per question
    loaded = load_manifest(out / "harness.toml")
    require_verified(loaded)
    roles = {"golden", "corpus", "embedding", "index", "retriever", "prompt", "generator"}
    assert set(loaded.manifest.artifacts) == roles
    assert loaded.manifest.artifacts["generator"].params["name"] == "extractive"
    assert (out / "prompts" / "answer.toml").is_file()


def test_doc_ids_do_not_depend_on_which_questions_are_imported(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               dev: Path) -> None:
    subset = tmp_path / "tail.jsonl"
    subset.write_text("".join(json.dumps(r) + "\n" for r in _records(dev)[10:20]))
    for src, out, limit in ((dev, tmp_path / "a", ["--limit", "20"]), (subset, tmp_path / "b", [])):
        assert cli_in_process(capsys, "import", "hotpotqa", str(src), "--out", str(out), *limit)[0] == 0
    first = {c.id: c.relevance for c in load_golden(tmp_path / "a" / "golden" / "cases.jsonl")}
    second = load_golden(tmp_path / "b" / "golden" / "cases.jsonl")
    assert len(first) == 20
    assert all(first[c.id] == c.relevance for c in second)


def test_hotpotqa_own_layout_with_type_and_level(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = {"_id": "5a7a06935542990198eaf050", "question": "Which magazine was started first?",
              "answer": "Arthur's Magazine", "type": "comparison", "level": "medium",
              "supporting_facts": [["Arthur's Magazine", 0], ["First for Women", 0]],
              "context": [["Radio City (Indian radio station)", ["Radio City is India's first private FM station."]],
                          ["Arthur's Magazine", ["Arthur's Magazine (1844-1846) was an American literary periodical.",
                                                 " It was published in Philadelphia."]],
                          ["First for Women", ["First for Women is a woman's magazine started in 1989."]]]}
    src = tmp_path / "hotpot_dev_distractor_v1.json"
    src.write_text(json.dumps([record]))  # HotpotQA ships one JSON array
    out = tmp_path / "proj"
    code, _, err = cli_in_process(capsys, "import", "hotpotqa", str(src), "--out", str(out))
    assert code == 0, err
    (case,) = load_golden(out / "golden" / "cases.jsonl")
    assert case.tags == {"type": "comparison", "level": "medium"} and list(case.answers) == ["Arthur's Magazine"]
    docs = {d.title: d for d in load_corpus(out / "golden" / "corpus.jsonl")}
    assert docs["Arthur's Magazine"].text == ("Arthur's Magazine (1844-1846) was an American literary periodical. "
                                              "It was published in Philadelphia.")
    assert {docs[t].id: g for t, g in [("Radio City (Indian radio station)", 0), ("Arthur's Magazine", 1),
                                       ("First for Women", 1)]} == dict(case.relevance)


@pytest.mark.parametrize(("line", "message"), [
    ({"question": "x"}, r"{src}:2: expected a HotpotQA question: an object with 'question_id' .*"),
    ({"question_id": "a", "question_text": "x", "answers_objects": [], "contexts": [
        {"title": "t", "paragraph_text": "p", "is_supporting": "yes"}]},
     r"{src}:2: field 'contexts.0': expected \{{title, paragraph_text, is_supporting \(true or false\)\}}"),
    ({"question_id": "b", "question_text": "x", "answers_objects": [], "contexts": [
        {"title": "t", "paragraph_text": "p", "is_supporting": False}]},
     r"{src}:2: question 'b' has no supporting paragraph"),
])
def test_a_bad_record_is_one_line_exit_2_and_nothing_written(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             dev: Path, line: dict[str, Any], message: str) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text(dev.read_text().splitlines()[0] + "\n" + json.dumps(line) + "\n")
    out = tmp_path / "out"
    code, _, err = cli_in_process(capsys, "import", "hotpotqa", str(src), "--out", str(out))
    assert code == 2, err
    assert re.fullmatch("error: " + message.format(src=re.escape(str(src))), err.strip()), err
    assert not out.exists()


@pytest.mark.slow
def test_the_imported_project_retrieves_answers_and_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           dev: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    out = tmp_path / "proj"
    assert cli_in_process(capsys, "import", "hotpotqa", str(dev), "--out", str(out), "--limit", "20")[0] == 0
    code, stdout, err = cli_in_process(capsys, "run", "--manifest", str(out / "harness.toml"), "--json")
    assert code == 0, err
    run = load_run(json.loads(stdout)["path"])
    assert run.counts["errors"] == 0 and len(run.cases) == 20
    ndcg = run.aggregates.overall["ndcg@10"].mean
    assert ndcg is not None and ndcg > 0
    assert all(o.answer for o in run.outputs)  # the extractive generator answered every case
