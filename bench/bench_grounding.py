"""Groundedness scorer vs two baselines on human-labelled faithfulness sets, measured in one run.

`bench_grounding()` reports ROC AUC and balanced accuracy per set for
:class:`harness.grounding.GroundednessChecker` and the two baselines of
:mod:`harness.grounding.baselines` (token overlap, max MiniLM cosine), computed in the same process
on the test sets of :mod:`harness.grounding.sets`.

Balanced accuracy uses thresholds tuned on the dev splits only (AttributionBench dev_id + WiCE
claim_dev, pooled); those thresholds and the method's weights are frozen constants, refit with
``python -m harness.grounding.fit``. Each set is subsampled deterministically (seeded) to at most
``cap`` examples. Embeddings are cached by (model, text) for the run, so a context shared by many
responses embeds once.

With the ``lm`` extra installed, ``method_lm`` (the checker with the Gemma 3 270M PMI feature,
:mod:`harness.grounding.lm`) is measured on the same examples too; that adds roughly an hour of
CPU on 2 cores (``GROUNDING_LM=0`` skips it).

With ``GROUNDING_JUDGE`` set (a model name for the ``openai`` generator at OPENAI_BASE_URL, or a
generator spec as JSON), ``judge`` is the ``llm_judge`` scorer's verdicts on the same examples
(:mod:`harness.grounding.judge`): the share of a response's claims it finds supported (balanced
accuracy: supported when all are). Its calls are cached in ``GROUNDING_JUDGE_CACHE`` (an SQLite
file) if given, else in memory.

Run from the project root: ``make bench grounding``, or ``python -m bench.bench_grounding``.
``GROUNDING_CACHE=path`` (a harness cache file) and ``GROUNDING_LM_CACHE=path.json`` keep
embeddings and PMI values between runs (development only).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.cache import Cache
from harness.grounding import GroundednessChecker
from harness.grounding.baselines import BASELINE_THRESHOLDS, max_cosine, token_overlap
from harness.grounding.embedder import minilm_embedder
from harness.grounding.fit import lm_from_env, save_lm_cache
from harness.grounding.judge import judge_cache, judge_scores, judge_spec_from_env
from harness.grounding.lm import CachedLikelihood
from harness.grounding.measures import auroc_diff_ci, balanced_accuracy, roc_auc
from harness.grounding.sets import DATA, TEST_SETS, load_set


def bench_grounding(
    cap: int = 600,
    seed: int = 0,
    cache_file: Path | None = None,
    lm: CachedLikelihood | str | None = "auto",
    judge: dict[str, Any] | str | None = "auto",
    judge_cache_file: Path | None = None,
) -> dict[str, Any]:
    """AUROC and balanced accuracy per test set for the method and both baselines (one run).

    ``method`` is the default checker (lexical + MiniLM); ``method_lm`` adds the language-model
    feature (Gemma 3 270M, :mod:`harness.grounding.lm`) when the ``lm`` extra is installed
    (``lm="auto"``) or an ``lm`` is given; ``lm=None`` skips it. ``judge`` (a generator spec;
    ``"auto"`` reads GROUNDING_JUDGE) adds the ``llm_judge`` scorer's verdicts on the same examples,
    its calls cached in ``judge_cache_file`` (GROUNDING_JUDGE_CACHE; in memory by default).
    """
    if judge == "auto":
        judge = judge_spec_from_env()
    judge_with: tuple[Any, Cache] | None = None  # the judge's generator and its call cache
    if isinstance(judge, dict):  # built first: a bad spec fails before any scoring
        from harness.scorers.judge import judge_generator

        judge_with = judge_generator(judge), judge_cache(judge_cache_file)
    if not DATA.is_dir():
        return {"skipped": f"no data at {DATA}"}
    t_start = time.perf_counter()
    embed = minilm_embedder(cache_file)
    checker = GroundednessChecker(embed=embed.embed)
    if lm == "auto":
        lm = lm_from_env()
    checker_lm = GroundednessChecker(embed=embed.embed, lm=lm) if isinstance(lm, CachedLikelihood) else None
    report: dict[str, Any] = {}
    for name, files in TEST_SETS.items():
        t0 = time.perf_counter()
        rows = load_set(files, cap, seed)
        responses = [r["response"] for r in rows]
        contexts = [r["context"] for r in rows]
        y = np.array([bool(r["supported"]) for r in rows])
        scores = {"method": checker.score_pairs(responses, contexts)}
        thresholds = {"method": checker.threshold, **BASELINE_THRESHOLDS}
        if checker_lm is not None:
            scores["method_lm"] = checker_lm.score_pairs(responses, contexts)
            thresholds["method_lm"] = checker_lm.threshold
        scores["token_overlap"] = token_overlap(responses, contexts)
        scores["max_cosine"] = max_cosine(responses, contexts, embed.embed)
        entry: dict[str, Any] = {"n": len(rows), "n_supported": int(y.sum())}
        if judge_with is not None:
            scores["judge"], entry["judge_run"] = judge_scores(judge_with[0], responses, contexts, judge_with[1])
            thresholds["judge"] = 1.0  # supported = every claim judged supported
        for key, s in scores.items():
            entry[key] = {"auroc": round(roc_auc(y, s), 4), "bacc": round(balanced_accuracy(y, s, thresholds[key]), 4)}
        best_baseline = max(entry["token_overlap"]["auroc"], entry["max_cosine"]["auroc"])
        for method in [k for k in scores if k.startswith("method") or k == "judge"]:
            suffix = method.removeprefix("method") if method != "judge" else "_judge"
            entry[f"beats_both_auroc{suffix}"] = bool(entry[method]["auroc"] > best_baseline)
            for key in BASELINE_THRESHOLDS:
                lo, hi = auroc_diff_ci(y, scores[method], scores[key], seed=seed)
                entry[f"auroc_diff{suffix}_vs_{key}_ci95"] = [round(lo, 4), round(hi, 4)]
        groups = [str((r.get("meta") or {}).get("domain") or "") for r in rows]
        if name.startswith("summedits"):
            entry["by_domain"] = {
                dom: {"n": int(mask.sum())} | {key: _rounded(roc_auc(y[mask], s[mask])) for key, s in scores.items()}
                for dom in sorted(set(groups))
                for mask in [np.array([g == dom for g in groups])]
            }
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        report[name] = entry
        lm_part = f" method_lm {entry['method_lm']['auroc']:.3f}/{entry['method_lm']['bacc']:.3f}" if checker_lm else ""
        if "judge" in scores:
            lm_part += f" judge {entry['judge']['auroc']:.3f}/{entry['judge']['bacc']:.3f}"
        print(
            f"{name:28s} n={len(rows):4d} method {entry['method']['auroc']:.3f}/{entry['method']['bacc']:.3f}{lm_part}"
            f"  overlap {entry['token_overlap']['auroc']:.3f}/{entry['token_overlap']['bacc']:.3f}"
            f"  cosine {entry['max_cosine']['auroc']:.3f}/{entry['max_cosine']['bacc']:.3f}"
            f"  ({entry['seconds']}s)",
            file=sys.stderr,
            flush=True,
        )
    save_lm_cache(lm if isinstance(lm, CachedLikelihood) else None)
    report["_run"] = {
        "cap": cap,
        "seed": seed,
        "seconds": round(time.perf_counter() - t_start, 1),
        "texts_embedded": embed.encoded,
        "embed_seconds": round(embed.encode_seconds, 1),
    } | (
        {"lm": lm.identity, "lm_claims_scored": lm.computed, "lm_seconds": round(lm.seconds, 1)}
        if isinstance(lm, CachedLikelihood)
        else {"lm": None}
    ) | {"judge": judge if isinstance(judge, dict) else None}
    return report


def _rounded(value: float) -> float | None:
    """4 decimals, or None where AUROC is undefined (one class only): the report stays valid JSON."""
    return None if math.isnan(value) else round(value, 4)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    emb_cache = os.environ.get("GROUNDING_CACHE")
    print(json.dumps(bench_grounding(cache_file=Path(emb_cache) if emb_cache else None), indent=2))
