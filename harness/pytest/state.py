"""The plugin's session state in ``config.stash``: what it was configured with, the manifest loaded once, and
the pipeline run once per test run (xdist workers share it through a file lock).

The run is lazy: the first item or fixture that needs it runs it (its stages are cached, so a re-run is
cheap). Under pytest-xdist the first worker runs it under ``<harness home>/pytest.lock`` and records the
run for the session in ``<harness home>/pytest-run.json``; the other workers load it.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.manifest import LoadedManifest
    from harness.options import Threshold
    from harness.types import CaseOutput, GoldenCase, RunResult, Score


@dataclass(frozen=True)
class RunView:
    """This session's run, indexed by case for the items and fixtures."""

    run: RunResult
    path: Path | None
    outputs: dict[str, CaseOutput]
    scores: dict[str, dict[str, Score]]
    directions: dict[str, bool]


class RunFailed(Exception):
    """The pipeline could not run; every item that needs it fails with this message."""


@dataclass
class State:
    manifest_path: Path
    thresholds: list[Threshold]
    base: str | None
    unscored: str
    diff: dict[str, Any]
    allow_no_baseline: bool = False
    loaded: LoadedManifest | None = None
    cases: list[GoldenCase] | None = None
    view: RunView | None = None
    error: str | None = None
    markers: dict[str, str] = field(default_factory=dict)

    def load(self) -> tuple[LoadedManifest, list[GoldenCase]]:
        """The manifest and its golden cases (no run; doc ids are checked by the run itself)."""
        if self.loaded is None or self.cases is None:
            from harness.golden import load_golden
            from harness.manifest import load_manifest

            if not self.manifest_path.is_file():
                from harness.errors import ManifestError

                raise ManifestError(f"harness manifest {self.manifest_path} does not exist",
                                    hint="check --harness-manifest or the harness_manifest ini key")
            loaded = load_manifest(self.manifest_path)
            self.cases = load_golden(loaded.resolve("golden"))
            self.loaded = loaded
        return self.loaded, self.cases

    def run(self, config: pytest.Config) -> RunView:
        if self.view is not None:
            return self.view
        if self.error is not None:
            raise RunFailed(self.error)
        from harness.errors import HarnessError

        try:
            loaded, _ = self.load()
            run, path = _run_once(config, loaded)
        except HarnessError as exc:
            from harness.redact import redact

            self.error = f"harness run failed: {redact(str(exc))}"
            raise RunFailed(self.error) from None
        except Exception as exc:
            from harness.redact import redact

            self.error = f"harness run failed earlier in this session: {type(exc).__name__}: {redact(str(exc))}"
            raise
        outputs = {o.case_id: o for o in run.outputs}
        scores: dict[str, dict[str, Score]] = {}
        for s in run.scores:
            scores.setdefault(s.case_id, {})[s.metric] = s
        directions = {m: s.greater_is_better for m, s in run.aggregates.overall.items()}
        self.view = RunView(run, path, outputs, scores, directions)
        return self.view


STATE = pytest.StashKey[State]()


def get_state(config: pytest.Config) -> State | None:
    """The session's state; None when no manifest is configured (the plugin is inert)."""
    return config.stash.get(STATE, None)


def _session_token(config: pytest.Config) -> str | None:
    """The id xdist gives all workers of one test run (None outside xdist)."""
    workerinput = getattr(config, "workerinput", None)
    if isinstance(workerinput, dict) and workerinput.get("testrunuid"):
        return str(workerinput["testrunuid"])
    return None


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no flock (Windows): runs may then repeat per worker, each all cache hits
        yield
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _run_once(config: pytest.Config, loaded: LoadedManifest) -> tuple[RunResult, Path | None]:
    """Execute the pipeline, once per test run: xdist workers share one run through a locked record."""
    from harness.pipeline import execute
    from harness.runs import load_run
    from harness.storage import Layout, atomic_write_json

    layout = Layout.for_manifest(loaded.path)
    token = _session_token(config) or uuid.uuid4().hex
    record_path = layout.home / "pytest-run.json"
    with _file_lock(layout.home / "pytest.lock"):
        try:
            record = json.loads(record_path.read_text("utf-8"))
        except (OSError, ValueError):
            record = {}
        if record.get("testrunuid") == token and record.get("manifest_id") == loaded.id:
            path = Path(record["path"])
            if path.is_file():
                return load_run(path), path
        report = execute(loaded, layout=layout)
        atomic_write_json(record_path, {"testrunuid": token, "manifest_id": loaded.id, "path": str(report.path),
                                        "pid": os.getpid()})
        return report.run, report.path


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = get_state(config)
    if state is None:
        return None
    n = len(state.thresholds)
    return [f"harness: manifest {state.manifest_path} ({n} threshold{'s' if n != 1 else ''})"]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = get_state(config)
    if state is not None and state.view is not None:
        where = f" stored at {state.view.path}" if state.view.path else ""
        terminalreporter.write_line(f"harness: run {state.view.run.run_id}{where}")
