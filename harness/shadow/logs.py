"""Logged production records for the release checks (``harness replay``, ``canary``, ``incident``).

Records come from the project's ingested store (``harness ingest``; the default) or, with ``--log FILE``,
from one log file read in memory through the same readers and mapping as ``harness ingest`` (JSONL,
Parquet, OTLP JSON), without storing it. Either way they arrive as a table of
:data:`~harness.monitor.schema.LOG_SCHEMA` columns, ordered by time then id, filtered to a window
(``since <= ts < until``), a segment (``key=value`` on the records' attributes) and manifest ids.

A log file is input like any other: a line that cannot be mapped is bad input (exit 2, its file:line),
checked before anything runs or is written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from harness.errors import HarnessError
from harness.monitor.schema import LOG_SCHEMA
from harness.storage import Layout
from harness.types import LogFieldMap

_RELATIVE = re.compile(r"^now(?:-(\d+(?:\.\d+)?)([smhdw]))?$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str, what: str, tz: ZoneInfo | None = None, *, now: datetime | None = None) -> datetime:
    """A point in time from a flag: an ISO date (its midnight) or date-time (``2026-11-20T14:00``, with or
    without an offset; without one it is in ``tz``, default UTC), or ``now`` / ``now-6h`` (s, m, h, d, w)."""
    tz = tz or ZoneInfo("UTC")
    text = text.strip()
    rel = _RELATIVE.match(text)
    if rel:
        base = now or datetime.now(UTC)
        if rel.group(1) is None:
            return base
        return base - timedelta(seconds=float(rel.group(1)) * _UNITS[rel.group(2)])
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise HarnessError(f"{what}: {text!r} is not a time",
                           hint="use an ISO date or date-time (2026-11-20, 2026-11-20T14:00Z) or now-6h") from None
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=tz)
    return value


def parse_segment(text: str, what: str = "--segment") -> tuple[str, str]:
    """``key=value`` (a record attribute and its value)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise HarnessError(f"{what}: {text!r} is not key=value", hint="for example --segment geo=eu")
    return key.strip(), value.strip()


@dataclass(frozen=True)
class LogQuery:
    """Which stored records a check reads: a window (either bound may be None), one segment, manifest ids."""

    since: datetime | None = None
    until: datetime | None = None
    segment: tuple[str, str] | None = None
    manifest_ids: tuple[str, ...] | None = None

    def describe(self) -> str:
        parts = []
        if self.since is not None or self.until is not None:
            lo = self.since.isoformat() if self.since else "the first record"
            hi = self.until.isoformat() if self.until else "the last record"
            parts.append(f"{lo} .. {hi}")
        if self.segment is not None:
            parts.append(f"{self.segment[0]}={self.segment[1]}")
        if self.manifest_ids is not None:
            parts.append("manifest " + ", ".join(i[:12] for i in self.manifest_ids))
        return "; ".join(parts) or "every record"


_SELECTED_BY = ("record_id", "ts", "manifest_id", "attrs")  # what ordering, deduplication and LogQuery read


def read_log_file(path: Path, mapping: LogFieldMap, *, fmt: str = "auto", assume_utc: bool = False,
                  label: str | None = None, columns: Sequence[str] | None = None) -> pa.Table:
    """Every record of one log file as a :data:`LOG_SCHEMA` table (time, then id order; a record id seen
    twice is kept once). A record that cannot be mapped raises :class:`InputError` at its position.
    ``columns``: keep only those (and what ordering and a :class:`LogQuery` read) as each chunk is mapped, so
    the texts a check does not read (answers, passages) are never held for the whole file."""
    from harness.monitor.ingest import _chunks_in_process, _compile, prepare

    ((source, _digest),) = prepare([path], mapping=mapping, fmt=fmt, assume_utc=assume_utc,  # type: ignore[arg-type]
                                   labels=[label or str(path)])
    compiled = _compile(mapping, assume_utc)
    now = datetime.now(UTC)
    tables: list[pa.Table] = []
    schema = LOG_SCHEMA if columns is None else pa.schema(
        [f for f in LOG_SCHEMA if f.name in {*columns, *_SELECTED_BY}])
    for chunk in _chunks_in_process(source, mapping, compiled, now):
        if chunk.rejected:
            first = chunk.rejected[0]
            more = f" (and {len(chunk.rejected) - 1} more)" if len(chunk.rejected) > 1 else ""
            raise HarnessError(f"{first.position}: {first.reason}{more}",
                               hint="fix the line, or ingest the file (harness ingest keeps the rest) and "
                               "drop --log")
        tables.append(chunk.table.select(schema.names))
    if not tables:
        return schema.empty_table()
    table = pa.concat_tables(tables).cast(schema)
    return _first_of_each_id(table.sort_by([("ts", "ascending"), ("record_id", "ascending")]))


DUPLICATES_KEY = b"harness.duplicate_ids"
"""Schema metadata of a table read from a log file: how many records repeated an earlier record's id and
were left out (as ``harness ingest`` leaves them out of the store). :func:`duplicates_dropped` reads it."""


def _first_of_each_id(table: pa.Table) -> pa.Table:
    ids = table["record_id"].to_pylist()
    seen: set[str] = set()
    keep = []
    for i, rid in enumerate(ids):
        if rid not in seen:
            seen.add(rid)
            keep.append(i)
    out = table if len(keep) == len(ids) else table.take(pa.array(keep, pa.int64()))
    return out.replace_schema_metadata({DUPLICATES_KEY: str(len(ids) - len(keep)).encode()})


def duplicates_dropped(table: pa.Table) -> int:
    """How many records of the log file behind ``table`` repeated an id and were dropped (0 for the store,
    which never stores an id twice)."""
    meta = table.schema.metadata or {}
    return int(meta.get(DUPLICATES_KEY, b"0"))


def _filter(table: pa.Table, query: LogQuery) -> pa.Table:
    mask = None

    def both(m: pa.ChunkedArray | pa.Array) -> None:
        nonlocal mask
        mask = m if mask is None else pc.and_(mask, m)

    if query.since is not None:
        both(pc.greater_equal(table["ts"], pa.scalar(query.since.astimezone(UTC), LOG_SCHEMA.field("ts").type)))
    if query.until is not None:
        both(pc.less(table["ts"], pa.scalar(query.until.astimezone(UTC), LOG_SCHEMA.field("ts").type)))
    if query.segment is not None:
        both(pc.equal(attribute(table, query.segment[0]), query.segment[1]))
    if query.manifest_ids is not None:
        both(pc.is_in(table["manifest_id"], value_set=pa.array(list(query.manifest_ids), pa.string())))
    if mask is None:
        return table
    return table.filter(pc.fill_null(mask, False))


def attribute(table: pa.Table, key: str) -> pa.Array:
    """One attribute's value per record (null where the record lacks it)."""
    arr = table["attrs"].combine_chunks()
    if len(arr) == 0:
        return pa.array([], pa.string())
    return pc.map_lookup(arr, pa.scalar(key, pa.string()), "first")


def read_records(layout: Layout, mapping: LogFieldMap, query: LogQuery, *, log: Path | None = None,
                 columns: Sequence[str] | None = None, fmt: str = "auto", assume_utc: bool = False) -> pa.Table:
    """The records a release check reads (see the module docstring), as :data:`LOG_SCHEMA` columns (all, or
    ``columns``). With no ``log`` they are the project's stored records; a project with none is an error
    that says how to add some."""
    if log is not None:
        table = _filter(read_log_file(log, mapping, fmt=fmt, assume_utc=assume_utc, columns=columns), query)
        return table.select(list(columns)) if columns is not None else table
    from harness.monitor.store import LogStore

    store = LogStore(layout)
    if not store.parts():
        raise HarnessError(f"no production records in {store.root}",
                           hint="ingest logs first (harness ingest FILE), or pass --log FILE")
    where: list[str] = []
    if query.segment is not None:
        key, value = query.segment
        where.append(f"attrs[{_sql(key)}] = {_sql(value)}")
    if query.manifest_ids is not None:
        where.append("manifest_id IN (" + ", ".join(_sql(i) for i in query.manifest_ids) + ")")
    return store.read(query.since, query.until, columns, " AND ".join(where) or None)


def _sql(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
