"""pytest plugin: golden cases as test items, per-case thresholds, and the release gate as one item.

A thin front end over the same core as the CLI (DESIGN principle 9): options come from
:mod:`harness.options`, the run is :func:`harness.run.execute`, the gate is
:func:`harness.gates.evaluate_gates` over :func:`harness.diff.compute_diff` against
:func:`harness.baseline.resolve_base`, exactly as ``harness gate``.

Activate it with ``--harness-manifest harness.toml`` or the ini key ``harness_manifest`` (relative to
the ini file). Without either it does nothing: no collection, no run, and the fixtures skip.

What it collects (``harness.toml::<case id>``, then ``harness.toml::gate``):

- one item per golden case, marked ``harness`` and ``<tag>_<value>`` for each tag (sanitized to an
  identifier, registered, so ``-m topic_storage`` and ``--strict-markers`` work). A case fails when
  its output carries an error or a threshold breaks (syntax in :mod:`harness.options`), with each
  broken threshold's value, limit and the score's explanation. A thresholded metric that is unscored
  for the case (``None``: no relevance judgments, no facts, ...) is not a failure by default: the
  threshold is skipped, and the case is skipped when nothing else was checked
  (``--harness-unscored=fail`` makes it a failure). A case with no thresholds passes unless it has an
  error.
- one gate item applying the manifest's ``[[gates]]`` rules to this session's run and its diff
  against the baseline, exactly as ``harness gate`` (the same p-values: the diff's one family); it
  fails listing the failed checks (a drop rule with no baseline fails unless
  ``--harness-allow-no-baseline``; errored cases fail unless an ``error_rate`` rule allows them), and
  skips (with the reason) when the manifest has no rules or every rule skipped.

Configuration mistakes are one usage error before anything runs: a manifest file that does not
exist or does not load, a threshold naming a metric the manifest's scorers do not produce, a gate
rule naming an unknown metric, stage or segment tag (each with a did-you-mean).

When the manifest is in the collection arguments (``pytest``, ``pytest .``, or given by the
``--harness-manifest`` flag) its cases are collected; ``pytest tests/test_x.py`` with only the ini
key set leaves them out.

Fixtures: ``harness_manifest`` (LoadedManifest), ``harness_run`` (RunResult), ``harness_case``
(:class:`HarnessCase`; a test using it is parametrized over the golden cases by id, with the tag
markers, unless it parametrizes ``harness_case`` itself with case ids, ``indirect=True``).

The pipeline runs lazily, once per process, on the first item or fixture that needs it (its stages
are cached, so a re-run is cheap). Under pytest-xdist the first worker runs it under a file lock
(``<harness home>/pytest.lock``) and records the run for the session; the other workers load it.
State lives in ``config.stash``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.options import (
    ALL_OPTIONS,
    ALLOW_NO_BASELINE,
    BASE,
    DIFF_OPTIONS,
    MANIFEST,
    THRESHOLD,
    UNSCORED,
    OptionSpec,
    Threshold,
    ThresholdCheck,
    check_thresholds,
    diff_settings,
    parse_thresholds,
)

if TYPE_CHECKING:
    from harness.manifest import LoadedManifest
    from harness.types import CaseOutput, GoldenCase, RunResult, Score

__all__ = ["HarnessCase", "marker_name"]

GATE_NAME = "gate"


# --- options ------------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "rag-harness (golden cases as tests; inert without a manifest)")
    for o in ALL_OPTIONS:
        text = o.pytest_help or o.help
        default = "" if o.default in (None, ()) else f"default: {o.default}; "
        kwargs: dict[str, Any] = {"dest": o.pytest_dest, "help": f"{text} ({default}ini: {o.ini_name})"}
        if o.multiple:
            kwargs.update(action="append", default=[])
        elif o.flag:
            kwargs.update(action="store_const", const=True, default=None)
        else:
            kwargs.update(default=None)
        if o.flag:
            pass
        elif o.choices is not None:
            kwargs["choices"] = list(o.choices)
        elif o.type in (int, float):
            kwargs["type"] = o.type
        if o.metavar and not o.flag:
            kwargs["metavar"] = o.metavar
        group.addoption(o.pytest_flag, **kwargs)
        if o.multiple:
            parser.addini(o.ini_name, f"{text} One per line.", type="linelist", default=[])
        else:
            parser.addini(o.ini_name, text, type="string", default="")


def _value(config: pytest.Config, o: OptionSpec) -> Any:
    """Command line first, then the ini key, then the spec's default."""
    cli = config.getoption(o.pytest_dest)
    if cli is not None:
        try:
            return o.check(cli)
        except ValueError as exc:
            raise pytest.UsageError(f"{o.pytest_flag}: {exc}") from None
    raw = config.getini(o.ini_name)
    if not raw:
        return o.default
    try:
        return o.convert(raw)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def _manifest_path(config: pytest.Config) -> tuple[Path | None, bool]:
    """(resolved manifest path or None, whether it was given on the command line)."""
    cli = config.getoption(MANIFEST.pytest_dest)
    if cli:
        return (config.invocation_params.dir / cli).resolve(), True
    raw = str(config.getini(MANIFEST.ini_name) or "").strip()
    if not raw:
        return None, False
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    return (base / raw).resolve(), False


# --- state ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RunView:
    run: RunResult
    path: Path | None
    outputs: dict[str, CaseOutput]
    scores: dict[str, dict[str, Score]]
    directions: dict[str, bool]


class _RunFailed(Exception):
    """The pipeline could not run; every item that needs it fails with this message."""


@dataclass
class _State:
    manifest_path: Path
    thresholds: list[Threshold]
    base: str | None
    unscored: str
    diff: dict[str, Any]
    allow_no_baseline: bool = False
    loaded: LoadedManifest | None = None
    cases: list[GoldenCase] | None = None
    view: _RunView | None = None
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

    def run(self, config: pytest.Config) -> _RunView:
        if self.view is not None:
            return self.view
        if self.error is not None:
            raise _RunFailed(self.error)
        from harness.errors import HarnessError

        try:
            loaded, _ = self.load()
            run, path = _run_once(config, loaded)
        except HarnessError as exc:
            from harness.redact import redact

            self.error = f"harness run failed: {redact(str(exc))}"
            raise _RunFailed(self.error) from None
        except Exception as exc:
            from harness.redact import redact

            self.error = f"harness run failed earlier in this session: {type(exc).__name__}: {redact(str(exc))}"
            raise
        outputs = {o.case_id: o for o in run.outputs}
        scores: dict[str, dict[str, Score]] = {}
        for s in run.scores:
            scores.setdefault(s.case_id, {})[s.metric] = s
        directions = {m: s.greater_is_better for m, s in run.aggregates.overall.items()}
        self.view = _RunView(run, path, outputs, scores, directions)
        return self.view


STATE = pytest.StashKey[_State]()


def _state(config: pytest.Config) -> _State | None:
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
    from harness.run import execute
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


# --- configuration ------------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    path, explicit = _manifest_path(config)
    if path is None:
        return
    lines = [(t, "ini harness_thresholds") for t in config.getini(THRESHOLD.ini_name)]
    lines += [(t, THRESHOLD.pytest_flag) for t in config.getoption(THRESHOLD.pytest_dest) or []]
    try:
        thresholds = [t for text, src in lines for t in parse_thresholds([text], src)]
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if not path.is_file():
        src = MANIFEST.pytest_flag if explicit else f"ini {MANIFEST.ini_name}"
        raise pytest.UsageError(f"harness manifest {path} ({src}) does not exist")
    state = _State(
        manifest_path=path,
        thresholds=thresholds,
        base=_value(config, BASE),
        unscored=_value(config, UNSCORED),
        diff={o.python_name: _value(config, o) for o in DIFF_OPTIONS},
        allow_no_baseline=bool(_value(config, ALLOW_NO_BASELINE)),
    )
    config.stash[STATE] = state
    config.addinivalue_line("markers", "harness: a golden case or the gate collected from the harness manifest")
    if _add_collection_arg(config, path, explicit):
        _check_config(state)


def _check_config(state: _State) -> None:
    """Configuration mistakes are one usage error before anything runs: the manifest (and its golden
    set) must load, every threshold must name a metric the manifest's scorers produce, and every gate
    rule a known metric, stage and segment tag."""
    import difflib

    from harness.errors import HarnessError
    from harness.gates import RUN_METRICS, check_gate_config, known_metrics

    try:
        loaded, cases = state.load()
        known = known_metrics(loaded)
        check_gate_config(loaded, cases)
        _check_scopes(state, list(cases))
    except HarnessError as exc:
        raise pytest.UsageError(f"harness: {exc}") from None
    for t in state.thresholds:
        if t.metric in RUN_METRICS:
            raise pytest.UsageError(f"harness: threshold '{t}' [{t.source}] names {t.metric}, a run-level metric: a "
                                    f"per-case threshold cannot judge it; use a [[gates]] rule in "
                                    f"{loaded.path.name} (e.g. metric = \"{t.metric}\" with max_rate or max_seconds)")
        if t.metric not in known:
            close = difflib.get_close_matches(t.metric, known, n=3)
            hint = f"did you mean {' or '.join(close)}?" if close else f"metrics: {', '.join(sorted(known))}"
            if ":" in t.metric and t.scope is None:
                hint += "; a scope is separated from the metric by ': ' (a colon and a space)"
            raise pytest.UsageError(f"harness: threshold '{t}' [{t.source}] names metric {t.metric!r}, which no "
                                    f"scorer of {loaded.path.name} produces ({hint})")


def _covered(config: pytest.Config, path: Path) -> bool:
    here = config.invocation_params.dir
    for arg in config.args:
        target = (here / arg.split("::", 1)[0]).resolve()
        if target == path or (target.is_dir() and path.is_relative_to(target)):
            return True
    return False


def _add_collection_arg(config: pytest.Config, path: Path, explicit: bool) -> bool:
    """Collect the manifest with the default arguments (or when the flag asked for it), once; True when
    it will be collected."""
    if _covered(config, path):
        return True
    if not explicit and config.args_source == pytest.Config.ArgsSource.ARGS:
        return False
    config.args.append(str(path))
    return True


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = _state(config)
    if state is None:
        return None
    n = len(state.thresholds)
    return [f"harness: manifest {state.manifest_path} ({n} threshold{'s' if n != 1 else ''})"]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = _state(config)
    if state is not None and state.view is not None:
        where = f" stored at {state.view.path}" if state.view.path else ""
        terminalreporter.write_line(f"harness: run {state.view.run.run_id}{where}")


# --- markers --------------------------------------------------------------------------------------------


def marker_name(tag: str, value: str) -> str:
    """``topic``, ``storage`` -> ``topic_storage``: non-identifier characters become ``_``."""
    name = re.sub(r"\W", "_", f"{tag}_{value}", flags=re.ASCII)
    return name if not name[:1].isdigit() else f"tag_{name}"


def _case_markers(config: pytest.Config, state: _State, case: GoldenCase) -> list[str]:
    names: list[str] = []
    for tag, value in sorted(case.tags.items()):
        name = marker_name(tag, value)
        if name not in state.markers:
            state.markers[name] = f"{tag}={value}"
            config.addinivalue_line("markers", f"{name}: harness golden cases tagged {tag}={value}")
        names.append(name)
    return names


# --- collection -----------------------------------------------------------------------------------------


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    state = _state(parent.config)
    if state is None or file_path.resolve() != state.manifest_path:
        return None
    return ManifestFile.from_parent(parent, path=file_path)


def _check_scopes(state: _State, cases: list[GoldenCase]) -> None:
    """A threshold scoped to a case id or tag=value that no case has is a typo, not a no-op."""
    from harness.errors import HarnessError

    ids = {c.id for c in cases}
    segments = {s for c in cases for s in c.segments()}
    for t in state.thresholds:
        if t.scope is None:
            continue
        if t.level == "case" and t.scope not in ids:
            raise HarnessError(f"threshold '{t}' [{t.source}] names case {t.scope!r}, which is not in the golden set")
        if t.level == "tag":
            tag, _, value = t.scope.partition("=")
            if f"{tag.strip()}={value.strip()}" not in segments:
                raise HarnessError(f"threshold '{t}' [{t.source}]: no golden case is tagged {t.scope}",
                                   hint=f"segments: {', '.join(sorted(segments)) or 'none'}")


def _golden_lines(path: Path) -> dict[str, int]:
    """case id -> 0-based line in a JSONL golden set (empty for other formats)."""
    if path.suffix != ".jsonl" or not path.is_file():
        return {}
    out: dict[str, int] = {}
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("id"), str):
                out.setdefault(rec["id"], i)
    return out


class ManifestFile(pytest.File):
    """The manifest as a collector: one item per golden case, then the gate."""

    def collect(self) -> Iterator[pytest.Item]:
        state = _state(self.config)
        if state is None:
            return
        loaded, cases = state.load()
        _check_scopes(state, cases)
        lines = _golden_lines(loaded.resolve("golden"))
        for case in cases:
            where = (loaded.resolve("golden"), lines[case.id]) if case.id in lines else None
            yield CaseItem.from_parent(self, name=case.id, case=case, golden=where,
                                       markers=_case_markers(self.config, state, case))
        ids = {c.id for c in cases}
        yield GateItem.from_parent(self, name=GATE_NAME if GATE_NAME not in ids else f"harness-{GATE_NAME}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]
        from harness.errors import HarnessError

        if isinstance(excinfo.value, HarnessError):
            return f"{self.path}: {excinfo.value}"
        return super().repr_failure(excinfo)


class _ItemFailure(Exception):
    """An expected failure: reported as its message, without a traceback."""


class _HarnessItem(pytest.Item):
    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, _ItemFailure | _RunFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"harness: {self.name}"

    def location_in_project(self) -> tuple[Path, int]:
        """(file, 0-based line) to report this item at."""
        return self.path, 0

    def _view(self) -> _RunView:
        state = _state(self.config)
        if state is None:  # collected only when active
            raise _RunFailed("the harness plugin is not configured")
        return state.run(self.config)


def _fmt_case(case: GoldenCase) -> str:
    query = case.query if len(case.query) <= 80 else case.query[:77] + "..."
    return f"case {case.id} ({query!r})"


class CaseItem(_HarnessItem):
    """One golden case: fails on an error or a broken threshold."""

    def __init__(self, *, case: GoldenCase, markers: list[str], golden: tuple[Path, int] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.golden = golden
        self.add_marker("harness")
        for name in markers:
            self.add_marker(name)

    def location_in_project(self) -> tuple[Path, int]:
        return self.golden or (self.path, 0)

    def runtest(self) -> None:
        state = _state(self.config)
        view = self._view()
        if state is None:
            return
        case = self.case
        out = view.outputs.get(case.id)
        if out is None:
            raise _ItemFailure(f"{_fmt_case(case)}: the run has no output for this case")
        checks = check_thresholds(state.thresholds, case, view.scores.get(case.id, {}), view.directions)
        for c in checks:
            if c.value is not None:
                self.user_properties.append((c.threshold.metric, c.value))
        problems = [f"{out.error_stage or 'run'} error: {out.error}"] if out.error else []
        broken = [c for c in checks if _breaks(c, state.unscored)]
        held = [c.message() for c in checks if not _breaks(c, state.unscored)]
        if held:
            self.add_report_section("call", "harness thresholds held or unscored", "\n".join(held))
        if problems or broken:
            lines = problems + [c.message() for c in broken]
            head = f"{_fmt_case(case)}: " + ", ".join(
                part for part in (f"{len(problems)} error" if problems else "",
                                  f"{len(broken)} of {len(checks)} thresholds broken" if broken else "") if part)
            raise _ItemFailure("\n  ".join([head, *lines]))
        unscored = [c for c in checks if c.status == "unscored"]
        if unscored and not any(c.status == "pass" for c in checks):
            pytest.skip(f"{case.id}: every thresholded metric is unscored: "
                        + "; ".join(f"{c.threshold.metric} ({c.explanation or 'no reason given'})" for c in unscored))


def _breaks(check: ThresholdCheck, unscored_policy: str) -> bool:
    return check.status in ("fail", "missing") or (check.status == "unscored" and unscored_policy == "fail")


class GateItem(_HarnessItem):
    """The manifest's gate rules on this session's run and its diff against the baseline."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_marker("harness")

    def location_in_project(self) -> tuple[Path, int]:
        try:
            lines = self.path.read_text("utf-8").splitlines()
        except OSError:
            return self.path, 0
        return self.path, next((i for i, ln in enumerate(lines) if ln.strip().startswith("[[gates]]")), 0)

    def runtest(self) -> None:
        from harness.baseline import resolve_base
        from harness.diff import compute_diff
        from harness.errors import HarnessError
        from harness.gates import IMPLICIT_ERROR_RULE, evaluate_gates
        from harness.storage import Layout

        state = _state(self.config)
        if state is None:
            return
        loaded, _ = state.load()
        rules = loaded.manifest.gates
        if not rules:
            pytest.skip(f"{loaded.path.name} has no [[gates]] rules")
        head = self._view().run
        layout = Layout.for_manifest(loaded.path)
        try:
            base, how = resolve_base(loaded, layout, state.base)
            d = None if base is None else compute_diff(base, head, diff_settings(state.diff), layout)
        except HarnessError as exc:
            raise _ItemFailure(f"gate: {exc}") from None
        verdict = evaluate_gates(rules, head, d, allow_no_baseline=state.allow_no_baseline, base=base)
        lines = [f"{r.status.upper():<4} {r.rule}{f' [{r.segment}]' if r.segment else ''}: {r.message}"
                 for r in verdict.results]
        self.add_report_section("call", "harness gate", f"base: {how}\n" + "\n".join(lines))
        if verdict.failed:
            failed = [ln for ln, r in zip(lines, verdict.results, strict=True) if r.status == "fail"]
            raise _ItemFailure("\n  ".join([f"gate: {len(failed)} of {len(lines)} checks failed (base: {how})",
                                            *failed]))
        own = [r for r in verdict.results if r.rule != IMPLICIT_ERROR_RULE]
        if all(r.status == "skip" for r in own):
            pytest.skip(f"gate: every rule skipped (base: {how}): "
                        + "; ".join(f"{r.rule}: {r.message}" for r in own))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """A skipped case is reported at its golden line (the gate at the manifest's), not at this module."""
    report = yield
    if isinstance(item, _HarnessItem) and report.skipped and isinstance(report.longrepr, tuple):
        path, line = item.location_in_project()
        report.longrepr = (str(path), line + 1, report.longrepr[2])
    return report


# --- fixtures --------------------------------------------------------------------------------------------


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


def _require_state(config: pytest.Config) -> _State:
    state = _state(config)
    if state is None:
        pytest.skip(f"no harness manifest configured (pass {MANIFEST.pytest_flag} or set the "
                    f"{MANIFEST.ini_name} ini key)")
    return state


def _view_or_fail(config: pytest.Config, state: _State) -> _RunView:
    try:
        return state.run(config)
    except _RunFailed as exc:
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
    state = _state(metafunc.config)
    if state is None or _parametrizes(metafunc, "harness_case"):
        return
    _, cases = state.load()
    params = []
    for c in cases:
        marks = [getattr(pytest.mark, n) for n in _case_markers(metafunc.config, state, c)]
        params.append(pytest.param(c.id, id=c.id, marks=marks))
    metafunc.parametrize("harness_case", params, indirect=True)
