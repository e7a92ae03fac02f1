"""A monitor pass as text (a terminal or a pipe), markdown (a CI summary, an issue) and JSON: the faces of
:class:`harness.monitor.model.MonitorReport` that ``harness monitor`` prints.

Every face opens on the verdict (``ok``, ``alarm`` or ``cannot_judge``, with why), then the alarms, one row
each: signal, segment, comparison and windows (reference -> current), test, effect, Benjamini-Hochberg
adjusted p and what moved; then the SLO and log-contract failures and what could not be judged; then the
counts (the size of the test family, untestable tests, day-over-day moves set aside as seasonality under
:attr:`harness.stats.drift.AlarmReport.rule`), the sample sizes of the expensive signals and every
not-judged reason. A pass where all is well stays a few lines. Nothing here computes a statistic or a
verdict: the report holds them; these functions only lay them out.

User-controlled text (segment values, field names, window labels, details) goes through
:func:`harness.report.xmltext.visible` in plain text (no control character reaches the terminal) and through
:func:`harness.report.mdtext.md_text` / :func:`~harness.report.mdtext.md_code` in markdown. The plain text
uses no rich markup, so it reads the same in a pipe, a log file and a cron mail.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from harness.monitor.model import AlarmGroup, ContractFinding, MonitorReport, SampleNote, SLOResult
from harness.report.mdtext import md_code, md_text
from harness.report.xmltext import visible
from harness.stats.drift import Alarm

__all__ = ["STATUS_WORD", "monitor_json", "monitor_text", "verdict_reason"]

Format = Literal["text", "md"]

STATUS_WORD = {"ok": "OK", "alarm": "ALARM", "cannot_judge": "CANNOT JUDGE"}
"""How each status reads in a headline (the JSON keeps the status itself)."""

MAX_LISTED = 20  # not-judged reasons and seasonal moves listed in text/md before "... N more"


# ---- values -------------------------------------------------------------------------------------------


def num(x: float | None) -> str:
    """A statistic or observed value: four significant digits, ``n/a`` when undefined."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.4g}"


def pval(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.3g}"  # alarms live at small p: 0.00042 and 1e-12 are shown, not "<0.001"


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def windows_text(reference: str, current: str) -> str:
    return f"{reference} -> {current}"


def comparison_text(a: Alarm) -> str:
    """The alarm's comparison, and the aligned week-over-week test that confirmed a day-over-day one."""
    text = a.test.comparison.replace("_", "-")
    return text + " + week-over-week" if a.confirmed_by is not None else text


def confirmed_text(a: Alarm) -> str:
    """The confirming week-over-week test's windows, for a day-over-day alarm ("" for any other)."""
    c = a.confirmed_by
    if c is None:
        return ""
    return f"confirmed by week-over-week {c.reference} -> {c.current}, {c.test} p {pval(c.p_value)}"


def _alpha(report: MonitorReport) -> str:
    alpha = report.settings.get("alpha")
    return f", alpha {alpha}" if isinstance(alpha, (int, float)) and not isinstance(alpha, bool) else ""


def verdict_reason(report: MonitorReport) -> str:
    """Why the report's status is what it is, in one sentence (the headline of every face)."""
    d = report.drift
    status = report.status
    not_judged_slo = sum(1 for r in report.slo if r.status == "not_judged")
    not_judged_contract = sum(1 for c in report.contracts if c.status == "not_judged")
    tail = []
    if not_judged_slo:
        tail.append(f"{plural(not_judged_slo, 'SLO limit')} not judged")
    if not_judged_contract:
        tail.append(f"{plural(not_judged_contract, 'contract check')} not judged")
    if report.not_judged:
        tail.append(f"{plural(len(report.not_judged), 'comparison')} not made")
    if status == "alarm":
        parts = []
        if d.alarms:
            parts.append(plural(len(d.alarms), "drift alarm"))
        if report.slo_failures:
            parts.append(plural(len(report.slo_failures), "SLO failure"))
        if report.contract_failures:
            parts.append(plural(len(report.contract_failures), "log-contract failure"))
        head = ", ".join(parts)
        if d.alarms:
            head += f" (of {plural(d.n_tests, 'test')}, Benjamini-Hochberg adjusted{_alpha(report)})"
    elif status == "cannot_judge":
        if not report.windows:
            head = "no window to judge"
        elif d.n_tests == 0 and report.n_records:
            head = "no drift test could be made"
        else:
            head = "; ".join(report.cannot_judge) or "nothing could be judged"
    else:
        passed_slo = sum(1 for r in report.slo if r.status == "pass")
        passed_contract = sum(1 for c in report.contracts if c.status == "pass")
        head = (f"no drift alarm in {plural(d.n_tests, 'test')}{_alpha(report)}; "
                f"{plural(passed_slo, 'SLO limit')} and {plural(passed_contract, 'contract check')} pass")
    return head + ("; " + ", ".join(tail) if tail else "")


def scope_text(report: MonitorReport) -> str:
    """Which windows, segments and how many records the pass judged."""
    w = report.windows
    span = "no window" if not w else (w[0] if len(w) == 1 else f"{w[0]} .. {w[-1]}")
    return (f"windows {span} ({len(w)}), {plural(len(report.segments), 'segment')}, "
            f"{plural(report.n_records, 'record')}")


def sample_lines(samples: Sequence[SampleNote]) -> list[tuple[str, str]]:
    """(signal, how many records it used) per sampled signal, over all its windows and segments."""
    by_signal: dict[str, list[SampleNote]] = {}
    for s in samples:
        by_signal.setdefault(s.signal, []).append(s)
    out = []
    for signal, notes in by_signal.items():
        sampled = sum(s.sampled for s in notes)
        total = sum(s.total for s in notes)
        lo, hi = min(s.sampled for s in notes), max(s.sampled for s in notes)
        per = f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}"
        out.append((signal, f"{sampled:,} of {total:,} records ({per} per window and segment, over "
                            f"{plural(len(notes), 'window-segment pair')})"))
    return out


def settings_text(report: MonitorReport) -> str:
    return ", ".join(f"{k} {v}" for k, v in report.settings.items())


# ---- tables -------------------------------------------------------------------------------------------

Row = list[str]


def tests_text(group: AlarmGroup) -> str:
    """The shown test, and the others that agreed: ``psi (+ ks, wasserstein)``."""
    rest = group.tests[1:]
    return group.tests[0] + (f" (+ {', '.join(rest)})" if rest else "")


def group_comparison_text(group: AlarmGroup) -> str:
    shown = comparison_text(group.alarm)
    others = [c.replace("_", "-") for c in group.comparisons if c.replace("_", "-") not in shown]
    return shown + "".join(f" + {o}" for o in others)


def _alarm_rows(report: MonitorReport) -> tuple[Row, list[Row]]:
    head = ["signal", "segment", "comparison", "windows", "test", "effect", "p adj", "moved"]
    rows = [[g.alarm.test.signal, g.alarm.test.segment, group_comparison_text(g),
             windows_text(g.alarm.test.reference, g.alarm.test.current), tests_text(g), num(g.alarm.test.effect),
             pval(g.alarm.p_adjusted), g.alarm.test.moved or "-"] for g in report.alarm_groups]
    return head, rows


def _slo_rows(results: Sequence[SLOResult]) -> tuple[Row, list[Row]]:
    head = ["window", "segment", "limit", "observed", "threshold", "n", "status", "detail"]
    rows = [[r.window, r.segment, r.limit, num(r.observed), num(r.threshold), f"{r.n:,}", r.status.replace("_", " "),
             r.detail or "-"] for r in results]
    return head, rows


def _contract_rows(findings: Sequence[ContractFinding]) -> tuple[Row, list[Row]]:
    head = ["window", "check", "field", "observed", "threshold", "status", "detail"]
    rows = [[c.window, c.check.replace("_", " "), c.field, num(c.observed), num(c.threshold),
             c.status.replace("_", " "), c.detail or "-"] for c in findings]
    return head, rows


# cells that are names (shown as code in markdown); the rest is running text
_CODE_COLUMNS = {"signal", "field", "test"}
_NUMERIC = {"effect", "p adj", "observed", "threshold", "n"}


def _plain_table(head: Row, rows: list[Row], indent: str = "  ") -> list[str]:
    cells = [[visible(c) for c in row] for row in [head, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    out = []
    for r in cells:
        parts = [c.rjust(w) if head[i] in _NUMERIC else c.ljust(w)
                 for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        out.append((indent + "  ".join(parts)).rstrip())
    return out


def _md_table(head: Row, rows: list[Row]) -> list[str]:
    def cell(col: str, value: str) -> str:
        if col in _CODE_COLUMNS and value != "-":
            return md_code(value, cell=True)
        return md_text(value)

    align = ["---:" if h in _NUMERIC else "---" for h in head]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(cell(h, v) for h, v in zip(head, row, strict=True)) + " |" for row in rows]
    return out


# ---- the faces -----------------------------------------------------------------------------------------


def monitor_text(report: MonitorReport, *, fmt: Format = "text") -> str:
    """The verdict table of a monitor pass as plain text (``fmt="text"``) or markdown (``fmt="md"``)."""
    if fmt not in ("text", "md"):
        raise ValueError(f"monitor_text: fmt is 'text' or 'md', not {fmt!r}")
    md = fmt == "md"
    t = md_text if md else visible
    lines: list[str] = []

    def section(title: str, head: Row, rows: list[Row]) -> None:
        if md:
            lines.extend(["", f"**{title}**", "", *_md_table(head, rows)])
        else:
            lines.extend(["", f"{title}:", *_plain_table(head, rows)])

    def bullets(title: str, items: Sequence[str]) -> None:
        if not items:
            return
        shown = [t(i) for i in items[:MAX_LISTED]]
        if len(items) > MAX_LISTED:
            shown.append(f"... {len(items) - MAX_LISTED} more (--format json lists all)")
        lines.extend(["", f"**{title}**", ""] if md else ["", f"{title}:"])
        lines.extend(f"- {s}" if md else f"  - {s}" for s in shown)

    word = STATUS_WORD[report.status]
    reason = t(verdict_reason(report))
    project = md_code(report.project) if md else visible(report.project)
    if md:
        lines += [f"## harness monitor {project}: {word}", "", f"**{word}**: {reason}", "", t(scope_text(report))]
    else:
        lines += [f"monitor {project}: {word}: {reason}", t(scope_text(report))]

    d = report.drift
    if d.alarms:
        groups = report.alarm_groups
        section(f"drift alarms ({plural(len(groups), 'signal-segment-day')}, {plural(len(d.alarms), 'alarmed test')})",
                *_alarm_rows(report))
    if report.slo_failures:
        section(f"SLO failures ({len(report.slo_failures)})", *_slo_rows(report.slo_failures))
    slo_nj = [r for r in report.slo if r.status == "not_judged"]
    if slo_nj:
        section(f"SLO limits not judged ({len(slo_nj)})", *_slo_rows(slo_nj))
    if report.contract_failures:
        section(f"log-contract failures ({len(report.contract_failures)})", *_contract_rows(report.contract_failures))
    con_nj = [c for c in report.contracts if c.status == "not_judged"]
    if con_nj:
        section(f"log-contract checks not judged ({len(con_nj)})", *_contract_rows(con_nj))

    counts = (f"tests: {d.n_tests:,} in the family, {d.untestable:,} untestable (no p-value), "
              f"{plural(len(d.seasonal), 'seasonal move')} set aside")
    rule = d.alarms or d.seasonal or d.unconfirmed  # the rule explains alarms and moves set aside; else noise
    if md:
        lines += ["", f"{counts}." + (f" Rule: {md_text(d.rule)}." if rule else "")]
    else:
        lines += ["", counts] + ([f"rule: {visible(d.rule)}"] if rule else [])
    bullets("unconfirmed: day-over-day moves no week-over-week comparison can tell from seasonality",
            [f"{a.test.signal} {a.test.segment}: {windows_text(a.test.reference, a.test.current)} {a.test.test} "
             f"p adj {pval(a.p_adjusted)}; {a.test.moved}" for a in d.unconfirmed])
    bullets("set aside as seasonality (day-over-day only)",
            [f"{a.test.signal} {a.test.segment}: {windows_text(a.test.reference, a.test.current)} {a.test.test} "
             f"p adj {pval(a.p_adjusted)}" for a in d.seasonal])
    samples = sample_lines(report.samples)
    if samples:
        if md:
            lines += ["", "**Sampled signals**", ""] + [f"- {md_code(s)}: {md_text(v)}" for s, v in samples]
        else:
            lines += ["", "sampled signals:"] + [f"  - {visible(s)}: {visible(v)}" for s, v in samples]
    bullets("not judged", list(report.not_judged))
    if report.settings:
        lines += ["", f"settings: {t(settings_text(report))}"]
    return "\n".join(lines) + "\n"


def _clean(value: Any) -> Any:
    """JSON's own values: tuples as lists, a non-finite float as None (never NaN), other keys as strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, (str, int)):
        return value
    return str(value)  # a setting such as a path: as it prints


def monitor_json(report: MonitorReport) -> dict[str, Any]:
    """:meth:`MonitorReport.to_json` as plain JSON values (``json.dumps(..., allow_nan=False)`` takes it)."""
    out = _clean(report.to_json())
    assert isinstance(out, dict)
    return out
