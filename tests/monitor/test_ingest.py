"""`harness ingest`: JSONL and Parquet logs into the day-partitioned store, read back column by column;
idempotent (a file twice, overlapping files), rejected lines reported with file:line while the rest is
stored, atomic per file, and the command's exit codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import harness.monitor.ingest as ing
from harness.errors import HarnessError, InputError
from harness.hashing import sha256_file
from harness.monitor.schema import LOG_SCHEMA
from harness.monitor.store import LogStore
from harness.storage import Layout
from harness.types import LogFieldMap
from tests.conftest import make_project
from tests.reliability.clirun import cli_in_process

T0 = datetime(2026, 3, 1, 22, 30, tzinfo=UTC)


def _records(n: int, start: int = 0) -> list[dict[str, Any]]:
    out = []
    for i in range(start, start + n):
        out.append({
            "id": f"r{i}",
            "timestamp": (T0 + timedelta(hours=i)).isoformat().replace("+00:00", "Z"),
            "query": f"question {i}",
            "answer": f"answer {i}" if i % 3 else None,
            "retrieved": [{"doc_id": f"d{i}", "score": 0.5}, {"doc_id": f"d{i + 1}", "score": 0.25}],
            "contexts": [f"ctx {i}", f"ctx {i + 1}"],
            "latency_s": {"retrieve": 0.125, "generate": 1.5} if i % 2 else 2.0,
            "error": None if i % 4 else {"kind": "rate_limit", "message": "slow down"},
            "timeout": i % 5 == 0,
            "manifest_id": "m1",
            "geo": "eu" if i % 2 else "us",
            "client": {"device": "mobile", "version": 3},
        })
    return out


def _write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _expected(rec: dict[str, Any], source: str) -> dict[str, Any]:
    """The stored row, computed by hand from the mapping rules."""
    lat = rec["latency_s"]
    fields = {"id": "string", "timestamp": "string", "query": "string",
              "answer": "null" if rec["answer"] is None else "string", "retrieved": "array", "contexts": "array",
              "latency_s": "object" if isinstance(lat, dict) else "number",
              "error": "null" if rec["error"] is None else "object", "timeout": "boolean",
              "manifest_id": "string", "geo": "string", "client": "object", "client.device": "string",
              "client.version": "integer"}
    if isinstance(lat, dict):
        fields.update({"latency_s.retrieve": "number", "latency_s.generate": "number"})
    if rec["error"] is not None:
        fields.update({"error.kind": "string", "error.message": "string"})
    return {
        "record_id": rec["id"],
        "ts": datetime.fromisoformat(rec["timestamp"]),
        "query": rec["query"],
        "answer": rec["answer"],
        "retrieved_ids": [d["doc_id"] for d in rec["retrieved"]],
        "retrieved_scores": [d["score"] for d in rec["retrieved"]],
        "contexts": rec["contexts"],
        "latency": sorted((lat if isinstance(lat, dict) else {"total": lat}).items()),
        "error": None if rec["error"] is None else rec["error"]["kind"],
        "timeout": rec["timeout"],
        "manifest_id": "m1",
        "instructions": None,
        "contract": None,
        "attrs": sorted({"geo": rec["geo"], "client.device": "mobile", "client.version": "3"}.items()),
        "fields": sorted(fields.items()),
        "source": source,
    }


def _stored(table: pa.Table) -> list[dict[str, Any]]:
    rows = table.to_pylist()
    for r in rows:
        for k in ("latency", "attrs", "fields"):
            r[k] = sorted(r[k]) if r[k] is not None else None
    return rows


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / ".harness", project=tmp_path)


def test_jsonl_round_trip_every_column(tmp_path: Path, layout: Layout) -> None:
    recs = _records(30)
    log = _write_jsonl(tmp_path / "logs" / "a.jsonl", recs)
    before = datetime.now(UTC)
    report = ing.ingest([log], layout=layout, mapping=LogFieldMap())
    f = report.files[0]
    assert (f.records, f.added, f.skipped, f.duplicates, f.rejected_count) == (30, 30, 0, 0, 0)
    table = LogStore(layout).read()
    assert table.schema.equals(LOG_SCHEMA)
    rows = _stored(table)
    assert len(rows) == 30
    for i, (rec, row) in enumerate(zip(recs, rows, strict=True)):
        ingested = row.pop("ingested_at")
        assert before <= ingested <= datetime.now(UTC)
        assert row == _expected(rec, f"{log}:{i + 1}")
    # partitioned by the event's UTC day: 30 hours from 22:30 on March 1 touch three days
    days = sorted({(T0 + timedelta(hours=i)).date().isoformat() for i in range(30)})
    assert LogStore(layout).days() == days == list(f.days)
    assert [p.parent.name for p in LogStore(layout).parts()] == [f"day={d}" for d in days]
    digest = ing.source_hash(sha256_file(log), "jsonl", LogFieldMap(), False)
    assert f.source_hash == digest
    assert all(p.name == f"part-{digest[:16]}.parquet" for p in LogStore(layout).parts())
    assert LogStore(layout).count() == 30


def test_read_window_columns_and_where(tmp_path: Path, layout: Layout) -> None:
    log = _write_jsonl(tmp_path / "a.jsonl", _records(30))
    ing.ingest([log], layout=layout, mapping=LogFieldMap())
    store = LogStore(layout)
    start, end = T0 + timedelta(hours=5), T0 + timedelta(hours=9)
    t = store.read(start, end, columns=["record_id", "ts"])
    assert t.column_names == ["record_id", "ts"]
    assert t.column("record_id").to_pylist() == ["r5", "r6", "r7", "r8"]  # half-open: r9 is at `end`
    eu = store.read(where="attrs['geo'] = 'eu'", columns=["record_id"]).column("record_id").to_pylist()
    assert eu == [f"r{i}" for i in range(30) if i % 2]
    with pytest.raises(HarnessError, match="no time zone"):
        store.read(datetime(2026, 3, 1))
    with pytest.raises(HarnessError, match="unknown log column"):
        store.read(columns=["nope"])


def test_empty_store_reads_an_empty_table(layout: Layout) -> None:
    store = LogStore(layout)
    assert store.days() == [] and store.parts() == [] and store.count() == 0
    t = store.read()
    assert t.num_rows == 0 and t.schema.equals(LOG_SCHEMA)


def test_parquet_round_trip_and_row_positions(tmp_path: Path, layout: Layout) -> None:
    recs = _records(12)
    table = pa.Table.from_pylist([{k: v for k, v in r.items() if k not in ("latency_s", "error")}
                                  | {"latency_s": float(i), "error": None if i % 4 else "boom"}
                                  for i, r in enumerate(recs)])
    path = tmp_path / "logs.parquet"
    pq.write_table(table, path)
    report = ing.ingest([path], layout=layout, mapping=LogFieldMap())
    assert report.files[0].format == "parquet" and report.files[0].added == 12
    rows = _stored(LogStore(layout).read())
    for i, (rec, row) in enumerate(zip(recs, rows, strict=True)):
        row.pop("ingested_at")
        want = _expected(rec | {"latency_s": float(i), "error": None}, f"{path}:row {i + 1}")
        want["error"] = None if i % 4 else "boom"
        want["fields"] = sorted((dict(want["fields"]) | {"error": "null" if i % 4 else "string"}).items())
        # Parquet struct columns carry every key in every row: answer is null, not absent, the same as JSONL
        assert row == want


def test_parquet_without_the_query_column_is_exit_2_before_anything(tmp_path: Path, layout: Layout) -> None:
    good = _write_jsonl(tmp_path / "good.jsonl", _records(3))
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"timestamp": ["2026-03-01T00:00:00Z"], "text": ["q"]}), bad)
    with pytest.raises(InputError, match=r"bad\.parquet: field 'query': no column 'query'"):
        ing.ingest([good, bad], layout=layout, mapping=LogFieldMap())
    assert not (layout.home / "logs").exists()  # the good file was not written either
    report = ing.ingest([bad], layout=layout, mapping=LogFieldMap(query="text"))
    assert report.files[0].added == 1


@pytest.mark.parametrize("make", ["missing", "not parquet", "bad path"])
def test_file_level_problems_write_nothing_for_any_file(tmp_path: Path, layout: Layout, make: str) -> None:
    good = _write_jsonl(tmp_path / "good.jsonl", _records(3))
    mapping = LogFieldMap()
    paths = [good]
    if make == "missing":
        paths.append(tmp_path / "nope.jsonl")
        match = "nope.jsonl: no such log file"
    elif make == "not parquet":
        (tmp_path / "x.parquet").write_text("hello")
        paths.append(tmp_path / "x.parquet")
        match = "not a readable Parquet file"
    else:
        mapping = LogFieldMap(query="request..text")
        match = "mapping field 'query' = 'request..text' is not a valid path"
    with pytest.raises(HarnessError, match=match):
        ing.ingest(paths, layout=layout, mapping=mapping)
    assert not (layout.home / "logs").exists()


def test_ingest_twice_adds_nothing_and_overlaps_are_skipped(tmp_path: Path, layout: Layout) -> None:
    a = _write_jsonl(tmp_path / "a.jsonl", _records(20))
    first = ing.ingest([a], layout=layout, mapping=LogFieldMap()).files[0]
    again = ing.ingest([a], layout=layout, mapping=LogFieldMap()).files[0]
    assert first.added == 20 and again.added == 0 and again.already_ingested and again.skipped == 20
    # an overlapping file (r10..r29): the 10 shared ids are skipped, the 10 new ones added
    b = _write_jsonl(tmp_path / "b.jsonl", _records(20, start=10))
    over = ing.ingest([b], layout=layout, mapping=LogFieldMap()).files[0]
    assert (over.records, over.added, over.skipped) == (20, 10, 10)
    ids = LogStore(layout).read(columns=["record_id"]).column("record_id").to_pylist()
    assert sorted(ids) == sorted(f"r{i}" for i in range(30)) and len(ids) == 30


def test_duplicates_inside_a_file_and_content_ids(tmp_path: Path, layout: Layout) -> None:
    recs = [{k: v for k, v in r.items() if k != "id"} for r in _records(4)]
    log = _write_jsonl(tmp_path / "a.jsonl", [recs[0], recs[1], recs[0], recs[2], {**_records(1)[0], "id": "x"},
                                              {**_records(1)[0], "id": "x"}])
    f = ing.ingest([log], layout=layout, mapping=LogFieldMap()).files[0]
    assert (f.records, f.added, f.duplicates) == (6, 4, 2)
    ids = LogStore(layout).read(columns=["record_id"]).column("record_id").to_pylist()
    assert "x" in ids
    hashed = [i for i in ids if i != "x"]
    assert len(hashed) == 3 and all(i.startswith("sha256:") and len(i) == 7 + 64 for i in hashed)
    # the content id is the mapped content's: the same record in Parquet gets the same id, so it is skipped
    pq_path = tmp_path / "same.parquet"
    pq.write_table(pa.Table.from_pylist([recs[1]]), pq_path)
    g = ing.ingest([pq_path], layout=layout, mapping=LogFieldMap()).files[0]
    assert (g.added, g.skipped) == (0, 1)


def test_rejected_lines_keep_the_rest_with_file_line(tmp_path: Path, layout: Layout) -> None:
    good = _records(6)
    lines: list[Any] = [good[0], "{not json", good[1], {"id": "nq", "timestamp": "2026-03-01T00:00:00Z"},
                        "", good[2], {**good[3], "timestamp": "2026-03-01T10:00:00"},
                        {**good[4], "retrieved": "d1"}, "[1, 2]", good[5],
                        {**good[0], "id": "nan", "latency_s": float("nan")}]
    log = _write_jsonl(tmp_path / "logs" / "mixed.jsonl", lines)
    f = ing.ingest([log], layout=layout, mapping=LogFieldMap()).files[0]
    where = {pos: reason for pos, reason in f.rejected}
    assert list(where) == [f"{log}:{n}" for n in (2, 4, 7, 8, 9, 11)]
    assert "malformed JSON" in where[f"{log}:2"]
    assert where[f"{log}:4"] == "no query (field 'query')"
    assert "has no time zone" in where[f"{log}:7"]
    assert where[f"{log}:8"] == "'retrieved' must be a list, not string"
    assert where[f"{log}:9"] == "a record must be a JSON object, not array"
    assert "NaN is not valid JSON" in where[f"{log}:11"]
    assert (f.records, f.added, f.rejected_count) == (10, 4, 6)  # the blank line 5 is not a record
    stored = LogStore(layout).read(columns=["record_id", "source"]).to_pylist()
    assert sorted((r["record_id"], r["source"]) for r in stored) == sorted(
        [("r0", f"{log}:1"), ("r1", f"{log}:3"), ("r2", f"{log}:6"), ("r5", f"{log}:10")])
    kept = [json.loads(x) for x in ing.rejected_path(layout, f.source_hash).read_text().splitlines()]
    assert [k["position"] for k in kept] == list(where) and kept[0]["raw"] == "{not json"
    # --assume-utc accepts the naive timestamp on a fresh store
    other = Layout(tmp_path / "other")
    g = ing.ingest([log], layout=other, mapping=LogFieldMap(), assume_utc=True).files[0]
    assert f"{log}:7" not in dict(g.rejected) and g.added == 5


def test_timestamps_epoch_seconds_and_milliseconds(tmp_path: Path, layout: Layout) -> None:
    base = {"query": "q"}
    log = _write_jsonl(tmp_path / "t.jsonl", [base | {"id": "s", "timestamp": 1772400000},
                                              base | {"id": "ms", "timestamp": 1772400000500},
                                              base | {"id": "off", "timestamp": "2026-03-02T01:00:00+02:00"},
                                              base | {"id": "bool", "timestamp": True}])
    f = ing.ingest([log], layout=layout, mapping=LogFieldMap()).files[0]
    assert [p for p, _ in f.rejected] == [f"{log}:4"]
    got = {r["record_id"]: r["ts"] for r in LogStore(layout).read(columns=["record_id", "ts"]).to_pylist()}
    assert got["s"] == datetime(2026, 3, 1, 21, 20, tzinfo=UTC)
    assert got["ms"] == datetime(2026, 3, 1, 21, 20, 0, 500000, tzinfo=UTC)
    assert got["off"] == datetime(2026, 3, 1, 23, 0, tzinfo=UTC)


def test_a_failure_mid_file_leaves_nothing_visible_and_a_rerun_completes(
        tmp_path: Path, layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ing, "CHUNK", 7)
    log = _write_jsonl(tmp_path / "a.jsonl", _records(40))
    real_flush = ing._flush
    calls = {"n": 0}

    def failing_flush(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # two chunks already written to their day parts
            raise RuntimeError("disk on fire")
        real_flush(*args, **kwargs)

    monkeypatch.setattr(ing, "_flush", failing_flush)
    with pytest.raises(RuntimeError, match="disk on fire"):
        ing.ingest([log], layout=layout, mapping=LogFieldMap())
    store = LogStore(layout)
    assert store.count() == 0 and store.read().num_rows == 0
    assert not list((layout.home / "logs").glob("day=*/*.parquet"))  # temp parts removed
    monkeypatch.setattr(ing, "_flush", real_flush)
    f = ing.ingest([log], layout=layout, mapping=LogFieldMap()).files[0]
    assert f.added == 40 and store.count() == 40


def test_a_crash_before_the_ledger_commit_is_invisible_and_repaired(
        tmp_path: Path, layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts renamed into place but the process dies before its ledger rows: nothing is read; the re-run
    rewrites the same part names and commits."""
    log = _write_jsonl(tmp_path / "a.jsonl", _records(30))
    real_execute_many = []

    class Boom(Exception):
        pass

    real_commit = ing._commit

    def commit_then_die(state: Any, con: Any, layout_: Layout, now: datetime) -> None:
        for part in state.parts.values():  # the parts are renamed into place ...
            part.writer.close()
            part.fh.close()
            Path(part.tmp).replace(part.final)
        real_execute_many.append(len(state.parts))
        raise Boom  # ... and the process dies before the ledger commit

    monkeypatch.setattr(ing, "_commit", commit_then_die)
    with pytest.raises(Boom):
        ing.ingest([log], layout=layout, mapping=LogFieldMap())
    assert len(list((layout.home / "logs").glob("day=*/part-*.parquet"))) == real_execute_many[0] == 3
    assert LogStore(layout).count() == 0 and LogStore(layout).days() == []
    monkeypatch.setattr(ing, "_commit", real_commit)
    f = ing.ingest([log], layout=layout, mapping=LogFieldMap()).files[0]
    assert f.added == 30 and LogStore(layout).count() == 30
    assert len(list((layout.home / "logs").glob("day=*/part-*.parquet"))) == 3


def test_worker_processes_store_what_one_process_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[Any] = [*_records(50)]
    lines[7] = "{broken"
    lines.append(_records(1)[0])  # a duplicate of r0 at the end
    log = _write_jsonl(tmp_path / "a.jsonl", lines)
    serial = Layout(tmp_path / "serial")
    s = ing.ingest([log], layout=serial, mapping=LogFieldMap()).files[0]
    monkeypatch.setattr(ing, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(ing, "WORKER_CHUNK", 6)
    monkeypatch.setattr(ing, "_workers", lambda: 2)
    parallel = Layout(tmp_path / "parallel")
    p = ing.ingest([log], layout=parallel, mapping=LogFieldMap()).files[0]
    assert (s.records, s.added, s.duplicates, s.rejected) == (p.records, p.added, p.duplicates, p.rejected)
    assert (p.added, p.duplicates, p.rejected[0][0]) == (49, 1, f"{log}:8")
    drop = ["ingested_at"]
    assert LogStore(serial).read().drop(drop).equals(LogStore(parallel).read().drop(drop))


def test_mapping_of_nested_paths(tmp_path: Path, layout: Layout) -> None:
    log = _write_jsonl(tmp_path / "n.jsonl", [{"meta": {"rid": 7, "at": "2026-03-01T00:00:00Z"},
                                               "request": {"text": "q?"}, "resp": {"text": "a."}, "lat": 0.5}])
    mapping = LogFieldMap(record_id="meta.rid", timestamp="meta.at", query="request.text", answer="resp.text",
                          latency="lat")
    ing.ingest([log], layout=layout, mapping=mapping)
    row = LogStore(layout).read().to_pylist()[0]
    assert (row["record_id"], row["query"], row["answer"], row["latency"]) == ("7", "q?", "a.", [("total", 0.5)])
    assert row["attrs"] == []  # every scalar was mapped
    assert dict(row["fields"]) == {"meta": "object", "meta.rid": "integer", "meta.at": "string",
                                   "request": "object", "request.text": "string", "resp": "object",
                                   "resp.text": "string", "lat": "number"}


# --- the command -------------------------------------------------------------------------------------------


@pytest.fixture
def proj(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    manifest = make_project(tmp_path / "p", lock=False)
    monkeypatch.chdir(manifest.parent)
    return manifest


def test_cli_exit_codes(proj: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = proj.parent
    _write_jsonl(root / "logs" / "ok.jsonl", _records(5))
    code, out, err = cli_in_process(capsys, "ingest", "logs/ok.jsonl")
    assert code == 0, err
    assert out.startswith("logs/ok.jsonl: 5 records: 5 added, 0 already stored, 0 duplicates, 0 rejected")
    code, out, _ = cli_in_process(capsys, "ingest", "logs/ok.jsonl", "--json")
    data = json.loads(out)
    assert code == 0 and data["added"] == 0 and data["files"][0]["already_ingested"]
    _write_jsonl(root / "logs" / "bad.jsonl", [*_records(2, start=10), "nope"])
    code, out, err = cli_in_process(capsys, "ingest", "logs/bad.jsonl")
    assert code == 1 and "2 added" in out and "rejected logs/bad.jsonl:3: malformed JSON" in err
    code, _, err = cli_in_process(capsys, "ingest", "logs/missing.jsonl")
    assert code == 2 and "logs/missing.jsonl: no such log file" in err
    code, _, err = cli_in_process(capsys, "ingest", "logs/ok.jsonl", "--map", "qery=text")
    assert code == 2 and "did you mean 'query'" in err
    outside = _write_jsonl(tmp_path / "elsewhere.jsonl", _records(1, start=50))
    code, _, err = cli_in_process(capsys, "ingest", str(outside))
    assert code == 2 and "outside the project" in err and "--allow-outside" in err
    code, out, _ = cli_in_process(capsys, "ingest", str(outside), "--allow-outside")
    assert code == 0 and "1 added" in out
    assert LogStore(Layout(root / ".harness")).count() == 8


def test_cli_map_and_manifest_mapping(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = proj.parent
    _write_jsonl(root / "l.jsonl", [{"when": "2026-03-01T00:00:00Z", "text": "q", "geo": "eu"}])
    code, _, err = cli_in_process(capsys, "ingest", "l.jsonl")
    assert code == 1 and "no timestamp (field 'timestamp')" in err
    proj.write_text(proj.read_text() + '\n[monitor.mapping]\ntimestamp = "when"\n')
    code, _, err = cli_in_process(capsys, "ingest", "l.jsonl", "--map", "query=text")
    assert code == 0, err
    row = LogStore(Layout(root / ".harness")).read().to_pylist()[0]
    assert row["query"] == "q" and row["attrs"] == [("geo", "eu")]


@pytest.mark.parametrize(("extra", "want"), [
    ({"retrieved": ["a", "b"]}, {"retrieved_ids": ["a", "b"], "retrieved_scores": None}),
    ({"retrieved": [{"doc_id": 7, "score": 1}, {"id": "b", "score": 0.5}]},
     {"retrieved_ids": ["7", "b"], "retrieved_scores": [1.0, 0.5]}),
    ({"retrieved": []}, {"retrieved_ids": [], "retrieved_scores": None}),
    ({"retrieved": [{"doc_id": "a", "score": 1.0}, {"doc_id": "b"}]},
     "'retrieved': 1 of 2 items have a score (all or none)"),
    ({"contexts": [{"text": "t1", "doc_id": "a", "score": 0.9}, {"text": "t2", "doc_id": "b", "score": 0.1}]},
     {"contexts": ["t1", "t2"], "retrieved_ids": ["a", "b"], "retrieved_scores": [0.9, 0.1]}),
    ({"contexts": [3]}, "'contexts[0]' must be a text or a {text, doc_id, score} object"),
    ({"latency_s": {"retrieve": -1}}, "'latency_s.retrieve' is negative"),
    ({"latency_s": "fast"}, "'latency_s' must be a number, not string"),
    ({"error": True, "timeout": True}, {"error": "error", "timeout": True}),
    ({"error": False}, {"error": None}),
    ({"error": ""}, {"error": None}),
    ({"error": 3}, "'error' must be a kind string or a {kind, message} object, not integer"),
    ({"timeout": "yes"}, "'timeout' must be a boolean, not string"),
    ({"instructions": [{"id": "length:max_words", "kwargs": {"n": 5}}], "contract": "json_cited"},
     {"instructions": '[{"id":"length:max_words","kwargs":{"n":5}}]', "contract": "json_cited"}),
    ({"instructions": "be brief"}, "'instructions' must be a list of {id, kwargs} objects"),
    ({"query": "  "}, "'query' is empty"),
    ({"query": 5}, "'query' must be a string, not integer"),
    ({"id": True}, "'id' must be a non-empty string or an integer, not boolean"),
    ({"timestamp": "yesterday"}, "timestamp 'yesterday' is not an ISO-8601 date and time"),
])
def test_mapping_rules(tmp_path: Path, layout: Layout, extra: dict[str, Any], want: Any) -> None:
    log = _write_jsonl(tmp_path / "m.jsonl", [{"id": "r", "timestamp": "2026-03-01T00:00:00Z", "query": "q"} | extra])
    f = ing.ingest([log], layout=layout, mapping=LogFieldMap()).files[0]
    if isinstance(want, str):
        assert f.rejected == ((f"{log}:1", want),)
        return
    assert f.added == 1, f.rejected
    row = LogStore(layout).read().to_pylist()[0]
    assert {k: row[k] for k in want} == want
