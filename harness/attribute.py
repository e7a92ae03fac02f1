"""`harness attribute`: which changed artifact caused each metric's delta.

For the roles whose artifacts differ between the base and head manifests, hybrid manifests take
some roles from head and the rest from base; each is run through the normal pipeline (every cached
stage is reused, so only genuinely new work is done). With up to ``MAX_EXACT`` changed roles the
shares are exact Shapley values over all subsets (they add up to the total delta, interactions
split fairly); beyond that, one-at-a-time swaps are reported with the remainder as "interaction".
Artifact contents come from the snapshot store, so base and head need not exist in the work tree.

The runs are read as columns (:class:`~harness.columns.RunColumns`: a stored run's per-case values of the
attributed metrics, :meth:`harness.runs.RunTable.columns`), the ablation runs too (read back from the store
by their path): no run is held whole, and the means are exact sums (``math.fsum``) over the cases both base
and head have, as they were over the records.
"""

from __future__ import annotations

import itertools
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.manifest import LoadedManifest
from harness.progress import NULL_PROGRESS, Progress
from harness.snapshots import blob_path
from harness.storage import Layout
from harness.types import Artifact, Frozen, Manifest, RunResult

if TYPE_CHECKING:
    import pyarrow as pa

    from harness.columns import RunColumns
    from harness.runs import RunTable

MAX_EXACT = 4


class Attribution(Frozen):
    metric: str
    base: float | None
    head: float | None
    delta: float | None
    shares: dict[str, float]
    method: str

    def sentence(self) -> str:
        if self.delta is None:
            return f"{self.metric}: not comparable"
        parts = ", ".join(f"{role} {v * 100:+.1f}" for role, v in sorted(self.shares.items(), key=lambda x: x[1]))
        return f"{self.metric} {self.delta * 100:+.1f} points: {parts}"


class AttributionReport(Frozen):
    changed_roles: tuple[str, ...]
    method: str
    runs: dict[str, str]  # subset label -> run id
    attributions: tuple[Attribution, ...]


def changed_roles(base: RunResult | RunColumns, head: RunResult | RunColumns) -> list[str]:
    from harness.diff.artifacts import same_artifact

    ba, ha = base.manifest.artifacts, head.manifest.artifacts
    return sorted(r for r in set(ba) | set(ha) if not same_artifact(ba.get(r), ha.get(r)))


SYSTEM_ROLES = ("outputs", "retriever", "index", "embedding", "generator", "prompt")
"""What supplied outputs stand in for: between a run of supplied outputs and one that retrieves, these roles
change as one unit (a manifest with half of each would be no valid manifest)."""


def changed_units(base: RunResult | RunColumns, head: RunResult | RunColumns) -> dict[str, tuple[str, ...]]:
    """The changed roles as the units attribution swaps: each role alone, except that the system roles swap
    together when one run is of supplied outputs and the other is not. Label ("a+b") -> roles."""
    roles = changed_roles(base, head)
    if ("outputs" in base.manifest.artifacts) == ("outputs" in head.manifest.artifacts):
        return {r: (r,) for r in roles}
    system = tuple(r for r in roles if r in SYSTEM_ROLES)
    return {"+".join(system): system} | {r: (r,) for r in roles if r not in SYSTEM_ROLES}


def _materialize(art: Artifact, layout: Layout, role: str) -> Artifact:
    if art.path is None:
        return art
    path = blob_path(layout, art)
    if path is None:
        raise HarnessError(f"cannot attribute: no snapshot of artifact '{role}' ({art.path}, {art.sha256})",
                           hint="run both manifests with `harness run` in this project first")
    # A snapshot is a content-addressed copy the harness made itself, in its own store.
    return art.model_copy(update={"path": str(path), "allow_outside": True})


_SETTINGS_IGNORED = {"artifacts", "baseline", "gates", "name", "description"}


def _settings(run: RunResult | RunColumns) -> dict[str, Any]:
    return run.manifest.model_dump(mode="json", exclude=_SETTINGS_IGNORED)


def _hybrid(base: RunResult | RunColumns, head: RunResult | RunColumns, subset: Sequence[str],
            layout: Layout) -> Manifest:
    """Head's settings (metrics, scorers), base's artifacts except the roles in ``subset``, taken from head:
    only artifacts vary across the ablations, so a scorer change is never credited to an artifact. Built
    in memory from the runs' pinned artifacts (their contents from the snapshot store); ``execute``
    verifies every pin against the snapshot before anything runs."""
    arts = dict(base.manifest.artifacts)
    for role in subset:
        if role in head.manifest.artifacts:
            arts[role] = head.manifest.artifacts[role]
        else:
            arts.pop(role, None)
    return head.manifest.model_copy(update={
        "artifacts": {r: _materialize(a, layout, r) for r, a in arts.items()}, "gates": (), "baseline": None})


def _columns(run: RunResult | RunColumns | RunTable, metrics: Sequence[str] | None) -> RunColumns:
    """A run as the columns attribution reads: its per-case values of ``metrics`` (None: all)."""
    from harness.columns import RunColumns
    from harness.runs import RunTable

    if isinstance(run, RunColumns):
        return run
    if isinstance(run, RunTable):
        return run.columns(metrics=metrics, tags=False, latency=False)
    return RunColumns.from_result(run)


def _means(run: RunColumns, ids: pa.Array, metrics: Sequence[str]) -> dict[str, float | None]:
    """Per metric, the mean of the scored values of the cases ``ids`` (exact sums: any order gives it)."""
    import numpy as np
    import pyarrow.compute as pc

    rows = np.asarray(pc.is_in(run.case_ids, value_set=ids).to_numpy(zero_copy_only=False), dtype=bool)
    out: dict[str, float | None] = {}
    for m in metrics:
        v = run.values.get(m)
        scored = np.empty(0) if v is None else v[rows & ~np.isnan(v)]
        out[m] = math.fsum(scored.tolist()) / len(scored) if len(scored) else None
    return out


def attribute(base: RunResult | RunColumns | RunTable, head: RunResult | RunColumns | RunTable, layout: Layout,
              metrics: Sequence[str] | None = None, progress: Progress = NULL_PROGRESS) -> AttributionReport:
    """Attribute each metric's delta from ``base`` to ``head`` to the artifacts that changed. Either run may be
    in memory, a stored run's columns or a stored run (:func:`harness.runs.open_run`); each ablation run is
    read back from the store as columns."""
    from harness.pipeline import execute
    from harness.runs import open_run

    wanted = list(metrics) if metrics else None
    base, head = _columns(base, wanted), _columns(head, wanted)
    units = changed_units(base, head)
    roles = list(units)
    if not roles:
        raise HarnessError("base and head pin the same artifacts: nothing to attribute")
    metrics = list(metrics or [m for m in head.aggregates.metrics("quality") if m in base.aggregates.overall])
    exact = len(roles) <= MAX_EXACT
    subsets: list[tuple[str, ...]] = (
        [s for k in range(len(roles) + 1) for s in itertools.combinations(roles, k)] if exact
        else [(), *[(r,) for r in roles], tuple(roles)])
    runs: dict[tuple[str, ...], RunColumns] = {tuple(roles): head}
    if _settings(base) == _settings(head):
        runs[()] = base  # else the all-base point is re-run with head's settings
    # Every artifact path of a hybrid is absolute (its snapshot); the folder only stands in for a manifest
    # file's, so nothing resolves against the project and no git commit is recorded for an ablation.
    with tempfile.TemporaryDirectory(prefix="harness-attribute-") as tmp:
        for i, subset in enumerate(subsets):
            if subset in runs:
                continue
            swapped = [role for unit in subset for role in units[unit]]
            hybrid = LoadedManifest(_hybrid(base, head, swapped, layout), Path(tmp) / f"hybrid-{i}.toml")
            stored = execute(hybrid, progress=progress, layout=layout).path
            runs[subset] = open_run(stored, project=layout.project).columns(metrics=metrics, tags=False)
    import pyarrow.compute as pc

    ids = pc.filter(base.case_ids, pc.is_in(base.case_ids, value_set=head.case_ids))
    means = {s: _means(r, ids, metrics) for s, r in runs.items()}
    out = []
    for m in metrics:
        b, h = means[()][m], means[tuple(roles)][m]
        if b is None or h is None or any(means[s][m] is None for s in runs):
            out.append(Attribution(metric=m, base=b, head=h, delta=None, shares={}, method="n/a"))
            continue
        shares: dict[str, float] = {}
        if exact:
            n = len(roles)
            for role in roles:
                others = [r for r in roles if r != role]
                total = 0.0
                for k in range(n):
                    for s in itertools.combinations(others, k):
                        with_r = tuple(r for r in roles if r in s or r == role)
                        weight = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                        total += weight * (means[with_r][m] - means[tuple(r for r in roles if r in s)][m])  # type: ignore[operator]
                shares[role] = total
        else:
            for role in roles:
                shares[role] = means[(role,)][m] - b  # type: ignore[operator]
            shares["interaction"] = (h - b) - sum(shares.values())
        out.append(Attribution(metric=m, base=b, head=h, delta=h - b, shares=shares,
                               method="shapley" if exact else "one-at-a-time"))
    return AttributionReport(changed_roles=tuple(roles), method="shapley" if exact else "one-at-a-time",
                             runs={"+".join(s) or "base": r.run_id for s, r in runs.items()},
                             attributions=tuple(out))
