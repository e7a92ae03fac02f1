"""Progress bars with rate and ETA on stderr; silent when quiet, piped or in CI logs."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# rich estimates speed over a sliding window of samples; a slow step (a batch of long documents on a
# CPU) must still leave two samples in it, or the rate and the ETA go blank.
SPEED_WINDOW_S = 600.0


def format_rate(per_second: float) -> str:
    """``12,345/s``, ``42.5/s``, ``0.022/s``: a slow rate keeps two significant digits instead of 0.0."""
    if per_second >= 100:
        return f"{per_second:,.0f}/s"
    return f"{per_second:.1f}/s" if per_second >= 1 else f"{per_second:.2g}/s"


def _rate_column() -> Any:
    """A column showing items per second (rich's own speed columns are for bytes or unknown totals)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            if not speed:
                return Text("", style="progress.data.speed")
            return Text(format_rate(speed), style="progress.data.speed")

    return RateColumn()


def _no_advance(n: int = 1) -> None:
    return None


class Progress:
    """A thin wrapper so pipeline code never imports rich or checks the terminal itself."""

    def __init__(self, enabled: bool | None = None, *, console: Any = None,
                 get_time: Callable[[], float] | None = None) -> None:
        """``console`` (default: stderr) and ``get_time`` (default: a monotonic clock) are for embedding
        the bars elsewhere and for tests."""
        if enabled is None:
            enabled = sys.stderr.isatty() and not os.environ.get("CI")
        self.enabled = enabled
        self._console = console
        self._get_time = get_time
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
                _rate_column(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self._console or Console(stderr=True),
                transient=True,
                speed_estimate_period=SPEED_WINDOW_S,
                get_time=self._get_time,
            )
            self._rich.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.__exit__(*exc)
            self._rich = None

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[..., None]]:
        """Yields ``advance(n)``; the bar is removed when the block ends.

        Tasks are addressed by their id only (rich's ``tasks`` is a list, which stops lining up with
        ids once a finished task was removed).
        """
        rich = self._rich
        if rich is None:
            yield _no_advance
            return
        task_id = rich.add_task(description, total=total)
        # A zero-step sample at the start: the first real step then already gives a rate and an ETA.
        rich.advance(task_id, 0)

        def advance(n: int = 1) -> None:
            rich.advance(task_id, n)

        try:
            yield advance
        finally:
            rich.remove_task(task_id)


NULL_PROGRESS = Progress(enabled=False)
