from __future__ import annotations

import pytest

from harness.scorers import SCORERS, ScoringContext
from harness.scorers.text import contains, exact_match, normalize_answer, token_f1
from harness.types import CaseError, CaseOutput, Fact, GenerationRecord, GoldenCase, InstructionSpec


def test_squad_normalization_and_hotpot_f1() -> None:
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert exact_match("the eiffel tower", "Eiffel Tower.") == 1.0
    f1, p, r = token_f1("Eiffel Tower in Paris", "the Eiffel Tower")
    assert (p, r) == (0.5, 1.0) and f1 == pytest.approx(2 / 3)
    assert token_f1("yes", "no") == (0.0, 0.0, 0.0)
    assert token_f1("yes it is", "yes")[0] == 0.0  # HotpotQA: yes/no must match exactly
    assert contains("needs 8 GB of RAM", "8 GB") and not contains("needs 18 GB", "8 GB")


def _score(name: str, case: GoldenCase, answer: str | None, error: str | None = None) -> dict[str, float | None]:
    out = CaseOutput(case_id=case.id, answer=answer,
                     error=None if error is None else CaseError(stage="generate", kind="generate", message=error))
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


# --- an answer that says nothing is never a pass (issue 10) ---------------------------------------------

EMPTY_ANSWERS = ["", "   ", "\n\t ", "...", " -- ! "]


@pytest.fixture
def contracts(tmp_path):  # type: ignore[no-untyped-def]
    from harness.contracts import load_contracts

    (tmp_path / "contracts.toml").write_text('''
[contracts.plain]
format = "text"
prompt = "One sentence."
checks = [
  { type = "length", name = "short", max_words = 30 },
  { type = "regex", name = "no_apology", pattern = "sorry", must = "not_match" },
]

[contracts.cited]
format = "json"
answer_field = "answer"
citations_field = "citations"
prompt = "JSON."
checks = [{ type = "json", name = "parses" }]
''')
    return load_contracts(tmp_path)


def _scores(name: str, case: GoldenCase, answer: str | None, contracts: object = None,
            args: dict | None = None, **ctx: object) -> dict[str, tuple[float | None, str | None]]:
    out = CaseOutput(case_id=case.id, answer=answer, ranking=(),
                     generation=GenerationRecord(attempts=1, passages_shown=("d1",), finish_reason="stop"))
    scorer = SCORERS.build(name, args or {})
    context = ScoringContext(contracts=contracts, **ctx)  # type: ignore[arg-type]
    return {s.metric: (s.value, s.explanation) for s in scorer.score([case], [out], context)}


def _never_a_pass(scores: dict[str, tuple[float | None, str | None]], lower_is_better: set[str]) -> None:
    assert scores
    for metric, (value, why) in scores.items():
        assert why, metric  # always says why
        if value is None:
            continue  # unscored, with a reason
        assert value == (1.0 if metric in lower_is_better or metric.startswith("format_fail:") else 0.0), metric


@pytest.mark.parametrize("answer", EMPTY_ANSWERS)
def test_no_scorer_passes_an_empty_answer(answer: str, contracts: object) -> None:
    import numpy as np

    from harness.types import CorpusDoc

    case = GoldenCase(id="c", query="q", answers=("hourly",), facts=(Fact(regex=r".*"), Fact(text="hourly")),
                      contract="plain", instructions=(InstructionSpec(id="change_case:english_lowercase"),
                                                      InstructionSpec(id="punctuation:no_comma")))
    docs = {"d1": CorpusDoc(id="d1", text="Backups run hourly.")}
    embed = lambda texts: np.ones((len(texts), 4), dtype=np.float32) / 2  # noqa: E731
    fails = {"format_critical_fail", "format_noncritical_fail", "truncated"}
    _never_a_pass(_scores("correctness", case, answer), fails)
    _never_a_pass(_scores("facts", case, answer), fails)  # a regex that matches anything still needs text
    _never_a_pass(_scores("format", case, answer, contracts), fails)  # no check may pass vacuously
    _never_a_pass(_scores("instructions", case, answer), fails)  # "" is lower case and has no comma
    grounded = _scores("groundedness", case, answer, docs=docs, embed=embed)
    _never_a_pass(grounded, fails)
    assert grounded["groundedness"][0] == 0.0 and grounded["grounded"][0] == 0.0
    _never_a_pass(_scores("truncation", case, answer), fails)
    judge = _scores("llm_judge", case, answer, args={"generator": {"name": "openai", "model": "m",
                                                                      "base_url": "http://127.0.0.1:9/v1"}},
                    docs=docs)
    _never_a_pass(judge, fails)  # scored 0 (no call made), never a pass
    assert judge["judge_support"][0] == 0.0


def test_no_scorer_passes_an_answer_with_no_content(contracts: object) -> None:
    """Content-free but not empty: a JSON contract with an empty answer field, only punctuation or
    articles, only citation marks."""
    import numpy as np

    from harness.types import CorpusDoc

    case = GoldenCase(id="c", query="q", answers=("the",), facts=(Fact(regex=r"x*"),), contract="cited")
    empty_field = '{"answer": "  ", "citations": []}'
    for name in ("correctness", "facts", "format"):
        scores = _scores(name, case, empty_field, contracts)
        if name == "correctness":
            assert all(v is None for v, _ in scores.values())  # the reference itself normalizes to nothing
        else:
            _never_a_pass(scores, {"format_critical_fail", "format_noncritical_fail"})
    case = GoldenCase(id="c", query="q", facts=(Fact(text="hourly"),))
    case2 = GoldenCase(id="c", query="q", answers=("hourly",))
    assert _scores("correctness", case2, "The.")["answer_em"][0] == 0.0  # "" == "" is not a match
    docs = {"d1": CorpusDoc(id="d1", text="Backups run hourly.")}
    embed = lambda texts: np.ones((len(texts), 4), dtype=np.float32) / 2  # noqa: E731
    only_cites = _scores("groundedness", case, "[1] [2]", docs=docs, embed=embed)
    assert only_cites["groundedness"][0] == 0.0 and only_cites["grounded"][0] == 0.0
    assert only_cites["unsupported_claims"][0] is None and "no claims" in (only_cites["groundedness"][1] or "")


def test_truncation_metric() -> None:
    case = GoldenCase(id="c", query="q")

    def value(generation: GenerationRecord | None, answer: str | None = "Backups run",
              error: str | None = None) -> float | None:
        out = CaseOutput(case_id="c", answer=answer, generation=generation,
                         error=None if error is None else CaseError(stage="generate", kind="timeout", message=error))
        return SCORERS.build("truncation", {}).score([case], [out], ScoringContext())[0].value

    def finished(reason: str | None) -> GenerationRecord:
        return GenerationRecord(attempts=1, passages_shown=(), finish_reason=reason)

    assert value(finished("length")) == 1.0 and value(finished("stop")) == 0.0
    assert value(finished(None)) is None and value(None) is None  # not reported: unscored, not a pass
    assert value(None, answer=None, error="timeout") == 1.0  # a failure rate never passes an error
    (m,) = SCORERS.build("truncation", {}).metrics()
    assert m.name == "truncated" and m.greater_is_better is False
