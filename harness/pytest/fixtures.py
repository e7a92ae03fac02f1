"""Fixtures for hand-written tests: ``harness_manifest`` (LoadedManifest), ``harness_run`` (RunResult) and
``harness_case`` (:class:`HarnessCase`). A test using ``harness_case`` is parametrized over the golden cases
by id, with the tag markers, unless it parametrizes ``harness_case`` itself with case ids (``indirect=True``).
Without a configured manifest the fixtures skip.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from harness.options import MANIFEST
from harness.pytest.items import case_markers
from harness.pytest.state import RunFailed, RunView, State, get_state

if TYPE_CHECKING:
    from harness.manifest import LoadedManifest
    from harness.types import CaseOutput, GoldenCase, RunResult


@dataclass(frozen=True)
class HarnessCase:
    """One golden case with what the run produced for it and its scores (metric -> value or None)."""

    id: str
    case: GoldenCase
    output: CaseOutput
    scores: Mapping[str, float | None]
    explanations: Mapping[str, str | None]

    def score(self, metric: str) -> float | None:
        """The case's value of ``metric`` (None: unscored); KeyError for a metric the run does not have."""
        try:
            return self.scores[metric]
        except KeyError:
            raise KeyError(f"case {self.id} has no metric {metric!r}; metrics: {', '.join(sorted(self.scores))}") \
                from None


def _require_state(config: pytest.Config) -> State:
    state = get_state(config)
    if state is None:
        pytest.skip(f"no harness manifest configured (pass {MANIFEST.pytest_flag} or set the "
                    f"{MANIFEST.ini_name} ini key)")
    return state


def _view_or_fail(config: pytest.Config, state: State) -> RunView:
    try:
        return state.run(config)
    except RunFailed as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def harness_manifest(pytestconfig: pytest.Config) -> LoadedManifest:
    """The loaded manifest (skips when no manifest is configured)."""
    return _require_state(pytestconfig).load()[0]


@pytest.fixture(scope="session")
def harness_run(pytestconfig: pytest.Config) -> RunResult:
    """This session's run of the manifest (run lazily, once per process)."""
    state = _require_state(pytestconfig)
    return _view_or_fail(pytestconfig, state).run


@pytest.fixture
def harness_case(request: pytest.FixtureRequest) -> HarnessCase:
    """The golden case this test is parametrized with, its output and its scores."""
    state = _require_state(request.config)
    case_id = getattr(request, "param", None)
    if case_id is None:
        pytest.skip("harness_case is not parametrized (the plugin parametrizes it when a manifest is configured)")
    _, cases = state.load()
    case = next((c for c in cases if c.id == case_id), None)
    if case is None:
        pytest.fail(f"harness_case: no golden case with id {case_id!r}", pytrace=False)
    view = _view_or_fail(request.config, state)
    output = view.outputs.get(case.id)
    if output is None:
        pytest.fail(f"harness_case: the run has no output for case {case.id!r}", pytrace=False)
    by_metric = view.scores.get(case.id, {})
    return HarnessCase(id=case.id, case=case, output=output, scores={m: s.value for m, s in by_metric.items()},
                       explanations={m: s.explanation for m, s in by_metric.items()})


def _parametrizes(metafunc: pytest.Metafunc, name: str) -> bool:
    for mark in metafunc.definition.iter_markers("parametrize"):
        argnames = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
        names = [n.strip() for n in argnames.split(",")] if isinstance(argnames, str) else list(argnames)
        if name in names:
            return True
    return False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "harness_case" not in metafunc.fixturenames:
        return
    state = get_state(metafunc.config)
    if state is None or _parametrizes(metafunc, "harness_case"):
        return
    _, cases = state.load()
    params = []
    for c in cases:
        marks = [getattr(pytest.mark, n) for n in case_markers(metafunc.config, state, c)]
        params.append(pytest.param(c.id, id=c.id, marks=marks))
    metafunc.parametrize("harness_case", params, indirect=True)
