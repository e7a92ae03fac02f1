"""The columnar run store (format 4): a header (small JSON, written last) beside a Parquet table of one row
per case. Round trips are exact (the single-file format's JSON, the same score order), columns are read
alone, a damaged or missing table is one error naming the run, an orphan table is ignored and pruned, and
old run files keep loading and migrate."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.errors import InputError
from harness.runs import (
    NonFiniteValueError,
    RunStore,
    load_run,
    migrate_runs,
    open_run,
    plan_prune,
    read_header,
    remove_orphan_tables,
    remove_runs,
)
from harness.types import (
    CaseError,
    CorpusDoc,
    RankedDoc,
    RunResult,
    Score,
    SuppliedOutput,
    SuppliedPassage,
)

DATA = Path(__file__).parent / "data"
V1_ERRORS = DATA / "run_v1_errors.json"
V1_INIT = DATA / "run_v1_init.json"


def _rich_run() -> RunResult:
    """A run with every field set: errors of two stages, unscored values, tags (one case lacks one),
    latencies, generation records, supplied outputs' fields, score details; scores scorer-major as the
    pipeline orders them."""
    base = load_run(V1_ERRORS)
    cases = list(base.cases)
    cases[0] = cases[0].model_copy(update={"output": SuppliedOutput(
        answer="from elsewhere", contexts=(SuppliedPassage(text="a passage", doc_id="d1", score=0.5),),
        retrieved=(RankedDoc(doc_id="d1", score=1.5),), latency_s={"app": 0.25}, metadata={"k": [1, 2]})})
    cases[2] = cases[2].model_copy(update={"tags": {"topic": "storage"}})  # no difficulty tag
    outputs = list(base.outputs)
    outputs[2] = outputs[2].model_copy(update={
        "error": CaseError(stage="retrieve", kind="RuntimeError", message="boom \"quoted\" NaN in text"),
        "contexts": (CorpusDoc(id="c1", title="t", text="ctx Infinity", metadata={"x": 1.0}),),
        "ranking_scored": False})
    assert any(o.generation is not None for o in outputs) and any(o.latency_s for o in outputs)
    scores = list(base.scores) + [
        Score(case_id=c.id, metric="extra_metric", value=None if i == 1 else i / 3,
              explanation="why" if i == 1 else None, details={"i": i, "nested": {"v": [0.1, None]}})
        for i, c in enumerate(cases)]
    assert any(s.value is None for s in scores)
    return base.model_copy(update={"cases": tuple(cases), "outputs": tuple(outputs), "scores": tuple(scores),
                                   "manifest_path": None})


def test_a_run_with_every_field_set_round_trips_exactly(tmp_path: Path) -> None:
    run = _rich_run()
    path = RunStore(tmp_path / "runs").save(run)
    assert path == tmp_path / "runs" / run.manifest_id / f"{run.run_id}.json"
    assert load_run(path) == run
    assert open_run(path).materialize() == run
    header = json.loads(path.read_text())
    assert list(header)[:9] == ["format_version", "run_id", "created_at", "manifest_id", "manifest_path", "counts",
                                "stage_seconds", "aggregates", "manifest"]
    assert header["format_version"] == 4 and header["rows"] == len(run.outputs)
    table = path.with_suffix(".parquet")
    assert header["table"] == table.name
    assert header["table_sha256"] == hashlib.sha256(table.read_bytes()).hexdigest()
    assert (tmp_path / "runs" / run.manifest_id / "LATEST").read_text().strip() == run.run_id
    # the JSON columns hold pydantic's JSON of each record, as the single-file format did
    t = pq.read_table(table)
    assert t.column("case").to_pylist()[0] == json.dumps(run.cases[0].model_dump(mode="json"), separators=(",", ":"),
                                                         ensure_ascii=False)
    assert [json.loads(o) for o in t.column("output").to_pylist()] == [o.model_dump(mode="json")
                                                                       for o in run.outputs]


def test_the_table_has_the_contract_columns(tmp_path: Path) -> None:
    run = _rich_run()
    table = RunStore(tmp_path).save(run).with_suffix(".parquet")
    schema = pq.read_schema(table)
    metrics = list(dict.fromkeys(s.metric for s in run.scores))
    expected = (["case_id", "case", "output", "scores", "error_stage", "error_kind", "score_seq", "tag:topic",
                 "tag:difficulty"]
                + [f"value:{m}" for m in metrics] + [f"unscored:{m}" for m in metrics]
                + ["latency:retrieve", "latency:generate"]
                + ["ranking_scored", "rank_scores", "rank_grades", "rank_repeats", "rel_grades"]
                + ["cache_hit:retrieve", "cache_hit:generate"])
    assert schema.names == expected
    assert all(schema.field(f"value:{m}").type == pa.float64() for m in metrics)
    assert all(schema.field(f"unscored:{m}").type == pa.bool_() for m in metrics)
    t = pq.read_table(table)
    assert t.column("error_stage").to_pylist() == [None if o.error is None else o.error.stage for o in run.outputs]
    assert t.column("tag:difficulty").to_pylist()[2] is None


def test_columns_match_the_records_and_read_only_what_is_asked(tmp_path: Path) -> None:
    run = _rich_run()
    table = open_run(RunStore(tmp_path).save(run))
    cols = table.columns(metrics=["ndcg@10", "extra_metric", "not_in_run"], latency=True)
    assert cols.case_ids.to_pylist() == [o.case_id for o in run.outputs] and len(cols) == 4
    by = {(s.case_id, s.metric): s.value for s in run.scores}
    for m in ("ndcg@10", "extra_metric"):
        assert cols.values[m].dtype == np.float64 and cols.unscored[m].dtype == np.bool_
        for i, o in enumerate(run.outputs):
            v = by.get((o.case_id, m))
            assert (np.isnan(cols.values[m][i]) if v is None else cols.values[m][i] == v)
            assert cols.unscored[m][i] == ((o.case_id, m) in by and v is None)
    assert np.isnan(cols.values["not_in_run"]).all() and not cols.unscored["not_in_run"].any()
    assert set(cols.tags) == {"topic", "difficulty"} and cols.tags["difficulty"].to_pylist()[2] is None
    assert cols.error_kind.to_pylist() == [None if o.error is None else o.error.kind for o in run.outputs]
    assert cols.latency["generate"][1] == run.outputs[1].latency_s["generate"]
    assert (cols.run_id, cols.manifest_id, cols.aggregates) == (run.run_id, run.manifest_id, run.aggregates)
    assert cols.fetch is not None
    # the default: every metric, tags, no latency
    default = table.columns()
    assert list(default.values) == list(dict.fromkeys(s.metric for s in run.scores)) and default.latency == {}
    assert table.columns(tags=False).tags == {}


def test_columns_equal_for_an_old_run_file_and_its_format_4_copy(tmp_path: Path) -> None:
    old = open_run(V1_ERRORS)
    new = open_run(RunStore(tmp_path).save(old.materialize()))
    a, b = old.columns(latency=True), new.columns(latency=True)
    assert a.case_ids.equals(b.case_ids) and list(a.values) == list(b.values)
    for m in a.values:
        np.testing.assert_array_equal(a.values[m], b.values[m])
        np.testing.assert_array_equal(a.unscored[m], b.unscored[m])
    assert all(a.tags[k].equals(b.tags[k]) for k in a.tags) and a.error_stage.equals(b.error_stage)
    assert all(np.array_equal(a.latency[s], b.latency[s], equal_nan=True) for s in a.latency)


def test_take_returns_the_records_asked_in_the_order_asked(tmp_path: Path) -> None:
    run = _rich_run()
    table = open_run(RunStore(tmp_path).save(run))
    cases, outputs, scores = table.take(["q3", "nope", "q1"])
    assert [c.id for c in cases] == ["q3", "q1"] and [o.case_id for o in outputs] == ["q3", "q1"]
    assert outputs[0] == run.outputs[2] and cases[1] == run.cases[0]
    assert sorted(scores, key=lambda s: (s.case_id, s.metric)) == sorted(
        (s for s in run.scores if s.case_id in ("q1", "q3")), key=lambda s: (s.case_id, s.metric))
    assert table.take([]) == ([], [], [])
    assert open_run(V1_ERRORS).take(["q2"])[1] == [o for o in load_run(V1_ERRORS).outputs if o.case_id == "q2"]


def test_iter_outputs_gives_the_outputs_of_iter_batches_for_every_format(tmp_path: Path) -> None:
    run = _rich_run()
    for table in (open_run(RunStore(tmp_path).save(run)), open_run(V1_ERRORS)):
        for rows in (1, 2, 10_000):
            expected = [o for _, outputs, _ in table.iter_batches(rows) for o in outputs]
            got = list(table.iter_outputs(rows))
            assert [o for batch in got for o in batch] == expected and all(len(b) <= rows for b in got)
    assert [o for b in open_run(RunStore(tmp_path / "b").save(run)).iter_outputs() for o in b] == list(run.outputs)


def test_iter_outputs_checks_the_outputs_it_decodes(saved: Path) -> None:
    _rewrite_table(saved, _bad_output)
    with pytest.raises(InputError, match=r"field 'rows\.3\.output\.ranking_scored': damaged run"):
        for _ in open_run(saved).iter_outputs(2):
            pass


def test_a_writer_streams_batches_as_row_groups_and_materializes_as_one_process_would(tmp_path: Path) -> None:
    run = _rich_run()
    metrics = list(dict.fromkeys(s.metric for s in run.scores))
    store = RunStore(tmp_path / "runs")
    with store.writer(run.manifest_id, run_id=run.run_id, metrics=metrics, tag_keys=["topic", "difficulty"],
                      latency_stages=["retrieve", "generate"]) as w:
        for start in (0, 2):  # two batches of two cases; the scores of each batch as the pipeline orders them
            ids = {c.id for c in run.cases[start:start + 2]}
            w.append(run.cases[start:start + 2], run.outputs[start:start + 2],
                     [s for s in run.scores if s.case_id in ids])
        assert not (tmp_path / "runs" / run.manifest_id / f"{run.run_id}.json").exists()  # nothing yet
        path = w.commit(created_at=run.created_at, manifest=run.manifest, manifest_path=None,
                        environment=run.environment, scorers=run.scorers, aggregates=run.aggregates,
                        stage_seconds=run.stage_seconds, counts=run.counts)
    assert w.run_id == run.run_id
    assert pq.ParquetFile(path.with_suffix(".parquet")).metadata.num_row_groups == 2
    # the scores in the order they were appended (batch by batch), the rest as it was
    appended = [s for start in (0, 2) for s in run.scores if s.case_id in {c.id for c in run.cases[start:start + 2]}]
    assert load_run(path) == run.model_copy(update={"scores": tuple(appended)})
    table = open_run(path)
    batches = list(table.iter_batches(rows=3))
    assert [len(b[1]) for b in batches] == [3, 1]
    assert [o for b in batches for o in b[1]] == list(run.outputs)
    assert sorted((s.case_id, s.metric) for b in batches for s in b[2]) == sorted(
        (s.case_id, s.metric) for s in run.scores)


def test_scores_in_any_order_load_in_that_order(tmp_path: Path) -> None:
    run = _rich_run()
    for order in (reversed, lambda xs: sorted(xs, key=lambda s: (s.metric, s.case_id))):
        changed = run.model_copy(update={"scores": tuple(order(run.scores))})
        assert load_run(RunStore(tmp_path).save(changed)) == changed


def _writer(tmp_path: Path, run: RunResult):  # type: ignore[no-untyped-def]
    return RunStore(tmp_path).writer(run.manifest_id, metrics=["ndcg@10"], tag_keys=["topic", "difficulty"],
                                     latency_stages=["retrieve", "generate"])


def test_the_writer_refuses_what_was_not_declared_and_what_is_not_finite(tmp_path: Path) -> None:
    run = load_run(V1_ERRORS)
    c, o = run.cases[:1], run.outputs[:1]
    cases = [
        (AssertionError, "metric 'recall@5', not declared", [Score(case_id="q1", metric="recall@5", value=1.0)], c, o),
        (ValueError, "not in this batch", [Score(case_id="q2", metric="ndcg@10", value=1.0)], c, o),
        (NonFiniteValueError, "nan, not a finite", [Score(case_id="q1", metric="ndcg@10", value=float("nan"))], c, o),
        (NonFiniteValueError, r"field '0\.details\.x' is inf", [Score(case_id="q1", metric="ndcg@10", value=1.0,
                                                          details={"x": float("inf")})], c, o),
        (NonFiniteValueError, "latency_s.retrieve' is inf|latency of stage 'retrieve' is inf", [],
         c, [o[0].model_copy(update={"latency_s": {"retrieve": float("inf")}})]),
        (AssertionError, "tag 'lang', not declared", [], [c[0].model_copy(update={"tags": {"lang": "en"}})], o),
        (AssertionError, "stage 'rerank'", [], c, [o[0].model_copy(update={"latency_s": {"rerank": 1.0}})]),
        (ValueError, "not the same order", [], run.cases[1:2], o),
    ]
    for exc, match, scores, cs, os_ in cases:
        with _writer(tmp_path, run) as w, pytest.raises(exc, match=match):
            w.append(cs, os_, scores)
    assert not list(tmp_path.rglob("*.json")) and not list(tmp_path.rglob("*.parquet*"))  # all aborted
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_a_case_appended_twice_is_refused_at_commit_and_nothing_is_stored(tmp_path: Path) -> None:
    run = load_run(V1_ERRORS)
    w = _writer(tmp_path, run)
    w.append(run.cases[:1], run.outputs[:1], [])
    w.append(run.cases[:1], run.outputs[:1], [])
    with pytest.raises(ValueError, match="appended twice"):
        w.commit(created_at=run.created_at, manifest=run.manifest, manifest_path=None, environment={},
                 scorers=(), aggregates=run.aggregates, stage_seconds={}, counts={})
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_an_exception_in_the_with_block_leaves_nothing(tmp_path: Path) -> None:
    run = load_run(V1_ERRORS)
    with pytest.raises(RuntimeError), _writer(tmp_path, run) as w:
        w.append(run.cases[:2], run.outputs[:2], [])
        raise RuntimeError("the pipeline failed")
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


# --- damage: one error naming the run, never a partial load ---------------------------------------------------


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return RunStore(tmp_path / "runs").save(_rich_run())


def _rewrite_table(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    """Rewrite a run's table through ``change`` and record its new sha256 in the header (damage that the
    checksum does not catch)."""
    table = path.with_suffix(".parquet")
    pq.write_table(change(pq.read_table(table)), table)
    header = json.loads(path.read_text())
    header["table_sha256"] = hashlib.sha256(table.read_bytes()).hexdigest()
    path.write_text(json.dumps(header))


@pytest.mark.parametrize("damage", ["missing", "cut", "bytes", "rows"])
def test_a_damaged_table_is_one_error_naming_the_run(saved: Path, damage: str) -> None:
    table = saved.with_suffix(".parquet")
    if damage == "missing":
        table.unlink()
    elif damage == "cut":
        table.write_bytes(table.read_bytes()[:-100])
    elif damage == "bytes":
        data = bytearray(table.read_bytes())
        data[len(data) // 2] ^= 0xFF
        table.write_bytes(bytes(data))
    else:
        header = json.loads(saved.read_text())
        saved.write_text(json.dumps({**header, "rows": header["rows"] + 1}))
    expected = {"missing": "is missing", "cut": "sha256", "bytes": "sha256", "rows": "rows, the header says"}[damage]
    for read in (load_run, open_run):
        with pytest.raises(InputError, match=expected) as info:
            read(saved)
        assert str(saved) in str(info.value) and info.value.exit_code == 2
    (stored,) = RunStore(saved.parent.parent).scan()
    if damage in ("missing", "rows"):  # a listing checks what is cheap: the table is there, with its rows
        assert stored.damaged and expected in (stored.problem or "")
    assert read_header(saved).run_id == saved.stem


def test_a_stored_nan_in_the_table_is_refused_naming_the_column(saved: Path) -> None:
    def nan_value(t: pa.Table) -> pa.Table:
        i = t.schema.get_field_index("value:ndcg@10")
        return t.set_column(i, "value:ndcg@10", pa.array([float("nan"), *t["value:ndcg@10"].to_pylist()[1:]],
                                                         pa.float64()))

    _rewrite_table(saved, nan_value)
    with pytest.raises(InputError, match=r"field 'value:ndcg@10\[0\]': damaged run: a number that is not finite"):
        open_run(saved).columns()


def test_a_nan_in_a_json_column_is_refused_naming_the_field(saved: Path) -> None:
    def nan_score(t: pa.Table) -> pa.Table:
        scores = t["scores"].to_pylist()
        scores[1] = scores[1].replace('"value":1.0', '"value":NaN', 1).replace('"value":0.0', '"value":NaN', 1)
        assert "NaN" in scores[1]
        return t.set_column(t.schema.get_field_index("scores"), "scores", pa.array(scores, pa.string()))

    _rewrite_table(saved, nan_score)
    with pytest.raises(InputError, match=r"field 'rows\.1\.scores\.\d+\.value': damaged run: nan is not a finite"):
        load_run(saved)


def _bad_output(t: pa.Table) -> pa.Table:
    """Row 3's output no longer validates (a bool field holds a string)."""
    outputs = t["output"].to_pylist()
    outputs[3] = outputs[3].replace('"ranking_scored":true', '"ranking_scored":"maybe"')
    return t.set_column(t.schema.get_field_index("output"), "output", pa.array(outputs, pa.string()))


def test_a_record_that_does_not_validate_is_one_error_naming_its_row(saved: Path) -> None:
    _rewrite_table(saved, _bad_output)
    with pytest.raises(InputError, match=r"field 'rows\.3\.output\.ranking_scored': damaged run"):
        load_run(saved)


# --- orphans, pruning ---------------------------------------------------------------------------------------


def test_an_orphan_table_is_ignored_by_scan_and_removed_by_prune(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    store = RunStore(root)
    run = _rich_run()
    kept = store.save(run)
    killed = run.model_copy(update={"run_id": "20200101T000000Z-dead00"})
    store.save(killed)
    folder = kept.parent
    (folder / f"{killed.run_id}.json").unlink()  # killed between the table's rename and the header
    (folder / ".20200101T000000Z-dead01.parquet.abcd.tmp").write_bytes(b"half a table")  # killed mid-write
    assert [r.run_id for r in store.scan()] == [run.run_id]
    live = _writer(root, run)  # a writer at work: its table is not an orphan
    live.append(run.cases[:1], run.outputs[:1], [])
    assert remove_runs(root, []) == []  # prune with nothing to remove still sweeps the orphans
    names = sorted(p.name for p in folder.iterdir())
    assert f"{killed.run_id}.parquet" not in names and ".20200101T000000Z-dead01.parquet.abcd.tmp" not in names
    assert any(n.startswith(f".{live.run_id}.parquet.") for n in names)
    assert remove_orphan_tables(root) == []
    live.abort()
    assert load_run(kept) == run


def test_prune_removes_a_run_s_header_and_table(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    store = RunStore(root)
    run = _rich_run()
    first = store.save(run.model_copy(update={"run_id": "20200101T000000Z-aaaaaa"}))
    second = store.save(run)
    stored = store.scan()
    assert {r.size for r in stored} == {first.stat().st_size + first.with_suffix(".parquet").stat().st_size,
                                        second.stat().st_size + second.with_suffix(".parquet").stat().st_size}
    plan = plan_prune(stored, 1, {}, {run.manifest_id: run.run_id})
    assert [r.path for r in plan.remove] == [first]
    remove_runs(root, plan.remove)
    assert sorted(p.name for p in second.parent.iterdir()) == sorted(["LATEST", second.name, second.with_suffix(
        ".parquet").name])
    # a damaged header goes with its table too
    second.write_text("{oops")
    damaged = store.scan()
    assert damaged[0].damaged
    remove_runs(root, plan_prune(damaged, 1, {}, {}, include_damaged=True).remove)
    assert not root.exists() or not any(root.iterdir())


# --- old files ------------------------------------------------------------------------------------------


def test_old_run_files_migrate_and_load_the_same(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    originals = {}
    for fixture in (V1_ERRORS, V1_INIT):
        data = json.loads(fixture.read_text())
        folder = root / data["manifest_id"]
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(fixture, folder / f"{data['run_id']}.json")
        (folder / "LATEST").write_text("someother\n")
        originals[folder / f"{data['run_id']}.json"] = load_run(fixture)
    # a version-3 file (the single-file format before this one), written as it used to be
    v3 = _rich_run().model_copy(update={"run_id": "20210101T000000Z-333333"})
    v3_path = root / v3.manifest_id / f"{v3.run_id}.json"
    v3_path.parent.mkdir(parents=True, exist_ok=True)
    v3_path.write_text(v3.model_dump_json(indent=1))
    originals[v3_path] = load_run(v3_path)
    (root / v3.manifest_id / "20210101T000000Z-bad000.json").write_text("{not json")  # left as it is
    migrated = migrate_runs(root)
    assert sorted(migrated) == sorted(originals)
    for path, run in originals.items():
        assert json.loads(path.read_text())["format_version"] == 4
        assert load_run(path) == run
        assert (path.parent / "LATEST").read_text() == "someother\n"  # untouched
    assert migrate_runs(root) == []  # once
    assert (root / v3.manifest_id / "20210101T000000Z-bad000.json").read_text() == "{not json"


def test_a_run_without_golden_cases_round_trips_and_its_columns_say_so(tmp_path: Path) -> None:
    run = load_run(V1_INIT).model_copy(update={"cases": ()})
    path = RunStore(tmp_path).save(run)
    assert load_run(path) == run
    cols = open_run(path).columns()
    assert cols.extra["no_case"].tolist() == [True] * len(run.outputs) and cols.tags == {}
    assert "no_case" not in open_run(RunStore(tmp_path).save(_rich_run())).columns().extra
