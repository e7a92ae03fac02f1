"""Shadow replay (``harness replay``): logged production queries through a baseline and a candidate manifest.

A replay is the gate on other cases. The logged queries (the project's ingested store or one ``--log``
file; all of a window or segment, or a seeded sample) become the cases of two ordinary runs of
:func:`harness.pipeline.execute`, baseline then candidate, with every cache applying (a query both
manifests retrieve the same way is embedded once; an answer already generated is never paid for again).
They are scored by the label-free scorers only (there are no relevance labels in production): ``format``
(the logged output contract), ``instructions`` (the logged instructions), ``groundedness``, ``truncation``
and ``signals`` (the monitor's directional cheap signals, :mod:`harness.scorers.signals`). The two runs
are compared by :func:`harness.diff.compare` (paired sign-flip permutation tests over the same queries,
which on a 0/1 metric is the exact McNemar test; one family over metrics x segments, Benjamini-Hochberg by
default) and judged by :func:`harness.gates.evaluate_gates` under ``[[replay.gates]]`` or
:func:`default_rules` (no directional metric may be significantly worse, overall or in any segment).

Everything is checked before anything is written or paid for (:func:`plan_replay`): both manifests load
and match their pins, neither answers from an outputs artifact, the rules name metrics the replay scores
and segments of ``[monitor].segments``, and every replayed record's contract and instructions are known
to both manifests (bad input names the record's ``file:line``).

Memory: the replay holds its cases (the selected records as :class:`~harness.types.GoldenCase`, ~2 KB each:
:func:`harness.pipeline.execute_unscored` takes them as a list) and, while a side runs, what the pipeline
holds of it; once both sides are stored it reads them by columns (:meth:`harness.runs.RunTable.columns`:
the diff, the gate, the error counts, each side's latency and cache hits) and streams their outputs a batch
of each side at a time (the agreement and the signals' moves). A run is never loaded whole.

Storage: ``<home>/replays/<replay id>/`` holds the two runs (a :class:`~harness.runs.RunStore`) and
``report.json``. A replay id is new per invocation; a killed replay is resumed by running it again with the
same arguments: nothing that reached the cache is paid for twice. The bound is the generation engine's
(:mod:`harness.generate.engine`): answers are written to the cache when a fresh answer arrives at least
``_FLUSH_SECONDS`` (0.5 s) after the previous write, when ``_FLUSH_EVERY`` (64) answers wait, and when a
side's generation ends (so a side that finished repeats nothing). With answers arriving steadily, a kill
repeats at most the calls in flight and the answers received in its last ``_FLUSH_SECONDS`` plus one call's
latency (fewer than ``_FLUSH_EVERY``). A killed replay's folder keeps what it stored and has no
``report.json``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from harness.columns import RunColumns
from harness.diff import Diff, DiffSettings, compare
from harness.diff.artifacts import manifest_changes
from harness.errors import HarnessError, InputError, InstructionSpecError
from harness.gates import IMPLICIT_ERROR_RULE, STAGES, GateResult, evaluate_gates, stage_cache_hits
from harness.manifest import LoadedManifest
from harness.progress import NULL_PROGRESS, Progress
from harness.shadow.logs import LogQuery, duplicates_dropped, read_records
from harness.shadow.model import (
    Agreement,
    Quantiles,
    ReplayReport,
    ReplaySelection,
    ReplaySide,
    SignalMove,
)
from harness.storage import Layout
from harness.types import (
    CaseOutput,
    ComputeEngine,
    GateRule,
    GoldenCase,
    InstructionSpec,
    MonitorConfig,
    ReplayConfig,
    Score,
    ScorerSpec,
)

if TYPE_CHECKING:
    from harness.runs import RunTable

__all__ = [
    "DEFAULT_METRICS",
    "ReplayPlan",
    "ReplayRequest",
    "default_rules",
    "plan_replay",
    "replay",
    "replay_config",
    "replays_dir",
    "report_path",
    "run_replay",
]

DEFAULT_METRICS = ("format_pass", "instructions_strict", "instruction_frac_strict", "groundedness", "top1_score",
                   "topk_mean_score", "answer_empty", "abstained")
"""The directional metrics the default rules judge (each only when some replayed case can score it)."""

_REPLAY_RUN_METRICS = ("error_rate", "latency")  # the run-level metrics a [[replay.gates]] rule may name
_NO_QUERY = "no query"
_OVERLAP_PAUSE = 3.0  # the baseline's groundedness checker sleeps this many times each batch's compute time
_OVERLAP_SWITCH_S = 0.001  # the GIL switch interval while the baseline is scored beside the candidate's calls
_DUPLICATE = "duplicate record id"
_SELECT_ROWS = 10_000  # logged records made into Python rows at a time while selecting
_PAIR_ROWS = 2_000  # cases of each side decoded at a time for the agreement and the moves


@dataclass(frozen=True)
class ReplayRequest:
    baseline: LoadedManifest
    candidate: LoadedManifest
    layout: Layout  # the project's (the candidate's) layout: logs, cache, replays
    log: Path | None = None  # --log FILE; None: the ingested store
    query: LogQuery = LogQuery()  # noqa: RUF009 (frozen: safe to share)  --since/--until/--segment
    sample: int | None = None  # None: ReplayConfig.sample
    seed: int | None = None  # None: ReplayConfig.seed
    concurrency: int | None = None  # None: ReplayConfig.concurrency, else the generator's own
    engine: Literal["local", "ray"] | None = None  # --engine; None: the candidate manifest's [engine] kind


def replay_engine(req: ReplayRequest) -> ComputeEngine:
    """Where both sides run (retrieval's heavy work and the scoring): the candidate manifest's ``[engine]``,
    ``--engine`` overriding its kind. Both sides take the same one, so they are scored through the same path."""
    config = req.candidate.manifest.engine or ComputeEngine()
    return config if req.engine is None else config.model_copy(update={"kind": req.engine})


@dataclass(frozen=True)
class ReplayPlan:
    """Everything :func:`run_replay` needs, checked: the cases, scorers, rules and settings."""

    request: ReplayRequest
    config: ReplayConfig
    monitor: MonitorConfig
    cases: tuple[GoldenCase, ...]
    scorers: tuple[ScorerSpec, ...]
    rules: tuple[GateRule, ...]
    rules_from: Literal["manifest", "default"]
    settings: DiffSettings
    selection: ReplaySelection
    concurrency: int | None
    contracts: Any  # harness.contracts.ContractSet | None (the candidate's; answer texts for agreement)
    notes: tuple[str, ...] = ()


def replay_config(candidate: LoadedManifest) -> ReplayConfig:
    """The candidate manifest's ``[replay]`` table, or the defaults."""
    return candidate.manifest.replay or ReplayConfig()


def replays_dir(layout: Layout) -> Path:
    """Where replays are stored: ``<home>/replays``."""
    return layout.home / "replays"


def default_rules(segment_keys: Sequence[str], min_segment_size: int, metrics: Sequence[str]
                  ) -> tuple[GateRule, ...]:
    """For every metric: not significantly worse (after the family's correction) at all, overall and in each
    value of every segment key (segments smaller than ``min_segment_size`` are skipped and listed)."""
    rules: list[GateRule] = []
    for m in metrics:
        rules.append(GateRule(metric=m, max_abs_drop=0.0))
        rules += [GateRule(metric=m, segment=f"{key}=*", max_abs_drop=0.0, min_segment_size=min_segment_size)
                  for key in segment_keys]
    return tuple(rules)


# --- planning: every check, nothing written ----------------------------------------------------------


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    from harness.gates import _did_you_mean as did_you_mean

    return did_you_mean(name, known)


def _contracts(loaded: LoadedManifest) -> Any:
    if "validators" not in loaded.manifest.artifacts:
        return None
    from harness.contracts import load_contracts

    return load_contracts(loaded.resolve("validators"))


def _verify(loaded: LoadedManifest, layout: Layout) -> None:
    """The pins, as :func:`harness.pipeline.execute` checks them (a stale pin is exit 2 before any call)."""
    from harness.cache import Cache
    from harness.manifest import HashMemo, require_verified

    cache = Cache(layout.cache_db) if layout.cache_db.exists() else None
    try:
        require_verified(loaded, HashMemo(cache))
    finally:
        if cache is not None:
            cache.close()


def _instructions(text: str | None, query: str, source: str) -> tuple[InstructionSpec, ...]:
    if not text:
        return ()
    from harness.instructions.registry import validate_instruction

    try:
        specs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{source}: the logged instructions are not JSON ({exc.msg})",
                           hint='log instructions as [{"id": ..., "kwargs": {...}}]') from None
    if specs is None:
        return ()
    if not isinstance(specs, list):
        specs = [specs]
    out: list[InstructionSpec] = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
            raise HarnessError(f"{source}: instruction {i} is not {{\"id\": str, \"kwargs\": {{...}}}}: {spec!r}")
        try:
            validate_instruction(spec["id"], spec.get("kwargs"), query, f"instruction {i} ({spec['id']!r})")
        except InstructionSpecError as exc:
            raise HarnessError(f"{source}: {exc.message}", hint=exc.hint) from None
        out.append(InstructionSpec(id=spec["id"], kwargs={k: v for k, v in (spec.get("kwargs") or {}).items()
                                                         if v is not None}))
    return tuple(out)


def _select(req: ReplayRequest, monitor: MonitorConfig, sample: int | None, seed: int
            ) -> tuple[list[tuple[GoldenCase, str]], ReplaySelection]:
    """(cases with their records' sources, the selection): the records read, filtered, deduplicated and
    sampled (the ``sample`` smallest :func:`~harness.monitor.signals.sample_keys`, kept in time order).

    The matched table is read :data:`_SELECT_ROWS` records at a time, never turned into Python rows whole:
    a first pass over the ids and queries (which rows have a query; a 64-bit hash per id, the duplicates
    confirmed by the ids themselves), the sample's keys over the eligible ids, then the chosen rows made
    into cases slice by slice."""
    from harness.monitor.signals import sample_keys

    columns = ["record_id", "query", "contract", "instructions", "attrs", "source"]
    table = read_records(req.layout, monitor.mapping, req.query, log=req.log, columns=columns)
    matched = table.num_rows
    skipped: dict[str, int] = {}
    if dropped := duplicates_dropped(table):
        skipped[_DUPLICATE] = dropped
    has_query = np.zeros(matched, dtype=bool)
    hashes = np.zeros(matched, dtype=np.int64)
    for start, part in _slices(table.select(["record_id", "query"])):
        queries = part.column("query").to_pylist()
        has_query[start:start + len(queries)] = [bool((q or "").strip()) for q in queries]
        hashes[start:start + len(queries)] = np.fromiter((hash(r) for r in part.column("record_id").to_pylist()),
                                                         dtype=np.int64, count=len(queries))
    with_query = np.flatnonzero(has_query)
    eligible = _first_of_each_id(table, with_query, hashes)
    repeated = np.setdiff1d(with_query, eligible, assume_unique=True)
    no_query = np.flatnonzero(~has_query)
    # the reasons in the order the rows first give them (as a row-by-row pass would count them)
    for reason, rows in sorted(((_NO_QUERY, no_query), (_DUPLICATE, repeated)), key=lambda r: r[1][:1].tolist()):
        if len(rows):
            skipped[reason] = skipped.get(reason, 0) + len(rows)
    del hashes, has_query, with_query, repeated, no_query
    if sample is not None and sample < len(eligible):
        ids = table.column("record_id")
        keys = np.concatenate([sample_keys(ids.take(pa.array(eligible[s:s + _SELECT_ROWS])).to_pylist(), seed)
                               for s in range(0, len(eligible), _SELECT_ROWS)])
        eligible = eligible[np.sort(np.argsort(keys, kind="stable")[:sample])]
    chosen = np.zeros(matched, dtype=bool)
    chosen[eligible] = True
    cases: list[tuple[GoldenCase, str]] = []
    for start, part in _slices(table):
        keep = chosen[start:start + part.num_rows]
        if not keep.any():
            continue
        for row in part.filter(pa.array(keep)).to_pylist():
            attrs = dict(row["attrs"] or ())
            source = str(row["source"])
            case = GoldenCase(id=row["record_id"], query=row["query"], contract=row["contract"] or None,
                              instructions=_instructions(row["instructions"], row["query"], source),
                              tags={k: attrs[k] for k in monitor.segments if attrs.get(k) is not None})
            cases.append((case, source))
    selection = ReplaySelection(source="store" if req.log is None else str(req.log), window=req.query.describe(),
                                sample=sample, seed=seed, matched=matched, replayed=len(cases), skipped=skipped)
    return cases, selection


def _slices(table: pa.Table, rows: int | None = None) -> Iterator[tuple[int, pa.RecordBatch]]:
    """``table`` as record batches of at most ``rows`` (:data:`_SELECT_ROWS`) rows: (first row, batch)."""
    start = 0
    for batch in table.to_batches(max_chunksize=rows or _SELECT_ROWS):
        yield start, batch
        start += batch.num_rows


def _first_of_each_id(table: pa.Table, rows: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Of ``rows`` (ascending), the first row of each record id, ascending. Told by the ids' 64-bit hashes
    (``hashes``, one per table row); the rows whose hash is shared are settled by their ids, so two ids that
    only share a hash are both kept."""
    h = hashes[rows]
    _, first, counts = np.unique(h, return_index=True, return_counts=True)
    keep = np.zeros(len(rows), dtype=bool)
    keep[first] = True
    shared = counts > 1
    if shared.any():
        # every row of a hash seen more than once: their ids decide (a duplicate, or another id)
        suspect = np.flatnonzero(np.isin(h, h[first[shared]]))
        ids = table.column("record_id").take(pa.array(rows[suspect])).to_pylist()
        seen: set[str] = set()
        for at, rid in zip(suspect.tolist(), ids, strict=True):
            keep[at] = rid not in seen
            seen.add(rid)
    return rows[keep]


def _check_contracts(cases: Sequence[tuple[GoldenCase, str]], sides: Sequence[tuple[str, LoadedManifest, Any]]
                     ) -> None:
    first: dict[str, str] = {}
    for case, source in cases:
        if case.contract is not None:
            first.setdefault(case.contract, source)
    for name, source in first.items():
        for label, loaded, contracts in sides:
            if contracts is None:
                raise HarnessError(f"{source}: the record names contract {name!r}, but the {label} manifest "
                                   f"{loaded.path} has no validators artifact",
                                   hint="pin the validators that define it in both manifests")
            if contracts.get(name) is None:
                raise HarnessError(f"{source}: the record names contract {name!r}, which the {label} manifest's "
                                   f"validators ({loaded.resolve('validators')}) do not define",
                                   hint=_did_you_mean(name, contracts.contracts))


def _check_segment_key(req: ReplayRequest, monitor: MonitorConfig) -> None:
    """A --segment key that is no [monitor] segment and that no record in the window carries is bad input."""
    from harness.shadow.logs import LogQuery

    assert req.query.segment is not None
    key = req.query.segment[0]
    window = LogQuery(since=req.query.since, until=req.query.until)
    attrs = read_records(req.layout, monitor.mapping, window, log=req.log, columns=["attrs"])
    keys: set[str] = set()
    for _, part in _slices(attrs):
        keys |= {k for m in part.column("attrs").to_pylist() if m for k, _ in m}
    seen = sorted(keys)
    if key not in seen:
        raise HarnessError(f"--segment {key}={req.query.segment[1]}: no logged record has the attribute {key!r}",
                           hint=_did_you_mean(key, [*monitor.segments, *seen]) or
                           f"the attributes are: {', '.join(seen[:20]) or 'none'}")


def _redefined(cases: Sequence[GoldenCase], base: Any, head: Any) -> list[str]:
    """The logged contracts the candidate's validators define differently from the baseline's."""
    names = sorted({c.contract for c in cases if c.contract is not None})
    if base is None or head is None:
        return []
    return [n for n in names if base.get(n) != head.get(n)]


def _scorer_specs(candidate: LoadedManifest, cases: Sequence[GoldenCase] | None, generates: bool,
                  validators: bool) -> list[ScorerSpec]:
    """The label-free scorers that apply: ``signals`` always; with answers, ``format`` when a record names
    a contract, ``instructions`` when one carries instructions, ``groundedness`` (the candidate manifest's
    own ``[[scorers]]`` entry if it has one: both sides are scored alike) and ``truncation``. ``cases=None``:
    every scorer that could apply to some records (what a ``[[replay.gates]]`` rule may name)."""
    specs = [ScorerSpec(name="signals")]
    if not generates:
        return specs
    own = {s.name: s for s in candidate.manifest.scorers or ()}
    if validators and (cases is None or any(c.contract for c in cases)):
        specs.append(ScorerSpec(name="format"))
    if cases is None or any(c.instructions for c in cases):
        specs.append(ScorerSpec(name="instructions"))
    specs.append(own.get("groundedness", ScorerSpec(name="groundedness")))
    specs.append(ScorerSpec(name="truncation"))
    return specs


def _metric_directions(specs: Sequence[ScorerSpec], contracts: Any) -> dict[str, bool]:
    from harness.scorers import SCORERS
    from harness.scorers.answer import validator_metrics

    names: dict[str, bool] = {}
    for spec in specs:
        names |= {m.name: m.greater_is_better for m in SCORERS.build(spec.name, spec.args).metrics()}
    if any(s.name == "format" for s in specs):
        names |= {m.name: m.greater_is_better for m in validator_metrics(contracts)}
    return names


def _check_rules(candidate: LoadedManifest, rules: Sequence[GateRule], directions: dict[str, bool],
                 monitor: MonitorConfig, generates: bool) -> None:
    """``[[replay.gates]]`` rules name a metric the replay scores (or error_rate, latency of a stage) and a
    ``[monitor].segments`` key: anything else is an :class:`InputError` at the rule's line."""
    from harness.config import line_of

    text = candidate.path.read_text("utf-8")

    def bad(i: int, key: str, message: str, hint: str) -> InputError:
        return InputError(candidate.path, message, line=line_of(text, ("replay", "gates", i, key)),
                          field=f"replay.gates.{i}.{key}", hint=hint)

    known = [*directions, *_REPLAY_RUN_METRICS]
    for i, rule in enumerate(rules):
        if rule.metric not in known:
            raise bad(i, "metric", f"replay rule names metric {rule.metric!r}, which no label-free scorer of the "
                      "replay produces", _did_you_mean(rule.metric, known))
        if rule.max_rate is not None and directions.get(rule.metric) is True:
            raise bad(i, "max_rate", f"max_rate bounds a failure rate, but {rule.metric} is higher-is-better",
                      f"use min = ... for a floor on {rule.metric}")
        if rule.stage is not None and rule.stage not in STAGES:
            raise bad(i, "stage", f"unknown latency stage {rule.stage!r}", _did_you_mean(rule.stage, STAGES))
        if rule.stage == "generate" and not generates:
            raise bad(i, "stage", "latency stage 'generate' needs a generator in both manifests",
                      "use stage = \"retrieve\"")
        if rule.segment is not None:
            key, eq, value = rule.segment.partition("=")
            if not eq or not key or not value:
                raise bad(i, "segment", f"segment {rule.segment!r} is not 'key=value' or 'key=*'",
                          f"[monitor].segments: {', '.join(monitor.segments) or 'none'}")
            if key not in monitor.segments:
                raise bad(i, "segment", f"segment key {key!r} is not one of [monitor].segments",
                          _did_you_mean(key, monitor.segments) if monitor.segments
                          else "list the record attributes to segment by in [monitor].segments")


def _scorable(directions: dict[str, bool], cases: Sequence[GoldenCase], generates: bool) -> list[str]:
    """The default rules' metrics some replayed case can score."""
    out = []
    for m in DEFAULT_METRICS:
        if m not in directions:
            continue
        if m in ("groundedness", "answer_empty", "abstained") and not generates:
            continue
        out.append(m)
    return out if cases else []


def plan_replay(req: ReplayRequest) -> ReplayPlan:
    """Check everything a replay reads, writing nothing: both manifests load and match their pins and answer
    queries themselves (no outputs artifact), the records are read and turned into cases (a contract either
    manifest lacks or an unknown instruction is bad input at the record's file:line), the rules are checked,
    and both manifests' inputs are validated over the cases as :func:`harness.pipeline.execute` will."""
    from harness.pipeline import load_inputs

    if replay_engine(req).kind != "local":
        from harness.engine.ray_engine import require_ray

        require_ray()  # exit 2 naming the extra, before anything is read or paid for
    sides = (("baseline", req.baseline), ("candidate", req.candidate))
    for label, loaded in sides:
        if "outputs" in loaded.manifest.artifacts:
            raise HarnessError(f"{loaded.path}: the {label} manifest answers from an outputs artifact; a replay needs "
                               "a manifest that retrieves and generates for new queries",
                               hint="replay the manifest of the system that produced those outputs")
    gens = {label: "generator" in loaded.manifest.artifacts for label, loaded in sides}
    if gens["baseline"] != gens["candidate"]:
        which = "baseline" if gens["baseline"] else "candidate"
        raise HarnessError(f"only the {which} manifest has a generator: a replay compares answers with answers",
                           hint="replay two manifests that both generate, or both only retrieve")
    generates = gens["candidate"]
    if req.sample is not None and req.sample < 1:
        raise HarnessError(f"--sample must be at least 1, got {req.sample}")
    if req.concurrency is not None and not 1 <= req.concurrency <= 256:
        raise HarnessError(f"--concurrency must be between 1 and 256, got {req.concurrency}")
    for _, loaded in sides:
        _verify(loaded, req.layout)

    cfg = replay_config(req.candidate)
    monitor = req.candidate.manifest.monitor or MonitorConfig()
    sample = req.sample if req.sample is not None else cfg.sample
    seed = req.seed if req.seed is not None else cfg.seed
    contracts = {label: _contracts(loaded) for label, loaded in sides}
    validators = all(c is not None for c in contracts.values())
    if cfg.gates:
        # a rule may name any metric the replay can score, whether or not the records give it cases (a rule
        # on format_pass over records without a contract cannot judge; it is not a configuration error)
        possible = _metric_directions(_scorer_specs(req.candidate, None, generates, validators),
                                      contracts["candidate"])
        _check_rules(req.candidate, cfg.gates, possible, monitor, generates)

    selected, selection = _select(req, monitor, sample, seed)
    if req.query.segment is not None and req.query.segment[0] not in monitor.segments and not selected:
        _check_segment_key(req, monitor)
    if selection.replayed < 2:
        where = "the ingested store" if req.log is None else str(req.log)
        raise HarnessError(f"nothing to replay: {selection.matched} logged record(s) matched in {where} "
                           f"({selection.window}), {selection.replayed} replayable; a paired comparison needs at "
                           "least 2", hint="widen --since/--until or --segment, or ingest the logs first")
    _check_contracts(selected, [(label, loaded, contracts[label]) for label, loaded in sides])
    cases = tuple(c for c, _ in selected)
    specs = _scorer_specs(req.candidate, cases, generates, validators)
    directions = _metric_directions(specs, contracts["candidate"])
    notes: list[str] = []
    rules_from: Literal["manifest", "default"]
    if cfg.gates:
        rules, rules_from = tuple(cfg.gates), "manifest"
    else:
        keys = [k for k in monitor.segments if any(k in c.tags for c in cases)]
        rules = default_rules(keys, cfg.min_segment_size, _scorable(directions, cases, generates))
        rules_from = "default"
        absent = [k for k in monitor.segments if k not in keys]
        if absent and cases:
            notes.append(f"no replayed record carries segment key(s) {', '.join(absent)}: not judged per segment")
    if changed := _redefined(cases, contracts["baseline"], contracts["candidate"]):
        notes.append(f"the candidate's validators define contract(s) {', '.join(changed)} differently; both sides "
                     "are judged by the baseline's definitions (the contracts production records name), each "
                     "side's prompt shows its own")
    for _, loaded in sides:
        load_inputs(loaded, list(cases))  # the prompt template over every case, contracts, index recipe
    settings = DiffSettings(alpha=cfg.alpha, correction=cfg.correction, test="permutation", seed=seed)
    concurrency = req.concurrency if req.concurrency is not None else cfg.concurrency
    return ReplayPlan(request=req, config=cfg, monitor=monitor, cases=cases, scorers=tuple(specs), rules=rules,
                      rules_from=rules_from, settings=settings, selection=selection, concurrency=concurrency,
                      contracts=contracts["baseline"], notes=tuple(notes))


# --- running -------------------------------------------------------------------------------------------


def _quantiles(values: np.ndarray) -> Quantiles:
    if not len(values):
        return Quantiles(n=0)
    q = np.quantile(np.asarray(values, dtype=float), [0.5, 0.95, 0.99])
    return Quantiles(n=len(values), p50=float(q[0]), p95=float(q[1]), p99=float(q[2]))


def _side(label: Literal["baseline", "candidate"], loaded: LoadedManifest, run: RunColumns, path: Path,
          seconds: float, notes: list[str]) -> ReplaySide:
    """One side of the report from its stored run's columns: errors by kind (in the order first seen),
    latency quantiles over the fresh calls of each stage, the generator's calls and cache hits."""
    kinds: dict[str, int] = {}
    errored = run.error_kind.drop_null()
    if len(errored):
        counted = pc.value_counts(errored)  # in the order each kind first appears
        kinds = dict(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True))
    latency: dict[str, Quantiles] = {}
    for stage in STAGES:
        seconds_of = run.latency.get(stage)
        recorded = _recorded(run, stage)
        if not recorded.any():
            continue
        assert seconds_of is not None
        fresh = seconds_of[recorded & ~stage_cache_hits(run, stage, recorded)]
        latency[stage] = _quantiles(fresh)
        if not len(fresh):
            notes.append(f"{label} {stage} latency: all {int(recorded.sum())} cases were served from the cache; no "
                         "fresh call was measured (replay with a cold cache to measure it)")
    has_case = run.has_case()
    return ReplaySide(label=label, manifest_path=str(loaded.path), manifest_id=run.manifest_id, run_id=run.run_id,
                      run_path=str(path), cases=len(run) if has_case is None else int(has_case.sum()),
                      errors=sum(kinds.values()), errors_by_kind=kinds, generated=int(run.counts.get("generated", 0)),
                      cache_hits=int(stage_cache_hits(run, "generate", _recorded(run, "generate")).sum()),
                      seconds=seconds, latency=latency)


def _recorded(run: RunColumns, stage: str) -> np.ndarray:
    """Bool per row: the stage's latency is recorded (it was called, from the cache or fresh)."""
    seconds_of = run.latency.get(stage)
    return np.zeros(len(run), dtype=bool) if seconds_of is None else ~np.isnan(seconds_of)


def _segments(run: RunColumns) -> dict[str, np.ndarray]:
    """``all`` and every ``tag=value`` segment of the run's cases, as a bool mask over its rows (segments
    sorted by name after ``all``)."""
    members: dict[str, np.ndarray] = {}
    for key in run.tags:
        for value in run.tag_values(key):
            members[f"{key}={value}"] = run.segment_mask(f"{key}={value}")
    return {"all": np.ones(len(run), dtype=bool)} | {seg: members[seg] for seg in sorted(members)}


def _mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


Records = tuple[list[GoldenCase], list[CaseOutput], list[Score]]


def _pairs(base: RunColumns, head: RunColumns, base_batches: Callable[[], Iterator[Records]],
           head_batches: Callable[[], Iterator[Records]]
           ) -> Iterator[tuple[int, list[GoldenCase], list[CaseOutput | None], list[CaseOutput]]]:
    """The head run's records batch by batch, each beside the base run's outputs of the same cases (None
    where the base run lacks the case): (first head row, head cases, base outputs, head outputs). When both
    runs hold the same cases in the same order (a replay's two sides do) both tables are read in step, a
    batch of each at a time; otherwise each head batch's base outputs are fetched by id."""
    found = pc.index_in(head.case_ids, value_set=base.case_ids)
    in_base = np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    same_order = len(base) == len(head) and bool((in_base == np.arange(len(head))).all())
    base_iter = base_batches() if same_order else None
    start = 0
    for cases, outputs, _ in head_batches():
        if len(cases) != len(outputs):  # a replay's runs hold every case's golden case
            raise ValueError(f"run {head.run_id}: rows without their golden case")
        if base_iter is not None:
            _, base_outputs, _ = next(base_iter)
            if [o.case_id for o in base_outputs] != [o.case_id for o in outputs]:
                raise ValueError(f"runs {base.run_id} and {head.run_id}: batches out of step")
            paired: list[CaseOutput | None] = list(base_outputs)
        else:
            assert base.fetch is not None
            by_id = {o.case_id: o for o in base.fetch([o.case_id for o in outputs])[1]}
            paired = [by_id.get(o.case_id) for o in outputs]
        yield start, cases, paired, outputs
        start += len(outputs)


def _stored_records(table: RunTable, cases: Sequence[GoldenCase], rows: int = _PAIR_ROWS
                    ) -> Callable[[], Iterator[Records]]:
    """One pass over a stored side's outputs, ``rows`` cases at a time, as records (its golden cases are
    ``cases``, the replay's own: both sides ran them in this order; no scores): what the agreement and the
    moves read, through :meth:`~harness.runs.RunTable.iter_outputs` (a format-4 table's case and score
    columns are not decoded)."""
    def batches() -> Iterator[Records]:
        start = 0
        for outputs in table.iter_outputs(rows):
            part = list(cases[start:start + len(outputs)])
            if [c.id for c in part] != [o.case_id for o in outputs]:
                raise ValueError(f"run {table.header.run_id}: rows {start}.. are not the replay's cases in order")
            start += len(outputs)
            yield part, outputs, []

    return batches


def _compared(base: RunColumns, head: RunColumns, contracts: Any, base_batches: Callable[[], Iterator[Records]],
              head_batches: Callable[[], Iterator[Records]]) -> tuple[tuple[Agreement, ...], tuple[SignalMove, ...]]:
    """How alike the two sides' outputs are (:class:`Agreement`) and how the directionless signals moved
    (:class:`SignalMove`), overall and per segment, in one pass over both runs' records in aligned batches:
    per case a few numbers are kept (NaN where they do not apply), never a record."""
    from harness.contracts import ParsedAnswer
    from harness.scorers.signals import MOVE_SIGNALS, output_signals
    from harness.scorers.text import normalize_answer, token_f1_normalized

    n = len(head)
    per_case = {key: np.full(n, np.nan) for key in ("exact", "f1", "jaccard", "top1")}
    signals = {(side, s): np.full(n, np.nan) for side in ("base", "head") for s in MOVE_SIGNALS}
    for start, cases, base_outputs, head_outputs in _pairs(base, head, base_batches, head_batches):
        for i, (case, b, h) in enumerate(zip(cases, base_outputs, head_outputs, strict=True), start):
            if b is not None and b.answer is not None and h.answer is not None and b.answer == h.answer:
                per_case["exact"][i] = per_case["f1"][i] = 1.0  # the same text: what parsing and normalizing give
            elif b is not None and b.answer is not None and h.answer is not None:
                per_case["exact"][i] = float(" ".join(b.answer.split()) == " ".join(h.answer.split()))
                contract = contracts.get(case.contract) if contracts is not None and case.contract else None
                bt = normalize_answer(ParsedAnswer(b.answer, contract).answer_text())
                ht = normalize_answer(ParsedAnswer(h.answer, contract).answer_text())
                per_case["f1"][i] = 1.0 if bt == ht else token_f1_normalized(ht, bt)[0]
            if b is not None:
                bi, hi = {d.doc_id for d in b.ranking}, {d.doc_id for d in h.ranking}
                if bi or hi:
                    per_case["jaccard"][i] = len(bi & hi) / len(bi | hi)
                if b.ranking and h.ranking:
                    per_case["top1"][i] = float(b.ranking[0].doc_id == h.ranking[0].doc_id)
        stop = start + len(cases)
        for side, outputs in (("base", [o for o in base_outputs if o is not None]), ("head", head_outputs)):
            table = output_signals(cases, outputs)
            for s in MOVE_SIGNALS:
                signals[side, s][start:stop] = [np.nan if v is None else float(v) for v in table[s].to_pylist()]
    segments = _segments(head)
    agreement = []
    for seg, mask in segments.items():

        def m(key: str, mask: np.ndarray = mask) -> float | None:
            values = per_case[key][mask]
            return _mean(values[~np.isnan(values)])

        agreement.append(Agreement(segment=seg, n=int(mask.sum()), answer_exact=m("exact"), answer_token_f1=m("f1"),
                                   ranking_jaccard=m("jaccard"), top1_same=m("top1")))
    moves = []
    for s in MOVE_SIGNALS:
        for seg, mask in segments.items():
            b, h = signals["base", s][mask], signals["head", s][mask]
            b, h = b[~np.isnan(b)], h[~np.isnan(h)]
            moves.append(SignalMove(signal=s, segment=seg, n=int(mask.sum()),
                                    baseline_median=float(np.median(b)) if len(b) else None,
                                    candidate_median=float(np.median(h)) if len(h) else None,
                                    baseline_mean=_mean(b), candidate_mean=_mean(h)))
    return tuple(agreement), tuple(moves)


def _is_unjudged(r: GateResult) -> bool:
    return r.status == "fail" and r.unjudged is not None


def _default_segment_skips(results: Sequence[GateResult]) -> tuple[GateResult, ...]:
    """A default rule's segment where too few cases changed for any test of the family to tell a drop from
    noise is skipped, as a segment smaller than ``min_segment_size`` is: the default rules look at every
    segment, and with a limit of 0 half of the segments with a handful of changed cases would look worse by
    chance. The overall result of a default rule, and every ``[[replay.gates]]`` rule, keep the gate's
    judgement (unjudgeable is not a pass)."""
    out = []
    for r in results:
        if r.segment is not None and r.status == "fail" and r.unjudged == "untestable":
            detail = r.message.removeprefix("cannot judge: ").split("; no test could tell")[0]
            r = r.model_copy(update={"status": "skip", "unjudged": None,
                                     "message": f"not judged: {detail}; too few cases changed in "
                                     "this segment for the family's test (skipped like a small segment)"})
        out.append(r)
    return tuple(out)


def _status(plan: ReplayPlan, results: Sequence[GateResult]) -> tuple[Literal["pass", "fail", "cannot_judge"],
                                                                       list[str]]:
    sel = plan.selection
    failed = [r for r in results if r.status == "fail" and not _is_unjudged(r)]
    unjudged = [r for r in results if _is_unjudged(r)]
    judged = [r for r in results if r.rule != IMPLICIT_ERROR_RULE and r.status != "skip"]

    def line(r: GateResult) -> str:
        return f"{r.rule}" + (f" [{r.segment}]" if r.segment else "") + f": {r.message}"

    if failed:
        return "fail", [line(r) for r in (*failed, *unjudged)]
    reasons: list[str] = []
    if sel.matched == 0:
        reasons.append(f"no logged record matched ({sel.source}; {sel.window})")
    elif sel.replayed < 2:
        reasons.append(f"{sel.replayed} record(s) replayed: a paired comparison needs at least 2")
    reasons += [line(r) for r in unjudged]
    if not judged and not reasons:
        reasons.append("no rule could be judged (every rule was skipped)" if plan.rules
                       else "no rule to judge: no metric the replay scores applies to these records")
    return ("cannot_judge", reasons) if reasons else ("pass", [])


def _run_sides(plan: ReplayPlan, store: Any, progress: Progress) -> list[tuple[Path, float]]:
    """Both sides' runs, stored: (header path, seconds) each. The baseline is retrieved and generated first; it
    is then scored in a worker thread while the candidate retrieves and generates (generation waits on the
    network, scoring needs the CPU), and the candidate is scored once the baseline's scores are in the cache
    (the verdicts of answers both sides gave are computed once). Generation is never concurrent with
    generation: the calls in flight stay within the concurrency. A side's seconds are its own work (load to
    stored run), not the time it waited; an error in either side is raised once both have stopped. Nothing
    of a side is kept once it is stored but its path: the replay reads the stored runs by columns.

    On the Ray engine (:func:`replay_engine`) the sides run one after the other, each scored on the cluster
    once it is generated: the baseline's scoring would otherwise hold the cluster's CPUs the candidate's
    retrieval asks for."""
    import threading

    from harness.pipeline import execute_unscored

    req = plan.request
    engine = replay_engine(req)
    kwargs: dict[str, Any] = {"progress": progress, "layout": req.layout, "scorers": list(plan.scorers),
                              "concurrency": plan.concurrency, "runs": store, "score_contracts": plan.contracts,
                              "validated": True,  # plan_replay rendered both templates over every case
                              "engine": engine}
    if engine.kind != "local":
        return [_side_run(execute_unscored(side, cases=list(plan.cases), **kwargs))
                for side in (req.baseline, req.candidate)]
    t0 = time.perf_counter()
    pending = execute_unscored(req.baseline, cases=list(plan.cases), **kwargs)
    base_prepare = time.perf_counter() - t0
    # the groundedness checker pauses after each batch for three times the batch's compute: the baseline's
    # scoring takes ~4x its CPU time (still far less than the candidate's generation) and the event loop
    # sending and reading the candidate's calls has the GIL to itself most of the time
    pending.ctx.extras["pause"] = lambda busy_s: time.sleep(min(_OVERLAP_PAUSE * busy_s, 0.25))
    box: dict[str, Any] = {"pending": pending}
    del pending  # the worker holds the baseline's outputs until they are stored, then lets them go

    def score_baseline() -> None:
        t1 = time.perf_counter()
        try:
            box["path"] = box.pop("pending").finish().path
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc
        box["seconds"] = time.perf_counter() - t1

    worker = threading.Thread(target=score_baseline, name="replay-score-baseline", daemon=True)
    # the event loop waiting on the network takes the GIL back within 1 ms instead of the default 5 ms, so
    # the scoring thread delays each response less
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, _OVERLAP_SWITCH_S))
    worker.start()
    try:
        t0 = time.perf_counter()
        head_pending = execute_unscored(req.candidate, cases=list(plan.cases), **kwargs)
        head_prepare = time.perf_counter() - t0
    finally:
        worker.join()
        sys.setswitchinterval(interval)
    try:
        if "error" in box:
            raise box["error"]
        t0 = time.perf_counter()
        head_path = head_pending.finish().path
        head_s = head_prepare + time.perf_counter() - t0
    finally:
        head_pending.close()
    return [(box["path"], base_prepare + box["seconds"]), (head_path, head_s)]


def _side_run(pending: Any) -> tuple[Path, float]:
    """A side retrieved and generated (:class:`~harness.pipeline.PendingRun`), scored and stored: (header path,
    seconds from load to stored run)."""
    t0 = time.perf_counter()
    before = pending.prep.stage_s.get("_before_score", 0.0)
    report = pending.finish()
    return report.path, before + time.perf_counter() - t0


def _open_side(path: Path) -> tuple[RunTable, RunColumns]:
    """A stored side: its table and its columns (every metric, tag and latency stage; no record decoded)."""
    from harness.runs import open_run

    table = open_run(path)
    return table, table.columns(metrics=None, tags=True, latency=True)


def run_replay(plan: ReplayPlan, progress: Progress = NULL_PROGRESS) -> ReplayReport:
    """Run the planned replay: the baseline's run, then the candidate's, in ``<home>/replays/<replay id>/``;
    compare, judge, write ``report.json`` (atomically) and return the report.

    Everything after the runs reads the stored runs by columns (:meth:`harness.runs.RunTable.columns`): the
    diff, the gate, the error counts, each side's latency and cache hits; the outputs only streamed, a batch
    of each side at a time (:data:`_PAIR_ROWS` cases, :func:`_stored_records`), for the answers' agreement
    and the signals' moves. A run is never held whole."""
    from harness.runs import RunStore, new_run_id
    from harness.storage import atomic_write_text

    req = plan.request
    layout = req.layout
    root = replays_dir(layout) / new_run_id()
    store = RunStore(root, project=layout.project)
    notes = list(plan.notes)
    (base_path, base_s), (head_path, head_s) = _run_sides(plan, store, progress)
    base_table, base = _open_side(base_path)
    head_table, head = _open_side(head_path)
    diff: Diff = compare(base, head, plan.settings, layout)
    results = evaluate_gates(plan.rules, head, diff, base=base).results
    if plan.rules_from == "default":
        results = _default_segment_skips(results)
    status, reasons = _status(plan, results)
    if base_errors := int(base.errored().sum()):
        notes.append(f"the baseline errored on {base_errors} of {len(base)} replayed records")
        if status == "pass":  # the candidate was compared with no reference on those records
            status = "cannot_judge"
            reasons.append(f"the baseline errored on {base_errors} of {len(base)} replayed records, so the "
                           "candidate was not compared there; re-run the replay (answers already given are cached)")
    floor = plan.config.min_segment_size
    if status == "pass" and len(plan.cases) < floor:
        status = "cannot_judge"
        reasons.append(f"{len(plan.cases)} records replayed, fewer than min_segment_size = {floor}: too few to tell "
                       "a worse candidate from noise (replay more, or lower [replay] min_segment_size)")
    skipped = [r for r in results if r.status == "skip"]
    if skipped:
        notes.append(f"{len(skipped)} rule result(s) skipped (segments smaller than their min_segment_size, or "
                     "nothing measured)")
    baseline = _side("baseline", req.baseline, base, base_path, base_s, notes)
    candidate = _side("candidate", req.candidate, head, head_path, head_s, notes)
    agreement, moves = _compared(base, head, plan.contracts, _stored_records(base_table, plan.cases),
                                 _stored_records(head_table, plan.cases))
    report = ReplayReport(replay_id=root.name, status=status, reasons=tuple(reasons), selection=plan.selection,
                          baseline=baseline, candidate=candidate, rules=plan.rules_from, results=results, diff=diff,
                          agreement=agreement, moves=moves,
                          artifacts=tuple(manifest_changes(base.manifest, head.manifest, layout)), notes=tuple(notes))
    atomic_write_text(root / "report.json", report.model_dump_json(indent=1))
    return report


def replay(req: ReplayRequest, progress: Progress = NULL_PROGRESS) -> ReplayReport:
    """:func:`plan_replay` then :func:`run_replay`."""
    return run_replay(plan_replay(req), progress)


def report_path(report: ReplayReport, layout: Layout) -> Path:
    """Where :func:`run_replay` wrote the report: ``<home>/replays/<replay id>/report.json`` (the replay id is
    the folder holding both runs)."""
    replay_id = report.replay_id or Path(report.baseline.run_path).parent.parent.name
    return replays_dir(layout) / replay_id / "report.json"
