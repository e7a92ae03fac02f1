"""Reading TREC files the way trec_eval 9 reads them (``get_qrels.c``, ``get_trec_results.c``), and
matching a run's lines to their judgments.

* qrels: ``query_id iteration doc_id grade``, exactly four whitespace-separated fields;
* run: ``query_id Q0 doc_id rank score run_id``, at least six fields (extra fields are ignored, the
  rank is ignored, the run id of the last line is reported);
* lines whose first field starts with ``#`` are comments; a document ranked (or judged) twice for
  one query is an error, as in trec_eval.

The run parser is vectorized: the file is read as bytes and tokenized with numpy in chunks (no
Python work per line), scores are parsed by an exact decimal fast path, and run lines are matched
to judgments through 64-bit hashes that are then verified byte for byte. A 10M-line run parses in a
few seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import InputError
from harness.metrics.ir import JUDGED_NEGATIVE, UNJUDGED, Qrels, Run

_CHUNK_BYTES = 1 << 20
_PAD_BYTES = 256
_POW10 = np.array([float(10**i) for i in range(23)])


# --------------------------------------------------------------------------------------------- qrels


@dataclass(frozen=True)
class TrecQrels:
    """Judgments, one entry per (query, document); queries sorted by id bytes (trec_eval's order)."""

    query_ids: tuple[str, ...]
    query_bytes: tuple[bytes, ...]
    qcode: np.ndarray
    docs: np.ndarray
    grades: np.ndarray

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


def read_qrels(path: str | Path) -> TrecQrels:
    """Read a TREC qrels file (``query_id iteration doc_id grade``); errors name file:line."""
    data = _open(path)
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
    docs: np.ndarray
    scores: np.ndarray
    runid: str
    source: str | None = None

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


def _read_run_arrow(path: str | Path, data: bytes) -> TrecRun | None:
    """Fast path for the common layout: six fields split by single spaces, one line per ranked
    document, nothing else (no tabs, comments, blank or padded lines). Parsed by Arrow's
    multithreaded CSV reader; ``None`` (use the general reader) whenever the file is not exactly
    that, so results and errors never depend on which path ran."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if (
        not data
        or b"#" in data
        or data.count(b" ") != 5 * n_lines
        or np.count_nonzero(np.frombuffer(data, dtype=np.uint8) < 33) != data.count(b"\n") + data.count(b" ")
    ):
        return None
    try:
        table = pcsv.read_csv(
            pa.BufferReader(data),
            read_options=pcsv.ReadOptions(autogenerate_column_names=True, block_size=1 << 24),
            parse_options=pcsv.ParseOptions(delimiter=" ", quote_char=False, escape_char=False),
            convert_options=pcsv.ConvertOptions(
                column_types={f"f{i}": (pa.float64() if i == 4 else pa.binary()) for i in range(6)},
                include_columns=["f0", "f2", "f4", "f5"],
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowKeyError):
        return None
    if table.num_rows != n_lines or table.num_columns != 4:
        return None
    for name in ("f0", "f2", "f5"):
        if table.num_rows and pc.min(pc.binary_length(table.column(name))).as_py() == 0:
            return None
    scores = table.column("f4").to_numpy()
    if np.isnan(scores).any():
        return None
    qcol = table.column("f0").combine_chunks().dictionary_encode()
    dcol = table.column("f2").combine_chunks()
    offsets = np.frombuffer(dcol.buffers()[1], dtype=np.int32)[dcol.offset : dcol.offset + len(dcol) + 1]
    starts, ends = offsets[:-1].astype(np.int64), offsets[1:].astype(np.int64)
    width = int((ends - starts).max(initial=1))
    raw = np.frombuffer(dcol.buffers()[2], dtype=np.uint8)
    tail = np.zeros(-(-width // 8) * 8 + 8, dtype=np.uint8)
    padded = np.concatenate((raw[: int(ends[-1]) if len(ends) else 0], tail))
    docs = _as_fixed([_gather(padded, starts, ends)])
    runid = table.column("f5")[table.num_rows - 1].as_py()
    return TrecRun(
        query_bytes=tuple(qcol.dictionary.to_pylist()),
        qindex=np.asarray(qcol.indices.to_numpy(), dtype=np.int32),
        docs=docs,
        scores=np.ascontiguousarray(scores, dtype=np.float64),
        runid=runid.decode("utf-8", "replace"),
        source=str(path),
    )


def read_run(path: str | Path) -> TrecRun:
    """Read a TREC run file (``query_id Q0 doc_id rank score run_id``); errors name file:line."""
    data = _open(path)
    fast = _read_run_arrow(path, data)
    if fast is not None:
        return fast
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
        docs=docs,
        scores=np.concatenate(s_parts),
        runid=runid.decode("utf-8", "replace"),
        source=str(path),
    )


# ------------------------------------------------------------------------------------------ matching


def _hash_keys(qcode: np.ndarray, docs: np.ndarray, width: int) -> np.ndarray:
    """64-bit hash of (query, doc id bytes zero-padded to ``width``, a multiple of 8)."""
    fixed = docs if docs.dtype.itemsize == width else docs.astype(f"S{width}")
    words = fixed.view(np.uint64).reshape(len(docs), width // 8)
    h = qcode.astype(np.uint64)
    h += np.uint64(1)
    h *= np.uint64(0x9E3779B97F4A7C15)
    for k in range(words.shape[1]):
        h ^= words[:, k]
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(31)
    return h


def judgment_codes(
    run_q: np.ndarray, run_docs: np.ndarray, qrels: TrecQrels
) -> tuple[np.ndarray, tuple[int, bytes] | None]:
    """Relevance code of each run line, and a (query code, doc) ranked twice, if any."""
    width = max(run_docs.dtype.itemsize, qrels.docs.dtype.itemsize, 1)
    width = -(-width // 8) * 8
    grade_codes = np.where(qrels.grades < 0, JUDGED_NEGATIVE, qrels.grades)
    hj = _hash_keys(qrels.qcode, qrels.docs, width)
    hr = _hash_keys(run_q, run_docs, width)
    oj = np.argsort(hj)
    hjs = hj[oj]
    codes = np.full(len(run_q), UNJUDGED, dtype=np.int32)
    if len(hjs) > 1 and np.any(hjs[1:] == hjs[:-1]):
        lookup = {
            (q, d): g
            for q, d, g in zip(qrels.qcode.tolist(), qrels.docs.tolist(), grade_codes.tolist(), strict=True)
        }
        codes = np.array(
            [lookup.get(k, UNJUDGED) for k in zip(run_q.tolist(), run_docs.tolist(), strict=True)],
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
        same = (qrels.qcode[cand] == run_q[hit]) & (qrels.docs[cand] == run_docs[hit])
        codes[hit[same]] = grade_codes[cand[same]]
    if _may_have_duplicates(run_q, hr):
        o = np.argsort(hr, kind="stable")
        eq = np.flatnonzero(hr[o][1:] == hr[o][:-1])
        a, b = o[eq], o[eq + 1]
        real = (run_q[a] == run_q[b]) & (run_docs[a] == run_docs[b])
        if real.any():
            i = int(b[np.argmax(real)])
            return codes, (int(run_q[i]), bytes(run_docs[i]))
    return codes, None


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
