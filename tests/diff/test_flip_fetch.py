"""The flips of a diff read each run's records once: every row that some shown flip needs is decoded once,
however many metrics flipped it and however many fetch chunks the flips span, and no other row is decoded
(a stored run's table, counted where it parses its record columns; any run, counted at ``fetch`` /
``batches``). The flips stay what the record-based diff gives, and the causes read from the kept parts of
a record (:class:`harness.diff.flips._Side`) are those read from the whole records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import harness.diff.flips as flips_mod
from harness.baseline import read_columns
from harness.columns import RunColumns
from harness.diff import DiffSettings, compare
from harness.runs import RunStore, load_run, new_run_id, open_run
from harness.types import (
    Aggregates,
    CaseError,
    CaseOutput,
    GoldenCase,
    Manifest,
    MetricSummary,
    RankedDoc,
    RunResult,
    Score,
)
from tests.diff.record_oracle.oracle_compute import compare as oracle_compare
from tests.diff.record_oracle.oracle_flips import causes
from tests.diff.test_diff_columns import dump

N = 40
METRICS = ("ndcg", "recall", "mrr", "f1", "faith")
FLIPPED = range(5, 35)  # cases moved on every metric but "faith"
SETTINGS = DiffSettings(n_resamples=16, k=3)


def _run(run_id: str, head: bool) -> RunResult:
    rng = np.random.default_rng(7)
    cases, outputs, scores = [], [], []
    for i in range(N):
        cid = f"c{i:03d}"
        moved = head and i in FLIPPED
        cases.append(GoldenCase(id=cid, query=f"query {i}", relevance={f"d{i % 6}": 1, f"d{(i + 1) % 6}": 2}))
        order = [(i + j * (2 if moved and i % 2 else 1)) % 6 for j in range(4)]
        outputs.append(CaseOutput(
            case_id=cid, ranking=tuple(RankedDoc(doc_id=f"d{d}", score=1.0 - 0.1 * j) for j, d in enumerate(order)),
            answer=f"answer {i}" + (" broken" if moved and i % 3 == 0 else ""),
            error=CaseError(stage="generate", kind="timeout", message=f"late {i}") if moved and i % 5 == 0 else None))
        for m in METRICS:
            v = float(rng.random()) * 0.5
            scores.append(Score(case_id=cid, metric=m, value=v + 0.4 if moved and m != "faith" else v))
    overall = {m: MetricSummary(mean=0.5, n=N, n_unscored=0) for m in METRICS}
    return RunResult(run_id=run_id, created_at="", manifest_id="m", manifest=Manifest(name="m", artifacts={}),
                     cases=tuple(cases), outputs=tuple(outputs), scores=tuple(scores),
                     aggregates=Aggregates(overall=overall))


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, Path]:
    store = RunStore(tmp_path / "runs")
    return store.save(_run(new_run_id(), False)), store.save(_run(new_run_id(), True))


def _count_decodes(monkeypatch: pytest.MonkeyPatch, path: Path) -> Counter[tuple[str, int]]:
    """Counts of (table, row) parsed from a stored table's record columns, from now on."""
    cls = type(open_run(path))
    original = cls._records  # type: ignore[attr-defined]
    seen: Counter[tuple[str, int]] = Counter()

    def counting(self: Any, batch: Any, first: int, rows: np.ndarray | None = None) -> Any:
        where = range(first, first + batch.num_rows) if rows is None else (first + int(r) for r in rows)
        seen.update((self.path.name, r) for r in where)
        return original(self, batch, first, rows)

    monkeypatch.setattr(cls, "_records", counting)
    return seen


@pytest.mark.parametrize("chunk", [5_000, 7])
def test_a_stored_runs_flipped_rows_are_decoded_once_and_no_other(
        stored: tuple[Path, Path], chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    pb, ph = stored
    b, h = read_columns(pb, None), read_columns(ph, None)
    assert isinstance(b, RunColumns) and isinstance(h, RunColumns)
    expected_diff = oracle_compare(load_run(pb), load_run(ph), SETTINGS)
    monkeypatch.setattr(flips_mod, "FETCH_CHUNK", chunk)
    decoded = _count_decodes(monkeypatch, pb)
    diff = compare(b, h, SETTINGS)
    assert dump(diff) == dump(expected_diff)
    assert len(diff.flips) == len(FLIPPED) and all(len(f.deltas) == len(METRICS) - 1 for f in diff.flips)
    # rows = case order in both runs: each flipped row of each run parsed once, nothing else parsed
    expected = Counter({(p.name, r): 1 for p in (pb, ph) for r in FLIPPED})
    assert decoded == expected, (decoded - expected, expected - decoded)

    decoded.clear()
    top = compare(b, h, SETTINGS, max_flips=4)
    assert top.flips == diff.flips[:4] and top.flips_total == len(FLIPPED)
    shown = {int(f.case_id[1:]) for f in top.flips}
    assert decoded == Counter({(p.name, r): 1 for p in (pb, ph) for r in shown})


class _Served:
    """Counts the outputs a run's columns serve through ``fetch`` and ``batches``."""

    def __init__(self) -> None:
        self.ids: Counter[str] = Counter()

    def wrap(self, cols: RunColumns) -> RunColumns:
        fetch, batches = cols.fetch, cols.batches
        assert fetch is not None and batches is not None

        def counted_fetch(ids: Sequence[str]) -> tuple[list[GoldenCase], list[CaseOutput], list[Score]]:
            got = fetch(ids)
            self.ids.update(o.case_id for o in got[1])
            return got

        def counted_batches() -> Iterator[tuple[list[GoldenCase], list[CaseOutput], list[Score]]]:
            for got in batches():
                self.ids.update(o.case_id for o in got[1])
                yield got

        return replace(cols, fetch=counted_fetch, batches=counted_batches)


@pytest.mark.parametrize("chunk", [5_000, 6])
def test_the_diff_asks_each_run_once_for_each_shown_flip(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    base, head = _run("b", False), _run("h", True)
    monkeypatch.setattr(flips_mod, "FETCH_CHUNK", chunk)
    sb, sh = _Served(), _Served()
    got = compare(sb.wrap(RunColumns.from_result(base)), sh.wrap(RunColumns.from_result(head)), SETTINGS)
    assert dump(got) == dump(oracle_compare(base, head, SETTINGS))
    flipped = Counter({f"c{i:03d}": 1 for i in FLIPPED})
    assert sb.ids == flipped and sh.ids == flipped


DOCS = st.sampled_from([f"d{i}" for i in range(5)])
ANSWERS = st.sampled_from([None, "", "yes", "no", "é\ud800", "a" * 300])


@st.composite
def outputs(draw: st.DrawFn) -> CaseOutput:
    ranking = tuple(RankedDoc(doc_id=d, score=0.5) for d in draw(st.lists(DOCS, max_size=5)))
    error = draw(st.sampled_from([None, CaseError(stage="retrieve", kind="x", message="m")]))
    return CaseOutput(case_id="c", ranking=ranking, answer=draw(ANSWERS), error=error)


@settings(max_examples=300, deadline=None)
@given(outputs(), outputs(), st.none() | st.dictionaries(DOCS, st.integers(0, 2), max_size=4),
       st.lists(st.sampled_from(["x fails", "y"]), max_size=2), st.integers(1, 4), st.integers(1, 2))
def test_the_causes_from_the_kept_parts_equal_those_from_the_whole_records(
        bo: CaseOutput, ho: CaseOutput, relevance: dict[str, int] | None, newly: list[str], k: int,
        level: int) -> None:
    case = None if relevance is None else GoldenCase(id="c", query="q", relevance=relevance)
    ds = DiffSettings(k=k)
    expected = causes(bo, ho, case, newly, ds, level)
    pool: dict[str, str] = {}
    b, h = flips_mod._side(bo, case, k, level, pool), flips_mod._side(ho, None, k, level, pool)
    assert b.case is not None if case is not None else b.case is None
    rel = b.case.relevant if b.case is not None else frozenset()
    assert flips_mod._reasons(b, h, rel, newly, ds) == expected
