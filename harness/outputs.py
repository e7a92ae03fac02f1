"""Supplied outputs: what another system produced for each golden case, scored like a run's own.

A manifest whose ``[artifacts.outputs]`` (kind ``outputs``) replaces its retriever and generator points at
one of:

* a records file (JSON Lines, Parquet, CSV/TSV with JSON list cells, Arrow, a saved ``datasets`` folder;
  read like golden sets), one record per case, validated against ``schemas/outputs_record.schema.json``:
  ``{"id", "answer", "contexts": [text | {text, doc_id, title, score}], "retrieved": [doc id | {doc_id,
  score}], "error": {stage, kind, message}, "latency_s": {stage: seconds}, "metadata"}``;
* a TREC run file (``params = { format = "trec" }``): ``query_id Q0 doc_id rank score run_id``, read as
  trec_eval reads it;
* the golden cases' own ``output`` objects (``params = { from = "golden" }``, no path).

When ``retrieved`` is absent and every context names its ``doc_id``, the contexts are the ranking.
Rankings follow trec_eval: with scores, by score descending, ties by document id descending; a list
without scores ranks in the order given. Everything is checked before a run writes anything: a record
for a case the golden set does not have, a doc id the pinned corpus does not have, a duplicate record,
are one error naming file:line and the field (exit 2). A golden case with no record is not an input
error but a per-case error (stage ``outputs``, kind ``missing``): counted, and the run exits 1. A TREC run
is the exception, as in trec_eval: a query it has no lines for retrieved nothing and scores 0.
"""

from __future__ import annotations

import math
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from harness.errors import InputError
from harness.types import (
    CaseError,
    CorpusDoc,
    Frozen,
    GoldenCase,
    RankedDoc,
    SuppliedOutput,
    SuppliedPassage,
)

SCHEMA = "outputs_record.schema.json"


class OutputsConfig(Frozen):
    """The params of an outputs artifact."""

    format: Literal["records", "trec"] = Field(
        default="records", description="records: one record per case (JSONL, Parquet, CSV, ...); trec: a TREC run")
    source: Literal["file", "golden"] = Field(
        default="file", alias="from", description="golden: the golden cases carry their own 'output' objects")


@dataclass(frozen=True)
class SuppliedOutputs:
    """Every case's supplied output, checked against the golden set and the corpus."""

    by_case: Mapping[str, SuppliedOutput]
    source: str  # where they came from, for messages
    trec: bool  # a TREC run: a case without lines retrieved nothing (not a missing record)
    unmatched: int = 0  # TREC queries with no golden case (ignored, as trec_eval ignores them)

    @property
    def has_answers(self) -> bool:
        """The records carry answers (each has an ``answer``, null included, or the app's generation error):
        the outputs replace generation."""
        return any(o.answered for o in self.by_case.values())

    @property
    def has_rankings(self) -> bool:
        """The records rank the corpus (each has ``retrieved``, an empty list included, or contexts that all
        name their doc ids), or this is a TREC run."""
        return self.trec or any(o.ranked for o in self.by_case.values())

    def unranked(self, case_ids: Sequence[str]) -> int:
        """Golden cases a TREC run has no lines for (they retrieved nothing and score 0, as trec_eval -c)."""
        return sum(1 for c in case_ids if c not in self.by_case) if self.trec else 0

    def missing(self, case_id: str) -> CaseError | None:
        """The per-case error for a golden case these outputs have no record for, or None."""
        if case_id in self.by_case or self.trec:
            return None
        return CaseError(stage="outputs", kind="missing", message=f"{self.source} has no record for this case")


def _ranked(entries: Sequence[tuple[str, float | None]]) -> tuple[RankedDoc, ...]:
    """A ranking in trec_eval's order: by score descending, ties by doc id descending; without scores (any
    missing), as given, with the ranks standing in for scores (n, n-1, ...)."""
    if not _has_scores(entries):
        n = len(entries)
        return tuple(RankedDoc(doc_id=d, score=float(n - i)) for i, (d, _) in enumerate(entries))
    scored = [(d, float(s)) for d, s in entries if s is not None]  # every score is set (checked above)
    ordered = sorted(scored, key=lambda e: (e[1], e[0].encode("utf-8")), reverse=True)
    return tuple(RankedDoc(doc_id=d, score=s) for d, s in ordered)


def _has_scores(entries: Sequence[tuple[str, float | None]]) -> bool:
    return all(score is not None for _, score in entries)


def parse_output(path: str | Path, line: int | None, rec: dict[str, Any], *, field: str = "") -> SuppliedOutput:
    """A schema-valid record (or a golden case's ``output`` object) as a :class:`SuppliedOutput`; ``field``
    prefixes the field an error names."""
    contexts = tuple(SuppliedPassage(text=c) if isinstance(c, str) else SuppliedPassage.model_validate(c)
                     for c in rec.get("contexts", ()))
    entries: list[tuple[str, float | None]] = [(r, None) if isinstance(r, str) else (r["doc_id"], r.get("score"))
                                               for r in rec.get("retrieved", ())]
    if not entries and contexts and all(c.doc_id is not None for c in contexts):
        # contexts that name their corpus doc ids are the ranking when no separate one is given
        entries = [(c.doc_id, c.score) for c in contexts if c.doc_id is not None]
    from_contexts = "retrieved" not in rec and bool(entries)
    where = "contexts.{i}.doc_id" if from_contexts else "retrieved.{i}"
    seen: set[str] = set()
    for i, (doc_id, score) in enumerate(entries):
        if doc_id in seen:
            raise InputError(path, f"doc id {doc_id!r} is ranked twice for this case", line=line,
                             field=field + where.format(i=i))
        if score is not None and not math.isfinite(score):
            raise InputError(path, f"score {score} is not a finite number", line=line,
                             field=f"{field}{'contexts' if from_contexts else 'retrieved'}.{i}.score")
        seen.add(doc_id)
    error = rec.get("error")
    try:
        return SuppliedOutput(answer=rec.get("answer"), contexts=contexts, retrieved=_ranked(entries),
                              scored=_has_scores(entries), ranked="retrieved" in rec or from_contexts,
                              answered="answer" in rec or (error is not None and error.get("stage") != "retrieve"),
                              error=error, latency_s=rec.get("latency_s", {}),
                              metadata=rec.get("metadata", {}))
    except ValidationError as exc:  # the schema is stricter; kept as a guard with a one-line reason
        err = exc.errors()[0]
        raise InputError(path, err["msg"], line=line, field=field + ".".join(str(x) for x in err["loc"])) from None


def _check_doc_ids(path: str | Path, line: int | None, out: SuppliedOutput, doc_ids: Container[str] | None,
                   prefix: str = "") -> None:
    if doc_ids is None:
        return
    for i, r in enumerate(out.retrieved):
        if r.doc_id not in doc_ids:
            raise InputError(path, f"doc id {r.doc_id!r} is not in the corpus", line=line,
                             field=f"{prefix}retrieved.{i}")
    for i, c in enumerate(out.contexts):
        if c.doc_id is not None and c.doc_id not in doc_ids:
            raise InputError(path, f"doc id {c.doc_id!r} is not in the corpus", line=line,
                             field=f"{prefix}contexts.{i}.doc_id")


def _from_records(path: Path, case_ids: frozenset[str], doc_ids: Container[str] | None) -> SuppliedOutputs:
    from harness.golden import iter_records, validate_record

    by_case: dict[str, SuppliedOutput] = {}
    first: dict[str, int] = {}
    for line, rec in iter_records(path, SCHEMA):
        validate_record(path, line, rec, SCHEMA, "outputs record")
        cid = rec["id"]
        if cid in first:
            raise InputError(path, f"duplicate record for case {cid!r} (first at line {first[cid]})", line=line,
                             field="id")
        if cid not in case_ids:
            raise InputError(path, f"case id {cid!r} is not in the golden set", line=line, field="id",
                             hint="outputs align with golden cases by id")
        first[cid] = line
        out = parse_output(path, line, rec)
        _check_doc_ids(path, line, out, doc_ids)
        by_case[cid] = out
    if not by_case:
        raise InputError(path, "no outputs records found")
    _check_alike(path, by_case, first)
    return SuppliedOutputs(by_case=by_case, source=f"the outputs file {path.name}", trec=False)


def _check_alike(path: Path, by_case: Mapping[str, SuppliedOutput], lines: Mapping[str, int] | None) -> None:
    """Every record gives what the others give: an answer (null for none) if any does, a ranking if any does.
    A record without one would be scored as if the system had answered or retrieved nothing, or not at all;
    a file with neither has nothing to score."""
    answered = [c for c, o in by_case.items() if o.answered]
    ranked = [c for c, o in by_case.items() if o.ranked]
    if not answered and not ranked:
        raise InputError(path, "the outputs carry no answers and no rankings: nothing to score",
                         hint="give each record an 'answer', 'retrieved' doc ids, or contexts with their doc_id")
    for have, what, how in ((answered, "answer", "an 'answer' (null for none)"),
                            (ranked, "retrieved", "'retrieved' doc ids (an empty list for none)")):
        # a record of the system's own failure (error) stands for what it could not give
        lacking = [c for c, o in by_case.items() if c not in set(have) and o.error is None]
        if have and lacking:
            cid = lacking[0]
            where = f"record of case {cid!r}" if lines is None else "this record"
            raise InputError(path, f"{where} has no {what!r} while {len(have)} of {len(by_case)} records have one; "
                             f"give every record {how}", line=None if lines is None else lines[cid], field=what)


def _from_trec(path: Path, case_ids: frozenset[str], doc_ids: Container[str] | None) -> SuppliedOutputs:
    from harness.metrics.trec.files import find_line, read_run

    run = read_run(path).to_mapping()
    by_case: dict[str, SuppliedOutput] = {}
    for qid, ranking in run.items():
        judged = qid in case_ids  # run queries the golden set lacks are ignored, as trec_eval ignores them
        seen: set[str] = set()
        for doc_id, score in ranking:  # refused as trec_eval (and harness metrics) refuse them
            key = (path, qid.encode("utf-8"), doc_id.encode("utf-8"))
            if doc_id in seen:
                raise InputError(path, f"document {doc_id!r} is ranked twice for query {qid!r}", line=find_line(*key))
            if not math.isfinite(score):
                raise InputError(path, f"score {score} of document {doc_id!r} (query {qid!r}) is not a finite number",
                                 line=find_line(*key, occurrence=1))
            if judged and doc_ids is not None and doc_id not in doc_ids:
                raise InputError(path, f"doc id {doc_id!r} (query {qid!r}) is not in the corpus",
                                 line=find_line(*key, occurrence=1))
            seen.add(doc_id)
        if judged:
            by_case[qid] = SuppliedOutput(retrieved=_ranked(ranking))
    if not by_case:
        raise InputError(path, "no query of this run is a case of the golden set",
                         hint="a TREC run's query ids must be the golden cases' ids (the qrels' query ids)")
    return SuppliedOutputs(by_case=by_case, source=f"the run file {path.name}", trec=True,
                           unmatched=sum(1 for q in run if q not in case_ids))


def _from_golden(path: Path, cases: Sequence[GoldenCase], doc_ids: Container[str] | None) -> SuppliedOutputs:
    by_case = {c.id: c.output for c in cases if c.output is not None}
    if not by_case:
        raise InputError(path, "no golden case carries an 'output' (the outputs artifact says from = \"golden\")")
    for cid, out in by_case.items():
        _check_doc_ids(path, None, out, doc_ids, prefix=f"case {cid!r}: output.")
    _check_alike(path, by_case, None)
    return SuppliedOutputs(by_case=by_case, source="the golden set", trec=False)


def load_outputs(path: Path | None, config: OutputsConfig, golden_path: Path, cases: Sequence[GoldenCase],
                 doc_ids: Container[str] | None) -> SuppliedOutputs:
    """Read and check the supplied outputs against the golden cases and (when pinned) the corpus's ids."""
    case_ids = frozenset(c.id for c in cases)
    if config.source == "golden":
        return _from_golden(golden_path, cases, doc_ids)
    assert path is not None, "a file outputs artifact has a path (checked when the manifest loads)"
    if config.format == "trec":
        return _from_trec(path, case_ids, doc_ids)
    return _from_records(path, case_ids, doc_ids)


def output_record(out: SuppliedOutput) -> dict[str, Any]:
    """A supplied output back in the record shape it was read from (the inverse of :func:`parse_output`):
    rankings without scores as doc ids, never the ranks that stood in for their scores."""
    rec: dict[str, Any] = {}
    if out.answered and (out.answer is not None or out.error is None):
        rec["answer"] = out.answer
    if out.contexts:
        rec["contexts"] = [c.model_dump(exclude_none=True, exclude_defaults=True) | {"text": c.text}
                           for c in out.contexts]
    if out.ranked:  # also when it came from the contexts' doc ids: read back, it gives the same ranking
        rec["retrieved"] = ([{"doc_id": d.doc_id, "score": d.score} for d in out.retrieved] if out.scored
                            else [d.doc_id for d in out.retrieved])
    if out.error is not None:
        rec["error"] = out.error.model_dump()
    if out.latency_s:
        rec["latency_s"] = dict(out.latency_s)
    if out.metadata:
        rec["metadata"] = dict(out.metadata)
    return rec


def passages(out: SuppliedOutput) -> tuple[CorpusDoc, ...]:
    """The passages the system used, as documents: its contexts' texts (a context with a doc id keeps it; one
    without gets ``context:<n>``); with no contexts, nothing (scorers then take the top of the ranking)."""
    return tuple(CorpusDoc(id=c.doc_id or f"context:{i}", title=c.title, text=c.text)
                 for i, c in enumerate(out.contexts, 1))
