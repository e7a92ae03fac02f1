from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.errors import InputError, ManifestError
from harness.manifest import load_manifest, lock, manifest_json_schema, require_verified, verify
from harness.types import Manifest
from tests.conftest import make_project


def test_lock_writes_pins_that_equal_sha256sum_and_keeps_comments(project: Path) -> None:
    text = project.read_text()
    assert "# A tiny project for tests." in text
    loaded = load_manifest(project)
    corpus_bytes = (project.parent / "golden" / "corpus.jsonl").read_bytes()
    assert loaded.manifest.artifacts["corpus"].sha256 == hashlib.sha256(corpus_bytes).hexdigest()
    assert verify(loaded) == []


def test_run_refuses_on_mismatch_naming_artifact_and_hashes(project: Path) -> None:
    corpus = project.parent / "golden" / "corpus.jsonl"
    expected = load_manifest(project).manifest.artifacts["corpus"].sha256
    corpus.write_text(corpus.read_text().replace("seven days", "eight days"))
    actual = hashlib.sha256(corpus.read_bytes()).hexdigest()
    with pytest.raises(ManifestError) as info:
        require_verified(load_manifest(project))
    msg = str(info.value)
    assert "'corpus'" in msg and expected in msg and actual in msg
    result = CliRunner().invoke(cli, ["run", "--manifest", str(project)])
    assert result.exit_code == 2
    verify_result = CliRunner().invoke(cli, ["verify", "--manifest", str(project)])
    assert verify_result.exit_code == 1 and "MISMATCH corpus" in verify_result.output


def test_unpinned_artifact_is_reported(tmp_path: Path) -> None:
    path = make_project(tmp_path, lock=False)
    with pytest.raises(ManifestError, match="not pinned"):
        require_verified(load_manifest(path))


def test_unknown_key_names_file_line_and_field(project: Path) -> None:
    text = project.read_text().replace('version = "1"\npath = "golden/cases.jsonl"',
                                       'version = "1"\npath = "golden/cases.jsonl"\nshaa256 = "x"', 1)
    project.write_text(text)
    with pytest.raises(InputError) as info:
        load_manifest(project)
    line = text.splitlines().index('shaa256 = "x"') + 1
    assert f"harness.toml:{line}" in str(info.value)
    assert "artifacts.golden.shaa256" in str(info.value)


def test_malformed_toml_names_line(project: Path) -> None:
    project.write_text(project.read_text() + "\n[metrics\n")
    with pytest.raises(InputError, match=r"harness.toml:\d+: malformed TOML"):
        load_manifest(project)


def test_missing_role_and_unknown_metric_are_errors(project: Path) -> None:
    text = project.read_text()
    project.write_text(text.replace('"map",', '"mapp",'))
    with pytest.raises(InputError, match="mapp"):
        load_manifest(project)
    cut = text.index("[artifacts.retriever]")
    project.write_text(text[:cut] + text[text.index("[metrics]"):])
    with pytest.raises(InputError, match="missing artifact role 'retriever'"):
        load_manifest(project)


def test_manifest_id_is_canonical(project: Path) -> None:
    m = load_manifest(project).manifest
    data = m.model_dump(mode="json")
    reordered = json.loads(json.dumps(data, sort_keys=True))
    assert Manifest.model_validate(reordered).id == m.id
    assert Manifest.model_validate({**data, "baseline": "some-run"}).id == m.id
    changed = json.loads(json.dumps(data))
    changed["artifacts"]["retriever"]["params"]["k"] = 6
    assert Manifest.model_validate(changed).id != m.id


def test_params_change_changes_pin(project: Path) -> None:
    before = load_manifest(project).manifest.artifacts["retriever"].sha256
    project.write_text(project.read_text().replace("k = 5", "k = 4"))
    loaded = load_manifest(project)
    assert [r for r, _, _ in verify(loaded)] == ["retriever"]
    pins = lock(project)
    assert pins["retriever"] != before


def test_yaml_manifest(tmp_path: Path) -> None:
    import tomllib

    import yaml

    toml_path = make_project(tmp_path, lock=False)
    data = tomllib.loads(toml_path.read_text())
    yaml_path = tmp_path / "harness.yaml"
    yaml_path.write_text(yaml.safe_dump(data))
    toml_path.unlink()
    lock(yaml_path)
    assert verify(load_manifest(yaml_path)) == []


def test_published_schema_is_current() -> None:
    root = Path(__file__).resolve().parents[1]
    published = json.loads((root / "harness" / "schemas" / "manifest.schema.json").read_text())
    assert published == manifest_json_schema(), "regenerate it: python -m harness.manifest"


@pytest.mark.parametrize(
    ("entry", "key", "message"),
    [
        ('name = "retrieval"\nargs = { metrics = ["ndcg@10"], bogus = 1 }', "args",
         "scorer 'retrieval': unknown kwarg(s) 'bogus'"),
        ('name = "retrieval"\nargs = { metrics = ["ndcg@10"], relevance_level = "1" }', "args",
         "scorer 'retrieval': kwarg 'relevance_level' must be int, got '1'"),
        ('name = "retrival"', "name", "unknown scorer 'retrival' (hint: did you mean retrieval?)"),
    ],
)
def test_scorer_entries_are_checked_before_a_run_writes_anything(project: Path, entry: str, key: str,
                                                                  message: str) -> None:
    # found while building scorers after retrieval, this was exit 2 with no file:line and a cache on disk
    text = project.read_text() + f"\n[[scorers]]\n{entry}\n"
    project.write_text(text)
    line = max(i for i, s in enumerate(text.splitlines(), 1) if s.startswith(f"{key} ="))
    result = CliRunner().invoke(cli, ["run", "--manifest", str(project)])
    assert result.exit_code == 2
    assert f"harness.toml:{line}: field 'scorers.0.{key}': {message}" in result.output
    assert not (project.parent / ".harness").exists()
