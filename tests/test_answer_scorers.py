from __future__ import annotations

import pytest

from harness.scorers import SCORERS, ScoringContext
from harness.scorers.text import contains, exact_match, normalize_answer, token_f1
from harness.types import CaseOutput, Fact, GoldenCase, InstructionSpec


def test_squad_normalization_and_hotpot_f1() -> None:
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert exact_match("the eiffel tower", "Eiffel Tower.") == 1.0
    f1, p, r = token_f1("Eiffel Tower in Paris", "the Eiffel Tower")
    assert (p, r) == (0.5, 1.0) and f1 == pytest.approx(2 / 3)
    assert token_f1("yes", "no") == (0.0, 0.0, 0.0)
    assert token_f1("yes it is", "yes")[0] == 0.0  # HotpotQA: yes/no must match exactly
    assert contains("needs 8 GB of RAM", "8 GB") and not contains("needs 18 GB", "8 GB")


def _score(name: str, case: GoldenCase, answer: str | None, error: str | None = None) -> dict[str, float | None]:
    out = CaseOutput(case_id=case.id, answer=answer, error=error)
    scorer = SCORERS.build(name, {})
    return {s.metric: s.value for s in scorer.score([case], [out], ScoringContext())}


def test_correctness_and_facts() -> None:
    case = GoldenCase(id="c", query="q", answers=("8 GB", "eight gigabytes"),
                      facts=(Fact(text="8 GB", aliases=("8 GiB",)), Fact(regex=r"\b7410\b")))
    v = _score("correctness", case, "Quillstore 3.x needs 8 GB of RAM.")  # 7 normalized tokens: P=2/7, R=1
    assert v == {"answer_em": 0.0, "answer_f1": pytest.approx(4 / 9), "answer_contains": 1.0}
    assert _score("correctness", case, "eight gigabytes")["answer_em"] == 1.0
    assert _score("facts", case, "It needs 8 GiB and listens on 7410.")["fact_recall"] == 1.0
    assert _score("facts", case, "It needs 8 GB.")["fact_recall"] == 0.5
    # a failed generation is a 0 in the denominator, never a pass, never dropped
    assert _score("facts", case, None, error="rate limited")["fact_recall"] == 0.0
    assert _score("correctness", GoldenCase(id="c", query="q"), "x")["answer_em"] is None


def test_instructions_strict_and_loose() -> None:
    case = GoldenCase(id="c", query="q", instructions=(
        InstructionSpec(id="change_case:english_lowercase"),
        InstructionSpec(id="startend:end_checker", kwargs={"end_phrase": "Any other questions?"})))
    v = _score("instructions", case, "all lower case here. Any other questions?")
    assert v["instructions_strict"] == 0.0 and v["instruction_frac_strict"] == 0.5  # 'Any' is capitalised
    v = _score("instructions", case, "all lower case. any other questions?")
    assert v["instructions_strict"] == 1.0  # IFEval's end_checker compares lower-cased
    v = _score("instructions", case, "**all lower case. any other questions?**")
    assert v["instructions_strict"] == 0.0 and v["instructions_loose"] == 1.0  # loose strips asterisks
