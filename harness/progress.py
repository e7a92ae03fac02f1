"""Progress bars with rate and ETA on stderr; silent when quiet, piped or in CI logs."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Progress:
    """A thin wrapper so pipeline code never imports rich or checks the terminal itself."""

    def __init__(self, enabled: bool | None = None) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty() and not os.environ.get("CI")
        self.enabled = enabled
        self._rich: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("[progress.data.speed]{task.fields[rate]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._rich.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.__exit__(*exc)
            self._rich = None

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Any]:
        """Yields ``advance(n)``."""
        if self._rich is None:
            yield lambda n=1: None
            return
        task_id = self._rich.add_task(description, total=total, rate="")

        def advance(n: int = 1) -> None:
            self._rich.advance(task_id, n)
            t = self._rich.tasks[task_id]
            if t.speed:
                self._rich.update(task_id, rate=f"{t.speed:.1f}/s")

        try:
            yield advance
        finally:
            self._rich.remove_task(task_id)


NULL_PROGRESS = Progress(enabled=False)
