"""The project's ingested logs: day-partitioned Parquet read with DuckDB (in process, no server).

The store is ``<home>/logs/day=YYYY-MM-DD/part-<source hash[:16]>.parquet``. A part is visible once the
ingestion of its source file was committed to the ledger (``logs/ledger.sqlite``, see
:mod:`harness.monitor.ingest`): parts of an ingestion that crashed before its commit are never read, and
the re-run rewrites them. DuckDB is imported only when a query runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC as _UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from harness.errors import HarnessError
from harness.monitor.schema import LOG_SCHEMA, day_dir, logs_dir
from harness.storage import Layout


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class LogStore:
    """Read the ingested logs of a project."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.root = logs_dir(layout)

    def _committed_prefixes(self) -> set[str]:
        from harness.monitor.ingest import committed_hashes

        return {h[:16] for h in committed_hashes(self.layout)}

    def _visible(self, files: Iterable[Path], prefixes: set[str]) -> list[Path]:
        return sorted(p for p in files if p.name.startswith("part-") and p.name.endswith(".parquet")
                      and p.name[len("part-"):-len(".parquet")] in prefixes)

    def days(self) -> list[str]:
        """The days (UTC dates, ``YYYY-MM-DD``) holding at least one visible part, oldest first."""
        return sorted({p.parent.name.removeprefix("day=") for p in self.parts()})

    def parts(self, days: Iterable[str] | None = None) -> list[Path]:
        """The visible part files, of the given days only when ``days`` is given, in (day, name) order."""
        if not self.root.is_dir():
            return []
        prefixes = self._committed_prefixes()
        if not prefixes:
            return []
        if days is None:
            files: list[Path] = list(self.root.glob("day=*/part-*.parquet"))
        else:
            files = [p for d in days for p in day_dir(self.layout, d).glob("part-*.parquet")]
        return self._visible(files, prefixes)

    def count(self) -> int:
        """The number of stored records (from the parts' Parquet footers, no scan)."""
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(p).metadata.num_rows for p in self.parts())

    def read(self, start: datetime | None = None, end: datetime | None = None,
             columns: Sequence[str] | None = None, where: str | None = None) -> pa.Table:
        """The stored records with ``start <= ts < end`` (either bound may be None), the given columns of
        :data:`LOG_SCHEMA` (default: all) and, with ``where``, a DuckDB SQL condition over the columns
        (``"attrs['geo'] = 'eu'"``; the partition column ``day`` may be used too). Ordered by ``ts`` then
        ``record_id``. An empty store gives an empty table of the schema."""
        names = list(columns) if columns is not None else list(LOG_SCHEMA.names)
        unknown = [c for c in names if c not in LOG_SCHEMA.names]
        if unknown:
            raise HarnessError(f"unknown log column(s): {', '.join(unknown)}",
                               hint=f"the columns are {', '.join(LOG_SCHEMA.names)}")
        schema = pa.schema([LOG_SCHEMA.field(c) for c in names])
        for bound, label in ((start, "start"), (end, "end")):
            if bound is not None and (bound.tzinfo is None or bound.utcoffset() is None):
                raise HarnessError(f"the window's {label} {bound.isoformat()} has no time zone")
        days = None
        if start is not None or end is not None:
            known = self.days()
            lo = start.astimezone(_UTC).date().isoformat() if start is not None else None
            hi = end.astimezone(_UTC).date().isoformat() if end is not None else None
            days = [d for d in known if (lo is None or d >= lo) and (hi is None or d <= hi)]
        files = self.parts(days)
        if not files:
            return schema.empty_table()
        import duckdb

        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            listing = "[" + ", ".join(_sql_str(str(f)) for f in files) + "]"
            conds: list[str] = []
            params: list[Any] = []
            if start is not None:
                conds.append("ts >= ?")
                params.append(start.astimezone(_UTC))
            if end is not None:
                conds.append("ts < ?")
                params.append(end.astimezone(_UTC))
            if where:
                conds.append(f"({where})")
            sql = (f"SELECT {', '.join(_quote(c) for c in names)} FROM read_parquet({listing}, "
                   f"hive_partitioning = true)" + (f" WHERE {' AND '.join(conds)}" if conds else "")
                   + " ORDER BY ts, record_id")
            try:
                rel = con.sql(sql, params=params)
                # duckdb 2 names it to_arrow_table; 1.x fetch_arrow_table
                table = rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.fetch_arrow_table()
            except duckdb.Error as exc:
                raise HarnessError(f"cannot read the logs: {' '.join(str(exc).split())}") from None
        finally:
            con.close()
        return _conform(table, schema)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """DuckDB's Arrow types (large strings, a session-zone timestamp) cast back to the stored schema."""
    arrays = []
    for f in schema:
        col = table.column(f.name)
        arrays.append(col if col.type == f.type else col.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=schema)
