"""A run streams: its cases go through the stages a chunk at a time (pipeline.CHUNK_CASES), the golden set
is checked whole before anything is written, and nothing of a run that fails is left. The oracle is the same
run taken in one chunk."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import harness.pipeline as pipeline
from harness.cli import cli
from harness.errors import InputError
from harness.golden import iter_golden, load_golden
from harness.manifest import lock
from harness.report.console import ErrorTally, error_summary
from harness.runs import RunStore, load_run
from harness.types import CaseError, CaseOutput
from tests.conftest import DOCS, add_generation, make_project, write_jsonl

WORDS = ["backups", "hourly", "tls", "certificates", "quota", "tenant", "roles", "search", "phrase", "compaction"]


def _cases(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        query = " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(1 + i % 4))
        row: dict = {"id": f"c{i:03d}", "query": f"{query} {i}", "tags": {"topic": "abc"[i % 3]}}
        if i % 5:
            row["relevance"] = {DOCS[i % len(DOCS)]["id"]: 1 + i % 2, DOCS[(i + 2) % len(DOCS)]["id"]: 1}
        if i % 4 == 0:
            row["tags"]["lang"] = "en"
        rows.append(row)
    return rows


def _project(root: Path, n: int = 40, generation: bool = False) -> Path:
    manifest = make_project(root, lock=False)
    write_jsonl(root / "golden" / "cases.jsonl", _cases(n))
    if generation:
        add_generation(root)
    lock(manifest)
    return manifest


@pytest.fixture(autouse=True)
def _no_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)


@pytest.mark.parametrize("generation", [False, True])
def test_chunked_run_equals_the_run_in_one_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  generation: bool) -> None:
    n, size = (14, 4) if generation else (40, 7)  # 4 and 6 chunks, the last one short
    whole = pipeline.run_manifest(_project(tmp_path / "whole", n, generation=generation))
    monkeypatch.setattr(pipeline, "CHUNK_CASES", size)
    chunked = pipeline.run_manifest(_project(tmp_path / "chunked", n, generation=generation))
    assert not chunked.loaded  # nothing read back yet
    a, b = whole.run, chunked.run
    assert chunked.loaded and b == load_run(chunked.path)
    assert [c.id for c in b.cases] == [c.id for c in a.cases]
    assert b.case_scores() == a.case_scores()
    assert b.aggregates == a.aggregates  # exact: the accumulator's sums are math.fsum's
    assert {s for s in b.aggregates.segments} == {"topic=a", "topic=b", "topic=c", "lang=en"}
    assert b.counts == a.counts
    assert b.counts["cases"] == n and b.counts["retrieved"] == n and b.counts["index_built"] == 1
    assert b.counts["embedded_texts"] == a.counts["embedded_texts"] > 0
    assert [o.ranking for o in b.outputs] == [o.ranking for o in a.outputs]
    assert [o.answer for o in b.outputs] == [o.answer for o in a.outputs]
    assert chunked.header.aggregates == b.aggregates and chunked.header.counts == b.counts
    assert pq.ParquetFile(chunked.path.with_suffix(".parquet")).num_row_groups == -(-n // size)
    assert set(b.stage_seconds) >= {"load", "verify", "retrieve", "score", "total"}
    assert ("generate" in b.stage_seconds) == generation
    # a warm re-run, chunked: everything from the cache, counted over every chunk
    again = pipeline.run_manifest(tmp_path / "chunked" / "harness.toml")
    assert again.header.counts["retrieved"] == 0 and again.header.counts["embedded_texts"] == 0
    assert again.run.case_scores() == a.case_scores()


def test_harness_run_never_reads_the_run_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = _project(tmp_path / "p")
    monkeypatch.setattr(pipeline, "CHUNK_CASES", 9)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("harness run read the whole run back")

    monkeypatch.setattr("harness.runs.load_run", refuse)
    res = CliRunner().invoke(cli, ["-q", "run", "--manifest", str(manifest), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    monkeypatch.undo()
    run = load_run(data["path"])
    assert data["counts"] == run.counts and data["run_id"] == run.run_id
    assert data["aggregates"] == {k: v.mean for k, v in run.aggregates.overall.items()}
    assert data["errors"] == error_summary(run.outputs) == {"total": 0, "by_kind": {}}


def _runs(root: Path) -> list[Path]:
    return sorted(p for p in (root / ".harness").rglob("*") if p.is_file() and "runs" in p.parts)


def test_bad_case_after_the_first_chunk_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "CHUNK_CASES", 5)
    root = tmp_path / "p"
    manifest = _project(root)
    rows = _cases(40)
    rows[33]["relevance"] = {"nope": 1}
    write_jsonl(root / "golden" / "cases.jsonl", rows)
    lock(manifest)
    res = CliRunner().invoke(cli, ["-q", "run", "--manifest", str(manifest)])
    assert res.exit_code == 2, res.output
    assert "cases.jsonl:34" in res.output and "nope" in res.output
    assert not (root / ".harness" / "runs").exists() or not _runs(root)


def test_duplicate_id_across_batches_is_found_before_anything_is_written(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "CHUNK_CASES", 4)
    root = tmp_path / "p"
    manifest = _project(root)
    rows = _cases(30)
    rows[27]["id"] = rows[2]["id"]
    write_jsonl(root / "golden" / "cases.jsonl", rows)
    lock(manifest)
    res = CliRunner().invoke(cli, ["-q", "run", "--manifest", str(manifest)])
    assert res.exit_code == 2
    assert "cases.jsonl:28" in res.output and "duplicate id 'c002' (first at line 3)" in res.output
    assert not _runs(root)


def test_a_run_that_raises_midway_leaves_no_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.scorers.retrieval import RetrievalScorer

    manifest = _project(tmp_path / "p")
    monkeypatch.setattr(pipeline, "CHUNK_CASES", 6)
    real = RetrievalScorer.score
    calls = {"n": 0}

    def flaky(self: RetrievalScorer, cases, outputs, ctx):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("scorer broke in the third chunk")
        return real(self, cases, outputs, ctx)

    monkeypatch.setattr(RetrievalScorer, "score", flaky)
    with pytest.raises(RuntimeError, match="third chunk"):
        pipeline.run_manifest(manifest)
    store = RunStore(tmp_path / "p" / ".harness" / "runs")
    assert store.scan() == []
    assert not [p for p in (tmp_path / "p" / ".harness" / "runs").rglob("*") if p.is_file()
                and p.name != "LATEST"]


def _golden_rows(n: int) -> list[dict]:
    rows = _cases(n)
    for r in rows:
        r.pop("tags")
    return rows


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "csv", "arrow"])
def test_iter_golden_batches_every_format(tmp_path: Path, fmt: str) -> None:
    rows = _golden_rows(23)
    doc_ids = frozenset(d["id"] for d in DOCS)
    path = tmp_path / f"cases.{fmt}"
    if fmt == "jsonl":
        write_jsonl(path, rows)
    else:
        table = pa.Table.from_pylist([{"id": r["id"], "query": r["query"],
                                       "relevance": json.dumps(r.get("relevance", {}))} for r in rows])
        if fmt == "csv":
            pacsv.write_csv(table, path)
        else:
            table = pa.Table.from_pylist([{"id": r["id"], "query": r["query"]} for r in rows])
            if fmt == "parquet":
                pq.write_table(table, path, row_group_size=5)
                assert pq.ParquetFile(path).num_row_groups == 5
            else:
                with pa.ipc.new_file(path, table.schema) as w:
                    for b in table.to_batches(max_chunksize=4):
                        w.write_batch(b)
    batches = list(iter_golden(path, doc_ids, batch=6))
    assert [len(b) for b in batches] == [6, 6, 6, 5]
    assert [c for b in batches for c in b] == load_golden(path, doc_ids)
    assert [c.id for b in batches for c in b] == [r["id"] for r in rows]


def test_iter_golden_errors_name_file_and_line(tmp_path: Path) -> None:
    rows = _golden_rows(20)
    path = tmp_path / "cases.jsonl"
    bad = [dict(r) for r in rows]
    bad[15] = {"id": "c015"}  # no query
    write_jsonl(path, bad)
    with pytest.raises(InputError, match=r"cases.jsonl:16"):
        for _ in iter_golden(path, batch=4):
            pass
    # a repeat before the invalid record is the first error of the file
    bad[9]["id"] = "c001"
    write_jsonl(path, bad)
    with pytest.raises(InputError, match=r"cases.jsonl:10.*duplicate id 'c001' \(first at line 2\)"):
        list(iter_golden(path, batch=4))
    # csv rows are numbered as load_golden numbers them
    csv_path = tmp_path / "cases.csv"
    table = pa.Table.from_pylist([{"id": r["id"], "query": r["query"]} for r in rows[:12]]
                                 + [{"id": "c003", "query": "again"}])
    pacsv.write_csv(table, csv_path)
    with pytest.raises(InputError, match=r"cases.csv:13.*duplicate id 'c003' \(first at line 4\)"):
        list(iter_golden(csv_path, batch=5))


def test_error_tally_equals_error_summary() -> None:
    outs = []
    for i in range(40):
        err = None
        if i % 3 == 0:
            err = CaseError(stage="generate", kind="server_error" if i % 2 else "timeout", message=f"boom {i}")
        outs.append(CaseOutput(case_id=f"c{i}", ranking=(), error=err))
    tally = ErrorTally()
    for start in range(0, 40, 7):
        tally.add(outs[start:start + 7])
    assert tally.summary() == error_summary(outs)
    assert tally.summary()["total"] == 14
