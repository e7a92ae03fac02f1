"""A run as columns: what diff, gate and the summaries read of a run, without its cases' records.

A run of 1,000,000 cases held as pydantic records is gigabytes; its per-case metric values are a few
megabytes. :class:`RunColumns` is that second form: one row per case, in the run's case order, as numpy
arrays (values) and Arrow arrays (ids, tags, error stages), with the header fields beside them. It is made
from an in-memory :class:`~harness.types.RunResult` (:meth:`RunColumns.from_result`) or read from a stored
run's Parquet file, only the columns asked for (:meth:`harness.runs.RunTable.columns`). Whatever needs a
case's full record (a flipped case's answer, its explanation) asks for those few ids through ``fetch``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from harness.types import Aggregates, CaseOutput, GoldenCase, Manifest, Score, ScorerSpec

Fetch = Callable[[Sequence[str]], tuple[list[GoldenCase], list[CaseOutput], list[Score]]]
"""Given case ids, their golden cases, outputs and scores (in the order asked; an unknown id is left out)."""


@dataclass(frozen=True)
class RunColumns:
    """One run's per-case columns, row ``i`` = the run's ``i``-th case.

    - ``case_ids``: ``pa.string()`` array, unique.
    - ``values[metric]``: float64 array; NaN where the case has no score for the metric or its value is
      None (unscored). ``unscored[metric]``: bool array, True where a Score row exists with value None
      (so "absent" and "unscored" stay apart: aggregation counts only the second as n_unscored).
    - ``tags[key]``: ``pa.string()`` array of the case's tag value (null where the case lacks the tag);
      a case's segments are ``f"{key}={value}"`` over its non-null tags.
    - ``error_stage``: ``pa.string()`` array, null where the case did not error, else ``CaseError.stage``;
      ``error_kind``: the same for ``CaseError.kind``.
    - ``latency[stage]``: float64 array of ``CaseOutput.latency_s[stage]`` (NaN where not recorded).
    """

    run_id: str
    manifest_id: str
    manifest: Manifest
    aggregates: Aggregates
    counts: dict[str, int]
    scorers: tuple[ScorerSpec, ...]
    case_ids: pa.Array
    values: dict[str, np.ndarray]
    unscored: dict[str, np.ndarray]
    tags: dict[str, pa.Array]
    error_stage: pa.Array
    error_kind: pa.Array
    latency: dict[str, np.ndarray] = field(default_factory=dict)
    fetch: Fetch | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.case_ids)
