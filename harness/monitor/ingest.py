"""``harness ingest``: production logs into the project's day-partitioned Parquet store.

Every input is checked before anything is written (the file exists and reads in its format, the mapping's
fields are valid paths); then each file is ingested on its own:

- each record is mapped onto :data:`~harness.monitor.schema.LOG_SCHEMA` (:func:`map_record`); a record
  that cannot be (bad JSON, no timestamp or query, a value of the wrong type, a timestamp without a zone)
  is rejected with its position and reason, written to ``logs/rejected/<source hash>.jsonl``, and the
  rest of the file is still ingested;
- a record whose id the ledger already holds is skipped, and so is a second record with the same id in
  the file (counted as a duplicate); a file whose source hash (its content hash with the format and mapping it
  is read with, :func:`source_hash`) the ledger holds adds nothing;
- the file's records are written as one part per day it touches, ``logs/day=<D>/part-<hash16>.parquet``
  (the name is the source hash, so a re-run rewrites the same parts), to temporary files renamed
  into place; then the file's ledger rows (its source hash, every record id it added) are committed in
  one SQLite transaction (``logs/ledger.sqlite``). That commit is what makes the parts visible:
  :class:`~harness.monitor.store.LogStore` reads only parts whose source hash the ledger holds, so a crash
  before it leaves nothing visible, and a re-run repairs it.

Mapping rules (:func:`map_record`):

- a field is a name or a dotted path into nested objects (``meta.request_id``); a top-level key that is
  literally the dotted name is taken first;
- ``timestamp``: an ISO-8601 string with a zone (``Z`` or ``+02:00``; a naive one is rejected unless
  ``assume_utc``), or a number of seconds since the epoch; a number of magnitude 1e11 or more is
  milliseconds (1e11 s is the year 5138, 1e11 ms is 1973). Stored in UTC; the day is the UTC date;
- ``retrieved``: ids (strings or integers) or ``{doc_id, score}`` objects (``id`` is accepted for
  ``doc_id``), best first; scores are stored only when every item has one;
- ``contexts``: texts or ``{text, doc_id, score}`` objects; when no ``retrieved`` is logged, their doc ids
  (and scores) are the ranking;
- ``latency``: a number (stored as ``{"total": x}``) or ``{stage: seconds}`` stored as logged (no total is
  added); seconds must be finite and not negative;
- ``error``: a kind string or ``{kind, message}`` (null, ``""`` and ``false``: no error; ``true``: kind
  ``"error"``); ``timeout``: a boolean (absent: false);
- ``instructions``: a list of ``{id, kwargs}`` objects, stored as canonical JSON;
- every other scalar field, at any depth of nested objects, goes into ``attrs`` as text under its dotted
  name (see :func:`harness.monitor.readers.scalar_text`); ``fields`` maps every field path reached through
  objects (not into arrays) to its JSON type in that record (``"null"`` when null);
- ``record_id``: the mapped id (a string or an integer) when present, else ``"sha256:"`` and the hash of
  the mapped content (every stored column but the source, the ingestion time and ``fields``).
"""

from __future__ import annotations

import bisect
import json
import math
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, InputError
from harness.hashing import canonical_json, sha256_file, sha256_json
from harness.monitor.readers import (
    FormatChoice,
    Mapped,
    Rejected,
    Source,
    decode_line,
    iter_jsonl,
    iter_otlp,
    iter_parquet,
    jsonl_lines,
    open_source,
    parquet_columns,
    scalar_text,
)
from harness.monitor.schema import LOG_SCHEMA, day_dir, logs_dir
from harness.progress import NULL_PROGRESS, Progress
from harness.storage import Layout, atomic_write_text, check_writable
from harness.types import LogFieldMap

CHUNK = 50_000
"""Records mapped before they are built into Arrow and written: bounds memory on large logs."""
_LOOKUP_BATCH = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS_THRESHOLD = 1e11
_US = timedelta(microseconds=1)


def ledger_path(layout: Layout) -> Path:
    return logs_dir(layout) / "ledger.sqlite"


def rejected_path(layout: Layout, source_hash: str) -> Path:
    return logs_dir(layout) / "rejected" / f"{source_hash}.jsonl"


def part_name(source_hash: str) -> str:
    return f"part-{source_hash[:16]}.parquet"


# --- the report -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileReport:
    """What ingesting one file did. ``records``: records read (lines, rows or traces, rejected ones
    included); ``added`` + ``skipped`` + ``duplicates`` + ``rejected_count`` = ``records``."""

    path: str
    format: str
    source_hash: str
    records: int
    added: int
    skipped: int  # ids the store already held
    duplicates: int  # ids repeated inside this file (the first is kept)
    rejected: tuple[tuple[str, str], ...]  # (position, reason), in file order
    days: tuple[str, ...]
    already_ingested: bool = False  # the ledger held this source hash: nothing was read

    @property
    def rejected_count(self) -> int:
        return len(self.rejected)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "source_hash": self.source_hash,
                "records": self.records, "added": self.added, "skipped": self.skipped,
                "duplicates": self.duplicates, "rejected_count": self.rejected_count,
                "rejected": [{"position": p, "reason": r} for p, r in self.rejected],
                "days": list(self.days), "already_ingested": self.already_ingested}


@dataclass(frozen=True)
class IngestReport:
    files: tuple[FileReport, ...]

    @property
    def added(self) -> int:
        return sum(f.added for f in self.files)

    @property
    def rejected(self) -> int:
        return sum(f.rejected_count for f in self.files)

    def to_json(self) -> dict[str, Any]:
        return {"added": self.added, "rejected": self.rejected, "files": [f.to_json() for f in self.files]}


# --- the mapping ------------------------------------------------------------------------------------------


class _Reject(Exception):
    """A record that cannot be mapped; the message is the reason."""


_MAPPED_FIELDS = tuple(LogFieldMap.model_fields)


def check_mapping(mapping: LogFieldMap) -> None:
    """Every mapping field is a valid path (non-blank dot-separated names) and no two name the same path."""
    seen: dict[str, str] = {}
    for name in _MAPPED_FIELDS:
        path = getattr(mapping, name)
        if not isinstance(path, str) or not path.strip() or any(not p.strip() for p in path.split(".")) \
                or path != path.strip():
            raise HarnessError(f"mapping field '{name}' = {path!r} is not a valid path",
                               hint="a field name or a dotted path into nested objects, e.g. 'meta.request_id'")
        if path in seen:
            raise HarnessError(f"mapping fields '{seen[path]}' and '{name}' both name the path {path!r}",
                               hint="map each field to its own path")
        seen[path] = name


@dataclass(frozen=True)
class _Compiled:
    paths: dict[str, tuple[str, tuple[str, ...]]]  # field -> (dotted, parts)
    consumed: frozenset[str]
    assume_utc: bool


def _compile(mapping: LogFieldMap, assume_utc: bool) -> _Compiled:
    paths = {name: (getattr(mapping, name), tuple(getattr(mapping, name).split("."))) for name in _MAPPED_FIELDS}
    return _Compiled(paths, frozenset(p for p, _ in paths.values()), assume_utc)


_MISSING = object()


def _get(obj: dict[str, Any], dotted: str, parts: tuple[str, ...]) -> Any:
    if dotted in obj:
        return obj[dotted]
    if len(parts) == 1:
        return _MISSING
    cur: Any = obj
    for p in parts:
        if not isinstance(cur, dict) or p not in cur:
            return _MISSING
        cur = cur[p]
    return cur


def _json_type(v: Any) -> str:
    t = type(v)
    if v is None:
        return "null"
    if t is str:
        return "string"
    if t is bool:
        return "boolean"
    if t is int:
        return "integer"
    if t is float:
        return "number"
    if t is list:
        return "array"
    if t is dict:
        return "object"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    import decimal

    if isinstance(v, decimal.Decimal):
        return "number"
    if isinstance(v, list | tuple):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "string"  # datetime, date, bytes from Parquet: JSON would carry them as strings


def _text(v: Any) -> str:
    t = type(v)
    if t is str:
        return v
    if t is bool:
        return "true" if v else "false"
    if t is int or t is float:
        return str(v)
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    if hasattr(v, "isoformat"):
        return str(v.isoformat())
    return scalar_text(v)


_KINDS: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array",
                           dict: "object", type(None): "null"}


def _walk(obj: dict[str, Any], prefix: str, consumed: frozenset[str], attrs: dict[str, str],
          fields: dict[str, str], keep: bool) -> None:
    kinds = _KINDS
    for k, v in obj.items():
        key = prefix + k if prefix else k
        kind = kinds.get(type(v)) or _json_type(v)
        fields[key] = kind
        if kind == "string":
            if keep and key not in consumed:
                attrs[key] = v
        elif kind == "object":
            _walk(v, key + ".", consumed, attrs, fields, keep and key not in consumed)
        elif kind != "null" and kind != "array" and keep and key not in consumed:
            attrs[key] = _text(v)


def _timestamp(v: Any, assume_utc: bool) -> datetime:
    if isinstance(v, str):
        try:
            ts = datetime.fromisoformat(v.strip())
        except ValueError:
            raise _Reject(f"timestamp {v[:60]!r} is not an ISO-8601 date and time") from None
    elif isinstance(v, datetime):
        ts = v
    elif isinstance(v, int | float) and not isinstance(v, bool):
        if not math.isfinite(v):
            raise _Reject("timestamp is not a finite number")
        seconds = v / 1000.0 if abs(v) >= _MS_THRESHOLD else float(v)
        try:
            return _EPOCH + timedelta(seconds=seconds)
        except OverflowError:
            raise _Reject(f"timestamp {v} is out of range (seconds or milliseconds since 1970)") from None
    else:
        raise _Reject(f"timestamp must be an ISO-8601 string or epoch seconds/milliseconds, not {_json_type(v)}")
    if ts.tzinfo is None or ts.utcoffset() is None:
        if not assume_utc:
            raise _Reject(f"timestamp {_text(v)!r} has no time zone (add Z or an offset, or pass --assume-utc)")
        return ts.replace(tzinfo=UTC)
    try:
        return ts.astimezone(UTC)
    except OverflowError:
        raise _Reject(f"timestamp {_text(v)!r} is out of range") from None


def _num(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _Reject(f"{what} must be a number, not {_json_type(v)}")
    x = float(v)
    if not math.isfinite(x):
        raise _Reject(f"{what} is not finite")
    return x


def _doc_id(v: Any, what: str) -> str:
    if isinstance(v, str) and v:
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    raise _Reject(f"{what} must be a non-empty string or an integer, not {_json_type(v)}")


_STR = {str}
_DICT = {dict}
_FLOAT = {float}


def _ranking(items: Any, what: str) -> tuple[list[str], list[float] | None]:
    if not isinstance(items, list):
        raise _Reject(f"'{what}' must be a list, not {_json_type(items)}")
    ids: list[str] = []
    scores: list[float] = []
    try:  # the common shapes at C speed: all ids, or all {doc_id: str, score: float}
        if not items:
            return [], None
        kinds = set(map(type, items))
        if kinds == _STR and all(items):
            return list(items), None
        if kinds == _DICT:
            ids = [x["doc_id"] for x in items]
            scores = [x["score"] for x in items]
            if set(map(type, ids)) == _STR and all(ids) and set(map(type, scores)) == _FLOAT \
                    and math.isfinite(math.fsum(scores)):
                return ids, scores
    except (TypeError, KeyError, OverflowError):
        pass
    ids = []
    scores = []
    with_score = 0
    for i, item in enumerate(items):
        if isinstance(item, dict):
            did = item.get("doc_id", item.get("id"))
            if did is None:
                raise _Reject(f"'{what}[{i}]' has no doc_id")
            ids.append(_doc_id(did, f"'{what}[{i}].doc_id'"))
            if item.get("score") is not None:
                scores.append(_num(item["score"], f"'{what}[{i}].score'"))
                with_score += 1
        else:
            ids.append(_doc_id(item, f"'{what}[{i}]'"))
    if with_score and with_score != len(ids):
        raise _Reject(f"'{what}': {with_score} of {len(ids)} items have a score (all or none)")
    return ids, (scores if with_score else None)


def map_record(value: Any, c: _Compiled, position: str) -> Mapped:
    """A user's record mapped onto the stored columns; raises _Reject with the reason."""
    if not isinstance(value, dict):
        raise _Reject(f"a record must be a JSON object, not {_json_type(value)}")
    p = c.paths
    ts_v = _get(value, *p["timestamp"])
    if ts_v is _MISSING or ts_v is None:
        raise _Reject(f"no timestamp (field '{p['timestamp'][0]}')")
    ts = _timestamp(ts_v, c.assume_utc)
    q = _get(value, *p["query"])
    if q is _MISSING or q is None:
        raise _Reject(f"no query (field '{p['query'][0]}')")
    if not isinstance(q, str):
        raise _Reject(f"'{p['query'][0]}' must be a string, not {_json_type(q)}")
    if not q.strip():
        raise _Reject(f"'{p['query'][0]}' is empty")
    rec = Mapped(None, ts, q)

    v = _get(value, *p["answer"])
    if v is not _MISSING and v is not None:
        if not isinstance(v, str):
            raise _Reject(f"'{p['answer'][0]}' must be a string, not {_json_type(v)}")
        rec.answer = v
    v = _get(value, *p["retrieved"])
    if v is not _MISSING and v is not None:
        rec.retrieved_ids, rec.retrieved_scores = _ranking(v, p["retrieved"][0])
    v = _get(value, *p["contexts"])
    if v is not _MISSING and v is not None:
        name = p["contexts"][0]
        if not isinstance(v, list):
            raise _Reject(f"'{name}' must be a list, not {_json_type(v)}")
        texts: list[str] = []
        objs = [x for x in v if isinstance(x, dict)]
        for i, x in enumerate(v):
            t = x.get("text") if isinstance(x, dict) else x
            if not isinstance(t, str):
                raise _Reject(f"'{name}[{i}]' must be a text or a {{text, doc_id, score}} object")
            texts.append(t)
        rec.contexts = texts
        if rec.retrieved_ids is None and objs and len(objs) == len(v) and all("doc_id" in x for x in objs):
            rec.retrieved_ids, rec.retrieved_scores = _ranking(v, name)
    v = _get(value, *p["latency"])
    if v is not _MISSING and v is not None:
        name = p["latency"][0]
        if isinstance(v, dict):
            lat: dict[str, float] = {}
            for stage, sec in v.items():
                x = _num(sec, f"'{name}.{stage}'")
                if x < 0:
                    raise _Reject(f"'{name}.{stage}' is negative")
                lat[stage] = x
            rec.latency = lat
        else:
            x = _num(v, f"'{name}'")
            if x < 0:
                raise _Reject(f"'{name}' is negative")
            rec.latency = {"total": x}
    v = _get(value, *p["error"])
    if v is not _MISSING and v is not None and v is not False and v != "":
        name = p["error"][0]
        if v is True:
            rec.error = "error"
        elif isinstance(v, str):
            rec.error = v
        elif isinstance(v, dict):
            kind = v.get("kind", v.get("type"))
            if kind is None:
                rec.error = "error"
            elif isinstance(kind, str) and kind:
                rec.error = kind
            else:
                raise _Reject(f"'{name}.kind' must be a non-empty string")
        else:
            raise _Reject(f"'{name}' must be a kind string or a {{kind, message}} object, not {_json_type(v)}")
    v = _get(value, *p["timeout"])
    if v is not _MISSING and v is not None:
        if not isinstance(v, bool):
            raise _Reject(f"'{p['timeout'][0]}' must be a boolean, not {_json_type(v)}")
        rec.timeout = v
    for col in ("manifest_id", "contract"):
        v = _get(value, *p[col])
        if v is not _MISSING and v is not None:
            if not isinstance(v, str):
                raise _Reject(f"'{p[col][0]}' must be a string, not {_json_type(v)}")
            setattr(rec, col, v)
    v = _get(value, *p["instructions"])
    if v is not _MISSING and v is not None:
        name = p["instructions"][0]
        if not isinstance(v, list) or not all(isinstance(x, dict) and isinstance(x.get("id"), str) for x in v):
            raise _Reject(f"'{name}' must be a list of {{id, kwargs}} objects")
        rec.instructions = canonical_json(v)
    attrs: dict[str, str] = {}
    fields: dict[str, str] = {}
    _walk(value, "", c.consumed, attrs, fields, True)
    rec.attrs = attrs
    rec.fields = fields
    v = _get(value, *p["record_id"])
    if v is not _MISSING and v is not None:
        rec.record_id = _doc_id(v, f"'{p['record_id'][0]}'")
    return rec


def content_id(rec: Mapped) -> str:
    """``sha256:`` and the hash of a record's mapped content (what identifies a record logged without an id)."""
    return "sha256:" + sha256_json([
        rec.ts.isoformat(), rec.query, rec.answer, rec.retrieved_ids, rec.retrieved_scores, rec.contexts,
        rec.latency, rec.error, rec.timeout, rec.manifest_id, rec.instructions, rec.contract, rec.attrs])


# --- the ledger -------------------------------------------------------------------------------------------

_LEDGER_SQL = """
CREATE TABLE IF NOT EXISTS files (
    source_hash TEXT PRIMARY KEY, path TEXT NOT NULL, format TEXT NOT NULL, ingested_at TEXT NOT NULL,
    records INTEGER NOT NULL, added INTEGER NOT NULL, skipped INTEGER NOT NULL, duplicates INTEGER NOT NULL,
    rejected INTEGER NOT NULL, days TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    record_id TEXT PRIMARY KEY, source_hash TEXT NOT NULL, day TEXT NOT NULL) WITHOUT ROWID;
"""


def open_ledger(layout: Layout, *, create: bool = True) -> sqlite3.Connection | None:
    """The ledger (None when it does not exist and ``create`` is false)."""
    path = ledger_path(layout)
    if not create and not path.is_file():
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=30, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.executescript(_LEDGER_SQL)
    except (OSError, sqlite3.Error) as exc:
        raise HarnessError(f"cannot open the log ledger {path}: {exc}",
                           hint="a damaged ledger can be removed together with the logs folder, then re-ingest"
                           ) from None
    return con


def committed_hashes(layout: Layout) -> set[str]:
    """The source hashes whose ingestion was committed (what the store may read)."""
    path = ledger_path(layout)
    if not path.is_file():
        return set()
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            return {row[0] for row in con.execute("SELECT source_hash FROM files")}
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise HarnessError(f"cannot read the log ledger {path}: {exc}") from None


def _known_ids(con: sqlite3.Connection, ids: list[str]) -> set[str]:
    known: set[str] = set()
    for i in range(0, len(ids), _LOOKUP_BATCH):
        batch = ids[i:i + _LOOKUP_BATCH]
        marks = ",".join("?" * len(batch))
        known.update(r[0] for r in con.execute(f"SELECT record_id FROM records WHERE record_id IN ({marks})", batch))
    return known


# --- writing one file -------------------------------------------------------------------------------------


def _interned(maps: list[dict[str, str]], kind: Any) -> Any:
    """A map column from dicts that mostly repeat (the fields' types, the segment attributes): each distinct
    dict converted once, then taken."""
    import pyarrow as pa

    index: dict[tuple[tuple[str, str], ...], int] = {}
    distinct: list[dict[str, str]] = []
    positions: list[int] = []
    for d in maps:
        key = tuple(d.items())
        i = index.get(key)
        if i is None:
            i = index[key] = len(distinct)
            distinct.append(d)
        positions.append(i)
    if len(distinct) * 2 > len(maps):  # mostly distinct: convert directly
        return pa.array(maps, kind)
    return pa.array(distinct, kind).take(pa.array(positions, pa.int32()))


class _Columns:
    """The accepted records of a chunk, column by column."""

    def __init__(self) -> None:
        self.rows: list[Mapped] = []
        self.ids: list[str] = []
        self.sources: list[str] = []

    def __len__(self) -> int:
        return len(self.rows)

    def table(self, now: datetime) -> Any:
        import pyarrow as pa

        rows = self.rows
        n = len(rows)
        cols = [
            pa.array(self.ids, pa.string()),
            pa.array([(r.ts - _EPOCH) // _US for r in rows], pa.int64()).cast(LOG_SCHEMA.field("ts").type),
            pa.array([r.query for r in rows], pa.string()),
            pa.array([r.answer for r in rows], pa.string()),
            pa.array([r.retrieved_ids for r in rows], LOG_SCHEMA.field("retrieved_ids").type),
            pa.array([r.retrieved_scores for r in rows], LOG_SCHEMA.field("retrieved_scores").type),
            pa.array([r.contexts for r in rows], LOG_SCHEMA.field("contexts").type),
            pa.array([r.latency for r in rows], LOG_SCHEMA.field("latency").type),
            pa.array([r.error for r in rows], pa.string()),
            pa.array([r.timeout for r in rows], pa.bool_()),
            pa.array([r.manifest_id for r in rows], pa.string()),
            pa.array([r.instructions for r in rows], pa.string()),
            pa.array([r.contract for r in rows], pa.string()),
            _interned([r.attrs for r in rows], LOG_SCHEMA.field("attrs").type),
            _interned([r.fields for r in rows], LOG_SCHEMA.field("fields").type),
            pa.array(self.sources, pa.string()),
            pa.array([(now - _EPOCH) // _US] * n, pa.int64()).cast(LOG_SCHEMA.field("ingested_at").type),
        ]
        return pa.Table.from_arrays(cols, schema=LOG_SCHEMA)


@dataclass
class _PartWriter:
    final: Path
    tmp: Path
    fh: Any
    writer: Any
    rows: int = 0


@dataclass
class _FileState:
    source: Source
    source_hash: str
    records: int = 0
    added: int = 0
    skipped: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    added_ids: list[tuple[str, str]] = field(default_factory=list)  # (record id, day)
    parts: dict[str, _PartWriter] = field(default_factory=dict)


@dataclass
class _Chunk:
    """Consecutive records of a file: the accepted ones as an Arrow table (in file order) with their ids,
    the rejected ones, and how many records it covers."""

    table: Any
    ids: list[str]
    rejected: list[Rejected]
    records: int


def _mapped(source: Source, compiled: _Compiled,
            items: Iterator[tuple[str, Any] | Rejected]) -> Iterator[tuple[str, Mapped] | Rejected]:
    for item in items:
        if isinstance(item, Rejected):
            yield item
            continue
        position, value = item
        if isinstance(value, Mapped):
            yield position, value
            continue
        try:
            yield position, map_record(value, compiled, position)
        except _Reject as exc:
            raw = None
            if source.format == "jsonl":
                try:
                    raw = json.dumps(value, ensure_ascii=False)
                except (TypeError, ValueError):
                    raw = None
            yield Rejected(position, str(exc), raw)


def _build(items: Iterator[tuple[str, Mapped] | Rejected], now: datetime, limit: int | None) -> _Chunk | None:
    """Up to ``limit`` records from ``items`` as one chunk (None: ``items`` is exhausted)."""
    cols = _Columns()
    rejected: list[Rejected] = []
    n = 0
    for item in items:
        n += 1
        if isinstance(item, Rejected):
            rejected.append(item)
        else:
            position, rec = item
            cols.rows.append(rec)
            cols.ids.append(rec.record_id if rec.record_id is not None else content_id(rec))
            cols.sources.append(position)
        if limit is not None and n >= limit:
            break
    if n == 0:
        return None
    return _Chunk(cols.table(now), cols.ids, rejected, n)


def _chunks_in_process(source: Source, mapping: LogFieldMap, compiled: _Compiled, now: datetime
                       ) -> Iterator[_Chunk]:
    items: Iterator[Any]
    if source.format == "otlp":
        items = iter_otlp(source, mapping)
    elif source.format == "parquet":
        items = iter_parquet(source)
    else:
        items = iter_jsonl(source)
    mapped = _mapped(source, compiled, items)
    while (chunk := _build(mapped, now, CHUNK)) is not None:
        yield chunk


def _worker_chunk(label: str, lines: list[tuple[int, int, bytes] | Rejected], mapping: LogFieldMap,
                  assume_utc: bool, now: datetime) -> tuple[bytes, list[str], list[Rejected], int]:
    """A worker process's share: JSONL lines decoded, mapped and built into Arrow (returned as IPC bytes)."""
    import pyarrow as pa

    source = Source(Path(label), label, "jsonl", 0)
    compiled = _compile(mapping, assume_utc)
    decoded = (x if isinstance(x, Rejected) else decode_line(label, *x) for x in lines)
    chunk = _build(_mapped(source, compiled, decoded), now, None)
    assert chunk is not None
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, chunk.table.schema) as writer:
        writer.write_table(chunk.table)
    return sink.getvalue().to_pybytes(), chunk.ids, chunk.rejected, chunk.records


PARALLEL_MIN_BYTES = 8 << 20
"""JSONL files at least this large are decoded and mapped by worker processes (see :func:`_workers`)."""
WORKER_CHUNK = 20_000


def _workers() -> int:
    """Worker processes for a large JSONL file: ``$HARNESS_INGEST_WORKERS`` if set (1: in process), else
    one per usable core, at most 2."""
    env = os.environ.get("HARNESS_INGEST_WORKERS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return int(env)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return min(cores, 2)


def _chunks_parallel(source: Source, mapping: LogFieldMap, assume_utc: bool, now: datetime,
                     workers: int) -> Iterator[_Chunk]:
    import multiprocessing
    from collections import deque
    from concurrent.futures import Future, ProcessPoolExecutor

    import pyarrow as pa

    ctx = multiprocessing.get_context("fork")  # forkserver/spawn re-import the caller's __main__
    pending: deque[Future[tuple[bytes, list[str], list[Rejected], int]]] = deque()

    def batches() -> Iterator[list[tuple[int, int, bytes] | Rejected]]:
        batch: list[tuple[int, int, bytes] | Rejected] = []
        for item in jsonl_lines(source):
            batch.append(item)
            if len(batch) >= WORKER_CHUNK:
                yield batch
                batch = []
        if batch:
            yield batch

    def done(fut: Future[tuple[bytes, list[str], list[Rejected], int]]) -> _Chunk:
        data, ids, rejected, n = fut.result()
        return _Chunk(pa.ipc.open_stream(data).read_all(), ids, rejected, n)

    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        try:
            for batch in batches():
                pending.append(pool.submit(_worker_chunk, source.label, batch, mapping, assume_utc, now))
                if len(pending) > 2 * workers:
                    yield done(pending.popleft())
            while pending:
                yield done(pending.popleft())
        finally:
            for fut in pending:
                fut.cancel()


def _chunks(source: Source, mapping: LogFieldMap, compiled: _Compiled, now: datetime) -> Iterator[_Chunk]:
    import multiprocessing

    workers = _workers() if "fork" in multiprocessing.get_all_start_methods() else 1
    if source.format == "jsonl" and source.size >= PARALLEL_MIN_BYTES and workers > 1:
        return _chunks_parallel(source, mapping, compiled.assume_utc, now, workers)
    return _chunks_in_process(source, mapping, compiled, now)


def _flush(state: _FileState, chunk: _Chunk, con: sqlite3.Connection, layout: Layout, ledger_empty: bool) -> None:
    """Write a chunk's new records (not seen earlier in the file, not in the ledger) to the file's day parts."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    state.records += chunk.records
    state.rejected.extend(chunk.rejected)
    if not chunk.ids:
        return
    seen = state.seen
    fresh: list[int] = []
    for i, rid in enumerate(chunk.ids):
        if rid in seen:
            state.duplicates += 1
        else:
            seen.add(rid)
            fresh.append(i)
    known = set() if ledger_empty or not fresh else _known_ids(con, [chunk.ids[i] for i in fresh])
    keep = [i for i in fresh if chunk.ids[i] not in known] if known else fresh
    state.skipped += len(fresh) - len(keep)
    if not keep:
        return
    table = chunk.table
    ids = chunk.ids
    if len(keep) != len(ids):
        table = table.take(pa.array(keep, pa.int64()))
        ids = [ids[i] for i in keep]
    day_numbers = pc.cast(table.column("ts"), pa.date32()).cast(pa.int32())
    numbers = day_numbers.to_pylist()
    names = {d: (_EPOCH + timedelta(days=d)).date().isoformat() for d in set(numbers)}
    state.added_ids.extend(zip(ids, (names[d] for d in numbers), strict=True))
    state.added += len(ids)
    if len(names) > 1:  # one stable sort by day, then each day is a slice (file order kept within a day)
        order = pc.array_sort_indices(day_numbers)
        table = table.take(order)
        numbers = sorted(numbers)
    start = 0
    for d in sorted(names):
        day = names[d]
        end = bisect.bisect_right(numbers, d, lo=start)
        part = state.parts.get(day)
        if part is None:
            folder = day_dir(layout, day)
            folder.mkdir(parents=True, exist_ok=True)
            final = folder / part_name(state.source_hash)
            tmp = folder / f".{final.name}.{os.getpid()}.tmp"
            fh = open(tmp, "wb")  # noqa: SIM115 - closed at commit or abort
            part = _PartWriter(final, tmp, fh, pq.ParquetWriter(fh, LOG_SCHEMA, compression="zstd"))
            state.parts[day] = part
        sub = table.slice(start, end - start)
        start = end
        part.writer.write_table(sub)
        part.rows += sub.num_rows


def _abort(state: _FileState) -> None:
    for part in state.parts.values():
        try:
            part.writer.close()
            part.fh.close()
        except Exception:
            pass
        part.tmp.unlink(missing_ok=True)


def _commit(state: _FileState, con: sqlite3.Connection, layout: Layout, now: datetime) -> None:
    for part in state.parts.values():
        part.writer.close()
        part.fh.flush()
        os.fsync(part.fh.fileno())
        part.fh.close()
    for part in state.parts.values():
        os.replace(part.tmp, part.final)
    name = part_name(state.source_hash)
    for stale in logs_dir(layout).glob(f"day=*/{name}"):  # a crashed earlier attempt's parts for other days
        if stale.parent.name.removeprefix("day=") not in state.parts:
            stale.unlink(missing_ok=True)
    rej = rejected_path(layout, state.source_hash)
    if state.rejected:
        atomic_write_text(rej, "".join(json.dumps({"position": r.position, "reason": r.reason, "raw": r.raw},
                                                  ensure_ascii=False) + "\n" for r in state.rejected))
    else:
        rej.unlink(missing_ok=True)
    days = sorted(state.parts)
    con.execute("BEGIN IMMEDIATE")
    try:
        con.executemany("INSERT OR IGNORE INTO records(record_id, source_hash, day) VALUES (?, ?, ?)",
                        ((rid, state.source_hash, day) for rid, day in state.added_ids))
        con.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (state.source_hash, state.source.label, state.source.format, now.isoformat(), state.records,
                     state.added, state.skipped, state.duplicates, len(state.rejected), json.dumps(days)))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _ingest_file(source: Source, source_hash: str, *, layout: Layout, mapping: LogFieldMap, compiled: _Compiled,
                 con: sqlite3.Connection, progress: Progress) -> FileReport:
    now = datetime.now(UTC)
    state = _FileState(source, source_hash)
    ledger_empty = con.execute("SELECT 1 FROM records LIMIT 1").fetchone() is None
    try:
        with progress.task(f"ingest {source.label}", total=source.rows or 0) as advance:
            for chunk in _chunks(source, mapping, compiled, now):
                _flush(state, chunk, con, layout, ledger_empty)
                advance(chunk.records)
        _commit(state, con, layout, now)
    except BaseException:
        _abort(state)
        raise
    return FileReport(source.label, source.format, source_hash, state.records, state.added, state.skipped,
                      state.duplicates, tuple((r.position, r.reason) for r in state.rejected),
                      tuple(sorted(state.parts)))


def _previous(source: Source, source_hash: str, con: sqlite3.Connection, layout: Layout) -> FileReport | None:
    """The report of a file whose content the ledger already holds: nothing added, every accepted record
    counted as skipped, its rejected lines read back from the rejected file."""
    row = con.execute("SELECT records, rejected FROM files WHERE source_hash = ?", (source_hash,)).fetchone()
    if row is None:
        return None
    records, n_rejected = int(row[0]), int(row[1])
    rejected: list[tuple[str, str]] = []
    rej = rejected_path(layout, source_hash)
    if n_rejected and rej.is_file():
        for line in rej.read_text("utf-8").splitlines():
            try:
                item = json.loads(line)
                rejected.append((str(item["position"]), str(item["reason"])))
            except (ValueError, KeyError, TypeError):
                continue
    return FileReport(source.label, source.format, source_hash, records, 0, records - len(rejected), 0,
                      tuple(rejected), (), already_ingested=True)


def source_hash(file_hash: str, fmt: str, mapping: LogFieldMap, assume_utc: bool) -> str:
    """The identity of one ingestion of a file: its content hash and what decides how it is read (format,
    mapping, --assume-utc). The same file read the same way adds nothing the second time; read with another
    mapping it is read again (records whose ids are stored are still skipped)."""
    return sha256_json({"file": file_hash, "format": fmt, "mapping": mapping.model_dump(mode="json"),
                        "assume_utc": assume_utc})


def prepare(paths: Sequence[Path], *, mapping: LogFieldMap, fmt: FormatChoice = "auto", assume_utc: bool = False,
            labels: Sequence[str] | None = None) -> list[tuple[Source, str]]:
    """Check every input before anything is written: the mapping's paths, each file (exists, readable, in
    its format; a Parquet file has the timestamp and query columns). Returns (source, source hash) pairs
    (:func:`source_hash`)."""
    check_mapping(mapping)
    out: list[tuple[Source, str]] = []
    for i, path in enumerate(paths):
        label = labels[i] if labels is not None else str(path)
        source = open_source(Path(path), fmt, label)
        if source.format == "parquet":
            names = set(parquet_columns(source))
            for name in ("timestamp", "query"):
                dotted = getattr(mapping, name)
                if dotted not in names and dotted.split(".")[0] not in names:
                    raise InputError(label, f"no column '{dotted.split('.')[0]}' for the mapping's {name} "
                                            f"(= {dotted!r}); columns: {', '.join(sorted(names))}",
                                     field=name, hint=f"map it with --map {name}=COLUMN")
        try:
            digest = sha256_file(source.path)
        except OSError as exc:
            raise InputError(label, f"cannot read: {exc.strerror or exc}") from None
        out.append((source, source_hash(digest, source.format, mapping, assume_utc)))
    return out


def ingest(paths: Sequence[Path], *, layout: Layout, mapping: LogFieldMap, fmt: FormatChoice = "auto",
           assume_utc: bool = False, progress: Progress = NULL_PROGRESS,
           labels: Sequence[str] | None = None,
           on_file: Callable[[FileReport], None] | None = None) -> IngestReport:
    """Ingest log files into the project's store (see the module docstring). Every input is checked first
    (HarnessError, exit 2, before anything is written); then each file is ingested and committed on its
    own. ``labels`` name the files in positions and reports (default: the paths as given)."""
    sources = prepare(paths, mapping=mapping, fmt=fmt, assume_utc=assume_utc, labels=labels)
    check_writable(ledger_path(layout))
    compiled = _compile(mapping, assume_utc)
    con = open_ledger(layout)
    assert con is not None
    reports: list[FileReport] = []
    try:
        for source, digest in sources:
            report = _previous(source, digest, con, layout)
            if report is None:
                report = _ingest_file(source, digest, layout=layout, mapping=mapping, compiled=compiled, con=con,
                                      progress=progress)
            reports.append(report)
            if on_file is not None:
                on_file(report)
    finally:
        con.close()
    return IngestReport(tuple(reports))
