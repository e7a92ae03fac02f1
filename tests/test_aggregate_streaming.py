"""The streaming accumulator against aggregate() over the whole run: equal exactly (math.fsum's rounding
included), overall and per segment, however the run is split into parts."""

from __future__ import annotations

import json
import math
import random

import pytest

from harness.aggregate import AggregateAccumulator, aggregate
from harness.metrics import metric_info
from harness.types import GoldenCase, Score


def _run(n: int, seed: int) -> tuple[list[GoldenCase], list[Score]]:
    rng = random.Random(seed)
    cases = [GoldenCase(id=f"c{i}", query=f"q {i}",
                        tags={k: v for k, v in (("topic", rng.choice("abc")), ("lang", rng.choice(["en", "de"])))
                              if rng.random() < 0.8}) for i in range(n)]
    scores: list[Score] = []
    for c in cases:
        for m in ("ndcg@10", "recall@5", "big"):
            r = rng.random()
            if r < 0.1:
                scores.append(Score(case_id=c.id, metric=m, value=None, explanation="unscored"))
            elif m == "big":  # magnitudes far apart: a sum of rounded parts differs from fsum
                scores.append(Score(case_id=c.id, metric=m, value=rng.choice([1e16, 1.0, -1e16, 1e-300, 3.3])))
            elif r > 0.15:
                scores.append(Score(case_id=c.id, metric=m, value=rng.random()))
    rng.shuffle(scores)
    return cases, scores


@pytest.mark.parametrize("parts", [1, 3, 17, 400])
def test_accumulator_equals_aggregate_exactly(parts: int) -> None:
    cases, scores = _run(800, seed=parts)
    infos = {m: metric_info(m) for m in ("ndcg@10", "recall@5")}
    expected = aggregate(cases, scores, infos)
    acc = AggregateAccumulator()
    size = math.ceil(len(cases) / parts)
    for start in range(0, len(cases), size):
        part = cases[start:start + size]
        ids = {c.id for c in part}
        acc.add(part, [s for s in scores if s.case_id in ids])
    got = acc.result(infos)
    assert got == expected
    # bit for bit (repr of every float), whatever order the parts first met the metrics in
    assert json.dumps(got.model_dump(), sort_keys=True) == json.dumps(expected.model_dump(), sort_keys=True)
    assert set(got.segments) == {s for c in cases for s in c.segments()}


def test_exact_where_a_naive_sum_is_not() -> None:
    values = [1e16, 1.0, -1e16, 1.0] * 50
    cases = [GoldenCase(id=f"c{i}", query="q", tags={"t": "x"}) for i in range(len(values))]
    scores = [Score(case_id=c.id, metric="m", value=v) for c, v in zip(cases, values, strict=True)]
    acc = AggregateAccumulator()
    for i in range(0, len(cases), 3):
        acc.add(cases[i:i + 3], scores[i:i + 3])
    mean = acc.result({}).overall["m"].mean
    assert mean == math.fsum(values) / len(values) == aggregate(cases, scores, {}).overall["m"].mean
    assert sum(values) / len(values) != mean  # the oracle can tell a rounded running sum apart


def test_nothing_scored_and_non_finite() -> None:
    cases = [GoldenCase(id="a", query="q"), GoldenCase(id="b", query="q")]
    scores = [Score(case_id="a", metric="m", value=None, explanation="x"),
              Score(case_id="b", metric="m", value=None, explanation="x")]
    acc = AggregateAccumulator()
    acc.add(cases[:1], scores[:1])
    acc.add(cases[1:], scores[1:])
    assert acc.result({}) == aggregate(cases, scores, {})
    assert acc.result({}).overall["m"].mean is None
