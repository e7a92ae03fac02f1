"""Rendering diffs and gate verdicts: rich tables on a terminal, plain text when piped, markdown
for pull-request comments and $GITHUB_STEP_SUMMARY."""

from __future__ import annotations

import re

from rich.markup import escape

from harness.diff import Diff, MetricDelta
from harness.gates import Verdict
from harness.report.mdtext import md_code, md_text
from harness.report.xmltext import visible

# Everything printed here that a user or an endpoint controls (case ids, tags, rule names, artifact roles,
# versions and params, gate messages, text diffs) goes through one of these at the print boundary:
# control characters are made visible (``\x1b``), rich markup is escaped where rich renders it, and
# markdown table cells cannot end their cell.


def _t(value: object) -> str:
    """One line of plain text (printed with markup off, or by click)."""
    return visible(value)


def _r(value: object) -> str:
    """Text rich renders as markup (table cells, titles, marked-up lines): ``[red]`` is shown, not obeyed."""
    return escape(visible(value))


def _md(value: object) -> str:
    """Text in a markdown table cell or list item (:func:`harness.report.mdtext.md_text`)."""
    return md_text(value)


def _f(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x:+.1%}" if pct else f"{x:.4f}"


def _share(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def _p(x: float | None) -> str:
    return "n/a" if x is None else (f"{x:.3g}" if x >= 0.001 else "<0.001")


def delta_mark(m: MetricDelta) -> str:
    """How a metric delta reads in every report: REGRESSED or improved when significant, (noise) when not."""
    if m.direction == "regressed" and m.significant:
        return "REGRESSED"
    if m.direction == "improved" and m.significant:
        return "improved"
    return "" if m.direction == "unchanged" or m.delta is None else "(noise)"


def family_text(diff: Diff) -> str:
    """What the adjusted p-values were corrected over: the diff's one family, read by every front end."""
    n = len(diff.metrics) + len(diff.segments)
    return (f"paired {diff.settings.test} test, {diff.settings.correction} correction over the "
            f"{diff.family_size} of {n} metric x segment tests that could reach significance, alpha "
            f"{diff.settings.alpha}; n/a: outside the family (no case changed, or too few to be significant)")


def verdict_markdown(verdict: Verdict, note: str = "") -> list[str]:
    """The gate's verdict as markdown lines: the headline, the counts, one table row per check."""
    icon = "PASS" if verdict.passed else "FAIL"
    lines = [f"## harness gate: {icon}", "",
             f"{len(verdict.failed)} failed, {len(verdict.skipped)} skipped of {len(verdict.results)} checks."
             + (f" {note}" if note else ""), ""]
    lines += ["| rule | segment | status | detail |", "|---|---|---|---|"]
    for r in verdict.results:
        lines.append(f"| {_md(r.rule)} | {_md(r.segment or 'all')} | {r.status.upper()} | {_md(r.message)} |")
    lines.append("")
    return lines


SHOWN_FLIPS_MD = 15
"""Flipped cases :func:`diff_markdown` lists (by default)."""
SHOWN_FLIPS_TEXT = 10
"""Flipped cases :func:`print_diff` lists."""


def flip_count(diff: Diff) -> int:
    """How many paired cases flipped: ``Diff.flips_total`` when the diff kept only the largest flips
    (``compare(max_flips=...)``), else ``len(diff.flips)``."""
    return len(diff.flips) if diff.flips_total is None else diff.flips_total


def diff_markdown(diff: Diff, verdict: Verdict | None = None, max_flips: int = SHOWN_FLIPS_MD) -> str:
    lines: list[str] = []
    if verdict is not None:
        lines += verdict_markdown(verdict)
    lines += [f"### Diff: base {md_code(diff.base_run)} -> head {md_code(diff.head_run)}", ""]
    if diff.artifacts:
        lines += ["**Changed artifacts**", ""]
        for a in diff.artifacts:
            ver = f"{_md(a.base_version or '-')} -> {_md(a.head_version or '-')}"
            sha = f"{md_code((a.base_sha256 or '-')[:12])} -> {md_code((a.head_sha256 or '-')[:12])}"
            lines.append(f"- {md_code(a.role)} ({_md(a.kind)}) {_md(a.change)}: {ver}, {sha}")
            for k, (old, new) in (a.params_diff or {}).items():
                lines.append(f"  - {md_code(k)}: {md_code(old)} -> {md_code(new)}")
        lines.append("")
    else:
        lines += ["No artifact changed.", ""]
    lines += [
        f"**Metrics** ({family_text(diff)})",
        "",
        "| metric | base | head | delta | rel | 95% CI | p (adj) | W/T/L | |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in diff.metrics:
        if m.role != "quality":
            continue
        ci = "n/a" if m.ci_low is None else f"[{m.ci_low:+.4f}, {m.ci_high:+.4f}]"
        lines.append(
            f"| {_md(m.metric)} | {_f(m.base_mean)} | {_f(m.head_mean)} | "
            f"{'n/a' if m.delta is None else f'{m.delta:+.4f}'} | {_f(m.rel_delta, True)} | {ci} | "
            f"{_p(m.p_adjusted)} | {m.wins}/{m.ties}/{m.losses} | {delta_mark(m)} |"
        )
    sig_segments = [s for s in diff.segments if s.significant and s.role == "quality"]
    if sig_segments:
        lines += [
            "",
            "**Significant segment changes**",
            "",
            "| segment (n) | metric | base | head | delta | p (adj) |",
            "|---|---|---|---|---|---|",
        ]
        for s in sig_segments:
            lines.append(
                f"| {_md(s.segment)} ({diff.segment_sizes.get(s.segment, s.n)}) | {_md(s.metric)} | "
                f"{_f(s.base_mean)} | {_f(s.head_mean)} | {s.delta:+.4f} | {_p(s.p_adjusted)} |"
            )
    flipped = flip_count(diff)
    if flipped:
        lines += [
            "",
            f"**Cases that flipped** ({flipped}; top {min(max_flips, flipped, len(diff.flips))} by impact)",
            "",
        ]
        for f in diff.flips[:max_flips]:
            moves = ", ".join(
                f"{m} {b:.2f}->{h:.2f}" for m, (b, h) in list(f.deltas.items())[:4] if b is not None and h is not None
            )
            lines.append(f"- {md_code(f.case_id)} {f.direction}: {_md(moves)}; {_md('; '.join(f.causes))}")
    if diff.only_in_base or diff.only_in_head:
        lines += [
            "",
            f"**Cases in one run only**: base only {_md(list(diff.only_in_base))}, "
            f"head only {_md(list(diff.only_in_head))}",
        ]
    shifts = [s for s in diff.score_shift if s.psi is not None]
    if shifts:
        lines += [
            "",
            "**Retrieval score distribution**: "
            + "; ".join(
                f"{s.which} mean {s.base_mean:.3f}->{s.head_mean:.3f}, PSI {s.psi:.3f}, KS {s.ks_statistic:.3f} "
                f"(p {_p(s.ks_p_value)})"
                for s in shifts
                if s.base_mean is not None and s.head_mean is not None and s.ks_statistic is not None
            ),
        ]
    c = diff.calibration
    if c is not None:
        lines += [
            "",
            f"**Score calibration** (top-{c.k} scores as relevance probability, Platt map fitted on base; "
            f"real scores only): ECE {_f(c.ece_base)} -> {_f(c.ece_head)}, Brier {_f(c.brier_base)} -> "
            f"{_f(c.brier_head)}; relevant passages in top-{c.k}: base {_share(c.in_top_k_share_base)} "
            f"({c.relevant_in_top_k_base}/{c.relevant_base}), head {_share(c.in_top_k_share_head)} "
            f"({c.relevant_in_top_k_head}/{c.relevant_head}); among them, base's {c.target_recall:.0%}-recall "
            f"threshold {_f(c.threshold)} keeps {_share(c.kept_base_at_threshold)} in base, "
            f"{_share(c.kept_head_at_threshold)} in head",
        ]
    for a in diff.artifacts:
        if a.text_diff:
            body = visible(a.text_diff.rstrip(), keep="\n\t")
            fence = "`" * max(3, 1 + max((len(run) for run in re.findall("`+", body)), default=0))
            lines += [
                "",
                f"<details><summary>{_md(a.role)} diff</summary>",
                "",
                f"{fence}diff",  # longer than any run of backticks in the diff: the file cannot end the block
                body,
                fence,
                "</details>",
            ]
    return "\n".join(lines) + "\n"


def print_diff(diff: Diff, verdict: Verdict | None = None) -> None:
    from rich.table import Table

    from harness.report.console import make_console

    console = make_console()
    if diff.artifacts:
        t = Table(title="changed artifacts")
        for col in ("role", "kind", "change", "version", "sha256"):
            t.add_column(col)
        for a in diff.artifacts:
            t.add_row(
                _r(a.role),
                _r(a.kind),
                _r(a.change),
                _r(f"{a.base_version or '-'} -> {a.head_version or '-'}"),
                _r(f"{(a.base_sha256 or '-')[:12]} -> {(a.head_sha256 or '-')[:12]}"),
            )
        console.print(t)
        for a in diff.artifacts:
            if a.params_diff:
                console.print(
                    f"[bold]{_r(a.role)}[/] params: "
                    + _r(", ".join(f"{k}: {o} -> {n}" for k, (o, n) in a.params_diff.items()))
                )
            if a.text_diff:
                console.print(visible(a.text_diff, keep="\n\t"), markup=False, highlight=False)
    t = Table(title=_r(f"diff {diff.base_run} -> {diff.head_run}"))
    for col in ("metric", "base", "head", "delta", "rel", "95% CI", "p adj", "W/T/L", ""):
        t.add_column(col, justify="right" if col not in ("metric", "") else "left")
    for m in diff.metrics:
        if m.role != "quality":
            continue
        style = "red" if delta_mark(m) == "REGRESSED" else "green" if delta_mark(m) == "improved" else None
        ci = "n/a" if m.ci_low is None else f"[{m.ci_low:+.3f}, {m.ci_high:+.3f}]"
        t.add_row(
            _r(m.metric),
            _f(m.base_mean),
            _f(m.head_mean),
            "n/a" if m.delta is None else f"{m.delta:+.4f}",
            _f(m.rel_delta, True),
            ci,
            _p(m.p_adjusted),
            f"{m.wins}/{m.ties}/{m.losses}",
            delta_mark(m),
            style=style,
        )
    console.print(t)
    console.print(f"p adj: {family_text(diff)}", markup=False, highlight=False)
    shown = diff.flips[:SHOWN_FLIPS_TEXT]
    for f in shown:
        console.print(f"  {f.direction:<9} {_t(f.case_id)}: {_t('; '.join(f.causes))}", markup=False, highlight=False)
    if flip_count(diff) > len(shown):
        console.print(f"  ... {flip_count(diff) - len(shown)} more flipped cases (--json for all)")
    if diff.only_in_base or diff.only_in_head:
        console.print(f"cases only in base: {_t(list(diff.only_in_base))}; only in head: {_t(list(diff.only_in_head))}",
                      markup=False, highlight=False)
    if verdict is not None:
        print_verdict(verdict, console)


def print_verdict(verdict: Verdict, console: object | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    from harness.report.console import make_console

    con = console if isinstance(console, Console) else make_console()
    counts = f"{len(verdict.failed)} failed, {len(verdict.skipped)} skipped of {len(verdict.results)}"
    t = Table(title="gate: " + ("PASS" if verdict.passed else "FAIL") + f" ({counts})")
    for col in ("rule", "segment", "status", "detail"):
        t.add_column(col)
    for r in verdict.results:
        style = {"fail": "red", "pass": "green", "skip": "yellow"}[r.status]
        t.add_row(_r(r.rule), _r(r.segment or "all"), r.status.upper(), _r(r.message), style=style)
    con.print(t)
