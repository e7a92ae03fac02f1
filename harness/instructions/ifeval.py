"""IFEval scoring of whole files: strict and loose accuracy at prompt and instruction level.

Zhou et al. (2023), "Instruction-Following Evaluation for Large Language Models"
(arXiv:2311.07911), report four numbers: prompt-level accuracy (share of prompts whose every
instruction is followed) and instruction-level accuracy (share of all instructions followed), each
in a strict and a loose variant (see :func:`harness.instructions.text.loose_variants`). The
published files are ``input_data.jsonl`` (``{key, prompt, instruction_id_list, kwargs}``) and a
response file of ``{prompt, response}`` lines joined to the inputs by prompt text, as the official
scorer does.

Alignment is explicit: every prompt needs exactly one response, and a response for no prompt is an
error too unless allowed, so a truncated generation run can never score as a smaller, easier set.
Per-prompt verdicts are kept next to the aggregates (a diff between runs needs them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from harness.errors import IFEvalFormatError, InstructionSpecError
from harness.instructions.registry import Mode, check_instructions, validate_instruction

__all__ = [
    "IFEvalInput",
    "IFEvalResponse",
    "IFEvalScores",
    "ModeScores",
    "PromptVerdict",
    "read_inputs",
    "read_responses",
    "score_ifeval",
]


@dataclass(frozen=True)
class IFEvalInput:
    """One IFEval prompt with its instructions; ``source`` is ``file:line`` when read from a file."""

    key: int | str
    prompt: str
    instruction_id_list: tuple[str, ...]
    kwargs: tuple[dict[str, Any], ...]
    source: str | None = None

    def specs(self) -> list[dict[str, Any]]:
        """The instructions as registry specs, ``[{"id": ..., "kwargs": {...}}, ...]``."""
        pairs = zip(self.instruction_id_list, self.kwargs, strict=True)
        return [{"id": i, "kwargs": dict(k)} for i, k in pairs]

    @classmethod
    def from_record(cls, record: Any, source: str | None = None) -> IFEvalInput:
        """Validate one ``{key, prompt, instruction_id_list, kwargs}`` record (ids and kwargs too)."""
        expected = '{"key": int|str, "prompt": str, "instruction_id_list": [str], "kwargs": [{...}]}'
        if not isinstance(record, Mapping):
            raise IFEvalFormatError(f"expected a JSON object {expected}, got {type(record).__name__}", source)
        missing = [k for k in ("key", "prompt", "instruction_id_list", "kwargs") if k not in record]
        if missing:
            raise IFEvalFormatError(f"missing field(s) {', '.join(missing)}; expected {expected}", source)
        key, prompt = record["key"], record["prompt"]
        ids, kwargs = record["instruction_id_list"], record["kwargs"]
        if isinstance(key, bool) or not isinstance(key, int | str):
            raise IFEvalFormatError(f'"key" must be an integer or string, got {key!r}', source)
        if not isinstance(prompt, str):
            raise IFEvalFormatError(f'"prompt" must be a string, got {type(prompt).__name__}', source)
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise IFEvalFormatError(f'"instruction_id_list" must be a list of strings, got {ids!r}', source)
        if not isinstance(kwargs, list) or not all(isinstance(k, Mapping) for k in kwargs):
            raise IFEvalFormatError(f'"kwargs" must be a list of objects, got {kwargs!r}', source)
        if len(ids) != len(kwargs):
            raise IFEvalFormatError(
                f'"instruction_id_list" has {len(ids)} ids but "kwargs" has {len(kwargs)} objects; '
                "expected one kwargs object per id",
                source,
            )
        for index, (instruction_id, kw) in enumerate(zip(ids, kwargs, strict=True)):
            try:
                validate_instruction(instruction_id, kw, prompt, f"instruction {index}")
            except InstructionSpecError as exc:
                raise IFEvalFormatError(f"key {key}: {exc}", source) from exc
        return cls(key, prompt, tuple(ids), tuple(dict(k) for k in kwargs), source)


@dataclass(frozen=True)
class IFEvalResponse:
    """A model's response to one prompt; ``source`` is ``file:line`` when read from a file."""

    prompt: str
    response: str
    source: str | None = None


class PromptVerdict(TypedDict):
    """One prompt's verdicts in one mode (the official per-prompt fields plus explanations)."""

    key: int | str
    prompt: str
    instruction_id_list: list[str]
    follow_all_instructions: bool
    follow_instruction_list: list[bool]
    explanations: list[str]
    errors: list[str | None]


class ModeScores(TypedDict):
    """Aggregates for "strict" or "loose", with the counts behind them and per-prompt verdicts."""

    prompt_level: float
    instruction_level: float
    prompts_followed: int
    prompt_count: int
    instructions_followed: int
    instruction_count: int
    per_prompt: list[PromptVerdict]


class IFEvalScores(TypedDict):
    strict: ModeScores
    loose: ModeScores


def _read_jsonl(path: Path) -> Iterable[tuple[str, Any]]:
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise IFEvalFormatError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle:
        for number, line in enumerate(handle, start=1):
            source = f"{path}:{number}"
            text = line.strip()
            if not text:
                continue
            try:
                yield source, json.loads(text)
            except json.JSONDecodeError as exc:
                message = f"malformed JSON: {exc.msg} at character {exc.pos + 1}; expected one JSON object per line"
                raise IFEvalFormatError(message, source) from exc


def read_inputs(path: str | Path) -> list[IFEvalInput]:
    """Read and validate an IFEval ``input_data.jsonl``; keys must be unique."""
    inputs: list[IFEvalInput] = []
    seen: dict[int | str, str | None] = {}
    for source, record in _read_jsonl(Path(path)):
        item = IFEvalInput.from_record(record, source)
        if item.key in seen:
            raise IFEvalFormatError(f"duplicate key {item.key!r} (first at {seen[item.key]})", source)
        seen[item.key] = source
        inputs.append(item)
    return inputs


def read_responses(path: str | Path) -> list[IFEvalResponse]:
    """Read a ``{prompt, response}`` JSONL file (extra fields are ignored)."""
    responses = []
    expected = '{"prompt": str, "response": str}'
    for source, record in _read_jsonl(Path(path)):
        if not isinstance(record, Mapping):
            raise IFEvalFormatError(f"expected a JSON object {expected}, got {type(record).__name__}", source)
        prompt, response = record.get("prompt"), record.get("response")
        if not isinstance(prompt, str) or not isinstance(response, str):
            raise IFEvalFormatError(
                f'"prompt" and "response" must be strings, got prompt={type(prompt).__name__}, '
                f"response={type(response).__name__}; expected {expected}",
                source,
            )
        responses.append(IFEvalResponse(prompt, response, source))
    return responses


def _as_inputs(inputs: Iterable[IFEvalInput | Mapping[str, Any]]) -> list[IFEvalInput]:
    out = []
    for index, item in enumerate(inputs):
        out.append(item if isinstance(item, IFEvalInput) else IFEvalInput.from_record(item, f"input {index}"))
    return out


def _response_map(
    responses: Mapping[str, str] | Iterable[IFEvalResponse | Mapping[str, Any]],
) -> dict[str, IFEvalResponse]:
    if isinstance(responses, Mapping):
        items = [IFEvalResponse(p, r, f"response for prompt {p[:40]!r}") for p, r in responses.items()]
    else:
        items = []
        for index, item in enumerate(responses):
            if isinstance(item, IFEvalResponse):
                items.append(item)
            elif isinstance(item, Mapping) and isinstance(item.get("prompt"), str) and isinstance(
                item.get("response"), str
            ):
                items.append(IFEvalResponse(item["prompt"], item["response"], f"response {index}"))
            else:
                raise IFEvalFormatError(
                    f'response {index}: expected {{"prompt": str, "response": str}}, got {item!r}'
                )
    by_prompt: dict[str, IFEvalResponse] = {}
    for item in items:
        earlier = by_prompt.get(item.prompt)
        if earlier is not None and earlier.response != item.response:
            raise IFEvalFormatError(
                f"a second, different response to the same prompt (first at {earlier.source})", item.source
            )
        by_prompt[item.prompt] = item
    return by_prompt


def _score_mode(pairs: list[tuple[IFEvalInput, str]], mode: Mode) -> ModeScores:
    per_prompt: list[PromptVerdict] = []
    followed_instructions = instruction_count = followed_prompts = 0
    for item, response in pairs:
        results = check_instructions(response, item.specs(), prompt=item.prompt, mode=mode)
        flags = [r.followed for r in results]
        per_prompt.append(
            PromptVerdict(
                key=item.key,
                prompt=item.prompt,
                instruction_id_list=list(item.instruction_id_list),
                follow_all_instructions=all(flags),
                follow_instruction_list=flags,
                explanations=[r.explanation for r in results],
                errors=[r.error for r in results],
            )
        )
        followed_prompts += all(flags)
        followed_instructions += sum(flags)
        instruction_count += len(flags)
    return ModeScores(
        prompt_level=followed_prompts / len(pairs),
        instruction_level=followed_instructions / instruction_count if instruction_count else 0.0,
        prompts_followed=followed_prompts,
        prompt_count=len(pairs),
        instructions_followed=followed_instructions,
        instruction_count=instruction_count,
        per_prompt=per_prompt,
    )


def score_ifeval(
    inputs: Iterable[IFEvalInput | Mapping[str, Any]],
    responses: Mapping[str, str] | Iterable[IFEvalResponse | Mapping[str, Any]],
    *,
    allow_extra_responses: bool = False,
) -> IFEvalScores:
    """Score responses against IFEval inputs; returns strict and loose :class:`ModeScores`.

    ``inputs`` are :class:`IFEvalInput` or raw records; ``responses`` are a ``{prompt: response}``
    mapping or ``{prompt, response}`` records, joined to the inputs by prompt text as in the
    official scorer. A prompt without a response raises :class:`IFEvalFormatError` naming the
    input's ``file:line``; so does a response matching no prompt unless
    ``allow_extra_responses``. A blank response is scored (it follows nothing), not rejected.
    """
    items = _as_inputs(inputs)
    if not items:
        raise IFEvalFormatError("no prompts to score")
    by_prompt = _response_map(responses)
    pairs = []
    for item in items:
        found = by_prompt.get(item.prompt)
        if found is None:
            raise IFEvalFormatError(
                f"prompt with key {item.key!r} has no response; expected a response line "
                f'{{"prompt": <this prompt, verbatim>, "response": str}}',
                item.source,
            )
        pairs.append((item, found.response))
    if not allow_extra_responses:
        wanted = {item.prompt for item in items}
        extra = [r for p, r in by_prompt.items() if p not in wanted]
        if extra:
            raise IFEvalFormatError(
                f"response for a prompt that is not among the inputs ({len(extra)} such response(s)); "
                f"expected the prompt text verbatim: {extra[0].prompt[:60]!r}",
                extra[0].source,
            )
    return IFEvalScores(strict=_score_mode(pairs, "strict"), loose=_score_mode(pairs, "loose"))
