"""Label-free signals per production record, computed once per stored log part and cached beside it.

Cheap signals are computed for every record, vectorized over Arrow columns (:func:`cheap_signals`):

- query: ``query_chars``, ``query_words``;
- retrieval (when logged): ``n_retrieved``, ``top1_score``, ``topk_mean_score``;
- answer (when logged): ``answer_chars``, ``answer_empty``, ``abstained`` (an "I don't know" answer),
  ``format_valid`` (the record's output contract, from the project's validators; null when the record names
  none), ``instructions_followed`` (every IFEval-style instruction logged with the record, strict);
- service: ``latency:<stage>`` (one column per logged stage), ``error_kind`` ("none" when none), ``timeout``.

Expensive signals (query embedding, language, distance to the nearest golden case, the nearest golden
cluster, groundedness against the logged contexts) are computed by the monitor on a seeded sample per
window (:func:`sample_order`: the records with the smallest keyed hash of their id, so a record is in the
sample of every window that holds it), with the project's embedder and cache.

A signal's ``kind`` decides its tests (``numeric``: KS, Wasserstein, PSI; ``categorical``: chi-squared and
Jensen-Shannon; the embedding: MMD). Undefined values are null, never 0: a record without an answer has no
``answer_chars``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.contracts import ContractSet, validate
from harness.hashing import sha256_json
from harness.storage import atomic_write_bytes

SIGNALS_VERSION = 1  # bump when a cheap signal's definition changes: the cache key includes it

SignalKind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class SignalSpec:
    name: str
    kind: SignalKind
    group: Literal["query", "retrieval", "answer", "service"]
    sampled: bool = False
    description: str = ""
    better: Literal["higher", "lower"] | None = None
    """Which way is better, for the release checks (replay, canary) that judge a move as worse or not:
    ``None`` for a signal with no better side (a query's length). A boolean signal's direction is that of
    its true rate; ``error_kind``'s is that of its rate of errors (any kind but ``none``)."""


CHEAP_SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec("query_chars", "numeric", "query", description="characters in the query"),
    SignalSpec("query_words", "numeric", "query", description="whitespace-separated words in the query"),
    SignalSpec("n_retrieved", "numeric", "retrieval", description="documents the retriever returned"),
    SignalSpec("top1_score", "numeric", "retrieval", description="the best retrieved document's score",
               better="higher"),
    SignalSpec("topk_mean_score", "numeric", "retrieval", description="the mean score of the retrieved documents",
               better="higher"),
    SignalSpec("answer_chars", "numeric", "answer", description="characters in the logged answer"),
    SignalSpec("answer_empty", "categorical", "answer", description="the answer is blank", better="lower"),
    SignalSpec("abstained", "categorical", "answer", description="the answer declines to answer", better="lower"),
    SignalSpec("format_valid", "categorical", "answer", description="the answer meets its output contract",
               better="higher"),
    SignalSpec("instructions_followed", "categorical", "answer",
               description="the answer follows every logged instruction (strict)", better="higher"),
    SignalSpec("error_kind", "categorical", "service", description="the app's error kind, 'none' without one",
               better="lower"),
    SignalSpec("timeout", "categorical", "service", description="the request timed out", better="lower"),
)
SAMPLED_SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec("language", "categorical", "query", True, "the query's language (py3langid)"),
    SignalSpec("golden_distance", "numeric", "query", True, "cosine distance to the nearest golden case", "lower"),
    SignalSpec("golden_cluster", "categorical", "query", True, "the golden cluster nearest the query"),
    SignalSpec("groundedness", "numeric", "answer", True, "the answer's groundedness in its logged contexts",
               "higher"),
)
LATENCY_PREFIX = "latency:"

ABSTAIN_RE = (r"(?i)\b(i (do not|don't|cannot|can't) (know|answer|help|find)|i'm not sure|i am not sure|"
              r"no (relevant )?information|unable to (answer|find)|not enough information|cannot be determined)\b")


def signal_spec(name: str) -> SignalSpec:
    """The spec of a signal by name; a ``latency:<stage>`` signal is numeric, lower better."""
    if name.startswith(LATENCY_PREFIX):
        return SignalSpec(name, "numeric", "service", description=f"seconds in stage {name[len(LATENCY_PREFIX):]}",
                          better="lower")
    for spec in CHEAP_SIGNALS + SAMPLED_SIGNALS:
        if spec.name == name:
            return spec
    raise KeyError(name)


def signal_kind(name: str) -> SignalKind:
    if name.startswith(LATENCY_PREFIX):
        return "numeric"
    for spec in CHEAP_SIGNALS + SAMPLED_SIGNALS:
        if spec.name == name:
            return spec.kind
    raise KeyError(name)


def _list_stats(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(length, first value, mean) per row of a list<double> column; NaN where the row is null or empty."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False).astype(np.float64)  # NaN for null rows
    flat = pc.list_flatten(arr).to_numpy(zero_copy_only=False).astype(np.float64) if n else np.zeros(0)
    counts = np.nan_to_num(lengths, nan=0.0).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if n else np.zeros(0, dtype=np.int64)
    first = np.full(n, np.nan)
    mean = np.full(n, np.nan)
    has = counts > 0
    if has.any():
        first[has] = flat[starts[has]]
        sums = np.add.reduceat(flat, starts[has]) if flat.size else np.zeros(0)
        mean[has] = sums / counts[has]
    return lengths, first, mean


def _latency_columns(column: pa.ChunkedArray) -> dict[str, pa.Array]:
    arr = column.combine_chunks()
    n = len(arr)
    if n == 0:
        return {}
    # a map is a list of (key, value) structs; cast so list kernels apply (MapArray.keys ignores slices)
    arr = arr.cast(pa.list_(pa.struct([("key", pa.string()), ("value", pa.float64())])))
    entries = pc.list_flatten(arr)
    keys = pc.struct_field(entries, [0]).to_numpy(zero_copy_only=False)
    values = pc.struct_field(entries, [1]).to_numpy(zero_copy_only=False).astype(np.float64)
    lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False).astype(np.float64)
    lengths = np.nan_to_num(lengths).astype(np.int64)
    rows = np.repeat(np.arange(n), lengths)
    out: dict[str, pa.Array] = {}
    for stage in sorted(set(keys.tolist())):
        col = np.full(n, np.nan)
        sel = keys == stage
        col[rows[sel]] = values[sel]
        out[LATENCY_PREFIX + str(stage)] = pa.array(col, mask=np.isnan(col))
    return out


def _bool_or_null(values: list[bool | None]) -> pa.Array:
    return pa.array(values, type=pa.bool_())


def _format_valid(table: pa.Table, contracts: ContractSet | None) -> pa.Array:
    names = table["contract"].to_pylist()
    if not any(names) or contracts is None:
        return pa.nulls(table.num_rows, pa.bool_())
    answers = table["answer"].to_pylist()
    ids = table["retrieved_ids"].to_pylist()
    out: list[bool | None] = []
    for name, answer, retrieved in zip(names, answers, ids, strict=True):
        contract = contracts.get(name)
        if contract is None or answer is None:
            out.append(None)
            continue
        results = validate(contract, answer, set(retrieved or ()), contracts)
        out.append(all(r.passed for r in results if r.critical))
    return _bool_or_null(out)


def _instructions_followed(table: pa.Table) -> pa.Array:
    specs = table["instructions"].to_pylist()
    if not any(specs):
        return pa.nulls(table.num_rows, pa.bool_())
    from harness.errors import HarnessError
    from harness.instructions.registry import check_instructions

    answers = table["answer"].to_pylist()
    queries = table["query"].to_pylist()
    out: list[bool | None] = []
    for spec, answer, query in zip(specs, answers, queries, strict=True):
        if not spec or answer is None:
            out.append(None)
            continue
        try:
            results = check_instructions(answer, json.loads(spec), prompt=query)
        except (HarnessError, ValueError, TypeError):
            out.append(None)  # an instruction this project does not know: not judged, never "followed"
            continue
        out.append(all(r.followed for r in results) and not any(r.error for r in results))
    return _bool_or_null(out)


def sample_keys(record_ids: Iterable[str], seed: int) -> np.ndarray:
    """A keyed hash (uint64) per record id: the sample of a window is its records with the smallest keys."""
    salt = str(seed).encode()
    return np.fromiter((int.from_bytes(hashlib.blake2b(r.encode(), digest_size=8, key=salt).digest(), "little")
                        for r in record_ids), dtype=np.uint64)


def cheap_signals(table: pa.Table, contracts: ContractSet | None, *, seed: int = 0) -> pa.Table:
    """The cheap signals of every record of a table of :data:`~harness.monitor.schema.LOG_SCHEMA` columns,
    with ``record_id``, ``ts``, ``attrs``, ``query`` and ``sample_key`` kept for windows, segments and sampling."""
    query = table["query"]
    answer = table["answer"]
    n_ret, top1, mean = _list_stats(table["retrieved_scores"])
    ids_len = pc.list_value_length(table["retrieved_ids"]).to_numpy(zero_copy_only=False).astype(np.float64)
    n_ret = np.where(np.isnan(n_ret), ids_len, n_ret)
    trimmed = pc.utf8_trim_whitespace(answer)
    columns: dict[str, Any] = {
        "record_id": table["record_id"],
        "ts": table["ts"],
        "attrs": table["attrs"],
        "query": query,
        "sample_key": pa.array(sample_keys(table["record_id"].to_pylist(), seed), type=pa.uint64()),
        "query_chars": pc.utf8_length(query),
        "query_words": pc.list_value_length(pc.utf8_split_whitespace(query)),
        "n_retrieved": pa.array(n_ret, mask=np.isnan(n_ret)),
        "top1_score": pa.array(top1, mask=np.isnan(top1)),
        "topk_mean_score": pa.array(mean, mask=np.isnan(mean)),
        "answer_chars": pc.utf8_length(answer),
        "answer_empty": pc.equal(pc.utf8_length(trimmed), 0),
        "abstained": pc.match_substring_regex(answer, ABSTAIN_RE),
        "format_valid": _format_valid(table, contracts),
        "instructions_followed": _instructions_followed(table),
        "error_kind": pc.fill_null(table["error"], "none"),
        "timeout": table["timeout"],
    }
    columns.update(_latency_columns(table["latency"]))
    return pa.table(columns)


def signal_set_id(contracts: ContractSet | None, seed: int) -> str:
    """The cache identity of the cheap signals: their version, the contracts' definitions and the seed."""
    defs = {name: c.model_dump(mode="json") for name, c in sorted(contracts.contracts.items())} if contracts else {}
    return sha256_json({"version": SIGNALS_VERSION, "contracts": defs, "seed": seed, "abstain": ABSTAIN_RE})[:16]


_READ_COLUMNS = ("record_id", "ts", "query", "answer", "retrieved_ids", "retrieved_scores", "latency", "error",
                 "timeout", "instructions", "contract", "attrs")


def part_signals(part: Path, cache_root: Path, contracts: ContractSet | None, *, seed: int = 0) -> pa.Table:
    """The cheap signals of one stored log part, from the cache when computed before (keyed by the signal
    set, the part's day and name, and its size: a part is rewritten only with the same content)."""
    day = part.parent.name
    target = cache_root / signal_set_id(contracts, seed) / day / f"{part.stem}-{part.stat().st_size}.parquet"
    if target.is_file():
        try:
            return pq.read_table(target)
        except (OSError, pa.ArrowInvalid):
            pass  # a damaged cache file is recomputed, never trusted
    table = pq.read_table(part, columns=list(_READ_COLUMNS))
    signals = cheap_signals(table, contracts, seed=seed)
    sink = pa.BufferOutputStream()
    pq.write_table(signals, sink, compression="zstd")
    atomic_write_bytes(target, sink.getvalue().to_pybytes())
    return signals

