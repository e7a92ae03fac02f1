"""Which cases pair up: the cases both runs answered (in base's order), the ones only one run has, and
the ``tag=value`` segments of the paired cases (the head run's version of a case wins).

Computed on the runs' columns (:class:`~harness.columns.RunColumns`): an index join of the case ids, and
one boolean mask over the paired cases per segment, never a record per case."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from harness.columns import RunColumns
from harness.types import GoldenCase


@dataclass(frozen=True)
class Alignment:
    """``base_rows[i]`` and ``head_rows[i]`` are the rows of the ``i``-th paired case (base's order) in
    each run; ``segments[seg]`` is a bool mask over the paired cases (segments sorted by name)."""

    common: pa.Array  # paired case ids, in base's order
    base_rows: np.ndarray
    head_rows: np.ndarray
    only_in_base: tuple[str, ...]
    only_in_head: tuple[str, ...]
    segments: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.common)

    def segment_size(self, seg: str) -> int:
        return int(self.segments[seg].sum())


def _index_in(ids: pa.Array, other: pa.Array) -> np.ndarray:
    """For each id, its row in ``other`` (-1: absent)."""
    found = pc.index_in(ids, value_set=other)
    return np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def align(base: RunColumns, head: RunColumns) -> Alignment:
    in_head = _index_in(base.case_ids, head.case_ids)
    in_base = _index_in(head.case_ids, base.case_ids)
    paired = in_head >= 0
    base_rows = np.flatnonzero(paired)
    head_rows = in_head[paired]
    # A paired case's tags: head's version of the case, unless head has no golden case for it (then base's).
    head_has = head.has_case()
    use_base = np.zeros(len(base_rows), dtype=bool) if head_has is None else ~head_has[head_rows]
    base_has = base.has_case()
    members: dict[str, np.ndarray] = {}
    for key in sorted(set(base.tags) | set(head.tags)):
        h = head.tags[key].take(pa.array(head_rows)) if key in head.tags else pa.nulls(len(head_rows), pa.string())
        if use_base.any():
            b = base.tags[key].take(pa.array(base_rows)) if key in base.tags else pa.nulls(len(base_rows), pa.string())
            if base_has is not None:
                b = pc.if_else(pa.array(base_has[base_rows]), b, pa.nulls(len(b), pa.string()))
            h = pc.if_else(pa.array(use_base), b, h)
        encoded = pc.dictionary_encode(h)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        codes = np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
        for j, value in enumerate(encoded.dictionary.to_pylist()):
            members[f"{key}={value}"] = codes == j
    return Alignment(
        common=base.case_ids.filter(pa.array(paired)),
        base_rows=base_rows,
        head_rows=head_rows,
        only_in_base=tuple(base.case_ids.filter(pa.array(~paired)).to_pylist()),
        only_in_head=tuple(head.case_ids.filter(pa.array(in_base < 0)).to_pylist()),
        segments={seg: members[seg] for seg in sorted(members)},
    )


def relevant(case: GoldenCase | None, level: int) -> set[str]:
    """The ids a case judges relevant at ``level`` or above (none for a case the run does not have)."""
    return {d for d, g in (case.relevance if case else {}).items() if g >= level}
