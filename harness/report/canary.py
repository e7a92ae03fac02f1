"""A canary verdict as text, markdown and JSON: the faces of :class:`harness.shadow.model.CanaryReport` that
``harness canary`` prints, and the lines a rollback prints (:func:`rolled_back_lines`, also used by
``harness rollback``).

Every face opens on the status with why, then the two sides (manifest id, records, first and last record in
the compared windows), the Kayenta-style score per segment (``all`` first), the tests that failed or could
not be judged (signal, segment, test, both sides' values, effect with its interval, relative move, adjusted
p, classification: the per-segment evidence), how many passed, the ``[[canary.gates]]`` results, what a
``--rollback`` put back, and the notes. Markdown also lists every test in a collapsed block. Nothing here
computes a statistic or a verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from harness.report.mdtext import md_text
from harness.report.monitor import num, plural, pval
from harness.report.replay import (
    STATUS_WORD,
    dumps,
    first_reason,
    gate_verdict,
    headline,
    md_table,
    reason_lines,
    render,
    say,
    table,
)
from harness.report.xmltext import visible

if TYPE_CHECKING:
    from rich.console import Console

    from harness.shadow.model import CanaryReport, CanaryScore, CanarySide, CanaryTest, RolledBack

__all__ = ["canary_json", "canary_md", "canary_reason", "canary_text", "rolled_back_lines"]


def canary_reason(report: CanaryReport) -> str:
    if report.reasons:
        return first_reason(report.reasons)
    overall = next((s for s in report.scores if s.segment == "all"), None)
    score = "" if overall is None or overall.score is None else f"score {overall.score:.1f} "
    failed = sum(1 for t in report.tests if t.failed)
    if report.status == "pass":
        return (f"{score}(pass at {report.pass_score:g}); no signal failed in "
                f"{plural(len(report.tests), 'test')}").strip()
    return f"{score}(pass at {report.pass_score:g}); {plural(failed, 'test')} failed".strip()


def side_text(side: CanarySide) -> str:
    where = f" ({side.manifest_path})" if side.manifest_path else ""
    span = f", {side.first} .. {side.last}" if side.first or side.last else ""
    return f"{side.label}: manifest {side.manifest_id[:12]}{where}, {plural(side.records, 'record')}{span}"


def windows_text(report: CanaryReport) -> str:
    w = report.windows
    if not w:
        return "no window in which both sides served"
    span = w[0] if len(w) == 1 else f"{w[0]} .. {w[-1]}"
    return f"{plural(len(w), 'window')} compared ({span})"


def family_text(report: CanaryReport) -> str:
    return (f"{plural(report.family_size, 'test')} in the family, {report.correction} correction, alpha "
            f"{report.alpha:g}; a signal fails when its adjusted p is below alpha, it moved past its tolerance in "
            f"its bad direction, or it has too few records (nodata)")


SCORE_HEAD = ["segment", "score", "passed", "judged", "nodata", "critical failed", "status"]
SCORE_RIGHT = ["score", "passed", "judged", "nodata"]
TEST_HEAD = ["signal", "segment", "test", "bad", "n base/canary", "baseline", "canary", "effect [CI]", "relative",
             "p adj", "class"]
TEST_RIGHT = ["n base/canary", "baseline", "canary", "effect [CI]", "relative", "p adj"]
ROLLBACK_HEAD = ["role", "kind", "version", "sha256", "file restored"]


def _score_rows(scores: Sequence[CanaryScore]) -> list[list[str]]:
    return [[s.segment, "n/a" if s.score is None else f"{s.score:.1f}", f"{s.passed:,}", f"{s.judged:,}",
             f"{s.nodata:,}", ", ".join(s.critical_failed) or "-", STATUS_WORD[s.status]] for s in scores]


def _effect(t: CanaryTest) -> str:
    if t.effect is None:
        return "n/a"
    ci = "" if t.ci_low is None or t.ci_high is None else f" [{t.ci_low:+.4g}, {t.ci_high:+.4g}]"
    return f"{t.effect:+.4g}{ci}"


def _test_rows(tests: Sequence[CanaryTest]) -> list[list[str]]:
    rows = []
    for t in tests:
        mark = t.classification.upper() if t.failed else t.classification
        if t.message and t.classification == "nodata":  # the row's numbers say the rest; why no data, they do not
            mark += f": {t.message}"
        rel = "n/a" if t.relative is None else f"{t.relative:+.1%}"
        rows.append([t.signal + (" (critical)" if t.critical else ""), t.segment, t.test, t.bad,
                     f"{t.baseline_n:,}/{t.canary_n:,}", num(t.baseline_value), num(t.canary_value), _effect(t), rel,
                     pval(t.p_adjusted), mark])
    return rows


def _version(before: str | None, after: str | None) -> str:
    return f"{before or '-'} -> {after or '-'}"


def _rollback_rows(records: Sequence[RolledBack]) -> list[list[str]]:
    return [[r.role, r.kind, _version(r.before_version, r.after_version),
             _version((r.before_sha256 or "")[:12] or None, (r.after_sha256 or "")[:12] or None),
             "- (removed: the baseline had no such artifact)" if r.removed else r.restored_file or "- (pin only)"]
            for r in records]


def rolled_back_lines(records: Sequence[RolledBack]) -> list[str]:
    """One plain line per role put back: ``prompt (prompt): answer-plain -> answer, sha 1a2b.. -> 3c4d..,
    restored prompts/answer.toml`` (user values made visible)."""
    out = []
    for role, kind, version, sha, restored in _rollback_rows(records):
        restored_text = restored.removeprefix("- (").removesuffix(")") if restored.startswith("-") else \
            f"restored {restored}"
        out.append(visible(f"{role} ({kind}): {version}, sha256 {sha}, {restored_text}"))
    return out


def _rollback_summary(report: CanaryReport) -> str | None:
    if report.rolled_back is None:
        return None
    if not report.rolled_back:
        return "rolled back: nothing (the project already pins the baseline's artifacts)"
    return f"rolled back {plural(len(report.rolled_back), 'role')} to the baseline's pins"


def canary_text(report: CanaryReport, color: bool = False) -> str:
    from harness.report.text import print_verdict

    def body(con: Console) -> None:
        headline(con, "canary", report.status, canary_reason(report))
        for line in reason_lines(report.reasons, md=False):
            say(con, line)
        for side in (report.baseline, report.canary):
            say(con, visible(side_text(side)))
        say(con, visible(windows_text(report)))
        if report.scores:
            table(con, f"score per segment (pass at {report.pass_score:g}, marginal at {report.marginal_score:g})",
                  SCORE_HEAD, _score_rows(report.scores), SCORE_RIGHT)
        shown = [t for t in report.tests if t.failed or t.classification == "nodata"]
        if shown:
            table(con, f"failed or not judged ({len(shown)} of {len(report.tests)} tests)", TEST_HEAD,
                  _test_rows(shown), TEST_RIGHT)
        say(con, f"{len(report.tests) - len(shown):,} of {plural(len(report.tests), 'test')} pass; "
            + visible(family_text(report)))
        if report.results:
            print_verdict(gate_verdict(report.results, None, report.canary.manifest_id), con)
        summary = _rollback_summary(report)
        if summary is not None:
            say(con, summary)
            if report.rolled_back:
                table(con, "rolled back", ROLLBACK_HEAD, _rollback_rows(report.rolled_back))
        for note in report.notes:
            say(con, f"note: {visible(note)}")

    return render(color, body)


def canary_md(report: CanaryReport) -> str:
    from harness.report.text import verdict_markdown

    word = STATUS_WORD[report.status]
    lines = [f"## harness canary: {word}", "", f"**{word}**: {md_text(canary_reason(report))}",
             *reason_lines(report.reasons, md=True), "", "**Compared**", ""]
    lines += [f"- {md_text(side_text(s))}" for s in (report.baseline, report.canary)]
    lines += [f"- {md_text(windows_text(report))}", ""]
    if report.scores:
        lines += [f"**Score per segment** (pass at {report.pass_score:g}, marginal at {report.marginal_score:g})",
                  ""]
        lines += md_table(SCORE_HEAD, _score_rows(report.scores), code=["critical failed"], right=SCORE_RIGHT)
        lines.append("")
    shown = [t for t in report.tests if t.failed or t.classification == "nodata"]
    if shown:
        lines += [f"**Failed or not judged** ({len(shown)} of {len(report.tests)} tests)", ""]
        lines += md_table(TEST_HEAD, _test_rows(shown), code=["test"], right=TEST_RIGHT)
        lines.append("")
    lines += [md_text(f"{len(report.tests) - len(shown):,} of {plural(len(report.tests), 'test')} pass; "
                      + family_text(report)) + "."]
    if report.tests:
        lines += ["", "<details><summary>every test</summary>", ""]
        lines += md_table(TEST_HEAD, _test_rows(report.tests), code=["test"], right=TEST_RIGHT)
        lines += ["", "</details>"]
    if report.results:
        lines += ["", "### Gate: [[canary.gates]]"]
        lines += verdict_markdown(gate_verdict(report.results, None, report.canary.manifest_id))[1:]
    summary = _rollback_summary(report)
    if summary is not None:
        lines += ["", f"**{md_text(summary)}**"]
        if report.rolled_back:
            lines += ["", *md_table(ROLLBACK_HEAD, _rollback_rows(report.rolled_back),
                                    code=["role", "file restored"])]
    if report.notes:
        lines += ["", "**Notes**", ""] + [f"- {md_text(n)}" for n in report.notes]
    return "\n".join(lines).rstrip("\n") + "\n"


def canary_json(report: CanaryReport) -> str:
    """The report as JSON in its model's layout (``CanaryReport.model_validate_json`` reads it back)."""
    return dumps(report.model_dump(mode="json"))

