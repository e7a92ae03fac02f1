"""`harness import trec`: qrels and TREC run files as a project whose runs diff and gate.

The qrels (read as trec_eval reads them, :func:`harness.metrics.trec.files.read_qrels`) become the golden
cases, one per judged query, with its judgments as graded relevance; the query text comes from a topics
file when given (TSV ``qid<TAB>text``, or JSON Lines ``{id|_id, query|text}``), else it is the query id.
Each run file is checked as trec_eval reads it, copied into ``runs/<name>`` and pinned as an outputs
artifact with ``params = { format = "trec" }``: the first run is the project's manifest, each further run a
variant manifest ``variants/<name>.toml`` (same golden set, its own outputs pin), so ``harness run``,
``harness baseline promote`` and ``harness gate --manifest variants/<name>.toml`` compare two run files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.config import decode_utf8
from harness.errors import HarnessError, InputError
from harness.golden import iter_jsonl, validate_record
from harness.importers.project import GOLDEN_FILE, ImportedProject, manifest_data, write_project
from harness.metrics.trec.files import read_qrels, read_run

METRICS = ["map", "ndcg", "ndcg@10", "precision@10", "recall@100", "recall@1000", "mrr", "rprec"]
"""What trec_eval's official measures and the usual cut-offs report; every one trec_eval-exact."""
GATES = [{"metric": "map", "max_drop": 0.05}, {"metric": "ndcg@10", "max_drop": 0.05}]
"""A starting point: fail a variant whose MAP or nDCG@10 drops significantly by more than 5%."""


def read_topics(path: Path) -> dict[str, str]:
    """{query id: text} from a TSV ``qid<TAB>text`` file or JSON Lines ``{id|_id, query|text}``."""
    topics: dict[str, str] = {}
    if path.suffix in (".jsonl", ".ndjson", ".json"):
        for line, rec in iter_jsonl(path):
            qid = rec.get("id", rec.get("_id")) if isinstance(rec, dict) else None
            text = rec.get("query", rec.get("text")) if isinstance(rec, dict) else None
            if isinstance(qid, bool) or not isinstance(qid, str | int) or not isinstance(text, str):
                raise InputError(path, "expected an object {id (or _id), query (or text)}", line=line)
            topics[str(qid)] = text
    else:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
        for line, raw in enumerate(decode_utf8(path, data, "topics file").split("\n"), 1):
            if not raw.strip():
                continue
            qid, tab, text = raw.rstrip("\r").partition("\t")
            if not tab:
                raise InputError(path, "expected 'query_id<TAB>text'", line=line)
            topics[qid.strip()] = text.strip()
    if not topics:
        raise InputError(path, "no topics found")
    return topics


def _run_name(path: Path) -> str:
    """A run's name in the project (file and variant names): its file name, with anything but letters,
    digits, '.', '_' and '-' replaced."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", path.name).lstrip(".") or "run"


def import_trec(qrels: str | Path, runs: Sequence[str | Path], out: str | Path, topics: str | Path | None = None,
                fmt: str = "toml") -> tuple[Path, list[Path], int]:
    """Write the project; returns the manifest path, the variant manifests' paths and the number of cases."""
    qrels_path = Path(qrels)
    if not runs:
        raise HarnessError("give at least one run file (--run RUN)")
    judged = read_qrels(qrels_path).to_mapping()
    texts = read_topics(Path(topics)) if topics is not None else {}
    if topics is not None:
        missing = [q for q in judged if q not in texts]
        if missing:
            raise InputError(topics, f"no text for the judged query {missing[0]!r} ({len(missing)} of {len(judged)} "
                             "missing)")
    cases: list[dict[str, Any]] = []
    for qid, grades in judged.items():
        case = {"id": qid, "query": texts.get(qid, qid), "relevance": grades}
        validate_record(qrels_path, None, case, "golden_case.schema.json", f"query {qid}")
        cases.append(case)
    names: dict[str, Path] = {}
    files: dict[str, Any] = {GOLDEN_FILE: cases}
    for run in map(Path, runs):
        ranked = read_run(run)
        if not any(q.decode("utf-8", "replace") in judged for q in ranked.query_bytes):
            raise InputError(run, f"no query of this run is judged in {qrels_path}")
        name = _run_name(run)
        if name in names:
            raise HarnessError(f"two runs are named {name!r} ({names[name]} and {run})",
                               hint="rename one of the files")
        names[name] = run
        files[f"runs/{name}"] = run.read_bytes()
    golden = {"kind": "golden", "version": f"qrels-{qrels_path.name}", "path": GOLDEN_FILE}
    manifests: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(names):
        outputs = {"kind": "outputs", "version": name, "path": f"runs/{name}", "params": {"format": "trec"}}
        artifacts: dict[str, dict[str, Any]] = {"golden": golden, "outputs": outputs}
        manifests["harness.toml" if i == 0 else f"variants/{name}.toml"] = manifest_data(
            f"trec-{name}", f"TREC run {names[name]} judged by {qrels_path}, imported by `harness import trec`.",
            artifacts, metrics={"retrieval": METRICS}, gates=GATES)
    path = write_project(out, ImportedProject(files=files, manifests=manifests), fmt)
    variants = [path.parent / (Path(rel).with_suffix(path.suffix)) for rel in list(manifests)[1:]]
    return path, variants, len(cases)
