"""``read_records(log=FILE, columns=...)`` keeps only the columns asked for (and what ordering, deduplication
and the query's filter read) as each chunk of the file is mapped: the same rows and values as reading every
column and selecting afterwards, without holding the answers and passages of the whole file."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from harness.manifest import load_manifest
from harness.shadow.logs import LogQuery, read_log_file, read_records
from harness.storage import Layout
from harness.testing.shadow import StreamSpec, logged_traffic, write_shadow_project
from harness.types import MonitorConfig

SPEC = StreamSpec(days=2, records_per_day=150)


def test_asked_columns_only_and_the_same_rows(tmp_path: Path) -> None:
    project = write_shadow_project(tmp_path / "p", base_url="http://127.0.0.1:9", spec=SPEC, n_distractors=5)
    loaded = load_manifest(project.baseline)
    mapping = (loaded.manifest.monitor or MonitorConfig()).mapping
    log = logged_traffic(SPEC, tmp_path / "log.jsonl", manifest_id=loaded.id)
    whole = read_log_file(log, mapping)
    assert whole.num_rows > 100 and whole.column("contexts").null_count < whole.num_rows  # passages logged
    layout = Layout.for_manifest(loaded.path)
    times = whole.column("ts").to_pylist()
    segment_key = next(k for m in whole.column("attrs").to_pylist() if m for k, _ in m)
    segment_value = next(v for m in whole.column("attrs").to_pylist() if m for k, v in m if k == segment_key)
    queries = [LogQuery(), LogQuery(since=times[len(times) // 3], until=times[2 * len(times) // 3]),
               LogQuery(segment=(segment_key, segment_value))]
    for query in queries:
        for columns in (["query"], ["record_id", "query", "contract", "instructions", "attrs", "source"]):
            narrow = read_log_file(log, mapping, columns=columns)
            assert "contexts" not in narrow.column_names and "answer" not in narrow.column_names
            got = read_records(layout, mapping, query, log=log, columns=columns)
            full = read_records(layout, mapping, query, log=log)
            assert got.column_names == columns and 0 < got.num_rows == full.num_rows
            assert got.equals(full.select(columns)), (query, columns)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert read_log_file(empty, mapping, columns=["query"]).schema.names == ["record_id", "ts", "query",
                                                                            "manifest_id", "attrs"]
    assert isinstance(read_log_file(empty, mapping), pa.Table)
