"""`harness ifeval`: score a response file against IFEval inputs (Zhou et al., 2023)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from harness.cli import HarnessCommand
from harness.errors import HarnessError, IFEvalFormatError

_VERDICT_FIELDS = ("follow_all_instructions", "follow_instruction_list", "explanations", "errors")


def _table(scores: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="IFEval (Zhou et al., 2023)")
    table.add_column("mode")
    table.add_column("prompt-level", justify="right")
    table.add_column("instruction-level", justify="right")
    for mode in ("strict", "loose"):
        m = scores[mode]
        table.add_row(
            mode,
            f"{m['prompt_level']:.6f} ({m['prompts_followed']}/{m['prompt_count']})",
            f"{m['instruction_level']:.6f} ({m['instructions_followed']}/{m['instruction_count']})",
        )
    Console().print(table)


def _per_prompt_records(scores: Mapping[str, Any], responses: dict[str, str]) -> list[dict[str, Any]]:
    records = []
    for strict, loose in zip(scores["strict"]["per_prompt"], scores["loose"]["per_prompt"], strict=True):
        records.append(
            {
                "key": strict["key"],
                "prompt": strict["prompt"],
                "response": responses[strict["prompt"]],
                "instruction_id_list": strict["instruction_id_list"],
                "strict": {k: strict[k] for k in _VERDICT_FIELDS},
                "loose": {k: loose[k] for k in _VERDICT_FIELDS},
            }
        )
    return records


@click.command("ifeval", cls=HarnessCommand)
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="IFEval input_data.jsonl: {key, prompt, instruction_id_list, kwargs} per line.")
@click.option("--responses", "responses_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Responses JSONL: {prompt, response} per line, one per input prompt.")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON on stdout.")
@click.option("--per-prompt", "per_prompt", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write one JSON line per prompt (strict and loose verdicts, explanations).")
def ifeval(input_path: Path, responses_path: Path, as_json: bool, per_prompt: Path | None) -> None:
    """Score instruction following with IFEval's strict and loose accuracy.

    Prompt-level accuracy is the share of prompts whose every instruction is followed;
    instruction-level accuracy is the share of all instructions followed.

    \b
    Example:
      harness ifeval --input ../shared/data/ifeval/input_data.jsonl \\
        --responses ../shared/data/ifeval/responses/gpt4.jsonl --json
    """
    from harness.golden import iter_jsonl
    from harness.instructions.ifeval import read_inputs, read_responses, score_ifeval

    # The strict JSON Lines reader first: bytes that are not UTF-8, NaN, nesting that would exhaust the
    # recursion limit are one line naming file:line (and the byte offset), never a crash.
    for path in (input_path, responses_path):
        for _ in iter_jsonl(path):
            pass
    inputs = read_inputs(input_path)
    responses = read_responses(responses_path)
    try:
        scores = score_ifeval(inputs, responses)
    except IFEvalFormatError as exc:
        raise IFEvalFormatError(exc.detail, exc.source, hint=f"responses come from {responses_path}") from None
    if per_prompt is not None:
        by_prompt = {r.prompt: r.response for r in responses}
        lines = [json.dumps(r, ensure_ascii=False) for r in _per_prompt_records(scores, by_prompt)]
        try:
            per_prompt.write_text("\n".join(lines) + "\n", encoding="utf-8")
        except OSError as exc:
            reason = exc.strerror or exc
            raise HarnessError(f"{per_prompt}: cannot write per-prompt output: {reason}") from exc
    if as_json:
        summary = {
            mode: {key: scores[mode][key] for key in ("prompt_level", "instruction_level")}
            for mode in ("strict", "loose")
        }
        click.echo(json.dumps(summary, indent=2))
        return
    _table(scores)
