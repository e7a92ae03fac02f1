"""Collection: the manifest as a pytest file, one item per golden case (with its tag markers), then the gate.

A case item fails when its output carries an error or a threshold breaks, listing each broken
threshold's value, limit and the score's explanation; a thresholded metric unscored for the case is
skipped unless ``--harness-unscored=fail``. The gate item applies the manifest's ``[[gates]]`` rules to
this session's run and its diff against the baseline, exactly as ``harness gate``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.options import ThresholdCheck, check_thresholds, diff_settings
from harness.pytest.options import check_scopes
from harness.pytest.state import RunFailed, RunView, State, get_state

if TYPE_CHECKING:
    from harness.types import GoldenCase

GATE_NAME = "gate"


# --- markers --------------------------------------------------------------------------------------------


def marker_name(tag: str, value: str) -> str:
    """``topic``, ``storage`` -> ``topic_storage``: non-identifier characters become ``_``."""
    name = re.sub(r"\W", "_", f"{tag}_{value}", flags=re.ASCII)
    return name if not name[:1].isdigit() else f"tag_{name}"


def case_markers(config: pytest.Config, state: State, case: GoldenCase) -> list[str]:
    """The case's tag markers, each registered once (so ``--strict-markers`` accepts them)."""
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
    state = get_state(parent.config)
    if state is None or file_path.resolve() != state.manifest_path:
        return None
    return ManifestFile.from_parent(parent, path=file_path)


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
        state = get_state(self.config)
        if state is None:
            return
        loaded, cases = state.load()
        check_scopes(state.thresholds, cases)
        lines = _golden_lines(loaded.resolve("golden"))
        for case in cases:
            where = (loaded.resolve("golden"), lines[case.id]) if case.id in lines else None
            yield CaseItem.from_parent(self, name=case.id, case=case, golden=where,
                                       markers=case_markers(self.config, state, case))
        ids = {c.id for c in cases}
        yield GateItem.from_parent(self, name=GATE_NAME if GATE_NAME not in ids else f"harness-{GATE_NAME}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]
        from harness.errors import HarnessError

        if isinstance(excinfo.value, HarnessError):
            return f"{self.path}: {excinfo.value}"
        return super().repr_failure(excinfo)


# --- items ----------------------------------------------------------------------------------------------


class _ItemFailure(Exception):
    """An expected failure: reported as its message, without a traceback."""


class _HarnessItem(pytest.Item):
    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, _ItemFailure | RunFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"harness: {self.name}"

    def location_in_project(self) -> tuple[Path, int]:
        """(file, 0-based line) to report this item at."""
        return self.path, 0

    def _view(self) -> RunView:
        state = get_state(self.config)
        if state is None:  # collected only when active
            raise RunFailed("the harness plugin is not configured")
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
        state = get_state(self.config)
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
        problems = [f"{out.error.stage} error: {out.error.message}"] if out.error else []
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
        from harness.errors import HarnessError
        from harness.gates import IMPLICIT_ERROR_RULE, gate
        from harness.storage import Layout

        state = get_state(self.config)
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
            verdict = gate(rules, head, base, settings=diff_settings(state.diff), layout=layout,
                           allow_no_baseline=state.allow_no_baseline)
        except HarnessError as exc:
            raise _ItemFailure(f"gate: {exc}") from None
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
