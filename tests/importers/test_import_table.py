"""`harness import table`: any table through a column mapping. CSV cells are text (list and object cells JSON),
other formats keep their types; a bad mapping or cell is one line naming file:row, the column and the shape
expected, exit 2, nothing written; the imported project runs at once and scores what it was given."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from harness.golden import load_corpus, load_golden
from harness.hashing import sha256_parts
from harness.manifest import load_manifest, require_verified
from harness.runs import load_run
from tests.reliability.clirun import cli_in_process

ROWS: list[dict[str, Any]] = [
    {"qid": "007", "question": "How long is a reset link valid?", "gt": ["30 minutes", "half an hour"],
     "resp": "It is valid for 30 minutes.", "ctx": ["The reset link expires after 30 minutes."],
     "ranked": ["kb-002", "kb-001"], "rel": {"kb-002": 2, "kb-001": 0}, "topic": "account"},
    {"qid": "008", "question": "What is the Team storage limit?", "gt": "1 TB", "resp": "The limit is 1 TB.",
     "ctx": "The Team plan raises the limit to 1 TB.", "ranked": ["kb-001", "kb-003"], "rel": ["kb-003"],
     "topic": "storage"},
]
MAP = ["--map", "id=qid", "--map", "query=question", "--map", "answers=gt", "--map", "answer=resp",
       "--map", "contexts=ctx", "--map", "retrieved=ranked", "--map", "relevance=rel", "--map", "tags.topic=topic"]


def _csv(path: Path, rows: list[dict[str, Any]], delimiter: str = ",") -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: v if isinstance(v, str) else json.dumps(v) for k, v in row.items()})
    return path


def _expected_cases() -> list[dict[str, Any]]:
    return [
        {"id": "007", "query": "How long is a reset link valid?", "answers": ["30 minutes", "half an hour"],
         "relevance": {"kb-002": 2, "kb-001": 0}, "tags": {"topic": "account"}},
        {"id": "008", "query": "What is the Team storage limit?", "answers": ["1 TB"], "relevance": {"kb-003": 1},
         "tags": {"topic": "storage"}},
    ]


def _expected_outputs() -> list[dict[str, Any]]:
    return [
        {"id": "007", "answer": "It is valid for 30 minutes.", "contexts": ["The reset link expires after 30 minutes."],
         "retrieved": ["kb-002", "kb-001"]},
        {"id": "008", "answer": "The limit is 1 TB.", "contexts": ["The Team plan raises the limit to 1 TB."],
         "retrieved": ["kb-001", "kb-003"]},
    ]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Parquet holds real lists and objects; the one-string and list-of-ids shorthands are the CSV's
    typed = [{**r, "gt": r["gt"] if isinstance(r["gt"], list) else [r["gt"]],
              "ctx": r["ctx"] if isinstance(r["ctx"], list) else [r["ctx"]],
              "rel": json.dumps(r["rel"] if isinstance(r["rel"], dict) else dict.fromkeys(r["rel"], 1))}
             for r in rows]
    pq.write_table(pa.Table.from_pylist(typed), path)
    return path


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet", "datasets"])
def test_every_format_gives_the_same_golden_set_and_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            fmt: str) -> None:
    if fmt == "csv":
        src = _csv(tmp_path / "evals.csv", ROWS)
    elif fmt == "tsv":
        src = _csv(tmp_path / "evals.tsv", ROWS, delimiter="\t")
    elif fmt == "jsonl":
        src = tmp_path / "evals.jsonl"
        src.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    elif fmt == "parquet":
        src = _parquet(tmp_path / "evals.parquet", ROWS)
    else:
        import datasets

        src = tmp_path / "evals_ds"
        datasets.Dataset.from_parquet(str(_parquet(tmp_path / "x.parquet", ROWS))).save_to_disk(str(src))
    args = MAP if fmt not in ("parquet", "datasets") else [a if a != "relevance=rel" else "metadata.rel=rel"
                                                           for a in MAP]
    out = tmp_path / "proj"
    code, stdout, err = cli_in_process(capsys, "import", "table", str(src), "--out", str(out), *args)
    assert code == 0, err
    assert stdout.strip() == f"wrote {out / 'harness.toml'}: 2 cases, 2 outputs records"
    cases = _jsonl(out / "golden" / "cases.jsonl")
    if fmt in ("parquet", "datasets"):  # a JSON string in a typed format is a string, kept as given
        assert [c.pop("metadata") for c in cases] == [{"rel": json.dumps(r)} for r in
                                                      ({"kb-002": 2, "kb-001": 0}, {"kb-003": 1})]
        expected = [{k: v for k, v in c.items() if k != "relevance"} for c in _expected_cases()]
    else:
        expected = _expected_cases()
    assert cases == expected
    assert _jsonl(out / "outputs" / "outputs.jsonl") == _expected_outputs()
    load_golden(out / "golden" / "cases.jsonl")
    loaded = load_manifest(out / "harness.toml")
    require_verified(loaded)
    assert set(loaded.manifest.artifacts) == {"golden", "outputs", "embedding"}


def test_ids_are_generated_from_the_query_stable_and_unique(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"question": "same question", "resp": "a"}, {"question": "other", "resp": "b"},
            {"question": "same question", "resp": "c"}]
    src = _csv(tmp_path / "q.csv", rows)
    ids = []
    for out in (tmp_path / "a", tmp_path / "b"):
        code, stdout, err = cli_in_process(capsys, "import", "table", str(src), "--out", str(out),
                                           "--map", "query=question", "--map", "answer=resp")
        assert code == 0, err
        assert "ids generated from the query text" in stdout
        ids.append([c.id for c in load_golden(out / "golden" / "cases.jsonl")])
    base = "q-" + sha256_parts("same question")[:12]
    assert ids[0] == ids[1] == [base, "q-" + sha256_parts("other")[:12], f"{base}-2"]
    assert [o["id"] for o in _jsonl(tmp_path / "a" / "outputs" / "outputs.jsonl")] == ids[0]


def test_facts_tags_metadata_and_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"q": "how long", "f": "30 minutes", "f2": json.dumps([{"regex": "\\b30\\b"}, "half an hour"]),
             "c": "short", "lvl": "3", "note": "kept as text", "a": "x"}]
    src = _csv(tmp_path / "f.csv", rows)
    out = tmp_path / "proj"
    code, _, err = cli_in_process(capsys, "import", "table", str(src), "--out", str(out), "--map", "query=q",
                                  "--map", "facts=f2", "--map", "contract=c", "--map", "tags.level=lvl",
                                  "--map", "metadata.note=note", "--map", "metadata.fact=f", "--map", "answer=a")
    assert code == 0, err
    (case,) = load_golden(out / "golden" / "cases.jsonl")
    assert [(f.text, f.regex) for f in case.facts] == [(None, "\\b30\\b"), ("half an hour", None)]
    assert case.contract == "short" and case.tags == {"level": "3"}
    assert case.metadata == {"note": "kept as text", "fact": "30 minutes"}


@pytest.mark.parametrize(("rows", "args", "message"), [
    (ROWS, ["--map", "answers=gt"], r"error: {src}: no column is mapped to the query \(--map query=COLUMN\); "
                                    r"columns: qid, question, .*"),
    (ROWS, ["--map", "query=questoin", "--map", "answer=resp"],
     r"error: {src}: no column 'questoin' \(--map query=questoin\); columns: .* \(hint: did you mean 'question'\?\)"),
    (ROWS, ["--map", "qurey=question"],
     r"error: --map 'qurey=question': unknown field 'qurey' .*did you mean 'query'\?\)"),
    (ROWS, ["--map", "query"], r"error: --map 'query': expected FIELD=COLUMN, e.g. --map query=question"),
    ([{"question": "q", "gt": '["a", "b"', "resp": "x"}], ["--map", "query=question", "--map", "answers=gt",
                                                         "--map", "answer=resp"],
     r"error: {src}:1: column 'gt' \(-> answers\): expected a list of strings .*, got a cell that starts like JSON "
     r"but does not parse \(Expecting ',' delimiter at column 10\)"),
    ([{"question": "q", "gt": "[1.5]", "resp": "x"}], ["--map", "query=question", "--map", "answers=gt",
                                                      "--map", "answer=resp"],
     r"error: {src}:1: column 'gt' \(-> answers\): expected a list of strings .*, got a number"),
    ([{"question": "q", "rel": '{"d1": "high"}', "resp": "x"}, ], ["--map", "query=question", "--map", "relevance=rel",
                                                                 "--map", "answer=resp"],
     r"error: {src}:1: column 'rel' \(-> relevance.d1\): 'high' is not of type 'integer'"),
    ([{"question": "q", "resp": "x"}, {"question": "", "resp": "y"}],
     ["--map", "query=question", "--map", "answer=resp"],
     r"error: {src}:2: column 'question' \(-> query\) is empty"),
    ([{"id": "a", "question": "q", "resp": "x"}, {"id": "a", "question": "r", "resp": "y"}],
     ["--map", "id=id", "--map", "query=question", "--map", "answer=resp"],
     r"error: {src}:2: column 'id' \(-> id\): duplicate id 'a' \(first at row 1\)"),
    ([{"question": "q", "ctx": '[{"text": "x", "score": NaN}]'}], ["--map", "query=question", "--map", "contexts=ctx"],
     r"error: {src}:1: column 'ctx' \(-> contexts\): expected a list of passages.*, got NaN in a JSON cell \(JSON has "
     r"no NaN or Infinity\)"),
    ([{"question": "q", "ctx": '[{"txt": "x"}]'}], ["--map", "query=question", "--map", "contexts=ctx"],
     r"error: {src}:1: column 'ctx' \(-> contexts.0\): .*"),
    ([{"question": "q", "gt": "a"}], ["--map", "query=question", "--map", "answers=gt"],
     r"error: {src}: nothing to evaluate: .*"),
])
def test_bad_mapping_or_cell_is_one_line_exit_2_and_nothing_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: list[dict[str, Any]], args: list[str],
        message: str) -> None:
    src = _csv(tmp_path / "bad.csv", rows)
    out = tmp_path / "out"
    code, _, err = cli_in_process(capsys, "import", "table", str(src), "--out", str(out), *args)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert re.fullmatch(message.format(src=re.escape(str(src))), err.strip()), err
    assert not out.exists()


def test_a_corpus_gives_a_project_that_retrieves_and_answers(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    docs = _csv(tmp_path / "docs.csv", [{"doc": "kb-001", "title": "Hours", "body": "Open 8 to 18."},
                                        {"doc": "kb-002", "title": "Reset", "body": "Links expire after 30 minutes."},
                                        {"doc": "kb-003", "title": "Storage", "body": "The Team plan has 1 TB."}])
    src = _csv(tmp_path / "q.csv", [{"question": r["question"], "rel": json.dumps(r["rel"])} for r in ROWS])
    out = tmp_path / "proj"
    code, _, err = cli_in_process(capsys, "import", "table", str(src), "--out", str(out), "--map", "query=question",
                                  "--map", "relevance=rel", "--corpus", str(docs), "--corpus-map", "id=doc",
                                  "--corpus-map", "text=body")
    assert code == 0, err
    assert [(d.id, d.title, d.text) for d in load_corpus(out / "golden" / "corpus.jsonl")] == [
        ("kb-001", "Hours", "Open 8 to 18."), ("kb-002", "Reset", "Links expire after 30 minutes."),
        ("kb-003", "Storage", "The Team plan has 1 TB.")]
    loaded = load_manifest(out / "harness.toml")
    require_verified(loaded)
    assert {"corpus", "embedding", "index", "retriever", "prompt", "generator"} <= set(loaded.manifest.artifacts)
    code, _, err = cli_in_process(capsys, "import", "table", str(src), "--out", str(tmp_path / "bad"), "--map",
                                  "query=question", "--map", "relevance=rel", "--corpus", str(docs), "--corpus-map",
                                  "text=body")
    assert code == 2  # the documents got content ids, so the relevance names no corpus document
    assert re.fullmatch(r"error: .*q.csv:\d+: field 'rel': column 'rel' \(-> relevance\) names doc id 'kb-002', "
                        r"which is not in the corpus .*docs.csv", err.strip()), err
    assert not (tmp_path / "bad").exists()
    ranked = _csv(tmp_path / "ranked.csv", [{"question": "q", "ranked": '["kb-001", "kb-009"]'}])
    code, _, err = cli_in_process(capsys, "import", "table", str(ranked), "--out", str(tmp_path / "bad"), "--map",
                                  "query=question", "--map", "retrieved=ranked", "--corpus", str(docs),
                                  "--corpus-map", "id=doc", "--corpus-map", "text=body")
    assert code == 2
    assert re.fullmatch(r"error: .*ranked.csv:1: field 'ranked': column 'ranked' \(-> retrieved\) names doc id "
                        r"'kb-009', which is not in the corpus .*docs.csv", err.strip()), err
    assert not (tmp_path / "bad").exists()


def test_the_imported_outputs_run_and_score_their_rankings(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Rankings and judgments only: retrieval metrics from the given doc ids, no model needed."""
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    rows = [{"question": r["question"], "ranked": json.dumps(r["ranked"]), "rel": json.dumps(r["rel"])} for r in ROWS]
    out = tmp_path / "proj"
    code, _, err = cli_in_process(capsys, "import", "table", str(_csv(tmp_path / "r.csv", rows)), "--out", str(out),
                                  "--map", "query=question", "--map", "retrieved=ranked", "--map", "relevance=rel")
    assert code == 0, err
    code, stdout, err = cli_in_process(capsys, "run", "--manifest", str(out / "harness.toml"), "--json")
    assert code == 0, err
    run = load_run(json.loads(stdout)["path"])
    ids = [c.id for c in run.cases]
    # case 1 ranks its grade-2 document first: nDCG 1; case 2 ranks its one relevant document second
    assert run.metric_values("ndcg@10") == {ids[0]: pytest.approx(1.0), ids[1]: pytest.approx(1 / math.log2(3))}
    assert run.metric_values("mrr@10") == {ids[0]: 1.0, ids[1]: 0.5}
