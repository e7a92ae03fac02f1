"""Artifact paths stay inside the project unless an artifact opts in (``allow_outside = true``).

The project is the git work tree holding the manifest, else the nearest folder at or above the
manifest's holding a harness manifest (so ``variants/x.toml`` may use ``../golden``). An absolute path,
a ``../`` path or a symlink leading out is exit 2 naming the artifact and the path, and nothing is
hashed into the cache or copied into the store; a symlink inside a folder artifact (validators/) that
leads out is refused the same way. Symlinks that stay inside are followed, and the pin covers them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from harness.hashing import sha256_file
from tests.conftest import DOCS, add_generation, make_project, write_jsonl
from tests.reliability.clirun import cli_in_process


@pytest.fixture(autouse=True)
def _no_shared_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)


_cli = cli_in_process


def _store_files(root: Path) -> list[Path]:
    store = root / ".harness" / "store"
    return [p for p in store.rglob("*") if p.is_file()] if store.exists() else []


def _point(manifest: Path, role_path: str, new: str, *, pin: str | None = None, extra: str = "") -> None:
    """Point the artifact whose path is ``role_path`` at ``new`` (and optionally pin it by hand)."""
    text = manifest.read_text()
    old = f'path = "{role_path}"\n'
    assert old in text
    lines = f'path = "{new}"\n' + extra
    if pin is not None:
        text = re.sub(rf'({re.escape(old)})sha256 = "[0-9a-f]+"\n', r"\1", text)
        lines += f'sha256 = "{pin}"\n'
    manifest.write_text(text.replace(old, lines))


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(project root, manifest, a valid corpus outside the project)."""
    root = tmp_path / "proj"
    root.mkdir()
    manifest = make_project(root)
    outside = tmp_path / "elsewhere" / "corpus.jsonl"
    write_jsonl(outside, DOCS)
    return root, manifest, outside


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_a_corpus_outside_the_project_is_refused(project: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str],
                                                  how: str) -> None:
    root, manifest, outside = project
    if how == "absolute":
        _point(manifest, "golden/corpus.jsonl", str(outside))
    elif how == "dotdot":
        _point(manifest, "golden/corpus.jsonl", "../elsewhere/corpus.jsonl")
    else:
        (root / "golden" / "corpus.jsonl").unlink()
        (root / "golden" / "corpus.jsonl").symlink_to(outside)
    code, _, err = _cli(capsys, "lock", "--manifest", str(manifest))
    assert code == 2
    assert err.startswith("error: artifact of kind corpus (path ") and "outside the project" in err, err
    assert str(outside) in err and len(err.strip().splitlines()) == 1
    assert "allow_outside = true" in err  # the way out is named
    code, _, err = _cli(capsys, "run", "--manifest", str(manifest))
    assert code == 2 and "outside the project" in err
    assert _store_files(root) == []


@pytest.mark.parametrize("path", ["/etc/passwd", "../../../../../../../../../../etc/passwd"])
def test_a_system_file_is_never_hashed_or_copied_into_the_store(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                 path: str) -> None:
    if not Path("/etc/passwd").is_file():
        pytest.skip("no /etc/passwd here")
    manifest = make_project(tmp_path)
    _point(manifest, "golden/corpus.jsonl", path, pin=sha256_file("/etc/passwd"))  # a pin that would verify
    code, _, err = _cli(capsys, "run", "--manifest", str(manifest))
    assert code == 2, err
    assert "artifact of kind corpus" in err and "/etc/passwd" in err and "outside the project" in err
    assert not (tmp_path / ".harness").exists()  # nothing hashed into a cache, nothing copied


def test_a_symlink_inside_validators_leading_out_is_refused(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    manifest = make_project(root)
    add_generation(root)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the store\n")
    (root / "validators" / "notes.txt").symlink_to(secret)
    code, _, err = _cli(capsys, "lock", "--manifest", str(manifest))
    assert code == 2
    assert err.startswith("error: artifact of kind validators (path 'validators'): ")
    assert f"{root / 'validators' / 'notes.txt'} is a symlink to {secret}" in err
    code, _, err = _cli(capsys, "run", "--manifest", str(manifest))
    assert code == 2 and "is a symlink to" in err
    assert not any(b"not for the store" in p.read_bytes() for p in _store_files(root))


def test_allow_outside_opts_in_and_the_snapshot_holds_the_content(project: tuple[Path, Path, Path],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    root, manifest, outside = project
    _point(manifest, "golden/corpus.jsonl", str(outside), extra="allow_outside = true\n")
    code, _, err = _cli(capsys, "lock", "--manifest", str(manifest))
    assert code == 0, err
    code, out, err = _cli(capsys, "run", "--manifest", str(manifest), "--json")
    assert code == 0, err
    assert json.loads(out)["counts"]["cases"] == 4
    (snap,) = [p for p in _store_files(root) if p.name == "corpus.jsonl"]
    assert snap.read_bytes() == outside.read_bytes()
    # the opt-in is recorded in the run's manifest; without it the manifest id is what it always was
    from harness.manifest import load_manifest

    assert load_manifest(manifest).manifest.artifacts["corpus"].model_dump()["allow_outside"] is True
    assert "allow_outside" not in load_manifest(manifest).manifest.artifacts["golden"].model_dump()
    code, out, _ = _cli(capsys, "schema", "manifest")
    assert "allow_outside" in json.loads(out)["$defs"]["Artifact"]["properties"]


def test_the_project_is_the_git_work_tree_or_the_harness_manifest_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A variant manifest in a sub-folder of the project may use ../golden (the folder with harness.toml).
    root = tmp_path / "proj"
    root.mkdir()
    make_project(root)
    (root / "variants").mkdir()
    variant = root / "variants" / "v2.toml"
    variant.write_text((root / "harness.toml").read_text().replace('path = "', 'path = "../'))
    code, _, err = _cli(capsys, "lock", "--manifest", str(variant))
    assert code == 0, err
    # Below the top of a git work tree, shared data elsewhere in the tree is inside the project ...
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    shutil.copytree(root / "golden", repo / "data")
    evals = repo / "evals"
    make_project(evals, lock=False)
    manifest = evals / "harness.toml"
    manifest.write_text(manifest.read_text().replace('path = "golden/', 'path = "../data/'))
    code, _, err = _cli(capsys, "lock", "--manifest", str(manifest))
    assert code == 0, err
    code, _, err = _cli(capsys, "run", "--manifest", str(manifest))
    assert code == 0, err
    # ... but leaving the work tree is not, and neither is leaving a project that is not in one.
    manifest.write_text(manifest.read_text().replace('path = "../data/corpus', 'path = "../../proj/golden/corpus'))
    code, _, err = _cli(capsys, "lock", "--manifest", str(manifest))
    assert code == 2 and f"outside the project ({repo})" in err, err
    variant.write_text(variant.read_text().replace('path = "../golden/corpus', 'path = "../../repo/data/corpus'))
    code, _, err = _cli(capsys, "lock", "--manifest", str(variant))
    assert code == 2 and f"outside the project ({root})" in err, err


def test_symlinks_inside_the_project_are_followed_and_pinned(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    manifest = make_project(root)
    add_generation(root)
    shared = root / "shared-schemas"
    shared.mkdir()
    (shared / "answer.schema.json").write_text('{"type": "object"}\n')
    (root / "validators" / "shared").symlink_to(shared, target_is_directory=True)
    (root / "validators" / "loop").symlink_to(root / "validators", target_is_directory=True)  # a cycle ends
    code, _, err = _cli(capsys, "lock", "--manifest", str(manifest))
    assert code == 0, err
    code, _, err = _cli(capsys, "verify", "--manifest", str(manifest))
    assert code == 0, err
    # The linked folder is part of the validators' pin: editing a file in it is a mismatch.
    (shared / "answer.schema.json").write_text('{"type": "array"}\n')
    code, _, err = _cli(capsys, "verify", "--manifest", str(manifest))
    assert code == 1 and "MISMATCH validators" in err, err
    code, _, err = _cli(capsys, "lock", "--manifest", str(manifest))
    assert code == 0, err
    code, _, err = _cli(capsys, "run", "--manifest", str(manifest))
    assert code == 0, err
    snapshot = [p for p in _store_files(root) if p.name == "answer.schema.json"]
    assert [p.read_text() for p in snapshot] == ['{"type": "array"}\n']
    assert not any(p.is_symlink() for p in (root / ".harness" / "store").rglob("*"))
    assert os.path.islink(root / "validators" / "shared")  # the project itself is untouched
