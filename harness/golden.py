"""Load and validate golden sets and corpora.

JSONL is read line by line and each record validated against the published JSON Schema
(``harness/schemas``), so an error names file:line and the field. The reader is strict where
:func:`json.loads` is lenient or crashes (see :func:`parse_json_line`): bytes that are not UTF-8 are
reported with their byte offset, NaN/Infinity, repeated keys, lone surrogates and nesting deeper
than :data:`~harness.config.MAX_DEPTH` are refused; a leading byte-order mark, CRLF line ends and
blank lines are accepted. Parquet, CSV/TSV and Arrow files are read with pyarrow and a
``save_to_disk`` folder with Hugging Face ``datasets`` (no dataset cache is written); errors name the
row (1-based). Cross-checks (duplicate ids, relevance naming unknown documents) run before anything
is returned: nothing is half-loaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Container, Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from harness.config import MAX_DEPTH, json_problem
from harness.errors import InputError
from harness.types import CorpusDoc, GoldenCase, drop_none

_T = TypeVar("_T")
_JSONL_SUFFIXES = {".jsonl", ".ndjson"}
ID_PATTERN = "^(?=.*\\S)[^\\u0000-\\u001f\\u007f-\\u009f]+$"
"""Case and document ids: not blank, no control characters (ids are printed, used in XML and file names)."""
_ID_RE = re.compile(ID_PATTERN)
MAX_LINE_BYTES = 64 << 20
"""Longest JSON Lines record read (64 MiB): a file without newlines is refused, not read whole."""


def _schema(name: str) -> Any:
    return json.loads(resources.files("harness.schemas").joinpath(name).read_text("utf-8"))


@cache
def _validator(schema_name: str) -> Any:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    schema = _schema(schema_name)
    Draft202012Validator.check_schema(schema)
    # the published schemas refer to each other by file name (a golden case's "output" is an outputs record's)
    shared = Resource.from_contents(_schema("outputs_record.schema.json"))
    registry: Any = Registry().with_resources([("outputs_record.schema.json", shared), (str(shared.id()), shared)])
    return Draft202012Validator(schema, registry=registry)


def schema_path(name: str) -> Path:
    """Path of a published schema file (``golden_case``, ``corpus_doc``, ``outputs_record`` or ``manifest``)."""
    return Path(str(resources.files("harness.schemas").joinpath(f"{name}.schema.json")))


def _describe(error: Any) -> tuple[str | None, str]:
    path = ".".join(str(p) for p in error.absolute_path) or None
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        return path, f"{error.message} (allowed keys are in the published schema)"
    if error.validator == "pattern" and error.schema.get("pattern") == "\\S":
        return path, "must not be empty or blank"
    if error.validator in ("minimum", "maximum") and path is not None and path.startswith("relevance."):
        return path, (f"grade {error.instance} is out of range: a relevance grade is an integer from "
                      "-2147483647 to 2147483647 (32-bit, as trec_eval reads it)")
    if error.validator == "minLength":
        return path, "must not be empty"
    if error.validator == "pattern" and error.schema.get("pattern") == ID_PATTERN:
        return path, f"{error.instance!r}: an id must not be blank or contain control characters"
    return path, error.message


class _Rejected(ValueError):
    """A JSON value that parses but is not accepted (NaN, a repeated key); the message says why."""


def _no_constants(name: str) -> Any:
    raise _Rejected(f"{name} is not valid JSON (RFC 8259 has no NaN or Infinity); write null or a number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Rejected(f"key {key!r} appears twice in one object")
            seen.add(key)
    return out


_DECODER = json.JSONDecoder(parse_constant=_no_constants, object_pairs_hook=_unique_keys)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_BOM = b"\xef\xbb\xbf"


_JSON_WS = " \t\r\n"


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def _json_depth(raw: bytes) -> int:
    """The deepest bracket nesting of a JSON text outside its strings (vectorized: a line may be megabytes)."""
    import numpy as np

    data = np.frombuffer(_JSON_STRING.sub(b'""', raw), dtype=np.uint8)
    deepest = depth = 0
    for start in range(0, len(data), 1 << 20):  # a block at a time: a whole file (HotpotQA's) may be read here
        b = data[start:start + (1 << 20)]
        steps = (b == ord("[")).astype(np.int32) + (b == ord("{")) - (b == ord("]")) - (b == ord("}"))
        levels = np.cumsum(steps) + depth
        deepest, depth = max(deepest, int(levels.max())), int(levels[-1])
    return deepest


def parse_json_line(path: str | Path, raw: bytes, lineno: int, offset: int) -> Any:
    """One JSON Lines record from its bytes, or InputError naming ``path:lineno`` and what is wrong.

    Strict where :func:`json.loads` is lenient or crashes: bytes must be UTF-8 (the error gives the
    byte offset in the file), NaN/Infinity and repeated keys are refused, nesting deeper than
    :data:`~harness.config.MAX_DEPTH` and lone surrogates are refused before they can exhaust the
    recursion limit or fail to encode later. ``offset`` is the line's byte offset in the file.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at byte offset {offset + exc.start} "
                               f"(column {exc.start + 1}): {exc.reason}", line=lineno) from None
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH + 1 and _json_depth(raw) > MAX_DEPTH + 1:
        # refused before parsing, whatever the process's recursion limit (a library may have raised it)
        raise InputError(path, f"JSON nested more than {MAX_DEPTH} levels deep", line=lineno)
    try:
        value, end = _DECODER.raw_decode(text, len(text) - len(text.lstrip(_JSON_WS)))
        if text[end:].strip(_JSON_WS):
            raise json.JSONDecodeError("Extra data after the JSON value (one value per line)", text, end)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"malformed JSON: {exc.msg} at column {exc.colno}", line=lineno) from None
    except _Rejected as exc:
        raise InputError(path, str(exc), line=lineno) from None
    except RecursionError:
        raise InputError(path, f"JSON nested more than {MAX_DEPTH} levels deep", line=lineno) from None
    except ValueError as exc:  # an integer literal longer than Python's 4300-digit conversion limit
        msg = "a number has more digits than can be read (4300)" if "digits" in str(exc) else " ".join(str(exc).split())
        raise InputError(path, f"malformed JSON: {msg}", line=lineno) from None
    if text.count("[") + text.count("{") > MAX_DEPTH or _SURROGATE_ESCAPE.search(text):
        problem = json_problem(value)
        if problem is not None:
            where, msg = problem
            raise InputError(path, msg, line=lineno, field=None if where == "(top level)" else where)
    return value


def jsonl_lines(path: str | Path, label: str | Path | None = None) -> Iterator[tuple[int, int, bytes | None]]:
    """(line number, byte offset, bytes) per non-blank line of a JSON Lines file, a leading UTF-8 byte-order
    mark removed; a line longer than :data:`MAX_LINE_BYTES` comes as ``None`` (skipped, never read whole).
    A file that cannot be read is an :class:`InputError` naming ``label`` (default: the path)."""
    where = Path(path) if label is None else label
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below; open errors are reported, not raised
    except OSError as exc:
        raise InputError(where, f"cannot read: {exc.strerror or exc}") from None
    with fh:
        offset = 0
        lineno = 0
        while True:
            try:
                raw = fh.readline(MAX_LINE_BYTES + 1)
            except OSError as exc:
                raise InputError(where, f"cannot read: {exc.strerror or exc}", line=lineno + 1) from None
            if not raw:
                return
            lineno += 1
            start = offset
            offset += len(raw)
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # skip the rest of the line
                    raw = fh.readline(MAX_LINE_BYTES + 1)
                    offset += len(raw)
                yield lineno, start, None
                continue
            if lineno == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
                start += len(_BOM)
            if raw.strip():
                yield lineno, start, raw


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line of a JSON Lines file.

    A UTF-8 byte-order mark at the start and CRLF line ends are accepted; lines longer than
    :data:`MAX_LINE_BYTES` are refused without reading them whole.
    """
    path = Path(path)
    for lineno, start, raw in jsonl_lines(path):
        if raw is None:
            raise InputError(path, f"line longer than {MAX_LINE_BYTES >> 20} MiB (starts at byte offset {start})",
                             line=lineno)
        yield lineno, parse_json_line(path, raw, lineno, start)


def iter_records(path: Path, schema: str | None = None) -> Iterator[tuple[int, Any]]:
    """(line or row number, decoded record) for JSONL or any format ``datasets`` reads. CSV/TSV cells are read
    as the text written (an id ``007`` stays ``007``); with ``schema``, a cell of a field the schema types as a
    list or an object is read as JSON (``answers`` = ``["a", "b"]``)."""
    if path.is_file() and (path.suffix in _JSONL_SUFFIXES or path.suffix == ".json"):
        yield from iter_jsonl(path)
        return
    if path.is_file() and path.suffix in (".csv", ".tsv"):
        json_fields = _json_fields(schema) if schema is not None else frozenset()
        for row, rec in iter_csv_text(path):
            yield row, {k: _json_cell(path, row, k, v) if k in json_fields else v for k, v in rec.items()}
        return
    for row, rec in _iter_datasets(path):
        problem = json_problem(rec)
        if problem is not None:
            where, msg = problem
            raise InputError(path, msg, line=row, field=None if where == "(top level)" else where)
        yield row, rec


def read_csv_text(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(row, {column: text}) for every row of a CSV/TSV file, each cell the text as written (no type guessing:
    pyarrow would turn ``001`` into 1 and ``1.10`` into 1.1); empty cells are left out."""
    return list(iter_csv_text(path))


def iter_csv_text(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """:func:`read_csv_text` a block at a time (pyarrow's streaming CSV reader): memory bounded by a block."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    parse = pacsv.ParseOptions(delimiter="\t" if path.suffix == ".tsv" else ",")
    row = 0
    try:
        with pacsv.open_csv(path, parse_options=parse) as reader:
            names = reader.schema.names
        convert = pacsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=False)
        with pacsv.open_csv(path, parse_options=parse, convert_options=convert) as reader:
            for batch in reader:
                for rec in batch.to_pylist():
                    row += 1
                    yield row, {k: v for k, v in rec.items() if v not in (None, "")}
    except (pa.ArrowException, OSError) as exc:
        raise InputError(path, f"could not be read: {type(exc).__name__}: {_one_line(exc)}") from None


@cache
def _json_fields(schema_name: str) -> frozenset[str]:
    """The fields a schema types as a list or an object (an outputs record's included)."""
    schema = _schema(schema_name)
    props = dict(schema.get("properties", {})) | schema.get("$defs", {}).get("output", {}).get("properties", {})
    typed = {k for k, v in props.items() if "$ref" in v or {"array", "object"} & set(
        v.get("type", []) if isinstance(v.get("type"), list) else [v.get("type")])}
    return frozenset(typed)


def _json_cell(path: Path, row: int, column: str, text: str) -> Any:
    """A CSV cell of a list or object field, read as JSON; InputError naming the row and column if it is not."""
    try:
        value = parse_json_line(path, text.encode("utf-8"), row, 0)
    except InputError as exc:
        raise InputError(path, f"this field is a list or an object: its cell must be JSON, e.g. [\"a\", \"b\"]: "
                               f"{exc.message.split(': ', 1)[-1]}", line=row, field=column) from None
    return value


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _read_table(path: Path) -> Any:
    """An Arrow table from a Parquet or Arrow IPC file, read directly (no dataset cache written)."""
    import pyarrow as pa

    return pa.Table.from_batches(list(_table_batches(path)))


def _table_batches(path: Path) -> Iterator[Any]:
    """The record batches of a Parquet (one row group at a time) or Arrow IPC (file or stream) file."""
    import pyarrow as pa

    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        with pq.ParquetFile(path) as pf:
            for i in range(pf.num_row_groups):
                yield from pf.read_row_group(i).to_batches()
        return
    with pa.memory_map(str(path)) as source:
        try:
            reader: Any = pa.ipc.open_file(source)
        except pa.ArrowInvalid:
            source.seek(0)
            yield from pa.ipc.open_stream(source)
            return
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)


def _iter_datasets(path: Path) -> Iterator[tuple[int, Any]]:
    if not path.exists():
        raise InputError(path, "no such file or directory")
    if path.is_file() and path.suffix not in (".parquet", ".csv", ".tsv", ".arrow"):
        raise InputError(path, "unsupported format; expected .jsonl, .parquet, .csv or a saved dataset folder")
    try:
        if path.is_dir():
            try:
                import datasets
            except ImportError as exc:  # pragma: no cover - dependency of the package
                raise InputError(path, "reading this format needs the 'datasets' package",
                                 hint="pip install datasets") from exc
            datasets.disable_progress_bars()
            ds: Any = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                ds = ds[next(iter(ds))]
            rows: Any = iter(ds)
        else:
            rows = (row for batch in _table_batches(path) for row in batch.to_pylist())
        for i, row in enumerate(rows, 1):
            yield i, drop_none(row)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(path, f"could not be read: {type(exc).__name__}: {_one_line(exc)}") from None


def validate_record(path: str | Path, lineno: int | None, rec: Any, schema: str, what: str) -> None:
    """InputError naming ``path:lineno`` and the field unless ``rec`` is one valid record of ``schema``."""
    if not isinstance(rec, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number",
                type(None): "null"}.get(type(rec), type(rec).__name__)
        raise InputError(path, f"expected a JSON object per line ({what}), got {kind}; the file is JSON Lines: "
                               "one object per line, not an array", line=lineno)
    err = next(iter(sorted(_validator(schema).iter_errors(rec), key=lambda e: e.path)), None)
    if err is not None:
        field, msg = _describe(err)
        raise InputError(path, msg, line=lineno, field=field)
    if _ID_RE.fullmatch(rec["id"]) is None:  # the schema's pattern lets a final newline through ("$")
        raise InputError(path, f"{rec['id']!r}: an id must not be blank or contain control characters",
                         line=lineno, field="id")


GOLDEN_BATCH = 4096
"""Golden cases per batch :func:`iter_golden` yields by default."""


class _IdLedger:
    """The ids a streaming read has seen, as 64-bit hashes beside their line numbers (16 bytes an id, not a
    Python set of strings): a duplicate is found from the hashes and confirmed by the ids themselves, read
    again from the file (two ids that only share a hash are not duplicates)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._hashes: list[Any] = []
        self._lines: list[Any] = []
        self._pending_h: list[int] = []
        self._pending_l: list[int] = []

    def add(self, rid: str, lineno: int) -> None:
        self._pending_h.append(hash(rid))
        self._pending_l.append(lineno)
        if len(self._pending_h) >= 65536:
            self._flush()

    def _flush(self) -> None:
        import numpy as np

        if self._pending_h:
            self._hashes.append(np.array(self._pending_h, dtype=np.int64))
            self._lines.append(np.array(self._pending_l, dtype=np.int64))
            self._pending_h, self._pending_l = [], []

    def first_duplicate(self) -> tuple[str, int, int] | None:
        """(id, line repeating it, line first giving it) of the earliest repeat in the file, or None."""
        import numpy as np

        self._flush()
        if not self._hashes:
            return None
        hashes, lines = np.concatenate(self._hashes), np.concatenate(self._lines)
        order = np.argsort(hashes, kind="stable")
        sorted_h = hashes[order]
        same = sorted_h[1:] == sorted_h[:-1]
        if not same.any():
            return None
        suspect = set(np.unique(sorted_h[1:][same]).tolist())
        wanted = {int(line) for h, line in zip(hashes.tolist(), lines.tolist(), strict=True) if h in suspect}
        last = max(wanted)
        first_at: dict[str, int] = {}
        best: tuple[str, int, int] | None = None
        for lineno, rec in iter_records(self.path):
            if lineno > last:
                break
            if lineno in wanted:
                rid = rec["id"]
                if rid in first_at:
                    if best is None or lineno < best[1]:
                        best = (rid, lineno, first_at[rid])
                else:
                    first_at[rid] = lineno
        return best


def _convert(convert: Callable[[Path, int, dict[str, Any]], _T], path: Path, lineno: int, rec: dict[str, Any],
             what: str, checked: bool) -> _T:
    """``convert``'s record; on a second reading (``checked``: the schema not checked again) a record that no
    longer converts is the file having changed since it was checked, an InputError at its line."""
    if not checked:
        return convert(path, lineno, rec)
    from pydantic import ValidationError

    try:
        return convert(path, lineno, rec)
    except (ValidationError, TypeError, KeyError, AttributeError):
        raise InputError(path, f"changed since it was checked: this record is no longer a valid {what}",
                         line=lineno) from None


def iter_valid(path: str | Path, schema: str, what: str, batch: int = GOLDEN_BATCH,
               convert: Callable[[Path, int, dict[str, Any]], _T] | None = None, *, checked: bool = False
               ) -> Iterator[list[_T]]:
    """``convert(path, line, record)`` (default: the (line, record) pair) of each record of ``path`` valid
    against ``schema``, ``batch`` at a time, the file read as it goes (``convert`` may raise InputError too).
    Ids must be unique across the file: the first error in file order is raised (a repeated id, named with
    the line that first gave it, or an invalid record), and a file of no records is an error, once the end is
    reached; so a caller that must not act on a half-checked file reads it through once first. ``checked``:
    this file was read through so once already (unchanged since: its pin verified), so the schema and the
    duplicate ids are not checked again (``convert`` still is: a record that no longer converts is an InputError
    "changed since it was checked" at its line)."""
    path = Path(path)
    ledger = _IdLedger(path)
    out: list[Any] = []
    n = 0
    try:
        for lineno, rec in iter_records(path, schema):
            if not checked:
                validate_record(path, lineno, rec, schema, what)
                ledger.add(rec["id"], lineno)
            out.append((lineno, rec) if convert is None else _convert(convert, path, lineno, rec, what, checked))
            n += 1
            if len(out) >= batch:
                yield out
                out = []
    except InputError:
        _raise_duplicate(ledger)
        raise
    _raise_duplicate(ledger)
    if out:
        yield out
    if not n:
        raise InputError(path, f"no {what} records found")


def _raise_duplicate(ledger: _IdLedger) -> None:
    dup = ledger.first_duplicate()
    if dup is not None:
        rid, lineno, first = dup
        raise InputError(ledger.path, f"duplicate id {rid!r} (first at line {first})", line=lineno, field="id")


def _load(path: str | Path, schema: str, what: str) -> list[tuple[int, dict[str, Any]]]:
    chunks: Iterator[list[tuple[int, dict[str, Any]]]] = iter_valid(path, schema, what)
    return [pair for chunk in chunks for pair in chunk]


def load_corpus(path: str | Path) -> list[CorpusDoc]:
    """Corpus JSONL: {id, title, text, metadata}."""
    return [CorpusDoc.model_validate(r) for _, r in _load(path, "corpus_doc.schema.json", "corpus document")]


def _check_instructions(path: str | Path, lineno: int, rec: dict[str, Any]) -> None:
    """InputError at ``path:lineno`` (field ``instructions.<i>``) unless every instruction names a registered
    id with kwargs its checker accepts: a bad spec found while generating would be an error per case, or worse,
    a checker that can never pass."""
    specs = rec.get("instructions") or ()
    if not specs:
        return
    from harness.errors import InstructionSpecError
    from harness.instructions.registry import validate_instruction

    for i, spec in enumerate(specs):
        try:
            validate_instruction(spec["id"], spec.get("kwargs"), rec.get("query"), f"instruction {spec['id']!r}")
        except InstructionSpecError as exc:
            raise InputError(path, exc.message, line=lineno, field=f"instructions.{i}", hint=exc.hint) from None


def load_golden(path: str | Path, doc_ids: Container[str] | None = None) -> list[GoldenCase]:
    """Golden set JSONL validated against the schema; relevance ids checked against ``doc_ids``."""
    return [case for chunk in iter_golden(path, doc_ids) for case in chunk]


def iter_golden(path: str | Path, doc_ids: Container[str] | None = None, *, batch: int = GOLDEN_BATCH,
                checked: bool = False) -> Iterator[list[GoldenCase]]:
    """:func:`load_golden` ``batch`` cases at a time (JSONL line by line, Parquet by row group, CSV by block,
    Arrow by record batch, a saved dataset by row), each record checked as :func:`load_golden` checks it and
    errors naming file:line the same way. Memory is one batch plus 16 bytes an id (the duplicate check).
    A duplicate id or an invalid record is raised where it is met, so a batch may have been yielded before
    an error: read the whole set once before acting on any of it. ``checked``: the second reading of a set
    read through once already (its pin verified since): the JSON Schema and duplicate checks, most of the cost
    of a read, are not repeated; the rest is (a record that no longer makes a case is an error naming it)."""
    def convert(where: Path, lineno: int, rec: dict[str, Any]) -> GoldenCase:
        return _golden_case(where, lineno, rec, doc_ids)

    yield from iter_valid(path, "golden_case.schema.json", "golden case", batch, convert, checked=checked)


def _golden_case(path: str | Path, lineno: int, rec: dict[str, Any], doc_ids: Container[str] | None
                 ) -> GoldenCase:
    for i, fact in enumerate(rec.get("facts", ())):
        if "regex" in fact:
            try:
                re.compile(fact["regex"])
            except (re.error, RecursionError, OverflowError) as exc:
                raise InputError(path, f"invalid regex {fact['regex']!r}: {exc}", line=lineno,
                                 field=f"facts.{i}.regex") from None
    _check_instructions(path, lineno, rec)
    if doc_ids is not None:
        for doc_id in rec.get("relevance", {}):
            if doc_id not in doc_ids:
                raise InputError(
                    path,
                    f"relevance names doc id {doc_id!r}, which is not in the corpus",
                    line=lineno,
                    field=f"relevance.{doc_id}",
                )
    if "output" in rec:  # another system's output for the case, in the outputs file's own shape
        from harness.outputs import parse_output

        rec = {**rec, "output": parse_output(path, lineno, rec["output"], field="output.")}
    return GoldenCase.model_validate(rec)


def write_jsonl(path: str | Path, records: list[dict[str, Any]]) -> None:
    """Write JSONL atomically (temp file + rename): never half-written."""
    from harness.storage import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
