"""Where `harness lock` writes a pin: at the end of its own table's key/values, never under the comment
and blank lines that introduce the next table; everything else in the file stays byte for byte."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.manifest import load_manifest, lock, verify
from tests.conftest import ROOT, make_project

TOML = """\
# A tiny project, commented the way people comment manifests.
schema_version = 1
name = "tiny"

[artifacts.golden]
kind = "golden"   # the golden set
version = "1"
path = "golden/cases.jsonl"  # relative to this file

# The corpus every case is judged against.
# It changes rarely.
[artifacts.corpus]
kind = "corpus"
version = "1"
path = "golden/corpus.jsonl"

[artifacts.embedding]
  kind = "embedding_model"
  version = "hashing-64"
  params = { backend = "hashing", dim = 64 }
  # indented keys, and a comment that belongs to the next table

[artifacts.index]
kind = "index_recipe"
version = "flat"
path = "indexes/flat.toml"
[artifacts.retriever]
kind = "retriever"
version = "1"

# the retriever's own settings
[artifacts.retriever.params]
k = 5
text_fields = ["title", "text"]

# Metrics the run reports.
[metrics]
retrieval = ["ndcg@10", "recall@5"]
"""


def _pin_lines(pins: dict[str, str], indent: str = "") -> dict[str, str]:
    return {role: f'{indent}sha256 = "{pin}"\n' for role, pin in pins.items()}


def _after(text: str, anchor: str, line: str) -> str:
    assert text.count(anchor) == 1, anchor
    return text.replace(anchor, anchor + line)


def test_new_pins_end_their_own_table_and_nothing_else_changes(tmp_path: Path) -> None:
    path = make_project(tmp_path, lock=False)
    path.write_text(TOML)
    pins = lock(path)
    line = _pin_lines(pins)
    expected = TOML
    expected = _after(expected, 'path = "golden/cases.jsonl"  # relative to this file\n', line["golden"])
    expected = _after(expected, 'path = "golden/corpus.jsonl"\n', line["corpus"])
    expected = _after(expected, '  params = { backend = "hashing", dim = 64 }\n',
                      _pin_lines(pins, "  ")["embedding"])
    expected = _after(expected, 'path = "indexes/flat.toml"\n', line["index"])
    expected = _after(expected, '[artifacts.retriever]\nkind = "retriever"\nversion = "1"\n', line["retriever"])
    assert path.read_text() == expected
    assert verify(load_manifest(path)) == []


def test_a_pin_is_rewritten_where_it_stands_and_a_second_lock_changes_nothing(tmp_path: Path) -> None:
    path = make_project(tmp_path, lock=False)
    stale = "0" * 64
    text = TOML.replace('kind = "corpus"\n', f'kind = "corpus"\nsha256 = "{stale}"  # pinned by hand\n')
    path.write_text(text)
    pins = lock(path)
    assert stale not in path.read_text()
    locked = path.read_text()
    assert f'kind = "corpus"\nsha256 = "{pins["corpus"]}"  # pinned by hand\nversion = "1"\n' in locked
    lock(path)
    assert path.read_text() == locked


def test_the_last_table_gets_its_pin_before_trailing_comments(tmp_path: Path) -> None:
    path = make_project(tmp_path, lock=False)
    head, _, _ = TOML.partition("# Metrics the run reports.\n")
    text = head.replace('name = "tiny"\n', 'name = "tiny"\n\n[metrics]\nretrieval = ["ndcg@10"]\n', 1)
    text += "# k = 10 was tried and dropped\n"
    path.write_text(text)
    pins = lock(path)
    locked = path.read_text()
    assert locked.endswith('text_fields = ["title", "text"]\n\n# k = 10 was tried and dropped\n')
    assert f'[artifacts.retriever]\nkind = "retriever"\nversion = "1"\nsha256 = "{pins["retriever"]}"\n' in locked


def test_a_pin_goes_inside_an_inline_artifact_table(tmp_path: Path) -> None:
    path = make_project(tmp_path, lock=False)
    inline = 'index = { kind = "index_recipe", version = "flat", path = "indexes/flat.toml" }'
    text = TOML.replace('[artifacts.index]\nkind = "index_recipe"\nversion = "flat"\npath = "indexes/flat.toml"\n', "")
    path.write_text(text.replace("[artifacts.golden]\n", f"[artifacts]\n{inline}\n\n[artifacts.golden]\n"))
    pins = lock(path)
    line = next(s for s in path.read_text().splitlines() if s.startswith("index = "))
    assert line.startswith(inline[:-2] + f', sha256 = "{pins["index"]}"') and line.endswith("}")  # tomlkit: no space


YAML = """\
# A tiny project in YAML; lock keeps these comments.
schema_version: 1
name: 'tiny'
artifacts:
  golden:
    kind: golden
    version: "1"
    path: golden/cases.jsonl  # relative to this file
    # a comment under the last key

  # The corpus every case is judged against.
  corpus:
    kind: corpus
    version: "1"
    path: golden/corpus.jsonl
  embedding:
    kind: embedding_model
    version: hashing-64
    params: {backend: hashing, dim: 64}
  index:
    kind: index_recipe
    version: flat
    path: indexes/flat.toml
    sha256: "%s"
  retriever:
    kind: retriever
    version: "1"
    params:
      k: 5
      text_fields:
        - title
        - text

      # belongs to metrics
# Metrics the run reports.
metrics:
  retrieval: ["ndcg@10", 'recall@5']
"""


def test_yaml_lock_keeps_comments_quotes_and_layout(tmp_path: Path) -> None:
    make_project(tmp_path, lock=False).unlink()
    path = tmp_path / "harness.yaml"
    stale = "0" * 64
    path.write_text(YAML % stale)
    pins = lock(path)
    expected = YAML % pins["index"]
    expected = _after(expected, "path: golden/cases.jsonl  # relative to this file\n",
                      f"    sha256: {pins['golden']}\n")
    expected = _after(expected, "path: golden/corpus.jsonl\n", f"    sha256: {pins['corpus']}\n")
    expected = _after(expected, "params: {backend: hashing, dim: 64}\n", f"    sha256: {pins['embedding']}\n")
    expected = _after(expected, "        - text\n", f"    sha256: {pins['retriever']}\n")
    assert path.read_text() == expected
    assert verify(load_manifest(path)) == []
    lock(path)
    assert path.read_text() == expected


def _misplaced_pins(text: str) -> list[str]:
    """Artifact tables whose sha256 line comes after a comment or blank line of the same table."""
    bad = []
    for header, body in re.findall(r"^(\[artifacts\.[^\]]+\])\n((?:(?!\[).*\n?)*)", text, re.M):
        lines = body.splitlines()
        pin = next((i for i, s in enumerate(lines) if s.strip().startswith("sha256")), None)
        loose = next((i for i, s in enumerate(lines) if not s.strip() or s.lstrip().startswith("#")), len(lines))
        if pin is not None and pin > loose:
            bad.append(header)
    return bad


@pytest.mark.parametrize("name", ["harness.toml", *sorted(p.name for p in (ROOT / "variants").glob("*.toml"))])
def test_the_repos_own_manifests_have_their_pins_in_place(name: str) -> None:
    path = ROOT / name if name == "harness.toml" else ROOT / "variants" / name
    assert _misplaced_pins(path.read_text()) == []


def test_harness_init_writes_its_pins_in_place(tmp_path: Path) -> None:
    from harness.scaffold import scaffold

    text = scaffold(tmp_path / "new").read_text()
    assert _misplaced_pins(text) == []
    misplaced = TOML.replace("# It changes rarely.\n", '# It changes rarely.\nsha256 = "a"\n')
    assert _misplaced_pins(misplaced) == ["[artifacts.golden]"]
