"""SIGKILL a ``harness run`` at several points; the re-run's result equals an uninterrupted run's.

The run uses the ``openai`` generator against the fake endpoint with some latency, and is killed
after N calls were served (read from the server's counter): at the first call, in the middle of
generation, and after the last call (while scoring and storing). Then the project is run again to
completion. Each time: aggregates and per-case answers and scores equal those of an uninterrupted
run of the same project; every stored run file is whole JSON; the cache passes SQLite's integrity
check and what the killed run had cached is used, not paid for again; a kill loses at most the
answers of its last ~second (the engine flushes the cache every 0.5 s, not every 2 s or 64 answers);
the dead run's in-flight leases do not make the re-run wait.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.testing import FakeOpenAIServer
from tests.conftest import add_generation, make_project, sigkill_after

N_CASES = 24
LOSS_S = 1.0  # a call answered this long before the kill must be in the cache (flush every 0.5 s + slack)


def _project(root: Path, base_url: str) -> Path:
    make_project(root, lock=False)
    rows = [{"id": f"c{i:02d}", "query": f"question {i}: how often do backups run and how long are they kept",
             "relevance": {"d2": 1}, "answers": ["hourly"], "facts": [{"text": "seven days"}],
             "tags": {"half": str(i % 2)}} for i in range(N_CASES)]
    (root / "golden" / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = (f'{{ name = "openai", model = "fake-1", base_url = "{base_url}", temperature = 0, '
              "concurrency = 2, timeout_s = 30, max_retries = 1 }")
    return add_generation(root, params, case_updates={})


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(latency_s=0.25) as srv:
        yield srv


@pytest.fixture(scope="module")
def reference(server: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    from harness.pipeline import run_manifest

    root = tmp_path_factory.mktemp("reference")
    os.environ.pop("HARNESS_HOME", None)
    run = run_manifest(_project(root, server.base_url)).run
    assert run.counts["errors"] == 0
    return _result(run)


def _result(run: object) -> dict[str, object]:
    return {
        "aggregates": {k: v.mean for k, v in run.aggregates.overall.items()},  # type: ignore[attr-defined]
        "segments": {s: {k: v.mean for k, v in ms.items()}
                     for s, ms in run.aggregates.segments.items()},  # type: ignore[attr-defined]
        "answers": {o.case_id: o.answer for o in run.outputs},  # type: ignore[attr-defined]
        "scores": run.case_scores(),  # type: ignore[attr-defined]
    }


def _env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OPENAI_API_KEY": "sk-test-sigkill-0000"}
    for name in ("HARNESS_HOME", "HARNESS_CACHE_DIR", "OPENAI_BASE_URL"):
        env.pop(name, None)
    return env


def _generations(cache_db: Path) -> int:
    if not cache_db.exists():
        return 0
    db = sqlite3.connect(cache_db)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (n,) = db.execute("SELECT COUNT(*) FROM generations").fetchone()
        return int(n)
    except sqlite3.OperationalError:  # killed before the table was created
        return 0
    finally:
        db.close()


# (name, calls served before the kill, extra wait after that many)
POINTS = [("at the first call", 1, 0.0), ("mid generation", 14, 0.0), ("after the last call", N_CASES, 0.3)]


@pytest.mark.parametrize(("name", "after_calls", "extra_wait"), POINTS, ids=[p[0] for p in POINTS])
def test_sigkill_then_rerun_equals_an_uninterrupted_run(
        name: str, after_calls: int, extra_wait: float, server: FakeOpenAIServer, reference: dict[str, object],
        tmp_path: Path) -> None:
    from harness.pipeline import run_manifest

    manifest = _project(tmp_path / "proj", server.base_url)
    start = server.requests_received
    proc = subprocess.Popen([str(Path(sys.executable).parent / "harness"), "run", "--manifest", str(manifest)],
                            cwd=tmp_path / "proj", env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kill_t = sigkill_after(proc, server, start, after_calls, extra_wait)
    assert server.requests_received - start >= after_calls, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    served = server.requests_received - start

    harness_dir = tmp_path / "proj" / ".harness"
    cached = _generations(harness_dir / "cache" / "cache.sqlite")
    assert cached <= served
    answered_long_before = sum(1 for r in server.requests[start:] if r.t + server.latency_s < kill_t - LOSS_S)
    assert cached >= answered_long_before, (cached, answered_long_before)  # a kill loses only its last moments
    before = server.requests_received
    rerun = run_manifest(manifest).run
    assert server.requests_received - before == N_CASES - cached  # the killed run's cache is used, not re-paid
    assert rerun.stage_seconds["generate"] < 10  # the dead run's leases were taken over, not waited out (TTL 15 s)
    assert rerun.counts["errors"] == 0
    assert _result(rerun) == reference, name

    for path in (harness_dir / "runs").rglob("*"):  # a killed run leaves no damaged run file
        if path.is_file() and path.suffix == ".json":
            json.loads(path.read_text())
    assert _generations(harness_dir / "cache" / "cache.sqlite") == N_CASES
    shutil.rmtree(tmp_path / "proj", ignore_errors=True)
