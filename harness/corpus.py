"""A corpus read in batches, never whole: validated once by a pass that writes nothing, then kept on disk by
content in a passage store that the stages read.

Golden sets, runs and logs stream; so does the corpus. A run reads it at most twice:

1. :func:`scan_corpus` checks every document (schema, unique ids, the fields it has) a batch at a time and
   keeps only a :class:`CorpusSummary`: the count, the fields, the first document (the prompt's render check)
   and the ids as sorted 64-bit hashes (:class:`DocIds`, 8 bytes a document, for the golden set's and the
   supplied outputs' relevance checks). Nothing is written, so bad input still leaves nothing behind.
2. Once every input has validated and the pins are verified, :func:`open_corpus` opens the passage store of
   the corpus's content (``<home>/store/corpora/<key>.sqlite``, the key a hash of the corpus's pin and the
   store's format) or builds it by reading the file once more: one SQLite row per document in file order,
   each with a CRC of its JSON. The index is embedded from it in batches (:meth:`StoredCorpus.batches`);
   generation and the scorers look passages up by id (:meth:`StoredCorpus.get_many`, or the store as a
   read-only mapping with a bounded cache of recent documents).

A store for the pinned content that already exists is the proof that content validated: a warm run skips
the scan (:func:`stored_summary`) and reads no document until a stage asks for it. A damaged store (a row
whose CRC does not match, a header that does not decode, a count that disagrees) is an
:class:`~harness.errors.IntegrityError` naming the file and how to rebuild it, never a passage read wrong.

Small corpora held in memory (tests, the public API's lists) go through :class:`MemoryCorpus`, the same
interface over a list.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import InputError, IntegrityError
from harness.hashing import sha256_parts
from harness.progress import NULL_PROGRESS, Progress
from harness.types import CorpusDoc

STORE_FORMAT = 1
"""The passage store's layout; part of its key, so a new layout is a new file, never a misread one."""
CORPUS_BATCH = 16384
"""Documents read at a time: by the scan, the store's build, and the index's embedding (their texts in memory)."""
LOOKUP_CHUNK = 500
"""Ids per SQL ``IN (...)`` lookup (below SQLite's bound on host parameters)."""
RECENT_DOCS = 4096
"""Documents the mapping view keeps after a lookup (a case's passages are read by several scorers)."""
_SCHEMA = "corpus_doc.schema.json"
_WHAT = "corpus document"


class DocIds:
    """Membership of a corpus's doc ids, as sorted 64-bit hashes (8 bytes an id instead of a Python set of
    strings). Two different ids sharing a hash would make an absent id look present: with 64-bit hashes
    that is about n / 2^64 per lookup (5e-13 at ten million documents), far below any other error here.
    The hashes are this process's (Python's salted ``hash``): never stored, never sent to another process."""

    def __init__(self, hashes: np.ndarray) -> None:
        self._h = np.sort(np.asarray(hashes, dtype=np.int64))

    @classmethod
    def of(cls, ids: Iterable[str]) -> DocIds:
        return cls(np.fromiter((hash(i) for i in ids), dtype=np.int64))

    def __contains__(self, doc_id: object) -> bool:
        if not isinstance(doc_id, str) or not len(self._h):
            return False
        h = hash(doc_id)
        i = int(np.searchsorted(self._h, h))
        return i < len(self._h) and int(self._h[i]) == h

    def __len__(self) -> int:
        return len(self._h)


@dataclass(frozen=True)
class CorpusSummary:
    """What validating a corpus learnt, without its documents."""

    count: int
    fields: frozenset[str]  # "text" always; "title" when some document has one; every metadata key
    ids: DocIds
    first: CorpusDoc | None  # the first document (a stand-in passage for the prompt's render check)

    def __len__(self) -> int:
        return self.count


EMPTY_SUMMARY = CorpusSummary(count=0, fields=frozenset({"text"}), ids=DocIds(np.empty(0, np.int64)), first=None)


def _fields(docs: Iterable[CorpusDoc]) -> set[str]:
    """The fields some document of ``docs`` has: "text" always, "title", every metadata key."""
    fields = {"text"}
    for d in docs:
        if d.title:
            fields.add("title")
        fields.update(d.metadata)
    return fields


def iter_corpus(path: str | Path, *, batch: int = CORPUS_BATCH, checked: bool = False) -> Iterator[list[CorpusDoc]]:
    """The corpus file's documents, ``batch`` at a time, in file order, each checked as
    :func:`harness.golden.load_corpus` checks it (``checked``: read through once already, see
    :func:`harness.golden.iter_valid`)."""
    from harness.golden import iter_valid

    def valid(_: Path, __: int, rec: dict[str, Any]) -> CorpusDoc:
        return CorpusDoc.model_validate(rec)  # its schema checked first (or, checked, a failure is the file changed)

    yield from iter_valid(path, _SCHEMA, _WHAT, batch, valid, checked=checked)


def read_docs(path: str | Path, ids: Iterable[str]) -> dict[str, CorpusDoc]:
    """The documents of ``ids`` that the corpus file holds, read a batch at a time and only those kept (a
    report's passages: memory is theirs and one batch, not the corpus)."""
    wanted = frozenset(ids)
    return {d.id: d for docs in iter_corpus(path) for d in docs if d.id in wanted}


def scan_corpus(path: str | Path) -> CorpusSummary:
    """Every document of the corpus file checked a batch at a time, nothing kept but the summary; the first
    problem in file order is an InputError naming file:line (as :func:`harness.golden.load_corpus`)."""
    fields: set[str] = {"text"}
    hashes: list[np.ndarray] = []
    first: CorpusDoc | None = None
    count = 0
    for docs in iter_corpus(path):
        if first is None:
            first = docs[0]
        fields |= _fields(docs)
        hashes.append(np.fromiter((hash(d.id) for d in docs), dtype=np.int64, count=len(docs)))
        count += len(docs)
    ids = DocIds(np.concatenate(hashes) if hashes else np.empty(0, np.int64))
    return CorpusSummary(count=count, fields=frozenset(fields), ids=ids, first=first)


class Corpus(Mapping[str, CorpusDoc]):
    """What the stages read of a corpus: its size and fields, its documents in order a batch at a time, its ids
    in that order, and documents by id (it is a read-only mapping of doc id to document, what
    ``ScoringContext.docs`` holds)."""

    fields: frozenset[str]

    def batches(self, size: int = CORPUS_BATCH) -> Iterator[list[CorpusDoc]]:
        raise NotImplementedError

    def ids(self) -> list[str]:
        raise NotImplementedError

    def get_many(self, ids: Iterable[str]) -> dict[str, CorpusDoc]:
        """The documents of ``ids`` that exist, in the order of ``ids`` (repeats once)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the corpus holds open (nothing, for one in memory)."""


class MemoryCorpus(Corpus):
    """:class:`Corpus` over documents held in memory (a list the caller already has)."""

    def __init__(self, docs: Sequence[CorpusDoc]) -> None:
        self._docs = list(docs)
        self._by_id = {d.id: d for d in self._docs}
        self.fields = frozenset(_fields(self._docs))

    def __len__(self) -> int:
        return len(self._docs)

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __getitem__(self, doc_id: str) -> CorpusDoc:
        return self._by_id[doc_id]

    def batches(self, size: int = CORPUS_BATCH) -> Iterator[list[CorpusDoc]]:
        for start in range(0, len(self._docs), size):
            yield self._docs[start:start + size]

    def ids(self) -> list[str]:
        return [d.id for d in self._docs]

    def get_many(self, ids: Iterable[str]) -> dict[str, CorpusDoc]:
        return {i: self._by_id[i] for i in ids if i in self._by_id}


def as_corpus(corpus: Corpus | Sequence[CorpusDoc]) -> Corpus:
    """``corpus`` as a :class:`Corpus` (a list or tuple of documents is wrapped)."""
    return corpus if isinstance(corpus, Corpus) else MemoryCorpus(corpus)


def store_key(corpus_pin: str) -> str:
    """The passage store's name for a corpus pinned at ``corpus_pin``: the content and the store's format."""
    from harness.golden import schema_path

    schema = schema_path("corpus_doc").read_bytes()
    return sha256_parts("corpus-store", str(STORE_FORMAT), corpus_pin, zlib.crc32(schema).to_bytes(4, "big").hex())


def _damaged(path: Path, message: str) -> IntegrityError:
    return IntegrityError(f"passage store {path}: {message}",
                          hint=f"delete {path} (or run `harness cache clear --indexes`) and run again to rebuild it")


def _encode(doc: CorpusDoc) -> tuple[str, int]:
    blob = json.dumps(doc.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))
    return blob, zlib.crc32(blob.encode())


class StoredCorpus(Corpus):
    """:class:`Corpus` over a passage store file (see the module's docstring). Thread-safe: one connection
    behind a lock (generation and scoring may read from different threads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
            self.count = int(meta["count"])
            self.fields = frozenset(json.loads(meta["fields"]))
            self.corpus_pin = str(meta["corpus_sha256"])
            fmt = int(meta["format"])
            rows = self._db.execute("SELECT max(pos) FROM docs").fetchone()[0]
        except (sqlite3.Error, KeyError, ValueError, TypeError) as exc:
            if getattr(self, "_db", None) is not None:
                self._db.close()
            raise _damaged(path, f"unreadable ({type(exc).__name__}: {exc})") from None
        if fmt != STORE_FORMAT or (rows or 0) != self.count:
            self._db.close()
            raise _damaged(path, f"holds {rows or 0} documents, its header says {self.count} (format {fmt})")
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, CorpusDoc | None] = OrderedDict()

    def close(self) -> None:
        self._db.close()

    def _query(self, sql: str, args: Sequence[Any]) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise _damaged(self.path, f"unreadable ({type(exc).__name__}: {exc})") from None

    def _doc(self, blob: str, crc: int) -> CorpusDoc:
        if zlib.crc32(blob.encode()) != crc:
            raise _damaged(self.path, "a document's checksum does not match")
        try:
            return CorpusDoc.model_validate_json(blob)
        except ValueError:
            raise _damaged(self.path, "a document does not decode") from None

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids())

    def batches(self, size: int = CORPUS_BATCH) -> Iterator[list[CorpusDoc]]:
        last = 0
        while True:
            rows = self._query("SELECT pos, doc, crc FROM docs WHERE pos > ? ORDER BY pos LIMIT ?", (last, size))
            if not rows:
                return
            last = int(rows[-1][0])
            yield [self._doc(doc, crc) for _, doc, crc in rows]

    def ids(self) -> list[str]:
        return [r[0] for r in self._query("SELECT id FROM docs ORDER BY pos", ())]

    def summary(self) -> CorpusSummary:
        """The store's :class:`CorpusSummary` (what a scan of the file it was built from gave)."""
        first = next(self.batches(1), [None])[0]
        return CorpusSummary(count=self.count, fields=self.fields, ids=DocIds.of(self.ids()), first=first)

    def get_many(self, ids: Iterable[str]) -> dict[str, CorpusDoc]:
        wanted = list(dict.fromkeys(ids))
        out: dict[str, CorpusDoc] = {}
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            part = wanted[start:start + LOOKUP_CHUNK]
            marks = ",".join("?" * len(part))
            for doc_id, blob, crc in self._query(f"SELECT id, doc, crc FROM docs WHERE id IN ({marks})", part):
                out[doc_id] = self._doc(blob, crc)
        return {i: out[i] for i in wanted if i in out}

    def get(self, doc_id: str, default: CorpusDoc | None = None) -> CorpusDoc | None:  # type: ignore[override]
        with self._lock:
            if doc_id in self._recent:
                self._recent.move_to_end(doc_id)
                doc = self._recent[doc_id]
                return default if doc is None else doc
        found = self.get_many([doc_id]).get(doc_id) if isinstance(doc_id, str) else None
        with self._lock:
            self._recent[doc_id] = found
            while len(self._recent) > RECENT_DOCS:
                self._recent.popitem(last=False)
        return default if found is None else found

    def __getitem__(self, doc_id: str) -> CorpusDoc:
        doc = self.get(doc_id)
        if doc is None:
            raise KeyError(doc_id)
        return doc

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self.get(doc_id) is not None


def store_path(root: Path, corpus_pin: str) -> Path:
    return root / f"{store_key(corpus_pin)}.sqlite"


def stored_summary(root: Path, corpus_pin: str | None) -> CorpusSummary | None:
    """The summary of the store built for ``corpus_pin`` if there is one (the scan is then not needed: the
    store was built only from content that validated), else None. A damaged store raises."""
    if not corpus_pin:
        return None
    path = store_path(root, corpus_pin)
    if not path.is_file():
        return None
    store = StoredCorpus(path)
    try:
        return store.summary()
    finally:
        store.close()


def summarize(path: Path, corpus_pin: str | None, root: Path | None) -> CorpusSummary:
    """The corpus's summary: from the passage store of its pin under ``root`` when one exists (the pin is still
    to be verified by the caller before the store is used for anything else), else by :func:`scan_corpus`."""
    stored = stored_summary(root, corpus_pin) if root is not None else None
    return stored if stored is not None else scan_corpus(path)


def open_corpus(path: str | Path, corpus_pin: str, root: Path, expected: int,
                progress: Progress = NULL_PROGRESS) -> StoredCorpus:
    """The passage store of the corpus file ``path`` (validated, its pin ``corpus_pin`` verified), built by
    reading the file once more if it does not exist yet: into a temporary file beside it, renamed into place
    when whole (a crash or a concurrent run never leaves half a store). ``expected``: the count the scan gave;
    a file that now reads differently is an InputError (it changed while the run read it). A build shows a
    progress bar of the documents stored."""
    target = store_path(root, corpus_pin)
    if target.is_file():
        store = StoredCorpus(target)
        if store.count != expected:
            store.close()
            raise _damaged(target, f"holds {store.count} documents, the corpus {expected}")
        return store
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".build-{os.getpid()}-{threading.get_ident()}-{target.name}"
    tmp.unlink(missing_ok=True)
    try:
        with progress.task("storing corpus passages", expected) as advance:
            _build(Path(path), corpus_pin, tmp, expected, advance)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return StoredCorpus(target)


def _build(path: Path, corpus_pin: str, tmp: Path, expected: int, advance: Callable[..., None]) -> None:
    db = sqlite3.connect(tmp)
    try:
        db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
                         "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                         "CREATE TABLE docs (pos INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, doc TEXT NOT NULL,"
                         " crc INTEGER NOT NULL);")
        fields: set[str] = {"text"}
        pos = 0
        for docs in iter_corpus(path, checked=True):
            rows = []
            for d in docs:
                pos += 1
                blob, crc = _encode(d)
                rows.append((pos, d.id, blob, crc))
            fields |= _fields(docs)
            try:
                db.executemany("INSERT INTO docs VALUES (?, ?, ?, ?)", rows)
            except sqlite3.IntegrityError:  # ids were checked unique: the file is not what was checked
                raise InputError(path, "changed while the run read it: a doc id repeats") from None
            advance(len(rows))
        if pos != expected:
            raise InputError(path, f"changed while the run read it: {pos} documents, {expected} when checked")
        db.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("format", str(STORE_FORMAT)), ("count", str(pos)), ("corpus_sha256", corpus_pin),
            ("fields", json.dumps(sorted(fields))), ("source", path.name)])
        db.commit()
    finally:
        db.close()
