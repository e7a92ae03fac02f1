"""Real-data check: BEIR SciFact with all-MiniLM-L6-v2 reproduces MTEB's published numbers.

Embeds the 5,183-document corpus once (about 3 minutes on 2 cores); the warm re-run then checks
that nothing is recomputed and the model is not even loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import SHARED_DATA

    src = SHARED_DATA / "scifact"
    if not src.is_dir():
        pytest.skip(f"SciFact not found at {src}")
    out = tmp_path_factory.mktemp("scifact")
    result = subprocess.run([sys.executable, "-m", "harness.cli", "import", "beir", str(src), "--out", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return out / "harness.toml"


def _run(manifest: Path, *extra: str) -> dict:
    code = (
        "import sys, json; from harness.cli import main; main(sys.argv[1:])"
    )
    result = subprocess.run([sys.executable, "-c", code, "-q", "run", "--manifest", str(manifest), "--json", *extra],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_import_writes_locked_manifest(scifact: Path) -> None:
    from harness.golden import load_golden
    from harness.manifest import load_manifest, verify

    loaded = load_manifest(scifact)
    assert verify(loaded) == []
    cases = load_golden(scifact.parent / "golden" / "cases.jsonl")
    assert len(cases) == 300 and sum(len(c.relevance) for c in cases) == 339
    assert loaded.manifest.artifacts["retriever"].params["k"] == 100


def test_scifact_reproduces_mteb(scifact: Path) -> None:
    data = _run(scifact)
    agg = data["aggregates"]
    assert round(agg["ndcg@10"], 4) == 0.6451  # MTEB: 0.64508
    assert round(agg["recall@100"], 4) == 0.9250  # MTEB: 0.92500
    assert round(agg["map@10"], 4) == 0.5959  # MTEB: 0.59593
    assert round(agg["recall@10"], 4) == 0.7833  # MTEB: 0.78333
    assert data["counts"]["embedded_texts"] == 5183 + 300

    warm = _run(scifact)
    assert warm["aggregates"] == agg
    assert warm["counts"]["retrieved"] == 0 and warm["counts"]["embedded_texts"] == 0
    # the warm run must not import the model stack at all
    probe = (
        "import sys; from harness.pipeline import run_manifest; run_manifest(sys.argv[1]); "
        "print(int('sentence_transformers' in sys.modules), int('torch' in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(scifact)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "0"]
