"""Reading TREC files the way trec_eval 9 reads them (``get_qrels.c``, ``get_trec_results.c``), and
matching a run's lines to their judgments.

* qrels: ``query_id iteration doc_id grade``, exactly four whitespace-separated fields;
* run: ``query_id Q0 doc_id rank score run_id``, at least six fields (extra fields are ignored, the
  rank is ignored, the run id of the last line is reported);
* lines whose first field starts with ``#`` are comments; a document ranked (or judged) twice for
  one query is an error, as in trec_eval.

Both parsers are vectorized. A file in the common layout (fields split by single spaces, nothing
else; checked byte for byte) is read by Arrow's multithreaded CSV reader; any other file by the
general reader: run files tokenized with numpy in chunks (no Python work per line, scores parsed by
an exact decimal fast path), qrels line by line. Which reader ran never changes a value or an error:
the fast paths give up (return ``None``) on anything unusual, errors included, and the general reader
decides. Run lines are matched to judgments through 64-bit hashes of (query, doc id) computed from
the Arrow buffers, verified byte for byte.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from harness.errors import InputError
from harness.metrics.ir import JUDGED_NEGATIVE, UNJUDGED, Qrels, Run

_CHUNK_BYTES = 1 << 20
_PAD_BYTES = 256
_POW10 = np.array([float(10**i) for i in range(23)])

# ------------------------------------------------------------------------------------------- strings


_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xFF51AFD7ED558CCD)
_S31 = np.uint64(31)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


class _Bytes:
    """Byte strings as one buffer (with at least 8 zero bytes after the last string) and offsets
    (string ``i`` is ``data[offsets[i]:offsets[i + 1]]``): an Arrow binary column, hashed and
    compared eight bytes at a time.

    When every string has the same length (``stride``; fixed-width ids, the common case) the words
    of all strings are strided views of the buffer: no gather, no per-string offsets.
    """

    def __init__(self, data: np.ndarray, offsets: np.ndarray, lengths: np.ndarray | None = None) -> None:
        self.data = data
        self.offsets = offsets
        self.n = len(offsets) - 1
        # lengths, if given: shorter than the offsets' spacing (zero-padded fixed-width strings)
        diff = np.diff(offsets) if lengths is None else lengths
        self.width = int(diff.max(initial=0))
        uniform = lengths is None and self.n > 0 and int(diff.min()) == self.width
        self.stride: int | None = self.width if uniform else None
        self._lengths = None if uniform else diff.astype(np.int64)

    def __len__(self) -> int:
        return self.n

    @staticmethod
    def from_arrow(arr: object) -> _Bytes:
        """From a ``pyarrow`` binary (or string) array or chunked array without nulls."""
        import pyarrow as pa

        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
        assert isinstance(arr, pa.Array) and arr.null_count == 0
        n = len(arr)
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset : arr.offset + n + 1]
        lo, hi = (int(offsets[0]), int(offsets[-1])) if n else (0, 0)
        data = np.zeros(hi - lo + 16, dtype=np.uint8)
        if hi > lo:
            data[: hi - lo] = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[lo:hi]
        if lo:
            offsets = offsets - np.int32(lo)
        return _Bytes(data, offsets)

    @staticmethod
    def from_fixed(a: np.ndarray) -> _Bytes:
        """From a zero-padded ``S<w>`` array (numpy's semantics: trailing zero bytes are padding)."""
        w = max(a.dtype.itemsize, 1)
        fixed = a if a.dtype.itemsize == w else a.astype(f"S{w}")
        data = np.zeros(len(fixed) * w + 16, dtype=np.uint8)
        data[: len(fixed) * w] = np.ascontiguousarray(fixed).view(np.uint8).ravel()
        lengths = np.strings.str_len(fixed).astype(np.int64) if len(fixed) else np.zeros(0, dtype=np.int64)
        offsets = np.arange(len(fixed) + 1, dtype=np.int64) * w
        if len(fixed) and int(lengths.min()) == w:
            return _Bytes(data, offsets)
        return _Bytes(data, offsets, lengths)

    def _starts(self, idx: np.ndarray | None) -> np.ndarray:
        s = self.offsets[:-1] if idx is None else self.offsets[idx]
        return s.astype(np.int64)

    def lengths(self, idx: np.ndarray | None = None) -> np.ndarray:
        if self._lengths is None:
            return np.full(self.n if idx is None else len(idx), self.stride, dtype=np.int64)
        return self._lengths if idx is None else self._lengths[idx]

    def word(self, k: int, idx: np.ndarray | None = None) -> np.ndarray:
        """Bytes ``8k .. 8k + 7`` of each string (of strings ``idx``), zero past its end."""
        if idx is None and self.stride is not None:
            length = self.stride
            if 8 * k >= length:
                return np.zeros(self.n, dtype=np.uint64)
            base = int(self.offsets[0]) + 8 * k
            view = np.ndarray(shape=(self.n,), dtype="<u8", buffer=self.data, offset=base, strides=(length,))
            keep = min(length - 8 * k, 8)
            return view & np.uint64((1 << (8 * keep)) - 1) if keep < 8 else view
        pos = np.minimum(self._starts(idx) + 8 * k, len(self.data) - 8)
        w = np.ndarray(shape=(len(self.data) - 7,), dtype="<u8", buffer=self.data, strides=(1,))[pos]
        if self.stride is not None:
            keep_s = min(max(self.stride - 8 * k, 0), 8)
            if keep_s < 8:
                w &= np.uint64((1 << (8 * keep_s)) - 1)
            return w
        keep = np.clip(self.lengths(idx) - 8 * k, 0, 8).astype(np.uint64)
        mask = (np.uint64(1) << (keep * np.uint64(8)) % np.uint64(64)) - np.uint64(1)
        mask[keep == 8] = _ALL
        w &= mask
        return w

    def hashes(self, seed: np.ndarray) -> np.ndarray:
        """64-bit hash of each (seed, string) (the seed: a query code)."""
        h = seed.astype(np.uint64)
        if self.stride is not None:
            h += np.uint64(self.stride << 40)
        else:
            h += self.lengths().astype(np.uint64) << np.uint64(40)
        h *= _M1
        for k in range(-(-self.width // 8)):
            h ^= self.word(k)
            h *= _M2
            h ^= h >> _S31
        return h

    def equal(self, i: np.ndarray, other: _Bytes, j: np.ndarray) -> np.ndarray:
        """Whether string ``i[t]`` of this equals string ``j[t]`` of ``other``, byte for byte."""
        same = self.lengths(i) == other.lengths(j)
        for k in range(-(-min(self.width, other.width) // 8)):
            same &= self.word(k, i) == other.word(k, j)
        return same

    def fixed(self, idx: np.ndarray | None = None) -> np.ndarray:
        """The strings (strings ``idx``) as a zero-padded ``S<8w>`` array."""
        n_words = max(-(-self.width // 8), 1)
        out = np.empty((self.n if idx is None else len(idx), n_words), dtype="<u8")
        for k in range(n_words):
            out[:, k] = self.word(k, idx)
        return out.view(f"S{8 * n_words}").ravel()

    def get(self, i: int) -> bytes:
        s = int(self.offsets[i])
        return self.data[s : s + int(self.lengths(np.array([i]))[0])].tobytes()

    def values(self, idx: np.ndarray) -> list[bytes]:
        """Strings ``idx`` as Python bytes (for a few of them)."""
        raw = self.data.tobytes() if len(idx) > 64 else None
        out = []
        lengths = self.lengths(idx).tolist()
        for s, n in zip(self._starts(idx).tolist(), lengths, strict=True):
            out.append(raw[s : s + n] if raw is not None else self.data[s : s + n].tobytes())
        return out


# --------------------------------------------------------------------------------------------- qrels


@dataclass(frozen=True)
class TrecQrels:
    """Judgments, one entry per (query, document); queries sorted by id bytes (trec_eval's order)."""

    query_ids: tuple[str, ...]
    query_bytes: tuple[bytes, ...]
    qcode: np.ndarray
    docs: np.ndarray
    grades: np.ndarray

    @cached_property
    def doc_bytes(self) -> _Bytes:
        return _Bytes.from_fixed(self.docs)

    def to_mapping(self) -> dict[str, dict[str, int]]:
        """The qrels as ``{query id: {doc id: grade}}``, the shape :func:`compute_metrics` takes."""
        out: dict[str, dict[str, int]] = {q: {} for q in self.query_ids}
        for qc, doc, grade in zip(self.qcode.tolist(), self.docs.tolist(), self.grades.tolist(), strict=True):
            out[self.query_ids[qc]][doc.decode("utf-8", "replace")] = grade
        return out


def _open(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read file: {exc.strerror or exc}") from None


def _numpy(arr: object, dtype: type) -> np.ndarray:
    """A null-free primitive Arrow array's values as numpy, zero-copy (``Array.to_numpy`` would
    import pandas, half a second on the first call)."""
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    assert isinstance(arr, pa.Array) and arr.null_count == 0
    width = np.dtype(dtype).itemsize
    assert arr.type.bit_width == 8 * width
    return np.frombuffer(arr.buffers()[1], dtype=dtype)[arr.offset : arr.offset + len(arr)]


def _arrow_fields(
    data: bytes | mmap.mmap, n_fields: int, delimiter: str, types: dict[int, object]
) -> list[object] | None:
    """The columns of ``data`` read by Arrow's CSV reader if the file is exactly lines of ``n_fields``
    non-empty fields split by one ``delimiter``, each line ending with a newline (the last one may
    not), and no byte below 0x21 inside a field; else ``None``.

    Arrow ends lines at ``\\n``, ``\\r`` or ``\\r\\n``, skips empty lines and a BOM and splits on the
    delimiter: with no ``\\r`` in the file, if the fields' bytes plus one separator after each field
    (but the last one's if the file does not end with a newline) add up to the file's size, nothing
    else is in the file.
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    if not len(data) or data.find(b"#") >= 0 or data.find(b"\r") >= 0:
        return None
    names = [f"f{i}" for i in range(n_fields)]
    try:
        table = pcsv.read_csv(
            pa.py_buffer(data),
            read_options=pcsv.ReadOptions(autogenerate_column_names=True, block_size=1 << 24),
            parse_options=pcsv.ParseOptions(delimiter=delimiter, quote_char=False, escape_char=False),
            convert_options=pcsv.ConvertOptions(
                column_types={name: types.get(i, pa.binary()) for i, name in enumerate(names)},
                include_columns=names,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowKeyError):
        return None
    if table.num_columns != n_fields:
        return None
    total = 0
    for name in names:
        for chunk in table.column(name).chunks:
            if len(chunk) == 0:
                continue
            if chunk.null_count:
                return None
            offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int32)[chunk.offset : chunk.offset + len(chunk) + 1]
            if int(np.diff(offsets).min()) <= 0:
                return None
            lo, hi = int(offsets[0]), int(offsets[-1])
            if int(np.frombuffer(chunk.buffers()[2], dtype=np.uint8)[lo:hi].min()) < 33:
                return None
            total += hi - lo
    n = table.num_rows
    if n == 0 or total + n_fields * n - (0 if data[-1:] == b"\n" else 1) != len(data):
        return None
    return [table.column(name) for name in names]


def _read_qrels_arrow(data: bytes) -> TrecQrels | None:
    """Fast path for qrels of four fields split by single spaces (or single tabs), one judgment per
    line, nothing else, and no document judged twice for a query; ``None`` (use the general reader)
    otherwise, so results and errors never depend on which path ran."""
    import pyarrow as pa
    import pyarrow.compute as pc

    delimiter = " " if b"\t" not in data else "\t" if b" " not in data else None
    if delimiter is None:
        return None
    cols = _arrow_fields(data, 4, delimiter, {3: pa.string()})
    if cols is None:
        return None
    qcol, dcol, gcol = (c.combine_chunks() for c in (cols[0], cols[2], cols[3]))  # type: ignore[attr-defined]
    try:
        grades = _numpy(pc.cast(gcol, pa.int64()), np.int64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if len(grades) and not (int(grades.min()) > -(2**31) and int(grades.max()) < 2**31):
        return None
    enc = qcol.dictionary_encode()
    first = tuple(enc.dictionary.to_pylist())
    order = sorted(first)
    remap = np.empty(len(order), dtype=np.int64)
    rank = {q: i for i, q in enumerate(order)}
    remap[:] = [rank[q] for q in first]
    qcode = remap[_numpy(enc.indices, np.int32)]
    docs = _Bytes.from_arrow(dcol)
    h = docs.hashes(qcode)
    o = np.argsort(h, kind="stable")
    eq = np.flatnonzero(h[o][1:] == h[o][:-1])
    if len(eq):
        a, b = o[eq], o[eq + 1]
        if np.any((qcode[a] == qcode[b]) & docs.equal(a, docs, b)):
            return None  # judged twice: the general reader names the line
    return TrecQrels(
        query_ids=tuple(q.decode("utf-8", "replace") for q in order),
        query_bytes=tuple(order),
        qcode=qcode,
        docs=docs.fixed(),
        grades=grades.astype(np.int64),
    )


def read_qrels(path: str | Path) -> TrecQrels:
    """Read a TREC qrels file (``query_id iteration doc_id grade``); errors name file:line."""
    data = _open(path)
    fast = _read_qrels_arrow(data)
    if fast is not None:
        return fast
    qindex: dict[bytes, int] = {}
    qcodes: list[int] = []
    docs: list[bytes] = []
    grades: list[int] = []
    seen: set[tuple[int, bytes]] = set()
    for lineno, line in enumerate(data.split(b"\n"), 1):
        parts = line.split()
        if not parts or parts[0].startswith(b"#"):
            continue
        if len(parts) != 4:
            raise InputError(
                path,
                "expected 4 whitespace-separated fields 'query_id iteration doc_id grade', "
                f"found {len(parts)}",
                line=lineno,
            )
        try:
            grade = int(parts[3])
        except ValueError:
            raise InputError(
                path,
                f"the grade must be an integer, found {parts[3].decode('utf-8', 'replace')!r}",
                line=lineno,
            ) from None
        if not -(2**31) < grade < 2**31:
            raise InputError(path, f"grade {grade} is out of range", line=lineno)
        qc = qindex.setdefault(parts[0], len(qindex))
        key = (qc, parts[2])
        if key in seen:
            raise InputError(
                path,
                f"document {parts[2].decode('utf-8', 'replace')!r} is judged twice for query "
                f"{parts[0].decode('utf-8', 'replace')!r}",
                line=lineno,
            )
        seen.add(key)
        qcodes.append(qc)
        docs.append(parts[2])
        grades.append(grade)
    if not qindex:
        raise InputError(path, "no judgments found", hint="expected lines 'query_id iteration doc_id grade'")
    order = sorted(qindex)
    remap = np.empty(len(order), dtype=np.int64)
    for new, qb in enumerate(order):
        remap[qindex[qb]] = new
    return TrecQrels(
        query_ids=tuple(q.decode("utf-8", "replace") for q in order),
        query_bytes=tuple(order),
        qcode=remap[np.asarray(qcodes, dtype=np.int64)],
        docs=np.array(docs, dtype=np.bytes_),
        grades=np.asarray(grades, dtype=np.int64),
    )


# ----------------------------------------------------------------------------------------------- run


@dataclass(frozen=True)
class TrecRun:
    """A run as flat arrays: one entry per line, queries in order of first appearance."""

    query_bytes: tuple[bytes, ...]
    qindex: np.ndarray
    doc_bytes: _Bytes
    scores: np.ndarray
    runid: str
    source: str | None = None

    @cached_property
    def docs(self) -> np.ndarray:
        """The doc ids as a zero-padded ``S<w>`` array (built on first use)."""
        return self.doc_bytes.fixed()

    def to_mapping(self) -> dict[str, list[tuple[str, float]]]:
        """The run as ``{query id: [(doc id, score), ...]}``, the shape :func:`compute_metrics` takes."""
        out: dict[str, list[tuple[str, float]]] = {q.decode("utf-8", "replace"): [] for q in self.query_bytes}
        names = [q.decode("utf-8", "replace") for q in self.query_bytes]
        for qi, doc, score in zip(
            self.qindex.tolist(), self.docs.tolist(), self.scores.tolist(), strict=True
        ):
            out[names[qi]].append((doc.decode("utf-8", "replace"), score))
        return out


def _gather(padded: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Tokens ``padded[starts[i]:ends[i]]`` as a zero-padded ``[n x 8w]`` uint8 matrix.

    Bytes are copied eight at a time through an unaligned little-endian uint64 view; ``padded`` must
    extend at least ``8w`` bytes past the last token start (see :func:`_scan_chunk`).
    """
    lengths = ends - starts
    n_words = max(-(-int(lengths.max(initial=0)) // 8), 1)
    words = np.ndarray(shape=(len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
    out = np.empty((len(starts), n_words), dtype="<u8")
    for k in range(n_words):
        word = words[starts + 8 * k] if k else words[starts]
        keep = np.clip(lengths - 8 * k, 0, 8).astype(np.uint64)
        mask = (np.uint64(1) << (keep * np.uint64(8)) % np.uint64(64)) - np.uint64(1)
        mask[keep == 8] = np.uint64(0xFFFFFFFFFFFFFFFF)
        out[:, k] = word & mask
    return out.view(np.uint8).reshape(len(starts), 8 * n_words)


def _parse_decimals(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parse ``[+-]digits[.digits]`` tokens with at most 15 digits exactly; flag the others.

    With at most 15 digits the mantissa is an exact integer below 2**53 and the power of ten is
    exact, so one IEEE division gives the correctly rounded value, the same double ``atof`` returns.
    """
    cols = np.ascontiguousarray(rows.T)
    width, n = cols.shape
    digits = cols - np.uint8(48)
    is_digit = digits <= 9
    is_dot = cols == 46
    first = cols[0]
    other = ~(is_digit | is_dot | (cols == 0))
    other[0] &= (first != 45) & (first != 43)
    ndig = np.count_nonzero(is_digit, axis=0)
    ok = ~other.any(axis=0) & (np.count_nonzero(is_dot, axis=0) <= 1) & (ndig >= 1) & (ndig <= 15)
    mantissa = np.zeros(n, dtype=np.int64)
    frac = np.zeros(n, dtype=np.int64)
    seen_dot = np.zeros(n, dtype=bool)
    for k in range(width):
        d = is_digit[k]
        mantissa = np.where(d, mantissa * 10 + digits[k], mantissa)
        seen_dot |= is_dot[k]
        frac += d & seen_dot
    out = mantissa / _POW10[np.minimum(frac, 22)]
    np.negative(out, out=out, where=first == 45)
    return out, ok


class _Scratch:
    """Buffers reused from chunk to chunk: fresh large arrays cost a page fault per 4 KiB."""

    def __init__(self) -> None:
        self.size = 0
        self.padded = np.empty(0, dtype=np.uint8)
        self.flags = np.empty(0, dtype=bool)
        self.edges = np.empty(0, dtype=bool)

    def reserve(self, n: int) -> None:
        if n > self.size:
            self.size = n
            self.padded = np.empty(n + 1 + _PAD_BYTES, dtype=np.uint8)
            self.flags = np.empty(n + 1, dtype=bool)
            self.edges = np.empty(n, dtype=bool)


def _scan_chunk(
    c: np.ndarray, path: str | Path, line_base: int, scratch: _Scratch | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bytes | None]:
    """Tokenize one chunk (ending with a newline) into qid rows, doc rows, scores and the run id.

    Bytes up to 0x20 (space, tab, newline, other control characters) separate fields. Positions
    below are offsets in ``padded``: the chunk behind one space and followed by zeros, so that
    every field has a separator before it and :func:`_gather` can read past the last one.
    """
    scratch = scratch or _Scratch()
    n = len(c)
    scratch.reserve(n)
    padded = scratch.padded[: n + 1 + _PAD_BYTES]
    padded[0] = 32
    padded[1 : n + 1] = c
    padded[n + 1 :] = 0
    c = padded[: n + 1]
    ws = np.less_equal(c, 32, out=scratch.flags[: n + 1])
    # Field boundaries alternate start, end, start... (the chunk ends with a newline).
    bounds = np.flatnonzero(np.not_equal(ws[1:], ws[:-1], out=scratch.edges[:n]))
    bounds += 1
    starts = bounds[0::2]
    ends = bounds[1::2]
    newlines = np.flatnonzero(np.equal(c, 10, out=scratch.flags[: n + 1]))
    n_lines = len(newlines)
    first: np.ndarray | None = None
    line_idx: np.ndarray | None = None
    if len(starts) == 6 * n_lines:
        cand = np.arange(0, len(starts), 6)
        prev = np.concatenate(([-1], newlines[:-1]))
        if (
            np.all(starts[cand] > prev)
            and np.all(ends[cand + 5] <= newlines)
            and not np.any(c[starts[cand]] == 35)
        ):
            first = cand
    if first is None:
        tok_line = np.searchsorted(newlines, starts)
        counts = np.bincount(tok_line, minlength=n_lines)
        first_all = np.cumsum(counts) - counts
        nonblank = counts > 0
        lead = np.zeros(n_lines, dtype=np.uint8)
        lead[nonblank] = c[starts[first_all[nonblank]]]
        content = nonblank & (lead != 35)
        bad = np.flatnonzero(content & (counts < 6))
        if len(bad):
            i = int(bad[0])
            raise InputError(
                path,
                "expected 6 whitespace-separated fields 'query_id Q0 doc_id rank score run_id', "
                f"found {int(counts[i])}",
                line=line_base + i + 1,
            )
        line_idx = np.flatnonzero(content)
        first = first_all[line_idx]
    if len(first) == 0:
        empty = np.zeros((0, 1), dtype=np.uint8)
        return empty, empty, np.zeros(0), None
    if int((ends - starts).max()) > _PAD_BYTES - 8:
        big = -(-int((ends - starts).max()) // 8) * 8 + 8
        padded = np.concatenate((c, np.zeros(big, dtype=np.uint8)))
    qrows = _gather(padded, starts[first], ends[first])
    drows = _gather(padded, starts[first + 2], ends[first + 2])
    srows = _gather(padded, starts[first + 4], ends[first + 4])
    scores, ok = _parse_decimals(srows)
    if not ok.all():
        bad_idx = np.flatnonzero(~ok)
        tokens = srows[bad_idx].view(f"S{srows.shape[1]}").ravel()
        try:
            values = tokens.astype(np.float64)
        except ValueError:
            values = np.array([_float_or_nan(t) for t in tokens.tolist()])
        nan = np.flatnonzero(np.isnan(values))
        if len(nan):
            i = int(bad_idx[nan[0]])
            lineno = line_base + 1 + (i if line_idx is None else int(line_idx[i]))
            token = srows[i].tobytes().rstrip(b"\0").decode("utf-8", "replace")
            raise InputError(path, f"the score (field 5) must be a number, found {token!r}", line=lineno)
        scores[bad_idx] = values
    last = int(first[-1]) + 5
    runid = c[starts[last] : ends[last]].tobytes()
    return qrows, drows, scores, runid


def _float_or_nan(token: bytes) -> float:
    try:
        return float(token)
    except ValueError:
        return float("nan")


def _as_fixed(rows: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenate zero-padded byte matrices of different widths into one ``S<width>`` array."""
    width = max((r.shape[1] for r in rows), default=1)
    if not rows:
        return np.zeros(0, dtype=f"S{width}")
    if all(r.shape[1] == width for r in rows):
        return np.concatenate(rows).view(f"S{width}").ravel()
    return np.concatenate([r.view(f"S{r.shape[1]}").ravel().astype(f"S{width}") for r in rows])


def _read_run_arrow(path: str | Path, data: bytes | mmap.mmap) -> TrecRun | None:
    """Fast path for the common layout: six fields split by single spaces, one line per ranked
    document, nothing else (no tabs, comments, blank or padded lines; see :func:`_arrow_fields`).
    Parsed by Arrow's multithreaded CSV reader; ``None`` (use the general reader) whenever the file
    is not exactly that, so results and errors never depend on which path ran."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = _arrow_fields(data, 6, " ", {4: pa.string()})
    if cols is None:
        return None
    try:
        scores = _numpy(pc.cast(cols[4], pa.float64()), np.float64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if np.isnan(scores).any():
        return None
    qcol = cols[0].combine_chunks()  # type: ignore[attr-defined]
    n = len(qcol)
    # queries by run-length: the run is read in order, a query's lines are usually contiguous
    change = pc.indices_nonzero(pc.not_equal(qcol.slice(1), qcol.slice(0, n - 1)))
    starts = np.concatenate(([0], _numpy(change, np.uint64).astype(np.int64) + 1))
    index: dict[bytes, int] = {}
    q_offsets = np.frombuffer(qcol.buffers()[1], dtype=np.int32)[qcol.offset : qcol.offset + n + 1]
    q_data = np.frombuffer(qcol.buffers()[2], dtype=np.uint8)
    bounds = zip(q_offsets[starts].tolist(), q_offsets[starts + 1].tolist(), strict=True)
    seg_qids = [q_data[s:e].tobytes() for s, e in bounds]
    seg_codes = np.array([index.setdefault(q, len(index)) for q in seg_qids], dtype=np.int32)
    lengths = np.diff(np.append(starts, n))
    last = cols[5]
    runid = last[len(last) - 1].as_py()  # type: ignore[index, arg-type]
    return TrecRun(
        query_bytes=tuple(index),
        qindex=np.repeat(seg_codes, lengths),
        doc_bytes=_Bytes.from_arrow(cols[2]),
        scores=np.ascontiguousarray(scores, dtype=np.float64),
        runid=runid.decode("utf-8", "replace"),
        source=str(path),
    )


def _read_run_mapped(path: str | Path) -> TrecRun | None:
    """:func:`_read_run_arrow` over the file memory-mapped (no copy of a large file); ``None`` when
    it cannot be mapped (the general reader then reads it, or names the error)."""
    try:
        with open(path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    return _read_run_arrow(path, mapped)


def read_run(path: str | Path) -> TrecRun:
    """Read a TREC run file (``query_id Q0 doc_id rank score run_id``); errors name file:line."""
    fast = _read_run_mapped(path)
    if fast is not None:
        return fast
    data = _open(path)
    buf = np.frombuffer(data, dtype=np.uint8)
    n = len(buf)
    q_parts: list[np.ndarray] = []
    d_parts: list[np.ndarray] = []
    s_parts: list[np.ndarray] = []
    runid: bytes | None = None
    scratch = _Scratch()
    pos = 0
    line_base = 0
    while pos < n:
        end = min(pos + _CHUNK_BYTES, n)
        if end < n:
            cut = data.rfind(b"\n", pos, end)
            if cut < 0:
                cut = data.find(b"\n", end)
            end = n if cut < 0 else cut + 1
        chunk = buf[pos:end]
        if chunk[-1] != 10:
            chunk = np.concatenate((chunk, np.array([10], dtype=np.uint8)))
        qrows, drows, scores, rid = _scan_chunk(chunk, path, line_base, scratch)
        if rid is not None:
            runid = rid
            q_parts.append(qrows)
            d_parts.append(drows)
            s_parts.append(scores)
        line_base += data.count(b"\n", pos, end)
        pos = end
    if runid is None:
        raise InputError(
            path, "no ranked documents found", hint="expected lines 'query_id Q0 doc_id rank score run_id'"
        )
    qids = _as_fixed(q_parts)
    docs = _as_fixed(d_parts)
    starts = np.concatenate(([0], np.flatnonzero(qids[1:] != qids[:-1]) + 1))
    index: dict[bytes, int] = {}
    seg_codes = np.array([index.setdefault(q, len(index)) for q in qids[starts].tolist()], dtype=np.int32)
    lengths = np.diff(np.append(starts, len(qids)))
    return TrecRun(
        query_bytes=tuple(index),
        qindex=np.repeat(seg_codes, lengths),
        doc_bytes=_Bytes.from_fixed(docs),
        scores=np.concatenate(s_parts),
        runid=runid.decode("utf-8", "replace"),
        source=str(path),
    )


# ------------------------------------------------------------------------------------------ matching


def judgment_codes(
    line_q: np.ndarray, run_docs: _Bytes, qrels: TrecQrels
) -> tuple[np.ndarray | None, np.ndarray, tuple[int, bytes] | None]:
    """Match run lines to judgments, over the whole flat arrays at once.

    ``line_q``: each run line's qrels query code (``-1``: the query has no judgments; such lines
    are dropped). Returns (the kept lines, ``None`` if all; the relevance code of each kept line;
    a (query code, doc) ranked twice among the kept lines, if any).
    """
    grade_codes = np.where(qrels.grades < 0, JUDGED_NEGATIVE, qrels.grades).astype(np.int32)
    qdocs = qrels.doc_bytes
    hj = qdocs.hashes(qrels.qcode)
    hr = run_docs.hashes(line_q)
    oj = np.argsort(hj)
    hjs = hj[oj]
    codes = np.full(len(line_q), UNJUDGED, dtype=np.int32)
    if len(hjs) > 1 and np.any(hjs[1:] == hjs[:-1]):
        # two judgments share a hash (never seen in practice): match by value
        lookup = {
            (q, d): g
            for q, d, g in zip(qrels.qcode.tolist(), qrels.docs.tolist(), grade_codes.tolist(), strict=True)
        }
        codes = np.array(
            [lookup.get(k, UNJUDGED) for k in zip(line_q.tolist(), run_docs.fixed().tolist(), strict=True)],
            dtype=np.int32,
        )
    elif len(hjs):
        # A bitmap of the judged hashes discards most run lines before the binary search.
        size = 1 << int(min(max(len(hjs) * 16, 1 << 16), 1 << 28)).bit_length()
        mask = np.uint64(size - 1)
        bitmap = np.zeros(size, dtype=bool)
        bitmap[(hjs & mask).view(np.int64)] = True
        low = hr & mask
        maybe = np.flatnonzero(bitmap[low.view(np.int64)])
        del low
        pos = np.minimum(np.searchsorted(hjs, hr[maybe]), len(hjs) - 1)
        found = hjs[pos] == hr[maybe]
        hit = maybe[found]
        cand = oj[pos[found]]
        same = (qrels.qcode[cand] == line_q[hit]) & qdocs.equal(cand, run_docs, hit)
        codes[hit[same]] = grade_codes[cand[same]]
    keep: np.ndarray | None = None
    kq, kh = line_q, hr
    if len(line_q) and int(line_q.min()) < 0:
        keep = np.flatnonzero(line_q >= 0)
        kq, kh, codes = line_q[keep], hr[keep], codes[keep]
    if _may_have_duplicates(kq, kh):
        o = np.argsort(kh, kind="stable")
        eq = np.flatnonzero(kh[o][1:] == kh[o][:-1])
        a, b = o[eq], o[eq + 1]
        la, lb = (a, b) if keep is None else (keep[a], keep[b])
        real = (kq[a] == kq[b]) & run_docs.equal(la, run_docs, lb)
        if real.any():
            i = int(lb[np.argmax(real)])
            return keep, codes, (int(line_q[i]), run_docs.get(i))
    return keep, codes, None


def _may_have_duplicates(run_q: np.ndarray, hashes: np.ndarray) -> bool:
    """Whether two lines of one query share a hash, by sorting each query's hashes separately.

    Row-wise sorts of a ``[queries x depth]`` matrix are much cheaper than one global sort; a
    ``True`` is confirmed (and located) exactly by the caller.
    """
    if len(run_q) < 2:
        return False
    if np.all(run_q[1:] >= run_q[:-1]):
        q, h = run_q, hashes
    else:
        order = np.argsort(run_q, kind="stable")
        q, h = run_q[order], hashes[order]
    starts = np.concatenate(([0], np.flatnonzero(q[1:] != q[:-1]) + 1))
    lengths = np.diff(np.append(starts, len(q)))
    pad = np.uint64(0xFFFFFFFFFFFFFFFF)
    width = int(lengths.max())
    if np.all(lengths == width):
        table = h.reshape(len(starts), width).copy()
    else:
        table = np.full((len(starts), width), pad, dtype=np.uint64)
        pos = np.arange(len(q), dtype=np.int64)
        pos -= np.repeat(starts, lengths)
        table[np.repeat(np.arange(len(starts)), lengths), pos] = h
    table.sort(axis=1)
    return bool(np.any((table[:, 1:] == table[:, :-1]) & (table[:, 1:] != pad)))


def find_line(path: str | Path, qid: bytes, doc: bytes, occurrence: int = 2) -> int | None:
    """Line number of the ``occurrence``-th line ranking (qid, doc) in a run file: the second names a
    duplicate, the first a bad value (error path only)."""
    seen = 0
    for lineno, line in enumerate(_open(path).split(b"\n"), 1):
        parts = line.split()
        if len(parts) >= 3 and parts[0] == qid and parts[2] == doc:
            seen += 1
            if seen == occurrence:
                return lineno
    return None


def to_mappings(qrels: TrecQrels, run: TrecRun) -> tuple[Qrels, Run]:
    """Both files as the in-memory mappings :func:`harness.metrics.compute_metrics` takes."""
    return qrels.to_mapping(), run.to_mapping()
