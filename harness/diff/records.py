"""`harness diff`: what changed between two runs, by how much, whether it is noise, and why.

Cases are aligned by id. For every metric (overall and per ``tag=value`` segment) the diff reports
base and head means over the cases both runs scored, the absolute and relative delta, a paired
bootstrap CI of the delta, a paired permutation p-value (seeded), win/tie/loss counts and Cohen's
d_z, with Holm (or Benjamini-Hochberg) correction across one family of metric x segment tests (see
:func:`compute_diff`); the gate, the reports and the pytest plugin read these values, never a second
correction. It lists the cases
that flipped with their likely cause, the shift of retrieval score distributions (PSI, KS), and the
calibration of retrieval scores as relevance probabilities (ECE, Brier; Platt map fitted on base).
Cases present in one run only are listed, never averaged away.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from harness.storage import Layout
from harness.types import CaseOutput, Frozen, GoldenCase, RunResult


class DiffSettings(Frozen):
    alpha: float = 0.05
    correction: Literal["holm", "bh", "none"] = "holm"
    test: Literal["permutation", "wilcoxon", "bootstrap"] = "permutation"
    n_resamples: int = 5000
    seed: int = 0
    k: int = 10  # depth for lost/gained relevant docs, score shift and calibration
    flip_threshold: float = 0.1  # a case flips when a metric moves at least this much


class ArtifactChange(Frozen):
    role: str
    change: Literal["added", "removed", "changed"]
    kind: str
    base_version: str | None = None
    head_version: str | None = None
    base_sha256: str | None = None
    head_sha256: str | None = None
    params_diff: dict[str, Any] | None = None
    text_diff: str | None = None


class MetricDelta(Frozen):
    metric: str
    segment: str = "all"
    greater_is_better: bool = True
    n: int
    n_base: int
    n_head: int
    base_mean: float | None
    head_mean: float | None
    delta: float | None
    rel_delta: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_adjusted: float | None = None
    significant: bool = False
    in_family: bool = False
    changed: int = 0
    wins: int = 0
    ties: int = 0
    losses: int = 0
    cohens_dz: float | None = None
    direction: str | None = None


class CaseFlip(Frozen):
    case_id: str
    direction: Literal["regressed", "improved", "mixed"]
    impact: float
    deltas: dict[str, tuple[float | None, float | None]]
    causes: tuple[str, ...]
    lost_relevant: tuple[str, ...] = ()
    gained_relevant: tuple[str, ...] = ()
    query: str | None = None


class ScoreShift(Frozen):
    which: str
    n_base: int
    n_head: int
    base_mean: float | None
    head_mean: float | None
    psi: float | None
    ks_statistic: float | None
    ks_p_value: float | None


class CalibrationShift(Frozen):
    """Top-k retrieval scores read as relevance probabilities, over real scores only.

    ``n_*`` count the scored (passage, relevant?) pairs of the top ``k`` of aligned cases with
    judgments; ECE/Brier (Platt map fitted on base; ``raw_*`` clipped to [0, 1]) are over these.
    ``relevant_*`` count the judged-relevant passages of those cases, ``relevant_in_top_k_*`` the ones
    retrieved in the top ``k`` and ``in_top_k_share_*`` their share; a relevant passage not retrieved
    has no score and is given none.
    ``threshold`` is the highest score keeping ``target_recall`` of base's relevant passages in its
    top ``k``; ``kept_*_at_threshold`` is the share of each run's relevant top-``k`` passages scoring
    at least that.
    """

    k: int
    n_base: int
    n_head: int
    relevant_base: int
    relevant_head: int
    relevant_in_top_k_base: int
    relevant_in_top_k_head: int
    in_top_k_share_base: float | None
    in_top_k_share_head: float | None
    ece_base: float | None
    ece_head: float | None
    brier_base: float | None
    brier_head: float | None
    raw_ece_base: float | None
    raw_ece_head: float | None
    threshold: float | None
    target_recall: float
    kept_base_at_threshold: float | None
    kept_head_at_threshold: float | None


class Diff(Frozen):
    base_run: str
    head_run: str
    base_manifest_id: str
    head_manifest_id: str
    settings: DiffSettings
    artifacts: tuple[ArtifactChange, ...]
    metrics: tuple[MetricDelta, ...]
    segments: tuple[MetricDelta, ...]
    segment_sizes: dict[str, int] = Field(default_factory=dict)
    family_size: int = 0
    flips: tuple[CaseFlip, ...]
    only_in_base: tuple[str, ...]
    only_in_head: tuple[str, ...]
    score_shift: tuple[ScoreShift, ...] = ()
    calibration: CalibrationShift | None = None
    errors: dict[str, int] = Field(default_factory=dict)

    def metric(self, name: str, segment: str = "all") -> MetricDelta | None:
        pool = self.metrics if segment == "all" else self.segments
        return next((m for m in pool if m.metric == name and m.segment == segment), None)


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out |= _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def same_artifact(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Two pinned artifacts are the same when their content and settings are, wherever their path points."""
    if a is None or b is None:
        return a is b
    return all(a.get(k) == b.get(k) for k in ("kind", "version", "sha256", "params", "uri"))


def artifact_changes(base: RunResult, head: RunResult, layout: Layout | None = None) -> list[ArtifactChange]:
    from harness.manifest import Artifact
    from harness.snapshots import read_text_artifact

    ba, ha = base.manifest.get("artifacts", {}), head.manifest.get("artifacts", {})
    out: list[ArtifactChange] = []
    for role in sorted(set(ba) | set(ha)):
        b, h = ba.get(role), ha.get(role)
        if same_artifact(b, h):
            continue
        if b is None or h is None:
            present = h if b is None else b
            out.append(
                ArtifactChange(
                    role=role,
                    change="added" if b is None else "removed",
                    kind=present["kind"],
                    base_version=None if b is None else b.get("version"),
                    head_version=None if h is None else h.get("version"),
                    base_sha256=None if b is None else b.get("sha256"),
                    head_sha256=None if h is None else h.get("sha256"),
                )
            )
            continue
        fb, fh = _flatten(b.get("params", {})), _flatten(h.get("params", {}))
        params_diff = {k: [fb.get(k), fh.get(k)] for k in sorted(set(fb) | set(fh)) if fb.get(k) != fh.get(k)}
        text = None
        if layout is not None and b.get("path") and h.get("path"):
            tb = read_text_artifact(layout, Artifact.model_validate(b))
            th = read_text_artifact(layout, Artifact.model_validate(h))
            if tb is not None and th is not None and tb != th:
                text = "".join(
                    difflib.unified_diff(
                        tb.splitlines(True), th.splitlines(True), f"base/{b['path']}", f"head/{h['path']}", n=2
                    )
                )
        out.append(
            ArtifactChange(
                role=role,
                change="changed",
                kind=h["kind"],
                base_version=b.get("version"),
                head_version=h.get("version"),
                base_sha256=b.get("sha256"),
                head_sha256=h.get("sha256"),
                params_diff=params_diff or None,
                text_diff=text,
            )
        )
    return out


def _directions(run: RunResult) -> dict[str, bool]:
    return {m: s.greater_is_better for m, s in run.aggregates.overall.items()}


CHANGE_TOL = 1e-12  # the tolerance of win/tie/loss: a smaller difference is a tie


def _changed(ids: Sequence[str], bv: dict[str, float | None], hv: dict[str, float | None]) -> int:
    """How many aligned, scored cases differ between the runs (what a paired test can see)."""
    n = 0
    for c in ids:
        b, h = bv.get(c), hv.get(c)
        if b is not None and h is not None and abs(h - b) > CHANGE_TOL:
            n += 1
    return n


def _min_p(changed: int, test: str) -> float:
    """The smallest p-value the configured test can reach with ``changed`` differing cases."""
    from harness.stats.multiple import sign_flip_min_p

    if test == "bootstrap":
        return 1.0 if changed == 0 else 0.0
    return sign_flip_min_p(changed)


def _compare(
    metric: str,
    segment: str,
    ids: Sequence[str],
    bv: dict[str, float | None],
    hv: dict[str, float | None],
    gib: bool,
    settings: DiffSettings,
    p_resamples: int,
    changed: int,
) -> MetricDelta:
    from harness.stats import compare_paired, paired_permutation_test

    pairs = [(bv[c], hv[c]) for c in ids if bv.get(c) is not None and hv.get(c) is not None]
    n_base = sum(1 for c in ids if bv.get(c) is not None)
    n_head = sum(1 for c in ids if hv.get(c) is not None)
    if not pairs:
        return MetricDelta(
            metric=metric,
            segment=segment,
            greater_is_better=gib,
            n=0,
            n_base=n_base,
            n_head=n_head,
            base_mean=None,
            head_mean=None,
            delta=None,
            rel_delta=None,
            ci_low=None,
            ci_high=None,
            p_value=None,
        )
    b = np.array([p[0] for p in pairs], dtype=float)
    h = np.array([p[1] for p in pairs], dtype=float)
    cmp = compare_paired(
        b, h, greater_is_better=gib, seed=settings.seed, n_resamples=settings.n_resamples, test=settings.test
    )
    p_value = cmp.p_value
    if np.array_equal(b, h):
        p_value = 1.0
    elif settings.test == "permutation" and p_resamples > settings.n_resamples:
        p_value = paired_permutation_test(b, h, n_resamples=p_resamples, seed=settings.seed).p_value
    return MetricDelta(
        metric=metric,
        segment=segment,
        greater_is_better=gib,
        n=cmp.n,
        n_base=n_base,
        n_head=n_head,
        base_mean=cmp.base_mean,
        head_mean=cmp.head_mean,
        delta=cmp.delta,
        rel_delta=cmp.rel_delta,
        ci_low=cmp.ci_low,
        ci_high=cmp.ci_high,
        p_value=p_value,
        wins=cmp.wins,
        ties=cmp.ties,
        losses=cmp.losses,
        cohens_dz=cmp.cohens_dz,
        direction=cmp.direction,
        changed=changed,
    )


def _relevant(case: GoldenCase | None, level: int) -> set[str]:
    return {d for d, g in (case.relevance if case else {}).items() if g >= level}


def _flip(
    cid: str,
    bscores: dict[str, float | None],
    hscores: dict[str, float | None],
    dirs: dict[str, bool],
    bo: CaseOutput,
    ho: CaseOutput,
    case: GoldenCase | None,
    settings: DiffSettings,
    level: int,
) -> CaseFlip | None:
    deltas: dict[str, tuple[float | None, float | None]] = {}
    signed: list[float] = []
    for m in sorted(set(bscores) | set(hscores)):
        b, h = bscores.get(m), hscores.get(m)
        if b is None or h is None or m.startswith("format_fail:"):
            continue
        if abs(h - b) >= settings.flip_threshold:
            deltas[m] = (b, h)
            signed.append((h - b) if dirs.get(m, True) else (b - h))
    if not deltas:
        return None
    rel = _relevant(case, level)
    btop = [d.doc_id for d in bo.ranking[: settings.k]]
    htop = [d.doc_id for d in ho.ranking[: settings.k]]
    lost = tuple(sorted((set(btop) - set(htop)) & rel))
    gained = tuple(sorted((set(htop) - set(btop)) & rel))
    causes = []
    if lost:
        causes.append(f"relevant docs lost from top-{settings.k}: {', '.join(lost)}")
    if gained:
        causes.append(f"relevant docs gained in top-{settings.k}: {', '.join(gained)}")
    if not lost and not gained and btop != htop:
        causes.append(f"top-{settings.k} reordered")
    if ho.error and not bo.error:
        causes.append(f"{ho.error_stage or 'run'} error: {ho.error}")
    if btop == htop and bo.answer != ho.answer:
        causes.append("answer changed while retrieval did not")
    newly = sorted(
        m.split(":", 1)[1]
        for m, v in hscores.items()
        if m.startswith("format_fail:") and v == 1.0 and bscores.get(m) == 0.0
    )
    if newly:
        causes.append(f"validator newly failing: {', '.join(newly)}")
    if not causes:
        causes.append("scores changed with the same retrieval and answer (scorer or judgments changed)")
    worst, best = min(signed), max(signed)
    direction: Literal["regressed", "improved", "mixed"] = (
        "mixed" if worst < 0 < best else "regressed" if worst < 0 else "improved"
    )
    impact = max(abs(worst), abs(best))
    return CaseFlip(
        case_id=cid,
        direction=direction,
        impact=impact,
        deltas=deltas,
        causes=tuple(causes),
        lost_relevant=lost,
        gained_relevant=gained,
        query=case.query if case else None,
    )


def _score_shift(which: str, b: list[float], h: list[float]) -> ScoreShift:
    from harness.stats import ks_2samp, psi

    if not b or not h:
        return ScoreShift(
            which=which,
            n_base=len(b),
            n_head=len(h),
            base_mean=None,
            head_mean=None,
            psi=None,
            ks_statistic=None,
            ks_p_value=None,
        )
    p = psi(np.array(b), np.array(h))
    ks = ks_2samp(np.array(b), np.array(h))
    return ScoreShift(
        which=which,
        n_base=len(b),
        n_head=len(h),
        base_mean=float(np.mean(b)),
        head_mean=float(np.mean(h)),
        psi=p.psi,
        ks_statistic=ks.statistic,
        ks_p_value=ks.p_value,
    )


def _pairs(run: RunResult, ids: Sequence[str], k: int, level: int) -> tuple[list[float], list[float], int]:
    """(score, relevant?) for every top-k passage of the judged cases, with its real score, and the
    number of judged-relevant passages the run did not retrieve in its top k. Those have no score and
    get none: a stand-in score would make any threshold below it look like it kept them."""
    cases = {c.id: c for c in run.cases}
    outs = {o.case_id: o for o in run.outputs}
    scores: list[float] = []
    labels: list[float] = []
    missing = 0
    for cid in ids:
        case = cases.get(cid)
        if case is None or not case.relevance:
            continue
        rel = _relevant(case, level)
        top = outs[cid].ranking[:k]
        for d in top:
            scores.append(d.score)
            labels.append(float(d.doc_id in rel))
        missing += len(rel - {d.doc_id for d in top})
    return scores, labels, missing


def compute_diff(
    base: RunResult, head: RunResult, settings: DiffSettings | None = None, layout: Layout | None = None
) -> Diff:
    """Compare ``head`` with ``base`` case by case (see the module docstring).

    The adjusted p-values are corrected over one family, the same for every reader (diff, gate, report,
    pytest): the metric x segment tests that can reach significance with the cases that changed
    (:func:`harness.stats.multiple.tarone_family` on the smallest p-value each test can give). A test
    where no case changed cannot vary; one with too few changed cases cannot pass ``alpha / K``; both
    stay out (``in_family = False``, ``p_adjusted = None``) instead of raising everyone else's bar.
    """
    from harness.stats import benjamini_hochberg, calibration_drift, holm
    from harness.stats.multiple import tarone_family

    settings = settings or DiffSettings()
    bcs, hcs = base.case_scores(), head.case_scores()
    bids = [o.case_id for o in base.outputs]
    hids = {o.case_id for o in head.outputs}
    common = [c for c in bids if c in hids]
    only_base = tuple(c for c in bids if c not in hids)
    base_ids = set(bids)
    only_head = tuple(o.case_id for o in head.outputs if o.case_id not in base_ids)
    dirs = _directions(base) | _directions(head)
    metrics = [m for m in dirs if m in base.aggregates.overall and m in head.aggregates.overall]
    per_metric = {
        m: ({c: bcs.get(c, {}).get(m) for c in common}, {c: hcs.get(c, {}).get(m) for c in common}) for m in metrics
    }
    head_cases = {c.id: c for c in base.cases} | {c.id: c for c in head.cases}  # head's version wins
    members: dict[str, list[str]] = {}
    for cid in common:
        case = head_cases.get(cid)
        for seg in case.segments() if case else []:
            members.setdefault(seg, []).append(cid)
    # One family for every front end (diff, gate, report, pytest): each metric x segment test that can
    # reach significance with the cases that changed (Tarone 1990). A test where nothing changed cannot
    # vary and stays out, so constant metrics and tiny segments do not dilute the real comparisons.
    keys = [(m, "all", common) for m in metrics] + [
        (m, seg, ids) for seg, ids in sorted(members.items()) for m in metrics
    ]
    changed = [_changed(ids, *per_metric[m]) for m, _, ids in keys]
    in_family = tarone_family([_min_p(c, settings.test) for c in changed], settings.alpha)
    family = sum(in_family)
    # A permutation p-value cannot be smaller than 1/(R+1); with m tests Holm needs p < alpha/m, so the
    # resolution grows with the family (20x the Bonferroni threshold) instead of capping significance.
    p_resamples = max(settings.n_resamples, math.ceil(20 * family / settings.alpha))
    tested = [
        _compare(m, seg, ids, *per_metric[m], dirs.get(m, True), settings,
                 p_resamples if fam else settings.n_resamples, c)
        for (m, seg, ids), c, fam in zip(keys, changed, in_family, strict=True)
    ]
    raw = [t.p_value if fam else None for t, fam in zip(tested, in_family, strict=True)]
    adjusted: Sequence[float | None]
    if settings.correction == "holm":
        adjusted = holm(raw)
    elif settings.correction == "bh":
        adjusted = benjamini_hochberg(raw)
    else:
        adjusted = raw
    tested = [
        t.model_copy(update={"p_adjusted": a, "in_family": fam, "significant": a is not None and a < settings.alpha})
        for t, a, fam in zip(tested, adjusted, in_family, strict=True)
    ]
    overall, segments = tested[: len(metrics)], tested[len(metrics) :]

    level = int(head.manifest.get("metrics", {}).get("relevance_level", 1))
    bo = {o.case_id: o for o in base.outputs}
    ho = {o.case_id: o for o in head.outputs}
    flips = [
        f
        for cid in common
        if (
            f := _flip(
                cid, bcs.get(cid, {}), hcs.get(cid, {}), dirs, bo[cid], ho[cid], head_cases.get(cid), settings, level
            )
        )
        is not None
    ]
    flips.sort(key=lambda f: (-f.impact, f.case_id))

    shifts = [
        _score_shift(
            "top1",
            [bo[c].ranking[0].score for c in common if bo[c].ranking],
            [ho[c].ranking[0].score for c in common if ho[c].ranking],
        ),
        _score_shift(
            f"top{settings.k}",
            [d.score for c in common for d in bo[c].ranking[: settings.k]],
            [d.score for c in common for d in ho[c].ranking[: settings.k]],
        ),
    ]
    bs, bl, bmiss = _pairs(base, common, settings.k, level)
    hs, hl, hmiss = _pairs(head, common, settings.k, level)
    calibration = None
    if bs and hs and 0 < sum(bl) < len(bl):
        cd = calibration_drift(bs, bl, hs, hl, base_unretrieved=bmiss, head_unretrieved=hmiss)
        calibration = CalibrationShift(
            k=settings.k,
            n_base=len(bs),
            n_head=len(hs),
            relevant_base=cd.base_relevant,
            relevant_head=cd.head_relevant,
            relevant_in_top_k_base=int(sum(bl)),
            relevant_in_top_k_head=int(sum(hl)),
            in_top_k_share_base=cd.base_retrieved_share,
            in_top_k_share_head=cd.head_retrieved_share,
            ece_base=cd.platt_base.ece,
            ece_head=cd.platt_head.ece,
            brier_base=cd.platt_base.brier,
            brier_head=cd.platt_head.brier,
            raw_ece_base=cd.raw_base.ece,
            raw_ece_head=cd.raw_head.ece,
            threshold=cd.threshold,
            target_recall=cd.target_recall,
            kept_base_at_threshold=cd.base_recall,
            kept_head_at_threshold=cd.head_recall,
        )

    return Diff(
        base_run=base.run_id,
        head_run=head.run_id,
        base_manifest_id=base.manifest_id,
        head_manifest_id=head.manifest_id,
        settings=settings,
        artifacts=tuple(artifact_changes(base, head, layout)),
        metrics=tuple(overall),
        segments=tuple(segments),
        segment_sizes={seg: len(ids) for seg, ids in sorted(members.items())},
        family_size=family,
        flips=tuple(flips),
        only_in_base=only_base,
        only_in_head=only_head,
        score_shift=tuple(shifts),
        calibration=calibration,
        errors={"base": sum(1 for o in base.outputs if o.error), "head": sum(1 for o in head.outputs if o.error)},
    )


def diff_json(diff: Diff) -> str:
    return json.dumps(diff.model_dump(mode="json"), indent=2)
