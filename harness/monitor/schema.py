"""The stored production record: one Arrow schema for every log the project ingests.

``harness ingest`` maps each user record (JSONL, Parquet, OTLP JSON spans) onto these columns once, at the
edge; everything downstream (signals, windows, contracts, SLOs, coverage) reads only these columns. The
store is Parquet partitioned by day (``<home>/logs/day=YYYY-MM-DD/part-<source hash>.parquet``, the hash of the
source's content, format and mapping), queried
with DuckDB; ``day`` is the partition key (the event's UTC date), not a column of the files.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from harness.storage import Layout

LOG_SCHEMA = pa.schema([
    pa.field("record_id", pa.string(), nullable=False),  # the user's id, else "sha256:" of the mapped content
    pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),  # the event time
    pa.field("query", pa.string(), nullable=False),
    pa.field("answer", pa.string()),  # null: not logged
    pa.field("retrieved_ids", pa.list_(pa.string())),  # null: no ranking logged; best first
    pa.field("retrieved_scores", pa.list_(pa.float64())),  # null: ids without scores
    pa.field("contexts", pa.list_(pa.string())),  # passage texts shown to the generator
    pa.field("latency", pa.map_(pa.string(), pa.float64())),  # stage -> seconds, as logged (OTLP: total = root span)
    pa.field("error", pa.string()),  # the app's error kind; null: none
    pa.field("timeout", pa.bool_(), nullable=False),
    pa.field("manifest_id", pa.string()),  # the manifest that served the record
    pa.field("instructions", pa.string()),  # JSON [{id, kwargs}] or null
    pa.field("contract", pa.string()),  # the output contract's name or null
    pa.field("attrs", pa.map_(pa.string(), pa.string())),  # the other scalar fields, as text: segment keys
    pa.field("fields", pa.map_(pa.string(), pa.string())),  # source field (dotted) -> JSON type ("null" if null)
    pa.field("source", pa.string(), nullable=False),  # "file:line" (or "file:row N", "file:trace <id>")
    pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
])
"""The columns of every stored log part file, in order."""

JSON_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")
"""The values of the ``fields`` map: a source field's JSON type in that record (data contracts compare them)."""


def logs_dir(layout: Layout) -> Path:
    """Where the project's ingested logs live: ``<home>/logs``."""
    return layout.home / "logs"


def day_dir(layout: Layout, day: str) -> Path:
    return logs_dir(layout) / f"day={day}"


def signals_dir(layout: Layout) -> Path:
    """Per-record signals, cached per log part file and signal-set identity: ``<home>/logs/signals``."""
    return logs_dir(layout) / "signals"
