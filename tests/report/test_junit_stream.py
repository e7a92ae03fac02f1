"""`harness report RUN --format junit` of a format-4 run is streamed (harness.report.export.run_junit_table):
the suite's totals from the columns, then the test cases batch by batch, written through
harness.storage.atomic_writer. run_junit of the materialized run is the same builder over the run held in memory
(its suite time summed from the records, not the columns; the golden texts of test_report_golden.py pin the
text): over generated runs with errors of every stage, unscored and all-unscored cases, thresholds, tags,
characters XML cannot hold, three latency stages and no cases at all, the stream is byte for byte that text;
the command never loads the run whole; a failure mid-stream leaves no file and no temp file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from click.testing import CliRunner

from harness.aggregate import aggregate
from harness.errors import HarnessError
from harness.metrics.ir import MetricInfo
from harness.report import FailurePolicy
from harness.report.export import run_junit, run_junit_table
from harness.runs import RunStore, RunTable, load_run, open_run
from harness.storage import atomic_write_bytes, atomic_write_chunks, atomic_writer
from harness.types import CaseError, RunResult, Score
from tests.report.test_report_columns import make_run, refuse_whole

POLICIES = [FailurePolicy(), FailurePolicy(thresholds={"answer_f1": 0.4, "unsupported_claims": 0.5}),
            FailurePolicy(thresholds={"ndcg@10": 0.9})]


def reaggregated(run: RunResult, scores: list[Score]) -> RunResult:
    """``run`` with these scores, its aggregates and unscored count computed again."""
    infos = {m: MetricInfo(name=m, base=m, cutoff=None, greater_is_better=s.greater_is_better, description="",
                           role=s.role, label=s.label) for m, s in run.aggregates.overall.items()}
    counts = dict(run.counts, unscored=sum(1 for s in scores if s.value is None))
    return run.model_copy(update={"scores": tuple(scores), "aggregates": aggregate(run.cases, scores, infos),
                                  "counts": counts})


def _stored(tmp_path: Path, run: RunResult) -> Path:
    return RunStore(tmp_path / "runs").save(run)


def _streamed(table: RunTable, policy: FailurePolicy | None, rows: int) -> str:
    chunks = list(run_junit_table(table, policy, rows=rows))
    assert len(chunks) >= 2  # the head, ..., the end: never one string of the whole report
    return "".join(chunks)


def _check(tmp_path: Path, run: RunResult, policies: list[FailurePolicy | None], rows: int = 17) -> str:
    path = _stored(tmp_path, run)
    table = open_run(path)
    whole = table.materialize()
    out = ""
    for policy in policies:
        expected = run_junit(whole, policy)
        out = _streamed(table, policy, rows)
        assert out == expected
        ET.fromstring(out.encode())  # and it parses
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_the_streamed_junit_of_a_stored_run_equals_the_whole_run_junit(tmp_path: Path, seed: int) -> None:
    run = make_run(130, seed, run_id=f"20260101T000000Z-j{seed:05d}", error_rate=0.2)
    assert {o.error.stage for o in run.outputs if o.error} == {"retrieve", "generate"}
    text = _check(tmp_path, run, [None, *POLICIES])
    suite = ET.fromstring(text.encode())
    assert int(suite.get("errors", "0")) > 0 and int(suite.get("failures", "0")) > 0
    assert len(suite.findall("testcase")) == 130
    for rows in (1, 129, 130, 10_000):  # batch edges
        assert _streamed(open_run(_stored(tmp_path / f"r{rows}", run)), POLICIES[1], rows) == \
            run_junit(run, POLICIES[1])


def test_all_unscored_cases_are_skipped_alike(tmp_path: Path) -> None:
    run = make_run(60, 5, run_id="20260101T000001Z-jskip", error_rate=0.0)
    ids = {o.case_id for i, o in enumerate(run.outputs) if i % 3 == 0}
    scores = [s.model_copy(update={"value": None, "explanation": "not applicable: no answer"})
              if s.case_id in ids else s for s in run.scores]
    unscored = reaggregated(run, scores)
    text = _check(tmp_path, unscored, [None, POLICIES[1]])
    assert int(ET.fromstring(text.encode()).get("skipped", "0")) >= len(ids) - 5
    # a case without a single score is not skipped (nothing is unscored for it): it passes
    none = {o.case_id for i, o in enumerate(run.outputs) if i % 3 == 1}
    text = _check(tmp_path / "none", reaggregated(run, [s for s in scores if s.case_id not in none]), [None])
    assert ET.fromstring(text.encode()).get("skipped") == str(len(ids))
    every = [s.model_copy(update={"value": None}) for s in run.scores]  # every case unscored
    text = _check(tmp_path / "all", reaggregated(run, every), [None])
    assert ET.fromstring(text.encode()).get("skipped") == "60"


def with_control_characters(run: RunResult) -> RunResult:
    """``run`` with characters XML cannot hold in every answer, error message and explanation of a 0 value."""
    outputs = [o.model_copy(update={"answer": f"a\x00b\x1b[31m{i}", "error": None if o.error is None else
                                    CaseError(stage=o.error.stage, kind=o.error.kind,
                                              message=f"bad \x00 byte \x1b[0m \ufffe {i}")})
               for i, o in enumerate(run.outputs)]
    scores = [s.model_copy(update={"explanation": "missed \x1b[1m\x07 <d3>"}) if s.value == 0.0 else s
              for s in run.scores]
    return reaggregated(run.model_copy(update={"outputs": tuple(outputs)}), scores)


def test_characters_xml_cannot_hold_are_escaped_alike(tmp_path: Path) -> None:
    run = with_control_characters(make_run(40, 6, run_id="20260101T000002Z-jctrl", error_rate=0.3))
    text = _check(tmp_path, run, [None, POLICIES[1]])
    assert "\\x00" in text and "\\x1b" in text and "\x1b" not in text and "\x00" not in text


def test_three_latency_stages_no_golden_cases_and_no_cases(tmp_path: Path) -> None:
    run = make_run(50, 7, run_id="20260101T000003Z-jstag", with_cases=False)
    outputs = [o.model_copy(update={"latency_s": {**o.latency_s, "rerank": (i % 9) * 0.0137}})
               for i, o in enumerate(run.outputs)]
    _check(tmp_path, run.model_copy(update={"outputs": tuple(outputs)}), [None, POLICIES[0]])
    empty = make_run(0, 8, run_id="20260101T000004Z-jnone")
    text = _check(tmp_path / "empty", empty, [None])
    assert ET.fromstring(text.encode()).get("tests") == "0"


def test_the_junit_command_streams_a_format_4_run_and_never_loads_it_whole(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.commands.report import report as report_cmd

    run = make_run(70, 9, run_id="20260101T000005Z-jcmd", error_rate=0.2)
    path = _stored(tmp_path, run)
    expected = run_junit(load_run(path), FailurePolicy(thresholds={"answer_f1": 0.4}))
    refuse_whole(monkeypatch)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "x.xml"
    res = CliRunner().invoke(report_cmd, [str(path), "--format", "junit", "-o", str(out), "--fail-below",
                                          "answer_f1=0.4"])
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == expected.encode("utf-8")
    res = CliRunner().invoke(report_cmd, [str(path), "--format", "junit", "--fail-below", "answer_f1=0.4"])
    assert res.exit_code == 0, res.output
    assert res.stdout == expected


def test_a_failure_mid_stream_leaves_no_file_and_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    from harness.commands.report import report as report_cmd

    run = make_run(50, 10, run_id="20260101T000006Z-jfail")
    path = _stored(tmp_path, run)
    real = RunTable.__subclasses__()
    cls = next(c for c in real if c.__name__ == "_ParquetRun")
    original = cls.iter_batches

    def broken(self: Any, rows: int = 10_000) -> Any:
        it = original(self, rows=rows)
        yield next(it)
        raise HarnessError("the table broke after one batch")

    monkeypatch.setattr(cls, "iter_batches", broken)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    res = CliRunner().invoke(report_cmd, [str(path), "--format", "junit", "-o", str(out_dir / "x.xml")])
    assert res.exit_code == 2 and "the table broke" in res.output
    assert list(out_dir.iterdir()) == []
    # a file already there is kept as it was
    (out_dir / "x.xml").write_text("old")
    res = CliRunner().invoke(report_cmd, [str(path), "--format", "junit", "-o", str(out_dir / "x.xml")])
    assert res.exit_code == 2
    assert [p.name for p in out_dir.iterdir()] == ["x.xml"] and (out_dir / "x.xml").read_text() == "old"


def test_the_atomic_writer_streams_keeps_the_mode_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.bin"
    with atomic_writer(target) as fh:
        fh.write(b"one ")
        assert not target.exists()  # nothing at the path until the block ends
        fh.write(b"two")
    assert target.read_bytes() == b"one two"
    os.chmod(target, 0o640)
    atomic_write_bytes(target, b"three")  # the one implementation: the same mode rules
    assert target.read_bytes() == b"three" and target.stat().st_mode & 0o777 == 0o640

    class Boom(Exception):
        pass

    with pytest.raises(Boom), atomic_writer(target) as fh:
        fh.write(b"half")
        raise Boom
    assert target.read_bytes() == b"three" and sorted(p.name for p in target.parent.iterdir()) == ["f.bin"]

    def chunks() -> Any:
        yield b"a"
        raise Boom("from the chunks")

    with pytest.raises(Boom, match="from the chunks"):  # passes through as it is, not as "cannot write"
        atomic_write_chunks(tmp_path / "new.bin", chunks())
    assert not (tmp_path / "new.bin").exists() and not list(tmp_path.glob(".new.bin.*"))
    atomic_write_chunks(tmp_path / "new.bin", iter([b"x", b"", b"yz"]))
    assert (tmp_path / "new.bin").read_bytes() == b"xyz"
    (tmp_path / "folder").mkdir()
    with pytest.raises(HarnessError, match="cannot write"):
        atomic_write_chunks(tmp_path / "folder", iter([b"x"]))


def test_the_suite_time_of_a_run_in_memory_is_its_cases_times_summed_whatever_their_stage_order() -> None:
    """run_junit(RunResult) goes through run_junit_table: a run held in memory sums each case's seconds from
    its record (as its test case's time), so cases listing their stages in different orders add up exactly as
    the whole-run code added them; by the stage columns they would not."""
    import numpy as np

    from harness.report.export import _junit_totals
    from harness.report.source import result_table

    run = make_run(2, 11, run_id="20260101T000007Z-jorder")
    a, b, c = 0.255, 0.495, 0.449  # (a + b) + c != (a + c) + b in floats, and so are the two cases' totals
    outputs = [o.model_copy(update={"latency_s": {"retrieve": a, "generate": b, "rerank": c} if i % 2 == 0
                                    else {"retrieve": a, "rerank": c, "generate": b}})
               for i, o in enumerate(run.outputs)]
    run = run.model_copy(update={"outputs": tuple(outputs)})
    by_records = 0.0
    for o in run.outputs:
        by_records += sum(o.latency_s.values())
    table = result_table(run)
    by_columns = 0.0
    for seconds in sum(table.columns(latency=True).latency.values(), np.zeros(len(run.outputs))).tolist():
        by_columns += seconds
    assert by_columns != by_records  # the orders tell apart
    assert _junit_totals(table, FailurePolicy())[3] == by_records
    suite = ET.fromstring(run_junit(run).encode())
    assert suite.get("time") == f"{by_records:.3f}"
    assert [case.get("time") for case in suite.findall("testcase")] == \
        [f"{sum(o.latency_s.values()):.3f}" for o in run.outputs]
