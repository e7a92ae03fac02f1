"""Oracle of tests/diff/test_diff_columns.py: the record-based diff as it was before the columnar one.

Which cases pair up: the cases both runs answered (in base's order), the ones only one run has, and
the ``tag=value`` segments of the paired cases (the head run's version of a case wins)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.types import GoldenCase, RunResult


@dataclass(frozen=True)
class Alignment:
    common: tuple[str, ...]
    only_in_base: tuple[str, ...]
    only_in_head: tuple[str, ...]
    cases: dict[str, GoldenCase]  # every case of either run, head's version winning
    segments: dict[str, tuple[str, ...]]  # tag=value -> paired case ids, sorted by segment


def align(base: RunResult, head: RunResult) -> Alignment:
    bids = [o.case_id for o in base.outputs]
    hids = {o.case_id for o in head.outputs}
    common = tuple(c for c in bids if c in hids)
    base_ids = set(bids)
    cases = {c.id: c for c in base.cases} | {c.id: c for c in head.cases}  # head's version wins
    members: dict[str, list[str]] = {}
    for cid in common:
        case = cases.get(cid)
        for seg in case.segments() if case else []:
            members.setdefault(seg, []).append(cid)
    return Alignment(
        common=common,
        only_in_base=tuple(c for c in bids if c not in hids),
        only_in_head=tuple(o.case_id for o in head.outputs if o.case_id not in base_ids),
        cases=cases,
        segments={seg: tuple(ids) for seg, ids in sorted(members.items())},
    )

