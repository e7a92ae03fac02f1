"""Data contracts on the log itself: null rates, duplicates, freshness, and changes in the log's shape.

Inputs are :data:`harness.monitor.schema.LOG_SCHEMA` tables (one window's records each); the limits come
from ``[monitor.log_contract]`` (:class:`harness.types.LogContract`). Everything is computed on the columns at
once (Arrow and numpy): no Python loop over records.

Definitions
-----------
- **Present, null, absent.** A record's ``fields`` map lists the source fields it carried with their JSON
  type: a field is *present-null* when its type is ``"null"``, *absent* when the record lacks the key (a null
  ``fields`` map: every field absent). The **null rate** of a field is the share of *all* the window's
  records in which it is null *or* absent: downstream an absent key reads as a null, and a logger that stops
  sending a key in some records is the same failure as one that sends nulls. The detail reports both counts.
  The fields judged: every field named in ``max_null_rate``, and with ``"*"`` every field present in the
  current or the reference window (a field's own limit wins over ``"*"``). A field named in the contract but
  absent from every record has null rate 1. Keys are unique within one record's map (ingest writes it from a
  JSON object).
- **Duplicates.** Two records are duplicates when they share a ``record_id`` or have identical content
  (``query``, ``answer``, ``ts`` and ``attrs``, attrs compared as sets of key/value pairs). Grouping the
  window's records by "duplicate of" (the connected components of both relations), the duplicate count is
  the records beyond the first of each group, ``n - #groups``; the share is that over ``n``.
- **Freshness.** ``ingested_at - ts`` in seconds per record; the observed value is numpy's linear quantile
  at ``freshness_quantile``. Negative lags (clock skew) are kept and counted in the detail.
- **Shape against the reference window** (each a ``fail`` naming the field and the reference window):
  a *new* field is present (null or not) in some current record and in no reference record, at a share
  (at least 1%) that a reference window of its size would show but by a chance below 0.001 (the mirror of
  the missing rule: a rare field seen once is not a new field); a *missing*
  field is present in at least :data:`MISSING_MIN_SHARE` (1%) of the reference records, in no current
  record, and a window of the current size drawn from the reference would lack it with probability
  ``(1 - share) ** n_current`` below :data:`MISSING_MAX_CHANCE` (0.001), so a rare field's chance absence
  from a small window is not reported; a *retyped* field's dominant non-null JSON type differs between the
  windows (``integer`` counts as ``number``; ``"null"`` is ignored; a field without non-null values in one
  window is not judged for type).
- **Null-rate change tests** (:class:`harness.stats.drift.DriftTest`, for the monitor's one
  Benjamini-Hochberg family): for every field present in either window, the 2x2 table (null or absent,
  valued) x (reference, current). The p-value is Pearson's chi-squared without continuity correction
  (:func:`harness.stats.drift.chi_squared`) when every expected count is at least 5 (Cochran's rule), else
  Fisher's exact test (two-sided, ``scipy.stats.fisher_exact``), named in ``moved``; when neither window has
  a null (or neither a value) the tables' only outcome was observed and the p-value is 1. The test label
  stays ``"chi2"`` either way, so a day-over-day and a week-over-week test of one field pair up under the
  seasonality rule. An empty window gives ``p_value=None`` (untestable, counted by the family).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse
from scipy import stats as sps
from scipy.sparse import csgraph

from harness.monitor.model import ContractFinding
from harness.stats.drift import Comparison, DriftTest, chi_squared
from harness.types import LogContract

MISSING_MIN_SHARE = 0.01
"""A field present in at least this share of the reference window's records and absent now is missing..."""
MISSING_MAX_CHANCE = 0.001
"""...when a current-sized window from the reference would lack it with less than this probability."""

IntArray = npt.NDArray[np.int64]
_STR_ENTRY = pa.struct([pa.field("key", pa.string(), nullable=False), pa.field("value", pa.string())])


def _entries(col: pa.ChunkedArray | pa.Array) -> tuple[IntArray, pa.Array, pa.Array]:
    """A ``map<string, string>`` column flattened: (record index, key, value) per entry."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    lists = arr.cast(pa.list_(_STR_ENTRY))
    flat = pc.list_flatten(lists)
    parents = np.asarray(pc.list_parent_indices(lists).to_numpy(), dtype=np.int64)
    return parents, pc.struct_field(flat, [0]), pc.struct_field(flat, [1])


def _codes(values: pa.Array | pa.ChunkedArray) -> tuple[IntArray, list[str | None]]:
    """Integer codes of ``values`` (nulls: -1) and the distinct values they index."""
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    enc = pc.dictionary_encode(arr)
    indices = enc.indices if enc.indices.null_count == 0 else pc.fill_null(enc.indices, -1)
    idx = np.asarray(indices.to_numpy(), dtype=np.int64)
    return idx, enc.dictionary.to_pylist()


@dataclass(frozen=True)
class FieldProfile:
    """The shape of one window's ``fields`` maps: per field, the records it is present in, by JSON type."""

    n: int
    present: dict[str, int]  # field -> records carrying the key (null or not)
    nulls: dict[str, int]  # field -> records where it is present-null
    types: dict[str, dict[str, int]]  # field -> non-null JSON type ("integer" as "number") -> records

    def null_or_absent(self, name: str) -> int:
        return self.n - self.present.get(name, 0) + self.nulls.get(name, 0)

    def dominant_type(self, name: str) -> str | None:
        counts = self.types.get(name, {})
        return max(sorted(counts), key=lambda t: counts[t]) if counts else None


def field_profile(table: pa.Table) -> FieldProfile:
    """Counts per source field and JSON type over a window's ``fields`` maps (one bincount)."""
    n = table.num_rows
    if n == 0:
        return FieldProfile(0, {}, {}, {})
    _, keys, values = _entries(table.column("fields"))
    kc, knames = _codes(keys)
    tc, tnames = _codes(values)
    nt = len(tnames) + 1  # the last column: a null type string (treated as "null")
    tc = np.where(tc < 0, nt - 1, tc)
    counts = np.bincount(kc * nt + tc, minlength=len(knames) * nt).reshape(len(knames), nt)
    present: dict[str, int] = {}
    nulls: dict[str, int] = {}
    types: dict[str, dict[str, int]] = {}
    for i, name in enumerate(knames):
        assert name is not None, "map keys are never null"
        row = counts[i]
        present[name] = int(row.sum())
        by_type: dict[str, int] = {}
        null_count = int(row[nt - 1])
        for j, t in enumerate(tnames):
            c = int(row[j])
            if not c:
                continue
            if t == "null":
                null_count += c
            else:
                key = "number" if t == "integer" else str(t)
                by_type[key] = by_type.get(key, 0) + c
        nulls[name] = null_count
        types[name] = by_type
    return FieldProfile(n, present, nulls, types)


def _compact(codes: IntArray) -> tuple[IntArray, int]:
    """Codes renumbered 0..k-1 (equal in, equal out) and k."""
    uniq, inverse = np.unique(codes, return_inverse=True)
    return np.asarray(inverse, dtype=np.int64).reshape(-1), len(uniq)


def _attrs_codes(table: pa.Table) -> IntArray:
    """One code per record for its ``attrs`` as a set of key/value pairs (a null map: its own code).

    Each distinct (key, value) pair gets an integer; a record's pairs, sorted, are its map's exact identity,
    grouped as fixed-width binary strings (a view of the sorted codes, no per-record Python)."""
    n = table.num_rows
    col = table.column("attrs").combine_chunks()
    parents, keys, values = _entries(col)
    key_codes, _ = _codes(keys)
    value_codes, value_names = _codes(values)
    pair, _ = _compact(key_codes * (len(value_names) + 1) + value_codes + 1)
    order = np.lexsort((pair, parents))
    data = np.ascontiguousarray(pair[order], dtype=np.int32)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(parents, minlength=n), out=offsets[1:])
    offsets *= 4
    validity = pc.is_valid(col).buffers()[1] if col.null_count else None
    binary = pa.Array.from_buffers(pa.binary(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(data)])
    return _codes(binary)[0]


def duplicate_count(table: pa.Table) -> tuple[int, int, int]:
    """(duplicates, records repeating another's id, records repeating another's content): duplicates are
    ``n - #groups`` over the connected components of "same id or same content" (module docstring)."""
    n = table.num_rows
    if n == 0:
        return 0, 0, 0
    id_codes, g_id = _compact(_codes(table.column("record_id"))[0])
    parts = [_codes(table.column("query"))[0], _codes(table.column("answer"))[0],
             np.asarray(pc.cast(table.column("ts"), pa.int64()).to_numpy(), dtype=np.int64), _attrs_codes(table)]
    content, g_content = _compact(parts[0])
    for part in parts[1:]:
        codes, k = _compact(part)
        content, g_content = _compact(content * k + codes)  # both < n: no overflow
    rows = np.concatenate([np.arange(n), np.arange(n)])
    cols = np.concatenate([n + id_codes, n + g_id + content])
    size = n + g_id + g_content
    graph = sparse.coo_matrix((np.ones(2 * n, dtype=np.int8), (rows, cols)), shape=(size, size))
    n_groups = int(csgraph.connected_components(graph, directed=False, return_labels=False))
    return n - n_groups, n - g_id, n - g_content


def freshness_seconds(table: pa.Table) -> npt.NDArray[np.float64]:
    """``ingested_at - ts`` per record, in seconds."""
    ts = np.asarray(pc.cast(table.column("ts"), pa.int64()).to_numpy(), dtype=np.int64)
    ing = np.asarray(pc.cast(table.column("ingested_at"), pa.int64()).to_numpy(), dtype=np.int64)
    return (ing - ts).astype(np.float64) / 1e6


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%" if x >= 0.01 or x == 0 else f"{100 * x:.2g}%"


def _null_findings(cur: FieldProfile, ref: FieldProfile | None, contract: LogContract,
                   window: str) -> list[ContractFinding]:
    limits = contract.max_null_rate
    names = {k for k in limits if k != "*"}
    if "*" in limits:
        names |= set(cur.present) | (set(ref.present) if ref is not None else set())
    out: list[ContractFinding] = []
    for name in sorted(names):
        limit = limits.get(name, limits.get("*"))
        assert limit is not None
        if cur.n == 0:
            out.append(ContractFinding(window, "null_rate", name, "not_judged", None, limit,
                                       "no records in the window"))
            continue
        k = cur.null_or_absent(name)
        rate = k / cur.n
        nulls, absent = cur.nulls.get(name, 0), cur.n - cur.present.get(name, 0)
        out.append(ContractFinding(
            window, "null_rate", name, "pass" if rate <= limit else "fail", rate, limit,
            f"{nulls} null and {absent} absent of {cur.n} records ({_pct(rate)}), limit {_pct(limit)}"))
    return out


def _shape_findings(cur: FieldProfile, ref: FieldProfile, window: str,
                    reference_window: str) -> list[ContractFinding]:
    if cur.n == 0 or ref.n == 0:
        empty = window if cur.n == 0 else f"reference window {reference_window}"
        return [ContractFinding(window, check, "*", "not_judged", detail=f"no records in {empty}")
                for check in ("new_field", "missing_field", "retyped_field")]
    out: list[ContractFinding] = []
    for name in sorted(set(cur.present) - set(ref.present)):
        share = cur.present[name] / cur.n
        chance = (1.0 - share) ** ref.n  # a field this rare could be absent from the reference by chance
        if share < MISSING_MIN_SHARE or chance >= MISSING_MAX_CHANCE:
            continue
        out.append(ContractFinding(
            window, "new_field", name, "fail", share, None,
            f"present in {cur.present[name]} of {cur.n} records, never in reference window {reference_window} "
            f"({ref.n} records)"))
    for name in sorted(set(ref.present) - set(cur.present)):
        share = ref.present[name] / ref.n
        chance = (1.0 - share) ** cur.n
        if share >= MISSING_MIN_SHARE and chance < MISSING_MAX_CHANCE:
            out.append(ContractFinding(
                window, "missing_field", name, "fail", 0.0, share,
                f"in {ref.present[name]} of {ref.n} records ({_pct(share)}) of reference window "
                f"{reference_window}, in none of {cur.n} now (chance {chance:.2g})"))
    for name in sorted(set(ref.present) & set(cur.present)):
        before, after = ref.dominant_type(name), cur.dominant_type(name)
        if before is None or after is None or before == after:
            continue
        ref_share = ref.types[name][before] / sum(ref.types[name].values())
        cur_share = cur.types[name][after] / sum(cur.types[name].values())
        out.append(ContractFinding(
            window, "retyped_field", name, "fail", cur_share, None,
            f"{before} ({_pct(ref_share)} of non-null values) in reference window {reference_window}, "
            f"{after} ({_pct(cur_share)}) now"))
    return out


def null_rate_test(ref_null: int, ref_n: int, cur_null: int, cur_n: int) -> tuple[float | None, str]:
    """The two-proportion test of the module docstring: (p-value, the test used)."""
    if ref_n == 0 or cur_n == 0:
        return None, "empty window"
    table = np.array([[ref_null, ref_n - ref_null], [cur_null, cur_n - cur_null]], dtype=np.float64)
    col = table.sum(axis=0)
    if (col == 0).any():
        return 1.0, "one outcome only"
    expected = np.outer(table.sum(axis=1), col) / table.sum()
    if (expected < 5).any():
        return float(sps.fisher_exact(table.astype(np.int64)).pvalue), "Fisher exact: small counts"
    res = chi_squared({"null": ref_null, "value": ref_n - ref_null}, {"null": cur_null, "value": cur_n - cur_null})
    return res.p_value, "chi-squared"


def _null_tests(cur: FieldProfile, ref: FieldProfile, *, segment: str, comparison: Comparison,
                reference_window: str, window: str) -> list[DriftTest]:
    out: list[DriftTest] = []
    for name in sorted(set(cur.present) | set(ref.present)):
        a, b = ref.null_or_absent(name), cur.null_or_absent(name)
        p, how = null_rate_test(a, ref.n, b, cur.n)
        if ref.n and cur.n:
            r0, r1 = a / ref.n, b / cur.n
            effect: float | None = r1 - r0
            moved = f"null rate {_pct(r0)} -> {_pct(r1)}"
            if how.startswith("Fisher"):
                moved += f" ({how})"
        else:
            effect, moved = None, f"no records in the {'reference' if ref.n == 0 else 'current'} window"
        out.append(DriftTest(f"null_rate:{name}", segment, comparison, reference_window, window, "chi2", p,
                             effect, moved))
    return out


def check_log(current: pa.Table, contract: LogContract, *, window: str, reference: pa.Table | None = None,
              reference_window: str | None = None, comparison: Comparison = "day_over_day",
              segment: str = "all") -> tuple[list[ContractFinding], list[DriftTest]]:
    """The contract's limits on ``current`` (null rates, duplicates, freshness: each only when its limit is
    set) and, given a ``reference`` window, the shape changes against it and one null-rate change test per
    field. ``window`` and ``reference_window`` are the labels the findings and tests carry; ``comparison``
    and ``segment`` label the tests. Definitions in the module docstring."""
    if reference is not None and reference_window is None:
        raise ValueError("a reference window needs its label (reference_window)")
    cur = field_profile(current)
    ref = field_profile(reference) if reference is not None else None
    findings = _null_findings(cur, ref, contract, window)
    n = current.num_rows
    if contract.max_duplicate_rate is not None:
        limit = contract.max_duplicate_rate
        if n == 0:
            findings.append(ContractFinding(window, "duplicates", "*", "not_judged", None, limit,
                                            "no records in the window"))
        else:
            dups, by_id, by_content = duplicate_count(current)
            rate = dups / n
            findings.append(ContractFinding(
                window, "duplicates", "*", "pass" if rate <= limit else "fail", rate, limit,
                f"{dups} duplicate records of {n} ({_pct(rate)}): {by_id} repeat an id, {by_content} repeat "
                f"another record's query, answer, ts and attrs; limit {_pct(limit)}"))
    if contract.max_freshness_s is not None:
        limit_s = contract.max_freshness_s
        q = contract.freshness_quantile
        if n == 0:
            findings.append(ContractFinding(window, "freshness", "*", "not_judged", None, limit_s,
                                            "no records in the window"))
        else:
            lag = freshness_seconds(current)
            observed = float(np.quantile(lag, q))
            negative = int((lag < 0).sum())
            findings.append(ContractFinding(
                window, "freshness", "*", "pass" if observed <= limit_s else "fail", observed, limit_s,
                f"quantile {q:g} of ingested_at - ts over {n} records: {observed:.4g}s, limit {limit_s:g}s"
                + (f"; {negative} records ingested before their event time" if negative else "")))
    tests: list[DriftTest] = []
    if reference is not None and ref is not None:
        assert reference_window is not None
        findings.extend(_shape_findings(cur, ref, window, reference_window))
        tests = _null_tests(cur, ref, segment=segment, comparison=comparison,
                            reference_window=reference_window, window=window)
    return findings, tests
