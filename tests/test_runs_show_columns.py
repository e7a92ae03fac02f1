"""`harness runs show` reads a format-4 run's header, its error columns and the few errored cases' records
it quotes, never the whole run; what it prints is what the whole-run summary was (the oracle below: the
summary as it was computed from the loaded run), for runs with many errors of several kinds, none, and an
old single-file run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.report.console import error_summary
from harness.runs import RunStore, load_run
from harness.types import RunResult
from tests.reliability.clirun import cli_in_process
from tests.report.test_report_columns import make_run


def _size(path: Path) -> int:
    """The run's size as the store's scan gives it (header and table)."""
    return next(r.size for r in RunStore(path.parent.parent).scan() if r.path == path)


def _whole_summary(run: RunResult, path: Path) -> dict[str, Any]:
    """What `runs show --json` printed when it loaded the run whole (the command's code before columns)."""
    return {
        "run_id": run.run_id, "created_at": run.created_at, "path": str(path), "size_bytes": _size(path),
        "baseline": None,
        "manifest": {"name": run.manifest.name, "id": run.manifest_id, "path": run.manifest_path,
                     "description": run.manifest.description},
        "artifacts": {role: a.model_dump(mode="json", include={"kind", "version", "path", "uri", "sha256"})
                      for role, a in run.manifest.artifacts.items()},
        "scorers": [s.model_dump(mode="json") for s in run.scorers],
        "environment": run.environment, "counts": run.counts, "stage_seconds": run.stage_seconds,
        "aggregates": run.aggregates.model_dump(mode="json"), "errors": error_summary(run.outputs),
    }


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


@pytest.mark.parametrize(("n", "error_rate"), [(200, 0.3), (40, 0.0), (25, 1.0)])
def test_show_of_a_format_4_run_equals_the_whole_run_summary_without_loading_it(
        home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, n: int,
        error_rate: float) -> None:
    run = make_run(n, n, run_id=f"20260102T000000Z-s{n:05d}", error_rate=error_rate)
    path = RunStore(home / "runs").save(run)
    expected = _whole_summary(load_run(path), path)
    if error_rate >= 0.3:  # more errors per kind than the summary quotes: counted from the columns
        assert all(e["count"] > 5 for e in expected["errors"]["by_kind"].values())

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("the run was loaded whole")

    import harness.baseline  # noqa: F401 - imported before load_run is patched (it binds load_run at import)
    from harness import runs

    monkeypatch.setattr(runs, "load_run", refuse)
    monkeypatch.setattr(runs._ParquetRun, "materialize", refuse)
    monkeypatch.setattr(runs._ParquetRun, "iter_batches", refuse)
    code, out, err = cli_in_process(capsys, "runs", "show", run.run_id, "--json")
    assert code == 0, err
    assert json.loads(out) == expected
    code, out, err = cli_in_process(capsys, "runs", "show", run.run_id)
    assert code == 0, err
    total = expected["errors"]["total"]
    if total:
        assert f"errors: {total} of {n} cases" in out
        for kind, entry in expected["errors"]["by_kind"].items():
            assert f"  {kind} ({entry['stage']}): {entry['count']}, e.g. {', '.join(entry['cases'])}:" in out
    else:
        assert "errors: none" in out


def test_show_of_an_old_single_file_run_is_unchanged(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(30, 3, run_id="20260102T000001Z-old003", error_rate=0.4)
    path = home / "runs" / run.manifest_id / f"{run.run_id}.json"
    path.parent.mkdir(parents=True)
    path.write_text(run.model_dump_json(indent=1))  # format 3: open_run loads it whole
    code, out, err = cli_in_process(capsys, "runs", "show", run.run_id, "--json")
    assert code == 0, err
    assert json.loads(out) == _whole_summary(load_run(path), path)
