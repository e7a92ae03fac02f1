"""Terminal rendering of a run: rich tables on a terminal, plain text when piped (the run summary and
its errors by kind; diffs and verdicts are in :mod:`harness.report.text`)."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.report.xmltext import visible

if TYPE_CHECKING:
    from harness.types import CaseOutput


def make_console(stderr: bool = False) -> Console:
    """A rich console: colours on a terminal; plain and 160 columns wide when piped or in CI logs."""
    probe = Console(stderr=stderr)
    if probe.is_terminal:
        return probe
    return Console(stderr=stderr, width=160, no_color=True, highlight=False)


def print_run_summary(data: dict[str, Any]) -> None:
    console = make_console()
    # run ids, metric names (segment tags) and paths come from files a user controls: shown, never obeyed
    table = Table(title=escape(visible(f"run {data['run_id']}  (manifest {data['manifest_id'][:12]})")))
    table.add_column("metric")
    table.add_column("mean", justify="right")
    for name, value in data["aggregates"].items():
        table.add_row(escape(visible(name)), "unscored" if value is None else f"{value:.4f}")
    console.print(table)
    counts = data["counts"]
    if "outputs_missing" in counts:  # supplied outputs: nothing was retrieved here
        work = f"supplied outputs scored, {counts['outputs_missing']} cases without a record"
        if counts.get("outputs_unranked"):
            work += f", {counts['outputs_unranked']} cases the run has no lines for (scored 0, as trec_eval -c)"
        if counts.get("outputs_unmatched"):
            work += f", {counts['outputs_unmatched']} run queries not in the golden set (ignored)"
    else:
        work = f"retrieved {counts['retrieved']} (rest cached), embedded {counts['embedded_texts']} texts"
    if counts.get("generated"):
        work += f", generated {counts['generated']}"
    console.print(f"{counts['cases']} cases, {counts['errors']} errors, {counts['unscored']} unscored values; {work}")
    quality = data.get("index_quality")
    if quality:  # what the approximate index costs against exact search on the same corpus
        search = ", ".join(f"{k} {v}" for k, v in sorted((quality.get("search") or {}).items()))
        console.print(visible(f"index {quality.get('factory')}{f' ({search})' if search else ''}: "
                              f"recall@{quality['k']} {quality['recall@k']:.3f} against exact search on "
                              f"{quality['sample']} sampled queries"), markup=False, highlight=False)
    console.print(f"stored: {visible(data['path'])}", markup=False, highlight=False)


SHOWN_CASES = 5
SHOWN_MESSAGES = 3
_MESSAGE_CHARS = 300


def error_summary(outputs: Iterable[CaseOutput]) -> dict[str, Any]:
    """Case errors by kind: ``{"total": n, "by_kind": {kind: {count, stage, cases, messages}}}``.

    The kind is the :class:`~harness.types.CaseError`'s (``server_error``, ``auth``, ...);
    ``cases`` and ``messages`` hold the first few, in golden-set order.
    """
    tally = ErrorTally()
    tally.add(outputs)
    return tally.summary()


class ErrorTally:
    """:func:`error_summary` kept while a run streams: :meth:`add` each part's outputs in the run's order,
    :meth:`summary` gives what ``error_summary`` of all of them gives. Memory: a count and the first few ids
    and messages per kind."""

    def __init__(self) -> None:
        self.total = 0
        self._by_kind: dict[str, dict[str, Any]] = {}

    def add(self, outputs: Iterable[CaseOutput]) -> None:
        by_kind = self._by_kind
        for o in outputs:
            if not o.error:
                continue
            self.total += 1
            entry = by_kind.setdefault(o.error.kind, {"count": 0, "stage": o.error.stage, "cases": [],
                                                      "messages": []})
            entry["count"] += 1
            if len(entry["cases"]) < SHOWN_CASES:
                entry["cases"].append(o.case_id)
            if len(entry["messages"]) < SHOWN_MESSAGES:
                entry["messages"].append({"case_id": o.case_id, "message": _one_line(o.error.message)})

    def summary(self) -> dict[str, Any]:
        ordered = dict(sorted(self._by_kind.items(), key=lambda kv: (-kv[1]["count"], kv[0])))
        return {"total": self.total, "by_kind": copy.deepcopy(ordered)}


def _one_line(message: str) -> str:
    text = " ".join(message.split())
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 1] + "…"


def print_error_summary(errors: dict[str, Any], cases: int, *, allowed: bool) -> None:
    """Plain lines on stderr: how many cases errored, then per kind the count, first ids and messages."""
    total = errors["total"]
    if not total:
        return
    consequence = "allowed by --allow-errors" if allowed else "exit 1; --allow-errors accepts them"
    lines = [f"errors: {total} of {cases} cases errored ({consequence})"]
    for kind, entry in errors["by_kind"].items():
        more = entry["count"] - len(entry["cases"])
        ids = ", ".join(map(visible, entry["cases"])) + (f", ... ({more} more)" if more > 0 else "")
        stage = f" in {visible(entry['stage'])}" if entry["stage"] else ""
        lines.append(f"  {visible(kind)}: {entry['count']}{stage} ({ids})")
        lines += [f"    {visible(m['case_id'])}: {visible(m['message'])}" for m in entry["messages"]]
    click.echo("\n".join(lines), err=True)
