"""Verifiable instructions: IFEval's 25 checks plus any registered by plugins.

Zhou et al. (2023), "Instruction-Following Evaluation for Large Language Models" (arXiv:2311.07911):
instructions whose adherence a program decides ("answer in under 100 words", "no commas"), so a
harness can score instruction following exactly and offline, without a judge model.

    >>> from harness.instructions import check_instructions
    >>> [r.followed for r in check_instructions("hello world", [{"id": "punctuation:no_comma"}])]
    [True]

Specs are ``{"id": ..., "kwargs": {...}}``; :func:`check_instructions` validates and runs them in
"strict" or IFEval's "loose" mode. New ids register with :func:`instruction` (into :data:`INSTRUCTIONS`, the one
:class:`harness.registry.Registry`) or through the ``harness.instructions`` entry-point group;
the built-ins load on first use, exactly as plugins do. File-level IFEval scoring lives in
:mod:`harness.instructions.ifeval`.
"""

from harness.instructions.registry import (
    ENTRY_POINT_GROUP,
    INSTRUCTIONS,
    Checker,
    InstructionResult,
    Verdict,
    build_instruction,
    check_instructions,
    get_instruction,
    instruction,
    registered_instructions,
    validate_instruction,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "INSTRUCTIONS",
    "Checker",
    "InstructionResult",
    "Verdict",
    "build_instruction",
    "check_instructions",
    "get_instruction",
    "instruction",
    "registered_instructions",
    "validate_instruction",
]
