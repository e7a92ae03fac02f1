"""Rendering diffs and gate verdicts: rich tables on a terminal, plain text when piped, markdown
for pull-request comments and $GITHUB_STEP_SUMMARY."""

from __future__ import annotations

from harness.diff import Diff, MetricDelta
from harness.gates import Verdict


def _f(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x:+.1%}" if pct else f"{x:.4f}"


def _share(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def _p(x: float | None) -> str:
    return "n/a" if x is None else (f"{x:.3g}" if x >= 0.001 else "<0.001")


def _mark(m: MetricDelta) -> str:
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
        lines.append(f"| {r.rule} | {r.segment or 'all'} | {r.status.upper()} | {r.message} |")
    lines.append("")
    return lines


def diff_markdown(diff: Diff, verdict: Verdict | None = None, max_flips: int = 15) -> str:
    lines: list[str] = []
    if verdict is not None:
        lines += verdict_markdown(verdict)
    lines += [f"### Diff: base `{diff.base_run}` -> head `{diff.head_run}`", ""]
    if diff.artifacts:
        lines += ["**Changed artifacts**", ""]
        for a in diff.artifacts:
            ver = f"{a.base_version or '-'} -> {a.head_version or '-'}"
            sha = f"`{(a.base_sha256 or '-')[:12]}` -> `{(a.head_sha256 or '-')[:12]}`"
            lines.append(f"- `{a.role}` ({a.kind}) {a.change}: {ver}, {sha}")
            for k, (old, new) in (a.params_diff or {}).items():
                lines.append(f"  - `{k}`: `{old}` -> `{new}`")
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
        if m.metric.startswith("format_fail:"):
            continue
        ci = "n/a" if m.ci_low is None else f"[{m.ci_low:+.4f}, {m.ci_high:+.4f}]"
        lines.append(
            f"| {m.metric} | {_f(m.base_mean)} | {_f(m.head_mean)} | "
            f"{'n/a' if m.delta is None else f'{m.delta:+.4f}'} | {_f(m.rel_delta, True)} | {ci} | "
            f"{_p(m.p_adjusted)} | {m.wins}/{m.ties}/{m.losses} | {_mark(m)} |"
        )
    sig_segments = [s for s in diff.segments if s.significant and not s.metric.startswith("format_fail:")]
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
                f"| {s.segment} ({diff.segment_sizes.get(s.segment, s.n)}) | {s.metric} | "
                f"{_f(s.base_mean)} | {_f(s.head_mean)} | {s.delta:+.4f} | {_p(s.p_adjusted)} |"
            )
    if diff.flips:
        lines += [
            "",
            f"**Cases that flipped** ({len(diff.flips)}; top {min(max_flips, len(diff.flips))} by impact)",
            "",
        ]
        for f in diff.flips[:max_flips]:
            moves = ", ".join(
                f"{m} {b:.2f}->{h:.2f}" for m, (b, h) in list(f.deltas.items())[:4] if b is not None and h is not None
            )
            lines.append(f"- `{f.case_id}` {f.direction}: {moves}; {'; '.join(f.causes)}")
    if diff.only_in_base or diff.only_in_head:
        lines += [
            "",
            f"**Cases in one run only**: base only {list(diff.only_in_base)}, head only {list(diff.only_in_head)}",
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
            lines += [
                "",
                f"<details><summary>{a.role} diff</summary>",
                "",
                "```diff",
                a.text_diff.rstrip(),
                "```",
                "</details>",
            ]
    return "\n".join(lines) + "\n"


def print_diff(diff: Diff, verdict: Verdict | None = None) -> None:
    from rich.table import Table

    from harness.render import make_console

    console = make_console()
    if diff.artifacts:
        t = Table(title="changed artifacts")
        for col in ("role", "kind", "change", "version", "sha256"):
            t.add_column(col)
        for a in diff.artifacts:
            t.add_row(
                a.role,
                a.kind,
                a.change,
                f"{a.base_version or '-'} -> {a.head_version or '-'}",
                f"{(a.base_sha256 or '-')[:12]} -> {(a.head_sha256 or '-')[:12]}",
            )
        console.print(t)
        for a in diff.artifacts:
            if a.params_diff:
                console.print(
                    f"[bold]{a.role}[/] params: " + ", ".join(f"{k}: {o} -> {n}" for k, (o, n) in a.params_diff.items())
                )
            if a.text_diff:
                console.print(a.text_diff, markup=False, highlight=False)
    t = Table(title=f"diff {diff.base_run} -> {diff.head_run}")
    for col in ("metric", "base", "head", "delta", "rel", "95% CI", "p adj", "W/T/L", ""):
        t.add_column(col, justify="right" if col not in ("metric", "") else "left")
    for m in diff.metrics:
        if m.metric.startswith("format_fail:"):
            continue
        style = "red" if _mark(m) == "REGRESSED" else "green" if _mark(m) == "improved" else None
        ci = "n/a" if m.ci_low is None else f"[{m.ci_low:+.3f}, {m.ci_high:+.3f}]"
        t.add_row(
            m.metric,
            _f(m.base_mean),
            _f(m.head_mean),
            "n/a" if m.delta is None else f"{m.delta:+.4f}",
            _f(m.rel_delta, True),
            ci,
            _p(m.p_adjusted),
            f"{m.wins}/{m.ties}/{m.losses}",
            _mark(m),
            style=style,
        )
    console.print(t)
    console.print(f"p adj: {family_text(diff)}", markup=False, highlight=False)
    for f in diff.flips[:10]:
        console.print(f"  {f.direction:<9} {f.case_id}: {'; '.join(f.causes)}", markup=False)
    if len(diff.flips) > 10:
        console.print(f"  ... {len(diff.flips) - 10} more flipped cases (--json for all)")
    if diff.only_in_base or diff.only_in_head:
        console.print(f"cases only in base: {list(diff.only_in_base)}; only in head: {list(diff.only_in_head)}")
    if verdict is not None:
        print_verdict(verdict, console)


def print_verdict(verdict: Verdict, console: object | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    from harness.render import make_console

    con = console if isinstance(console, Console) else make_console()
    counts = f"{len(verdict.failed)} failed, {len(verdict.skipped)} skipped of {len(verdict.results)}"
    t = Table(title="gate: " + ("PASS" if verdict.passed else "FAIL") + f" ({counts})")
    for col in ("rule", "segment", "status", "detail"):
        t.add_column(col)
    for r in verdict.results:
        style = {"fail": "red", "pass": "green", "skip": "yellow"}[r.status]
        t.add_row(r.rule, r.segment or "all", r.status.upper(), r.message, style=style)
    con.print(t)
