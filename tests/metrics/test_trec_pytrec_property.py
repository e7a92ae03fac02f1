"""Property test: on random small qrels and runs, every measure pytrec_eval supports equals
``harness metrics``' value bit for bit, per query (pytrec_eval wraps trec_eval's C code: the oracle).

The random cases have tied scores, graded and negative grades, unjudged retrieved documents,
queries missing from the run or from the qrels, and very short or long rankings. pytrec_eval's
quirks, handled here:

* it wraps trec_eval 9, whose iprec_at_recall and 11pt_avg turn a recall fraction into a number
  of relevant documents as ``(long)(p * R + 0.9)``; trec_eval 10 (the expected outputs of
  ../shared/data/trec_eval, and harness) rounds (``lround(p * R)``). Those two measures are
  compared on the queries where both rules give the same counts, which still fails any other
  difference;
* a qrels query whose judgments are all negative makes trec_eval read memory left by the previous
  query (and can hang pytrec_eval), so every generated query has a judgment >= 0;
* it has no ``-c``/``-M`` and prints no relstring; those are covered by the expected outputs.
"""

from __future__ import annotations

import functools
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.metrics.trec import evaluate_trec, parse_measures, read_qrels, read_run

pytrec_eval = pytest.importorskip("pytrec_eval")

MEASURES = sorted(set(pytrec_eval.supported_measures) - {"runid", "num_q", "relstring"})
# evaluated separately: pytrec_eval drops a measure's defaults when a parameterized variant is
# requested alongside;
# parameterized variants (pytrec_eval splits parameters at commas itself, so it cannot take gain pairs
# or utility's four coefficients: those are covered by the expected outputs)
CUSTOM = ["P.3,7", "recall.2,40", "ndcg_cut.3,7", "map_cut.4", "success.2", "relative_P.3",
          "Rprec_mult.0.5,1.5", "iprec_at_recall.0.25,0.5", "set_F.0.5"]  # fmt: skip
_V9_ROUNDED = ("iprec_at_recall", "11pt_avg")
_TENTHS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

query = st.fixed_dictionaries(
    {
        "judged": st.dictionaries(st.integers(0, 40), st.sampled_from([-1, 0, 0, 1, 1, 2, 3]), min_size=0, max_size=25),
        "anchor": st.sampled_from([0, 1, 2]),
        "ranked": st.one_of(
            st.none(),  # missing from the run
            st.dictionaries(
                st.integers(0, 50), st.sampled_from([0.5, 1.0, 1.0, 2.0, 3.25, -1.0]), min_size=1, max_size=45
            ),
        ),
    }
)


def _write(tmp: Path, queries: list[dict], extra_run_query: bool) -> tuple[dict, dict]:
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for i, q in enumerate(queries):
        qid = f"q{i:02d}"
        qrels[qid] = {f"d{d}": g for d, g in q["judged"].items()}
        qrels[qid]["anchor"] = q["anchor"]  # a judgment >= 0 (see the module docstring)
        if q["ranked"] is not None:
            run[qid] = {f"d{d}": s for d, s in q["ranked"].items()}
    if extra_run_query or not run:
        run["zz_not_judged"] = {"d1": 1.0, "d2": 0.5}
    (tmp / "qrels").write_text("".join(f"{q} 0 {d} {g}\n" for q, j in qrels.items() for d, g in j.items()))
    (tmp / "run").write_text("".join(f"{q} Q0 {d} 0 {s!r} r\n" for q, j in run.items() for d, s in j.items()))
    return qrels, run


def _same_counts(name: str, num_rel: int) -> bool:
    """Whether trec_eval 9's and 10's recall-fraction rules agree for this measure and R."""
    fractions = _TENTHS if name == "11pt_avg" else (float(name.rsplit("_", 1)[1]),)
    return all(math.floor(p * num_rel + 0.5) == int(p * num_rel + 0.9) for p in fractions)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    queries=st.lists(query, min_size=1, max_size=6),
    level=st.sampled_from([1, 2]),
    extra=st.booleans(),
)
def test_every_pytrec_eval_measure_equals_harness(queries: list[dict], level: int, extra: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="m15-prop-") as d:
        tmp = Path(d)
        qrels, run = _write(tmp, queries, extra)
        if not set(qrels) & set(run):
            return
        expected = pytrec_eval.RelevanceEvaluator(qrels, set(MEASURES), relevance_level=level).evaluate(run)
        custom = pytrec_eval.RelevanceEvaluator(qrels, set(CUSTOM), relevance_level=level).evaluate(run)
        tq, tr = read_qrels(tmp / "qrels"), read_run(tmp / "run")
        ours = evaluate_trec(tq, tr, parse_measures(MEASURES), relevance_level=level)
        ours_custom = evaluate_trec(tq, tr, parse_measures(CUSTOM), relevance_level=level)
    assert set(ours.query_ids) == set(expected)
    per_query = {
        v.name: dict(zip(ours.query_ids, v.per_query.tolist(), strict=True))
        for v in (*ours.values, *ours_custom.values)
    }
    num_rel = {q: v for q, v in per_query["num_rel"].items()}
    compared = 0
    for qid in ours.query_ids:
        theirs = [*expected[qid].items(), *(("set_F_0.5" if k == "set_F" else k, v) for k, v in custom[qid].items())]
        for ours_name, value in theirs:
            name = ours_name
            assert ours_name in per_query, f"harness lacks {name}"
            if name.startswith(_V9_ROUNDED) and not _same_counts(name, int(num_rel[qid])):
                continue
            assert per_query[ours_name][qid] == value, (qid, name, per_query[ours_name][qid], value)
            compared += 1
    assert compared > 0
    # summaries: the mean over queries in query order (the geometric mean for gm_*)
    for v in ours.values:
        vals = [expected[q][v.name] for q in ours.query_ids]
        if v.name.startswith(_V9_ROUNDED):
            continue
        if v.integer:
            assert v.summary == sum(vals)
        elif v.name.startswith("gm_"):
            assert v.summary == pytest.approx(math.exp(float(np.mean(vals))), rel=1e-12, abs=1e-300)
        else:
            assert v.summary == pytest.approx(float(np.mean(vals)), rel=1e-12, abs=1e-15)


@settings(max_examples=40, deadline=None)
@given(queries=st.lists(query, min_size=1, max_size=6), level=st.sampled_from([0, 1, 2]), extra=st.booleans())
def test_judged_only_engine_equals_the_full_matrices(queries: list[dict], level: int, extra: bool) -> None:
    """The compressed evaluation (judged documents only) is bit-identical to the dense one, for
    every measure, including custom gains on unjudged documents and non-integer G costs."""
    from harness.metrics.trec import measures as trec_measures

    requests = ["all_trec", "dcg", "ideal_dcg", "yaap", "ndcg_rel.1=0.5,2=2.5", "G.1=0.3,3=1.7",
                "Rndcg.-1=1,2=4", "rbp.p=0.6,-2=1", "11pt_avg.0.5,0.1", "relstring.4"]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="m15-comp-") as d:
        tmp = Path(d)
        qrels, run = _write(tmp, queries, extra)
        if not set(qrels) & set(run):
            return
        tq, tr = read_qrels(tmp / "qrels"), read_run(tmp / "run")
        fast = evaluate_trec(tq, tr, parse_measures(requests), relevance_level=level, average_complete=extra)
        original = trec_measures.Engine
        try:
            trec_measures.Engine = functools.partial(original, compressed=False)  # type: ignore[misc]
            slow = evaluate_trec(tq, tr, parse_measures(requests), relevance_level=level, average_complete=extra)
        finally:
            trec_measures.Engine = original  # type: ignore[misc]
    assert [v.name for v in fast.values] == [v.name for v in slow.values]
    for a, b in zip(fast.values, slow.values, strict=True):
        assert a.text == b.text
        np.testing.assert_array_equal(a.per_query, b.per_query, err_msg=a.name)
        assert a.summary == b.summary or (math.isnan(a.summary) and math.isnan(b.summary)), a.name
