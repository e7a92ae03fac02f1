"""A replay reads its stored runs by columns and streams their records: the same report as the whole-run
computation, and never a run loaded whole.

The oracle (``replay_oracle.py``) is the replay's code before it read columns: both runs held as
:class:`~harness.types.RunResult` and walked record by record. Each replay here is compared with it on the
same stored runs: baseline and candidate errors, answers served from the cache beside fresh ones,
``geo``/``device`` segments, the logged contract, logged instructions on a third of the records, and
candidates that change the answers (format-broken) or the rankings (coarse IVF)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import harness.shadow.replay as engine
from harness.columns import RunColumns
from harness.manifest import load_manifest
from harness.monitor.synthetic import StreamSpec
from harness.runs import load_run
from harness.shadow.model import ReplayReport
from harness.shadow.replay import ReplayPlan, ReplayRequest, plan_replay, run_replay
from harness.storage import Layout
from harness.testing import FakeOpenAIServer, Fault
from harness.testing.shadow import SYSTEM, SYSTEM_NEUTRAL, logged_traffic, shadow_responder, write_shadow_project
from tests.shadow import replay_oracle as oracle

SPEC = StreamSpec(days=3, records_per_day=400)
N_LOGGED = 60
INSTRUCTIONS = [{"id": "length_constraints:number_words", "kwargs": {"num_words": 3, "relation": "at least"}}]
ENV = {"OPENAI_API_KEY": "test", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture(scope="module", autouse=True)
def _env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for k, v in ENV.items():
            mp.setenv(k, v)
        for k in ("HARNESS_HOME", "OPENAI_BASE_URL"):
            mp.delenv(k, raising=False)
        mp.setenv("HARNESS_CACHE_DIR", str(tmp_path_factory.mktemp("replay-columns-cache")))
        yield


@dataclass
class World:
    srv: FakeOpenAIServer
    project: Any
    log: Path

    def request(self, candidate: str, **kw: Any) -> ReplayRequest:
        return ReplayRequest(baseline=load_manifest(self.project.baseline),
                             candidate=load_manifest(getattr(self.project, candidate)),
                             layout=Layout.for_manifest(self.project.baseline), log=kw.pop("log", self.log), **kw)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("replay-columns")
    with FakeOpenAIServer(responder=shadow_responder()) as srv:
        project = write_shadow_project(tmp / "proj", base_url=srv.base_url, spec=SPEC)
        src = logged_traffic(SPEC, tmp / "src.jsonl", manifest_id=load_manifest(project.baseline).id,
                             limit=N_LOGGED)
        rows = [json.loads(line) for line in src.read_text().splitlines()]
        log = tmp / "traffic.jsonl"
        log.write_text("".join(json.dumps({**r, "instructions": INSTRUCTIONS} if i % 3 == 0 else r) + "\n"
                               for i, r in enumerate(rows)))
        yield World(srv, project, log)


def _replayed(plan: ReplayPlan) -> tuple[ReplayReport, ReplayReport]:
    """(the replay's report, the oracle's report from the same two stored runs loaded whole)."""
    rep = run_replay(plan)
    b, h = rep.baseline, rep.candidate
    want = oracle.whole_run_report(plan, str(rep.replay_id), load_run(b.run_path), Path(b.run_path), b.seconds,
                                   load_run(h.run_path), Path(h.run_path), h.seconds)
    return rep, want


def _same(rep: ReplayReport, want: ReplayReport) -> None:
    assert rep.model_dump() == want.model_dump()
    assert rep.model_dump_json() == want.model_dump_json()  # dict orders too (errors_by_kind, latency)


@pytest.fixture(scope="module")
def faulted(world: World) -> tuple[ReplayReport, ReplayReport]:
    """A replay with errors on both sides and cache hits: a sample answered first (cached), then every record
    with the endpoint refusing some fresh baseline and candidate calls."""
    run_replay(plan_replay(world.request("neutral", sample=20)))
    world.srv.push(Fault.bad_request("no (fake)"), match=SYSTEM, times=6)
    world.srv.push(Fault.bad_request("no (fake)"), match=SYSTEM_NEUTRAL, times=4)
    try:
        return _replayed(plan_replay(world.request("neutral")))
    finally:
        world.srv.clear_faults()


def test_a_replay_with_errors_and_cache_hits_reports_what_the_whole_runs_give(
        faulted: tuple[ReplayReport, ReplayReport]) -> None:
    rep, want = faulted
    # the replay has what the comparison is about (else the test could not fail where it matters)
    assert rep.baseline.errors == 6 and rep.candidate.errors == 4
    assert rep.baseline.errors_by_kind and rep.candidate.errors_by_kind
    assert 0 < rep.candidate.cache_hits < rep.candidate.cases and rep.candidate.generated > 0
    assert rep.candidate.latency["generate"].n == rep.candidate.cases - rep.candidate.cache_hits
    assert any("the baseline errored on 6 of 60" in n for n in rep.notes)
    assert rep.diff.metric("instructions_strict", "all") is not None
    assert rep.diff.metric("format_pass", "all") is not None
    assert {"all", "geo=eu", "device=web"} <= {a.segment for a in rep.agreement}
    assert any(r.metric == "error_rate" and r.status == "fail" for r in rep.results)
    _same(rep, want)


@pytest.mark.parametrize("candidate", ["format_broken", "coarse_ivf"])
def test_candidates_that_change_answers_or_rankings_report_what_the_whole_runs_give(world: World,
                                                                                    candidate: str) -> None:
    rep, want = _replayed(plan_replay(world.request(candidate)))
    agree = next(a for a in rep.agreement if a.segment == "all")
    if candidate == "format_broken":
        assert agree.answer_exact == 0.0 and agree.answer_token_f1 is not None and agree.answer_token_f1 < 1.0
    else:
        assert agree.ranking_jaccard is not None and agree.ranking_jaccard < 1.0
    assert rep.status == "fail"
    _same(rep, want)


def test_a_replay_never_loads_a_run_whole(world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import harness.pipeline
    import harness.runs

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cold-cache"))  # fresh calls, some refused

    def refuse(*args: Any, **kw: Any) -> Any:
        raise AssertionError("a run was loaded whole")

    for cls in (harness.runs.RunTable, *harness.runs.RunTable.__subclasses__()):
        monkeypatch.setattr(cls, "materialize", refuse)
    monkeypatch.setattr(harness.runs, "load_run", refuse)
    monkeypatch.setattr(harness.pipeline.RunReport, "run", property(refuse))
    opened: list[Any] = []
    open_run = harness.runs.open_run

    def spy(*args: Any, **kw: Any) -> Any:
        table = open_run(*args, **kw)
        opened.append(table)
        return table

    monkeypatch.setattr(harness.runs, "open_run", spy)
    world.srv.push(Fault.bad_request("no (fake)"), match=SYSTEM_NEUTRAL, times=3)  # errors: the first is fetched
    try:
        rep = run_replay(plan_replay(world.request("neutral", sample=30, seed=5)))
    finally:
        world.srv.clear_faults()
    assert rep.selection.replayed == 30 and rep.candidate.cases == 30 and rep.candidate.errors == 3
    assert rep.status == "fail" and any(r.metric == "error_rate" and "first:" in r.message for r in rep.results)
    assert len(opened) == 2 and {t.header.run_id for t in opened} == {rep.baseline.run_id, rep.candidate.run_id}
    with pytest.raises(AssertionError, match="loaded whole"):  # the patches were in force
        harness.runs.load_run(rep.candidate.run_path)
    with pytest.raises(AssertionError, match="loaded whole"):
        opened[0].materialize()


def test_agreement_and_moves_of_runs_in_another_order_match_the_whole_runs(faulted: tuple[ReplayReport,
                                                                                          ReplayReport]) -> None:
    """The head's batches fetch the base's outputs by id when the two runs do not hold the same cases in the
    same order (a case only in one run, another order): the same as the whole-run computation."""
    rep, _ = faulted
    base, head = load_run(rep.baseline.run_path), load_run(rep.candidate.run_path)
    plan_contracts = engine._contracts(load_manifest(Path(rep.baseline.manifest_path)))
    keep = list(range(len(base.outputs)))[::-1][3:]  # reversed, the last three cases gone
    shuffled = base.model_copy(update={"cases": tuple(base.cases[i] for i in keep),
                                       "outputs": tuple(base.outputs[i] for i in keep)})
    b, h = RunColumns.from_result(shuffled, batch_rows=7), RunColumns.from_result(head, batch_rows=7)
    assert b.batches is not None and h.batches is not None
    agreement, moves = engine._compared(b, h, plan_contracts, b.batches, h.batches)
    assert agreement == oracle.agreement(shuffled, head, plan_contracts)
    assert moves == oracle.moves(shuffled, head)
    same = RunColumns.from_result(base, batch_rows=7)
    assert same.batches is not None
    got = engine._compared(same, h, plan_contracts, same.batches, h.batches)
    assert got == (oracle.agreement(base, head, plan_contracts), oracle.moves(base, head))
    assert got != (agreement, moves)  # the missing cases change something: the comparison can fail


# --- selection -----------------------------------------------------------------------------------------


def _doubled(read: Any, prepend: bool) -> Any:
    """``read_records`` with in-table duplicates (copies of rows 0..4, row 2 twice more and row 7, appended
    or put first) and two blank queries: rows 7 and 11 when the copies are appended (row 7's later copy is
    then the first with a query: replayed), else rows 40 and 50 (the duplicates come first)."""

    def read_records(*args: Any, **kw: Any) -> pa.Table:
        table = read(*args, **kw)
        extra = table.take(pa.array([0, 1, 2, 3, 4, 2, 2, 7]))
        both = pa.concat_tables([extra, table] if prepend else [table, extra])
        queries = both["query"].to_pylist()
        for i in ((40, 50) if prepend else (7, 11)):
            queries[i] = "  \t"
        return both.set_column(both.schema.get_field_index("query"), "query", pa.array(queries, pa.string()))

    return read_records


@pytest.mark.parametrize(("sample", "prepend"), [(None, False), (10, False), (45, False), (None, True), (20, True)])
def test_selection_in_batches_is_the_whole_table_selection(world: World, monkeypatch: pytest.MonkeyPatch,
                                                           sample: int | None, prepend: bool) -> None:
    monkeypatch.setattr(engine, "read_records", _doubled(engine.read_records, prepend))
    monkeypatch.setattr(engine, "_SELECT_ROWS", 7)  # many slices over 68 records
    req = world.request("neutral")
    monitor = req.candidate.manifest.monitor
    assert monitor is not None
    got = engine._select(req, monitor, sample, 3)
    want = oracle.select(req, monitor, sample, 3)
    assert got == want
    assert got[1].model_dump_json() == want[1].model_dump_json()  # the reasons in the same order too
    assert list(want[1].skipped.items()) == ([("duplicate record id", 8), ("no query", 2)] if prepend
                                             else [("no query", 2), ("duplicate record id", 7)])
    assert want[1].matched == N_LOGGED + 8
    assert want[1].replayed == (N_LOGGED + 8 - 2 - (8 if prepend else 7) if sample is None else sample)


def test_ids_that_only_share_a_hash_are_both_kept() -> None:
    ids = ["a", "b", "a", "c", "b", "d"]
    table = pa.table({"record_id": pa.array(ids, pa.string())})
    rows = np.array([0, 1, 2, 3, 4, 5])
    same_hash = np.zeros(len(ids), dtype=np.int64)  # every id collides
    assert engine._first_of_each_id(table, rows, same_hash).tolist() == [0, 1, 3, 5]
    honest = np.array([hash(i) for i in ids], dtype=np.int64)
    assert engine._first_of_each_id(table, rows, honest).tolist() == [0, 1, 3, 5]
    assert engine._first_of_each_id(table, np.array([1, 2, 3, 4]), honest).tolist() == [1, 2, 3]
