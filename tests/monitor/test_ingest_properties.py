"""Damaged JSONL logs never crash ingestion: every line is either stored or rejected with its line number,
and the counts add up (generated with hypothesis)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import harness.monitor.ingest as ing
from harness.monitor.store import LogStore
from harness.storage import Layout
from harness.types import LogFieldMap

GOOD = {"id": "x", "timestamp": "2026-03-01T12:00:00Z", "query": "q", "retrieved": [{"doc_id": "d", "score": 1.0}],
        "latency_s": {"retrieve": 0.1}, "error": None, "geo": "eu"}

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3), max_leaves=8)


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["good", "field", "bytes", "cut", "value"]))
    i = draw(st.integers(0, 10**6))
    if kind == "good":
        return json.dumps({**GOOD, "id": f"g{i}"}).encode()
    if kind == "field":  # a real record with one field replaced by anything
        key = draw(st.sampled_from(sorted(GOOD)))
        return json.dumps({**GOOD, "id": f"f{i}", key: draw(json_values)}).encode()
    if kind == "cut":
        text = json.dumps({**GOOD, "id": f"c{i}"}).encode()
        return text[: draw(st.integers(0, len(text)))]
    if kind == "value":
        return json.dumps(draw(json_values)).encode()
    return draw(st.binary(max_size=40)).replace(b"\n", b" ").replace(b"\r", b" ")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw_lines=st.lists(lines(), min_size=1, max_size=12))
def test_damaged_lines_are_stored_or_rejected_never_a_crash(raw_lines: list[bytes],
                                                            tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = Path(tempfile.mkdtemp(prefix="case-", dir=tmp_path_factory.getbasetemp()))
    try:
        log = folder / "log.jsonl"
        log.write_bytes(b"\n".join(raw_lines) + b"\n")
        layout = Layout(folder / ".harness")
        report = ing.ingest([log], layout=layout, mapping=LogFieldMap())  # any exception fails the test
        f = report.files[0]
        bom = b"\xef\xbb\xbf"
        nonblank = [n for n, raw in enumerate(raw_lines, start=1)
                    if (raw[len(bom):] if n == 1 and raw.startswith(bom) else raw).strip()]
        assert f.records == f.added + f.skipped + f.duplicates + f.rejected_count
        rejected = {int(p.rsplit(":", 1)[1]) for p, _ in f.rejected}
        stored = LogStore(layout).read(columns=["record_id", "source"]).to_pylist()
        stored_lines = {int(r["source"].rsplit(":", 1)[1]) for r in stored}
        assert len(stored) == f.added
        assert not rejected & stored_lines
        # every non-blank line is a record: stored, rejected (with its line number) or a duplicate id
        assert rejected | stored_lines <= set(nonblank)
        assert len(rejected) + len(stored_lines) + f.duplicates == len(nonblank) == f.records
    finally:
        shutil.rmtree(folder, ignore_errors=True)
