"""The columnar run store at scale: write a synthetic retrieval-only run (10 metrics, 2 tags, 2% errors of
two kinds, cache hits) through :class:`harness.runs.RunWriter` in batches, then read it back by columns, by
a few ids, and whole; and time the commands that read a stored run: ``harness runs show`` (``show``),
``harness report`` as HTML alone (``report``) and against a base run (``report_against``: the diff too),
``--format md`` (``report_md``), and what ``harness attribute`` reads of base and head (``attribute``: both
runs' columns and the means over their shared cases; the ablation runs are the pipeline's, not measured
here). ``show_whole``, ``report_whole`` and ``attribute_whole`` are the same outputs from the runs loaded
whole (the code before issue 15's column readers): the reference, at the sizes it fits.

Each phase runs in its own process (:func:`bench.measure.run_measured`: wall, peak RSS, CPU), so a phase's
peak RSS is its own; ``idle`` (the imports alone) is the floor the others are read against. Not a test.

    python -m bench.bench_run_store --cases 100000 --batch 5000
    python -m bench.bench_run_store --sizes 100000 1000000 --phases idle,write,write_base,show,report,... \
        --whole-up-to 100000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

METRICS = ("ndcg@10", "recall@10", "recall@100", "map@10", "mrr@10", "precision@10", "map", "mrr", "rprec",
           "success@1")
TAGS = ("topic", "lang")
MANIFEST_ID = "b" * 64
RUN_ID = "20260101T000000Z-bench0"
BASE_ID = "20251231T000000Z-bench1"
SEED_ROWS = int(os.environ.get("BENCH_STORE_SEED_ROWS", "100000"))
"""A larger run is this many cases written by RunWriter, copied with new ids (:func:`_replicate`)."""
COMMAND_PHASES = ("show", "report", "report_against", "report_md")
WHOLE_PHASES = ("load", "show_whole", "report_whole", "attribute_whole")


def _batch(start: int, n: int, rng: random.Random) -> tuple[list[Any], list[Any], list[Any]]:
    """``n`` synthetic cases from ``start``, built with ``model_construct`` (the writer dumps them; validating
    12 objects per case would be most of the bench's time at 1M)."""
    from harness.types import CaseError, CaseOutput, GoldenCase, RankedDoc, Score

    cases, outputs, scores = [], [], []
    for i in range(start, start + n):
        cid = f"q{i:07d}"
        cases.append(GoldenCase.model_construct(
            id=cid, query=f"synthetic query number {i} about topic {i % 17}",
            relevance={f"d{(i * 7) % 50_000}": 1, f"d{(i * 13) % 50_000}": 2},
            tags={"lang": ("en", "de", "fr")[i % 3], "topic": f"t{i % 17}"}))
        error = (CaseError.model_construct(stage="retrieve", kind=("timeout", "RuntimeError")[i % 2],
                                           message=f"synthetic failure of case {i}") if i % 50 == 7 else None)
        outputs.append(CaseOutput.model_construct(
            case_id=cid, ranking=tuple(RankedDoc.model_construct(doc_id=f"d{(i + k) % 50_000}", score=1.0 - k / 100)
                                       for k in range(10)),
            latency_s={"retrieve": rng.random() / 100}, cache_hits={"retrieve": rng.random() < 0.3}, error=error))
        for m in METRICS:
            unscored = i % 101 == 0 or error is not None
            scores.append(Score.model_construct(case_id=cid, metric=m, value=None if unscored else rng.random(),
                                                explanation="no relevance judgments" if unscored else None))
    return cases, outputs, scores


def _replicate(seed: Path, dest: Path, copies: int) -> None:
    """A run of ``copies`` x the seed run's cases, fast: the seed's table (written by RunWriter, ids
    ``q00xxxxx``) copied ``copies`` times, copy ``k`` with ids ``q0kxxxxx`` in every id column and JSON record
    and its score places shifted after the copies before; its header the seed's with rows, counts and the
    aggregates' n scaled (the values are the seed's, repeated: same means). Checked by ``open_run`` as any
    run (schema, rows, sha256)."""
    import hashlib

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    head = json.loads(seed.read_text())
    pf = pq.ParquetFile(seed.with_suffix(".parquet"))
    if pf.metadata.num_rows != SEED_ROWS or copies > 10:
        raise SystemExit(f"replicate: a seed of {SEED_ROWS} rows and at most 10 copies")
    total = pc.sum(pc.list_value_length(pf.read(columns=["score_seq"])["score_seq"])).as_py()
    table = dest.with_suffix(".parquet")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(table, pf.schema_arrow, compression="zstd") as w:
        for k in range(copies):
            for g in range(pf.num_row_groups):
                t = pf.read_row_group(g)
                if k:
                    for name in ("case_id", "case", "output", "scores"):
                        pattern, new = ("q00", f"q0{k}") if name == "case_id" else ('"q00', f'"q0{k}')
                        col = pc.replace_substring(t[name], pattern, new)
                        t = t.set_column(t.schema.get_field_index(name), t.schema.field(name), col)
                    seq = t["score_seq"].combine_chunks()
                    shifted = pa.ListArray.from_arrays(seq.offsets, pc.add(seq.values, k * total))
                    field = t.schema.field("score_seq")
                    t = t.set_column(t.schema.get_field_index("score_seq"), field, shifted.cast(field.type))
                w.write_table(t)
    sha = hashlib.sha256()
    with open(table, "rb") as fh:
        while block := fh.read(1 << 20):
            sha.update(block)
    for summaries in [head["aggregates"]["overall"], *head["aggregates"]["segments"].values()]:
        for summary in summaries.values():
            summary["n"] *= copies
            summary["n_unscored"] *= copies
    head |= {"run_id": dest.stem, "rows": SEED_ROWS * copies, "table": table.name, "table_sha256": sha.hexdigest(),
             "counts": {k: v * copies for k, v in head["counts"].items()}}
    dest.write_text(json.dumps(head, indent=1))


def _manifest() -> Any:
    from harness.types import Manifest

    return Manifest.model_validate({"name": "bench", "artifacts": {}})


def phase(name: str, folder: Path, cases: int, batch: int) -> dict[str, Any]:
    from harness.runs import RunStore, load_run, open_run

    header = folder / MANIFEST_ID / f"{RUN_ID}.json"
    base_header = folder / MANIFEST_ID / f"{BASE_ID}.json"
    start = time.perf_counter()
    out: dict[str, Any] = {}
    if name in ("write", "write_base"):
        from harness.aggregate import AggregateAccumulator
        from harness.metrics.ir import MetricInfo

        rng = random.Random(0 if name == "write" else 1)
        run_id = RUN_ID if name == "write" else BASE_ID
        target = folder.joinpath(MANIFEST_ID, f"{run_id}.json")
        grown = cases >= SEED_ROWS
        if grown and cases % SEED_ROWS:
            raise SystemExit(f"a run of {SEED_ROWS} cases or more is a whole multiple of {SEED_ROWS}")
        if grown:  # the seed is written once (BENCH_STORE_SEED_DIR: shared by the sizes), then copied
            folder = Path(os.environ.get("BENCH_STORE_SEED_DIR") or folder.parent / "seed")
        seed = folder.joinpath(MANIFEST_ID, f"{run_id}.json")
        if not seed.exists():
            n = SEED_ROWS if grown else cases
            infos = {m: MetricInfo(name=m, base=m, cutoff=None, greater_is_better=True, description="")
                     for m in METRICS}
            acc = AggregateAccumulator()
            errors = 0
            with RunStore(folder).writer(MANIFEST_ID, run_id=run_id, metrics=METRICS, tag_keys=TAGS,
                                         latency_stages=("retrieve",)) as w:
                for at in range(0, n, batch):
                    part = _batch(at, min(batch, n - at), rng)
                    w.append(*part)
                    acc.add(part[0], part[2])
                    errors += sum(1 for o in part[1] if o.error is not None)
                w.commit(created_at="2026-01-01T00:00:00Z", manifest=_manifest(), manifest_path=None,
                         environment={}, scorers=(), aggregates=acc.result(infos),
                         stage_seconds={"retrieve": 1.0, "total": 2.0}, counts={"cases": n, "errors": errors})
            out["written_s"] = round(time.perf_counter() - start, 2)
        if grown:
            _replicate(seed, target, cases // SEED_ROWS)
        out["table_mb"] = round(target.with_suffix(".parquet").stat().st_size / 1e6, 1)
    elif name == "show_whole":  # what `runs show` computed before: the run loaded whole
        from harness.report.console import error_summary

        run = load_run(header)
        out["errors"] = error_summary(run.outputs)["total"]
    elif name == "report_whole":  # what `harness report` (HTML, no base) did before
        from harness.report import render_html

        out["html_mb"] = round(len(render_html(load_run(header), corpus=False).encode()) / 1e6, 2)
    elif name in ("attribute", "attribute_whole"):
        import pyarrow.compute as pc

        from harness.attribute import _columns, _means

        if name == "attribute":
            base, head = (_columns(open_run(p), list(METRICS)) for p in (base_header, header))
        else:  # the runs loaded whole, as attribute read them before
            base, head = (_columns(load_run(p), None) for p in (base_header, header))
        ids = pc.filter(base.case_ids, pc.is_in(base.case_ids, value_set=head.case_ids))
        out["means"] = {k: round(v or 0.0, 6) for k, v in _means(head, ids, list(METRICS)).items()}
    elif name == "open":
        out["rows"] = len(open_run(header))  # the header and the table's sha256
    elif name == "columns":
        table = open_run(header)
        out["open_s"] = round(time.perf_counter() - start, 3)
        t0 = time.perf_counter()
        cols = table.columns()
        out["columns_only_s"] = round(time.perf_counter() - t0, 3)
        out["rows"] = len(cols)
        out["mean_ndcg"] = float(cols.values["ndcg@10"][~cols.unscored["ndcg@10"]].mean())
    elif name == "take":
        table = open_run(header)
        out["open_s"] = round(time.perf_counter() - start, 3)
        ids = [f"q{i:07d}" for i in random.Random(1).sample(range(cases), 10)]
        t0 = time.perf_counter()
        got = table.take(ids)
        out["take_only_s"] = round(time.perf_counter() - t0, 3)
        out["taken"] = len(got[1])
    elif name == "load":
        out["scores"] = len(load_run(header).scores)
    elif name != "idle":
        raise SystemExit(f"unknown phase {name}")
    out["seconds"] = round(time.perf_counter() - start, 3)
    return out


def _command(name: str, work: Path) -> list[str]:
    """The real command line of a command phase (run from ``work``, the store under ``HARNESS_HOME``)."""
    harness = str(Path(sys.executable).with_name("harness"))
    header = str(work / "runs" / MANIFEST_ID / f"{RUN_ID}.json")
    base = str(work / "runs" / MANIFEST_ID / f"{BASE_ID}.json")
    return {
        "show": [harness, "runs", "show", RUN_ID, "--json"],
        "report": [harness, "report", header, "--no-corpus", "-o", str(work / "report.html")],
        "report_against": [harness, "report", header, "--against", base, "--no-corpus", "--test", "wilcoxon",
                           "--resamples", "20", "-o", str(work / "report_against.html")],
        "report_md": [harness, "report", header, "--format", "md", "-o", str(work / "report.md")],
    }[name]


def measure(cases: int, batch: int, phases: list[str], whole: bool) -> dict[str, Any]:
    from bench.measure import run_measured

    work = Path(tempfile.mkdtemp(prefix="bench-run-store-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "HARNESS_HOME": str(work)}
    results: dict[str, Any] = {"cases": cases, "batch": batch, "metrics": len(METRICS), "tags": len(TAGS)}
    try:
        for name in phases:
            if name in WHOLE_PHASES and not whole:
                continue
            if name in COMMAND_PHASES:
                argv = _command(name, work)
            else:
                argv = [sys.executable, "-m", "bench.bench_run_store", "--phase", name, "--dir", str(work / "runs"),
                        "--cases", str(cases), "--batch", str(batch)]
            measured = run_measured(argv, work if name in COMMAND_PHASES else Path.cwd(), work / f"{name}.log", env)
            text = Path(measured["stdout"]).read_text() if measured["exit"] == 0 else ""
            inner = json.loads(text or "{}") if name not in COMMAND_PHASES else {}
            results[name] = {"exit": measured["exit"], "peak_rss_mb": measured["peak_rss_mb"],
                             "wall_s": measured["wall_s"], "cpu_s": measured["cpu_s"], **inner}
            if name in ("report", "report_against") and measured["exit"] == 0:
                html = (work / f"{name}.html").read_bytes()
                results[name]["html_mb"] = round(len(html) / 1e6, 2)
            if measured["exit"] != 0:
                results[name]["stderr_tail"] = measured["stderr_tail"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


@contextlib.contextmanager
def _shared_seed() -> Iterator[Path]:
    """One seed folder for every size measured (the seed runs are written once; the sizes copy them)."""
    seed = Path(tempfile.mkdtemp(prefix="bench-run-store-seed-"))
    before = os.environ.get("BENCH_STORE_SEED_DIR")
    os.environ["BENCH_STORE_SEED_DIR"] = str(seed)
    try:
        yield seed
    finally:
        if before is None:
            os.environ.pop("BENCH_STORE_SEED_DIR", None)
        else:
            os.environ["BENCH_STORE_SEED_DIR"] = before
        shutil.rmtree(seed, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="several sizes, each measured in turn")
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--phases", default="idle,write,open,columns,take,load")
    parser.add_argument("--whole-up-to", type=int, default=None,
                        help="run the whole-run phases (load, *_whole) only at sizes up to this (default: all)")
    parser.add_argument("--phase")
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.dir, args.cases, args.batch)))
        return
    out = []
    with _shared_seed():
        for n in args.sizes or [args.cases]:
            whole = args.whole_up_to is None or n <= args.whole_up_to
            out.append(measure(n, args.batch, args.phases.split(","), whole))
            print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    if len(out) > 1:
        ref = out[0]
        for r in out[1:]:  # each command against the whole-run path at the smallest size (the reference)
            r["vs_whole_at_smallest"] = {
                name: {"rss_x": round(r[name]["peak_rss_mb"] / ref[whole]["peak_rss_mb"], 2),
                       "seconds_x": round(r[name]["wall_s"] / ref[whole]["wall_s"], 2)}
                for name, whole in (("show", "show_whole"), ("report", "report_whole"),
                                    ("attribute", "attribute_whole"))
                if name in r and whole in ref and "peak_rss_mb" in r[name]}
    print(json.dumps(out if len(out) > 1 else out[0], indent=1))


def bench_run_store() -> dict[str, Any]:
    """``make bench store``: the commands that read a stored run at 100k and 1M cases, the whole-run path at
    100k as the reference."""
    phases = ["idle", "write", "write_base", "show", "report", "report_against", "report_md", "attribute",
              "show_whole", "report_whole", "attribute_whole"]
    with _shared_seed():
        ref = measure(100_000, 10_000, phases, True)
        big = measure(1_000_000, 10_000, phases, False)
    ratios = {name: {"rss_x_vs_whole_100k": round(big[name]["peak_rss_mb"] / ref[whole]["peak_rss_mb"], 2),
                     "seconds_x_vs_whole_100k": round(big[name]["wall_s"] / ref[whole]["wall_s"], 2)}
              for name, whole in (("show", "show_whole"), ("report", "report_whole"),
                                  ("attribute", "attribute_whole"))
              if "peak_rss_mb" in big.get(name, {}) and "peak_rss_mb" in ref.get(whole, {})}
    return {"100k": ref, "1M": big, "1M_vs_whole_100k": ratios}


if __name__ == "__main__":
    main()
