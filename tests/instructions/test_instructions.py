"""Unit tests for the instruction registry and IFEval's 25 checks (Zhou et al., 2023)."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import textwrap
from pathlib import Path
from typing import Any, Literal

import pytest
from click.testing import CliRunner

from harness.errors import IFEvalFormatError, InstructionSpecError, RegistryError, UnknownInstructionError
from harness.instructions import (
    ENTRY_POINT_GROUP,
    INSTRUCTIONS,
    InstructionResult,
    Verdict,
    build_instruction,
    check_instructions,
    get_instruction,
    instruction,
    registered_instructions,
)
from harness.instructions.ifeval import read_inputs, score_ifeval
from harness.instructions.text import (
    count_sentences,
    count_words,
    detect_language,
    loose_variants,
    split_sentences,
    word_tokenize,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def followed(response: str, instruction_id: str, mode: str = "strict", **kwargs: Any) -> bool:
    (result,) = check_instructions(response, [{"id": instruction_id, "kwargs": kwargs}], mode=mode)  # type: ignore[arg-type]
    assert result.error is None, result.error
    return result.followed


@pytest.fixture
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Let a test register ids without leaking them into other tests."""
    snapshot = dict(INSTRUCTIONS.entries())
    monkeypatch.setattr(INSTRUCTIONS, "_entries", snapshot)
    return snapshot


# --- registry ---------------------------------------------------------------------------------


def test_all_official_ids_registered() -> None:
    ids_file = DATA / "ifeval" / "instruction_ids.txt"
    expected = (
        ids_file.read_text().split()
        if ids_file.is_file()
        else [
            "change_case:capital_word_frequency", "change_case:english_capital", "change_case:english_lowercase",
            "combination:repeat_prompt", "combination:two_responses", "detectable_content:number_placeholders",
            "detectable_content:postscript", "detectable_format:constrained_response",
            "detectable_format:json_format", "detectable_format:multiple_sections",
            "detectable_format:number_bullet_lists", "detectable_format:number_highlighted_sections",
            "detectable_format:title", "keywords:existence", "keywords:forbidden_words", "keywords:frequency",
            "keywords:letter_frequency", "language:response_language",
            "length_constraints:nth_paragraph_first_word", "length_constraints:number_paragraphs",
            "length_constraints:number_sentences", "length_constraints:number_words", "punctuation:no_comma",
            "startend:end_checker", "startend:quotation",
        ]
    )
    assert len(expected) == 25
    assert set(expected) <= set(registered_instructions())


def test_kwargs_schema_is_recorded() -> None:
    entry = get_instruction("length_constraints:number_words")
    assert [k.name for k in entry.kwargs] == ["num_words", "relation"]
    assert all(k.required for k in entry.kwargs)
    schema = entry.json_schema()
    assert schema["properties"]["relation"] == {"enum": ["less than", "at least"]}
    assert schema["properties"]["num_words"] == {"type": "integer"}
    assert schema["required"] == ["num_words", "relation"]
    assert "relation: 'less than' | 'at least'" in entry.signature()


def test_rebuild_from_spec() -> None:
    checker = build_instruction({"id": "keywords:existence", "kwargs": {"keywords": ["alpha"]}})
    assert checker.check("ALPHA beta") == Verdict(True, "all 1 keyword(s) present")
    assert not checker.check("beta").followed


def test_unknown_id_lists_close_matches() -> None:
    with pytest.raises(UnknownInstructionError, match=r"did you mean keywords:existence"):
        get_instruction("keyword:existance")
    with pytest.raises(InstructionSpecError, match="unknown instruction id"):
        check_instructions("x", [{"id": "nope:nothing"}])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_words": 10}, "missing kwarg.*'relation'"),
        ({"num_words": 10, "relation": "more than"}, "must be 'less than' \\| 'at least'"),
        ({"num_words": "10", "relation": "at least"}, "'num_words' must be int"),
        ({"num_words": True, "relation": "at least"}, "'num_words' must be int"),
        ({"num_words": 10, "relation": "at least", "extra": 1}, "unknown kwarg.*'extra'"),
    ],
)
def test_bad_kwargs_are_spec_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InstructionSpecError, match=message):
        check_instructions("x", [{"id": "length_constraints:number_words", "kwargs": kwargs}])


def test_bad_spec_shape() -> None:
    with pytest.raises(InstructionSpecError, match="unknown key"):
        check_instructions("x", [{"id": "punctuation:no_comma", "args": {}}])
    with pytest.raises(InstructionSpecError, match='"id" must be a string'):
        check_instructions("x", [{"kwargs": {}}])
    with pytest.raises(ValueError, match="mode must be"):
        check_instructions("x", [], mode="lenient")  # type: ignore[arg-type]


def test_none_kwargs_count_as_absent() -> None:
    """The Hugging Face copy of IFEval stores every kwarg name on every instruction, mostly null."""
    kwargs = {"num_words": 2, "relation": "at least", "num_highlights": None, "keywords": None}
    (result,) = check_instructions("two words", [{"id": "length_constraints:number_words", "kwargs": kwargs}])
    assert result.followed
    assert result.kwargs == {"num_words": 2, "relation": "at least"}


def test_result_is_frozen_and_does_not_alias_caller_kwargs() -> None:
    kwargs = {"keywords": ["a"]}
    (result,) = check_instructions("a", [{"id": "keywords:existence", "kwargs": kwargs}])
    assert isinstance(result, InstructionResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.followed = False  # type: ignore[misc]
    result.kwargs["keywords"].append("b")
    assert kwargs == {"keywords": ["a"]}


def test_register_class_and_function(clean_registry: dict[str, Any]) -> None:
    @instruction("test:starts_with")
    @dataclasses.dataclass(frozen=True)
    class StartsWith:
        """Response starts with a prefix."""

        prefix: str
        case: Literal["sensitive", "insensitive"] = "sensitive"

        def check(self, response: str) -> Verdict:
            text, prefix = response, self.prefix
            if self.case == "insensitive":
                text, prefix = text.lower(), prefix.lower()
            return Verdict(text.startswith(prefix), "checked")

    @instruction("test:max_lines")
    def max_lines(response: str, *, limit: int) -> tuple[bool, str]:
        """At most ``limit`` lines."""
        lines = response.count("\n") + 1
        return lines <= limit, f"{lines} lines"

    entry = get_instruction("test:starts_with")
    assert [(k.name, k.required) for k in entry.kwargs] == [("prefix", True), ("case", False)]
    assert entry.description == "Response starts with a prefix."
    results = check_instructions(
        "Hello\nworld",
        [
            {"id": "test:starts_with", "kwargs": {"prefix": "hello", "case": "insensitive"}},
            {"id": "test:starts_with", "kwargs": {"prefix": "hello"}},
            {"id": "test:max_lines", "kwargs": {"limit": 1}},
        ],
    )
    assert [r.followed for r in results] == [True, False, False]
    assert results[2].explanation == "2 lines"
    assert max_lines("a", limit=1) == (True, "1 lines")  # the decorator returns the function unchanged
    with pytest.raises(InstructionSpecError, match="'case' must be"):
        check_instructions("x", [{"id": "test:starts_with", "kwargs": {"prefix": "x", "case": "upper"}}])


def test_duplicate_id_needs_replace(clean_registry: dict[str, Any]) -> None:
    with pytest.raises(RegistryError, match="already registered"):

        @instruction("punctuation:no_comma")
        def no_comma(response: str) -> bool:
            return True

    @instruction("punctuation:no_comma", replace=True)
    def lenient(response: str) -> bool:
        return True

    assert followed("a, b", "punctuation:no_comma")


def test_prompt_kwarg_is_filled_from_the_case(clean_registry: dict[str, Any]) -> None:
    @instruction("test:echoes_prompt")
    def echoes(response: str, *, prompt: str) -> bool:
        return prompt in response

    spec = [{"id": "test:echoes_prompt"}]
    assert check_instructions("you asked: hi", spec, prompt="hi")[0].followed
    with pytest.raises(InstructionSpecError, match="missing kwarg"):
        check_instructions("you asked: hi", spec)
    assert "prompt" not in get_instruction("test:echoes_prompt").json_schema()["required"]


def test_checker_exception_is_a_value(clean_registry: dict[str, Any]) -> None:
    @instruction("test:broken")
    def broken(response: str) -> bool:
        raise RuntimeError("boom")

    (result,) = check_instructions("text", [{"id": "test:broken"}])
    assert not result.followed
    assert result.error == "RuntimeError: boom"


def test_entry_point_plugins_load_lazily(
    clean_registry: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "harness_test_plugin.py").write_text(
        textwrap.dedent(
            """
            from harness.instructions import instruction

            @instruction("plugin:shout")
            def shout(response: str) -> bool:
                return response.endswith("!")
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    group = ENTRY_POINT_GROUP
    eps = [importlib.metadata.EntryPoint("shout", "harness_test_plugin", group),
           importlib.metadata.EntryPoint("broken", "harness_no_such_module_xyz", group)]
    calls: list[str] = []

    def fake_entry_points(*, group: str) -> list[importlib.metadata.EntryPoint]:
        calls.append(group)
        return eps

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    monkeypatch.setattr(INSTRUCTIONS, "_plugins_loaded", False)
    assert get_instruction("punctuation:no_comma")  # a hit loads nothing
    assert calls == []
    with pytest.warns(RuntimeWarning, match="'broken'.*failed to load"):
        assert followed("stop!", "plugin:shout")
    assert calls == [group]
    assert "plugin:shout" in registered_instructions()
    assert calls == [group]  # loaded once


# --- text helpers -----------------------------------------------------------------------------


def test_sentences_use_punkt_abbreviations() -> None:
    assert split_sentences("Dr. Smith went home. He was tired.") == ["Dr. Smith went home.", "He was tired."]
    assert count_sentences("One. Two? Three!") == 3
    assert count_sentences("Mr. and Mrs. Jones met at 5 p.m. yesterday.") == 1


def test_word_counting_matches_ifeval() -> None:
    assert count_words("Don't stop: 3.5 km!") == 6  # \w+ runs: Don, t, stop, 3, 5, km
    assert count_words("") == 0
    assert word_tokenize("THE END. It's OK.") == ["THE", "END", ".", "It", "'s", "OK", "."]


def test_language_detection_is_deterministic() -> None:
    text = "Das ist ein kurzer deutscher Satz über das Wetter in Berlin."
    assert {detect_language(text) for _ in range(3)} == {"de"}
    assert detect_language("12345 !!!") is None


def test_loose_variants() -> None:
    names = [v.name for v in loose_variants("Sure:\n**body**\nBye")]
    assert len(names) == 8
    texts = [v.text for v in loose_variants("Sure:\n**body**\nBye")]
    assert texts == [
        "Sure:\n**body**\nBye", "Sure:\nbody\nBye", "**body**\nBye", "Sure:\n**body**", "**body**",
        "body\nBye", "Sure:\nbody", "body",
    ]


# --- the 25 checks: (response, kwargs, strict verdict) ----------------------------------------

CASES: list[tuple[str, str, dict[str, Any], bool]] = [
    ("keywords:existence", "I love Python and RUST.", {"keywords": ["python", "rust"]}, True),
    ("keywords:existence", "I love Python.", {"keywords": ["python", "rust"]}, False),
    ("keywords:existence", "C++ is fast", {"keywords": ["C++"]}, True),  # invalid regex: literal
    ("keywords:frequency", "cat Cat CAT dog", {"keyword": "cat", "frequency": 3, "relation": "at least"}, True),
    ("keywords:frequency", "cat Cat dog", {"keyword": "cat", "frequency": 3, "relation": "at least"}, False),
    ("keywords:frequency", "cat Cat dog", {"keyword": "cat", "frequency": 2, "relation": "less than"}, False),
    ("keywords:frequency", "cat dog", {"keyword": " cat ", "frequency": 2, "relation": "less than"}, True),
    ("keywords:forbidden_words", "A scattered plan", {"forbidden_words": ["cat"]}, True),
    ("keywords:forbidden_words", "My Cat sleeps", {"forbidden_words": ["dog", "cat"]}, False),
    ("keywords:letter_frequency", "Banana", {"letter": "A", "let_frequency": 3, "let_relation": "at least"}, True),
    ("keywords:letter_frequency", "Banana", {"letter": "a", "let_frequency": 3, "let_relation": "less than"}, False),
    ("keywords:letter_frequency", "#a #b #c", {"letter": "#", "let_frequency": 3, "let_relation": "at least"}, True),
    ("keywords:letter_frequency", "#a #b", {"letter": "#", "let_frequency": 3, "let_relation": "at least"}, False),
    ("language:response_language", "Ceci est une phrase écrite en français, bien sûr.", {"language": "fr"}, True),
    ("language:response_language", "This sentence is plainly written in English.", {"language": "fr"}, False),
    ("language:response_language", "1234 5678", {"language": "fr"}, True),  # undetectable
    ("length_constraints:number_sentences", "One. Two. Three.", {"num_sentences": 3, "relation": "at least"}, True),
    ("length_constraints:number_sentences", "One. Two. Three.", {"num_sentences": 3, "relation": "less than"},
     False),
    ("length_constraints:number_paragraphs", "a\n***\nb\n***\nc", {"num_paragraphs": 3}, True),
    ("length_constraints:number_paragraphs", "***\na\n***\nb\n***", {"num_paragraphs": 2}, True),
    ("length_constraints:number_paragraphs", "a\n***\n***\nb", {"num_paragraphs": 2}, False),
    ("length_constraints:number_paragraphs", "a\n\nb", {"num_paragraphs": 2}, False),
    ("length_constraints:number_words", "one two three", {"num_words": 3, "relation": "at least"}, True),
    ("length_constraints:number_words", "one two three", {"num_words": 3, "relation": "less than"}, False),
    ("length_constraints:nth_paragraph_first_word", "Intro here.\n\n\"Summary,\" she said.",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "Summary"}, True),
    ("length_constraints:nth_paragraph_first_word", "Intro.\n\nBody.\n\nEnd.",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "body"}, False),  # 3 paragraphs
    ("length_constraints:nth_paragraph_first_word", "Intro.\n\nBody.",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "intro"}, False),
    ("length_constraints:nth_paragraph_first_word", "Intro.",
     {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "intro"}, False),
    ("detectable_content:number_placeholders", "Dear [name], at [address].", {"num_placeholders": 2}, True),
    ("detectable_content:number_placeholders", "Dear [name].", {"num_placeholders": 2}, False),
    ("detectable_content:postscript", "Body.\n\nP.S. See you.", {"postscript_marker": "P.S."}, True),
    ("detectable_content:postscript", "Body.\n\np. s. see you.", {"postscript_marker": "P.S."}, True),
    ("detectable_content:postscript", "Body. PS see you.", {"postscript_marker": "P.S."}, False),
    ("detectable_content:postscript", "Body.\nP.P.S. More.", {"postscript_marker": "P.P.S"}, True),
    ("detectable_format:number_bullet_lists", "* one\n* two\n- three", {"num_bullets": 3}, True),
    ("detectable_format:number_bullet_lists", "* one\n* two\n**bold** line", {"num_bullets": 3}, False),
    ("detectable_format:constrained_response", "Hmm. My answer is maybe.", {}, True),
    ("detectable_format:constrained_response", "my answer is yes.", {}, False),
    ("detectable_format:number_highlighted_sections", "*one* and **two**", {"num_highlights": 2}, True),
    ("detectable_format:number_highlighted_sections", "*one* and ** **", {"num_highlights": 2}, False),
    ("detectable_format:multiple_sections", "SECTION 1\na\nSECTION 2\nb", {"section_spliter": "SECTION",
     "num_sections": 2}, True),
    ("detectable_format:multiple_sections", "Section 1\na\nSection 2\nb", {"section_spliter": "SECTION",
     "num_sections": 2}, False),  # case-sensitive, as IFEval
    ("detectable_format:json_format", '```json\n{"a": 1}\n```', {}, True),
    ("detectable_format:json_format", 'Here: {"a": 1}', {}, False),
    ("detectable_format:title", "<<My Poem>>\nroses", {}, True),
    ("detectable_format:title", "<< >>\n<My Poem>", {}, False),
    ("combination:two_responses", "First answer.\n******\nSecond answer.", {}, True),
    ("combination:two_responses", "Same.\n******\nSame.", {}, False),
    ("combination:two_responses", "A\n******\n******\nB", {}, False),
    ("combination:repeat_prompt", "Write a poem. Roses are red.", {"prompt_to_repeat": "write a poem."}, True),
    ("combination:repeat_prompt", "Sure! Write a poem.", {"prompt_to_repeat": "Write a poem."}, False),
    ("startend:end_checker", '"... Is there anything else I can help with?"',
     {"end_phrase": "Is there anything else I can help with?"}, True),
    ("startend:end_checker", "Peace. Bye.", {"end_phrase": "Peace."}, False),
    ("startend:quotation", '  "wrapped"  ', {}, True),
    ("startend:quotation", '"', {}, False),
    ("change_case:capital_word_frequency", "THE QUICK brown FOX.",
     {"capital_frequency": 3, "capital_relation": "at least"}, True),
    ("change_case:capital_word_frequency", "THE QUICK brown FOX.",
     {"capital_frequency": 3, "capital_relation": "less than"}, False),
    ("change_case:english_capital", "THIS IS AN ENGLISH SENTENCE WRITTEN IN CAPITAL LETTERS.", {}, True),
    ("change_case:english_capital", "THIS IS AN ENGLISH SENTENCE with one lower word.", {}, False),
    ("change_case:english_capital", "DAS IST EIN DEUTSCHER SATZ ÜBER DAS WETTER IN BERLIN UND MÜNCHEN.", {}, False),
    ("change_case:english_lowercase", "this is an english sentence written in lower case letters.", {}, True),
    ("change_case:english_lowercase", "this is an English sentence.", {}, False),
    ("punctuation:no_comma", "No commas here.", {}, True),
    ("punctuation:no_comma", "One, two.", {}, False),
]


@pytest.mark.parametrize(("instruction_id", "response", "kwargs", "expected"), CASES)
def test_check(instruction_id: str, response: str, kwargs: dict[str, Any], expected: bool) -> None:
    assert followed(response, instruction_id, **kwargs) is expected


def test_every_official_id_has_pass_and_fail_cases() -> None:
    outcomes: dict[str, set[bool]] = {}
    for instruction_id, _, _, expected in CASES:
        outcomes.setdefault(instruction_id, set()).add(expected)
    assert len(outcomes) == 25
    assert all(v == {True, False} for v in outcomes.values())


def test_letter_must_be_one_character() -> None:
    with pytest.raises(InstructionSpecError, match="one character"):
        followed("x", "keywords:letter_frequency", letter="ab", let_frequency=1, let_relation="at least")


# --- strict vs loose --------------------------------------------------------------------------


def test_blank_response_follows_nothing() -> None:
    assert not followed("   \n", "punctuation:no_comma")
    assert not followed("", "punctuation:no_comma", mode="loose")


def test_loose_forgives_preamble_and_markdown() -> None:
    response = "Sure, here it is:\n\"Quoted answer.\""
    assert not followed(response, "startend:quotation")
    (result,) = check_instructions(response, [{"id": "startend:quotation"}], mode="loose")
    assert result.followed
    assert "loose: first line removed" in result.explanation
    assert not followed("**Hello**", "detectable_format:title")
    assert followed("**PEACE.**", "startend:end_checker", end_phrase="peace.") is False
    assert followed("**PEACE.**", "startend:end_checker", mode="loose", end_phrase="peace.") is True


def test_loose_failure_keeps_the_strict_explanation() -> None:
    (strict,) = check_instructions("a, b", [{"id": "punctuation:no_comma"}])
    (loose,) = check_instructions("a, b", [{"id": "punctuation:no_comma"}], mode="loose")
    assert not loose.followed
    assert loose.explanation == strict.explanation == "1 comma(s)"


# --- IFEval files and the command -------------------------------------------------------------

INPUTS = [
    {"key": 1, "prompt": "Say hi without commas.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
    {"key": 2, "prompt": "Two words, quoted.", "instruction_id_list": ["startend:quotation",
     "length_constraints:number_words"], "kwargs": [{}, {"num_words": 4, "relation": "less than"}]},
]


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_score_ifeval_levels() -> None:
    responses = {"Say hi without commas.": "hi there", "Two words, quoted.": 'Sure:\n"hello world"'}
    scores = score_ifeval(INPUTS, responses)
    assert scores["strict"]["prompt_level"] == 0.5
    assert scores["strict"]["instruction_level"] == 2 / 3
    assert scores["loose"]["prompt_level"] == 1.0
    assert scores["loose"]["instruction_level"] == 1.0
    assert scores["strict"]["per_prompt"][1]["follow_instruction_list"] == [False, True]


def test_score_ifeval_alignment_errors(tmp_path: Path) -> None:
    inputs = read_inputs(_write(tmp_path / "in.jsonl", INPUTS))
    with pytest.raises(IFEvalFormatError, match=r"in\.jsonl:2: prompt with key 2 has no response"):
        score_ifeval(inputs, {"Say hi without commas.": "hi"})
    both = {"Say hi without commas.": "hi", "Two words, quoted.": '"a b"', "Other prompt": "x"}
    with pytest.raises(IFEvalFormatError, match="not among the inputs"):
        score_ifeval(inputs, both)
    assert score_ifeval(inputs, both, allow_extra_responses=True)["strict"]["prompt_level"] == 1.0


def test_read_inputs_errors(tmp_path: Path) -> None:
    bad_json = _write(tmp_path / "a.jsonl", [INPUTS[0], '{"key": 3,'])
    with pytest.raises(IFEvalFormatError, match=r"a\.jsonl:2: malformed JSON"):
        read_inputs(bad_json)
    unknown = dict(INPUTS[0], instruction_id_list=["punctuation:no_comas"])
    with pytest.raises(IFEvalFormatError, match=r"b\.jsonl:1: .*did you mean punctuation:no_comma"):
        read_inputs(_write(tmp_path / "b.jsonl", [unknown]))
    with pytest.raises(IFEvalFormatError, match="duplicate key 1"):
        read_inputs(_write(tmp_path / "c.jsonl", [INPUTS[0], INPUTS[0]]))
    with pytest.raises(IFEvalFormatError, match="one kwargs object per id"):
        read_inputs(_write(tmp_path / "d.jsonl", [dict(INPUTS[0], kwargs=[])]))


def test_cli(tmp_path: Path) -> None:
    from harness.commands.ifeval import ifeval

    inputs = _write(tmp_path / "in.jsonl", INPUTS)
    responses = _write(tmp_path / "out.jsonl", [{"prompt": "Say hi without commas.", "response": "hi there"},
                                                {"prompt": "Two words, quoted.", "response": '"a b"'}])
    per_prompt = tmp_path / "per_prompt.jsonl"
    runner = CliRunner()
    result = runner.invoke(ifeval, ["--input", str(inputs), "--responses", str(responses), "--json",
                                    "--per-prompt", str(per_prompt)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "strict": {"prompt_level": 1.0, "instruction_level": 1.0},
        "loose": {"prompt_level": 1.0, "instruction_level": 1.0},
    }
    rows = [json.loads(line) for line in per_prompt.read_text().splitlines()]
    assert [r["key"] for r in rows] == [1, 2]
    assert rows[1]["strict"]["follow_instruction_list"] == [True, True]
    assert rows[1]["response"] == '"a b"'

    table = runner.invoke(ifeval, ["--input", str(inputs), "--responses", str(responses)])
    assert table.exit_code == 0 and "strict" in table.output and "1.000000 (2/2)" in table.output

    short = _write(tmp_path / "short.jsonl", [{"prompt": "Say hi without commas.", "response": "hi"}])
    missing = runner.invoke(ifeval, ["--input", str(inputs), "--responses", str(short)])
    assert missing.exit_code == 2
    assert "in.jsonl:2" in missing.output and "has no response" in missing.output

    broken = _write(tmp_path / "broken.jsonl", ["{not json"])
    bad = runner.invoke(ifeval, ["--input", str(inputs), "--responses", str(broken)])
    assert bad.exit_code == 2 and "broken.jsonl:1: malformed JSON" in bad.output
