"""The replay's report computed the way it was before it read its runs by columns: from both runs held whole
(:class:`~harness.types.RunResult`), record by record. Kept only as the oracle of the differential tests in
``test_replay_columns.py``; :mod:`harness.shadow.replay` no longer holds a run whole."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from harness.diff import compare
from harness.diff.artifacts import artifact_changes
from harness.gates import STAGES, evaluate_gates
from harness.manifest import LoadedManifest
from harness.shadow.model import Agreement, Quantiles, ReplayReport, ReplaySide, SignalMove
from harness.shadow.replay import ReplayPlan, _default_segment_skips, _status
from harness.types import GoldenCase, RunResult


def quantiles(values: Sequence[float]) -> Quantiles:
    if not values:
        return Quantiles(n=0)
    q = np.quantile(np.asarray(values, dtype=float), [0.5, 0.95, 0.99])
    return Quantiles(n=len(values), p50=float(q[0]), p95=float(q[1]), p99=float(q[2]))


def side(label: Literal["baseline", "candidate"], loaded: LoadedManifest, run: RunResult, path: Path,
         seconds: float, notes: list[str]) -> ReplaySide:
    kinds: dict[str, int] = {}
    for o in run.outputs:
        if o.error is not None:
            kinds[o.error.kind] = kinds.get(o.error.kind, 0) + 1
    latency: dict[str, Quantiles] = {}
    for stage in STAGES:
        recorded = [o for o in run.outputs if stage in o.latency_s]
        if not recorded:
            continue
        fresh = [o.latency_s[stage] for o in recorded if not o.cache_hits.get(stage, False)]
        latency[stage] = quantiles(fresh)
        if not fresh:
            notes.append(f"{label} {stage} latency: all {len(recorded)} cases were served from the cache; no fresh "
                         "call was measured (replay with a cold cache to measure it)")
    return ReplaySide(label=label, manifest_path=str(loaded.path), manifest_id=run.manifest_id, run_id=run.run_id,
                      run_path=str(path), cases=len(run.cases), errors=sum(kinds.values()), errors_by_kind=kinds,
                      generated=int(run.counts.get("generated", 0)),
                      cache_hits=sum(1 for o in run.outputs if o.cache_hits.get("generate", False)),
                      seconds=seconds, latency=latency)


def segments(cases: Sequence[GoldenCase]) -> dict[str, list[str]]:
    members: dict[str, list[str]] = {}
    for c in cases:
        for seg in dict.fromkeys(c.segments()):
            members.setdefault(seg, []).append(c.id)
    return {"all": [c.id for c in cases]} | {seg: members[seg] for seg in sorted(members)}


def mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def agreement(base: RunResult, head: RunResult, contracts: Any) -> tuple[Agreement, ...]:
    from harness.contracts import ParsedAnswer
    from harness.scorers.text import normalize_answer, token_f1_normalized

    bo = {o.case_id: o for o in base.outputs}
    ho = {o.case_id: o for o in head.outputs}
    contract_of = {c.id: c.contract for c in head.cases}
    per_case: dict[str, dict[str, float]] = {}
    for cid in ho:
        b, h = bo.get(cid), ho[cid]
        row: dict[str, float] = {}
        if b is not None and b.answer is not None and h.answer is not None and b.answer == h.answer:
            row["exact"] = row["f1"] = 1.0
        elif b is not None and b.answer is not None and h.answer is not None:
            row["exact"] = float(" ".join(b.answer.split()) == " ".join(h.answer.split()))
            name = contract_of.get(cid)
            contract = contracts.get(name) if contracts is not None and name else None
            bt = normalize_answer(ParsedAnswer(b.answer, contract).answer_text())
            ht = normalize_answer(ParsedAnswer(h.answer, contract).answer_text())
            row["f1"] = 1.0 if bt == ht else token_f1_normalized(ht, bt)[0]
        if b is not None:
            bi, hi = {d.doc_id for d in b.ranking}, {d.doc_id for d in h.ranking}
            if bi or hi:
                row["jaccard"] = len(bi & hi) / len(bi | hi)
            if b.ranking and h.ranking:
                row["top1"] = float(b.ranking[0].doc_id == h.ranking[0].doc_id)
        per_case[cid] = row
    out = []
    for seg, ids in segments(head.cases).items():
        rows = [per_case[i] for i in ids if i in per_case]

        def m(key: str, rows: list[dict[str, float]] = rows) -> float | None:
            return mean([r[key] for r in rows if key in r])

        out.append(Agreement(segment=seg, n=len(ids), answer_exact=m("exact"), answer_token_f1=m("f1"),
                             ranking_jaccard=m("jaccard"), top1_same=m("top1")))
    return tuple(out)


def moves(base: RunResult, head: RunResult) -> tuple[SignalMove, ...]:
    from harness.scorers.signals import MOVE_SIGNALS, output_signals

    cases = head.cases
    bt, ht = output_signals(cases, base.outputs), output_signals(cases, head.outputs)
    index = {c.id: i for i, c in enumerate(cases)}
    out = []
    for signal in MOVE_SIGNALS:
        bv, hv = bt[signal].to_pylist(), ht[signal].to_pylist()
        for seg, ids in segments(cases).items():
            b = [float(bv[index[i]]) for i in ids if bv[index[i]] is not None]
            h = [float(hv[index[i]]) for i in ids if hv[index[i]] is not None]
            out.append(SignalMove(signal=signal, segment=seg, n=len(ids),
                                  baseline_median=float(np.median(b)) if b else None,
                                  candidate_median=float(np.median(h)) if h else None,
                                  baseline_mean=mean(b), candidate_mean=mean(h)))
    return tuple(out)


def whole_run_report(plan: ReplayPlan, replay_id: str, base: RunResult, base_path: Path, base_s: float,
                     head: RunResult, head_path: Path, head_s: float) -> ReplayReport:
    """What ``run_replay`` reported from the two runs held whole (its code before the columnar reading)."""
    req = plan.request
    layout = req.layout
    notes = list(plan.notes)
    diff = compare(base, head, plan.settings, layout)
    results = evaluate_gates(plan.rules, head, diff, base=base).results
    if plan.rules_from == "default":
        results = _default_segment_skips(results)
    status, reasons = _status(plan, results)
    if base_errors := sum(1 for o in base.outputs if o.error is not None):
        notes.append(f"the baseline errored on {base_errors} of {len(base.outputs)} replayed records")
        if status == "pass":
            status = "cannot_judge"
            reasons.append(f"the baseline errored on {base_errors} of {len(base.outputs)} replayed records, so the "
                           "candidate was not compared there; re-run the replay (answers already given are cached)")
    floor = plan.config.min_segment_size
    if status == "pass" and len(plan.cases) < floor:
        status = "cannot_judge"
        reasons.append(f"{len(plan.cases)} records replayed, fewer than min_segment_size = {floor}: too few to tell "
                       "a worse candidate from noise (replay more, or lower [replay] min_segment_size)")
    skipped = [r for r in results if r.status == "skip"]
    if skipped:
        notes.append(f"{len(skipped)} rule result(s) skipped (segments smaller than their min_segment_size, or "
                     "nothing measured)")
    baseline = side("baseline", req.baseline, base, base_path, base_s, notes)
    candidate = side("candidate", req.candidate, head, head_path, head_s, notes)
    return ReplayReport(replay_id=replay_id, status=status, reasons=tuple(reasons), selection=plan.selection,
                        baseline=baseline, candidate=candidate, rules=plan.rules_from, results=results, diff=diff,
                        agreement=agreement(base, head, plan.contracts), moves=moves(base, head),
                        artifacts=tuple(artifact_changes(base, head, layout)), notes=tuple(notes))


def select(req: Any, monitor: Any, sample: int | None, seed: int) -> tuple[list[tuple[GoldenCase, str]], Any]:
    """``_select`` as it was: every matched record made a Python row, a set of the ids seen."""
    import harness.shadow.replay as engine
    from harness.monitor.signals import sample_keys
    from harness.shadow.logs import duplicates_dropped
    from harness.shadow.model import ReplaySelection

    columns = ["record_id", "query", "contract", "instructions", "attrs", "source"]
    table = engine.read_records(req.layout, monitor.mapping, req.query, log=req.log, columns=columns)
    rows = table.to_pylist()
    skipped: dict[str, int] = {}
    if dropped := duplicates_dropped(table):
        skipped["duplicate record id"] = dropped
    seen: set[str] = set()
    eligible: list[dict[str, Any]] = []
    for row in rows:
        if not (row["query"] or "").strip():
            skipped["no query"] = skipped.get("no query", 0) + 1
        elif row["record_id"] in seen:
            skipped["duplicate record id"] = skipped.get("duplicate record id", 0) + 1
        else:
            seen.add(row["record_id"])
            eligible.append(row)
    if sample is not None and sample < len(eligible):
        keys = sample_keys([r["record_id"] for r in eligible], seed)
        chosen = sorted(np.argsort(keys, kind="stable")[:sample].tolist())
        eligible = [eligible[i] for i in chosen]
    cases: list[tuple[GoldenCase, str]] = []
    for row in eligible:
        attrs = dict(row["attrs"] or ())
        source = str(row["source"])
        case = GoldenCase(id=row["record_id"], query=row["query"], contract=row["contract"] or None,
                          instructions=engine._instructions(row["instructions"], row["query"], source),
                          tags={k: attrs[k] for k in monitor.segments if attrs.get(k) is not None})
        cases.append((case, source))
    selection = ReplaySelection(source="store" if req.log is None else str(req.log), window=req.query.describe(),
                                sample=sample, seed=seed, matched=len(rows), replayed=len(cases), skipped=skipped)
    return cases, selection
