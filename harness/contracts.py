"""Output contracts and the format validators that check them (validators/ in a project).

A contract says what shape an answer must have (JSON with fields, markdown under a word limit, one
plain sentence) and lists checks, each critical or not: ``json`` (parses), ``json_schema`` (Draft
2020-12 via jsonschema), ``regex`` (must match / must not match), ``length`` (chars, words,
sentences), ``citations`` (ids cited inline as ``[doc-id]`` or in a JSON field must name retrieved
documents). Contracts live in ``validators/contracts.toml``; schemas beside it.
"""

from __future__ import annotations

import json
import os
import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from harness.config import read_config
from harness.errors import InputError
from harness.types import Frozen

INLINE_CITATION = re.compile(r"\[([A-Za-z0-9][\w.:/-]*)\]")


class _CheckBase(Frozen):
    name: str | None = None
    critical: bool = True
    field: str | None = None  # for JSON answers: the field to check (dotted path); None = whole text


class JsonCheck(_CheckBase):
    type: Literal["json"]


class JsonSchemaCheck(_CheckBase):
    type: Literal["json_schema"]
    schema_: str | dict[str, Any] = Field(alias="schema")


class RegexCheck(_CheckBase):
    type: Literal["regex"]
    pattern: str
    must: Literal["match", "not_match"] = "match"
    ignore_case: bool = False
    multiline: bool = True


class LengthCheck(_CheckBase):
    type: Literal["length"]
    min_words: int | None = None
    max_words: int | None = None
    min_chars: int | None = None
    max_chars: int | None = None
    min_sentences: int | None = None
    max_sentences: int | None = None


class CitationsCheck(_CheckBase):
    type: Literal["citations"]
    min_citations: int = 1
    must_be_retrieved: bool = True


Check = Annotated[JsonCheck | JsonSchemaCheck | RegexCheck | LengthCheck | CitationsCheck, Field(discriminator="type")]


class Contract(Frozen):
    name: str
    description: str = ""
    format: Literal["json", "markdown", "text"] = "text"
    prompt: str = ""  # what the generator is told about the shape
    answer_field: str | None = None  # JSON field holding the answer text (json format)
    citations_field: str | None = None  # JSON field holding cited doc ids (json format)
    max_words: int | None = None  # budget an offline generator aims for
    checks: tuple[Check, ...] = ()

    def check_name(self, i: int) -> str:
        c = self.checks[i]
        return c.name or f"{c.type}" + (f":{c.field}" if c.field else "")


class CheckResult(Frozen):
    name: str
    critical: bool
    passed: bool
    message: str = ""


class ContractSet:
    """The contracts of a project, with JSON Schemas resolved relative to the validators folder."""

    def __init__(self, contracts: dict[str, Contract], base_dir: Path) -> None:
        self.contracts = contracts
        self.base_dir = base_dir
        self._schemas: dict[str, Any] = {}

    def get(self, name: str | None) -> Contract | None:
        return None if name is None else self.contracts.get(name)

    def schema(self, ref: str | dict[str, Any]) -> Any:
        from jsonschema import Draft202012Validator

        key = ref if isinstance(ref, str) else json.dumps(ref, sort_keys=True)
        if key not in self._schemas:
            schema = self._read_schema(ref) if isinstance(ref, str) else ref
            Draft202012Validator.check_schema(schema)
            self._schemas[key] = Draft202012Validator(schema)
        return self._schemas[key]

    def _read_schema(self, ref: str) -> Any:
        """A schema file beside contracts.toml: JSON Lines' strict reader, one value for the whole file."""
        from harness.config import decode_utf8
        from harness.golden import parse_json_line

        path = self.base_dir / ref
        text = decode_utf8(path, path.read_bytes(), "JSON Schema file")
        return parse_json_line(path, text.encode("utf-8"), 1, 0)


def _line(text: str, loc: tuple[Any, ...]) -> int | None:
    from harness.config import line_of  # one best-effort locator for every TOML/YAML config

    return line_of(text, loc)


def load_contracts(folder: str | Path) -> ContractSet:
    folder = Path(folder)
    path = folder / "contracts.toml" if folder.is_dir() else folder
    base = path.parent
    from jsonschema.exceptions import SchemaError

    data, text = read_config(path, "contracts file (validators/contracts.toml)")
    unknown = set(data) - {"contracts"}
    if unknown:
        raise InputError(path, f"unknown top-level keys {sorted(unknown)}; expected [contracts.<name>] tables")
    tables = data.get("contracts", {})
    if not isinstance(tables, dict):
        raise InputError(path, "expected [contracts.<name>] tables", line=_line(text, ("contracts",)),
                         field="contracts")
    out: dict[str, Contract] = {}
    for name, spec in tables.items():
        if not isinstance(spec, dict):
            raise InputError(path, f"expected a table, got {type(spec).__name__}",
                             line=_line(text, ("contracts", name)), field=f"contracts.{name}")
        try:
            out[name] = Contract.model_validate({**spec, "name": name})
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ("contracts", name, *err["loc"])
            raise InputError(path, err["msg"], line=_line(text, loc), field=".".join(str(x) for x in loc)) from None
    cs = ContractSet(out, base)
    for c in out.values():
        names = [c.check_name(i) for i in range(len(c.checks))]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise InputError(path, f"two checks are both named {dup!r}; per-validator failure rates need unique names",
                             field=f"contracts.{c.name}.checks", hint="give each check a name = \"...\"")
        for chk in c.checks:
            if isinstance(chk, RegexCheck):
                try:
                    re.compile(chk.pattern)
                except (re.error, RecursionError, OverflowError) as exc:
                    raise InputError(path, f"invalid regex {chk.pattern!r}: {type(exc).__name__}: {exc}",
                                     field=f"contracts.{c.name}.checks") from None
            if isinstance(chk, JsonSchemaCheck):
                where = f"contracts.{c.name}.checks"
                if isinstance(chk.schema_, str):
                    ref = base / chk.schema_
                    try:
                        found = ref.is_file()
                    except OSError as exc:  # a name too long for the file system, ...
                        raise InputError(path, f"schema file {chk.schema_[:60]!r}: {exc.strerror or exc}",
                                         field=where) from None
                    if not found:
                        raise InputError(path, f"schema file {chk.schema_!r} not found beside it", field=where)
                    if not Path(os.path.realpath(ref)).is_relative_to(os.path.realpath(base)):
                        # only the validators folder is pinned: a schema elsewhere could change unseen
                        raise InputError(path, f"schema file {chk.schema_!r} is outside the validators folder "
                                               f"{base}; keep schemas beside contracts.toml", field=where)
                try:
                    cs.schema(chk.schema_)
                except InputError:
                    raise
                except SchemaError as exc:
                    raise InputError(path, f"invalid JSON Schema {chk.schema_ if isinstance(chk.schema_, str) else ''}"
                                           f": {' '.join(exc.message.split())}", field=where) from None
                except (OSError, RecursionError) as exc:
                    raise InputError(path, f"cannot read schema {chk.schema_!r}: {type(exc).__name__}",
                                     field=where) from None
    return cs


def _get_field(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            raise KeyError(dotted)
        obj = obj[part]
    return obj


_FENCE = re.compile(r"^```(?:json)?\s*\n(.*)\n```$", re.S)


def strip_code_fence(text: str) -> str:
    """The body of a reply wrapped in one markdown code fence (models often add one around JSON)."""
    body = text.strip()
    fence = _FENCE.match(body)
    return fence.group(1) if fence else body


class ParsedAnswer:
    """An answer as text plus, for JSON contracts, the parsed object (or why it failed to parse)."""

    def __init__(self, text: str, contract: Contract | None) -> None:
        self.text = text
        self.contract = contract

    @cached_property
    def json(self) -> tuple[Any, str | None]:
        try:
            return json.loads(strip_code_fence(self.text)), None
        except json.JSONDecodeError as exc:
            return None, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"

    def field_text(self, field: str | None) -> tuple[Any, str | None]:
        if field is None:
            return self.text, None
        obj, err = self.json
        if err:
            return None, err
        try:
            return _get_field(obj, field), None
        except KeyError:
            return None, f"field '{field}' is missing"

    def answer_text(self) -> str:
        """The text that answer scorers read: the JSON answer field when there is one."""
        c = self.contract
        if c is not None and c.format == "json" and c.answer_field:
            value, err = self.field_text(c.answer_field)
            if err is None and isinstance(value, str):
                return value
        return self.text

    def citations(self) -> list[str]:
        c = self.contract
        if c is not None and c.format == "json" and c.citations_field:
            value, err = self.field_text(c.citations_field)
            if err is None and isinstance(value, list):
                return [str(v) for v in value]
            return []
        return INLINE_CITATION.findall(self.text)


def validate(contract: Contract, text: str, retrieved_ids: set[str], contracts: ContractSet) -> list[CheckResult]:
    from harness.instructions.text import count_sentences, count_words

    parsed = ParsedAnswer(text, contract)
    results: list[CheckResult] = []
    for i, chk in enumerate(contract.checks):
        name = contract.check_name(i)
        value, err = parsed.field_text(chk.field) if not isinstance(chk, JsonCheck) else (None, None)
        ok, msg = True, ""
        if isinstance(chk, JsonCheck):
            _, jerr = parsed.json
            ok, msg = jerr is None, jerr or ""
        elif err is not None:
            ok, msg = False, err
        elif isinstance(chk, JsonSchemaCheck):
            obj, jerr = parsed.json if chk.field is None else (value, None)
            if jerr:
                ok, msg = False, jerr
            else:
                errors = sorted(contracts.schema(chk.schema_).iter_errors(obj), key=lambda e: list(e.path))
                if errors:
                    where = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
                    ok, msg = False, f"{where}: {errors[0].message}"
        elif isinstance(chk, RegexCheck):
            flags = (re.I if chk.ignore_case else 0) | (re.M if chk.multiline else 0)
            found = re.search(chk.pattern, str(value), flags) is not None
            ok = found if chk.must == "match" else not found
            if not ok:
                msg = f"{'no match for' if chk.must == 'match' else 'forbidden match of'} /{chk.pattern}/"
        elif isinstance(chk, LengthCheck):
            s = str(value)
            measures = {"words": count_words(s), "chars": len(s)}
            if chk.min_sentences is not None or chk.max_sentences is not None:
                measures["sentences"] = count_sentences(s)
            for unit in ("words", "chars", "sentences"):
                lo, hi = getattr(chk, f"min_{unit}"), getattr(chk, f"max_{unit}")
                n = measures.get(unit)
                if n is None:
                    continue
                if lo is not None and n < lo:
                    ok, msg = False, f"{n} {unit}, at least {lo} required"
                    break
                if hi is not None and n > hi:
                    ok, msg = False, f"{n} {unit}, at most {hi} allowed"
                    break
        elif isinstance(chk, CitationsCheck):
            cited = parsed.citations() if chk.field is None else (
                [str(v) for v in value] if isinstance(value, list) else INLINE_CITATION.findall(str(value)))
            unknown = [c for c in cited if c not in retrieved_ids] if chk.must_be_retrieved else []
            if len(cited) < chk.min_citations:
                ok, msg = False, f"{len(cited)} citations, at least {chk.min_citations} required"
            elif unknown:
                ok, msg = False, f"cites {', '.join(unknown[:3])}, not among the retrieved passages"
        results.append(CheckResult(name=name, critical=chk.critical, passed=ok, message=msg))
    return results
