"""Coverage gaps: production queries the golden set does not cover, clustered, become golden-case candidates.

The pipeline, on plain arrays (:func:`find_gaps`) so it does not depend on how records were stored:

1. **Sample.** At most ``sample`` records (default 20,000), drawn without replacement with ``seed``; every
   count below is of the sample, and :attr:`CoverageReport.sampled` / ``population`` say how large it was
   (from the store, :func:`read_records` draws it in DuckDB, by ``hash(record_id || seed)``).
2. **Embed** the sample's distinct query texts and the golden queries with the project's embedder; rows are
   L2-normalized so inner product is cosine similarity and *distance* is ``1 - cosine``.
3. **Calibrate the threshold** (no magic number): each golden case's distance to its nearest *other* golden
   case is the score a query drawn from the golden set's own distribution would get against the rest of it.
   The threshold is the ``ceil((1 - alpha) (G + 1))``-th smallest of those ``G`` leave-one-out distances (the
   conformal rank, with leave-one-out scores), so a production query exchangeable with the golden cases is
   farther than it from every golden case with probability at most about ``alpha`` (default 0.05). A query
   farther than the threshold is *uncovered*. (Measured: SciFact train queries against the SciFact test
   split, alpha 0.05: 4.3% uncovered; HotpotQA questions: 99.3%.) It needs ``G >= (1 - alpha) / alpha``
   golden cases (19 at 0.05).
4. **Cluster** the sample with FAISS spherical k-means (cosine; seeded k-means++ initialisation, 5 restarts,
   the best objective kept; each distinct text weighted by how often it was asked) with
   ``k = round(sqrt(n / 2))`` for ``n`` sampled records (the common rule of thumb), at most ``n // min_count``
   (a cluster smaller than ``min_count`` cannot be a gap) and at most the number of distinct texts, at least
   1. Clusters are numbered by size, largest first. (HDBSCAN was tried on the SciFact + HotpotQA data: in 384
   dimensions it labelled most HotpotQA questions as noise, 9-29% of them in gaps against 96% here.) A far
   topic that k-means splits into pieces smaller than ``min_count`` is not reported: a known limit.
5. **A gap** is a cluster with at least ``min_count`` sampled records of which at least ``gap_share``
   (default one half: ten times what ``alpha`` leaves uncovered by chance) are uncovered. Gaps are ranked by
   traffic (sampled records, then cluster id).

Each cluster records its size and share of the sampled traffic (and the estimate over the population), the
median nearest-golden distance, the golden case nearest its centroid, the top values of each segment key,
representative queries (distinct texts closest to the centroid; in a gap, only uncovered ones) and example
record ids. :meth:`CoverageReport.candidates` turns the gaps' representatives into golden-case records in the
golden schema's shape with empty ``relevance``/``answers`` and an explicit ``metadata.todo``;
:func:`append_candidates` refuses any record that still has it, so a candidate can never be appended unfilled.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import HarnessError, InputError
from harness.types import GoldenCase

if TYPE_CHECKING:
    from harness.manifest import LoadedManifest
    from harness.progress import Progress
    from harness.storage import Layout

__all__ = [
    "DEFAULT_SAMPLE",
    "TODO_NOTE",
    "AppendResult",
    "CoverageCluster",
    "CoverageReport",
    "Representative",
    "append_candidates",
    "check_candidates",
    "choose_k",
    "conformal_threshold",
    "coverage_from_store",
    "find_gaps",
    "read_records",
]

DEFAULT_SAMPLE = 20_000
"""Records embedded and clustered at most (a seeded sample of the window)."""
TODO_NOTE = ("candidate: fill in relevance (corpus doc id -> grade, at least one >= 1) and answers, then delete "
             "metadata.todo; `harness golden append` refuses records that still have it")
"""The value of ``metadata.todo`` on every exported candidate: the explicit "not a golden case yet" state."""
MISSING = "(none)"
"""The segment value counted for a record that lacks the attribute."""
_EXAMPLES = 5


@dataclass(frozen=True)
class Representative:
    """One distinct query text of a cluster, near its centroid."""

    query: str
    count: int  # sampled records asking exactly this text
    record_ids: tuple[str, ...]  # up to five of them
    distance: float  # cosine distance to the nearest golden case
    nearest_golden: str | None
    similarity: float  # cosine similarity to the cluster's centroid
    segments: dict[str, str]  # segment key -> value of its first record


@dataclass(frozen=True)
class CoverageCluster:
    id: int  # 0 is the largest cluster
    size: int  # sampled records
    share: float  # of the sampled records
    estimated_records: int  # share x population
    uncovered_share: float  # members farther than the threshold from every golden case
    median_distance: float  # members' median nearest-golden cosine distance
    nearest_golden: str | None  # the golden case nearest the centroid
    centroid_distance: float  # and its cosine distance to the centroid
    segments: dict[str, tuple[tuple[str, int], ...]]  # key -> top values with counts, most first
    representatives: tuple[Representative, ...]
    example_ids: tuple[str, ...]
    gap: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "size": self.size, "share": self.share, "estimated_records": self.estimated_records,
            "uncovered_share": self.uncovered_share, "median_distance": self.median_distance,
            "nearest_golden": self.nearest_golden, "centroid_distance": self.centroid_distance,
            "segments": {k: [{"value": v, "count": c} for v, c in vals] for k, vals in self.segments.items()},
            "representatives": [
                {"query": r.query, "count": r.count, "record_ids": list(r.record_ids), "distance": r.distance,
                 "nearest_golden": r.nearest_golden, "similarity": r.similarity, "segments": r.segments}
                for r in self.representatives],
            "example_ids": list(self.example_ids), "gap": self.gap,
        }


@dataclass(frozen=True)
class CoverageReport:
    population: int  # records the sample was drawn from
    sampled: int  # records embedded and clustered
    distinct_queries: int  # distinct texts in the sample
    golden_cases: int
    k: int
    k_rule: str
    threshold: float  # cosine distance
    threshold_rule: str
    alpha: float | None  # None: the threshold was given
    gap_share: float
    min_count: int
    seed: int
    segment_keys: tuple[str, ...]
    uncovered_share: float  # of all sampled records
    clusters: tuple[CoverageCluster, ...]  # every cluster, by id
    window: dict[str, str] = field(default_factory=dict)  # since / until, when read from the store
    golden_ids: frozenset[str] = field(default_factory=frozenset, repr=False)
    record_ids: tuple[str, ...] = field(default=(), repr=False)  # the sampled records, in input order
    record_clusters: tuple[int, ...] = field(default=(), repr=False)  # each one's cluster id
    record_distances: tuple[float, ...] = field(default=(), repr=False)  # each one's nearest-golden distance

    def assignments(self) -> dict[str, int]:
        """Sampled record id -> its cluster id."""
        return dict(zip(self.record_ids, self.record_clusters, strict=True))

    @property
    def gaps(self) -> tuple[CoverageCluster, ...]:
        """The gap clusters, most traffic first."""
        return tuple(sorted((c for c in self.clusters if c.gap), key=lambda c: (-c.size, c.id)))

    @property
    def gap_records(self) -> int:
        return sum(c.size for c in self.gaps)

    def candidates(self) -> list[dict[str, Any]]:
        """JSONL golden-case candidates, one per representative of each gap (in gap order), ids
        ``gap-<cluster>-<n>`` (an id the golden set already has is skipped). ``relevance`` and ``answers`` are
        empty and ``metadata.todo`` says what to fill in: not a golden case until a person does."""
        out: list[dict[str, Any]] = []
        for c in self.gaps:
            n = 0
            for rep in c.representatives:
                n += 1
                while f"gap-{c.id}-{n}" in self.golden_ids:
                    n += 1
                tags = {"source": "coverage", "cluster": str(c.id)}
                for key, value in rep.segments.items():
                    tags[key if key not in tags else f"segment:{key}"] = value
                out.append({
                    "id": f"gap-{c.id}-{n}",
                    "query": rep.query,
                    "relevance": {},
                    "answers": [],
                    "tags": tags,
                    "metadata": {
                        "todo": TODO_NOTE,
                        "cluster": c.id,
                        "cluster_size": c.size,
                        "cluster_share": round(c.share, 6),
                        "count": rep.count,
                        "segments": {k: dict(v) for k, v in c.segments.items()},
                        "example_ids": list(rep.record_ids),
                        "nearest_golden": rep.nearest_golden,
                        "distance": round(rep.distance, 6),
                        "threshold": round(self.threshold, 6),
                        **({"window": self.window} if self.window else {}),
                    },
                })
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "population": self.population, "sampled": self.sampled, "distinct_queries": self.distinct_queries,
            "golden_cases": self.golden_cases, "k": self.k, "k_rule": self.k_rule, "threshold": self.threshold,
            "threshold_rule": self.threshold_rule, "alpha": self.alpha, "gap_share": self.gap_share,
            "min_count": self.min_count, "seed": self.seed, "segments": list(self.segment_keys),
            "uncovered_share": self.uncovered_share, "window": self.window,
            "gaps": [c.id for c in self.gaps], "gap_records": self.gap_records,
            "clusters": [c.to_dict() for c in self.clusters],
        }


# --- the rules --------------------------------------------------------------------------------------------


def choose_k(n: int, distinct: int, min_count: int) -> int:
    """``round(sqrt(n / 2))``, at most ``n // min_count`` and ``distinct``, at least 1."""
    k = round(math.sqrt(n / 2))
    return max(1, min(k, n // max(min_count, 1), distinct))


def conformal_threshold(loo: np.ndarray, alpha: float) -> float:
    """The ``ceil((1 - alpha)(G + 1))``-th smallest of ``G`` leave-one-out nearest-golden distances."""
    g = len(loo)
    rank = math.ceil((1 - alpha) * (g + 1) - 1e-9)
    if rank > g:
        need = math.ceil((1 - alpha) / alpha - 1e-9)
        raise HarnessError(f"the golden set has {g} case(s): calibrating the coverage threshold at alpha={alpha} "
                           f"needs at least {need}", hint="pass a larger alpha (--alpha) or a fixed --threshold")
    return float(np.sort(loo)[rank - 1])


def _normalized(x: np.ndarray, rows: int, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != rows:
        raise ValueError(f"embed returned shape {x.shape} for {rows} {what}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms == 0, 1.0, norms), dtype=np.float32)


def _nearest(golden: np.ndarray, x: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, golden indices) of the ``k`` nearest golden vectors of each row, exact inner product."""
    import faiss

    index = faiss.IndexFlatIP(golden.shape[1])
    index.add(golden)
    sims, idx = index.search(x, k)
    return sims, idx


def _kmeans(x: np.ndarray, weights: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Spherical k-means centroids (k x d): seeded k-means++ starts, the best of 5 restarts, every row used (no
    subsampling). One random start left a small far topic merged into a covered one on the tests' data."""
    if k == 1:
        c = (x * weights[:, None]).sum(axis=0, keepdims=True)
        norm = float(np.linalg.norm(c))
        return (c / norm if norm > 0 else c).astype(np.float32)
    import faiss

    km = faiss.Kmeans(x.shape[1], k, niter=25, nredo=5, seed=seed, spherical=True, verbose=False,
                      min_points_per_centroid=1, max_points_per_centroid=1 << 30,
                      init_method=faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS)
    km.train(x, weights=weights.astype(np.float32))
    return np.asarray(km.centroids, dtype=np.float32)


# --- the core ---------------------------------------------------------------------------------------------


def find_gaps(
    queries: Sequence[str],
    record_ids: Sequence[str],
    attrs: Sequence[Mapping[str, str] | None],
    golden: Sequence[GoldenCase],
    embed: Callable[[list[str]], np.ndarray],
    *,
    segments: Sequence[str] = (),
    n_clusters: int | None = None,
    min_count: int = 10,
    seed: int = 0,
    sample: int | None = DEFAULT_SAMPLE,
    population: int | None = None,
    alpha: float = 0.05,
    threshold: float | None = None,
    gap_share: float = 0.5,
    representatives: int = 5,
) -> CoverageReport:
    """Cluster production queries and mark the clusters far from every golden case (see the module doc).

    ``queries``/``record_ids``/``attrs`` are parallel, one entry per record; ``attrs`` holds each record's
    segment values. ``embed`` maps texts to one vector per text. ``population`` is the number of records these
    were already sampled from (default: ``len(queries)``). ``threshold`` (a cosine distance) replaces the
    calibrated one. Raises :class:`HarnessError` when there are no records or no golden cases, or too few
    golden cases to calibrate at ``alpha``.
    """
    n_in = len(queries)
    if len(record_ids) != n_in or len(attrs) != n_in:
        raise ValueError("queries, record_ids and attrs must have one entry per record")
    if n_in == 0:
        raise HarnessError("no production records to cluster")
    if not golden:
        raise HarnessError("the golden set is empty: coverage compares production queries with golden cases")
    if not 0 < alpha < 1 or not 0 < gap_share <= 1 or min_count < 1 or representatives < 1:
        raise HarnessError("coverage settings out of range: 0 < alpha < 1, 0 < gap_share <= 1, min_count >= 1, "
                           "representatives >= 1")
    rng = np.random.default_rng(seed)
    rows = np.arange(n_in)
    if sample is not None and n_in > sample:
        rows = np.sort(rng.choice(n_in, size=sample, replace=False))
    n = len(rows)
    pop = population if population is not None else n_in

    # distinct texts, in first-seen order; members[i] = distinct index of sampled record i
    text_index: dict[str, int] = {}
    members = np.empty(n, dtype=np.int64)
    for i, r in enumerate(rows.tolist()):
        members[i] = text_index.setdefault(queries[r], len(text_index))
    texts = list(text_index)
    weights = np.bincount(members, minlength=len(texts)).astype(np.float64)

    gvec = _normalized(embed([c.query for c in golden]), len(golden), "golden queries")
    qvec = _normalized(embed(texts), len(texts), "queries")
    if gvec.shape[1] != qvec.shape[1]:
        raise ValueError("golden and production embeddings differ in width")

    # the threshold: leave-one-out nearest-golden distances of the golden cases themselves
    if threshold is None:
        if len(golden) < 2:
            conformal_threshold(np.zeros(len(golden)), alpha)  # raises: too few to calibrate
        sims2, idx2 = _nearest(gvec, gvec, 2)
        own = idx2[:, 0] == np.arange(len(golden))
        loo = 1.0 - np.where(own, sims2[:, 1], sims2[:, 0])
        tau = conformal_threshold(np.clip(loo, 0.0, 2.0), alpha)
        rule = (f"conformal: the ceil((1-alpha)(G+1))-th smallest of the {len(golden)} golden cases' "
                f"nearest-other-golden cosine distances, alpha={alpha}")
    else:
        tau = float(threshold)
        rule = "given"
    sims1, idx1 = _nearest(gvec, qvec, 1)
    dist = np.clip(1.0 - sims1[:, 0], 0.0, 2.0)  # per distinct text
    nearest_id = [golden[int(j)].id if j >= 0 else None for j in idx1[:, 0]]
    uncovered_text = dist > tau
    uncovered = uncovered_text[members]

    k = n_clusters if n_clusters is not None else choose_k(n, len(texts), min_count)
    k = max(1, min(k, len(texts)))
    k_rule = "given" if n_clusters is not None else "round(sqrt(n/2)), at most n // min_count and the distinct texts"
    centroids = _kmeans(qvec, weights, k, seed)
    sim_c = qvec @ centroids.T
    label_text = np.argmax(sim_c, axis=1)
    sim_to_own = sim_c[np.arange(len(texts)), label_text]
    label = label_text[members]
    # number clusters by size, largest first (ties: the cluster whose first record came first)
    sizes = np.bincount(label, minlength=k)
    first = np.full(k, n, dtype=np.int64)
    np.minimum.at(first, label, np.arange(n))
    order = [c for c in sorted(range(k), key=lambda c: (-sizes[c], first[c])) if sizes[c] > 0]
    renumber = {c: new_id for new_id, c in enumerate(order)}
    c_sims, c_idx = _nearest(gvec, _normalized(centroids, k, "centroids"), 1)

    seg_keys = tuple(segments)
    rec_of_text: dict[int, list[int]] = {}
    for i, t in enumerate(members):
        rec_of_text.setdefault(int(t), []).append(int(rows[i]))

    def seg_values(r: int) -> dict[str, str]:
        a = attrs[r] or {}
        return {key: a.get(key, MISSING) for key in seg_keys}

    clusters: list[CoverageCluster] = []
    for new_id, c in enumerate(order):
        mask = label == c
        size = int(mask.sum())
        unc = float(uncovered[mask].mean())
        is_gap = size >= min_count and unc >= gap_share
        seg_counts: dict[str, tuple[tuple[str, int], ...]] = {}
        for key in seg_keys:
            counter = Counter((attrs[int(r)] or {}).get(key, MISSING) for r in rows[mask])
            seg_counts[key] = tuple(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:3])
        in_cluster = np.flatnonzero(label_text == c)
        pool = in_cluster[uncovered_text[in_cluster]] if is_gap else in_cluster
        ranked = pool[np.argsort(-sim_to_own[pool], kind="stable")]
        reps = tuple(
            Representative(query=texts[t], count=int(weights[t]), record_ids=tuple(
                str(record_ids[r]) for r in rec_of_text[int(t)][:_EXAMPLES]), distance=float(dist[t]),
                nearest_golden=nearest_id[t], similarity=float(sim_to_own[t]),
                segments=seg_values(rec_of_text[int(t)][0]))
            for t in ranked[:representatives])
        examples: list[str] = []
        for t in ranked:
            for rec in rec_of_text[int(t)]:
                if len(examples) < _EXAMPLES:
                    examples.append(str(record_ids[rec]))
            if len(examples) >= _EXAMPLES:
                break
        j = int(c_idx[c, 0])
        clusters.append(CoverageCluster(
            id=new_id, size=size, share=size / n, estimated_records=round(size / n * pop),
            uncovered_share=unc, median_distance=float(np.median(dist[members[mask]])),
            nearest_golden=golden[j].id if j >= 0 else None,
            centroid_distance=float(np.clip(1.0 - c_sims[c, 0], 0.0, 2.0)),
            segments=seg_counts, representatives=reps, example_ids=tuple(examples), gap=is_gap))
    return CoverageReport(
        population=pop, sampled=n, distinct_queries=len(texts), golden_cases=len(golden), k=len(clusters),
        k_rule=k_rule, threshold=tau, threshold_rule=rule, alpha=alpha if threshold is None else None,
        gap_share=gap_share, min_count=min_count, seed=seed, segment_keys=seg_keys,
        uncovered_share=float(uncovered.mean()), clusters=tuple(clusters),
        golden_ids=frozenset(c.id for c in golden), record_ids=tuple(str(record_ids[r]) for r in rows.tolist()),
        record_clusters=tuple(int(renumber[c]) for c in label.tolist()),
        record_distances=tuple(float(d) for d in dist[members].tolist()))


# --- reading the store ------------------------------------------------------------------------------------


def _day(value: str | date | None, what: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise HarnessError(f"{what} {value!r} is not a day (YYYY-MM-DD)") from None


@dataclass(frozen=True)
class StoreSample:
    population: int
    record_ids: list[str]
    queries: list[str]
    attrs: list[dict[str, str]]


def read_records(layout: Layout, since: str | date | None = None, until: str | date | None = None, *,
                 sample: int | None = DEFAULT_SAMPLE, seed: int = 0, files: Sequence[Path] | None = None
                 ) -> StoreSample:
    """The stored records of UTC days ``since`` .. ``until`` (both inclusive; None: open), at most ``sample``
    of them: chosen by DuckDB ordering on ``hash(record_id || seed)``, so the sample depends on the records,
    not on file order. ``files``: the part files to read (default: the store's committed parts,
    :meth:`harness.monitor.store.LogStore.parts`; a part a crashed ingestion left is never read).
    HarnessError when nothing was ingested or the window is empty."""
    from harness.monitor.schema import logs_dir

    lo, hi = _day(since, "--since"), _day(until, "--until")
    if lo is not None and hi is not None and hi < lo:
        raise HarnessError(f"--until {hi} is before --since {lo}")
    logs = logs_dir(layout)
    if files is None:
        from harness.monitor.store import LogStore

        parts = LogStore(layout).parts()
    else:
        parts = list(files)
    if not parts:
        raise HarnessError(f"no production records in {logs}: nothing was ingested",
                           hint="run `harness ingest LOG --manifest M` first")
    import duckdb

    where: list[str] = ["true"]
    params: dict[str, Any] = {"src": [str(p) for p in parts]}
    if lo is not None:
        where.append("ts >= $lo")
        params["lo"] = datetime(lo.year, lo.month, lo.day, tzinfo=UTC)
    if hi is not None:
        end = hi + timedelta(days=1)
        where.append("ts < $hi")
        params["hi"] = datetime(end.year, end.month, end.day, tzinfo=UTC)
    src = f"read_parquet($src, hive_partitioning=true, union_by_name=true) where {' and '.join(where)}"
    con = duckdb.connect()
    try:
        row = con.execute(f"select count(*) from {src}", params).fetchone()
        population = int(row[0]) if row else 0
        if population == 0:
            window = f"{lo or 'the first day'} .. {hi or 'the last day'}"
            raise HarnessError(f"no production records in {logs} between {window}")
        if sample is not None and population > sample:
            rows = con.execute(f"select record_id, query, attrs from {src} "
                               "order by hash(record_id || $seed), record_id limit $n",
                               {**params, "seed": str(seed), "n": sample}).fetchall()
        else:
            rows = con.execute(f"select record_id, query, attrs from {src} order by ts, record_id",
                               params).fetchall()
    except duckdb.Error as exc:
        raise HarnessError(f"cannot read the production records in {logs}: {' '.join(str(exc).split())[:300]}"
                           ) from None
    finally:
        con.close()
    return StoreSample(population=population, record_ids=[str(r[0]) for r in rows], queries=[str(r[1]) for r in rows],
                       attrs=[dict(r[2]) if r[2] else {} for r in rows])


def coverage_from_store(
    layout: Layout,
    manifest: LoadedManifest,
    since: str | date | None = None,
    until: str | date | None = None,
    *,
    sample: int | None = DEFAULT_SAMPLE,
    seed: int | None = None,
    segments: Sequence[str] | None = None,
    min_count: int = 10,
    alpha: float = 0.05,
    threshold: float | None = None,
    n_clusters: int | None = None,
    representatives: int = 5,
    progress: Progress | None = None,
    files: Sequence[Path] | None = None,
) -> CoverageReport:
    """:func:`find_gaps` over the project's ingested records of a window, embedded with the manifest's pinned
    embedding model through the project's cache. ``seed`` and ``segments`` default to the manifest's
    ``[monitor]`` table; ``files`` are the log part files to read (see :func:`read_records`). The manifest's
    pins must verify (the report is about the pinned golden set)."""
    from harness.cache import Cache
    from harness.golden import load_golden
    from harness.manifest import HashMemo, require_verified
    from harness.pipeline import stage_inputs
    from harness.progress import NULL_PROGRESS
    from harness.retrieve import RetrieverConfig, make_embedder

    m = manifest.manifest
    mon = m.monitor
    seed = seed if seed is not None else (mon.seed if mon is not None else 0)
    segs = tuple(segments) if segments is not None else (mon.segments if mon is not None else ())
    if "embedding" not in m.artifacts:
        raise HarnessError(f"{manifest.path}: coverage embeds queries with the manifest's embedding model, and it "
                           "has no 'embedding' artifact")
    records = read_records(layout, since, until, sample=sample, seed=seed, files=files)
    golden = load_golden(manifest.resolve("golden"))
    embedding = stage_inputs(manifest).embedding
    assert embedding is not None
    prefix = RetrieverConfig.model_validate(m.artifact("retriever").params).query_prefix \
        if "retriever" in m.artifacts else ""
    cache = Cache(layout.cache_db)
    try:
        require_verified(manifest, HashMemo(cache))
        embedder = make_embedder(embedding[0], embedding[1], cache, progress or NULL_PROGRESS)
        report = find_gaps(records.queries, records.record_ids, records.attrs, golden,
                           lambda texts: embedder.embed(texts, prefix, "embedding queries"),
                           segments=segs, n_clusters=n_clusters, min_count=min_count, seed=seed, sample=None,
                           population=records.population, alpha=alpha, threshold=threshold,
                           representatives=representatives)
    finally:
        cache.close()
    window = {k: str(v) for k, v in (("since", since), ("until", until)) if v is not None}
    from dataclasses import replace

    return replace(report, window=window)


# --- appending filled-in candidates -----------------------------------------------------------------------

_JSONL = (".jsonl", ".ndjson")


@dataclass(frozen=True)
class AppendResult:
    appended: tuple[str, ...]  # case ids, in file order
    golden_path: Path
    pin: str  # the golden artifact's new pin
    manifest_id: str


def check_candidates(path: Path, existing: Mapping[str, int], doc_ids: Container[str] | None,
                     golden_path: Path) -> list[dict[str, Any]]:
    """Every record of the candidates file, checked as a finished golden case: the golden schema, relevance
    naming corpus documents (via :func:`harness.golden.load_golden`), then per line: no ``metadata.todo``,
    relevance filled (at least one grade >= 1), an id the golden set does not have. InputError at file:line."""
    from harness.golden import iter_jsonl, load_golden

    if path.suffix not in _JSONL:
        raise InputError(path, "candidates are JSON Lines (.jsonl), as `harness coverage --out` writes them")
    load_golden(path, doc_ids)
    records: list[dict[str, Any]] = []
    for lineno, rec in iter_jsonl(path):
        meta = rec.get("metadata")
        if isinstance(meta, dict) and "todo" in meta:
            raise InputError(path, "this candidate is not filled in yet: add relevance (and answers), then delete "
                             "metadata.todo", line=lineno, field="metadata.todo")
        relevance = rec.get("relevance") or {}
        if not any(grade >= 1 for grade in relevance.values()):
            raise InputError(path, "relevance is not filled in: name at least one corpus document with a grade >= 1",
                             line=lineno, field="relevance")
        if rec["id"] in existing:
            raise InputError(path, f"id {rec['id']!r} is already in the golden set ({golden_path}:"
                             f"{existing[rec['id']]})", line=lineno, field="id")
        records.append(rec)
    return records


def append_candidates(manifest_path: str | Path | None, candidates: str | Path) -> AppendResult:
    """Append filled-in candidates to the manifest's golden set and re-lock its pin.

    Everything is checked before anything is written: the manifest's pins verify (so the re-lock blesses only
    this change), the golden set is JSON Lines and loads, and every candidate passes
    :func:`check_candidates`. The golden file is then rewritten atomically (its bytes kept, the records
    appended) and :func:`harness.manifest.lock` writes the new pin; if locking fails the old file is put back.
    """
    import json

    from harness.cache import Cache
    from harness.corpus import summarize
    from harness.golden import iter_jsonl, load_golden
    from harness.manifest import HashMemo, load_manifest, lock, require_verified
    from harness.storage import Layout, atomic_write_bytes

    loaded = load_manifest(manifest_path)
    m = loaded.manifest
    golden_path = loaded.resolve("golden")
    if golden_path.suffix not in _JSONL or not golden_path.is_file():
        raise InputError(golden_path, "golden append writes JSON Lines: the manifest's golden set is not a .jsonl "
                         "file")
    layout = Layout.for_manifest(loaded.path)
    cache = Cache(layout.cache_db) if layout.cache_db.exists() else None
    try:
        require_verified(loaded, HashMemo(cache))
        doc_ids = summarize(loaded.resolve("corpus"), m.artifact("corpus").sha256,
                            layout.corpus_store).ids if "corpus" in m.artifacts else None
        load_golden(golden_path, doc_ids)
        existing = {rec["id"]: lineno for lineno, rec in iter_jsonl(golden_path)}
        records = check_candidates(Path(candidates), existing, doc_ids, golden_path)
        old = golden_path.read_bytes()
        sep = b"" if not old or old.endswith(b"\n") else b"\n"
        new = old + sep + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
        atomic_write_bytes(golden_path, new)
        try:
            pins = lock(loaded.path, HashMemo(cache))
        except BaseException:
            atomic_write_bytes(golden_path, old)
            raise
    finally:
        if cache is not None:
            cache.close()
    return AppendResult(appended=tuple(r["id"] for r in records), golden_path=golden_path, pin=pins["golden"],
                        manifest_id=load_manifest(loaded.path).id)
