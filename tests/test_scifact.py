"""Real-data check: BEIR SciFact with all-MiniLM-L6-v2 reproduces MTEB's published numbers.

Embeds the 5,183-document corpus once (about 3 minutes on 2 cores, the longest single cost of the suite);
the warm re-run then checks that nothing is recomputed and the model is not even loaded.

One cold run and one warm run per module (fixtures), each fact its own test: a wrong MTEB number, count
or import names itself. The granularity also matters for wall time: ``make test`` distributes by file
(``--dist loadfile``), and pytest-xdist hands out files in decreasing order of their test count, so a file
of two tests started last and ran alone on one core while the other idled. Merging these tests back into
a couple would put this file at the end of the queue again.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

CORPUS, QUERIES = 5183, 300
# MTEB's all-MiniLM-L6-v2 results on SciFact (test split), rounded to 4 digits
MTEB = {"ndcg@10": 0.6451, "recall@100": 0.9250, "map@10": 0.5959, "recall@10": 0.7833}
# MTEB: 0.64508, 0.92500, 0.59593, 0.78333

# The warm run through the CLI, then which model modules that process imported (on stderr, after the run's
# JSON on stdout): the warm path must not import the model stack at all.
WARM = """
import sys
from harness.cli import main
try:
    main(sys.argv[1:])
finally:
    sys.stderr.write("\\nmodel-modules " + " ".join(str(int(m in sys.modules))
                                                  for m in ("sentence_transformers", "torch")) + "\\n")
"""


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


def _run(manifest: Path) -> tuple[dict[str, Any], str]:
    result = subprocess.run([sys.executable, "-c", WARM, "-q", "run", "--manifest", str(manifest), "--json"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


@pytest.fixture(scope="module")
def cold(scifact: Path) -> dict[str, Any]:
    return _run(scifact)[0]


@pytest.fixture(scope="module")
def warm(scifact: Path, cold: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    data, stderr = _run(scifact)
    lines = [ln for ln in stderr.splitlines() if ln.startswith("model-modules ")]
    assert len(lines) == 1, stderr
    return data, lines[0].split()[1:]


def test_import_writes_a_manifest_whose_pins_verify(scifact: Path) -> None:
    from harness.manifest import load_manifest, verify

    assert verify(load_manifest(scifact)) == []


def test_import_keeps_the_test_split_cases_and_judgments(scifact: Path) -> None:
    from harness.golden import load_golden

    cases = load_golden(scifact.parent / "golden" / "cases.jsonl")
    assert len(cases) == QUERIES
    assert sum(len(c.relevance) for c in cases) == 339


def test_import_retrieves_the_top_100(scifact: Path) -> None:
    from harness.manifest import load_manifest

    assert load_manifest(scifact).manifest.artifacts["retriever"].params["k"] == 100


@pytest.mark.parametrize("metric", sorted(MTEB))
def test_scifact_reproduces_mteb(cold: dict[str, Any], metric: str) -> None:
    assert round(cold["aggregates"][metric], 4) == MTEB[metric]


def test_the_cold_run_embeds_every_document_and_query_once(cold: dict[str, Any]) -> None:
    assert cold["counts"]["embedded_texts"] == CORPUS + QUERIES


def test_the_warm_run_gives_the_same_aggregates(cold: dict[str, Any], warm: tuple[dict[str, Any], list[str]]) -> None:
    assert warm[0]["aggregates"] == cold["aggregates"]


def test_the_warm_run_retrieves_nothing(warm: tuple[dict[str, Any], list[str]]) -> None:
    assert warm[0]["counts"]["retrieved"] == 0


def test_the_warm_run_embeds_nothing(warm: tuple[dict[str, Any], list[str]]) -> None:
    assert warm[0]["counts"]["embedded_texts"] == 0


@pytest.mark.parametrize("position,module", [(0, "sentence_transformers"), (1, "torch")])
def test_the_warm_run_does_not_import_the_model_stack(warm: tuple[dict[str, Any], list[str]], position: int,
                                                      module: str) -> None:
    assert warm[1][position] == "0", f"the warm run imported {module}"
