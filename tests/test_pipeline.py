"""End-to-end pipeline on a tiny project with the weightless hashing encoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.errors import IntegrityError
from harness.manifest import load_manifest, lock
from harness.pipeline import execute, run_manifest
from harness.runs import load_run
from tests.conftest import make_project, write_jsonl


def test_run_scores_match_pytrec_eval_and_are_stored(project: Path) -> None:
    import pytrec_eval

    report = run_manifest(project)
    run = report.run
    assert report.path.is_file() and load_run(report.path) == run
    assert run.counts["cases"] == 4 and run.counts["index_built"] == 1
    rankings = {o.case_id: o.ranking for o in run.outputs}
    assert all(len(r) == 5 for r in rankings.values())
    for r in rankings.values():  # score desc, ties by doc id desc (trec_eval order)
        keys = [(-d.score, tuple(-ord(ch) for ch in d.doc_id)) for d in r]
        assert keys == sorted(keys)
    qrels = {"q1": {"d2": 2}, "q2": {"d3": 1, "d5": 0}, "q3": {"d4": 2, "d1": 1}}
    trec_run = {cid: {d.doc_id: d.score for d in r} for cid, r in rankings.items() if cid in qrels}
    oracle = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.5", "map", "P.5"}).evaluate(trec_run)
    values = run.case_scores()
    for qid in qrels:
        assert values[qid]["ndcg@10"] == pytest.approx(oracle[qid]["ndcg_cut_10"], abs=1e-12)
        assert values[qid]["recall@5"] == pytest.approx(oracle[qid]["recall_5"], abs=1e-12)
        assert values[qid]["map"] == pytest.approx(oracle[qid]["map"], abs=1e-12)
        assert values[qid]["precision@5"] == pytest.approx(oracle[qid]["P_5"], abs=1e-12)
    # q4 has no judgments: unscored, explicit, not averaged as 0
    assert values["q4"]["ndcg@10"] is None
    overall = run.aggregates.overall["ndcg@10"]
    assert overall.n == 3 and overall.n_unscored == 1
    assert overall.mean == pytest.approx(sum(oracle[q]["ndcg_cut_10"] for q in qrels) / 3)
    seg = run.aggregates.segments["topic=storage"]["recall@5"]
    assert seg.n == 2 and seg.mean == pytest.approx((oracle["q1"]["recall_5"] + oracle["q3"]["recall_5"]) / 2)


def test_warm_rerun_recomputes_nothing_and_new_case_only_itself(project: Path) -> None:
    first = run_manifest(project).run
    second = run_manifest(project).run
    assert second.counts["retrieved"] == 0 and second.counts["index_built"] == 0
    assert second.counts["embedded_texts"] == 0
    assert all(o.cache_hits["retrieve"] for o in second.outputs)
    assert second.case_scores() == first.case_scores()
    assert second.run_id != first.run_id and second.manifest_id == first.manifest_id
    cases_path = project.parent / "golden" / "cases.jsonl"
    rows = [json.loads(line) for line in cases_path.read_text().splitlines()]
    rows.append({"id": "q5", "query": "phrase search operators", "relevance": {"d6": 1}})
    write_jsonl(cases_path, rows)
    lock(project)
    third = run_manifest(project).run
    assert third.counts["retrieved"] == 1 and third.counts["index_built"] == 0
    assert third.counts["embedded_texts"] == 1  # only the new query


def test_threshold_change_reuses_cached_rankings(project: Path) -> None:
    base = run_manifest(project).run
    project.write_text(project.read_text().replace("k = 5,", "k = 5, score_threshold = 0.2,"))
    lock(project)
    run = run_manifest(project).run
    assert run.counts["retrieved"] == 0 and run.manifest_id != base.manifest_id
    assert all(d.score >= 0.2 for o in run.outputs for d in o.ranking)
    assert sum(len(o.ranking) for o in run.outputs) < sum(len(o.ranking) for o in base.outputs)


@pytest.mark.parametrize("recipe", ["hnsw", "ivf"])
def test_other_recipes_build_and_agree_on_a_tiny_corpus(tmp_path: Path, recipe: str) -> None:
    flat = run_manifest(make_project(tmp_path / "flat")).run
    other = run_manifest(make_project(tmp_path / recipe, recipe=recipe)).run
    assert other.counts["index_built"] == 1
    assert [o.ranking[0].doc_id for o in other.outputs] == [o.ranking[0].doc_id for o in flat.outputs]


def test_corrupted_index_gives_clear_error(project: Path) -> None:
    run_manifest(project)
    (index_file,) = (project.parent / ".harness" / "store" / "indexes").glob("*/index.faiss")
    index_file.write_bytes(index_file.read_bytes()[:-40])
    cases = project.parent / "golden" / "cases.jsonl"
    cases.write_text(cases.read_text().replace("how often do backups run", "how often do backups happen"))
    lock(project)
    with pytest.raises(IntegrityError, match="corrupted or truncated"):
        execute(load_manifest(project))
    result = CliRunner().invoke(cli, ["run", "--manifest", str(project)])
    assert result.exit_code == 2


def test_cli_run_json_summary(project: Path) -> None:
    result = CliRunner().invoke(cli, ["-q", "run", "--manifest", str(project), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data["aggregates"]) == {"ndcg@10", "recall@5", "map", "mrr@10", "precision@5"}
    assert all(isinstance(v, float) for v in data["aggregates"].values())
    assert Path(data["path"]).is_file()


def test_ties_at_the_cutoff_follow_trec_eval_order() -> None:
    import faiss
    import numpy as np

    from harness.index import StoredIndex

    vectors = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32)
    index = faiss.IndexFlatIP(2)
    index.add(vectors)
    stored = StoredIndex(index, ["a", "b", "c", "d"], {})
    query = np.array([[1, 0]], dtype=np.float32)
    assert [d for d, _ in stored.search(query, 1)[0]] == ["c"]  # doc id descending among equal scores
    assert [d for d, _ in stored.search(query, 2)[0]] == ["c", "b"]


def test_search_params_change_re_searches_without_rebuilding(project: Path) -> None:
    (project.parent / "indexes" / "hnsw.toml").write_text('type = "hnsw"\nM = 8\nef_search = 16\n')
    project.write_text(project.read_text().replace('version = "flat"\npath = "indexes/flat.toml"',
                                                   'version = "hnsw"\npath = "indexes/hnsw.toml"'))
    lock(project)
    first = run_manifest(project).run
    assert first.counts["index_built"] == 1
    (project.parent / "indexes" / "hnsw.toml").write_text('type = "hnsw"\nM = 8\nef_search = 32\n')
    lock(project)
    second = run_manifest(project).run
    assert second.counts["index_built"] == 0 and second.counts["retrieved"] == 4


def test_lock_keeps_the_manifest_readable(project: Path) -> None:
    import stat

    project.chmod(0o644)
    lock(project)
    assert stat.S_IMODE(project.stat().st_mode) == 0o644
