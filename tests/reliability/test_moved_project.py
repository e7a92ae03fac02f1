"""A moved, copied or cloned project refers to its own files: `harness rollback` restores the baseline's
pins and files inside the project and writes nothing outside it (issue 10)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import make_project
from tests.reliability.clirun import cli_in_process

GIT = ["git", "-c", "user.email=t@t", "-c", "user.name=t", "-c", "init.defaultBranch=main"]
RECIPE_V2 = 'type = "hnsw"\nM = 8\nef_search = 16\n'


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


_MONKEYPATCH: pytest.MonkeyPatch | None = None
_CAPSYS: pytest.CaptureFixture[str] | None = None


@pytest.fixture(autouse=True)
def _in_process_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    global _MONKEYPATCH, _CAPSYS
    for name in ("HARNESS_HOME", "HARNESS_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    _MONKEYPATCH, _CAPSYS = monkeypatch, capsys
    yield
    _MONKEYPATCH = _CAPSYS = None


def harness(*args: str, cwd: Path, home: Path | None = None) -> Result:
    """The CLI's entry point (harness.cli.main), in this process to keep the tests fast."""

    assert _MONKEYPATCH is not None and _CAPSYS is not None
    with _MONKEYPATCH.context() as m:
        m.chdir(cwd)
        if home is not None:
            m.setenv("HARNESS_HOME", str(home))
        code, out, err = cli_in_process(_CAPSYS, *args)
    return Result(code, out, err)


def ok(out: Result) -> Result:
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def listing(folder: Path, skip: Path) -> dict[str, bytes]:
    """Every file and folder below ``folder`` (its contents for files), leaving out ``skip``'s tree."""
    out: dict[str, bytes] = {}
    for p in sorted(folder.rglob("*")):
        if p == skip or skip in p.parents:
            continue
        out[p.relative_to(folder).as_posix()] = p.read_bytes() if p.is_file() else b"<dir>"
    return out


def promote_then_change(root: Path, home: Path | None = None) -> str:
    """Run and promote the project, then change its index recipe (re-locked and run): the state a rollback
    undoes. Returns the recipe as promoted."""
    ok(harness("run", cwd=root, home=home))
    ok(harness("baseline", "promote", cwd=root, home=home))
    recipe = root / "indexes" / "flat.toml"
    before = recipe.read_text()
    recipe.write_text(RECIPE_V2)
    ok(harness("lock", cwd=root, home=home))
    ok(harness("run", cwd=root, home=home))
    return before


def assert_rolled_back(root: Path, recipe_before: str, home: Path | None = None) -> None:
    manifest = (root / "harness.toml").read_text()
    assert 'path = "indexes/flat.toml"' in manifest and ".." not in manifest
    assert (root / "indexes" / "flat.toml").read_text() == recipe_before
    ok(harness("verify", cwd=root, home=home))
    assert not list(root.rglob("*.rollback-tmp"))


def test_rollback_in_a_moved_project_restores_it_and_writes_nothing_outside(tmp_path: Path) -> None:
    old = tmp_path / "old" / "proj"
    make_project(old)
    recipe_before = promote_then_change(old)
    record = json.loads((old / ".harness" / "baseline.json").read_text())
    assert not Path(record["path"]).is_absolute()  # the record names the run relative to the home

    new = tmp_path / "new" / "proj-moved"
    new.parent.mkdir()
    shutil.move(str(old), str(new))
    outside = listing(tmp_path, skip=new)

    out = ok(harness("rollback", cwd=new))
    assert "index" in out.stdout
    assert listing(tmp_path, skip=new) == outside  # the old folder is not re-created, nothing else appears
    assert not old.exists()
    assert_rolled_back(new, recipe_before)
    base = json.loads(ok(harness("baseline", "show", "--json", cwd=new)).stdout)
    assert base["run_id"] == record["run_id"]
    ok(harness("gate", cwd=new))  # the moved project's runs and baseline still compare


@pytest.mark.parametrize("shared_home", [False, True], ids=["harness-copied", "HARNESS_HOME"])
def test_rollback_in_a_cloned_project_leaves_the_original_alone(tmp_path: Path, shared_home: bool) -> None:
    repo = tmp_path / "repo"
    make_project(repo)
    home = tmp_path / "home" if shared_home else None
    (repo / ".gitignore").write_text(".harness/\n")
    subprocess.run([*GIT, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", "v1"], cwd=repo, check=True)
    recipe_before = promote_then_change(repo, home)
    subprocess.run([*GIT, "commit", "-qam", "v2"], cwd=repo, check=True)

    clone = tmp_path / "clone"
    subprocess.run([*GIT, "clone", "-q", str(repo), str(clone)], check=True)
    if not shared_home:
        shutil.copytree(repo / ".harness", clone / ".harness")
    outside = listing(tmp_path, skip=clone)

    out = ok(harness("rollback", cwd=clone, home=home))
    assert "index" in out.stdout
    assert listing(tmp_path, skip=clone) == outside  # the original and the shared home are untouched
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True)
    assert status.stdout == ""
    assert (repo / "indexes" / "flat.toml").read_text() == RECIPE_V2
    assert_rolled_back(clone, recipe_before, home)


def test_old_absolute_records_still_roll_back_a_moved_project(tmp_path: Path) -> None:
    """Runs and baseline records written before paths were relative name the old folder absolutely."""
    old = tmp_path / "old" / "proj"
    make_project(old)
    recipe_before = promote_then_change(old)
    home = old / ".harness"
    record_path = home / "baseline.json"
    record = json.loads(record_path.read_text())
    run_file = home / record["path"]
    record["path"] = str(run_file)
    record_path.write_text(json.dumps(record))
    run = json.loads(run_file.read_text())
    run["manifest_path"] = str(old / "harness.toml")
    run_file.write_text(json.dumps(run))

    new = tmp_path / "new" / "proj"
    new.parent.mkdir()
    shutil.move(str(old), str(new))
    outside = listing(tmp_path, skip=new)
    ok(harness("rollback", cwd=new))
    assert listing(tmp_path, skip=new) == outside
    assert_rolled_back(new, recipe_before)


def test_rollback_refuses_a_snapshot_that_does_not_match_its_pin(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    make_project(root)
    promote_then_change(root)
    record = json.loads((root / ".harness" / "baseline.json").read_text())
    pin = record["artifacts"]["index"]["sha256"]
    (root / ".harness" / "store" / "blobs" / pin / "flat.toml").write_text('type = "ivf"\nnlist = 2\n')
    manifest_before = (root / "harness.toml").read_text()
    out = harness("rollback", cwd=root)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "does not match its pin" in out.stderr and "nothing was changed" in out.stderr
    assert (root / "indexes" / "flat.toml").read_text() == RECIPE_V2
    assert (root / "harness.toml").read_text() == manifest_before


def test_rollback_refuses_to_write_a_file_outside_the_project(tmp_path: Path) -> None:
    """An artifact that opted in to living outside the project is restored by hand, never by rollback."""
    root = tmp_path / "proj"
    make_project(root)
    shared = tmp_path / "shared" / "flat.toml"
    shared.parent.mkdir()
    shared.write_text((root / "indexes" / "flat.toml").read_text())
    manifest = root / "harness.toml"
    manifest.write_text(manifest.read_text().replace('path = "indexes/flat.toml"',
                                                     'path = "../shared/flat.toml"\nallow_outside = true'))
    ok(harness("lock", cwd=root))
    ok(harness("run", cwd=root))
    ok(harness("baseline", "promote", cwd=root))
    shared.write_text(RECIPE_V2)
    ok(harness("lock", cwd=root))
    ok(harness("run", cwd=root))
    manifest_before = manifest.read_text()
    outside = listing(tmp_path, skip=root)

    out = harness("rollback", cwd=root)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "lies outside the project" in out.stderr and "nothing was changed" in out.stderr
    assert listing(tmp_path, skip=root) == outside and shared.read_text() == RECIPE_V2
    assert manifest.read_text() == manifest_before
