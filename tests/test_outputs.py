"""Bring your own outputs: another system's answers, contexts and rankings scored, diffed and gated like a
run of the harness's own (harness/outputs.py, the outputs artifact of the manifest)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.manifest import load_manifest, lock
from harness.metrics import compute_metrics
from harness.pipeline import execute
from harness.runs import load_run
from tests.reliability.clirun import cli_in_process

REPO = Path(__file__).resolve().parents[1]
TREC = REPO.parent / "shared" / "data" / "trec_eval"
HASHING = 'params = { backend = "hashing", dim = 256 }'


def _jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), "utf-8")


def _example_project(tmp_path: Path, n: int = 8) -> tuple[Path, list[dict], list[dict]]:
    """The bundled example's first ``n`` cases, its corpus and validators, in a git project of their own."""
    root = tmp_path / "proj"
    (root / "golden").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    cases = [json.loads(line) for line in (REPO / "golden" / "cases.jsonl").read_text("utf-8").splitlines()[:n]]
    _jsonl(root / "golden" / "cases.jsonl", cases)
    shutil.copy(REPO / "golden" / "corpus.jsonl", root / "golden" / "corpus.jsonl")
    shutil.copytree(REPO / "validators", root / "validators")
    docs = [json.loads(line) for line in (REPO / "golden" / "corpus.jsonl").read_text("utf-8").splitlines()]
    return root, cases, docs


def _head(name: str) -> str:
    """A manifest's first lines: the example's golden set, corpus and validators, hashing embeddings."""
    return f"""schema_version = 1
name = "{name}"

[artifacts.golden]
kind = "golden"
path = "golden/cases.jsonl"

[artifacts.corpus]
kind = "corpus"
path = "golden/corpus.jsonl"

[artifacts.validators]
kind = "validators"
path = "validators"

[artifacts.embedding]
kind = "embedding_model"
{HASHING}
"""


def _manifest(root: Path, outputs: str, *, extra: str = "", name: str = "harness.toml") -> Path:
    path = root / name
    path.write_text(f"""{_head("byo")}
[artifacts.outputs]
kind = "outputs"
version = "app"
{outputs}
{extra}""", "utf-8")
    lock(path)
    return path


def _app_outputs(cases: list[dict], docs: list[dict], *, wrong: set[int] = frozenset(), skip: set[int] = frozenset()
                 ) -> list[dict]:
    """What a RAG app produced: the reference answer (or a wrong one), its top relevant doc plus a miss, and
    the texts it showed its model."""
    texts = {d["id"]: d["text"] for d in docs}
    out = []
    for i, c in enumerate(cases):
        if i in skip:
            continue
        rel = sorted(c.get("relevance", {}), key=lambda d: -c["relevance"][d])
        ranking = rel[:1] + [d["id"] for d in docs if d["id"] not in rel][:2]
        answer = "Nothing relevant here." if i in wrong else (c.get("answers") or ["?"])[0]
        out.append({"id": c["id"], "answer": answer, "retrieved": ranking,
                    "contexts": [texts[d] for d in ranking], "latency_s": {"generate": 0.25}})
    return out


def test_supplied_answers_and_rankings_are_scored_like_a_run(tmp_path: Path) -> None:
    root, cases, docs = _example_project(tmp_path)
    records = _app_outputs(cases, docs, wrong={1})
    _jsonl(root / "out.jsonl", records)
    report = execute(load_manifest(_manifest(root, 'path = "out.jsonl"')))
    run = report.run
    scores = run.case_scores()
    # retrieval metrics are trec_eval's on the supplied ranking, in the order given
    qrels = {c["id"]: c["relevance"] for c in cases if c.get("relevance")}
    ranked = {r["id"]: [(d, float(len(r["retrieved"]) - i)) for i, d in enumerate(r["retrieved"])] for r in records}
    expected = compute_metrics(qrels, ranked, ["ndcg@10", "mrr@10"])
    for cid in qrels:
        assert scores[cid]["ndcg@10"] == pytest.approx(expected["ndcg@10"][cid])
        assert scores[cid]["mrr@10"] == pytest.approx(expected["mrr@10"][cid])
    # every answer scorer ran on the supplied answers; no generator, so no truncation metric
    assert scores[cases[0]["id"]]["answer_contains"] == 1.0 and scores[cases[1]["id"]]["answer_contains"] == 0.0
    for metric in ("groundedness", "format_pass", "fact_recall", "instructions_strict"):
        assert metric in run.aggregates.overall
    assert "truncated" not in run.aggregates.overall
    # the passages scored for groundedness are the texts the app supplied
    out0 = run.outputs[0]
    assert [d.text for d in out0.contexts] == records[0]["contexts"] and out0.generation is None
    assert out0.latency_s == {"generate": 0.25} and run.counts["errors"] == 0 and run.counts["generated"] == 0
    assert load_run(report.path).outputs[0].contexts == out0.contexts  # stored and read back


def test_a_case_without_an_outputs_record_is_a_counted_error_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root, cases, docs = _example_project(tmp_path)
    _jsonl(root / "out.jsonl", _app_outputs(cases, docs, skip={2}))
    _manifest(root, 'path = "out.jsonl"')
    monkeypatch.chdir(root)
    code, out, err = cli_in_process(capsys, "run")
    assert code == 1 and cases[2]["id"] in err and "no record for this case" in err
    assert "supplied outputs scored, 1 cases without a record" in out and "retrieved 0" not in out
    run = load_run(next((root / ".harness" / "runs").rglob("*.json")))
    missing = [o for o in run.outputs if o.error is not None]
    assert [(o.case_id, o.error.stage, o.error.kind) for o in missing] == [(cases[2]["id"], "outputs", "missing")]
    assert run.counts["outputs_missing"] == 1
    values = run.case_scores()[cases[2]["id"]]
    assert values["ndcg@10"] is None and values["answer_contains"] == 0.0  # never a vacuous pass


def test_the_apps_own_errors_are_per_case_errors(tmp_path: Path) -> None:
    root, cases, docs = _example_project(tmp_path, n=3)
    records = _app_outputs(cases, docs)
    records[0] = {"id": cases[0]["id"], "answer": None, "error": {"kind": "timeout", "message": "upstream 504"}}
    _jsonl(root / "out.jsonl", records)
    run = execute(load_manifest(_manifest(root, 'path = "out.jsonl"'))).run
    err = run.outputs[0].error
    assert err is not None and (err.stage, err.kind, err.message) == ("generate", "timeout", "upstream 504")
    assert run.counts["errors"] == 1


@pytest.mark.parametrize(("record", "field", "message"), [
    ({"id": "no-such-case", "answer": "x"}, "id", "not in the golden set"),
    ({"id": "CASE", "answer": "x", "retrieved": ["no-such-doc"]}, "retrieved.0", "not in the corpus"),
    ({"id": "CASE", "answr": "x"}, None, "'answr' was unexpected"),
    ({"id": "CASE", "contexts": [3]}, "contexts.0", ""),
    ({"id": "CASE", "retrieved": ["DOC", "DOC"]}, "retrieved.1", "ranked twice"),
])
def test_bad_outputs_are_one_line_with_file_line_and_field_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        record: dict, field: str | None, message: str) -> None:
    root, cases, docs = _example_project(tmp_path, n=3)
    good = _app_outputs(cases, docs)[:1]
    bad = json.loads(json.dumps(record).replace("CASE", cases[1]["id"]).replace("DOC", docs[0]["id"]))
    _jsonl(root / "out.jsonl", [*good, bad])
    _manifest(root, 'path = "out.jsonl"')
    monkeypatch.chdir(root)
    code, _, err = cli_in_process(capsys, "run")
    assert code == 2, err
    line = err.strip().splitlines()[0]
    assert "out.jsonl:2" in line and message in line, err
    if field is not None:
        assert f"field '{field}'" in line, err
    assert not (root / ".harness" / "runs").exists()  # nothing written


def test_a_duplicate_record_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    root, cases, docs = _example_project(tmp_path, n=2)
    records = _app_outputs(cases, docs)
    _jsonl(root / "out.jsonl", [*records, records[0]])
    _manifest(root, 'path = "out.jsonl"')
    monkeypatch.chdir(root)
    code, _, err = cli_in_process(capsys, "run")
    assert code == 2 and "out.jsonl:3" in err and "duplicate record" in err and "first at line 1" in err


@pytest.mark.parametrize(("extra", "message"), [
    ('\n[artifacts.retriever]\nkind = "retriever"\nparams = { k = 5 }\n', "supplied outputs replace retrieval"),
    ('\n[artifacts.generator]\nkind = "generator"\nparams = { name = "extractive" }\n'
     '\n[artifacts.prompt]\nkind = "prompt"\npath = "answer.toml"\n',
     "carries answers and the manifest pins a generator"),
])
def test_outputs_beside_a_stage_they_replace_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch, extra: str,
                                                       message: str) -> None:
    root, cases, docs = _example_project(tmp_path, n=2)
    shutil.copy(REPO / "prompts" / "answer.toml", root / "answer.toml")
    _jsonl(root / "out.jsonl", _app_outputs(cases, docs))
    path = root / "harness.toml"
    monkeypatch.chdir(root)
    if "retriever" in extra:  # refused as the manifest loads, before it can be locked
        path.write_text(_manifest(root, 'path = "out.jsonl"').read_text("utf-8") + extra, "utf-8")
    else:
        _manifest(root, 'path = "out.jsonl"', extra=extra)
    code, _, err = cli_in_process(capsys, "run")
    assert code == 2 and message in err, err


def test_contexts_that_name_their_doc_ids_are_the_ranking(tmp_path: Path) -> None:
    root, cases, docs = _example_project(tmp_path, n=3)
    texts = {d["id"]: d["text"] for d in docs}
    records = []
    for r in _app_outputs(cases, docs):
        contexts = [{"text": texts[d], "doc_id": d, "score": 1.0 / (i + 1)} for i, d in enumerate(r["retrieved"])]
        records.append({"id": r["id"], "answer": r["answer"], "contexts": contexts})
    _jsonl(root / "out.jsonl", records)
    run = execute(load_manifest(_manifest(root, 'path = "out.jsonl"'))).run
    for out, rec in zip(run.outputs, records, strict=True):
        assert [d.doc_id for d in out.ranking] == [c["doc_id"] for c in rec["contexts"]] and out.ranking_scored
        assert [d.id for d in out.contexts] == [c["doc_id"] for c in rec["contexts"]]
    assert all(run.case_scores()[c["id"]]["mrr@10"] == 1.0 for c in cases)  # the top context is relevant


def test_answers_alone_leave_retrieval_unjudged_and_a_gate_on_it_fails(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root, cases, docs = _example_project(tmp_path, n=3)
    _jsonl(root / "out.jsonl", [{"id": r["id"], "answer": r["answer"]} for r in _app_outputs(cases, docs)])
    _manifest(root, 'path = "out.jsonl"', extra='\n[[gates]]\nmetric = "ndcg@10"\nmin = 0.5\n')
    run = execute(load_manifest(root / "harness.toml")).run
    assert "ndcg@10" not in run.aggregates.overall and run.aggregates.overall["answer_contains"].mean == 1.0
    monkeypatch.chdir(root)
    code, out, err = cli_in_process(capsys, "gate", "--allow-no-baseline")
    assert code != 0 and "ndcg@10" in out + err  # never judged as 0, never a silent pass


def test_outputs_carried_by_the_golden_set(tmp_path: Path) -> None:
    root, cases, docs = _example_project(tmp_path, n=4)
    supplied = {r["id"]: r for r in _app_outputs(cases, docs, wrong={0})}
    _jsonl(root / "golden" / "cases.jsonl",
           [{**c, "output": {k: v for k, v in supplied[c["id"]].items() if k != "id"}} for c in cases])
    run = execute(load_manifest(_manifest(root, 'params = { from = "golden" }'))).run
    scores = run.case_scores()
    assert scores[cases[0]["id"]]["answer_contains"] == 0.0 and scores[cases[1]["id"]]["answer_contains"] == 1.0
    assert run.outputs[1].ranking[0].doc_id == supplied[cases[1]["id"]]["retrieved"][0]


def test_rankings_only_feed_the_pinned_generator(tmp_path: Path) -> None:
    # a retrieval system's output (ranked doc ids) answered by the harness's own generator
    root, cases, docs = _example_project(tmp_path, n=4)
    shutil.copy(REPO / "prompts" / "answer.toml", root / "answer.toml")
    records = [{"id": r["id"], "retrieved": r["retrieved"]} for r in _app_outputs(cases, docs)]
    _jsonl(root / "out.jsonl", records)
    extra = ('\n[artifacts.generator]\nkind = "generator"\nparams = { name = "extractive", n_passages = 2 }\n'
             '\n[artifacts.prompt]\nkind = "prompt"\npath = "answer.toml"\n')
    run = execute(load_manifest(_manifest(root, 'path = "out.jsonl"', extra=extra))).run
    assert run.counts["generated"] == 4 and run.counts["errors"] == 0
    for out, rec in zip(run.outputs, records, strict=True):
        assert out.generation is not None and list(out.generation.passages_shown) == rec["retrieved"][:2]
        assert out.answer
    assert "truncated" in run.aggregates.overall


# --- a TREC run file is a run ------------------------------------------------------------------------------


def _trec_project(tmp_path: Path) -> Path:
    root = tmp_path / "trec"
    (root / "runs").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    qrels: dict[str, dict[str, int]] = {}
    for line in (TREC / "qrels.test").read_text("utf-8").splitlines():
        qid, _, doc, grade = line.split()
        qrels.setdefault(qid, {})[doc] = int(grade)
    _jsonl(root / "golden.jsonl", [{"id": q, "query": f"topic {q}", "relevance": r} for q, r in qrels.items()])
    shutil.copy(TREC / "results.test", root / "runs" / "results.test")
    shutil.copy(TREC / "results.trunc", root / "runs" / "results.trunc")
    for name, run in (("harness.toml", "results.test"), ("trunc.toml", "results.trunc")):
        (root / name).write_text(f"""schema_version = 1
name = "trec"

[artifacts.golden]
kind = "golden"
path = "golden.jsonl"

[artifacts.outputs]
kind = "outputs"
version = "{run}"
path = "runs/{run}"
params = {{ format = "trec" }}

[metrics]
retrieval = ["map", "rprec", "mrr", "precision@10", "ndcg", "ndcg@10", "recall@100", "success@1"]

[[gates]]
metric = "map"
max_drop = 0.05
require_significant = false  # trec_eval's test data has 3 queries: no drop could be significant
""", "utf-8")
        lock(root / name)
    return root


def _trec_eval_per_query(path: Path, measures: set[str]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for line in path.read_text("utf-8").splitlines():
        measure, qid, value = line.split()
        if qid != "all" and measure in measures:
            out.setdefault(measure, {})[qid] = float(value)
    return out


@pytest.mark.skipif(not TREC.is_dir(), reason="../shared/data/trec_eval is not beside the project")
def test_a_trec_run_file_scores_as_trec_eval_does(tmp_path: Path) -> None:
    root = _trec_project(tmp_path)
    run = execute(load_manifest(root / "harness.toml")).run
    names = {"map": "map", "Rprec": "rprec", "recip_rank": "mrr", "P_10": "precision@10", "ndcg": "ndcg",
             "ndcg_cut_10": "ndcg@10", "recall_100": "recall@100", "success_1": "success@1"}
    expected = _trec_eval_per_query(TREC / "out.test.aq", set(names))  # trec_eval -a -q qrels.test results.test
    scores = run.case_scores()
    checked = 0
    for measure, ours in names.items():
        for qid, value in expected[measure].items():
            assert scores[qid][ours] == pytest.approx(value, abs=5e-5), (measure, qid)
            checked += 1
    assert checked == 8 * 3  # every query of trec_eval's test data, every measure
    # a query of the qrels the run has no lines for retrieved nothing (scored 0, as trec_eval -c), not an error
    assert run.counts["errors"] == 0


@pytest.mark.skipif(not TREC.is_dir(), reason="../shared/data/trec_eval is not beside the project")
def test_two_trec_runs_diff_and_gate(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root = _trec_project(tmp_path)
    monkeypatch.chdir(root)
    code, _, err = cli_in_process(capsys, "run")
    assert code == 0, err
    code, _, err = cli_in_process(capsys, "baseline", "promote")
    assert code == 0, err
    code, out, err = cli_in_process(capsys, "gate", "--manifest", "trunc.toml", "--format", "md")
    # results.trunc keeps a few lines per query: map drops 43%, beyond 5%, and the gate says so
    assert code == 1, out + err
    assert "map" in out and "outputs" in out  # the artifact that changed: the outputs pin
    assert "more diff lines" in out and len(out.splitlines()) < 400  # 1,000-line run files: the diff is cut
    # the HTML report against the baseline opens on the same verdict
    code, out, err = cli_in_process(capsys, "report", "--manifest", "trunc.toml", "--against", "baseline",
                                    "-o", "report.html")
    assert code == 0, err
    html = (root / "report.html").read_text("utf-8")
    assert "Gate FAILED" in html and "map max_drop=0.05" in html


@pytest.mark.skipif(not TREC.is_dir(), reason="../shared/data/trec_eval is not beside the project")
def test_a_drop_no_test_could_tell_from_noise_fails_as_unjudgeable(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # trec_eval's test data has 3 queries: a 43% drop in map can never be significant, so it is not noise
    root = _trec_project(tmp_path)
    for name in ("harness.toml", "trunc.toml"):
        path = root / name
        path.write_text(path.read_text("utf-8").replace("require_significant = false", ""), "utf-8")
    monkeypatch.chdir(root)
    assert cli_in_process(capsys, "run")[0] == 0
    assert cli_in_process(capsys, "baseline", "promote")[0] == 0
    code, out, err = cli_in_process(capsys, "gate", "--manifest", "trunc.toml", "--format", "md")
    assert code == 1, out + err
    assert "cannot judge" in out and "no test could tell this drop from noise" in out


def test_app_v1_and_v2_diff_with_flips_and_attribution(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root, cases, docs = _example_project(tmp_path, n=8)
    _jsonl(root / "v1.jsonl", _app_outputs(cases, docs))
    _jsonl(root / "v2.jsonl", _app_outputs(cases, docs, wrong={0, 3, 5}))
    _manifest(root, 'path = "v1.jsonl"')
    _manifest(root, 'path = "v2.jsonl"', name="v2.toml")
    monkeypatch.chdir(root)
    assert cli_in_process(capsys, "run")[0] == 0
    assert cli_in_process(capsys, "baseline", "promote")[0] == 0
    assert cli_in_process(capsys, "run", "--manifest", "v2.toml")[0] == 0
    code, out, err = cli_in_process(capsys, "diff", "--manifest", "v2.toml", "--json")
    assert code == 0, err
    diff = json.loads(out)
    regressed = {f["case_id"] for f in diff["flips"] if f["direction"] == "regressed"}
    assert regressed == {cases[i]["id"] for i in (0, 3, 5)}
    assert [(a["role"], a["change"]) for a in diff["artifacts"]] == [("outputs", "changed")]
    # the app ranked doc ids without scores: ranks stand in for them, so no score distribution or calibration
    assert all(s["n_base"] == 0 and s["psi"] is None for s in diff["score_shift"]) and diff["calibration"] is None
    code, out, err = cli_in_process(capsys, "gate", "--manifest", "v2.toml", "--attribute", "--format", "md")
    assert "outputs" in out, out + err


# --- from Python: evaluate_outputs ---------------------------------------------------------------------------


def test_evaluate_outputs_from_records_and_a_dataframe(tmp_path: Path) -> None:
    import pandas as pd

    from harness.evaluate import evaluate_outputs

    _, cases, docs = _example_project(tmp_path, n=6)
    records = _app_outputs(cases, docs, wrong={2})
    report = evaluate_outputs(cases, pd.DataFrame(records), corpus=REPO / "golden" / "corpus.jsonl",
                              validators=REPO / "validators", embedding="hashing", project=tmp_path / "eval")
    run = report.run
    assert report.path.is_file() and report.path.is_relative_to(tmp_path / "eval")
    assert run.case_scores()[cases[2]["id"]]["answer_contains"] == 0.0
    assert run.aggregates.overall["answer_contains"].mean == pytest.approx(5 / 6)
    # the same outputs as a list of dicts give the same scores
    again = evaluate_outputs(cases, records, corpus=REPO / "golden" / "corpus.jsonl", validators=REPO / "validators",
                             embedding="hashing", project=tmp_path / "eval2").run
    assert again.case_scores() == run.case_scores()


def test_evaluate_outputs_bad_input_names_the_record_and_leaves_nothing(tmp_path: Path) -> None:
    from harness.errors import InputError
    from harness.evaluate import evaluate_outputs

    cases = [{"id": "q1", "query": "what?", "answers": ["x"]}, {"id": "q2", "query": "why?", "answers": ["y"]}]
    with pytest.raises(InputError, match=r"outputs.jsonl:2: field 'id': case id 'q3' is not in the golden set"):
        evaluate_outputs(cases, [{"id": "q1", "answer": "x"}, {"id": "q3", "answer": "y"}], embedding="none",
                         project=tmp_path / "eval")
    assert not (tmp_path / "eval").exists()


# --- found in review: each one a way to pass silently or crash -------------------------------------------------


def test_a_gate_judges_the_answer_metrics_of_supplied_answers(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    root, cases, docs = _example_project(tmp_path, n=6)
    _jsonl(root / "out.jsonl", _app_outputs(cases, docs, wrong={0, 1, 2}))
    gates = '\n[[gates]]\nmetric = "answer_contains"\nmin = 0.9\n\n[[gates]]\nmetric = "format_pass"\nmin = 0.0\n'
    _manifest(root, 'path = "out.jsonl"', extra=gates)
    monkeypatch.chdir(root)
    code, out, err = cli_in_process(capsys, "gate", "--allow-no-baseline")
    assert code == 1 and "answer_contains" in out and "FAIL" in out, out + err  # judged: 0.5 < 0.9


@pytest.mark.parametrize(("lines", "message"), [
    ("301 Q0 A 1 1.0 t\n301 Q0 A 2 0.5 t\n", "d.run:2: document 'A' is ranked twice for query '301'"),
    ("301 Q0 A 1 1.0 t\n301 Q0 B 2 inf t\n", "d.run:2: score inf of document 'B'"),
])
def test_a_bad_trec_run_is_one_line_exit_2_and_nothing_written(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch, lines: str,
                                                                message: str) -> None:
    root = _trec_project(tmp_path)
    (root / "runs" / "results.test").write_text(lines, "utf-8")
    (root / "d.run").write_text(lines, "utf-8")
    lock(root / "harness.toml")
    text = (root / "harness.toml").read_text("utf-8").replace('path = "runs/results.test"', 'path = "d.run"')
    (root / "harness.toml").write_text(text, "utf-8")
    lock(root / "harness.toml")
    monkeypatch.chdir(root)
    code, _, err = cli_in_process(capsys, "run")
    assert code == 2 and message in err and len(err.strip().splitlines()) <= 2, err
    assert not (root / ".harness").exists()


@pytest.mark.parametrize(("records", "message"), [
    ([{"answer": "x", "retrieved": [{"doc_id": "DOC", "score": 1e999}]}], "field 'retrieved.0.score'"),
    ([{"answer": "x", "retrieved": ["DOC"]}, {"answer": "y"}], "out.jsonl:2: field 'retrieved': this record has no"),
    ([{"answer": "x"}, {"retrieved": ["DOC"]}], "out.jsonl:2: field 'answer': this record has no"),
    ([{"answer": "x", "contexts": [{"text": "t", "doc_id": "DOC"}]}, {"answer": "y", "contexts": ["only text"]}],
     "out.jsonl:2: field 'retrieved'"),
    ([{}, {}], "nothing to score"),
])
def test_records_that_would_score_silently_wrong_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch, records: list[dict],
                                                             message: str) -> None:
    root, cases, docs = _example_project(tmp_path, n=2)
    recs = [json.loads(json.dumps(r).replace('"DOC"', json.dumps(docs[0]["id"])).replace("1e+999", "1e999"))
            for r in records]
    lines = [json.dumps({"id": c["id"], **r}).replace("Infinity", "1e999") + "\n"
             for c, r in zip(cases, recs, strict=False)]  # a record for each of the first cases
    (root / "out.jsonl").write_text("".join(lines), "utf-8")
    _manifest(root, 'path = "out.jsonl"')
    monkeypatch.chdir(root)
    code, _, err = cli_in_process(capsys, "run")
    assert code == 2 and message in err, err


def test_trec_queries_without_lines_are_counted_and_said(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root = _trec_project(tmp_path)
    lines = [ln for ln in (TREC / "results.test").read_text("utf-8").splitlines() if ln.startswith("301")]
    (root / "runs" / "results.test").write_text("\n".join(lines) + "\n", "utf-8")
    lock(root / "harness.toml")
    monkeypatch.chdir(root)
    code, out, err = cli_in_process(capsys, "run")
    assert code == 0, err
    assert "2 cases the run has no lines for (scored 0, as trec_eval -c)" in out
    run = load_run(next((root / ".harness" / "runs").rglob("*.json")))
    assert run.counts["outputs_unranked"] == 2 and run.case_scores()["302"]["map"] == 0.0


def test_evaluate_outputs_takes_golden_cases_with_their_output(tmp_path: Path) -> None:
    from harness.evaluate import evaluate_outputs
    from harness.golden import load_golden

    root, cases, docs = _example_project(tmp_path, n=3)
    supplied = {r["id"]: r for r in _app_outputs(cases, docs)}
    _jsonl(root / "with_output.jsonl",
           [{**c, "output": {k: v for k, v in supplied[c["id"]].items() if k != "id"}} for c in cases])
    loaded = load_golden(root / "with_output.jsonl")
    run = evaluate_outputs(loaded, None, corpus=root / "golden" / "corpus.jsonl", validators=root / "validators",
                           embedding="hashing", project=tmp_path / "eval").run
    assert all(not o.ranking_scored for o in run.outputs)  # ranks stood in for scores, and still do
    assert [d.doc_id for d in run.outputs[0].ranking] == supplied[cases[0]["id"]]["retrieved"]


def test_evaluate_outputs_keeps_a_folder_it_was_given(tmp_path: Path) -> None:
    from harness.errors import HarnessError, InputError
    from harness.evaluate import evaluate_outputs

    mine = tmp_path / "mine"
    mine.mkdir()
    with pytest.raises(InputError):
        evaluate_outputs([{"id": "q1", "query": "q"}], [{"id": "nope", "answer": "a"}], embedding="none", project=mine)
    assert mine.is_dir() and not any(mine.iterdir())
    (tmp_path / "file").write_text("x")
    with pytest.raises(HarnessError, match="is a file"):
        evaluate_outputs([{"id": "q1", "query": "q"}], [{"id": "q1", "answer": "a"}], embedding="none",
                         project=tmp_path / "file")


def test_attribution_between_a_retrieving_run_and_supplied_outputs_swaps_the_system_as_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    root, cases, docs = _example_project(tmp_path, n=6)
    shutil.copy(REPO / "prompts" / "answer.toml", root / "answer.toml")
    (root / "flat.toml").write_text('type = "flat"\n', "utf-8")
    retrieving = root / "ours.toml"
    retrieving.write_text(f"""{_head("ours")}
[artifacts.index]
kind = "index_recipe"
path = "flat.toml"

[artifacts.retriever]
kind = "retriever"
params = {{ k = 10 }}

[artifacts.prompt]
kind = "prompt"
path = "answer.toml"

[artifacts.generator]
kind = "generator"
params = {{ name = "extractive", n_passages = 3 }}
""", "utf-8")
    lock(retrieving)
    _jsonl(root / "app.jsonl", _app_outputs(cases, docs, wrong={1}))
    app = _manifest(root, 'path = "app.jsonl"', name="app.toml")
    # the app also ships other contracts: a second unit that swaps alone
    shutil.copytree(root / "validators", root / "validators2")
    contracts = root / "validators2" / "contracts.toml"
    contracts.write_text(contracts.read_text("utf-8") + "\n# the app's copy\n", "utf-8")
    app.write_text(app.read_text("utf-8").replace('path = "validators"', 'path = "validators2"'), "utf-8")
    lock(app)
    monkeypatch.chdir(root)
    assert cli_in_process(capsys, "run", "--manifest", "ours.toml")[0] == 0
    assert cli_in_process(capsys, "baseline", "promote", "--manifest", "ours.toml")[0] == 0
    assert cli_in_process(capsys, "run", "--manifest", "app.toml")[0] == 0
    base = next(p for p in (root / ".harness" / "runs").rglob("*.json") if load_run(p).manifest.name == "ours")
    code, out, err = cli_in_process(capsys, "attribute", str(base), "--manifest", "app.toml")
    assert code == 0, err
    # hybrids mix whole systems with either contracts; never half a retriever and half an outputs file
    assert "changed: generator+index+outputs+prompt+retriever, validators (shapley)" in out, out
