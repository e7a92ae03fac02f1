"""The plugin's options and configuration: flags and ini keys from the one definition in
:mod:`harness.options`, their values (command line, then ini, then default), and the configuration checks.

Configuration mistakes are one usage error before anything runs: a manifest file that does not exist or
does not load, a threshold naming a metric the manifest's scorers do not produce, a run-level metric, a
case or tag scope no golden case has, a gate rule naming an unknown metric, stage or segment tag (each
with a did-you-mean).
"""

from __future__ import annotations

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
    parse_thresholds,
)
from harness.pytest.state import STATE, State

if TYPE_CHECKING:
    from harness.types import GoldenCase


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
    state = State(
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


def _check_config(state: State) -> None:
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
        check_scopes(state.thresholds, list(cases))
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


def check_scopes(thresholds: list[Threshold], cases: list[GoldenCase]) -> None:
    """A threshold scoped to a case id or tag=value that no case has is a typo, not a no-op."""
    from harness.errors import HarnessError

    ids = {c.id for c in cases}
    segments = {s for c in cases for s in c.segments()}
    for t in thresholds:
        if t.scope is None:
            continue
        if t.level == "case" and t.scope not in ids:
            raise HarnessError(f"threshold '{t}' [{t.source}] names case {t.scope!r}, which is not in the golden set")
        if t.level == "tag":
            tag, _, value = t.scope.partition("=")
            if f"{tag.strip()}={value.strip()}" not in segments:
                raise HarnessError(f"threshold '{t}' [{t.source}]: no golden case is tagged {t.scope}",
                                   hint=f"segments: {', '.join(sorted(segments)) or 'none'}")


def _covered(config: pytest.Config, path: Path) -> bool:
    here = config.invocation_params.dir
    for arg in config.args:
        target = (here / arg.split("::", 1)[0]).resolve()
        if target == path or (target.is_dir() and path.is_relative_to(target)):
            return True
    return False


def _add_collection_arg(config: pytest.Config, path: Path, explicit: bool) -> bool:
    """Collect the manifest with the default arguments (or when the flag asked for it), once; True when
    it will be collected.

    When the manifest is in the collection arguments (``pytest``, ``pytest .``, or given by the
    ``--harness-manifest`` flag) its cases are collected; ``pytest tests/test_x.py`` with only the ini
    key set leaves them out."""
    if _covered(config, path):
        return True
    if not explicit and config.args_source == pytest.Config.ArgsSource.ARGS:
        return False
    config.args.append(str(path))
    return True
