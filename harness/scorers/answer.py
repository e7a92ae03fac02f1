"""Answer scorers: correctness against references, fact recall, format contracts, instructions.

A case whose generation failed scores 0 (and 1 on failure-rate metrics), with the error as the
explanation: it stays in the denominator and is never a pass (DESIGN principles 4 and 10). So does
an answer with no content (empty, whitespace, or a JSON contract whose answer field is empty):
nothing it says can match a reference, state a fact, follow an instruction or fill a contract. A
case without the relevant reference data (no answers, no facts, no contract, no instructions) is
unscored for that metric, explicitly.

``truncation`` records what the endpoint said about each answer: ``truncated`` is 1 when it was cut
off at ``max_tokens`` (``finish_reason = "length"``; the answer is kept and scored as it is), so a
gate ``metric = "truncated", max_rate = 0.05`` catches a token limit that is too small.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from harness.contracts import ContractSet, ParsedAnswer, validate
from harness.metrics import MetricInfo
from harness.scorers import SCORERS, ScoringContext, empty_content, generation_error, info
from harness.scorers.text import contains_normalized, normalize_answer, token_f1_normalized
from harness.types import CaseOutput, GoldenCase, Score


def _answer(case: GoldenCase, out: CaseOutput | None, ctx: ScoringContext) -> tuple[str | None, str | None]:
    """(answer text for scoring, error)."""
    err = generation_error(out)
    if err is not None or out is None or out.answer is None:
        return None, err
    contract = ctx.contracts.get(case.contract) if ctx.contracts is not None else None
    text = ParsedAnswer(out.answer, contract).answer_text()
    empty = empty_content(text)
    return (None, empty) if empty else (text, None)


class CorrectnessScorer:
    """SQuAD-normalized exact match and token F1 (HotpotQA's definitions), max over aliases; plus
    ``answer_contains``: any reference occurs in the answer (for long-form answers, where EM is 0)."""

    spec: dict[str, Any]

    def metrics(self) -> list[MetricInfo]:
        return [
            info("answer_em", True, "SQuAD-normalized exact match, max over reference answers"),
            info("answer_f1", True, "HotpotQA token F1, max over reference answers"),
            info("answer_contains", True, "1 if a normalized reference answer occurs in the answer"),
        ]

    def score(self, cases: Sequence[GoldenCase], outputs: Sequence[CaseOutput], ctx: ScoringContext) -> list[Score]:
        by_id = {o.case_id: o for o in outputs}
        scores: list[Score] = []
        for c in cases:
            if not c.answers:
                scores += [Score(case_id=c.id, metric=m.name, value=None, explanation="no reference answers")
                           for m in self.metrics()]
                continue
            refs = [r for r in (normalize_answer(a) for a in c.answers) if r]
            if not refs:
                scores += [Score(case_id=c.id, metric=m.name, value=None,
                                 explanation="every reference answer is empty after normalization")
                           for m in self.metrics()]
                continue
            text, err = _answer(c, by_id.get(c.id), ctx)
            norm = normalize_answer(text) if text is not None else ""
            if text is not None and not norm:
                err = "the answer has no words after normalization (only punctuation or articles)"
            if text is None or not norm:
                scores += [Score(case_id=c.id, metric=m.name, value=0.0, explanation=err) for m in self.metrics()]
                continue
            em = max(float(norm == r) for r in refs)
            f1 = max(token_f1_normalized(norm, r)[0] for r in refs)
            hit = next((a for a in c.answers if contains_normalized(norm, a)), None)
            scores += [
                Score(case_id=c.id, metric="answer_em", value=em),
                Score(case_id=c.id, metric="answer_f1", value=f1),
                Score(case_id=c.id, metric="answer_contains", value=float(hit is not None),
                      explanation=f"found {hit!r}" if hit else "no reference answer found in the answer"),
            ]
        return scores


class FactRecallScorer:
    """Fraction of the case's golden facts stated in the answer (text or an alias, normalized and
    token-bounded; or a case-insensitive regex)."""

    spec: dict[str, Any]

    def metrics(self) -> list[MetricInfo]:
        return [info("fact_recall", True, "fraction of golden facts found in the answer")]

    def score(self, cases: Sequence[GoldenCase], outputs: Sequence[CaseOutput], ctx: ScoringContext) -> list[Score]:
        by_id = {o.case_id: o for o in outputs}
        scores: list[Score] = []
        for c in cases:
            if not c.facts:
                scores.append(Score(case_id=c.id, metric="fact_recall", value=None, explanation="no golden facts"))
                continue
            text, err = _answer(c, by_id.get(c.id), ctx)
            if text is None:
                scores.append(Score(case_id=c.id, metric="fact_recall", value=0.0, explanation=err))
                continue
            missing = []
            norm = normalize_answer(text)
            for f in c.facts:
                if f.regex is not None:
                    found = re.search(f.regex, text, re.I) is not None
                else:
                    found = any(contains_normalized(norm, t) for t in (f.text or "", *f.aliases))
                if not found:
                    missing.append(f.regex if f.regex is not None else f.text or "")
            value = 1 - len(missing) / len(c.facts)
            # each fact as written: repr would double a regex's backslashes
            why = "all facts found" if not missing else "missing: " + "; ".join(f"'{m}'" for m in missing)
            scores.append(Score(case_id=c.id, metric="fact_recall", value=value, explanation=why))
        return scores


def validator_metric(contract: str, check: str) -> MetricInfo:
    """The per-validator failure indicator ``format_fail:<contract>.<check>``: a diagnostic of
    ``format_pass`` (1 if that check failed), labelled ``<contract>.<check>`` in reports."""
    label = f"{contract}.{check}"
    return info(f"format_fail:{label}", False, "1 if this validator failed", role="diagnostic", label=label)


def validator_metrics(contracts: ContractSet | None) -> list[MetricInfo]:
    """:func:`validator_metric` of every check of every contract, once each, in the contracts' order."""
    if contracts is None:
        return []
    found = {m.name: m for c in contracts.contracts.values() for m in
             (validator_metric(c.name, c.check_name(i)) for i in range(len(c.checks)))}
    return list(found.values())


class FormatScorer:
    """Output-contract validators. Per case: ``format_pass`` (every check passed),
    ``format_critical_fail`` / ``format_noncritical_fail`` (some critical / non-critical check
    failed), and per validator its diagnostic :func:`validator_metric`, so failure rates come out per
    validator and overall as plain means."""

    spec: dict[str, Any]

    def __init__(self) -> None:
        self._check_metrics: list[MetricInfo] = []

    def metrics(self) -> list[MetricInfo]:
        return [
            info("format_pass", True, "1 if the answer passes every check of its contract"),
            info("format_critical_fail", False, "1 if a critical check of the contract failed"),
            info("format_noncritical_fail", False, "1 if a non-critical check of the contract failed"),
            *self._check_metrics,
        ]

    def score(self, cases: Sequence[GoldenCase], outputs: Sequence[CaseOutput], ctx: ScoringContext) -> list[Score]:
        by_id = {o.case_id: o for o in outputs}
        contracts = ctx.contracts
        self._check_metrics = validator_metrics(contracts)
        scores: list[Score] = []
        for c in cases:
            contract = contracts.get(c.contract) if contracts is not None else None
            if contract is None:
                why = "no contract" if c.contract is None else f"unknown contract {c.contract!r}"
                scores += [Score(case_id=c.id, metric=m, value=None, explanation=why)
                           for m in ("format_pass", "format_critical_fail", "format_noncritical_fail")]
                continue
            out = by_id.get(c.id)
            err = generation_error(out)
            if err is None and out is not None and out.answer is not None:
                err = empty_content(ParsedAnswer(out.answer, contract).answer_text())
            if err is not None or out is None or out.answer is None:
                scores += [Score(case_id=c.id, metric="format_pass", value=0.0, explanation=err),
                           Score(case_id=c.id, metric="format_critical_fail", value=1.0, explanation=err),
                           Score(case_id=c.id, metric="format_noncritical_fail", value=1.0, explanation=err)]
                scores += [Score(case_id=c.id, metric=validator_metric(contract.name, contract.check_name(i)).name,
                                 value=1.0, explanation=err) for i in range(len(contract.checks))]
                continue
            shown = out.generation  # citations must name passages the generator was given
            retrieved = (set(shown.passages_shown) if shown is not None
                         else {d.doc_id for d in out.ranking} | {d.id for d in out.contexts})
            results = validate(contract, out.answer, retrieved, contracts)
            failed = [r for r in results if not r.passed]
            crit = [r for r in failed if r.critical]
            noncrit = [r for r in failed if not r.critical]
            summary = "; ".join(f"{r.name}: {r.message}" for r in failed) or "all checks passed"
            scores += [
                Score(case_id=c.id, metric="format_pass", value=float(not failed), explanation=summary),
                Score(case_id=c.id, metric="format_critical_fail", value=float(bool(crit)),
                      explanation="; ".join(f"{r.name}: {r.message}" for r in crit) or None),
                Score(case_id=c.id, metric="format_noncritical_fail", value=float(bool(noncrit)),
                      explanation="; ".join(f"{r.name}: {r.message}" for r in noncrit) or None),
            ]
            scores += [Score(case_id=c.id, metric=validator_metric(contract.name, r.name).name,
                             value=float(not r.passed), explanation=r.message or None) for r in results]
        return scores


class InstructionScorer:
    """Verifiable instructions (IFEval semantics, :mod:`harness.instructions`) on the raw answer:
    prompt-level (all followed) and instruction-level (fraction followed), strict and loose."""

    spec: dict[str, Any]

    def metrics(self) -> list[MetricInfo]:
        return [
            info("instructions_strict", True, "1 if every instruction is followed (strict)"),
            info("instructions_loose", True, "1 if every instruction is followed (loose)"),
            info("instruction_frac_strict", True, "fraction of instructions followed (strict)"),
            info("instruction_frac_loose", True, "fraction of instructions followed (loose)"),
        ]

    def score(self, cases: Sequence[GoldenCase], outputs: Sequence[CaseOutput], ctx: ScoringContext) -> list[Score]:
        from harness.instructions import check_instructions

        by_id = {o.case_id: o for o in outputs}
        scores: list[Score] = []
        for c in cases:
            if not c.instructions:
                scores += [Score(case_id=c.id, metric=m.name, value=None, explanation="no instructions")
                           for m in self.metrics()]
                continue
            out = by_id.get(c.id)
            err = generation_error(out)
            if err is not None or out is None or out.answer is None:
                scores += [Score(case_id=c.id, metric=m.name, value=0.0, explanation=err) for m in self.metrics()]
                continue
            specs = [{"id": i.id, "kwargs": i.kwargs} for i in c.instructions]
            for mode in ("strict", "loose"):
                results = check_instructions(out.answer, specs, prompt=c.query, mode=mode)
                followed = [r.followed for r in results]
                why = "; ".join(f"{r.id}: {'ok' if r.followed else r.explanation}" for r in results)
                scores += [
                    Score(case_id=c.id, metric=f"instructions_{mode}", value=float(all(followed)), explanation=why),
                    Score(case_id=c.id, metric=f"instruction_frac_{mode}", value=sum(followed) / len(followed)),
                ]
        return scores


class TruncationScorer:
    """``truncated``: 1 if the endpoint cut the answer off at its token limit (``finish_reason =
    "length"``), 0 if it finished otherwise; 1 when generation failed (a failure rate never passes
    an error); unscored when the finish reason was not reported."""

    spec: dict[str, Any]

    def metrics(self) -> list[MetricInfo]:
        return [info("truncated", False, "1 if the answer was cut off at max_tokens (finish_reason = length)")]

    def score(self, cases: Sequence[GoldenCase], outputs: Sequence[CaseOutput], ctx: ScoringContext) -> list[Score]:
        by_id = {o.case_id: o for o in outputs}
        scores: list[Score] = []
        for c in cases:
            out = by_id.get(c.id)
            err = generation_error(out)
            if err is not None or out is None:
                scores.append(Score(case_id=c.id, metric="truncated", value=1.0, explanation=err))
                continue
            finish = out.generation.finish_reason if out.generation is not None else None
            if finish is None:
                why = ("finish_reason not recorded for this case" if out.generation is None
                       else "the endpoint did not report a finish_reason")
                scores.append(Score(case_id=c.id, metric="truncated", value=None, explanation=why))
                continue
            cut = finish == "length"
            scores.append(Score(case_id=c.id, metric="truncated", value=float(cut),
                                explanation="cut off at max_tokens (finish_reason=length); the partial answer was "
                                "scored as it is" if cut else f"finish_reason={finish}"))
        return scores


@SCORERS.register("truncation")
def truncation() -> TruncationScorer:
    return TruncationScorer()


@SCORERS.register("correctness")
def correctness() -> CorrectnessScorer:
    return CorrectnessScorer()


@SCORERS.register("facts")
def facts() -> FactRecallScorer:
    return FactRecallScorer()


@SCORERS.register("format")
def format_validators() -> FormatScorer:
    return FormatScorer()


@SCORERS.register("instructions")
def instructions() -> InstructionScorer:
    return InstructionScorer()
