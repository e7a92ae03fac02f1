"""Load and validate golden sets and corpora.

JSONL is read line by line and each record validated against the published JSON Schema
(``harness/schemas``), so an error names file:line and the field. Anything else that Hugging Face
``datasets`` can read (Parquet, CSV, a ``save_to_disk`` folder) goes through it and errors name the
row (1-based). Cross-checks (duplicate ids, relevance naming unknown documents) run before anything
is returned: nothing is half-loaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.types import CorpusDoc, GoldenCase, drop_none

_JSONL_SUFFIXES = {".jsonl", ".ndjson"}


@cache
def _validator(schema_name: str) -> Any:
    from jsonschema import Draft202012Validator

    schema = json.loads(resources.files("harness.schemas").joinpath(schema_name).read_text("utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_path(name: str) -> Path:
    """Path of a published schema file (``golden_case``, ``corpus_doc`` or ``manifest``)."""
    return Path(str(resources.files("harness.schemas").joinpath(f"{name}.schema.json")))


def _describe(error: Any) -> tuple[str | None, str]:
    path = ".".join(str(p) for p in error.absolute_path) or None
    if error.validator == "additionalProperties":
        return path, f"{error.message} (allowed keys are in the published schema)"
    if error.validator == "pattern" and error.schema.get("pattern") == "\\S":
        return path, "must not be empty or blank"
    if error.validator == "minLength":
        return path, "must not be empty"
    return path, error.message


def _iter_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(line or row number, decoded record) for JSONL or any format ``datasets`` reads."""
    if path.is_file() and (path.suffix in _JSONL_SUFFIXES or path.suffix == ".json"):
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield lineno, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(path, f"malformed JSON: {exc.msg} at column {exc.colno}", line=lineno) from None
        return
    yield from _iter_datasets(path)


def _iter_datasets(path: Path) -> Iterator[tuple[int, Any]]:
    if not path.exists():
        raise InputError(path, "no such file or directory")
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise InputError(path, "reading this format needs the 'datasets' package", hint="pip install datasets") from exc
    datasets.disable_progress_bars()
    try:
        if path.is_dir():
            ds: Any = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                ds = ds[next(iter(ds))]
        else:
            builder = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv", ".arrow": "arrow"}.get(path.suffix)
            if builder is None:
                raise InputError(path, "unsupported format; expected .jsonl, .parquet, .csv or a saved dataset folder")
            kwargs: dict[str, Any] = {"delimiter": "\t"} if path.suffix == ".tsv" else {}
            ds = datasets.load_dataset(builder, data_files=str(path), split="train", **kwargs)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(path, f"could not be read: {exc}") from None
    for i, row in enumerate(ds, 1):
        yield i, drop_none(row)


def _load(path: str | Path, schema: str, what: str) -> list[tuple[int, dict[str, Any]]]:
    path = Path(path)
    validator = _validator(schema)
    records: list[tuple[int, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    for lineno, rec in _iter_records(path):
        if not isinstance(rec, dict):
            raise InputError(path, f"expected a JSON object per line ({what}), got {type(rec).__name__}", line=lineno)
        err = next(iter(sorted(validator.iter_errors(rec), key=lambda e: e.path)), None)
        if err is not None:
            field, msg = _describe(err)
            raise InputError(path, msg, line=lineno, field=field)
        rid = rec["id"]
        if rid in seen:
            raise InputError(path, f"duplicate id {rid!r} (first at line {seen[rid]})", line=lineno, field="id")
        seen[rid] = lineno
        records.append((lineno, rec))
    if not records:
        raise InputError(path, f"no {what} records found")
    return records


def load_corpus(path: str | Path) -> list[CorpusDoc]:
    """Corpus JSONL: {id, title, text, metadata}."""
    return [CorpusDoc.model_validate(r) for _, r in _load(path, "corpus_doc.schema.json", "corpus document")]


def load_golden(path: str | Path, doc_ids: set[str] | frozenset[str] | None = None) -> list[GoldenCase]:
    """Golden set JSONL validated against the schema; relevance ids checked against ``doc_ids``."""
    cases: list[GoldenCase] = []
    for lineno, rec in _load(path, "golden_case.schema.json", "golden case"):
        for i, fact in enumerate(rec.get("facts", ())):
            if "regex" in fact:
                try:
                    re.compile(fact["regex"])
                except re.error as exc:
                    raise InputError(path, f"invalid regex {fact['regex']!r}: {exc}", line=lineno,
                                     field=f"facts.{i}.regex") from None
        if doc_ids is not None:
            for doc_id in rec.get("relevance", {}):
                if doc_id not in doc_ids:
                    raise InputError(
                        path,
                        f"relevance names doc id {doc_id!r}, which is not in the corpus",
                        line=lineno,
                        field=f"relevance.{doc_id}",
                    )
        cases.append(GoldenCase.model_validate(rec))
    return cases


def write_jsonl(path: str | Path, records: list[dict[str, Any]]) -> None:
    """Write JSONL atomically (temp file + rename): never half-written."""
    from harness.storage import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
