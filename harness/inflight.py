"""Cross-process in-flight leases, so two runs on one store pay for each call once.

Two ``harness run`` processes started at once on one project (or sharing ``HARNESS_CACHE_DIR``)
would both miss the cache for every case and both call the endpoint. Before calling, the
generation engine takes a *lease* on each cache key it is about to compute; a key leased by someone
else is not called but waited for: the waiter polls the cache until the value appears (the owner
caches it, then drops the lease), and takes the key over when the lease is gone without a value
(the owner's call failed, it was cancelled) or dead.

A lease is a row ``(key, owner, pid, host, expires)`` in its own SQLite file beside the cache
(``<cache>-inflight.sqlite``: the cache file's schema is not touched). It is *dead*, and may be
taken over, when its ``expires`` time has passed (the owner renews its leases every ``ttl_s / 3``
while it works) or, on the same host, when the owner's pid no longer exists (a SIGKILLed run is
taken over at once rather than after the TTL). Leases only decide who pays; they never decide a
result: if the lease file cannot be used, every process simply computes for itself, and a lease
file that is not a database (damaged) is replaced, since it never holds anything but leases.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

__all__ = ["DEFAULT_TTL_S", "LeaseStore", "lease_path", "pid_alive"]

DEFAULT_TTL_S = 15.0
_BATCH = 400


def lease_path(cache_path: str | Path) -> Path:
    """The lease file that belongs to the cache file ``cache_path``."""
    p = Path(cache_path)
    return p.with_name(f"{p.stem}-inflight.sqlite")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (a zombie counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OSError:
        return False
    return True


class LeaseStore:
    """Leases on cache keys in a small SQLite file, shared by every process that uses one cache.

    ``owner`` identifies this holder (pid plus a random part, so two engines in one process are
    two owners). All methods are safe to call from several threads.
    """

    def __init__(self, path: str | Path, *, ttl_s: float = DEFAULT_TTL_S) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s}")
        self.path = Path(path)
        self.ttl_s = ttl_s
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.owner = f"{self.pid}:{uuid.uuid4().hex[:12]}"
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._open()
        except sqlite3.DatabaseError:  # not a database (damaged): it only ever holds transient leases
            for p in (self.path, self.path.with_name(self.path.name + "-wal"),
                      self.path.with_name(self.path.name + "-shm")):
                p.unlink(missing_ok=True)
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS leases (k TEXT PRIMARY KEY, owner TEXT NOT NULL, pid INTEGER NOT NULL, "
                "host TEXT NOT NULL, expires REAL NOT NULL)"
            )
        except sqlite3.Error:
            db.close()
            raise
        return db

    def _dead(self, pid: int, host: str, expires: float, now: float) -> bool:
        return expires <= now or (host == self.host and pid != self.pid and not pid_alive(pid))

    def acquire(self, keys: Iterable[str]) -> set[str]:
        """Take a lease on every key that has none (or a dead one); returns the keys now held by us."""
        keys = list(dict.fromkeys(keys))
        got: set[str] = set()
        with self._lock:
            for i in range(0, len(keys), _BATCH):
                chunk = keys[i : i + _BATCH]
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    now = time.time()
                    marks = ",".join("?" * len(chunk))
                    held = {k: (o, p, h, e) for k, o, p, h, e in self._db.execute(
                        f"SELECT k, owner, pid, host, expires FROM leases WHERE k IN ({marks})", chunk)}
                    take = []
                    for k in chunk:
                        row = held.get(k)
                        if row is None or row[0] == self.owner or self._dead(row[1], row[2], row[3], now):
                            take.append(k)
                    self._db.executemany(
                        "INSERT OR REPLACE INTO leases (k, owner, pid, host, expires) VALUES (?, ?, ?, ?, ?)",
                        [(k, self.owner, self.pid, self.host, now + self.ttl_s) for k in take],
                    )
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                got.update(take)
        return got

    def renew(self, keys: Iterable[str]) -> None:
        """Push back the expiry of our leases on ``keys``."""
        keys = list(keys)
        if not keys:
            return
        with self._lock:
            expires = time.time() + self.ttl_s
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("UPDATE leases SET expires = ? WHERE k = ? AND owner = ?",
                                     [(expires, k, self.owner) for k in keys])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def release(self, keys: Iterable[str]) -> None:
        """Drop our leases on ``keys`` (other owners' leases are left alone)."""
        keys = list(keys)
        if not keys:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("DELETE FROM leases WHERE k = ? AND owner = ?", [(k, self.owner) for k in keys])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def holders(self) -> dict[str, tuple[str, int, float]]:
        """Every live lease as ``key -> (owner, pid, expires)`` (for tests and diagnostics)."""
        now = time.time()
        with self._lock:
            rows = list(self._db.execute("SELECT k, owner, pid, host, expires FROM leases"))
        return {k: (o, p, e) for k, o, p, h, e in rows if not self._dead(p, h, e, now)}

    def close(self) -> None:
        with self._lock:
            self._db.close()
