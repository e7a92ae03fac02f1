"""Natural-language wording of verifiable instructions, for rendering them into prompts.

The wording follows how IFEval prompts phrase each instruction (Zhou et al., 2023), so a prompt
template can list a golden case's instructions without hand-writing them per case.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

_RELATION = {"less than": "fewer than", "at least": "at least"}


def _rel(kwargs: Mapping[str, Any]) -> str:
    return _RELATION.get(str(kwargs.get("relation")), str(kwargs.get("relation", "")))


_TEXT: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "keywords:existence": lambda k: f"Include the keywords {', '.join(repr(w) for w in k['keywords'])}.",
    "keywords:frequency": lambda k: f"Use the word {k['keyword']!r} {_rel(k)} {k['frequency']} times.",
    "keywords:forbidden_words": lambda k: f"Do not use the words {', '.join(repr(w) for w in k['forbidden_words'])}.",
    "keywords:letter_frequency": lambda k: (f"Use the letter {k['letter']!r} {_rel(k)} "
                                            f"{k['let_frequency']} times."),
    "language:response_language": lambda k: f"Answer only in the language with code {k['language']!r}.",
    "length_constraints:number_sentences": lambda k: f"Answer in {_rel(k)} {k['num_sentences']} sentences.",
    "length_constraints:number_paragraphs": lambda k: (f"Write exactly {k['num_paragraphs']} paragraphs, "
                                                       "separated by the markdown divider ***."),
    "length_constraints:number_words": lambda k: f"Answer in {_rel(k)} {k['num_words']} words.",
    "length_constraints:nth_paragraph_first_word": lambda k: (
        f"Write exactly {k['num_paragraphs']} paragraphs separated by blank lines; paragraph "
        f"{k['nth_paragraph']} must start with the word {k['first_word']!r}."),
    "detectable_content:number_placeholders": lambda k: (f"Include at least {k['num_placeholders']} placeholders "
                                                         "in square brackets, like [address]."),
    "detectable_content:postscript": lambda k: f"End with a postscript starting with {k['postscript_marker']!r}.",
    "detectable_format:number_bullet_lists": lambda k: (f"Use exactly {k['num_bullets']} markdown bullet points "
                                                        "(lines starting with '* ')."),
    "detectable_format:constrained_response": lambda k: ("Answer with one of: 'My answer is yes.', "
                                                         "'My answer is no.', 'My answer is maybe.'"),
    "detectable_format:number_highlighted_sections": lambda k: (
        f"Highlight at least {k['num_highlights']} sections with markdown, like *highlighted section*."),
    "detectable_format:multiple_sections": lambda k: (f"Write {k['num_sections']} sections, each starting with "
                                                      f"'{k['section_spliter']} X'."),
    "detectable_format:json_format": lambda k: "Wrap the entire output in JSON format.",
    "detectable_format:title": lambda k: "Include a title wrapped in double angular brackets, like <<title>>.",
    "combination:two_responses": lambda k: "Give two different responses separated by six asterisks: ******.",
    "combination:repeat_prompt": lambda k: (f"First repeat the request word for word without change: "
                                            f"{k['prompt_to_repeat']!r}, then give your answer."),
    "startend:end_checker": lambda k: f"Finish your response with the exact phrase {k['end_phrase']!r}.",
    "startend:quotation": lambda k: "Wrap your entire response in double quotation marks.",
    "change_case:capital_word_frequency": lambda k: (f"Use words in all capital letters {_rel(k)} "
                                                     f"{k['capital_frequency']} times."),
    "change_case:english_capital": lambda k: "Write your entire response in English, in capital letters only.",
    "change_case:english_lowercase": lambda k: "Write your entire response in English, in lowercase letters only.",
    "punctuation:no_comma": lambda k: "Do not use any commas.",
}


def describe_instruction(instruction_id: str, kwargs: Mapping[str, Any] | None = None) -> str:
    """One sentence telling a model what the instruction asks; custom ids fall back to their id and kwargs."""
    fn = _TEXT.get(instruction_id)
    kwargs = kwargs or {}
    if fn is None:
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(kwargs.items()))
        return f"Follow the instruction {instruction_id}" + (f" ({args})." if args else ".")
    try:
        return fn(kwargs)
    except KeyError as exc:
        return f"Follow the instruction {instruction_id} (missing argument {exc})."
