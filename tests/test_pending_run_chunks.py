"""A pending run (``execute_unscored``, what ``harness replay`` runs each side through) keeps one chunk of
outputs in memory: each chunk's outputs wait in a spool on disk until ``finish`` scores and stores them a chunk
at a time. The oracle is the same pending run taken in one chunk (the whole run at once, as it was scored before)
and ``execute`` over the same cases; the spool is gone however the pending run ends."""

from __future__ import annotations

import gc
import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import harness.pipeline as pipeline
from harness.golden import load_golden
from harness.manifest import LoadedManifest, load_manifest, lock
from harness.runs import RunStore, load_run
from harness.scorers.answer import CorrectnessScorer
from harness.types import CaseOutput, GoldenCase, RunResult
from tests.conftest import ROOT, add_generation, make_project, write_jsonl
from tests.test_pipeline_streaming import _cases


@pytest.fixture(autouse=True)
def _no_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)


def _project(root: Path, n: int) -> tuple[LoadedManifest, list[GoldenCase]]:
    manifest = make_project(root, lock=False)
    write_jsonl(root / "golden" / "cases.jsonl", _cases(n))
    add_generation(root)
    lock(manifest)
    loaded = load_manifest(manifest)
    return loaded, load_golden(loaded.resolve("golden"))


def _files(root: Path) -> list[Path]:
    """Every file under ``root`` (the spool is never one: it is unlinked as it is made)."""
    return sorted(p for p in root.rglob("*") if p.is_file())


def _spool_file(pending: pipeline.PendingRun) -> str:
    """Where the open spool's inode was made (Linux: ``/proc/self/fd`` names an unlinked file's folder)."""
    return os.readlink(f"/proc/self/fd/{pending.spool._fh.fileno()}")


def _content(run: RunResult) -> dict[str, Any]:
    data = json.loads(run.model_dump_json())
    for o in data["outputs"]:
        o.pop("latency_s")
    return {k: data[k] for k in ("cases", "outputs", "scores", "aggregates", "scorers", "counts", "manifest_id")}


def test_a_pending_run_in_chunks_stores_the_run_taken_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    n, size = 14, 4  # 4 chunks, the last one short
    loaded, cases = _project(tmp_path / "whole", n)
    whole_store = RunStore(tmp_path / "whole-runs")
    whole = pipeline.execute_unscored(loaded, cases=cases, runs=whole_store).finish()
    monkeypatch.setattr(pipeline, "CHUNK_CASES", size)
    loaded, cases = _project(tmp_path / "chunked", n)
    store = RunStore(tmp_path / "runs")
    pending = pipeline.execute_unscored(loaded, cases=cases, runs=store)
    assert _spool_file(pending).startswith(f"{store.root / loaded.id}/")  # in the run's folder of the store
    assert _spool_file(pending).endswith("(deleted)") and not _files(store.root)  # and never visible there
    report = pending.finish()
    assert pending.spool.removed
    assert not report.loaded  # the report reads the run back only when asked, as execute's does
    a, b = whole.run, report.run
    assert b == load_run(report.path)
    assert report.header.aggregates == b.aggregates and report.header.counts == b.counts
    assert [c.id for c in b.cases] == [c.id for c in cases]
    assert b.case_scores() == a.case_scores()  # every score of every case, explanations and details too
    assert b.aggregates == a.aggregates  # exact
    assert b.counts == a.counts and b.counts["cases"] == n and b.counts["generated"] == n
    assert [o.model_dump(exclude={"latency_s"}) for o in b.outputs] == [o.model_dump(exclude={"latency_s"})
                                                                         for o in a.outputs]
    assert list(b.stage_seconds) == list(a.stage_seconds)  # the same keys, in the same order
    assert "_before_score" not in b.stage_seconds and {"retrieve", "generate", "score", "total"} <= set(b.stage_seconds)
    assert report.errors == whole.errors
    # and it is the run execute stores for these cases, chunked the same (scores in the same order), cold too
    loaded, cases = _project(tmp_path / "seq", n)
    seq = pipeline.execute(loaded, cases=cases, runs=RunStore(tmp_path / "seq-runs")).run
    assert _content(b) == _content(seq)


def test_a_pending_run_holds_one_chunk_of_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    n, size = 30, 4
    monkeypatch.setattr(pipeline, "CHUNK_CASES", size)
    loaded, cases = _project(tmp_path / "p", n)
    store = RunStore(tmp_path / "runs")
    live: list[int] = []

    def alive() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if type(o) is CaseOutput)  # type(): no attribute lookup

    before = alive()
    real_stages, real_add = pipeline._Prepared.run_stages, pipeline._ChunkScoring.add

    def run_stages(self: Any, chunk: list[GoldenCase]) -> list[CaseOutput]:
        outputs = real_stages(self, chunk)
        live.append(alive() - before)
        return outputs

    def add(self: Any, chunk: list[GoldenCase], outputs: list[CaseOutput], scored: Any) -> None:
        live.append(alive() - before)
        real_add(self, chunk, outputs, scored)

    monkeypatch.setattr(pipeline._Prepared, "run_stages", run_stages)
    monkeypatch.setattr(pipeline._ChunkScoring, "add", add)
    pending = pipeline.execute_unscored(loaded, cases=cases, runs=store)
    # every output is in the spool, none in the pending run
    fh = pending.spool._fh
    fh.seek(0)
    spooled = [pickle.load(fh) for _ in range(-(-n // size))]
    assert fh.read() == b""
    assert [o.case_id for chunk in spooled for o in chunk] == [c.id for c in cases]
    assert [len(chunk) for chunk in spooled] == [4] * 7 + [2]
    del spooled
    assert not any(isinstance(v, list) and v and isinstance(v[0], CaseOutput) for v in vars(pending).values())
    report = pending.finish()
    assert len(live) == 2 * -(-n // size)  # each chunk generated, then each chunk scored
    assert max(live) <= size, live  # one chunk at a time; the whole run is 30
    assert report.header.counts["cases"] == n and len(load_run(report.path).outputs) == n


def test_the_spool_is_removed_however_the_pending_run_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "CHUNK_CASES", 4)
    loaded, cases = _project(tmp_path / "p", 14)
    store = RunStore(tmp_path / "runs")
    # closed without finishing
    pending = pipeline.execute_unscored(loaded, cases=cases, runs=store)
    assert not pending.spool.removed
    pending.close()
    pending.close()
    assert pending.spool.removed and not store.scan()
    with pytest.raises(RuntimeError, match="closed"):
        pending.finish()
    # a scorer that raises on the third chunk: no spool, no run, no table left
    real = CorrectnessScorer.score
    calls: list[int] = []

    def score(self: CorrectnessScorer, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("scorer broke")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(CorrectnessScorer, "score", score)
    pending = pipeline.execute_unscored(loaded, cases=cases, runs=store)
    with pytest.raises(RuntimeError, match="scorer broke"):
        pending.finish()
    assert len(calls) == 3
    assert pending.spool.removed and not store.scan()
    assert not [p for p in store.root.rglob("*") if p.is_file()]  # the table written so far is gone too
    monkeypatch.setattr(CorrectnessScorer, "score", real)
    # an error while generating the second chunk: execute_unscored raises and leaves no spool
    real_stages = pipeline._Prepared.run_stages
    chunks: list[int] = []

    def run_stages(self: Any, chunk: list[GoldenCase]) -> list[CaseOutput]:
        chunks.append(len(chunk))
        if len(chunks) == 2:
            raise RuntimeError("generator broke")
        return real_stages(self, chunk)

    monkeypatch.setattr(pipeline._Prepared, "run_stages", run_stages)
    opened: list[Any] = []
    real_spool = pipeline._Spool

    def spool(folder: Path) -> Any:
        opened.append(real_spool(folder))
        return opened[-1]

    monkeypatch.setattr(pipeline, "_Spool", spool)
    with pytest.raises(RuntimeError, match="generator broke"):
        pipeline.execute_unscored(loaded, cases=cases, runs=store)
    assert len(opened) == 1 and opened[0].removed and not store.scan()
    monkeypatch.setattr(pipeline, "_Spool", real_spool)
    monkeypatch.setattr(pipeline._Prepared, "run_stages", real_stages)
    # and a finished one stores its run and leaves no spool
    report = pipeline.execute_unscored(loaded, cases=cases, runs=store).finish()
    assert [r.run_id for r in store.scan()] == [report.header.run_id]
    assert _files(store.root) == sorted([report.path, report.path.with_suffix(".parquet"),
                                         report.path.parent / "LATEST"])


def test_a_killed_pending_run_leaves_no_spool(tmp_path: Path) -> None:
    """SIGKILL with a spool full of outputs: the kernel frees the unnamed file; nothing is left in the store."""
    root = tmp_path / "p"
    _project(root, 10)
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "import harness.pipeline as pipeline\n"
        "from harness.golden import load_golden\n"
        "from harness.manifest import load_manifest\n"
        "from harness.runs import RunStore\n"
        f"loaded = load_manifest(Path({str(root / 'harness.toml')!r}))\n"
        "cases = load_golden(loaded.resolve('golden'))\n"
        f"pending = pipeline.execute_unscored(loaded, cases=cases, runs=RunStore(Path({str(tmp_path / 'runs')!r})))\n"
        "assert pending.spool.chunks == [10]\n"
        "print('spooled', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL and "spooled" in proc.stdout, proc.stderr
    assert (tmp_path / "runs").is_dir() and not _files(tmp_path / "runs")
