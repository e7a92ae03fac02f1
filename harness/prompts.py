"""Prompt templates: pinned artifacts rendered into chat messages per case.

A template file (TOML or YAML) holds ``messages = [{role, content}]`` whose contents are Jinja2
templates, rendered in a sandbox with StrictUndefined (a typo in a variable name is an error, not an
empty string). Rendering gets the query, the retrieved passages with their ids, the case's output
contract and instructions (with their wording), and the case's tags.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from harness.config import read_config
from harness.contracts import Contract, ContractSet
from harness.errors import InputError
from harness.types import GoldenCase


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


class PromptTemplate:
    def __init__(self, messages: list[dict[str, str]], source: str = "<inline>") -> None:
        self.source = source
        for i, m in enumerate(messages):
            if (not isinstance(m, dict) or set(m) != {"role", "content"}
                    or m["role"] not in ("system", "user", "assistant") or not isinstance(m["content"], str)):
                raise InputError(source, "each message needs exactly 'role' (system|user|assistant) and 'content' "
                                 "(a string)", field=f"messages.{i}")
        self.messages = messages

    @classmethod
    def load(cls, path: str | Path) -> PromptTemplate:
        path = Path(path)
        data, _ = read_config(path, "prompt template")
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list) or set(data) - {"messages"}:
            raise InputError(path, "expected a top-level 'messages' list of {role, content} and nothing else")
        return cls(data["messages"], str(path))

    @cached_property
    def _compiled(self) -> list[tuple[str, Any]]:
        from jinja2 import StrictUndefined, TemplateSyntaxError
        from jinja2.sandbox import SandboxedEnvironment

        env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)
        out = []
        for i, m in enumerate(self.messages):
            try:
                out.append((m["role"], env.from_string(m["content"])))
            except TemplateSyntaxError as exc:
                raise InputError(self.source, f"template syntax error: {_one_line(exc.message)}", line=exc.lineno,
                                 field=f"messages.{i}.content") from None
            except RecursionError:
                raise InputError(self.source, "template nested too deeply", field=f"messages.{i}.content") from None
            except Exception as exc:  # e.g. an integer literal Python will not convert (over 4300 digits)
                raise InputError(self.source, f"template does not compile: {type(exc).__name__}: {_one_line(exc)}",
                                 field=f"messages.{i}.content") from None
        return out

    def check(self, cases: Sequence[GoldenCase], passages: list[dict[str, Any]], contracts: ContractSet | None) -> None:
        """Render the template for every case (with ``passages`` standing in for the retrieved ones),
        so a template that cannot render is bad input before anything runs, not an error mid-run."""
        for case in cases:
            contract = contracts.get(case.contract) if contracts is not None else None
            self.render(case, passages, contract)

    def render(
        self, case: GoldenCase, passages: list[dict[str, Any]], contract: Contract | None
    ) -> list[dict[str, str]]:
        from jinja2 import UndefinedError

        from harness.instructions.describe import describe_instruction

        ctx = {
            "query": case.query,
            "passages": passages,
            "contract": None if contract is None else contract.model_dump(),
            "instructions": [{"id": i.id, "kwargs": i.kwargs, "text": describe_instruction(i.id, i.kwargs)}
                             for i in case.instructions],
            "tags": case.tags,
            "case_id": case.id,
        }
        out = []
        for i, (role, tmpl) in enumerate(self._compiled):
            try:
                content = tmpl.render(**ctx).strip()
            except UndefinedError as exc:
                raise InputError(self.source, f"template uses an undefined variable: {_one_line(exc.message)}",
                                 field=f"messages.{i}.content") from None
            except Exception as exc:  # the template is user input: any failure to render is bad input
                raise InputError(self.source, f"template failed to render for case {case.id!r}: "
                                 f"{type(exc).__name__}: {_one_line(exc)}", field=f"messages.{i}.content") from None
            out.append({"role": role, "content": content})
        return out
