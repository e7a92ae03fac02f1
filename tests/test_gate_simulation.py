"""The real gate path (harness.gates.gate) on simulated runs: false alarms near nominal
under no change, and an injected 5% drop caught.

Setting: 300 aligned cases, 3 metrics in [0, 1] sharing a per-case difficulty (as nDCG, recall and
MRR do), per-run noise sd 0.1, 30% of cases identical in both runs (cached, deterministic stages).
Rule: relative drop > 2% and significant after Holm over the 3 gated tests at alpha 0.05.
"""

from __future__ import annotations

import numpy as np

from harness.diff import DiffSettings
from harness.gates import gate
from harness.types import Aggregates, CaseOutput, GateRule, Manifest, MetricSummary, RunResult, Score

METRICS = ("ndcg@10", "recall@10", "mrr@10")
N_CASES = 300
RULES = tuple(GateRule(metric=m, max_drop=0.02) for m in METRICS)
SETTINGS = DiffSettings(n_resamples=2000)


def _run(run_id: str, values: np.ndarray) -> RunResult:
    ids = [f"c{i:03d}" for i in range(values.shape[1])]
    scores = tuple(Score(case_id=cid, metric=m, value=float(values[j, i]))
                   for j, m in enumerate(METRICS) for i, cid in enumerate(ids))
    overall = {m: MetricSummary(mean=float(values[j].mean()), n=len(ids), n_unscored=0) for j, m in enumerate(METRICS)}
    return RunResult(run_id=run_id, created_at="", manifest_id="m", manifest=Manifest(name="m", artifacts={}),
                     outputs=tuple(CaseOutput(case_id=c) for c in ids), scores=scores,
                     aggregates=Aggregates(overall=overall))


def _pair(rng: np.random.Generator, drop: float) -> tuple[RunResult, RunResult]:
    quality = rng.beta(2.0, 1.5, N_CASES)
    powers = np.array([1.0, 0.7, 1.4])[:, None]
    truth = quality[None, :] ** powers
    base = np.clip(truth + rng.normal(0, 0.1, truth.shape), 0, 1)
    head_truth = truth * (1 - drop)
    head = np.clip(head_truth + rng.normal(0, 0.1, truth.shape), 0, 1)
    same = rng.random(N_CASES) < 0.3
    head[:, same] = np.clip(base[:, same] * (1 - drop), 0, 1)
    return _run("base", base), _run("head", head)


def _fail_rate(drop: float, n_sim: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    fails = 0
    for _ in range(n_sim):
        base, head = _pair(rng, drop)
        verdict = gate(RULES, head, base, settings=SETTINGS)
        fails += not verdict.passed
    return fails / n_sim


def test_false_alarm_rate_under_no_change_is_near_nominal() -> None:
    rate = _fail_rate(0.0, 120, seed=1)
    assert rate <= 0.06, rate


def test_injected_five_percent_drop_is_caught() -> None:
    rate = _fail_rate(0.05, 40, seed=2)
    assert rate >= 0.8, rate
