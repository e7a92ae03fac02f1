from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.testing.project import ProjectSpec, artifact_table, write_jsonl, write_project

if TYPE_CHECKING:
    from harness.testing import FakeOpenAIServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with the most ``slow`` tests first, the rest in collection order. ``make test`` runs
    ``--dist loadfile --no-loadscope-reorder``: xdist hands files out in this order, so the long files start
    while both workers are free and the many short ones fill in at the end (its default order, by test
    count, once started a 13-test SciFact file of ~5 minutes last, alone on one core)."""
    slow: dict[str, int] = {}
    for item in items:
        if item.get_closest_marker("slow") is not None:
            slow[item.nodeid.split("::", 1)[0]] = slow.get(item.nodeid.split("::", 1)[0], 0) + 1
    if slow:
        order = {item.nodeid: i for i, item in enumerate(items)}
        items.sort(key=lambda item: (-slow.get(item.nodeid.split("::", 1)[0], 0), order[item.nodeid]))

SHARED_DATA = ROOT.parent / "shared" / "data"

DOCS = [
    {"id": "d1", "title": "Compaction", "text": "Compaction merges segments every night to reclaim disk space."},
    {"id": "d2", "title": "Backups", "text": "Backups run hourly and are kept for seven days."},
    {"id": "d3", "title": "TLS", "text": "TLS certificates are rotated every ninety days by the operator."},
    {"id": "d4", "title": "Quotas", "text": "Each tenant has a storage quota of fifty gigabytes."},
    {"id": "d5", "title": "Roles", "text": "Admin and reader roles control access to collections."},
    {"id": "d6", "title": "Search", "text": "Queries support phrase search and boolean operators."},
]
CASES = [
    {"id": "q1", "query": "how often do backups run", "relevance": {"d2": 2},
     "tags": {"topic": "storage", "difficulty": "easy"}},
    {"id": "q2", "query": "when are TLS certificates rotated", "relevance": {"d3": 1, "d5": 0},
     "tags": {"topic": "security", "difficulty": "easy"}},
    {"id": "q3", "query": "what is the storage quota for a tenant and how does compaction reclaim disk",
     "relevance": {"d4": 2, "d1": 1}, "tags": {"topic": "storage", "difficulty": "hard"}},
    {"id": "q4", "query": "no judged documents here", "tags": {"topic": "misc", "difficulty": "easy"}},
]

TINY = ProjectSpec(name="tiny", comment="A tiny project for tests.",
                   metrics=("ndcg@10", "recall@5", "map", "mrr@10", "precision@5"))
MANIFEST = TINY.template("recipe")
RECIPES = {"flat": 'type = "flat"\n', "hnsw": 'type = "hnsw"\nM = 8\nef_search = 16\n',
           "ivf": 'type = "ivf"\nnlist = 2\nnprobe = 2\n'}


def make_project(root: Path, recipe: str = "flat", lock: bool = True) -> Path:
    return write_project(root, replace(TINY, recipe=recipe), docs=DOCS, cases=CASES, recipes=RECIPES, lock=lock)


CONTRACTS = """
[contracts.json_cited]
format = "json"
answer_field = "answer"
citations_field = "citations"
max_words = 40
prompt = "Reply with JSON {{answer, citations}}."
checks = [
  {{ type = "json", name = "parses" }},
  {{ type = "citations", name = "cites", field = "citations" }},
]

[contracts.short_plain]
format = "text"
max_words = 20
prompt = "One sentence."
checks = [{{ type = "length", name = "words", max_words = {short_max_words} }}]
"""

PROMPT = '''
[[messages]]
role = "user"
content = """{% for p in passages %}[{{ p.id }}] {{ p.text }}
{% endfor %}Q: {{ query }}{% if contract %} ({{ contract.prompt }}){% endif %}{% for i in instructions %}
- {{ i.text }}{% endfor %}"""
'''

CASE_UPDATES: dict[int, dict] = {
    0: {"answers": ["hourly"], "facts": [{"text": "seven days"}], "contract": "json_cited"},
    1: {"answers": ["every ninety days"], "contract": "short_plain",
        "instructions": [{"id": "change_case:english_lowercase", "kwargs": {}}]},
}


def add_generation(root: Path, generator: str = '{ name = "extractive", n_passages = 3 }', *,
                   short_max_words: int = 25, case_updates: dict[int, dict] | None = None) -> Path:
    """Give the tiny project a prompt, two output contracts, answers/facts/instructions and a generator."""
    (root / "validators").mkdir(exist_ok=True)
    (root / "validators" / "contracts.toml").write_text(CONTRACTS.format(short_max_words=short_max_words))
    (root / "prompts").mkdir(exist_ok=True)
    (root / "prompts" / "answer.toml").write_text(PROMPT)
    cases = root / "golden" / "cases.jsonl"
    rows = [json.loads(line) for line in cases.read_text().splitlines()]
    for i, update in (CASE_UPDATES if case_updates is None else case_updates).items():
        rows[i] |= update
    write_jsonl(cases, rows)
    manifest = root / "harness.toml"
    tables = [artifact_table("prompt", "prompt", path="prompts/answer.toml"),
              artifact_table("validators", "validators", path="validators"),
              artifact_table("generator", "generator", params=generator)]
    manifest.write_text(manifest.read_text().replace("[metrics]", "\n".join([*tables, "[metrics]"])))
    from harness.manifest import lock

    lock(manifest)
    return manifest


def sigkill_after(proc: subprocess.Popen[bytes], server: FakeOpenAIServer, start: int, calls: int,
                  extra_wait: float = 0.0, timeout_s: float = 120.0) -> float:
    """SIGKILL ``proc`` once ``server`` has received ``calls`` requests since it had ``start`` (or ``proc``
    ended, or ``timeout_s`` passed), ``extra_wait`` seconds later; returns when it was killed (monotonic).
    ``proc`` is reaped, and killed whatever happens."""
    try:
        deadline = time.monotonic() + timeout_s
        while server.requests_received - start < calls and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(extra_wait)
        kill_t = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return kill_t


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)
    return make_project(tmp_path)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (CI lays ../shared beside the clone)")
    return SHARED_DATA
