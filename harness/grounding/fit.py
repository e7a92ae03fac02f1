"""Refit the frozen groundedness model (:data:`~harness.grounding.scorer.DEFAULT_MODEL` or, with the
language-model feature, :data:`~harness.grounding.scorer.LM_MODEL`) on the dev splits only.

From the project root::

    GROUNDING_CACHE=/tmp/emb.sqlite python -m harness.grounding.fit        # the default model
    GROUNDING_CACHE=/tmp/emb.sqlite python -m harness.grounding.fit --lm   # with lm_pmi (the lm extra)

It prints the leave-one-source-out table, the weights, intercept and thresholds to paste into
``harness/grounding/scorer.py`` (the :class:`~harness.grounding.scorer.GroundingModel`) and
``harness/grounding/baselines.py`` (``BASELINE_THRESHOLDS``). ``GROUNDING_CACHE`` (a harness cache
file) keeps embeddings and ``GROUNDING_LM_CACHE`` (JSON) PMI values between runs, so a refit after
a weight-only change takes seconds.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.grounding.baselines import max_cosine, token_overlap
from harness.grounding.embedder import minilm_embedder
from harness.grounding.evidence import FEATURE_NAMES
from harness.grounding.lm import LM_FEATURE_NAMES, CachedLikelihood, JsonStore, bundled_gemma
from harness.grounding.measures import best_threshold, roc_auc
from harness.grounding.scorer import MAX_UNITS, GroundednessChecker, claim_weight
from harness.grounding.sets import DEV_SETS, load_set

# Prior sign of each feature's weight: evidence of support may only raise support, evidence of a
# mismatch may only lower it (0 = free). Keeps collinear features from taking opposite signs that
# would not transfer to other domains.
FEATURE_SIGNS: dict[str, int] = {
    "recall_context": 1, "recall_local": 1, "bigram_recall": 1, "novel_log": -1, "number_missing": -1,
    "entity_missing": -1, "quote_missing": -1, "negation_mismatch": -1, "length_log": 0,
    "cos_sentence": 1, "cos_window": 1, "lm_pmi": 1,
}

L2_GRID = (0.001, 0.01, 0.1, 0.3, 1.0)


def _fit_logistic(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray, l2: float, signs: Sequence[int] | None = None
) -> tuple[np.ndarray, float]:
    """Weighted L2-regularised logistic regression on standardised features (scipy L-BFGS-B).

    ``signs`` bounds each weight to >= 0 (1), <= 0 (-1) or leaves it free (0). Returns weights and
    intercept on the raw feature scale.
    """
    from scipy.optimize import minimize

    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd = np.where(sd < 1e-9, 1.0, sd)
    z = (x - mu) / sd
    w_sum = weights.sum()

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:-1], theta[-1]
        logits = z @ w + b
        p = 1.0 / (1.0 + np.exp(-logits))
        nll = np.logaddexp(0.0, logits) - y * logits
        value = float((weights * nll).sum() / w_sum + l2 * (w @ w) / 2)
        g = weights * (p - y) / w_sum
        grad = np.concatenate([z.T @ g + l2 * w, [g.sum()]])
        return value, grad

    sign_list = list(signs) if signs is not None else [0] * z.shape[1]
    bounds = [(0.0, None) if sg > 0 else (None, 0.0) if sg < 0 else (None, None) for sg in sign_list]
    res = minimize(loss, np.zeros(z.shape[1] + 1), jac=True, method="L-BFGS-B", bounds=[*bounds, (None, None)])
    w_std, b_std = res.x[:-1], float(res.x[-1])
    w_raw = w_std / sd
    return w_raw, b_std - float((w_std * mu / sd).sum())


def dev_features(
    checker: GroundednessChecker, cap: int | None = None
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, list[str], list[str | list[str]]]:
    """Per-claim features, labels, source groups, responses and contexts of the pooled dev splits.

    The group of an example is its source corpus (AttributionBench's src_dataset: ExpertQA,
    Stanford-GenSearch, AttributedQA, LFQA; or WiCE), used for leave-one-source-out selection.
    """
    rows = [r for files in DEV_SETS.values() for r in load_set(files, cap)]
    responses = [r["response"] for r in rows]
    contexts = [r["context"] for r in rows]
    feats = checker.feature_matrix(responses, contexts)
    labels = np.array([bool(r["supported"]) for r in rows])
    groups = np.array([str((r.get("meta") or {}).get("src_dataset") or r["dataset"]) for r in rows])
    return feats, labels, groups, responses, contexts


def _fit_claims(feats: Sequence[np.ndarray], labels: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """Claims inherit their answer's label and weigh 1/n_claims (multiple-instance approximation).

    The feature columns are FEATURE_NAMES, then LM_FEATURE_NAMES when the matrix has them.
    """
    kept = [(f, lab) for f, lab in zip(feats, labels, strict=True) if len(f)]
    x = np.concatenate([f for f, _ in kept])
    y = np.concatenate([np.full(len(f), float(lab)) for f, lab in kept])
    sw = np.concatenate([np.full(len(f), 1.0 / len(f)) for f, _ in kept])
    names = (FEATURE_NAMES + LM_FEATURE_NAMES)[: x.shape[1]]
    return _fit_logistic(x, y, sw, l2, [FEATURE_SIGNS[name] for name in names])


def _answer_logits(feats: Sequence[np.ndarray], w: np.ndarray, b: float) -> np.ndarray:
    """Answer score on the logit scale, aggregated over claims as GroundednessChecker does by default."""
    length = FEATURE_NAMES.index("length_log")
    out = []
    for f in feats:
        if not len(f):
            out.append(10.0)
            continue
        cw = [claim_weight({"length_log": float(v)}) for v in f[:, length]]
        out.append(float(np.average(f @ w + b, weights=cw)))
    return np.array(out)


def leave_one_source_out(
    feats: Sequence[np.ndarray], labels: np.ndarray, groups: np.ndarray, l2: float
) -> dict[str, float]:
    """AUROC on each dev source when the model is fit on the other sources: a transfer estimate."""
    out = {}
    for group in sorted(set(groups.tolist())):
        train = groups != group
        w, b = _fit_claims([f for f, t in zip(feats, train, strict=True) if t], labels[train], l2)
        test_feats = [f for f, t in zip(feats, train, strict=True) if not t]
        out[group] = roc_auc(labels[~train], _answer_logits(test_feats, w, b))
    return out


def fit_weights(
    l2: float | None = None, cache_file: Path | None = None, lm: CachedLikelihood | None = None
) -> dict[str, Any]:
    """Refit the frozen model on the dev splits and print it for pasting into the code.

    The L2 strength is chosen from L2_GRID by the mean leave-one-source-out AUROC over the five dev
    sources (the bench sets are other domains, so transfer is what matters), unless given. The
    weights are sign-constrained (FEATURE_SIGNS). Prints ``weights``, ``intercept`` and
    ``thresholds["method"]`` for the GroundingModel in harness/grounding/scorer.py
    (``DEFAULT_MODEL``, or ``LM_MODEL`` when ``lm`` adds the language-model feature), and the
    baselines' thresholds for BASELINE_THRESHOLDS (each the balanced-accuracy-optimal threshold on
    the pooled dev splits).
    """
    embed = minilm_embedder(cache_file)
    checker = GroundednessChecker(embed=embed.embed, max_units=MAX_UNITS, lm=lm)
    feats, labels, groups, responses, contexts = dev_features(checker)
    save_lm_cache(lm)
    lodo = {g: leave_one_source_out(feats, labels, groups, g) for g in L2_GRID}
    if l2 is None:
        l2 = max(L2_GRID, key=lambda g: (float(np.mean(list(lodo[g].values()))), g))
    w, b = _fit_claims(feats, labels, l2)
    names = checker.feature_names
    weights = {name: round(float(v), 4) for name, v in zip(names, w, strict=True)}
    intercept = round(b, 4)
    frozen_w = np.array([weights[name] for name in names])
    logits = _answer_logits(feats, frozen_w, intercept)
    scores = 1.0 / (1.0 + np.exp(-logits))
    thresholds = {
        "method": round(best_threshold(labels, scores), 4),
        "token_overlap": round(best_threshold(labels, token_overlap(responses, contexts)), 4),
        "max_cosine": round(best_threshold(labels, max_cosine(responses, contexts, embed.embed)), 4),
    }
    out = {
        "l2": l2,
        "leave_one_source_out_auroc": {
            str(g): {k: round(v, 4) for k, v in res.items()} | {"mean": round(float(np.mean(list(res.values()))), 4)}
            for g, res in lodo.items()
        },
        "weights": weights,
        "intercept": intercept,
        "thresholds": thresholds,
        "dev_auroc_in_sample": round(roc_auc(labels, scores), 4),
        "n_dev": len(labels),
        "groups": {g: int((groups == g).sum()) for g in sorted(set(groups.tolist()))},
    }
    print(json.dumps(out, indent=2))
    return out


def lm_from_env() -> CachedLikelihood | None:
    """The bundled Gemma 3 270M when the ``lm`` extra is installed (and GROUNDING_LM is not 0), its
    PMI values kept in GROUNDING_LM_CACHE (a JSON file) if given, else in memory."""
    if os.environ.get("GROUNDING_LM") == "0":
        return None
    try:
        lm = bundled_gemma()
    except RuntimeError:
        return None
    cache = os.environ.get("GROUNDING_LM_CACHE")
    return CachedLikelihood(lm, JsonStore(Path(cache) if cache else None))


def save_lm_cache(lm: CachedLikelihood | None) -> None:
    """Persist the PMI values when their store has a file (development runs only)."""
    if lm is not None and isinstance(lm.store, JsonStore):
        lm.store.save()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m harness.grounding.fit",
        description="Refit the groundedness model on the dev splits and print the values to paste (DEFAULT_MODEL, "
        "or LM_MODEL with --lm). GROUNDING_CACHE / GROUNDING_LM_CACHE keep embeddings / PMI values between runs.",
    )
    parser.add_argument("--lm", action="store_true", help="fit LM_MODEL, with the language-model feature")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    lm = lm_from_env() if args.lm else None
    if args.lm and lm is None:
        parser.exit(2, "error: --lm needs the lm extra installed (pip install -e '.[lm]') and GROUNDING_LM not 0\n")
    emb_cache = os.environ.get("GROUNDING_CACHE")
    fit_weights(cache_file=Path(emb_cache) if emb_cache else None, lm=lm)


if __name__ == "__main__":
    main()
