"""harness.metrics.ir: metric names, hand-checked values, alignment rules, and batch consistency."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from harness.errors import UnknownMetricError
from harness.metrics import MetricInfo, compute_metrics, metric_info
from harness.metrics.ir import evaluate, judged_rankings_from_mappings, metric_names

ALL = ["ndcg", "ndcg@3", "recall@2", "precision@4", "p@2", "map", "map@2", "mrr", "mrr@1", "rprec",
       "success@1", "num_ret", "num_rel", "num_rel_ret"]  # fmt: skip


# ------------------------------------------------------------------------------------------- names


def test_metric_info_parses_names_and_cutoffs() -> None:
    info = metric_info("ndcg@10")
    assert info == MetricInfo(name="ndcg@10", base="ndcg", cutoff=10, greater_is_better=True,
                              description=info.description)  # fmt: skip
    assert "log2" in info.description and "trec_eval" in info.description
    assert metric_info("P@5").name == "precision@5"
    assert metric_info("p@5").base == "precision"
    assert metric_info(" MAP ").name == "map"
    assert metric_info("map@10").cutoff == 10
    assert metric_info("mrr").cutoff is None
    for name in ("rprec", "num_ret", "num_rel", "num_rel_ret", "ndcg", "success@1", "recall@100"):
        assert metric_info(name).greater_is_better


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("ndcg10", "unknown metric"),
        ("bpref", "unknown metric"),
        ("recall", "needs a cutoff"),
        ("success", "needs a cutoff"),
        ("precision", "needs a cutoff"),
        ("rprec@5", "takes no @k"),
        ("num_ret@5", "takes no @k"),
        ("ndcg@0", "positive integer"),
        ("ndcg@-1", "unknown metric"),
        ("", "unknown metric"),
    ],
)
def test_unknown_metrics_raise_with_the_valid_names(name: str, fragment: str) -> None:
    with pytest.raises(UnknownMetricError) as exc:
        metric_info(name)
    assert fragment in str(exc.value)
    assert "ndcg@k" in str(exc.value) and "recall@k" in str(exc.value)
    with pytest.raises(UnknownMetricError):
        compute_metrics({"q": {"d": 1}}, {"q": [("d", 1.0)]}, ["map", name])


def test_metric_names_cover_every_base() -> None:
    text = " ".join(metric_names())
    for base in (
        "ndcg",
        "recall@k",
        "precision@k",
        "map",
        "mrr",
        "rprec",
        "success@k",
        "num_ret",
        "num_rel_ret",
    ):
        assert base in text


# ---------------------------------------------------------------------------------- hand-computed


QRELS = {"q": {"a": 2, "b": 0, "c": 1, "d": 1, "e": -1}}
# ranked by score: x(unjudged) a(2) b(0) c(1) e(-1); d(1) is not retrieved
RUN = {"q": [("c", 0.4), ("a", 0.9), ("x", 1.0), ("b", 0.5), ("e", 0.1)]}


def test_hand_computed_values() -> None:
    v = {k: d["q"] for k, d in compute_metrics(QRELS, RUN, ALL).items()}
    assert v["num_ret"] == 5 and v["num_rel"] == 3 and v["num_rel_ret"] == 2
    assert v["precision@4"] == pytest.approx(2 / 4)
    assert v["p@2"] == pytest.approx(1 / 2)
    assert v["recall@2"] == pytest.approx(1 / 3)
    assert v["map"] == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert v["map@2"] == pytest.approx((1 / 2) / 3)
    assert v["mrr"] == pytest.approx(1 / 2)
    assert v["mrr@1"] == 0.0
    assert v["rprec"] == pytest.approx(1 / 3)
    assert v["success@1"] == 0.0
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    ideal = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert v["ndcg"] == pytest.approx(dcg / ideal)
    assert v["ndcg@3"] == pytest.approx((2 / math.log2(3)) / ideal)


def test_precision_divides_by_k_even_when_fewer_docs_retrieved() -> None:
    v = compute_metrics({"q": {"a": 1}}, {"q": [("a", 1.0)]}, ["precision@10", "success@10", "recall@10"])
    assert v["precision@10"]["q"] == pytest.approx(0.1)
    assert v["success@10"]["q"] == 1.0 and v["recall@10"]["q"] == 1.0


def test_ties_are_broken_by_doc_id_descending() -> None:
    qrels = {"q": {"a": 1}}
    run = {"q": [("a", 1.0), ("b", 1.0), ("c", 2.0)]}
    v = compute_metrics(qrels, run, ["mrr"])
    assert v["mrr"]["q"] == pytest.approx(1 / 3)  # c, then b before a
    run2 = {"q": [("b", 1.0), ("a", 1.0), ("c", 2.0)]}
    assert compute_metrics(qrels, run2, ["mrr"]) == v
    # byte/code-point order, not natural order: "d10" < "d9"
    v2 = compute_metrics({"q": {"d9": 1}}, {"q": [("d10", 0.5), ("d9", 0.5)]}, ["mrr"])
    assert v2["mrr"]["q"] == 1.0


def test_rank_field_and_input_order_do_not_matter() -> None:
    shuffled = {"q": list(reversed(RUN["q"]))}
    assert compute_metrics(QRELS, shuffled, ALL) == compute_metrics(QRELS, RUN, ALL)


def test_relevance_level_changes_relevance_but_not_ndcg() -> None:
    lvl1 = compute_metrics(QRELS, RUN, ["recall@10", "ndcg", "num_rel"], relevance_level=1)
    lvl2 = compute_metrics(QRELS, RUN, ["recall@10", "ndcg", "num_rel"], relevance_level=2)
    assert lvl2["num_rel"]["q"] == 1 and lvl2["recall@10"]["q"] == 1.0
    assert lvl1["recall@10"]["q"] == pytest.approx(2 / 3)
    assert lvl1["ndcg"] == lvl2["ndcg"]


def test_negative_grades_gain_nothing_and_never_count_as_relevant() -> None:
    v = compute_metrics({"q": {"a": -1, "b": 1}}, {"q": [("a", 2.0), ("b", 1.0)]}, ["ndcg", "mrr", "num_rel"])
    assert v["mrr"]["q"] == 0.5 and v["num_rel"]["q"] == 1
    assert v["ndcg"]["q"] == pytest.approx(1 / math.log2(3))


# ---------------------------------------------------------------------------------------- alignment


def test_alignment_missing_unjudged_and_extra_queries() -> None:
    qrels = {"found": {"a": 1}, "missing": {"b": 1}, "empty": {"c": 1}, "no_rel": {"d": 0}, "no_judg": {}}
    run = {"found": [("a", 1.0)], "empty": [], "no_rel": [("d", 1.0)], "extra": [("z", 1.0)]}
    out = compute_metrics(qrels, run, ["ndcg@10", "map", "num_ret"])
    for name in out:
        assert set(out[name]) == set(qrels)  # every qrels query, never "extra"
        assert out[name]["no_rel"] is None and out[name]["no_judg"] is None
    assert out["ndcg@10"]["found"] == 1.0
    assert out["ndcg@10"]["missing"] == 0.0 and out["map"]["empty"] == 0.0
    assert out["num_ret"]["missing"] == 0.0 and out["num_ret"]["found"] == 1.0
    assert all(isinstance(v, float) for d in out.values() for v in d.values() if v is not None)


def test_result_is_keyed_by_the_names_as_given_and_inputs_are_not_mutated() -> None:
    qrels, run = copy.deepcopy(QRELS), copy.deepcopy(RUN)
    out = compute_metrics(qrels, run, ["P@2", "precision@2"])
    assert list(out) == ["P@2", "precision@2"] and out["P@2"] == out["precision@2"]
    assert qrels == QRELS and run == RUN


def test_bad_runs_raise() -> None:
    with pytest.raises(ValueError, match="more than once"):
        compute_metrics({"q": {"a": 1}}, {"q": [("a", 1.0), ("a", 0.5)]}, ["map"])
    with pytest.raises(ValueError, match="NaN"):
        compute_metrics({"q": {"a": 1}}, {"q": [("a", float("nan"))]}, ["map"])


def test_empty_inputs() -> None:
    assert compute_metrics({}, {}, ["map"]) == {"map": {}}
    assert compute_metrics({"q": {"a": 1}}, {}, ["ndcg", "rprec"]) == {
        "ndcg": {"q": 0.0},
        "rprec": {"q": 0.0},
    }


# ------------------------------------------------------------------------------ batch consistency


def _random_case(rng: np.random.Generator, n_q: int) -> tuple[dict, dict]:
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, list[tuple[str, float]]] = {}
    for i in range(n_q):
        docs = [f"d{j}" for j in rng.choice(200, size=int(rng.integers(1, 60)), replace=False)]
        qrels[f"q{i}"] = {d: int(rng.integers(-1, 4)) for d in docs[: len(docs) // 2 + 1]}
        ranked = [f"d{j}" for j in rng.choice(200, size=int(rng.integers(0, 80)), replace=False)]
        run[f"q{i}"] = [(d, float(rng.integers(0, 5))) for d in ranked]
    return qrels, run


def test_batch_equals_one_query_at_a_time() -> None:
    rng = np.random.default_rng(7)
    qrels, run = _random_case(rng, 40)
    names = ["ndcg", "ndcg@5", "map", "map@10", "mrr@3", "recall@20", "precision@5", "rprec", "success@3"]
    batch = compute_metrics(qrels, run, names)
    for qid in qrels:
        single = compute_metrics({qid: qrels[qid]}, {qid: run[qid]}, names)
        for name in names:
            assert single[name][qid] == batch[name][qid]


def test_metrics_stay_in_range_and_mrr_at_k_bounds_mrr() -> None:
    rng = np.random.default_rng(3)
    qrels, run = _random_case(rng, 60)
    out = compute_metrics(qrels, run, ["ndcg", "ndcg@10", "map", "mrr", "mrr@5", "recall@10", "rprec"])
    for name, per_q in out.items():
        for v in per_q.values():
            assert v is None or 0.0 <= v <= 1.0 + 1e-12, name
    for qid, v in out["mrr@5"].items():
        assert v is None or v <= out["mrr"][qid]  # type: ignore[operator]


def test_evaluate_returns_aligned_arrays() -> None:
    jr = judged_rankings_from_mappings(QRELS, RUN)
    values = evaluate(jr, [("precision", 2), ("ndcg", None)])
    assert jr.query_ids == ("q",)
    assert values[("precision", 2)].shape == (1,) and values[("precision", 2)][0] == 0.5
    jr_cut = judged_rankings_from_mappings(QRELS, RUN, max_depth=2)
    assert jr_cut.num_ret.tolist() == [2]
