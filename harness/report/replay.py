"""A shadow replay as text (a terminal or a pipe), markdown (a CI summary, a pull-request comment) and JSON:
the faces of :class:`harness.shadow.model.ReplayReport` that ``harness replay`` prints.

Every face opens on the status (``pass``, ``fail`` or ``cannot_judge``, with why), then which logged records
were replayed, the two sides (manifest, stored run, errors, fresh calls and cache hits, wall time, latency
p50/p95/p99 per stage), the gate's results under the ``[[replay.gates]]`` or the default rules, the paired
diff of the two runs, the agreement between the two sides' answers and rankings (overall and per segment),
the label-free signals without a better side (how they moved) and the notes. The gate results and the diff
are laid out by :mod:`harness.report.text`, as ``harness gate`` and ``harness diff`` lay them out; nothing
here computes a statistic or a verdict.

User-controlled text (paths, segment values, rule names, messages) goes through
:func:`harness.report.xmltext.visible` in text (and rich's escape where rich reads markup) and through
:func:`harness.report.mdtext.md_text` / :func:`~harness.report.mdtext.md_code` in markdown.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from harness.report.mdtext import md_code, md_text
from harness.report.monitor import num, plural
from harness.report.xmltext import visible

if TYPE_CHECKING:
    from rich.console import Console

    from harness.gates import GateResult, Verdict
    from harness.shadow.model import Agreement, CheckStatus, Quantiles, ReplayReport, ReplaySide, SignalMove

__all__ = ["STATUS_WORD", "replay_json", "replay_md", "replay_reason", "replay_text"]

STATUS_WORD: dict[str, str] = {"pass": "PASS", "fail": "FAIL", "marginal": "MARGINAL", "cannot_judge": "CANNOT JUDGE"}
"""How each status reads in a headline (the JSON keeps the status itself)."""

STATUS_STYLE: dict[str, str] = {"pass": "bold green", "fail": "bold red", "marginal": "bold yellow",
                                "cannot_judge": "bold yellow"}

RULES_TEXT = {"manifest": "the candidate manifest's [[replay.gates]]",
              "default": "the default rules (no directional signal significantly worse, overall or per segment)"}


# ---- shared by the replay and canary faces ------------------------------------------------------------


class _Screen(io.StringIO):
    """A buffer that says whether it stands for a terminal: rich colours what it writes exactly then."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def render(color: bool, body: Callable[[Console], None]) -> str:
    """What ``body`` prints, as a string. ``body`` is handed a console made as every harness report makes one
    (:func:`harness.report.console.make_console`) and may call the printers of :mod:`harness.report.text`,
    which make their own: all of it lands here, in colour when ``color`` (and NO_COLOR is unset), else as
    plain 160-column text, as in a pipe."""
    from harness.report.console import make_console

    screen = _Screen(color)
    with contextlib.redirect_stdout(screen):
        body(make_console())
    return screen.getvalue()


def headline(con: Console, command: str, status: CheckStatus, reason: str) -> None:
    from rich.text import Text

    line = Text(f"{command}: ")
    line.append(STATUS_WORD[status], style=STATUS_STYLE[status])
    line.append(f": {visible(reason)}")
    con.print(line, highlight=False)


def say(con: Console, text: str) -> None:
    """One line of plain text (user values in it already made visible): printed, never read as markup."""
    con.print(text, markup=False, highlight=False, soft_wrap=True)


def table(con: Console, title: str, head: Sequence[str], rows: Sequence[Sequence[str]],
          right: Sequence[str] = ()) -> None:
    """A rich table of plain cells (made visible, never read as markup)."""
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    t = Table(title=escape(visible(title)), title_justify="left")
    for h in head:
        t.add_column(h, justify="right" if h in right else "left")
    for row in rows:
        t.add_row(*(Text(visible(c)) for c in row))
    con.print(t)


def md_table(head: Sequence[str], rows: Sequence[Sequence[str]], *, code: Sequence[str] = (),
             right: Sequence[str] = ()) -> list[str]:
    """A GitHub table: cells in ``code`` columns as code spans, the others as text."""

    def cell(col: str, value: str) -> str:
        if col in code and value not in ("", "-"):
            return md_code(value, cell=True)
        return md_text(value)

    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" if h in right else "---" for h in head) + "|"]
    out += ["| " + " | ".join(cell(h, v) for h, v in zip(head, row, strict=True)) + " |" for row in rows]
    return out


def share(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.1%}"


def millis(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x * 1000:,.0f}"


def clean(value: Any) -> Any:
    """JSON's own values: tuples as lists, a non-finite float as None (never NaN), keys as strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def dumps(data: Any) -> str:
    return json.dumps(clean(data), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def first_reason(reasons: Sequence[str]) -> str:
    """The headline's reason: the first, and how many more the report lists (:func:`reason_lines`)."""
    more = len(reasons) - 1
    return reasons[0] + (f" (and {plural(more, 'more reason')}, listed below)" if more > 0 else "")


def reason_lines(reasons: Sequence[str], md: bool) -> list[str]:
    """Every reason, one bullet each, when the headline could show only the first."""
    if len(reasons) < 2:
        return []
    if md:
        return ["", "**Why**", "", *(f"- {md_text(r)}" for r in reasons)]
    return ["why:", *(f"  - {visible(r)}" for r in reasons)]


def gate_verdict(results: Sequence[GateResult], base_run: str | None, head_run: str) -> Verdict:
    """The report's gate results as the :class:`~harness.gates.Verdict` :mod:`harness.report.text` lays out
    (passed: no rule failed; the report's status says whether everything could be judged)."""
    from harness.gates import Verdict

    return Verdict(passed=not any(r.status == "fail" for r in results), results=tuple(results),
                   base_run=base_run, head_run=head_run)


# ---- the replay's values -------------------------------------------------------------------------------


def replay_reason(report: ReplayReport) -> str:
    """Why the status is what it is, in one sentence (every face's headline)."""
    if report.reasons:
        return first_reason(report.reasons)
    failed = sum(1 for r in report.results if r.status == "fail")
    skipped = sum(1 for r in report.results if r.status == "skip")
    if report.status == "pass":
        return (f"{plural(len(report.results) - skipped, 'rule')} passed"
                + (f", {plural(skipped, 'rule')} skipped" if skipped else "")
                + f" on {plural(report.selection.replayed, 'replayed query', 'replayed queries')}")
    return f"{plural(failed, 'rule')} failed" if failed else "not every rule could be judged"


def selection_text(report: ReplayReport) -> str:
    s = report.selection
    source = "the ingested store" if s.source == "store" else s.source
    text = f"replayed {s.replayed:,} of {plural(s.matched, 'matched record')} from {source} ({s.window})"
    if s.sample is not None:
        text += f", a seeded sample of {s.sample:,} (seed {s.seed})"
    if s.skipped:
        text += "; not replayed: " + ", ".join(f"{n:,} {reason}" for reason, n in s.skipped.items())
    return text


def _side_row(side: ReplaySide) -> list[str]:
    errors = f"{side.errors:,}"
    if side.errors_by_kind:
        errors += " (" + ", ".join(f"{k} {n:,}" for k, n in side.errors_by_kind.items()) + ")"
    return [side.label, side.manifest_path, side.manifest_id[:12], side.run_id, f"{side.cases:,}", errors,
            f"{side.generated:,}", f"{side.cache_hits:,}", f"{side.seconds:.1f}"]


SIDE_HEAD = ["side", "manifest", "id", "run", "cases", "errors", "generated", "cached", "seconds"]
SIDE_RIGHT = ["cases", "generated", "cached", "seconds"]
LATENCY_HEAD = ["side", "stage", "n", "p50 ms", "p95 ms", "p99 ms"]
LATENCY_RIGHT = ["n", "p50 ms", "p95 ms", "p99 ms"]
AGREEMENT_HEAD = ["segment", "n", "same answer", "answer token F1", "ranking Jaccard", "same top doc"]
AGREEMENT_RIGHT = AGREEMENT_HEAD[1:]
MOVE_HEAD = ["signal", "segment", "n", "baseline median", "candidate median", "baseline mean", "candidate mean"]
MOVE_RIGHT = MOVE_HEAD[2:]


def _latency_rows(report: ReplayReport) -> list[list[str]]:
    rows = []
    for side in (report.baseline, report.candidate):
        q: Quantiles
        for stage, q in side.latency.items():
            if q.n == 0:  # every answer came from the cache: nothing was timed (the report's notes say so)
                continue
            rows.append([side.label, stage, f"{q.n:,}", millis(q.p50), millis(q.p95), millis(q.p99)])
    return rows


def _agreement_rows(agreement: Sequence[Agreement]) -> list[list[str]]:
    return [[a.segment, f"{a.n:,}", share(a.answer_exact), num(a.answer_token_f1), num(a.ranking_jaccard),
             share(a.top1_same)] for a in agreement]


def _move_rows(moves: Sequence[SignalMove]) -> list[list[str]]:
    return [[m.signal, m.segment, f"{m.n:,}", num(m.baseline_median), num(m.candidate_median), num(m.baseline_mean),
             num(m.candidate_mean)] for m in moves]


def stored_lines(report: ReplayReport) -> list[str]:
    """Where the two runs were stored (one line each)."""
    return [f"{s.label} run {s.run_id}: {s.run_path}" for s in (report.baseline, report.candidate)]


# ---- the faces -----------------------------------------------------------------------------------------


def replay_text(report: ReplayReport, color: bool = False) -> str:
    """The replay as text: rich tables, coloured when ``color`` (a terminal), plain otherwise."""
    from harness.report.text import print_diff, print_verdict

    def body(con: Console) -> None:
        headline(con, "replay", report.status, replay_reason(report))
        for line in reason_lines(report.reasons, md=False):
            say(con, line)
        say(con, visible(selection_text(report)))
        table(con, "sides", SIDE_HEAD, [_side_row(report.baseline), _side_row(report.candidate)], SIDE_RIGHT)
        latency = _latency_rows(report)
        if latency:
            table(con, "latency per stage (fresh calls)", LATENCY_HEAD, latency, LATENCY_RIGHT)
        say(con, f"rules: {RULES_TEXT[report.rules]}")
        if report.results:
            print_verdict(gate_verdict(report.results, report.baseline.run_id, report.candidate.run_id), con)
        if not report.diff.artifacts and report.artifacts:  # the diff names them when it has them
            table(con, "changed artifacts", ["role", "kind", "change", "version"],
                  [[a.role, a.kind, a.change, f"{a.base_version or '-'} -> {a.head_version or '-'}"]
                   for a in report.artifacts])
        print_diff(report.diff)
        sig = [s for s in report.diff.segments if s.significant]
        if sig:
            table(con, "significant segment changes", ["segment (n)", "metric", "baseline", "candidate", "delta",
                                                       "p adj"],
                  [[f"{s.segment} ({report.diff.segment_sizes.get(s.segment, s.n):,})", s.metric, num(s.base_mean),
                    num(s.head_mean), "n/a" if s.delta is None else f"{s.delta:+.4f}",
                    "n/a" if s.p_adjusted is None else f"{s.p_adjusted:.3g}"] for s in sig],
                  ["baseline", "candidate", "delta", "p adj"])
        if report.agreement:
            table(con, "agreement between the two sides", AGREEMENT_HEAD, _agreement_rows(report.agreement),
                  AGREEMENT_RIGHT)
        if report.moves:
            table(con, "signals without a better side (how they moved; no rule judges them)", MOVE_HEAD,
                  _move_rows(report.moves), MOVE_RIGHT)
        for note in report.notes:
            say(con, f"note: {visible(note)}")

    return render(color, body)


def replay_md(report: ReplayReport) -> str:
    """The replay as markdown (GitHub tables)."""
    from harness.report.text import diff_markdown, verdict_markdown

    word = STATUS_WORD[report.status]
    lines = [f"## harness replay: {word}", "", f"**{word}**: {md_text(replay_reason(report))}",
             *reason_lines(report.reasons, md=True), "", md_text(selection_text(report)) + ".", ""]
    lines += md_table(SIDE_HEAD, [_side_row(report.baseline), _side_row(report.candidate)],
                      code=["manifest", "id", "run"], right=SIDE_RIGHT)
    latency = _latency_rows(report)
    if latency:
        lines += ["", "**Latency per stage** (fresh calls)", ""]
        lines += md_table(LATENCY_HEAD, latency, code=["stage"], right=LATENCY_RIGHT)
    lines += ["", "### Gate", "", f"Rules: {md_text(RULES_TEXT[report.rules])}."]
    if report.results:
        verdict = gate_verdict(report.results, report.baseline.run_id, report.candidate.run_id)
        lines += verdict_markdown(verdict)[1:]  # its first line is `harness gate`'s own headline
    else:
        lines += ["", "No rule was evaluated.", ""]
    if not report.diff.artifacts and report.artifacts:
        lines += ["**Changed artifacts**", ""]
        lines += [f"- {md_code(a.role)} ({md_text(a.kind)}) {md_text(a.change)}: "
                  f"{md_text(a.base_version or '-')} -> {md_text(a.head_version or '-')}" for a in report.artifacts]
        lines.append("")
    lines.append(diff_markdown(report.diff).rstrip("\n"))
    if report.agreement:
        lines += ["", "**Agreement between the two sides**", ""]
        lines += md_table(AGREEMENT_HEAD, _agreement_rows(report.agreement), right=AGREEMENT_RIGHT)
    if report.moves:
        lines += ["", "**Signals without a better side** (how they moved; no rule judges them)", ""]
        lines += md_table(MOVE_HEAD, _move_rows(report.moves), code=["signal"], right=MOVE_RIGHT)
    if report.notes:
        lines += ["", "**Notes**", ""] + [f"- {md_text(n)}" for n in report.notes]
    lines += ["", "Stored:", ""] + [f"- {md_text(line)}" for line in stored_lines(report)]
    return "\n".join(lines) + "\n"


def replay_json(report: ReplayReport) -> str:
    """The report as JSON in its model's layout (``model_dump(mode="json")``; a non-finite float as null).

    ``ReplayReport.model_validate_json`` reads it back, except the diff's metric deltas: they are published
    flat, as ``harness diff --json`` prints them (:class:`~harness.diff.records.MetricDelta`), which does not
    carry every field of their paired comparison."""
    return dumps(report.model_dump(mode="json"))
