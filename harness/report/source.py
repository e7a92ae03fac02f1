"""What every report builder reads: a run as :func:`harness.runs.open_run` opens it, a
:class:`~harness.runs.RunTable` (its header, its columns, the records of the cases shown). A run held in memory
(a :class:`~harness.types.RunResult`: ``render_html(run)``, ``run_markdown(run)``, ... of the public API) is
served as one, exactly as open_run serves a run file of an older format, so each face has one builder.

Columns have one row per case and one value per case and metric, so a run is served only when it is one the
run store would save: one output per case, its golden cases (if any) those cases in the same order, every
score of a case with an output and at most one per case and metric. Any other run is refused with a
:class:`~harness.errors.HarnessError` naming what is wrong, rather than reported with rows silently merged."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.runs import RunTable
    from harness.types import RunResult

_HINT = "a report lists each case once: give the run one output per case and at most one score per case and metric"


def result_table(run: RunResult) -> RunTable:
    """``run`` as a :class:`~harness.runs.RunTable` served from memory (its ``header.table`` is None, as for a
    run file of an older format; its ``path`` names no file and is never read). Raises HarnessError for a run
    the store would not save (see the module docstring)."""
    from harness.runs import _ResultRun  # the in-memory RunTable open_run serves older run files with

    check_one_row_per_case(run)
    return _ResultRun(Path(f"{run.run_id}.json"), run)


def check_one_row_per_case(run: RunResult) -> None:
    """Raise HarnessError unless ``run`` has one output per case, its golden cases (if any) are those cases in
    the same order, and every score is of a case with an output and the only one of its case and metric."""
    ids: dict[str, None] = {}
    for o in run.outputs:
        if o.case_id in ids:
            raise HarnessError(f"run {run.run_id}: case {o.case_id!r} has two outputs", hint=_HINT)
        ids[o.case_id] = None
    if run.cases and [c.id for c in run.cases] != list(ids):
        raise HarnessError(f"run {run.run_id}: its golden cases and outputs are not of the same cases in the same "
                           "order", hint=_HINT)
    scored: set[tuple[str, str]] = set()
    for s in run.scores:
        if s.case_id not in ids:
            raise HarnessError(f"run {run.run_id}: a score of case {s.case_id!r}, which has no output", hint=_HINT)
        if (s.case_id, s.metric) in scored:
            raise HarnessError(f"run {run.run_id}: two scores of metric {s.metric!r} for case {s.case_id!r}",
                               hint=_HINT)
        scored.add((s.case_id, s.metric))
