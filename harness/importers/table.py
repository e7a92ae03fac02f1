"""`harness import table`: any table through a column mapping into a golden set, an outputs file and a corpus.

A table is a CSV/TSV, Parquet or Arrow file, JSON Lines, or a saved ``datasets`` folder. CSV/TSV cells are
read as text, exactly as written (an id ``007`` stays ``007``); where a field takes a list or an object
(``answers``, ``relevance``, ``facts``, ``contexts``, ``retrieved``) a cell holding a JSON array or object is
read as JSON, and a plain string becomes a one-element list. Other formats keep their own types. An empty
CSV cell, a null or an absent key is no value.

Every row is converted and checked (shapes here, then the published JSON Schemas) before anything is
written; a problem is one line naming ``file:row``, the column, the field it is mapped to and the shape
expected (exit 2). The same conversion serves ``harness import ragas`` (a preset mapping).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, InputError
from harness.golden import iter_records, read_csv_text, validate_record
from harness.importers.project import (
    CORPUS_FILE,
    GOLDEN_FILE,
    IdAllocator,
    ImportedProject,
    content_id,
    embedding_artifact,
    generation_artifacts,
    generation_files,
    manifest_data,
    retrieval_artifacts,
    retrieval_files,
    write_project,
)

OUTPUTS_FILE = "outputs/outputs.jsonl"


@dataclass(frozen=True)
class Shape:
    """What a field takes, and how it reads a value; ``expected`` is said in an error message."""

    name: str
    expected: str


TEXT = Shape("text", "a string (or an integer)")
TEXT_LIST = Shape("text_list", 'a list of strings (in a CSV cell a JSON array, e.g. ["a", "b"]) or one string')
GRADES = Shape("grades", 'an object of doc id -> integer grade (in a CSV cell JSON, e.g. {"d1": 2}) '
                         "or a list of relevant doc ids (grade 1)")
FACTS = Shape("facts", 'a list of facts, each a string or {"text"|"regex", "aliases"} (in a CSV cell a JSON '
                       "array) or one string")
PASSAGES = Shape("passages", 'a list of passages, each a string or {"text", "doc_id", "title", "score"} (in a CSV '
                             "cell a JSON array) or one string")
RANKING = Shape("ranking", 'a list of doc ids or {"doc_id", "score"} in rank order (in a CSV cell a JSON '
                           "array) or one doc id")
ANY = Shape("any", "any JSON value")


@dataclass(frozen=True)
class FieldSet:
    """The fields of one kind of record a mapping can fill: named fields and ``prefix.<name>`` families."""

    what: str
    fields: Mapping[str, Shape]
    prefixes: Mapping[str, Shape]

    def shape(self, target: str) -> Shape | None:
        if target in self.fields:
            return self.fields[target]
        prefix, dot, name = target.partition(".")
        return self.prefixes.get(prefix) if dot and name else None

    def names(self) -> list[str]:
        return [*self.fields, *(f"{p}.<name>" for p in self.prefixes)]


GOLDEN_FIELDS = FieldSet("golden case", {"id": TEXT, "query": TEXT, "answers": TEXT_LIST, "relevance": GRADES,
                                         "facts": FACTS, "contract": TEXT}, {"tags": TEXT, "metadata": ANY})
OUTPUT_FIELDS = FieldSet("outputs record", {"answer": TEXT, "contexts": PASSAGES, "retrieved": RANKING}, {})
CASE_FIELDS = FieldSet("golden case or outputs record", {**GOLDEN_FIELDS.fields, **OUTPUT_FIELDS.fields},
                       GOLDEN_FIELDS.prefixes)
CORPUS_FIELDS = FieldSet("corpus document", {"id": TEXT, "title": TEXT, "text": TEXT}, {"metadata": ANY})


@dataclass(frozen=True)
class Table:
    """Rows (1-based row or line number, record) and the columns they have, in order of first appearance."""

    path: Path
    rows: list[tuple[int, dict[str, Any]]]
    columns: list[str]
    text_cells: bool  # CSV/TSV: every cell is text; list and object fields read JSON from it


def read_table(path: str | Path) -> Table:
    """Every row of a table file or ``datasets`` folder; InputError naming the file (and row) if unreadable."""
    path = Path(path)
    text_cells = path.is_file() and path.suffix in (".csv", ".tsv")
    if text_cells:
        rows: list[tuple[int, dict[str, Any]]] = list(read_csv_text(path))
    else:
        rows = []
        for row, rec in iter_records(path):
            if not isinstance(rec, dict):
                raise InputError(path, f"expected an object per row, got {type(rec).__name__}", line=row)
            rows.append((row, rec))
    if not rows:
        raise InputError(path, "no rows found")
    columns = list(dict.fromkeys(key for _, rec in rows for key in rec))
    return Table(path, rows, columns, text_cells)


def parse_mapping(pairs: Sequence[str], fields: FieldSet, option: str = "--map") -> dict[str, str]:
    """``FIELD=COLUMN`` pairs as {field: column}; a malformed pair or an unknown field is one HarnessError."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        target, eq, column = pair.partition("=")
        target, column = target.strip(), column.strip()
        if not eq or not target or not column:
            raise HarnessError(f"{option} {pair!r}: expected FIELD=COLUMN, e.g. {option} query=question")
        if fields.shape(target) is None:
            close = difflib.get_close_matches(target, list(fields.fields) + list(fields.prefixes), n=1)
            raise HarnessError(f"{option} {pair!r}: unknown field {target!r} of a {fields.what} "
                               f"(fields: {', '.join(fields.names())})",
                               hint=f"did you mean {close[0]!r}?" if close else None)
        if target in mapping:
            raise HarnessError(f"{option}: field {target!r} is mapped twice ({mapping[target]!r} and {column!r})")
        mapping[target] = column
    return mapping


def check_columns(table: Table, mapping: Mapping[str, str], option: str = "--map") -> None:
    """InputError unless every mapped column exists in the table."""
    for target, column in mapping.items():
        if column not in table.columns:
            close = difflib.get_close_matches(column, table.columns, n=1)
            raise InputError(table.path, f"no column {column!r} ({option} {target}={column}); columns: "
                             f"{', '.join(table.columns)}", hint=f"did you mean {close[0]!r}?" if close else None)


class _WrongShape(Exception):
    """A value that does not have its field's shape; the message says what it is."""


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return f"the string {value[:40]!r}" + ("..." if len(value) > 40 else "")
    if isinstance(value, list | tuple):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _WrongShape(_kind(value))


def _no_constant(name: str) -> Any:
    raise _WrongShape(f"{name} in a JSON cell (JSON has no NaN or Infinity)")


def _items(value: Any, text_cell: bool, container: type) -> Any:
    """A list (or object) as given; a text cell holding JSON is decoded; a plain string is one item."""
    if isinstance(value, str) and text_cell and value.strip()[:1] in ("[", "{"):
        try:
            value = json.loads(value, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            raise _WrongShape(f"a cell that starts like JSON but does not parse ({exc.msg} at column {exc.colno})"
                              ) from None
    if container is dict:
        return value
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return list(value)
    raise _WrongShape(_kind(value))


def _convert(value: Any, shape: Shape, text_cell: bool) -> Any:
    if shape is TEXT:
        return _text(value)
    if shape is ANY:
        return value
    if shape is GRADES:
        grades = _items(value, text_cell, dict)
        if isinstance(grades, str):
            grades = [grades]
        if isinstance(grades, list | tuple) and all(isinstance(d, str) for d in grades):
            return dict.fromkeys(grades, 1)
        if not isinstance(grades, dict):
            raise _WrongShape(_kind(grades))
        return grades  # the grades' type and range are the schema's to check
    items = _items(value, text_cell, list)
    if shape is TEXT_LIST:
        return [_text(v) for v in items]
    if shape is FACTS:
        return [{"text": v} if isinstance(v, str) else v for v in items]
    return items  # passages and rankings: each item a string or an object, checked by the outputs schema


def _assign(record: dict[str, Any], target: str, value: Any) -> None:
    prefix, dot, name = target.partition(".")
    if dot:
        record.setdefault(prefix, {})[name] = value
    else:
        record[target] = value


def map_row(table: Table, row: int, rec: Mapping[str, Any], mapping: Mapping[str, str],
            fields: FieldSet) -> dict[str, Any]:
    """The fields ``mapping`` fills from one row (absent values left out); InputError on a wrong shape."""
    out: dict[str, Any] = {}
    for target, column in mapping.items():
        value = rec.get(column)
        if value is None:
            continue
        shape = fields.shape(target)
        assert shape is not None, "mappings are checked against their field set when parsed"
        try:
            _assign(out, target, _convert(value, shape, table.text_cells))
        except _WrongShape as exc:
            raise InputError(table.path, f"column {column!r} (-> {target}): expected {shape.expected}, got {exc}",
                             line=row) from None
    return out


def _validate(table: Table, row: int, record: dict[str, Any], schema: str, what: str,
              mapping: Mapping[str, str]) -> None:
    """The published schema's check, its message naming the column the offending field came from."""
    try:
        validate_record(table.path, row, record, schema, what)
    except InputError as exc:
        field = exc.field or ""
        target = next((t for t in mapping if field == t or field.startswith(t + ".")), None)
        if target is None:  # a generated id: not from a column
            raise
        detail = exc.message.removeprefix(f"{table.path}:{row}: field '{field}': ")
        raise InputError(table.path, f"column {mapping[target]!r} (-> {field}): {detail}", line=row,
                         hint=exc.hint) from None


@dataclass(frozen=True)
class Converted:
    """Golden cases and the outputs records the rows carry (ids shared)."""

    cases: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    generated_ids: bool
    rows: dict[str, int] = field(default_factory=dict)  # case id -> the row it came from
    columns: dict[str, str] = field(default_factory=dict)  # field -> the column mapped to it


def convert_cases(table: Table, mapping: Mapping[str, str]) -> Converted:
    """Golden cases (and outputs records, for rows with an answer, contexts or a ranking) from every row.

    The id is the mapped column's, else generated from the query text (``q-`` and 12 hex digits of its
    sha256; a repeated query gets ``-2``, ``-3``, ...). Everything is checked before returning.
    """
    if "query" not in mapping:
        raise InputError(table.path, f"no column is mapped to the query (--map query=COLUMN); columns: "
                         f"{', '.join(table.columns)}")
    check_columns(table, mapping)
    golden_map = {t: c for t, c in mapping.items() if GOLDEN_FIELDS.shape(t) is not None}
    output_map = {t: c for t, c in mapping.items() if OUTPUT_FIELDS.shape(t) is not None}
    ids = IdAllocator()
    first: dict[str, int] = {}
    cases: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    for row, rec in table.rows:
        case = map_row(table, row, rec, golden_map, GOLDEN_FIELDS)
        if "query" not in case:
            raise InputError(table.path, f"column {mapping['query']!r} (-> query) is empty", line=row)
        if "id" not in mapping:
            case = {"id": ids.take(content_id("q-", case["query"])), **case}
        elif "id" not in case:
            raise InputError(table.path, f"column {mapping['id']!r} (-> id) is empty", line=row)
        _validate(table, row, case, "golden_case.schema.json", "golden case", golden_map)
        if case["id"] in first:
            raise InputError(table.path, f"column {mapping['id']!r} (-> id): duplicate id {case['id']!r} (first at "
                             f"row {first[case['id']]})", line=row)
        first[case["id"]] = row
        cases.append(case)
        output = map_row(table, row, rec, output_map, OUTPUT_FIELDS)
        if output:
            record = {"id": case["id"], **output}
            _validate(table, row, record, "outputs_record.schema.json", "outputs record", output_map)
            outputs.append(record)
    return Converted(cases, outputs, generated_ids="id" not in mapping, rows=first, columns=dict(mapping))


def convert_corpus(table: Table, mapping: Mapping[str, str]) -> list[dict[str, Any]]:
    """Corpus documents from every row; the id is the mapped column's, else ``d-`` and 12 hex digits of the
    sha256 of title and text (identical documents are one document)."""
    if "text" not in mapping:
        raise InputError(table.path, f"no column is mapped to the document text (--corpus-map text=COLUMN); "
                         f"columns: {', '.join(table.columns)}")
    check_columns(table, mapping, "--corpus-map")
    docs: dict[str, tuple[int, dict[str, Any]]] = {}
    for row, rec in table.rows:
        doc = map_row(table, row, rec, mapping, CORPUS_FIELDS)
        if "text" not in doc:
            raise InputError(table.path, f"column {mapping['text']!r} (-> text) is empty", line=row)
        doc = {"id": doc.get("id") or content_id("d-", doc.get("title", ""), doc["text"]), "title": "", **doc}
        _validate(table, row, doc, "corpus_doc.schema.json", "corpus document", mapping)
        seen = docs.get(doc["id"])
        if seen is not None and ("id" in mapping or seen[1] != doc):
            raise InputError(table.path, f"duplicate document id {doc['id']!r} (first at row {seen[0]})", line=row)
        docs.setdefault(doc["id"], (row, doc))
    return [doc for _, doc in docs.values()]


def check_doc_ids(path: Path, converted: Converted, doc_ids: set[str], where: str) -> None:
    """InputError unless every doc id the cases judge and the outputs rank or cite is a corpus document."""
    named = [(case["id"], "relevance", doc_id) for case in converted.cases for doc_id in case.get("relevance", {})]
    for out in converted.outputs:
        named += [(out["id"], "retrieved", r if isinstance(r, str) else r["doc_id"]) for r in out.get("retrieved", ())]
        named += [(out["id"], "contexts", c["doc_id"]) for c in out.get("contexts", ())
                  if isinstance(c, dict) and "doc_id" in c]
    for case_id, what, doc_id in named:
        if doc_id not in doc_ids:
            column = converted.columns.get(what, what)
            raise InputError(path, f"column {column!r} (-> {what}) names doc id {doc_id!r}, which is not in {where}",
                             line=converted.rows.get(case_id), field=column)


def outputs_project(name: str, description: str, converted: Converted, version: str,
                    corpus: list[dict[str, Any]] | None = None) -> ImportedProject:
    """A project that scores supplied outputs: golden set, outputs file, the embedding model (groundedness,
    and the doc texts of a ranking when a corpus is given)."""
    artifacts: dict[str, dict[str, Any]] = {"golden": {"kind": "golden", "version": version, "path": GOLDEN_FILE}}
    files: dict[str, Any] = {GOLDEN_FILE: converted.cases, OUTPUTS_FILE: converted.outputs}
    if corpus is not None:
        artifacts["corpus"] = {"kind": "corpus", "version": version, "path": CORPUS_FILE}
        files[CORPUS_FILE] = corpus
    artifacts["outputs"] = {"kind": "outputs", "version": version, "path": OUTPUTS_FILE}
    artifacts["embedding"] = embedding_artifact()
    # without judgments no retrieval metric can score: leave them out rather than list each as unscored
    extra: dict[str, Any] = {} if any("relevance" in c for c in converted.cases) else {"metrics": {"retrieval": []}}
    return ImportedProject(files=files,
                           manifests={"harness.toml": manifest_data(name, description, artifacts, **extra)})


def import_table(src: str | Path, out: str | Path, mapping: Sequence[str], corpus: str | Path | None = None,
                 corpus_mapping: Sequence[str] = (), fmt: str = "toml") -> tuple[Path, Converted]:
    """Import a table; with outputs fields mapped the project scores them, else (with ``corpus``) it
    retrieves from the corpus and answers with the bundled extractive generator."""
    src = Path(src)
    fields = parse_mapping(mapping, CASE_FIELDS)
    corpus_fields = parse_mapping(corpus_mapping, CORPUS_FIELDS, "--corpus-map")
    if corpus_fields and corpus is None:
        raise HarnessError("--corpus-map needs --corpus FILE")
    converted = convert_cases(read_table(src), fields)
    docs: list[dict[str, Any]] | None = None
    if corpus is not None:
        corpus_table = read_table(corpus)
        defaults = {f: f for f in CORPUS_FIELDS.fields if f in corpus_table.columns and f not in corpus_fields}
        docs = convert_corpus(corpus_table, {**defaults, **corpus_fields})
        check_doc_ids(src, converted, {d["id"] for d in docs}, f"the corpus {corpus_table.path}")
    name = f"table-{src.stem}"
    description = f"Imported from {src} by `harness import table`."
    if converted.outputs:
        project = outputs_project(name, description, converted, src.stem, docs)
    elif docs is not None:
        artifacts = {"golden": {"kind": "golden", "version": src.stem, "path": GOLDEN_FILE},
                     **retrieval_artifacts(Path(corpus or "").stem, {"k": 10, "text_fields": ["title", "text"]}),
                     **generation_artifacts()}
        project = ImportedProject(files={GOLDEN_FILE: converted.cases, CORPUS_FILE: docs, **retrieval_files(),
                                         **generation_files()},
                                  manifests={"harness.toml": manifest_data(name, description, artifacts)})
    else:
        raise HarnessError(f"{src}: nothing to evaluate: no row has an answer, contexts or a ranking, and no corpus "
                           "is given", hint="map the app's outputs (--map answer=COLUMN, contexts=..., retrieved=...) "
                           "or give --corpus FILE to retrieve from")
    return write_project(out, project, fmt), converted
