"""Terminal rendering: rich tables on a terminal, plain text when piped."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def make_console(stderr: bool = False) -> Console:
    """A rich console: colours on a terminal; plain and 160 columns wide when piped or in CI logs."""
    probe = Console(stderr=stderr)
    if probe.is_terminal:
        return probe
    return Console(stderr=stderr, width=160, no_color=True, highlight=False)


def print_run_summary(data: dict[str, Any]) -> None:
    console = make_console()
    table = Table(title=f"run {data['run_id']}  (manifest {data['manifest_id'][:12]})")
    table.add_column("metric")
    table.add_column("mean", justify="right")
    for name, value in data["aggregates"].items():
        table.add_row(name, "unscored" if value is None else f"{value:.4f}")
    console.print(table)
    counts = data["counts"]
    console.print(
        f"{counts['cases']} cases, {counts['errors']} errors, {counts['unscored']} unscored values; "
        f"retrieved {counts['retrieved']} (rest cached), embedded {counts['embedded_texts']} texts"
    )
    console.print(f"stored: {data['path']}")
