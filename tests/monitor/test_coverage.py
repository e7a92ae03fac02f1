"""Coverage gaps: clusters of production queries far from every golden case become golden-case candidates.

The core tests embed with a fake function of known geometry: each topic is a random unit direction and a
query is its topic's direction plus seeded noise, so which records a gap must hold is known exactly. The
store and command tests go through a project whose embedding model is the weightless hashing encoder.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harness.errors import HarnessError, InputError
from harness.monitor.coverage import (
    TODO_NOTE,
    append_candidates,
    choose_k,
    conformal_threshold,
    coverage_from_store,
    find_gaps,
)
from harness.types import GoldenCase

DIM = 32
TOPICS = 5
_CENTERS = np.linalg.qr(np.random.default_rng(7).normal(size=(DIM, DIM)))[0][:TOPICS]  # orthonormal directions


def fake_embed(texts: list[str]) -> np.ndarray:
    """'t<topic> <anything>' -> the topic's direction + noise seeded by the text (deterministic)."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for i, text in enumerate(texts):
        topic = int(text.split()[0][1:])
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        out[i] = _CENTERS[topic] + 0.35 * np.random.default_rng(seed).normal(size=DIM) / math.sqrt(DIM)
    return out


def golden_set(topics: range, per_topic: int = 25) -> list[GoldenCase]:
    return [GoldenCase(id=f"g{t}-{j}", query=f"t{t} golden {j}") for t in topics for j in range(per_topic)]


def traffic(spec: dict[int, tuple[int, str]]) -> tuple[list[str], list[str], list[dict[str, str]]]:
    """topic -> (records, geo): queries, record ids, attrs; every third record repeats an earlier text."""
    queries, ids, attrs = [], [], []
    for topic, (n, geo) in spec.items():
        for j in range(n):
            queries.append(f"t{topic} asked {j - j % 3 if j % 3 == 2 else j}")
            ids.append(f"r{topic}-{j}")
            attrs.append({"geo": geo, "device": "mobile" if j % 2 else "desktop"})
    return queries, ids, attrs


COVERED = {0: (60, "us"), 1: (60, "us"), 2: (50, "br"), 3: (50, "us")}


def gap_records(report) -> set[str]:
    gaps = {c.id for c in report.gaps}
    return {rid for rid, c in report.assignments().items() if c in gaps}


# --- the rules ----------------------------------------------------------------------------------------------


def test_conformal_threshold_is_the_rank_quantile() -> None:
    loo = np.array([0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 1.0, 0.4, 0.8, 0.6])
    # ceil((1 - 0.2) * 11) = 9: the 9th smallest
    assert conformal_threshold(loo, 0.2) == pytest.approx(0.9)
    assert conformal_threshold(loo, 0.5) == pytest.approx(0.6)  # ceil(5.5) = 6
    with pytest.raises(HarnessError, match="needs at least 19"):
        conformal_threshold(loo, 0.05)  # ceil(0.95 * 11) = 11 > 10


def test_k_rule() -> None:
    assert choose_k(20_000, 20_000, 10) == 100  # round(sqrt(10000))
    assert choose_k(959, 959, 10) == 22
    assert choose_k(50, 50, 10) == 5  # sqrt(25)
    assert choose_k(50, 50, 20) == 2  # at most n // min_count
    assert choose_k(50, 3, 1) == 3  # at most the distinct texts
    assert choose_k(1, 1, 10) == 1


def test_threshold_matches_brute_force_leave_one_out() -> None:
    golden = golden_set(range(4))
    queries, ids, attrs = traffic(COVERED)
    report = find_gaps(queries, ids, attrs, golden, fake_embed)
    g = fake_embed([c.query for c in golden]).astype(np.float64)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    sims = g @ g.T
    np.fill_diagonal(sims, -np.inf)
    loo = np.sort(1 - sims.max(axis=1))
    assert report.threshold == pytest.approx(loo[math.ceil(0.95 * 101) - 1], abs=1e-5)
    # the distance recorded per record is its nearest golden case's, by brute force
    q = fake_embed(queries[:5]).astype(np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    np.testing.assert_allclose(report.record_distances[:5], 1 - (q @ g.T).max(axis=1), atol=1e-5)


# --- gaps -------------------------------------------------------------------------------------------------


def test_absent_topic_is_exactly_the_gap() -> None:
    golden = golden_set(range(4))
    queries, ids, attrs = traffic({**COVERED, 4: (40, "eu")})
    report = find_gaps(queries, ids, attrs, golden, fake_embed, segments=("geo",), n_clusters=5, min_count=10)
    assert len(report.gaps) == 1
    gap = report.gaps[0]
    topic4 = {rid for rid in ids if rid.startswith("r4-")}
    assert gap_records(report) == topic4
    assert gap.size == 40 and gap.share == pytest.approx(40 / 260) and gap.estimated_records == 40
    assert gap.uncovered_share == 1.0
    assert gap.segments == {"geo": (("eu", 40),)}
    assert all(r.query.startswith("t4 ") for r in gap.representatives) and len(gap.representatives) == 5
    assert len({r.query for r in gap.representatives}) == 5  # distinct texts
    assert gap.median_distance > report.threshold
    assert set(gap.example_ids) <= topic4
    # the covered clusters are not gaps: few of their records are farther than the threshold
    for c in report.clusters:
        if not c.gap:
            assert c.uncovered_share < 0.5
            assert c.nearest_golden is not None and c.nearest_golden.startswith(f"g{c.representatives[0].query[1]}")


def test_absent_topic_with_the_automatic_k() -> None:
    golden = golden_set(range(4))
    queries, ids, attrs = traffic({**COVERED, 4: (40, "eu")})
    report = find_gaps(queries, ids, attrs, golden, fake_embed, segments=("geo", "device"))
    assert report.k == choose_k(260, report.distinct_queries, 10) == 11
    assert gap_records(report) == {rid for rid in ids if rid.startswith("r4-")}
    assert sum(c.size for c in report.gaps) == 40
    assert sum(dict(c.segments["geo"]).get("eu", 0) for c in report.gaps) == 40
    assert sum(dict(c.segments["device"])["mobile"] for c in report.gaps) == 20
    ranked = [c.size for c in report.gaps]
    assert ranked == sorted(ranked, reverse=True)  # most traffic first


def test_min_count_keeps_a_small_far_cluster_out() -> None:
    golden = golden_set(range(4))
    queries, ids, attrs = traffic({**COVERED, 4: (8, "eu")})
    report = find_gaps(queries, ids, attrs, golden, fake_embed, n_clusters=6, min_count=10)
    assert report.gaps == ()
    far = [c for c in report.clusters if c.uncovered_share == 1.0]
    assert len(far) == 1 and far[0].size == 8
    assert [g.size for g in find_gaps(queries, ids, attrs, golden, fake_embed, n_clusters=6, min_count=8).gaps] == [8]


def test_covered_traffic_gives_no_gap() -> None:
    golden = golden_set(range(4))
    queries, ids, attrs = traffic(COVERED)
    report = find_gaps(queries, ids, attrs, golden, fake_embed, segments=("geo",))
    assert report.gaps == () and report.candidates() == []
    assert report.uncovered_share < 0.15  # about alpha: the threshold is calibrated on the golden set
    assert sum(c.size for c in report.clusters) == 220


def test_seeded_and_deterministic() -> None:
    golden = golden_set(range(4))
    queries, ids, attrs = traffic({**COVERED, 4: (40, "eu")})
    a = find_gaps(queries, ids, attrs, golden, fake_embed, segments=("geo",), seed=3, sample=150, n_clusters=5)
    b = find_gaps(queries, ids, attrs, golden, fake_embed, segments=("geo",), seed=3, sample=150, n_clusters=5)
    assert a.to_dict() == b.to_dict() and a.candidates() == b.candidates()
    assert a.sampled == 150 and a.population == 260
    c = find_gaps(queries, ids, attrs, golden, fake_embed, segments=("geo",), seed=4, sample=150, n_clusters=5)
    assert set(c.record_ids) != set(a.record_ids)
    for rep in (a, c):  # whichever sample: the gap is the absent topic's share of it
        in_sample = sum(1 for rid in rep.record_ids if rid.startswith("r4-"))
        assert gap_records(rep) == {rid for rid in rep.record_ids if rid.startswith("r4-")}
        assert sum(g.estimated_records for g in rep.gaps) == pytest.approx(in_sample * 260 / 150, abs=len(rep.gaps))


def test_too_few_golden_cases_is_an_error_not_a_pass() -> None:
    queries, ids, attrs = traffic(COVERED)
    with pytest.raises(HarnessError, match="calibrating"):
        find_gaps(queries, ids, attrs, golden_set(range(1), 5), fake_embed)
    with pytest.raises(HarnessError, match="golden set is empty"):
        find_gaps(queries, ids, attrs, [], fake_embed)
    with pytest.raises(HarnessError, match="no production records"):
        find_gaps([], [], [], golden_set(range(4)), fake_embed)
    # a given threshold needs no calibration
    report = find_gaps(queries, ids, attrs, golden_set(range(1), 5), fake_embed, threshold=0.5)
    assert report.threshold == 0.5 and report.alpha is None


# --- candidates -------------------------------------------------------------------------------------------


def test_candidates_are_golden_shaped_and_marked_to_fill(tmp_path: Path) -> None:
    from harness.golden import validate_record, write_jsonl

    golden = [*golden_set(range(4)), GoldenCase(id="gap-0-1", query="t0 taken")]
    queries, ids, attrs = traffic({**COVERED, 4: (40, "eu")})
    report = find_gaps(queries, ids, attrs, golden, fake_embed, segments=("geo",), n_clusters=5, representatives=3)
    cands = report.candidates()
    gap = report.gaps[0]
    assert len(cands) == 3
    if gap.id == 0:  # an id the golden set has is skipped
        assert [c["id"] for c in cands] == ["gap-0-2", "gap-0-3", "gap-0-4"]
    else:
        assert [c["id"] for c in cands] == [f"gap-{gap.id}-{n}" for n in (1, 2, 3)]
    for cand, rep in zip(cands, gap.representatives, strict=True):
        validate_record("x.jsonl", 1, cand, "golden_case.schema.json", "golden case")
        assert cand["query"] == rep.query and cand["relevance"] == {} and cand["answers"] == []
        assert cand["tags"] == {"source": "coverage", "cluster": str(gap.id), "geo": "eu"}
        meta = cand["metadata"]
        assert meta["todo"] == TODO_NOTE
        assert meta["cluster_size"] == 40 and meta["count"] == rep.count
        assert meta["segments"] == {"geo": {"eu": 40}}
        assert meta["example_ids"] and all(i.startswith("r4-") for i in meta["example_ids"])
        assert meta["nearest_golden"] == rep.nearest_golden and meta["distance"] > report.threshold
    out = tmp_path / "c.jsonl"
    write_jsonl(out, cands)
    assert [json.loads(line) for line in out.read_text().splitlines()] == cands


# --- a project: the store, append, the commands -----------------------------------------------------------

VOCAB = {t: [f"{name}{j}" for j in range(8)] for t, name in enumerate(["disk", "cert", "quota", "role", "fruit"])}


def words(topic: int, rng: np.random.Generator) -> str:
    return " ".join(rng.choice(VOCAB[topic], size=4, replace=False))


@pytest.fixture
def gap_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A locked project (hashing encoder, 512 dims) whose 40 golden cases cover topics 0-3, and an ingested
    store of two days: topics 0-3 everywhere, topic 4 ('fruit') only in geo=eu on the second day."""
    import json

    from harness.manifest import lock
    from harness.monitor.ingest import ingest
    from harness.storage import Layout
    from harness.types import LogFieldMap
    from tests.conftest import make_project, write_jsonl

    monkeypatch.delenv("HARNESS_HOME", raising=False)
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)
    manifest = make_project(tmp_path, lock=False)
    manifest.write_text(manifest.read_text().replace("dim = 64", "dim = 512").replace("hashing-64", "hashing-512"))
    rng = np.random.default_rng(0)
    write_jsonl(tmp_path / "golden" / "cases.jsonl",
                [{"id": f"g{t}-{j}", "query": words(t, rng), "relevance": {"d1": 1}} for t in range(4)
                 for j in range(10)])
    lock(manifest)
    layout = Layout.for_manifest(manifest)
    logs = []
    for day, topics in (("2026-03-01", range(4)), ("2026-03-02", range(5))):
        rows = []
        t0 = dt.datetime.fromisoformat(f"{day}T08:00:00+00:00")
        for t in topics:
            for j in range(30):
                rows.append({"id": f"{day}-{t}-{j}", "timestamp": (t0 + dt.timedelta(minutes=j)).isoformat(),
                             "query": words(t, rng), "geo": "eu" if t == 4 else "us"})
        log = tmp_path / "logs" / f"{day}.jsonl"
        log.parent.mkdir(exist_ok=True)
        log.write_text("".join(json.dumps(r) + "\n" for r in rows))
        logs.append(log)
    assert ingest(logs, layout=layout, mapping=LogFieldMap()).added == 270  # through the store's ledger
    return manifest


def test_coverage_from_store(gap_project: Path) -> None:
    from harness.manifest import load_manifest
    from harness.storage import Layout

    loaded = load_manifest(gap_project)
    layout = Layout.for_manifest(gap_project)
    report = coverage_from_store(layout, loaded, segments=("geo",), n_clusters=5)
    assert report.population == report.sampled == 270
    assert [c.size for c in report.gaps] == [30]
    assert report.gaps[0].segments == {"geo": (("eu", 30),)}
    assert all(rid.startswith("2026-03-02-4-") for rid in report.gaps[0].example_ids)
    # the window: the first day alone has no fruit, hence no gap
    first = coverage_from_store(layout, loaded, since="2026-03-01", until="2026-03-01", segments=("geo",))
    assert first.population == 120 and first.gaps == () and first.window == {"since": "2026-03-01",
                                                                              "until": "2026-03-01"}
    # the store's seeded sample
    small = coverage_from_store(layout, loaded, sample=100, seed=1, n_clusters=5)
    again = coverage_from_store(layout, loaded, sample=100, seed=1, n_clusters=5)
    assert small.sampled == 100 and small.population == 270 and small.to_dict() == again.to_dict()
    # the part files to read can be given (the store's committed parts): here only the first day's
    parts = sorted((layout.home / "logs").glob("day=2026-03-01/*.parquet"))
    assert coverage_from_store(layout, loaded, files=parts).population == 120
    with pytest.raises(HarnessError, match="nothing was ingested"):
        coverage_from_store(layout, loaded, files=[])
    with pytest.raises(HarnessError, match=r"no production records .* between"):
        coverage_from_store(layout, loaded, since="2026-04-01")
    with pytest.raises(HarnessError, match="not a day"):
        coverage_from_store(layout, loaded, since="March")


def test_an_empty_store_says_nothing_was_ingested(project: Path) -> None:
    from harness.manifest import load_manifest
    from harness.storage import Layout

    with pytest.raises(HarnessError, match="nothing was ingested"):
        coverage_from_store(Layout.for_manifest(project), load_manifest(project))


def _cli(*args: str):
    from harness.cli import cli

    return CliRunner().invoke(cli, ["-q", *args], catch_exceptions=False)


def _filled(cands: list[dict], start: int = 0) -> list[dict]:
    out = []
    for i, c in enumerate(cands[start:]):
        meta = {k: v for k, v in c["metadata"].items() if k != "todo"}
        out.append({**c, "relevance": {"d6": 1}, "answers": [f"answer {i}"], "metadata": meta})
    return out


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_cli_coverage_writes_candidates_then_append(gap_project: Path) -> None:
    from harness.manifest import load_manifest, verify

    root = gap_project.parent
    out = root / "gaps.jsonl"
    res = _cli("coverage", "--manifest", str(gap_project), "--out", str(out), "--clusters", "5", "--segment", "geo")
    assert res.exit_code == 0, res.output
    assert "gaps: 1 holding 30 sampled records" in res.output and "geo=eu 30" in res.output
    cands = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(cands) == 5 and all(c["metadata"]["todo"] == TODO_NOTE for c in cands)
    assert all(set(c["query"].split()) <= set(VOCAB[4]) for c in cands)

    res = _cli("coverage", "--manifest", str(gap_project), "--format", "json", "--clusters", "5")
    data = json.loads(res.output)
    assert res.exit_code == 0 and data["gap_records"] == 30 and data["candidates"] == 5 and data["sampled"] == 270

    golden = root / "golden" / "cases.jsonl"
    before, manifest_before = golden.read_bytes(), gap_project.read_bytes()
    # unfilled candidates: refused at the first line, nothing written
    res = _cli("golden", "append", str(out), "--manifest", str(gap_project))
    assert res.exit_code == 2
    assert f"{out}:1: field 'metadata.todo'" in res.output
    assert golden.read_bytes() == before and gap_project.read_bytes() == manifest_before

    # filled except the third: refused at line 3, nothing written
    filled = _filled(cands)
    filled[2]["relevance"] = {}
    _write(out, filled)
    res = _cli("golden", "append", str(out), "--manifest", str(gap_project))
    assert res.exit_code == 2 and f"{out}:3: field 'relevance'" in res.output
    assert golden.read_bytes() == before

    # a doc id not in the corpus
    filled = _filled(cands)
    filled[1]["relevance"] = {"nope": 1}
    _write(out, filled)
    res = _cli("golden", "append", str(out), "--manifest", str(gap_project))
    assert res.exit_code == 2 and f"{out}:2: field 'relevance.nope'" in res.output and "not in the corpus" in res.output

    # an id the golden set already has
    filled = _filled(cands)
    filled[4]["id"] = "g1-3"
    _write(out, filled)
    res = _cli("golden", "append", str(out), "--manifest", str(gap_project))
    assert res.exit_code == 2 and f"{out}:5: field 'id'" in res.output and "already in the golden set" in res.output
    assert golden.read_bytes() == before and gap_project.read_bytes() == manifest_before

    # filled: appended, re-locked, verifies
    _write(out, _filled(cands))
    res = _cli("golden", "append", str(out), "--manifest", str(gap_project))
    assert res.exit_code == 0, res.output
    assert "appended 5 case(s)" in res.output
    assert golden.read_bytes().startswith(before)
    loaded = load_manifest(gap_project)
    assert verify(loaded) == []
    from harness.golden import load_golden

    cases = load_golden(golden, frozenset({"d1", "d2", "d3", "d4", "d5", "d6"}))
    assert len(cases) == 45 and cases[-1].tags["source"] == "coverage" and cases[-1].relevance == {"d6": 1}
    assert cases[-1].id == cands[-1]["id"]
    # the same file again: every id is now taken
    res = _cli("golden", "append", str(out), "--manifest", str(gap_project))
    assert res.exit_code == 2 and "already in the golden set" in res.output

    # coverage after the append: the appended fruit cases cover the fruit topic
    res = _cli("coverage", "--manifest", str(gap_project), "--format", "json", "--clusters", "5")
    assert res.exit_code == 0 and json.loads(res.output)["gap_records"] == 0


def test_append_refuses_a_manifest_that_does_not_verify(gap_project: Path, tmp_path: Path) -> None:
    corpus = gap_project.parent / "golden" / "corpus.jsonl"
    corpus.write_text(corpus.read_text() + json.dumps({"id": "d7", "text": "new"}) + "\n")
    cands = tmp_path / "filled.jsonl"
    _write(cands, [{"id": "new-1", "query": "fruit1 fruit2", "relevance": {"d1": 1}}])
    golden = gap_project.parent / "golden" / "cases.jsonl"
    before = golden.read_bytes()
    with pytest.raises(HarnessError, match="does not match its pin"):
        append_candidates(gap_project, cands)
    assert golden.read_bytes() == before


def test_append_refuses_bad_candidate_files(gap_project: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "query": "q", "relevance": {"d1": 1}}\n{"id": "x", "query": "r"}\n')
    with pytest.raises(InputError, match="duplicate id") as exc:
        append_candidates(gap_project, bad)
    assert exc.value.line == 2
    bad.write_text('{"id": "x", "query": "q", "relevance": {"d1": 1}, "extra": 1}\n')
    with pytest.raises(InputError, match="Additional properties"):
        append_candidates(gap_project, bad)
    with pytest.raises(InputError, match="JSON Lines"):
        append_candidates(gap_project, tmp_path / "c.csv")


def test_cli_errors(gap_project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.conftest import make_project

    empty = make_project(tmp_path_factory.mktemp("empty"))
    res = _cli("coverage", "--manifest", str(empty))
    assert res.exit_code == 2 and "nothing was ingested" in res.output
    outside = tmp_path_factory.mktemp("elsewhere") / "gaps.jsonl"
    res = _cli("coverage", "--manifest", str(gap_project), "--out", str(outside))
    assert res.exit_code == 2 and "outside the project" in res.output and not outside.exists()
    res = _cli("coverage", "--manifest", str(gap_project), "--out", str(outside), "--allow-outside", "--clusters", "5")
    assert res.exit_code == 0 and outside.exists()
    res = _cli("coverage", "--manifest", str(gap_project), "--since", "2026-03-02", "--until", "2026-03-01")
    assert res.exit_code == 2 and "before" in res.output
    res = _cli("golden", "append", str(gap_project.parent / "missing.jsonl"), "--manifest", str(gap_project))
    assert res.exit_code == 2 and "missing.jsonl: no such file" in res.output
