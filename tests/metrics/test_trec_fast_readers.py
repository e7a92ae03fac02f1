"""The Arrow fast paths of the TREC readers (qrels and run), the byte-string hashing behind the
judgment join, and rank_codes' equal-depth layout, each against the general path or a plain
Python oracle: values and errors must never depend on which path ran."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from harness.errors import InputError
from harness.metrics.ir import PAD, rank_codes
from harness.metrics.trec import evaluate_trec, parse_measures, read_qrels, read_run
from harness.metrics.trec import files as trec_files


def _qrels_text(rng: np.random.Generator, n: int, sep: str = " ", width: int | None = None) -> str:
    seen: set[tuple[str, str]] = set()
    lines: list[str] = []
    while len(lines) < n:
        q = f"q{int(rng.integers(0, 30))}"
        k = int(rng.integers(1, 7))
        d = f"d{int(rng.integers(0, 10**6)):06d}" if width else f"doc-{int(rng.integers(0, 10**k))}"
        if (q, d) in seen:
            continue
        seen.add((q, d))
        lines.append(sep.join([q, "0", d, str(int(rng.integers(-2, 5)))]))
    return "\n".join(lines)


def _general_qrels(path: Path, monkeypatch: pytest.MonkeyPatch) -> trec_files.TrecQrels:
    with monkeypatch.context() as m:
        m.setattr(trec_files, "_read_qrels_arrow", lambda d: None)
        return read_qrels(path)


@pytest.mark.parametrize(("sep", "width"), [(" ", None), ("\t", None), (" ", 7)])
def test_qrels_fast_path_equals_the_general_reader(
    sep: str, width: int | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _qrels_text(np.random.default_rng(3), 3000, sep, width)
    path = tmp_path / "qrels"
    for variant in (text + "\n", text):
        path.write_text(variant)
        fast = trec_files._read_qrels_arrow(path.read_bytes())
        assert fast is not None
        slow = _general_qrels(path, monkeypatch)
        assert fast.query_ids == slow.query_ids and fast.query_bytes == slow.query_bytes
        np.testing.assert_array_equal(fast.qcode, slow.qcode)
        np.testing.assert_array_equal(fast.docs, slow.docs)
        np.testing.assert_array_equal(fast.grades, slow.grades)
        assert fast.grades.dtype == slow.grades.dtype == np.int64
        assert fast.to_mapping() == slow.to_mapping()


@pytest.mark.parametrize(
    "bad",
    ["q 0 d 1\tx\n", "q 0 d  1\n", "# c\nq 0 d 1\n", "q 0 d 1 \n", "q 0 d 1 extra\n", "q 0 d\n", " q 0 d 1\n",
     "q 0 d 1\n\nq 0 e 1\n", "q 0 d 1\r\n", "", "\n", "q 0 d +1\n", "q 0 d 1.5\n", "q 0 d x\n",
     "q 0 d 99999999999\n", "q 0 d 1\nq 0 d 2\n", "q\t0 d 1\n", "\ufeffq 0 d 1\n", "q 0 d\x0b 1\n"],
)  # fmt: skip
def test_qrels_fast_path_gives_up_on_anything_else(bad: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert trec_files._read_qrels_arrow(bad.encode()) is None
    path = tmp_path / "qrels"
    path.write_bytes(bad.encode())
    # whatever the general reader does (a value or an error) is what read_qrels does
    try:
        slow: object = _general_qrels(path, monkeypatch)
    except InputError as exc:
        with pytest.raises(InputError) as got:
            read_qrels(path)
        assert str(got.value) == str(exc)
    else:
        assert isinstance(slow, trec_files.TrecQrels)
        assert read_qrels(path).to_mapping() == slow.to_mapping()


def test_duplicate_judgment_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "qrels"
    path.write_text("q1 0 d1 1\nq1 0 d2 0\nq2 0 d1 1\nq1 0 d1 2\n")
    with pytest.raises(InputError, match=r"qrels:4.*judged twice"):
        read_qrels(path)


def _strings(rng: np.random.Generator, n: int, uniform: bool) -> list[bytes]:
    if uniform:
        return [f"d{int(x):08d}".encode() for x in rng.integers(0, 50, n)]
    pairs = zip(rng.integers(0, 20, n).tolist(), rng.integers(0, 30, n).tolist(), strict=True)
    return [b"x" * k + str(v).encode() for k, v in pairs]


@pytest.mark.parametrize("uniform", [True, False])
def test_bytes_hash_and_compare_the_same_from_arrow_and_fixed(uniform: bool) -> None:
    rng = np.random.default_rng(11)
    values = _strings(rng, 4000, uniform)
    chunked = pa.chunked_array([pa.array(values[:1500], pa.binary()), pa.array(values[1500:], pa.binary())])
    a = trec_files._Bytes.from_arrow(chunked)
    b = trec_files._Bytes.from_fixed(np.array(values, dtype=np.bytes_))
    assert a.stride == b.stride == (9 if uniform else None)
    seed = rng.integers(0, 5, len(values))
    np.testing.assert_array_equal(a.hashes(seed), b.hashes(seed))
    np.testing.assert_array_equal(a.fixed(), np.array(values, dtype=np.bytes_))
    i, j = rng.integers(0, len(values), 3000), rng.integers(0, len(values), 3000)
    oracle = np.array([values[x] == values[y] for x, y in zip(i.tolist(), j.tolist(), strict=True)])
    assert oracle.any() and not oracle.all()
    np.testing.assert_array_equal(a.equal(i, b, j), oracle)
    np.testing.assert_array_equal(b.equal(i, a, j), oracle)
    assert [a.get(k) for k in range(50)] == values[:50] == [b.get(k) for k in range(50)]
    assert a.values(np.arange(100)) == values[:100]
    # equal hashes for equal (seed, string), and (in practice) only for those
    h = a.hashes(seed)
    keys = {(int(s), v) for s, v in zip(seed.tolist(), values, strict=True)}
    assert len(np.unique(h)) == len(keys)


def _run_lines(rng: np.random.Generator, uniform: bool, interleave: bool) -> str:
    lines = []
    for q in range(25):
        docs = rng.choice(60, size=int(rng.integers(1, 40)), replace=False)
        for r, d in enumerate(docs.tolist()):
            doc = f"d{d:06d}" if uniform else f"doc-{d}" + "y" * (d % 4)
            lines.append((q, f"q{q} Q0 {doc} {r + 1} {int(rng.integers(0, 6)) / 4!r} tag"))
    if interleave:
        rng.shuffle(lines)
    return "\n".join(text for _, text in lines) + "\n"


@pytest.mark.parametrize(("uniform", "interleave"), [(True, False), (False, False), (True, True)])
def test_evaluation_is_identical_through_fast_and_general_readers(
    uniform: bool, interleave: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(5)
    run_path, qrels_path = tmp_path / "run", tmp_path / "qrels"
    run_path.write_text(_run_lines(rng, uniform, interleave))
    qlines = [f"q{q} 0 {f'd{d:06d}' if uniform else f'doc-{d}' + 'y' * (d % 4)} {int(rng.integers(-1, 4))}"
              for q in range(0, 30) for d in rng.choice(60, size=12, replace=False).tolist()]  # fmt: skip
    qrels_path.write_text("\n".join(qlines) + "\n")
    assert trec_files._read_run_arrow(run_path, run_path.read_bytes()) is not None
    assert trec_files._read_qrels_arrow(qrels_path.read_bytes()) is not None
    measures = parse_measures(["all_trec"])
    fast = evaluate_trec(read_qrels(qrels_path), read_run(run_path), measures)
    with monkeypatch.context() as m:
        m.setattr(trec_files, "_read_run_arrow", lambda p, d: None)
        m.setattr(trec_files, "_read_qrels_arrow", lambda d: None)
        slow_run, slow_qrels = read_run(run_path), read_qrels(qrels_path)
        slow = evaluate_trec(slow_qrels, slow_run, measures)
    assert fast.query_ids == slow.query_ids and len(fast.values) == len(slow.values)
    for a, b in zip(fast.values, slow.values, strict=True):
        assert a.name == b.name and a.text == b.text
        np.testing.assert_array_equal(np.asarray(a.per_query), np.asarray(b.per_query))
        assert a.summary == b.summary or (a.summary != a.summary and b.summary != b.summary)


def test_duplicate_in_a_fast_read_run_names_its_line(tmp_path: Path) -> None:
    run, qrels = tmp_path / "run", tmp_path / "qrels"
    run.write_text("q1 Q0 d1 1 3 t\nq1 Q0 d2 2 2 t\nq2 Q0 d1 1 1 t\nq1 Q0 d1 3 1 t\n")
    qrels.write_text("q1 0 d1 1\nq2 0 d1 1\n")
    assert trec_files._read_run_arrow(run, run.read_bytes()) is not None
    with pytest.raises(InputError, match=r"run:4.*'d1' is ranked twice for query 'q1'"):
        evaluate_trec(read_qrels(qrels), read_run(run), parse_measures(["map"]))


def _rank_oracle(q: np.ndarray, s: np.ndarray, c: np.ndarray, docs: list[str], n_q: int, depth: int | None
                 ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    rows: list[list[int]] = [[] for _ in range(n_q)]
    by_doc = sorted(range(len(q)), key=lambda i: docs[i].encode(), reverse=True)  # doc id descending
    order = sorted(by_doc, key=lambda i: (int(q[i]), -float(s[i])))  # stable
    for i in order:
        if q[i] >= 0 and (depth is None or len(rows[q[i]]) < depth):
            rows[q[i]].append(int(c[i]))
    width = max(max((len(r) for r in rows), default=0), 1)
    out = np.full((n_q, width), PAD, dtype=np.int32)
    for k, r in enumerate(rows):
        out[k, : len(r)] = r
    return out, np.array([len(r) for r in rows], dtype=np.int64)


@pytest.mark.parametrize("case", ["all_queries", "missing_query", "dropped_lines", "unsorted"])
@pytest.mark.parametrize("depth", [None, 3, 0])
def test_rank_codes_equal_depth_layout_matches_a_sort(case: str, depth: int | None) -> None:
    rng = np.random.default_rng(len(case) * 10 + (depth or 0))
    n_q, per = 6, 8
    queries = [k for k in range(n_q) if not (case == "missing_query" and k == 2)]
    q = np.repeat(np.array(queries), per)
    s = np.sort(rng.integers(0, 4, len(q)))[::-1].astype(np.float64)  # many ties
    docs = [f"d{int(x)}" for x in rng.permutation(len(q))]
    c = rng.integers(-2, 3, len(q)).astype(np.int32)
    if case == "dropped_lines":
        q = q.copy()
        q[q == 4] = -1
    if case == "unsorted":
        p = rng.permutation(len(q))
        q, s, c, docs = q[p], s[p], c[p], [docs[i] for i in p.tolist()]
    c_before = c.copy()
    ranked, num_ret = rank_codes(q, s, c, n_q, lambda idx: np.array([docs[i] for i in idx.tolist()]), depth)
    want, want_n = _rank_oracle(q, s, c, docs, n_q, depth)
    np.testing.assert_array_equal(ranked, want)
    np.testing.assert_array_equal(num_ret, want_n)
    assert ranked.dtype == np.int32 and num_ret.dtype == np.int64
    np.testing.assert_array_equal(c, c_before)  # the input is not modified
    ranked[:] = 7  # and the result does not alias it
    np.testing.assert_array_equal(c, c_before)


@pytest.mark.parametrize(
    "bad", ["\ufeffq Q0 d 1 2 r\n", "q Q0 d\x0b 1 2 r\n", "q Q0 d 1 2 r\rq Q0 e 1 2 r\n", "q Q0 d 1 2 r\n\n",
            "\nq Q0 d 1 2 r\n", "q Q0 d 1 +inf r\n".replace("+inf", "1_0"), "q Q0 d 1 2 \n"],
)  # fmt: skip
def test_run_fast_path_gives_up_on_anything_else(bad: str, tmp_path: Path) -> None:
    assert trec_files._read_run_arrow(tmp_path / "run", bad.encode()) is None
