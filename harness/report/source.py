"""What every report builder reads: a run as :func:`harness.runs.open_run` opens it, a
:class:`~harness.runs.RunTable` (its header, its columns, the records of the cases shown). A run held in memory
(a :class:`~harness.types.RunResult`: ``render_html(run)``, ``run_markdown(run)``, ... of the public API) is
served as one, exactly as open_run serves a run file of an older format, so each face has one builder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.runs import RunTable
    from harness.types import RunResult


def result_table(run: RunResult) -> RunTable:
    """``run`` as a :class:`~harness.runs.RunTable` served from memory (its ``header.table`` is None, as for a
    run file of an older format; its ``path`` names no file and is never read)."""
    from harness.runs import _ResultRun  # the in-memory RunTable open_run serves older run files with

    return _ResultRun(Path(f"{run.run_id}.json"), run)
