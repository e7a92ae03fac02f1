"""``harness diff`` / ``harness gate`` read stored format-4 runs as columns (harness.baseline.read_columns:
RunTable.columns, records fetched by id or streamed only where needed) and give what the record-based diff
and gate give on the same runs loaded whole; an older run file still loads whole, as before."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings

from harness.baseline import read_columns
from harness.columns import RunColumns
from harness.diff import DiffSettings, compare
from harness.gates import gate
from harness.runs import RunStore, load_run, new_run_id
from harness.types import RunResult
from tests.diff.record_oracle.oracle_compute import compare as oracle_compare
from tests.diff.record_oracle.oracle_gates import gate as oracle_gate
from tests.diff.test_diff_columns import RULES, dump, runs

SETTINGS = DiffSettings(n_resamples=32, k=3)


def stored_run(root: Path, run: RunResult) -> Path:
    """The run saved as format 4 (which keeps one golden case per output, in the outputs' order)."""
    from harness.types import GoldenCase

    cases = {c.id: c for c in run.cases}
    full = tuple(cases.get(o.case_id) or GoldenCase(id=o.case_id, query=o.case_id) for o in run.outputs)
    return RunStore(root / "runs").save(run.model_copy(update={"run_id": new_run_id(), "cases": full}))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=[Phase.generate])
@given(runs("base"), runs("head"))
def test_stored_runs_read_as_columns_diff_and_gate_as_loaded_runs(base: RunResult, head: RunResult) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pb, ph = stored_run(Path(tmp), base), stored_run(Path(tmp), head)
        cb, ch = read_columns(pb, None), read_columns(ph, None)
        assert isinstance(cb, RunColumns) and isinstance(ch, RunColumns)
        lb, lh = load_run(pb), load_run(ph)
        assert dump(compare(cb, ch, SETTINGS)) == dump(oracle_compare(lb, lh, SETTINGS))
        got, expected = gate(RULES, ch, cb, settings=SETTINGS), oracle_gate(RULES, lh, lb, settings=SETTINGS)
        assert got.results == expected.results


def test_an_older_run_file_loads_whole(tmp_path: Path) -> None:
    from harness.types import Aggregates, CaseOutput, Manifest, MetricSummary, Score
    from tests.diff.test_diff_columns import IDS

    run = RunResult(run_id=new_run_id(), created_at="", manifest_id="m", manifest=Manifest(name="m", artifacts={}),
                    outputs=tuple(CaseOutput(case_id=c) for c in IDS),
                    scores=tuple(Score(case_id=c, metric="ndcg", value=0.5) for c in IDS),
                    aggregates=Aggregates(overall={"ndcg": MetricSummary(mean=0.5, n=len(IDS), n_unscored=0)}))
    path = tmp_path / "m" / f"{run.run_id}.json"
    path.parent.mkdir()
    path.write_text(json.dumps(run.model_dump(mode="json")))
    read = read_columns(path, None)
    assert isinstance(read, RunResult) and read == load_run(path)
    assert dump(compare(read, read)) == dump(oracle_compare(run, run))
