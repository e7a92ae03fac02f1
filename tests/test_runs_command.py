"""`harness runs list / show / prune`: runs people can find, read and prune; the store lists runs by their
header (read without the cases, outputs and scores) and prune never deletes a baseline, a damaged file by
default, or anything outside the store."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from harness.errors import HarnessError, InputError
from harness.manifest import load_manifest, lock
from harness.pipeline import run_manifest
from harness.runs import RunStore, load_run, read_header
from harness.storage import Layout
from tests.conftest import make_project
from tests.reliability.clirun import cli_in_process

V1_INIT = Path(__file__).parent / "data" / "run_v1_init.json"


@pytest.fixture
def proj(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)
    manifest = make_project(tmp_path / "p")
    monkeypatch.chdir(manifest.parent)
    return manifest


def _runs(manifest: Path, n: int) -> list[str]:
    return [run_manifest(manifest).run.run_id for _ in range(n)]


def _new_version(manifest: Path, k: int) -> None:
    """Another version of the manifest (another id): the retriever's k."""
    text = manifest.read_text()
    manifest.write_text(text.replace("params = { k = 5,", f"params = {{ k = {k},"))
    lock(manifest)


def _store(manifest: Path) -> Path:
    return manifest.parent / ".harness" / "runs"


def _files(manifest: Path) -> dict[str, Path]:
    return {p.stem: p for p in _store(manifest).glob("*/*.json")}


def _size(header: Path) -> int:
    """A run's bytes: its header and its table (format 4)."""
    table = header.with_suffix(".parquet")
    return header.stat().st_size + (table.stat().st_size if table.exists() else 0)


def _list_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    code, out, err = cli_in_process(capsys, "runs", "list", "--json", *args)
    assert code == 0, err
    return json.loads(out)


# --- the store: header first, read cheaply ---------------------------------------------------------------


def test_a_run_file_begins_with_its_header_and_the_header_matches_the_run(proj: Path) -> None:
    report = run_manifest(proj)
    keys = list(json.loads(report.path.read_text()))
    assert keys[:9] == ["format_version", "run_id", "created_at", "manifest_id", "manifest_path", "counts",
                        "stage_seconds", "aggregates", "manifest"]
    assert set(keys[9:]) == {"environment", "scorers", "rows", "table", "table_sha256"}  # the rest: its table
    header, run = read_header(report.path), load_run(report.path)
    assert header.aggregates == run.aggregates and header.manifest == run.manifest
    assert (header.run_id, header.manifest_id, header.counts) == (run.run_id, run.manifest_id, run.counts)


def test_the_header_is_read_without_the_rest_of_the_file(proj: Path) -> None:
    path = run_manifest(proj).path
    text = path.read_text()
    cut = text.index('\n "environment"')
    # the body after the header made unreadable (but the file still ends its object): the header reads,
    # the run does not, so listing did not decode the body
    path.write_text(text[:cut] + '\n "environment": {"x": [1, 2, oops}\n}\n')
    assert read_header(path).run_id == path.stem
    with pytest.raises(InputError, match="malformed run file"):
        load_run(path)


@pytest.mark.parametrize("where", ["header"])  # the table: tests/test_run_store_columnar.py
def test_a_number_that_is_not_finite_is_refused_naming_its_field(proj: Path, where: str) -> None:
    path = run_manifest(proj).path
    text = path.read_text()
    if where == "header":
        text = re.sub(r'"mean": [0-9.e-]+', '"mean": 1e999', text, count=1)  # parses as infinity
    else:
        text = re.sub(r'"value": [0-9.e-]+', '"value": -1e999', text, count=1)
    path.write_text(text)
    not_finite = r"field '(aggregates|scores)\.[^']*': damaged run file: -?inf is not a finite number"
    with pytest.raises(InputError, match=not_finite):
        load_run(path)
    if where == "header":
        with pytest.raises(InputError, match="is not a finite number"):
            read_header(path)
    else:
        assert read_header(path).run_id == path.stem  # the body is checked when the run is loaded


def test_an_old_run_file_with_its_header_last_reads_through_the_migration(tmp_path: Path) -> None:
    raw = json.loads(V1_INIT.read_text())
    assert list(raw)[-1] == "counts" and raw["format_version"] == 1  # aggregates after the scores
    header, run = read_header(V1_INIT), load_run(V1_INIT)
    assert header.aggregates == run.aggregates  # roles migrated as load_run migrates them
    assert any(s.role == "diagnostic" for s in header.aggregates.overall.values())
    assert header.manifest == run.manifest and header.counts == run.counts


def test_find_takes_a_unique_prefix_and_lists_the_candidates_of_an_ambiguous_one(proj: Path) -> None:
    ids = _runs(proj, 2)
    store = RunStore(_store(proj))
    assert store.find(ids[0]).stem == ids[0] and store.find(ids[1]).stem == ids[1]
    with pytest.raises(HarnessError, match=r"2 runs match id '\d{8}': ") as err:
        store.find(ids[0][:8])
    assert ids[0] in str(err.value) and ids[1] in str(err.value)


# --- list ------------------------------------------------------------------------------------------------


def test_list_shows_runs_newest_first_with_metrics_baseline_and_size(proj: Path, capsys: pytest.CaptureFixture[str]
                                                                     ) -> None:
    ids = _runs(proj, 3)
    code, _, err = cli_in_process(capsys, "baseline", "promote", ids[0], "--force")
    assert code == 0, err
    data = _list_json(capsys)
    rows = data["runs"]
    assert [r["run_id"] for r in rows] == ids[::-1]
    files = _files(proj)
    run = load_run(files[ids[0]])
    for row in rows:
        assert row["size_bytes"] == _size(files[row["run_id"]])
        assert row["manifest_name"] == "tiny" and row["cases"] == 4 and row["errors"] == 0
        assert row["metrics"] == {m: run.aggregates.overall[m].mean for m in run.aggregates.metrics("quality")}
        assert row["baseline"] == ("the promoted baseline" if row["run_id"] == ids[0] else None)
    assert data["total_bytes"] == sum(_size(p) for p in files.values())
    assert [r["run_id"] for r in _list_json(capsys, "--limit", "1")["runs"]] == [ids[-1]]
    # in a pipe: tab-separated, a header line first, the metrics named by the run
    code, out, _ = cli_in_process(capsys, "runs", "list", "-m", "ndcg@10", "-m", "nope")
    lines = out.splitlines()
    assert code == 0 and lines[0].split("\t") == ["run", "created", "manifest", "cases", "ndcg@10", "nope", "errors",
                                                  "baseline", "size", "status"]
    cells = {line.split("\t")[0]: line.split("\t") for line in lines[1:]}
    assert cells[ids[0]][4] == f"{run.aggregates.overall['ndcg@10'].mean:.4f}" and cells[ids[0]][5] == "-"
    assert cells[ids[0]][7] == "baseline" and cells[ids[1]][7] == "" and cells[ids[0]][-1] == "ok"


def test_list_on_a_terminal_is_a_table_that_never_cuts_a_run_id(proj: Path, capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    ids = _runs(proj, 2)
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich takes the output for a terminal
    monkeypatch.setenv("NO_COLOR", "1")
    for width in ("160", "90"):
        monkeypatch.setenv("COLUMNS", width)
        code, out, _ = cli_in_process(capsys, "runs", "list")
        out = re.sub(r"\x1b\[[0-9;]*m", "", out)
        assert code == 0 and "\t" not in out and "─" in out and all(run_id in out for run_id in ids)
        assert max(len(line) for line in out.splitlines()) <= int(width)


def test_list_scopes_to_the_manifest_file_across_its_versions_or_all(proj: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    first = _runs(proj, 1)
    _new_version(proj, 4)
    second = _runs(proj, 1)
    variant = proj.parent / "variants" / "alt.toml"
    variant.parent.mkdir()
    variant.write_text(proj.read_text().replace('name = "tiny"', 'name = "alt"').replace('path = "', 'path = "../'))
    lock(variant)
    other = _runs(variant, 1)
    assert {r["run_id"] for r in _list_json(capsys)["runs"]} == set(first + second)
    assert {r["run_id"] for r in _list_json(capsys, "--manifest", str(variant))["runs"]} == set(other)
    assert {r["run_id"] for r in _list_json(capsys, "--all")["runs"]} == set(first + second + other)
    code, _, err = cli_in_process(capsys, "runs", "list", "--all", "--manifest", str(variant))
    assert code == 2 and "exclude each other" in err
    fresh = proj.parent / "variants" / "never-run.toml"
    shutil.copy(variant, fresh)
    code, out, err = cli_in_process(capsys, "runs", "list", "--manifest", str(fresh))
    assert code == 0 and out.count("\n") == 1 and "3 run(s) of other manifests" in err and "--all" in err


@pytest.mark.parametrize("damage, reason", [
    (lambda t: t[: len(t) // 2], "malformed run file"),
    (lambda t: t[:-100], "cut off"),
    (lambda t: "\udcff" + t, "not UTF-8"),
    (lambda t: "[1, 2]", "Expecting an object"),
    (lambda t: t.replace('"format_version": 4', '"format_version": 9', 1), "format version 9"),
    (lambda t: t.replace('"cases": 4', '"cases": "four"', 1), "field 'counts.cases'"),
])
def test_a_damaged_run_file_is_listed_with_the_reason(proj: Path, capsys: pytest.CaptureFixture[str], damage,
                                                      reason: str) -> None:
    good, bad = _runs(proj, 2)
    path = _files(proj)[bad]
    path.write_bytes(damage(path.read_text()).encode("utf-8", "surrogateescape"))
    rows = {r["run_id"]: r for r in _list_json(capsys)["runs"]}
    assert set(rows) == {good, bad}  # listed with the runs of its manifest id, not skipped
    assert rows[good]["damaged"] is None and reason in rows[bad]["damaged"]
    code, out, _ = cli_in_process(capsys, "runs", "list")
    assert code == 0 and out.splitlines()[1].startswith(bad) and "\tdamaged: " in out.splitlines()[1]
    code, _, err = cli_in_process(capsys, "runs", "show", bad)
    assert code == 2 and str(path) in err


def test_a_misplaced_run_file_is_damaged(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (run_id,) = _runs(proj, 1)
    path = _files(proj)[run_id]
    shutil.copy(path, path.with_name("20000101T000000Z-000000.json"))
    rows = {r["run_id"]: r for r in _list_json(capsys, "--all")["runs"]}
    assert "misplaced run file" in rows["20000101T000000Z-000000"]["damaged"] and rows[run_id]["damaged"] is None


# --- show ------------------------------------------------------------------------------------------------


def test_show_summarises_one_run_by_a_unique_prefix(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = _runs(proj, 2)
    run = load_run(_files(proj)[ids[1]])
    prefix = next(ids[1][:n] for n in range(len(ids[1]) + 1) if not ids[0].startswith(ids[1][:n]))
    code, out, err = cli_in_process(capsys, "runs", "show", prefix, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["run_id"] == ids[1] and data["manifest"]["name"] == "tiny" and data["manifest"]["id"] == run.manifest_id
    assert {role: a["sha256"] for role, a in data["artifacts"].items()} == {
        role: a.sha256 for role, a in load_manifest(proj).manifest.artifacts.items()}
    assert data["counts"] == run.counts and data["stage_seconds"] == run.stage_seconds
    assert data["aggregates"] == run.aggregates.model_dump(mode="json")
    assert "topic=storage" in data["aggregates"]["segments"] and data["errors"] == {"total": 0, "by_kind": {}}
    code, out, _ = cli_in_process(capsys, "runs", "show", ids[1])
    assert code == 0 and f"run {ids[1]}" in out and "topic=storage" in out and "errors: none" in out
    code, _, err = cli_in_process(capsys, "runs", "show", ids[0][:8])
    assert code == 2 and "2 runs match" in err and ids[0] in err and ids[1] in err
    code, _, err = cli_in_process(capsys, "runs", "show", "19990101")
    assert code == 2 and "no run matching" in err


# --- prune -----------------------------------------------------------------------------------------------


def _prune(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> dict:
    got, out, err = cli_in_process(capsys, "runs", "prune", "--json", *args)
    assert got == code, err
    return json.loads(out) if code == 0 else {"err": err}


def test_prune_keeps_the_newest_n_per_manifest_id_and_the_baseline(proj: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    old = _runs(proj, 3)
    _new_version(proj, 4)
    new = _runs(proj, 3)
    assert cli_in_process(capsys, "baseline", "promote", old[0], "--force")[0] == 0
    files = _files(proj)
    before = {k: _size(p) for k, p in files.items()}
    dry = _prune(capsys, "--keep", "2", "--dry-run")
    assert set(_files(proj)) == set(files)  # nothing deleted
    report = _prune(capsys, "--keep", "2")
    assert [r["run_id"] for r in report["removed"]] == [r["run_id"] for r in dry["removed"]]
    assert dry["freed_bytes"] == report["freed_bytes"] and dry["dry_run"] and not report["dry_run"]
    kept = {old[0], old[1], old[2], new[1], new[2]}  # old[0] is the baseline, the other two the newest
    assert set(_files(proj)) == kept
    assert [r["run_id"] for r in report["removed"]] == [new[0]]
    why = {r["run_id"]: r["why"] for r in report["kept"]}
    assert "the promoted baseline" in why[old[0]] and "newest 2" in why[new[2]] and "LATEST" in why[new[2]]
    report = _prune(capsys, "--keep", "1")
    kept = {old[0], old[2], new[2]}
    assert set(_files(proj)) == kept and {r["run_id"] for r in report["removed"]} == {old[1], new[1]}
    assert report["freed_bytes"] == before[old[1]] + before[new[1]]  # no snapshot was only theirs
    assert report["snapshots"]["removed"] == []
    # the store still works: the latest run, the baseline, a diff between them
    assert RunStore(_store(proj)).latest(load_manifest(proj).id).run_id == new[2]  # type: ignore[union-attr]
    assert cli_in_process(capsys, "diff")[0] == 0


def test_prune_keeps_a_baseline_named_by_a_manifest_that_was_never_run(proj: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    old = _runs(proj, 3)
    variants = proj.parent / "variants"
    variants.mkdir()
    text = proj.read_text().replace('path = "golden/', 'path = "../golden/').replace('path = "indexes/',
                                                                                      'path = "../indexes/')
    (variants / "never-run.toml").write_text(f'baseline = "{old[0]}"\n' + text)
    report = _prune(capsys, "--keep", "1")
    assert old[0] in _files(proj) and {r["run_id"] for r in report["removed"]} == {old[1]}
    why = {r["run_id"]: r["why"] for r in report["kept"]}
    assert "never-run.toml" in why[old[0]]


def test_prune_keep_versions_drops_old_versions_their_folder_and_their_snapshots(
        proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = _runs(proj, 2)
    old_id = load_manifest(proj).id
    golden = proj.parent / "golden" / "cases.jsonl"
    old_pin = load_manifest(proj).manifest.artifacts["golden"].sha256
    golden.write_text(golden.read_text() + json.dumps({"id": "q5", "query": "roles"}) + "\n")
    lock(proj)
    new = _runs(proj, 2)
    blobs = proj.parent / ".harness" / "store" / "blobs"
    assert (blobs / str(old_pin)).is_dir()
    size = sum(p.stat().st_size for p in (blobs / str(old_pin)).rglob("*") if p.is_file())
    sizes = {k: _size(p) for k, p in _files(proj).items()}
    report = _prune(capsys, "--keep", "1", "--keep-versions", "1")
    assert set(_files(proj)) == {new[1]}
    assert not (_store(proj) / old_id).exists()  # emptied: its LATEST and folder go
    assert report["snapshots"]["removed"] == [{"pin": old_pin, "size_bytes": size}]
    assert not (blobs / str(old_pin)).exists() and len(list(blobs.iterdir())) == 3  # the others are referenced
    assert report["freed_bytes"] == sum(sizes[k] for k in (*old, new[0])) + size
    assert {r["run_id"] for r in report["removed"]} == {*old, new[0]}


def test_prune_keeps_damaged_files_and_snapshots_it_cannot_judge(proj: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    ids = _runs(proj, 3)
    damaged = _files(proj)[ids[0]]
    damaged.write_text("{")
    report = _prune(capsys, "--keep", "1")
    assert set(_files(proj)) == {ids[0], ids[2]}
    assert "damaged" in {r["run_id"]: r["why"] for r in report["kept"]}[ids[0]]
    assert "damaged run file remains" in report["snapshots"]["skipped"]
    report = _prune(capsys, "--keep", "1", "--include-damaged")
    assert set(_files(proj)) == {ids[2]} and report["removed"][0]["damaged"]


def test_prune_deletes_nothing_when_the_baseline_cannot_be_told(proj: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    ids = _runs(proj, 3)
    (proj.parent / ".harness" / "baseline.json").write_text("{not json")
    got = _prune(capsys, "--keep", "1", code=2)
    assert "baseline" in got["err"] and "nothing was deleted" in got["err"]
    proj.write_text(proj.read_text() + "\n[broken\n")
    (proj.parent / ".harness" / "baseline.json").unlink()
    got = _prune(capsys, "--keep", "1", code=2)
    assert "harness.toml" in got["err"] and "nothing was deleted" in got["err"]
    assert set(_files(proj)) == set(ids)


def test_prune_never_deletes_outside_the_store(proj: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = _runs(proj, 2)
    folder = next(_store(proj).iterdir())
    outside = tmp_path / "elsewhere"
    shutil.move(str(folder), outside)
    os.symlink(outside, folder)  # a manifest folder that leads out of the store
    got = _prune(capsys, "--keep", "0", code=2)
    assert "refusing to delete" in got["err"] and "nothing was deleted" in got["err"]
    assert {p.stem for p in outside.glob("*.json")} == set(ids)


def test_the_run_store_scan_is_the_layout_of_the_project(proj: Path) -> None:
    ids = _runs(proj, 2)
    scanned = RunStore(Layout.for_manifest(proj).runs).scan()
    assert [r.run_id for r in scanned] == ids[::-1]
    assert all(r.header is not None and r.size == _size(r.path) for r in scanned)


def test_runs_migrate_rewrites_old_files_as_format_4_loading_the_same(proj: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    lock(proj)
    [rid] = _runs(proj, 1)
    new = _files(proj)[rid]
    old = load_run(new)
    # the same run as a format-3 file (one JSON document), as stores written before format 4 hold it
    new.with_suffix(".parquet").unlink()
    new.write_text(old.model_dump_json())
    broken = new.parent / "20200101T000000Z-000000.json"
    broken.write_text("{not json")
    code, out, err = cli_in_process(capsys, "runs", "migrate", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["migrated"] == [str(new)]
    assert [d["path"] for d in report["damaged"]] == [str(broken)]
    assert json.loads(new.read_text())["format_version"] == 4 and new.with_suffix(".parquet").exists()
    assert load_run(new) == old
    assert broken.read_text() == "{not json"
    code, out, err = cli_in_process(capsys, "runs", "migrate")
    assert code == 0 and "migrated 0 run file(s)" in out and "damaged" in out, out + err
