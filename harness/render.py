"""Terminal rendering: rich tables on a terminal, plain text when piped."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def print_run_summary(data: dict[str, Any]) -> None:
    console = Console()
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
