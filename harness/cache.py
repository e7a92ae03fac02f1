"""One content-keyed cache for every stage (DESIGN principle 8).

A key is the sha256 of everything that determines the value and nothing else (see
:mod:`harness.hashing`); the store is one SQLite file with a table per namespace, so lookups of
thousands of keys are one query and writes are one transaction. Values are bytes (embeddings) or
JSON (rankings, generations, judge verdicts).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

_VALID_NS = frozenset({"embeddings", "rankings", "generations", "judgments", "hashes", "lm_pmi"})
_BATCH = 900  # below SQLite's default host-parameter limit


class Cache:
    """A SQLite key-value cache, safe to share between threads of one process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        for ns in _VALID_NS:
            self._db.execute(f"CREATE TABLE IF NOT EXISTS {ns} (k TEXT PRIMARY KEY, v BLOB NOT NULL)")
        self._db.commit()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _table(ns: str) -> str:
        if ns not in _VALID_NS:
            raise ValueError(f"unknown cache namespace {ns!r}; expected one of {sorted(_VALID_NS)}")
        return ns

    def get_many(self, ns: str, keys: Iterable[str]) -> dict[str, bytes]:
        table = self._table(ns)
        keys = list(dict.fromkeys(keys))
        found: dict[str, bytes] = {}
        with self._lock:
            for i in range(0, len(keys), _BATCH):
                chunk = keys[i : i + _BATCH]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT k, v FROM {table} WHERE k IN ({marks})", chunk)
                found.update((k, bytes(v)) for k, v in rows)
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def put_many(self, ns: str, items: Mapping[str, bytes]) -> None:
        table = self._table(ns)
        with self._lock:
            self._db.executemany(f"INSERT OR REPLACE INTO {table} (k, v) VALUES (?, ?)", items.items())
            self._db.commit()

    def get_json(self, ns: str, key: str) -> Any | None:
        raw = self.get_many(ns, [key]).get(key)
        return None if raw is None else json.loads(raw)

    def get_many_json(self, ns: str, keys: Iterable[str]) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.get_many(ns, keys).items()}

    def put_json(self, ns: str, key: str, value: Any) -> None:
        self.put_many_json(ns, {key: value})

    def put_many_json(self, ns: str, items: Mapping[str, Any]) -> None:
        self.put_many(ns, {k: json.dumps(v, sort_keys=True).encode("utf-8") for k, v in items.items()})

    def count(self, ns: str) -> int:
        with self._lock:
            (n,) = self._db.execute(f"SELECT COUNT(*) FROM {self._table(ns)}").fetchone()
        return int(n)

    def close(self) -> None:
        with self._lock:
            self._db.close()
