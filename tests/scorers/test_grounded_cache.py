"""The groundedness scorer's verdict cache: a second scoring of the same answers checks nothing again and
gives the same scores, byte for byte; a damaged row is recomputed; another checker identity misses."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from harness.cache import Cache
from harness.embed import HashingEncoder
from harness.scorers import SCORERS, ScoringContext
from harness.types import CaseOutput, CorpusDoc, GenerationRecord, GoldenCase, RankedDoc, Score

DOCS = {
    "d1": CorpusDoc(id="d1", title="Backups", text="Backups run hourly. They are kept for 30 days on the NAS."),
    "d2": CorpusDoc(id="d2", title="Ports", text="The server listens on port 7410. TLS is on by default."),
    "d3": CorpusDoc(id="d3", text="Quillstore 3.x needs 8 GB of RAM. Older versions needed 4 GB."),
}
ANSWERS = [
    ("a", "Backups run hourly and are kept for 30 days.", ["d1", "d2"]),
    ("b", "The server listens on port 9999. It was built by Acme in Berlin.", ["d2", "d3"]),
    ("c", "Quillstore 3.x needs 8 GB of RAM. Older versions needed 4 GB.", ["d3", "d1"]),
    ("d", "TLS is off unless you enable it.", ["d2"]),
]


class CountingEmbed:
    def __init__(self) -> None:
        self.texts = 0
        self.encoder = HashingEncoder(64)

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.texts += len(texts)
        return self.encoder.encode(texts)


def _inputs() -> tuple[list[GoldenCase], list[CaseOutput]]:
    cases = [GoldenCase(id=cid, query="q") for cid, _, _ in ANSWERS]
    outputs = [CaseOutput(case_id=cid, answer=answer, ranking=tuple(RankedDoc(doc_id=d, score=1.0) for d in shown),
                          generation=GenerationRecord(attempts=1, passages_shown=tuple(shown)))
               for cid, answer, shown in ANSWERS]
    return cases, outputs


def _score(cache: Cache | None, embed: CountingEmbed, identity: str = "hashing-64", **args: object) -> list[Score]:
    cases, outputs = _inputs()
    ctx = ScoringContext(docs=DOCS, embed=embed, cache=cache, extras={"embed_identity": identity})
    return SCORERS.build("groundedness", dict(args)).score(cases, outputs, ctx)


def _dump(scores: list[Score]) -> list[str]:
    return [s.model_dump_json() for s in scores]


def test_second_scoring_is_all_hits_and_identical(tmp_path: Path) -> None:
    uncached = _score(None, CountingEmbed())
    assert {s.value for s in uncached if s.metric == "grounded"} == {0.0, 1.0}  # both verdicts exercised
    cache = Cache(tmp_path / "cache.db")
    try:
        first_embed, second_embed = CountingEmbed(), CountingEmbed()
        first = _score(cache, first_embed)
        assert first_embed.texts > 0 and cache.count("groundedness") == len(ANSWERS)
        hits = cache.hits
        second = _score(cache, second_embed)
        assert second_embed.texts == 0  # nothing checked again
        assert cache.hits - hits == len(ANSWERS)
        assert _dump(first) == _dump(second) == _dump(uncached)  # details and their key order included

        # another checker (threshold) or another embedding model: other keys, computed afresh
        other = CountingEmbed()
        stricter = _score(cache, other, threshold=0.99)
        assert other.texts > 0 and cache.count("groundedness") == 2 * len(ANSWERS)
        assert _dump(stricter) == _dump(_score(None, CountingEmbed(), threshold=0.99))
        model = CountingEmbed()
        _score(cache, model, identity="another-model")
        assert model.texts > 0 and cache.count("groundedness") == 3 * len(ANSWERS)
    finally:
        cache.close()


def test_a_damaged_row_is_recomputed(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache.db")
    try:
        first = _score(cache, CountingEmbed())
    finally:
        cache.close()
    with sqlite3.connect(tmp_path / "cache.db") as db:
        (key,) = db.execute("SELECT k FROM groundedness ORDER BY k LIMIT 1").fetchone()
        db.execute("UPDATE groundedness SET v = ? WHERE k = ?", (b'{"score": 1.0, "supported": true, "claims": []}',
                                                                 key))
    cache = Cache(tmp_path / "cache.db")
    try:
        embed = CountingEmbed()
        again = _score(cache, embed)
        assert cache.damaged["groundedness"] == 1  # the checksum no longer holds: a miss, never trusted
        assert embed.texts > 0  # that answer was checked again
        assert _dump(again) == _dump(first)
        embed2 = CountingEmbed()
        assert _dump(_score(cache, embed2)) == _dump(first) and embed2.texts == 0  # rewritten intact
    finally:
        cache.close()


def test_no_identity_no_cache(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache.db")
    try:
        cases, outputs = _inputs()
        ctx = ScoringContext(docs=DOCS, embed=CountingEmbed(), cache=cache)  # an embed of unknown identity
        SCORERS.build("groundedness", {}).score(cases, outputs, ctx)
        assert cache.count("groundedness") == 0
    finally:
        cache.close()


def test_a_pause_between_batches_changes_no_score() -> None:
    cases, outputs = _inputs()
    plain = SCORERS.build("groundedness", {}).score(cases, outputs, ScoringContext(docs=DOCS, embed=CountingEmbed()))
    paused: list[float] = []
    ctx = ScoringContext(docs=DOCS, embed=CountingEmbed(), extras={"pause": paused.append})
    assert _dump(SCORERS.build("groundedness", {}).score(cases, outputs, ctx)) == _dump(plain)
    assert len(paused) == 1 and paused[0] >= 0  # one batch of 4 answers (the checker's batches are 64)
