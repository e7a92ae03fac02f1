"""One content-keyed cache for every stage (DESIGN principle 8), checked on every read.

A key is the sha256 of everything that determines the value and nothing else (see
:mod:`harness.hashing`); the store is one SQLite file with a table per namespace, so lookups of
thousands of keys are one query and writes are one transaction. Values are bytes (embeddings) or
JSON (rankings, generations, judge verdicts, file hashes).

Stored state is checked, not trusted: every row carries a checksum of (namespace, key, value). A row
whose checksum fails, whose JSON does not decode, or whose vector has an impossible byte length is
a miss: the stage recomputes it and the write replaces it. Such rows are counted per namespace in
:attr:`Cache.damaged`. Rows written before checksums existed (schema version 0: no ``c`` column) are
migrated in place and, having no checksum, are treated as misses too (counted in
:attr:`Cache.unchecked`, not as damage): they are recomputed once and then carry a checksum.

A file SQLite cannot read (garbage bytes, a truncated file, not a database, locked by another
process for longer than ``HARNESS_CACHE_TIMEOUT`` seconds, default 60) is a :class:`CacheError`: one
line naming the file and the remedy (``harness cache check`` / ``harness cache clear``), exit 2.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import CacheError

NAMESPACES = ("embeddings", "rankings", "generations", "judgments", "hashes", "lm_pmi", "signals", "groundedness")
_VALID_NS = frozenset(NAMESPACES)
JSON_NAMESPACES = frozenset(NAMESPACES) - {"embeddings"}
SCHEMA_VERSION = 3  # 1: a checksum column ``c`` in every table; 2: the monitor's ``signals`` table;
# 3: the groundedness scorer's verdicts (``groundedness``)
_BATCH = 900  # below SQLite's default host-parameter limit
DEFAULT_TIMEOUT_S = 60.0


def checksum(ns: str, key: str, value: bytes) -> str:
    """sha256 of (namespace, key, value): a value moved to another key or namespace fails it too."""
    h = hashlib.sha256()
    h.update(ns.encode("ascii") + b"\0" + key.encode("utf-8") + b"\0")
    h.update(value)
    return h.hexdigest()


def valid_vector(value: bytes) -> bool:
    """A cached embedding is a non-empty run of finite float32 values."""
    if not value or len(value) % 4:
        return False
    import numpy as np

    return bool(np.isfinite(np.frombuffer(value, dtype=np.float32)).all())


def _bad_vectors(found: Mapping[str, bytes]) -> list[str]:
    """Keys whose vectors are not finite float32 of the most common byte length among ``found`` (one call
    asks for one model's vectors; if two lengths are equally common, none is trusted)."""
    if not found:
        return []
    import numpy as np

    top = Counter(len(v) for v in found.values()).most_common(2)
    length = top[0][0] if len(top) == 1 or top[0][1] > top[1][1] else -1
    if length <= 0 or length % 4:
        return list(found)
    bad = [k for k, v in found.items() if len(v) != length]
    good = [k for k, v in found.items() if len(v) == length]
    rows = np.frombuffer(b"".join(found[k] for k in good), dtype=np.float32).reshape(len(good), length // 4)
    finite: list[bool] = np.asarray(np.isfinite(rows).all(axis=1), dtype=bool).tolist()
    return bad + [k for k, ok in zip(good, finite, strict=True) if not ok]


def decode_json(value: bytes) -> tuple[bool, Any]:
    try:
        return True, json.loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False, None


def _as_bytes(value: Any) -> bytes:
    """A stored value as bytes (a row written as text or a number by another tool still compares)."""
    return bytes(value) if isinstance(value, bytes | bytearray | memoryview) else str(value).encode("utf-8")


def _is_ranking(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(hit, list) and len(hit) == 2 and isinstance(hit[0], str)
        and isinstance(hit[1], int | float) and not isinstance(hit[1], bool) for hit in value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_verdict(value: Any) -> bool:
    """A groundedness verdict: ``{"score": number, "supported": bool, "claims": [[text, support, supported,
    evidence, [reason, ...]], ...]}``."""
    if not (isinstance(value, dict) and _is_number(value.get("score")) and isinstance(value.get("supported"), bool)
            and isinstance(value.get("claims"), list)):
        return False
    return all(isinstance(c, list) and len(c) == 5 and isinstance(c[0], str) and _is_number(c[1])
               and isinstance(c[2], bool) and isinstance(c[3], str) and isinstance(c[4], list)
               and all(isinstance(r, str) for r in c[4]) for c in value["claims"])


JSON_SHAPES: dict[str, Callable[[Any], bool]] = {
    "rankings": _is_ranking,  # [[doc id, score], ...]
    "lm_pmi": _is_number,
    "signals": _is_number,  # a production record's expensive signal (its groundedness), keyed by its content
    "groundedness": _is_verdict,  # an answer's verdict, keyed by the checker's identity, the answer and passages
    "hashes": lambda v: isinstance(v, dict) and isinstance(v.get("sha256"), str),
}


def _timeout() -> float:
    """``HARNESS_CACHE_TIMEOUT`` in seconds (default 60); anything but a finite number >= 0 is exit 2."""
    raw = os.environ.get("HARNESS_CACHE_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0:
        raise CacheError(f"HARNESS_CACHE_TIMEOUT={raw!r} is not a number of seconds >= 0",
                         hint="set it to e.g. 60, or unset it for the default of 60 s")
    return value


def _not_a_file(path: Path) -> str | None:
    """Why ``path`` cannot be the cache file although something is there (a directory, a socket, ...)."""
    if path.is_dir():
        return "a directory is where the cache file should be"
    if path.exists() and not path.is_file():
        return "something that is not a regular file is where the cache file should be"
    return None


def cache_error(path: Path, exc: BaseException, timeout_s: float | None = None) -> CacheError:
    """The one-line error for a cache file SQLite cannot use, with what to do about it."""
    text = str(exc) or type(exc).__name__
    if "locked" in text or "busy" in text:
        waited = f" (waited {timeout_s:g} s)" if timeout_s is not None else ""
        return CacheError(f"cache {path} is locked by another process{waited}",
                          hint="wait for the other harness process to finish; if none is running, "
                               "`harness cache clear` starts the cache afresh")
    return CacheError(f"cache {path} is damaged or unreadable: {text}",
                      hint="`harness cache check` reports what is wrong; `harness cache clear` starts the cache "
                           "afresh (every stage is then recomputed)")


class Cache:
    """A SQLite key-value cache, safe to share between threads of one process.

    ``hits`` and ``misses`` count keys looked up; ``damaged[ns]`` counts rows that failed their
    checksum or did not decode and were therefore returned as misses (so recomputed by the caller);
    ``unchecked[ns]`` counts rows from before checksums, also returned as misses.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.timeout_s = _timeout()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.damaged: Counter[str] = Counter()
        self.unchecked: Counter[str] = Counter()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cache folder {self.path.parent} cannot be created: {exc}") from None
        self._db: sqlite3.Connection | None = None
        problem = _not_a_file(self.path)
        if problem is not None:
            raise cache_error(self.path, OSError(problem))
        try:
            with self._guard():
                self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=self.timeout_s)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                migrate(self._db)
        except CacheError:
            self.close()
            raise

    @property
    def damaged_total(self) -> int:
        return sum(self.damaged.values())

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            if self._db is not None and not isinstance(exc, sqlite3.OperationalError):
                with suppress(sqlite3.Error):
                    self._db.close()
                self._db = None
            raise cache_error(self.path, exc, self.timeout_s) from None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise CacheError(f"cache {self.path} is closed or was found damaged",
                             hint="`harness cache check`, then `harness cache clear` if it is damaged")
        return self._db

    @staticmethod
    def _table(ns: str) -> str:
        if ns not in _VALID_NS:
            raise ValueError(f"unknown cache namespace {ns!r}; expected one of {sorted(_VALID_NS)}")
        return ns

    def _fetch(self, ns: str, keys: list[str]) -> dict[str, bytes]:
        """Rows whose checksum holds; the others are counted (damaged / unchecked) and left out."""
        table = self._table(ns)
        found: dict[str, bytes] = {}
        with self._lock, self._guard():
            db = self._conn()
            for i in range(0, len(keys), _BATCH):
                chunk = keys[i : i + _BATCH]
                marks = ",".join("?" * len(chunk))
                for k, v, c in db.execute(f"SELECT k, v, c FROM {table} WHERE k IN ({marks})", chunk):
                    value = _as_bytes(v)
                    if c is None:
                        self.unchecked[ns] += 1
                    elif c != checksum(ns, k, value):
                        self.damaged[ns] += 1
                    else:
                        found[k] = value
        return found

    def get_many(self, ns: str, keys: Iterable[str], *,
                 valid: Callable[[bytes], bool] | None = None) -> dict[str, bytes]:
        """Values found and intact. ``valid`` adds a check of the caller's (e.g. the vector's byte length);
        for embeddings, values must be finite float32 and of one length (the most common one among
        those found: one call asks for one model's vectors)."""
        keys = list(dict.fromkeys(keys))
        found = self._fetch(ns, keys)
        if valid is not None:
            bad = [k for k, v in found.items() if not valid(v)]
        elif ns == "embeddings":
            bad = _bad_vectors(found)
        else:
            bad = []
        for k in bad:
            del found[k]
        self.damaged[ns] += len(bad)
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def put_many(self, ns: str, items: Mapping[str, bytes]) -> None:
        table = self._table(ns)
        rows = [(k, v, checksum(ns, k, v)) for k, v in items.items()]
        with self._lock, self._guard():
            db = self._conn()
            db.executemany(f"INSERT OR REPLACE INTO {table} (k, v, c) VALUES (?, ?, ?)", rows)
            db.commit()

    def get_json(self, ns: str, key: str) -> Any | None:
        return self.get_many_json(ns, [key]).get(key)

    def get_many_json(self, ns: str, keys: Iterable[str], *,
                      valid: Callable[[Any], bool] | None = None) -> dict[str, Any]:
        """Decoded values found and intact; a value that does not decode, or does not have its namespace's
        shape (``valid``, default: :data:`JSON_SHAPES`), is a damaged miss."""
        keys = list(dict.fromkeys(keys))
        shape = valid or JSON_SHAPES.get(ns)
        out: dict[str, Any] = {}
        for k, raw in self._fetch(ns, keys).items():
            ok, value = decode_json(raw)
            if ok and (shape is None or shape(value)):
                out[k] = value
            else:
                self.damaged[ns] += 1
        self.hits += len(out)
        self.misses += len(keys) - len(out)
        return out

    def put_json(self, ns: str, key: str, value: Any) -> None:
        self.put_many_json(ns, {key: value})

    def put_many_json(self, ns: str, items: Mapping[str, Any]) -> None:
        self.put_many(ns, {k: json.dumps(v, sort_keys=True).encode("utf-8") for k, v in items.items()})

    def count(self, ns: str) -> int:
        with self._lock, self._guard():
            (n,) = self._conn().execute(f"SELECT COUNT(*) FROM {self._table(ns)}").fetchone()
        return int(n)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                with suppress(sqlite3.Error):
                    self._db.close()
                self._db = None


def migrate(db: sqlite3.Connection) -> None:
    """Create missing tables and add the checksum column to tables from schema version 0."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version >= SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then see version 1
    try:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version < SCHEMA_VERSION:
            for ns in NAMESPACES:
                db.execute(f"CREATE TABLE IF NOT EXISTS {ns} (k TEXT PRIMARY KEY, v BLOB NOT NULL, c TEXT)")
                columns = {row[1] for row in db.execute(f"PRAGMA table_info({ns})")}
                if "c" not in columns:
                    db.execute(f"ALTER TABLE {ns} ADD COLUMN c TEXT")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


# --- checking and clearing (the `harness cache` verbs) ------------------------------------------------


@dataclass
class NamespaceReport:
    rows: int = 0
    ok: int = 0
    damaged: int = 0
    unchecked: int = 0
    bytes: int = 0
    damaged_keys: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    path: Path
    exists: bool
    error: str | None = None  # the file is not usable at all (not a database, locked, ...)
    integrity: list[str] = field(default_factory=list)  # PRAGMA integrity_check lines other than "ok"
    namespaces: dict[str, NamespaceReport] = field(default_factory=dict)

    @property
    def damaged(self) -> bool:
        return bool(self.error or self.integrity or any(r.damaged for r in self.namespaces.values()))


def _row_ok(ns: str, key: str, value: bytes) -> bool:
    if ns == "embeddings":
        return valid_vector(value)
    ok, decoded = decode_json(value)
    shape = JSON_SHAPES.get(ns)
    return ok and (shape is None or shape(decoded))


def check(path: str | Path, *, full: bool = True, max_keys: int = 20) -> CheckReport:
    """SQLite's integrity check plus every row's checksum and decoding, per namespace; never raises
    for a damaged file (the damage is the report)."""
    path = Path(path)
    timeout = _timeout()
    report = CheckReport(path=path, exists=path.exists() or path.is_symlink())
    if not report.exists:
        return report
    problem = _not_a_file(path)
    if problem is not None:
        report.error = problem
        return report
    try:
        db = sqlite3.connect(str(path), timeout=timeout)
    except sqlite3.Error as exc:
        report.error = str(exc) or type(exc).__name__
        return report
    try:
        rows = [r[0] for r in db.execute("PRAGMA integrity_check" if full else "PRAGMA quick_check")]
        report.integrity = [str(r) for r in rows if r != "ok"]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for ns in NAMESPACES:
            ns_report = report.namespaces.setdefault(ns, NamespaceReport())
            if ns not in tables:
                continue
            columns = {row[1] for row in db.execute(f"PRAGMA table_info({ns})")}
            select = f"SELECT k, v, {'c' if 'c' in columns else 'NULL'} FROM {ns}"
            for k, v, c in db.execute(select):
                value = _as_bytes(v)
                ns_report.rows += 1
                ns_report.bytes += len(value)
                if c is None:
                    ns_report.unchecked += 1
                elif c != checksum(ns, str(k), value) or not _row_ok(ns, str(k), value):
                    ns_report.damaged += 1
                    if len(ns_report.damaged_keys) < max_keys:
                        ns_report.damaged_keys.append(str(k))
                else:
                    ns_report.ok += 1
    except sqlite3.Error as exc:
        report.error = str(exc) or type(exc).__name__
    finally:
        db.close()
    return report


def repair(path: str | Path) -> dict[str, int]:
    """Delete the rows that fail their checksum or do not decode (they would be recomputed anyway)."""
    report = check(path)
    if report.error or report.integrity:
        raise cache_error(Path(path), sqlite3.DatabaseError(report.error or report.integrity[0]))
    cache = Cache(path)
    removed: dict[str, int] = {}
    try:
        with cache._lock, cache._guard():
            db = cache._conn()
            for ns in NAMESPACES:
                bad = [k for k, v, c in db.execute(f"SELECT k, v, c FROM {ns} WHERE c IS NOT NULL")
                       if c != checksum(ns, str(k), _as_bytes(v)) or not _row_ok(ns, str(k), _as_bytes(v))]
                for i in range(0, len(bad), _BATCH):
                    chunk = bad[i : i + _BATCH]
                    db.execute(f"DELETE FROM {ns} WHERE k IN ({','.join('?' * len(chunk))})", chunk)
                if bad:
                    removed[ns] = len(bad)
            db.commit()
    finally:
        cache.close()
    return removed


def clear(path: str | Path, namespaces: Iterable[str] = ()) -> list[str]:
    """Remove the whole cache file (with its WAL and shared-memory files), or only some namespaces' rows.
    Removing the file works whatever state it is in; clearing namespaces needs a readable database."""
    path = Path(path)
    chosen = list(dict.fromkeys(namespaces))
    for ns in chosen:
        Cache._table(ns)
    if not chosen:
        removed = []
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"),
                  path.with_name(path.name + "-journal")):
            if not (p.exists() or p.is_symlink()):
                continue
            try:
                if p.is_dir() and not p.is_symlink():
                    if any(p.iterdir()):
                        raise CacheError(f"{p} is a directory holding files where the cache file should be; "
                                         "it was left alone",
                                         hint=f"look at it and remove it yourself (rm -r {p}), then run again")
                    p.rmdir()  # an empty directory in the cache file's place: nothing is lost
                else:
                    p.unlink()
            except OSError as exc:
                raise CacheError(f"cannot remove {p}: {exc.strerror or exc}",
                                 hint=f"remove it yourself (rm -r {p})") from None
            removed.append(str(p))
        return removed
    if not (path.exists() or path.is_symlink()):
        return []
    problem = _not_a_file(path)
    if problem is not None:
        raise CacheError(f"cache {path}: {problem}", hint="`harness cache clear` (no --namespace) removes it")
    cache = Cache(path)
    try:
        with cache._lock, cache._guard():
            db = cache._conn()
            for ns in chosen:
                db.execute(f"DELETE FROM {ns}")
            db.commit()
    finally:
        cache.close()
    return [f"{path}:{ns}" for ns in chosen]
