"""Stored state is checked, not trusted: the file-hash memo, cache entries, the cache file, stored indexes
and run files (issue 10). Every damage ends in a recomputation (counted) or one error line, exit 2 (or 1
for `harness cache check`), never exit 3."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import make_project
from tests.reliability.clirun import cli_in_process

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
ENV.pop("HARNESS_HOME", None)
ENV.pop("HARNESS_CACHE_DIR", None)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def subprocess_harness(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Result:
    """The CLI as a user starts it, in its own process."""
    out = subprocess.run([sys.executable, "-m", "harness.cli", "-q", *args], cwd=cwd, capture_output=True,
                         text=True, env={**ENV, **(env or {})}, timeout=120)
    return Result(out.returncode, out.stdout, out.stderr)


_MONKEYPATCH: pytest.MonkeyPatch | None = None
_CAPSYS: pytest.CaptureFixture[str] | None = None


@pytest.fixture(autouse=True)
def _in_process_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    global _MONKEYPATCH, _CAPSYS
    for name in ("HARNESS_HOME", "HARNESS_CACHE_DIR", "HARNESS_CACHE_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    _MONKEYPATCH, _CAPSYS = monkeypatch, capsys
    yield
    _MONKEYPATCH = _CAPSYS = None


def harness(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Result:
    """The CLI's entry point (harness.cli.main: exit codes and error lines as a user sees them), run in this
    process to keep the tests fast."""

    assert _MONKEYPATCH is not None and _CAPSYS is not None
    with _MONKEYPATCH.context() as m:
        m.chdir(cwd)
        for k, v in (env or {}).items():
            m.setenv(k, v)
        code, out, err = cli_in_process(_CAPSYS, *args)
    return Result(code, out, err)


def one_error_line(out: Result, code: int = 2) -> str:
    assert out.returncode == code, out.stdout + out.stderr
    assert "internal error" not in out.stderr and "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    make_project(root)
    return root


@pytest.fixture
def ran(project: Path) -> Path:
    out = harness("run", "--json", cwd=project)
    assert out.returncode == 0, out.stderr
    return project


def cache_db(root: Path) -> Path:
    return root / ".harness" / "cache" / "cache.sqlite"


@pytest.fixture
def raw_db(ran: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(cache_db(ran))
    yield db
    db.close()


# --- the file-hash memo -------------------------------------------------------------------------------


def test_run_refuses_a_same_size_edit_with_its_mtime_restored_as_verify_does(project: Path) -> None:
    golden = project / "golden" / "cases.jsonl"
    old = time.time_ns() - 3600 * 10**9  # an hour ago: old enough for the memo to trust its entry
    os.utime(golden, ns=(old, old))
    assert harness("run", cwd=project).returncode == 0
    assert harness("run", cwd=project).returncode == 0  # with a cache now: memoises the golden file's hash
    with sqlite3.connect(cache_db(project)) as db:
        assert db.execute("SELECT COUNT(*) FROM hashes").fetchone()[0] >= 3
    st = golden.stat()
    text = golden.read_text()
    edited = text.replace("how often do backups run", "how often do backups RUN")
    assert len(edited) == len(text) and edited != text
    golden.write_text(edited)
    os.utime(golden, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert golden.stat().st_size == st.st_size and golden.stat().st_mtime_ns == st.st_mtime_ns

    verify = harness("verify", "--json", cwd=project)
    assert verify.returncode == 1
    (mismatch,) = json.loads(verify.stdout)["mismatches"]
    run = harness("run", cwd=project)
    line = one_error_line(run)
    assert "artifact 'golden'" in line and "does not match its pin" in line
    assert f"actual {mismatch['actual']}" in line


def test_memo_does_not_trust_an_entry_as_new_as_its_hashing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Git's racily-clean rule: on a file system whose timestamps cannot tell two writes apart, a file whose
    mtime is not older than the memo entry is hashed again; an old one is not."""
    import harness.manifest as manifest
    from harness.cache import Cache
    from harness.manifest import HashMemo

    target = tmp_path / "prompt.txt"
    target.write_text("aaaa")
    real_stat = os.stat
    frozen = SimpleNamespace(st_dev=1, st_ino=2, st_size=4, st_mtime_ns=time.time_ns(), st_ctime_ns=time.time_ns())

    def fake_stat(path: object, *args: object, **kwargs: object) -> object:
        return frozen if Path(str(path)) == target else real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(manifest.os, "stat", fake_stat)
    cache = Cache(tmp_path / "cache.sqlite")
    memo = HashMemo(cache)
    first = memo.file(target)
    target.write_text("bbbb")  # same size, and the (frozen) stat data does not change
    assert memo.file(target) == manifest.sha256_file(target) != first

    hashed: list[Path] = []
    monkeypatch.setattr(manifest, "sha256_file", lambda p: hashed.append(p) or "0" * 64)
    frozen.st_mtime_ns = frozen.st_ctime_ns = time.time_ns() - 60 * 10**9  # a minute old
    assert memo.file(target) == "0" * 64 and len(hashed) == 1  # hashed, and memoised as trustworthy now
    assert memo.file(target) == "0" * 64 and len(hashed) == 1  # ... so not hashed again
    cache.close()


# --- cache entries: checksums, decoding, old files ----------------------------------------------------


def test_damaged_entries_are_misses_and_counted(tmp_path: Path) -> None:
    import numpy as np

    from harness.cache import Cache, checksum

    path = tmp_path / "cache.sqlite"
    cache = Cache(path)
    vec = np.arange(4, dtype=np.float32).tobytes()
    cache.put_many("embeddings", {"a": vec, "b": vec, "c": vec, "d": vec, "e": vec})
    cache.put_many_json("rankings", {"r1": [["d1", 0.5]], "r2": [["d2", 0.25]]})
    cache.close()

    db = sqlite3.connect(path)
    db.execute("UPDATE embeddings SET v = ? WHERE k = 'a'", (vec[:-1] + b"\x01",))  # bytes changed, checksum kept
    short = vec[:8]
    db.execute("UPDATE embeddings SET v = ?, c = ? WHERE k = 'b'", (short, checksum("embeddings", "b", short)))
    nan = np.array([np.nan, 0, 0, 0], dtype=np.float32).tobytes()
    db.execute("UPDATE embeddings SET v = ?, c = ? WHERE k = 'c'", (nan, checksum("embeddings", "c", nan)))
    bad_json = b'[["d2", 0.2'
    db.execute("UPDATE rankings SET v = ?, c = ? WHERE k = 'r2'", (bad_json, checksum("rankings", "r2", bad_json)))
    shape = b'{"d1": 0.5}'  # decodes, but is not a ranking
    db.execute("INSERT INTO rankings VALUES ('r3', ?, ?)", (shape, checksum("rankings", "r3", shape)))
    db.commit()
    db.close()

    cache = Cache(path)
    assert set(cache.get_many("embeddings", ["a", "b", "c", "d", "e"])) == {"d", "e"}  # b: not the common length
    assert cache.get_many_json("rankings", ["r1", "r2", "r3"]) == {"r1": [["d1", 0.5]]}
    assert cache.damaged == {"embeddings": 3, "rankings": 2} and cache.damaged_total == 5
    assert (cache.hits, cache.misses) == (3, 5)
    assert set(cache.get_many("embeddings", ["b", "d"])) == set()  # two lengths, one each: neither is trusted
    assert set(cache.get_many("embeddings", ["b", "d"], valid=lambda v: len(v) == 16)) == {"d"}
    cache.damaged.clear()
    cache.put_many_json("rankings", {"r2": [["d2", 0.25]]})  # the recomputed value replaces the damaged row
    assert cache.get_json("rankings", "r2") == [["d2", 0.25]]
    cache.close()


def test_a_cache_from_before_checksums_is_migrated_and_its_rows_recomputed(tmp_path: Path) -> None:
    from harness.cache import NAMESPACES, Cache

    path = tmp_path / "cache.sqlite"
    db = sqlite3.connect(path)
    for ns in NAMESPACES:
        db.execute(f"CREATE TABLE {ns} (k TEXT PRIMARY KEY, v BLOB NOT NULL)")
    db.execute("INSERT INTO rankings VALUES ('r1', ?)", (b'[["d1", 0.5]]',))
    db.commit()
    db.close()

    cache = Cache(path)
    assert cache.get_many_json("rankings", ["r1"]) == {}
    assert cache.unchecked == {"rankings": 1} and cache.damaged_total == 0
    cache.put_many_json("rankings", {"r1": [["d1", 0.5]]})
    assert cache.get_many_json("rankings", ["r1"]) == {"r1": [["d1", 0.5]]}
    cache.close()
    out = harness("cache", "check", "--json", "--manifest", str(make_project(tmp_path / "p")), cwd=tmp_path,
                  env={"HARNESS_CACHE_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["namespaces"]["rankings"] == {"rows": 1, "ok": 1, "damaged": 0, "unchecked": 0,
                                                                "damaged_keys": []}


def test_a_run_recomputes_damaged_entries_and_cache_check_sees_them(ran: Path, raw_db: sqlite3.Connection) -> None:
    before = json.loads(harness("run", "--json", cwd=ran).stdout)
    raw_db.execute("UPDATE rankings SET v = CAST('not json' AS BLOB)")
    raw_db.execute("UPDATE embeddings SET v = substr(v, 1, 12) WHERE rowid IN (SELECT rowid FROM embeddings LIMIT 3)")
    raw_db.commit()

    check = harness("cache", "check", "--json", cwd=ran)
    assert check.returncode == 1, check.stdout + check.stderr
    report = json.loads(check.stdout)
    assert report["namespaces"]["rankings"]["damaged"] == 4
    assert report["namespaces"]["embeddings"]["damaged"] == 3

    assert harness("cache", "clear", "--indexes", cwd=ran).returncode == 0  # so the corpus is embedded again
    after = harness("run", "--json", cwd=ran)
    assert after.returncode == 0, after.stderr
    data = json.loads(after.stdout)
    assert data["aggregates"] == before["aggregates"]
    assert data["counts"]["retrieved"] == 4  # every damaged ranking was a miss, so retrieved again
    assert data["counts"]["embedded_texts"] == 3  # only the damaged vectors were computed again
    assert harness("cache", "check", cwd=ran).returncode == 0  # and the rewrite replaced each damaged row


# --- a damaged cache file -----------------------------------------------------------------------------


def _garbage(db: Path) -> None:
    db.write_bytes(os.urandom(4096))


def _truncated(db: Path) -> None:
    with open(db, "r+b") as fh:
        fh.truncate(db.stat().st_size // 2)


def _text(db: Path) -> None:
    db.write_text("this is not a database\n" * 100)


def _header_only(db: Path) -> None:
    db.write_bytes(db.read_bytes()[:100])


@pytest.mark.parametrize("damage", [_garbage, _truncated, _text, _header_only])
def test_a_damaged_cache_file_is_one_error_line_with_the_remedy(ran: Path, damage) -> None:  # type: ignore[no-untyped-def]
    db = cache_db(ran)
    damage(db)
    line = one_error_line((subprocess_harness if damage is _garbage else harness)("run", cwd=ran))
    assert str(db) in line and "`harness cache check`" in line and "`harness cache clear`" in line
    assert harness("lock", cwd=ran).returncode == 2  # lock memoises hashes in the same cache

    check = harness("cache", "check", cwd=ran)
    assert check.returncode == 1 and "DAMAGED" in check.stderr and "harness cache clear" in check.stderr
    assert "internal error" not in check.stderr
    clear = harness("cache", "clear", cwd=ran)
    assert clear.returncode == 0 and str(db) in clear.stdout
    assert harness("run", cwd=ran).returncode == 0
    assert harness("cache", "check", cwd=ran).returncode == 0


def test_a_cache_locked_forever_is_one_error_line_not_a_hang(ran: Path) -> None:
    holder = sqlite3.connect(cache_db(ran), isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        t0 = time.monotonic()
        line = one_error_line(subprocess_harness("run", cwd=ran, env={"HARNESS_CACHE_TIMEOUT": "0.3"}))
        assert time.monotonic() - t0 < 30
        assert "is locked by another process (waited 0.3 s)" in line and "harness cache clear" in line
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert harness("run", cwd=ran).returncode == 0


# --- the `harness cache` verbs ------------------------------------------------------------------------


def test_cache_check_repair_clear_and_stats(ran: Path, raw_db: sqlite3.Connection) -> None:
    stats = harness("cache", "stats", "--json", cwd=ran)
    assert stats.returncode == 0, stats.stderr
    counts = {ns: v["rows"] for ns, v in json.loads(stats.stdout)["namespaces"].items()}
    assert counts["rankings"] == 4 and counts["embeddings"] > 0

    raw_db.execute("UPDATE rankings SET c = 'x', v = 'text, not a blob' "
                   "WHERE rowid IN (SELECT rowid FROM rankings LIMIT 1)")
    raw_db.commit()
    check = harness("cache", "check", cwd=ran)
    assert check.returncode == 1
    assert "DAMAGED rankings     4 entries, 1 damaged" in check.stdout
    assert "harness cache check --repair" in check.stderr
    repaired = harness("cache", "check", "--repair", cwd=ran)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "rankings     3 entries, 0 damaged, 1 damaged removed" in repaired.stdout

    cleared = harness("cache", "clear", "--namespace", "rankings", cwd=ran)
    assert cleared.returncode == 0, cleared.stderr
    stats = json.loads(harness("cache", "stats", "--json", cwd=ran).stdout)["namespaces"]
    assert stats["rankings"]["rows"] == 0 and stats["embeddings"]["rows"] == counts["embeddings"]

    assert harness("cache", "clear", "--indexes", cwd=ran).returncode == 0
    assert cache_db(ran).exists() and not (ran / ".harness" / "store" / "indexes").exists()
    assert harness("cache", "clear", cwd=ran).returncode == 0
    assert not cache_db(ran).exists()
    assert "no cache yet" in harness("cache", "check", cwd=ran).stdout
    assert harness("cache", "clear", "--namespace", "nope", cwd=ran).returncode == 2


# --- stored indexes -----------------------------------------------------------------------------------


def _index_folder(root: Path) -> Path:
    (folder,) = (root / ".harness" / "store" / "indexes").iterdir()
    return folder


def _meta_list(folder: Path) -> None:
    (folder / "meta.json").write_text("[]")


def _meta_no_recipe(folder: Path) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    del meta["recipe"]
    (folder / "meta.json").write_text(json.dumps(meta))


def _faiss_garbage_resealed(folder: Path) -> None:
    import hashlib

    blob = b"not a faiss index" * 10
    (folder / "index.faiss").write_bytes(blob)
    meta = json.loads((folder / "meta.json").read_text())
    meta["index_sha256"] = hashlib.sha256(blob).hexdigest()
    (folder / "meta.json").write_text(json.dumps(meta))


def _ids_short_resealed(folder: Path) -> None:
    import hashlib

    blob = json.dumps(json.loads((folder / "ids.json").read_text())[:2]).encode()
    (folder / "ids.json").write_bytes(blob)
    meta = json.loads((folder / "meta.json").read_text())
    meta["ids_sha256"] = hashlib.sha256(blob).hexdigest()
    (folder / "meta.json").write_text(json.dumps(meta))


def _faiss_flipped(folder: Path) -> None:
    data = bytearray((folder / "index.faiss").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "index.faiss").write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_meta_list, _meta_no_recipe, _faiss_garbage_resealed, _ids_short_resealed,
                                    _faiss_flipped])
def test_a_damaged_index_is_one_error_naming_it(ran: Path, damage) -> None:  # type: ignore[no-untyped-def]
    folder = _index_folder(ran)
    damage(folder)
    with sqlite3.connect(cache_db(ran)) as db:
        db.execute("DELETE FROM rankings")  # so the run needs the index again
    line = one_error_line(harness("run", cwd=ran))
    assert str(folder) in line and "rebuild" in line
    check = harness("cache", "check", cwd=ran)
    assert check.returncode == 1 and f"DAMAGED index {folder.name[:12]}" in check.stderr
    assert harness("cache", "clear", "--indexes", cwd=ran).returncode == 0
    assert harness("run", cwd=ran).returncode == 0


# --- run files and the baseline record ------------------------------------------------------------------


def _latest_run(root: Path) -> Path:
    (folder,) = (root / ".harness" / "runs").iterdir()
    return folder / ((folder / "LATEST").read_text().strip() + ".json")


@pytest.mark.parametrize("content", [b"\xff\xfe not utf-8", b"[1, 2, 3]", b'{"format_version": 1, "run_id": 7}',
                                     b'{"format_version": 1', b"[" * 100_000])
def test_a_damaged_run_file_is_one_error_naming_it(ran: Path, content: bytes) -> None:
    run_file = _latest_run(ran)
    run_file.write_bytes(content)
    for args in (("baseline", "promote"), ("diff", run_file.stem, run_file.stem), ("report", str(run_file))):
        line = one_error_line(harness(*args, cwd=ran))
        assert str(run_file) in line, args


def test_a_damaged_pointer_or_baseline_record_is_one_error_naming_it(ran: Path) -> None:
    assert harness("baseline", "promote", cwd=ran).returncode == 0
    record = ran / ".harness" / "baseline.json"
    record.write_bytes(b"\x00\x01garbage")
    line = one_error_line(harness("baseline", "show", cwd=ran))
    assert str(record) in line and "harness baseline promote" in line
    # a record that parses but lacks a field or has one of the wrong type: the same one line, for rollback too
    good = {"run_id": _latest_run(ran).stem, "path": 7}
    record.write_text(json.dumps(good))
    for args in (("baseline", "show"), ("rollback",), ("gate",)):
        line = one_error_line(harness(*args, cwd=ran))
        assert f"{record}: field 'path': damaged baseline record" in line, (args, line)
    record.write_text(json.dumps({"path": "runs/x.json"}))
    assert "field 'run_id'" in one_error_line(harness("rollback", cwd=ran))
    record.unlink()

    pointer = _latest_run(ran).parent / "LATEST"
    pointer.write_bytes(b"../../../../etc/passwd\n")
    line = one_error_line(harness("baseline", "promote", cwd=ran))
    assert str(pointer) in line and "not a run id" in line


def test_a_damaged_old_run_among_many_does_not_block_the_latest(ran: Path) -> None:
    first = _latest_run(ran)
    assert harness("run", cwd=ran).returncode == 0
    first.write_bytes(b"\xff garbage")
    assert _latest_run(ran) != first
    out = harness("baseline", "promote", cwd=ran)
    assert out.returncode == 0, out.stderr
    assert harness("gate", cwd=ran).returncode in (0, 1)
    line = one_error_line(harness("diff", first.stem, cwd=ran))
    assert str(first) in line


# --- the cache file's place, its timeout, and the verbs without a manifest ------------------------------


def test_a_directory_where_the_cache_file_should_be_is_damaged_and_clear_removes_it(project: Path) -> None:
    db = cache_db(project)
    db.mkdir(parents=True)
    run = one_error_line(harness("run", cwd=project))
    assert "damaged" in run and "harness cache clear" in run
    check = harness("cache", "check", cwd=project)
    assert check.returncode == 1, check.stdout + check.stderr
    assert "DAMAGED" in check.stderr and "directory" in check.stderr and "no cache yet" not in check.stdout
    assert json.loads(harness("cache", "check", "--json", cwd=project).stdout)["ok"] is False
    assert one_error_line(harness("cache", "stats", cwd=project)).count(str(db)) == 1
    cleared = harness("cache", "clear", cwd=project)
    assert cleared.returncode == 0, cleared.stderr
    assert f"removed {db}" in cleared.stdout and not db.exists()
    assert harness("run", cwd=project).returncode == 0


def test_a_directory_holding_files_in_the_cache_files_place_is_named_not_deleted(project: Path) -> None:
    db = cache_db(project)
    db.mkdir(parents=True)
    (db / "precious.txt").write_text("mine")
    line = one_error_line(harness("cache", "clear", cwd=project))
    assert str(db) in line and "rm -r" in line
    assert (db / "precious.txt").read_text() == "mine"


@pytest.mark.parametrize("value", ["abc", "-1", "nan"])
def test_a_bad_cache_timeout_is_one_error_line(project: Path, value: str) -> None:
    for args in (("run",), ("cache", "check")):
        line = one_error_line(harness(*args, cwd=project, env={"HARNESS_CACHE_TIMEOUT": value}))
        assert "HARNESS_CACHE_TIMEOUT" in line and repr(value) in line, args
    assert not cache_db(project).exists()


def test_cache_verbs_work_from_harness_home_without_a_manifest(ran: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    home = {"HARNESS_HOME": str(ran / ".harness")}
    check = harness("cache", "check", cwd=elsewhere, env=home)
    assert check.returncode == 0, check.stderr
    assert "rankings     4 entries" in check.stdout
    assert harness("cache", "stats", "--json", cwd=elsewhere, env=home).returncode == 0
    only_cache = {"HARNESS_CACHE_DIR": str(ran / ".harness" / "cache")}
    assert harness("cache", "check", cwd=elsewhere, env=only_cache).returncode == 0
    cleared = harness("cache", "clear", cwd=elsewhere, env=only_cache)
    assert cleared.returncode == 0 and not cache_db(ran).exists()
    assert (ran / ".harness" / "store" / "indexes").is_dir()  # the home is not known: its indexes are kept
    assert harness("cache", "clear", cwd=elsewhere, env=home).returncode == 0
    assert not (ran / ".harness" / "store" / "indexes").exists()
    assert harness("cache", "check", cwd=elsewhere).returncode == 2  # no manifest, no home: exit 2 as before


# --- rollback edits the manifest in place ---------------------------------------------------------------


def test_rollback_keeps_the_manifests_comments_and_inline_tables_and_verifies(project: Path) -> None:
    from tests.conftest import add_generation

    manifest = add_generation(project)
    text = manifest.read_text().replace("[artifacts.generator]",
                                        "# the generator: keep this note\n[artifacts.generator]")
    text = text.replace('path = "indexes/flat.toml"', 'path = "indexes/flat.toml"  # the recipe file')
    manifest.write_text(text)
    assert harness("lock", cwd=project).returncode == 0
    before = manifest.read_text()
    assert harness("run", cwd=project).returncode == 0
    assert harness("baseline", "promote", cwd=project).returncode == 0

    (project / "indexes" / "flat.toml").write_text('type = "flat"\nmetric = "ip"\n')
    prompt = project / "prompts" / "answer.toml"
    prompt.write_text(prompt.read_text().replace("Q: ", "Question: "))
    assert harness("lock", cwd=project).returncode == 0
    assert manifest.read_text() != before
    out = harness("rollback", cwd=project)
    assert out.returncode == 0, out.stderr
    assert "index" in out.stdout and "prompt" in out.stdout
    after = manifest.read_text()
    assert after == before, after  # only the pins changed back: comments, order and inline tables as they were
    assert "# the generator: keep this note\n[artifacts.generator]" in after
    assert "params = { backend" in after and "[artifacts.embedding.params]" not in after
    assert harness("verify", cwd=project).returncode == 0


def test_rollback_keeps_a_yaml_manifests_comments_and_verifies(project: Path) -> None:
    import tomllib

    import yaml

    data = tomllib.loads((project / "harness.toml").read_text())
    (project / "harness.toml").unlink()
    for art in data["artifacts"].values():
        art.pop("sha256", None)
    manifest = project / "harness.yaml"
    text = yaml.safe_dump(data, sort_keys=False)
    text = "# our release manifest: keep this note\n" + text.replace(
        "  index:\n", "  # the index recipe, reviewed by the search team\n  index:\n")
    manifest.write_text(text)
    assert harness("lock", cwd=project).returncode == 0
    before = manifest.read_text()
    assert "# the index recipe, reviewed by the search team" in before
    assert harness("run", cwd=project).returncode == 0
    assert harness("baseline", "promote", cwd=project).returncode == 0

    (project / "indexes" / "flat.toml").write_text('type = "flat"\nmetric = "ip"\n')
    assert harness("lock", cwd=project).returncode == 0
    assert manifest.read_text() != before
    out = harness("rollback", cwd=project)
    assert out.returncode == 0, out.stderr
    assert "index" in out.stdout and "comments" not in out.stderr
    assert manifest.read_text() == before  # the pin changed back; both comments and the layout as they were
    assert harness("verify", cwd=project).returncode == 0
