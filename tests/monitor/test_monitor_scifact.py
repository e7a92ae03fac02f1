"""The monitor on real queries (issue 13, "Measured, with real data"): SciFact's train claims logged as
production against a SciFact project whose golden set is the test split raise no drift alarm; the same
stream with HotpotQA questions mixed into one segment from day 15 on alarms on that day, for that segment.

MiniLM embeds ~1,300 distinct queries (cached in the project), so the test is marked slow."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import tomlkit

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
START = dt.date(2026, 11, 2)  # a Monday
DAYS = 21
PER_DAY = 120
SHIFT_DAY = 14  # 0-based: 2026-11-16, a Monday


def _train_queries() -> list[str]:
    ids = {line.split("\t")[0] for line in (DATA / "scifact" / "qrels" / "train.tsv").read_text().splitlines()[1:]}
    out = []
    for line in (DATA / "scifact" / "queries.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["_id"] in ids:
            out.append(rec["text"])
    return out


def _hotpot_questions() -> list[str]:
    lines = (DATA / "hotpotqa" / "dev_500.jsonl").read_text().splitlines()
    return [json.loads(line)["question_text"] for line in lines]


def _stream(folder: Path, *, shift: bool) -> list[Path]:
    rng = np.random.default_rng(13)
    train, hotpot = _train_queries(), _hotpot_questions()
    hot = iter(rng.permutation(len(hotpot)).tolist())
    paths = []
    for d in range(DAYS):
        day = dt.datetime.combine(START + dt.timedelta(days=d), dt.time(0), tzinfo=dt.UTC)
        picks = rng.choice(len(train), PER_DAY, replace=False)
        rows = []
        for i, k in enumerate(picks):
            geo = ["us", "eu", "apac"][i % 3]
            query = train[k]
            if shift and d >= SHIFT_DAY and geo == "eu" and i % 2 == 1:
                query = hotpot[next(hot)]
            ts = day + dt.timedelta(seconds=float(rng.uniform(0, 86_400)))
            rows.append({"id": f"d{d}-{i}", "timestamp": ts.isoformat().replace("+00:00", "Z"), "query": query,
                         "geo": geo, "latency_s": {"total": float(rng.lognormal(-1.0, 0.3))}})
        path = folder / f"log-{d:02d}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def scifact_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harness.importers.beir import import_beir

    root = tmp_path_factory.mktemp("scifact-monitor")
    manifest = import_beir(DATA / "scifact", root / "proj")
    doc = tomlkit.parse(manifest.read_text())
    doc["monitor"] = {"segments": ["geo"]}
    manifest.write_text(tomlkit.dumps(doc))
    return manifest


def _monitor(manifest: Path, logs: list[Path], home: Path, *, golden: bool):
    from harness.manifest import load_manifest
    from harness.monitor.ingest import ingest
    from harness.monitor.project import monitor_inputs
    from harness.monitor.run import judged_days, run_monitor
    from harness.storage import Layout
    from harness.types import LogFieldMap

    loaded = load_manifest(manifest)
    layout = Layout(home, project=manifest.parent)
    layout.cache_dir = manifest.parent / ".harness" / "cache"  # one embedding cache for both streams
    ingest(logs, layout=layout, mapping=LogFieldMap())
    inputs, cache = monitor_inputs(loaded, layout)
    try:
        days = judged_days(inputs.parts_by_day, START + dt.timedelta(days=7), START + dt.timedelta(days=DAYS - 1))
        return run_monitor(inputs, days=days, golden=golden)
    finally:
        cache.close()


def test_scifact_train_queries_against_the_test_split_raise_no_alarm(scifact_project: Path, tmp_path: Path) -> None:
    logs = _stream(tmp_path, shift=False)
    report = _monitor(scifact_project, logs, tmp_path / "home", golden=True)
    assert report.drift.n_tests > 1000 and report.drift.untestable < report.drift.n_tests / 10
    assert report.drift.alarms == (), [(a.test.current, a.test.segment, a.test.signal, a.test.test)
                                      for a in report.drift.alarms]
    assert report.status == "ok"
    assert {"golden", "day_over_day", "week_over_week"} <= set(report.settings["comparisons"])


def test_hotpotqa_mixed_into_one_segment_alarms_on_that_day_for_that_segment(scifact_project: Path,
                                                                             tmp_path: Path) -> None:
    logs = _stream(tmp_path, shift=True)
    report = _monitor(scifact_project, logs, tmp_path / "home", golden=False)
    shifted = (START + dt.timedelta(days=SHIFT_DAY)).isoformat()
    alarms = report.drift.alarms
    assert alarms, "the HotpotQA shift raised no alarm"
    first = min(a.test.current for a in alarms)
    assert first == shifted, f"first alarm on {first}, the shift starts on {shifted}"
    on_day = [a for a in alarms if a.test.current == shifted]
    assert {a.test.segment for a in on_day} <= {"geo=eu", "all"}, {a.test.segment for a in on_day}
    eu = {a.test.signal for a in on_day if a.test.segment == "geo=eu"}
    assert {"golden_distance", "query_embedding"} <= eu, eu
    for a in on_day:  # each alarm names its windows, effect and what moved
        assert a.test.reference and a.test.effect is not None and a.test.moved
    assert report.status == "alarm" and report.distributions
