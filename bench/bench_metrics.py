"""Benchmark: ``harness metrics`` vs pytrec_eval vs ranx on a synthetic 10,000-query x 1,000-doc TREC run.

All three start from the same files (flushed and read once first, so all start from the page
cache) and stop at numbers (parse + evaluate); the results are
ratios measured in one run, never timed assertions. The run has tied scores (broken by doc id)
and graded qrels with unretrieved judged documents.

* harness vs pytrec_eval: the same measures on both sides, every measure pytrec_eval supports
  and harness computes (all but runid/num_q, which are not measures, and relstring, which
  pytrec_eval cannot return as a number);
* ranx, measured beside both, on the measures it shares with trec_eval (:data:`RANX_OVERLAP`),
  read with ``Qrels.from_file``/``Run.from_file`` (kind "trec") from the same files: cold (the
  first call in a fresh subprocess, numba compilation included) and warm (a second full call,
  files included, in that subprocess); harness is timed on the same overlap for that ratio.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: trec_eval measures with their ranx names (same definitions on binary and graded qrels).
RANX_OVERLAP = {"map": "map", "ndcg_cut_10": "ndcg@10", "P_10": "precision@10", "recall_100": "recall@100",
                "recip_rank": "mrr"}  # fmt: skip
_HARNESS_OVERLAP = ["map", "ndcg_cut.10", "P.10", "recall.100", "recip_rank"]


def pytrec_measures() -> list[str]:
    """Every measure pytrec_eval supports that harness computes (see the module docstring)."""
    import pytrec_eval

    return sorted(set(pytrec_eval.supported_measures) - {"runid", "num_q", "relstring"})


_CORPUS = 10_000_000
_STRIDE = 9_973


def _put_digits(out: np.ndarray, col: int, values: np.ndarray, width: int) -> None:
    """Write ``values`` as zero-padded decimal ASCII into ``out[:, col:col + width]``."""
    for k in range(width):
        out[:, col + k] = (values // 10 ** (width - 1 - k)) % 10 + 48


def _put_text(out: np.ndarray, col: int, text: bytes) -> None:
    out[:, col : col + len(text)] = np.frombuffer(text, dtype=np.uint8)


def write_synthetic(directory: Path, n_queries: int, depth: int, seed: int = 0) -> tuple[Path, Path]:
    """Write ``qrels.txt`` and ``run.txt`` (fixed-width lines, built with numpy) into ``directory``."""
    if depth * _STRIDE >= _CORPUS:
        raise ValueError(f"depth {depth} too large for the synthetic corpus")
    rng = np.random.default_rng(seed)
    qw = max(len(str(n_queries - 1)), 5)
    base = rng.integers(0, _CORPUS, n_queries)
    docs = (base[:, None] + _STRIDE * np.arange(depth)[None, :]) % _CORPUS
    scores = -np.sort(-rng.integers(0, 10**6, (n_queries, depth)), axis=1)  # ties: ~0.5 pair per query
    n = n_queries * depth
    # "q<qid> Q0 d<doc> <rank> <ss.ssss> run\n"
    width = 1 + qw + 5 + 8 + 1 + 4 + 1 + 7 + 5
    lines = np.empty((n, width), dtype=np.uint8)
    q = np.repeat(np.arange(n_queries), depth)
    c = 0
    _put_text(lines, c, b"q")
    _put_digits(lines, c + 1, q, qw)
    c += 1 + qw
    _put_text(lines, c, b" Q0 d")
    _put_digits(lines, c + 5, docs.ravel(), 8)
    c += 13
    _put_text(lines, c, b" ")
    _put_digits(lines, c + 1, np.tile(np.arange(1, depth + 1), n_queries), 4)
    c += 5
    _put_text(lines, c, b" ")
    flat = scores.ravel()
    _put_digits(lines, c + 1, flat // 10**4, 2)
    _put_text(lines, c + 3, b".")
    _put_digits(lines, c + 4, flat % 10**4, 4)
    c += 8
    _put_text(lines, c, b" run\n")
    run_path = directory / "run.txt"
    lines.tofile(run_path)
    del lines
    # qrels: 10 judged retrieved docs (grades 0-3) and 10 judged unretrieved docs per query
    judged_ret = np.take_along_axis(docs, rng.integers(0, depth, (n_queries, 10)), axis=1)
    judged_other = rng.integers(0, _CORPUS, (n_queries, 10))
    jd = np.concatenate((judged_ret, judged_other), axis=1).ravel()
    jq = np.repeat(np.arange(n_queries), 20)
    _, first = np.unique(jq * _CORPUS + jd, return_index=True)
    jq, jd = jq[first], jd[first]
    grades = rng.integers(0, 4, len(jq))
    qlines = np.empty((len(jq), 1 + qw + 4 + 8 + 3), dtype=np.uint8)
    _put_text(qlines, 0, b"q")
    _put_digits(qlines, 1, jq, qw)
    _put_text(qlines, 1 + qw, b" 0 d")
    _put_digits(qlines, 5 + qw, jd, 8)
    _put_text(qlines, 13 + qw, b" ")
    _put_digits(qlines, 14 + qw, grades, 1)
    _put_text(qlines, 15 + qw, b"\n")
    qrels_path = directory / "qrels.txt"
    qlines.tofile(qrels_path)
    return qrels_path, run_path


def _time_harness(qrels_path: Path, run_path: Path, measures: list[str]) -> tuple[float, dict[str, float]]:
    from harness.metrics.trec import evaluate_files, parse_measures

    gc.collect()
    t0 = time.perf_counter()
    result = evaluate_files(qrels_path, run_path, parse_measures(measures))
    elapsed = time.perf_counter() - t0
    return elapsed, {tv.name: tv.summary for tv in result.values}


def _time_pytrec(qrels_path: Path, run_path: Path, measures: list[str]) -> tuple[float, dict[str, float]]:
    import pytrec_eval

    gc.collect()
    t0 = time.perf_counter()
    with open(qrels_path) as f:
        qrels = pytrec_eval.parse_qrel(f)
    with open(run_path) as f:
        run = pytrec_eval.parse_run(f)
    per_query = pytrec_eval.RelevanceEvaluator(qrels, set(measures)).evaluate(run)
    elapsed = time.perf_counter() - t0
    names = next(iter(per_query.values())).keys()
    means = {}
    for name in names:
        values = [v[name] for v in per_query.values()]
        if name.startswith("num_"):
            means[name] = float(np.sum(values))
        elif name.startswith("gm_"):
            means[name] = float(np.exp(np.mean(values)))
        else:
            means[name] = float(np.mean(values))
    return elapsed, means


_RANX_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
from ranx import Qrels, Run, evaluate
def once():
    qrels = Qrels.from_file(sys.argv[1], kind="trec")
    run = Run.from_file(sys.argv[2], kind="trec")
    return evaluate(qrels, run, json.loads(sys.argv[3]))
t1 = time.perf_counter()
cold = once()
t2 = time.perf_counter()
warm = once()
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "cold_s": t2 - t1, "warm_s": t3 - t2, "values": warm}))
"""


def _time_ranx(qrels_path: Path, run_path: Path) -> dict[str, object]:
    """ranx in a fresh subprocess (so the first call compiles its numba kernels)."""
    metrics = list(RANX_OVERLAP.values())
    out = subprocess.run(
        [sys.executable, "-c", _RANX_SCRIPT, str(qrels_path), str(run_path), json.dumps(metrics)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def bench_metrics(n_queries: int = 10_000, depth: int = 1_000, seed: int = 0) -> dict[str, object]:
    """Time files-to-numbers for harness, pytrec_eval and ranx; ratios are other / harness.

    ``max_abs_diff`` is the largest difference between harness's and pytrec_eval's summary values
    over the shared measures (a correctness check, expected below 1e-9; iprec_at_recall and
    11pt_avg are timed but not compared: pytrec_eval wraps trec_eval 9, whose recall-fraction
    rounding trec_eval 10 changed), ``ranx_max_abs_diff`` the same against ranx on the overlap.
    """
    measures = pytrec_measures()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_metrics_") as tmp:
        qrels_path, run_path = write_synthetic(Path(tmp), n_queries, depth, seed)
        # Flush the freshly written files and read them once, so every tool starts from the same
        # page cache (else whichever runs first pays the 370 MB writeback).
        os.sync()
        for path in (qrels_path, run_path):
            path.read_bytes()
        harness_s, ours = _time_harness(qrels_path, run_path, measures)
        pytrec_s, theirs = _time_pytrec(qrels_path, run_path, measures)
        harness_overlap_s, ours_overlap = _time_harness(qrels_path, run_path, _HARNESS_OVERLAP)
        ranx = _time_ranx(qrels_path, run_path)
    load_after = os.getloadavg()
    shared = sorted(set(ours) & set(theirs))
    # trec_eval 9 (inside pytrec_eval) turns recall fractions into counts differently from trec_eval 10
    exact = [k for k in shared if not k.startswith(("iprec_at_recall", "11pt_avg"))]
    max_diff = max((abs(ours[k] - theirs[k]) for k in exact), default=float("nan"))
    ranx_values = ranx["values"]
    assert isinstance(ranx_values, dict)
    ranx_diff = max(abs(ours_overlap[t] - float(ranx_values[r])) for t, r in RANX_OVERLAP.items())
    cold_s, warm_s = float(ranx["cold_s"]), float(ranx["warm_s"])  # type: ignore[arg-type]
    return {
        "run_lines": n_queries * depth,
        "measures": len(measures),
        "measures_compared": len(exact),
        "measures_timed_not_compared": sorted(set(shared) - set(exact)),
        "harness_s": round(harness_s, 3),
        "pytrec_eval_s": round(pytrec_s, 3),
        "speedup_vs_pytrec_eval": round(pytrec_s / harness_s, 2),
        "max_abs_diff": max_diff,
        "ranx_overlap": RANX_OVERLAP,
        "ranx_input": "Qrels.from_file / Run.from_file (kind trec), the same files",
        "harness_overlap_s": round(harness_overlap_s, 3),
        "ranx_cold_s": round(cold_s, 3),
        "ranx_warm_s": round(warm_s, 3),
        "speedup_vs_ranx_cold": round(cold_s / harness_overlap_s, 2),
        "speedup_vs_ranx_warm": round(warm_s / harness_overlap_s, 2),
        "ranx_max_abs_diff": ranx_diff,
        # the machine's 1/5/15-minute load averages before and after: the ratios are only
        # comparable between runs on similarly loaded cores
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    print(json.dumps(bench_metrics(), indent=2))
