"""Import a BEIR-layout folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv).

Only queries judged in the chosen split become golden cases (BEIR's own evaluation set). Every
input is read and checked before anything is written: a bad line names file:line; qrels naming an
unknown query or document are errors, not silently dropped (DESIGN principle 4).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.config import decode_utf8
from harness.errors import HarnessError, InputError
from harness.golden import iter_jsonl, validate_record
from harness.importers.project import (
    CORPUS_FILE,
    GOLDEN_FILE,
    ImportedProject,
    manifest_data,
    retrieval_artifacts,
    retrieval_files,
    write_project,
)


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise InputError(path, "missing (a BEIR folder has corpus.jsonl, queries.jsonl and qrels/<split>.tsv)")
    out = []
    for lineno, rec in iter_jsonl(path):
        if not isinstance(rec, dict) or isinstance(rec.get("_id"), bool) or not isinstance(rec.get("_id"), str | int):
            raise InputError(path, "expected an object with an '_id'", line=lineno, field="_id")
        out.append((lineno, rec))
    return out


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    if not path.is_file():
        raise InputError(path, "missing qrels file for this split")
    try:
        text = decode_utf8(path, path.read_bytes(), "qrels file")
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    qrels: dict[str, dict[str, int]] = {}
    for lineno, line in enumerate(text.split("\n"), 1):
        parts = line.rstrip("\r").split("\t")
        if not line.strip():
            continue
        if lineno == 1 and parts[0] == "query-id":
            continue
        if len(parts) != 3:
            raise InputError(path, "expected 3 tab-separated columns (query-id, corpus-id, score), "
                             f"got {len(parts)}", line=lineno)
        try:
            grade = int(parts[2])
        except ValueError:
            raise InputError(path, f"score {parts[2][:40]!r} is not an integer", line=lineno, field="score") from None
        qrels.setdefault(parts[0], {})[parts[1]] = grade
    return qrels


def import_beir(src: str | Path, out: str | Path, split: str = "test", fmt: str = "toml") -> Path:
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise HarnessError(f"{src}: not a folder")
    corpus_lines = _read_jsonl(src / "corpus.jsonl")
    query_lines = _read_jsonl(src / "queries.jsonl")
    qrels_path = src / "qrels" / f"{split}.tsv"
    qrels = read_qrels(qrels_path)

    corpus: list[dict[str, Any]] = []
    doc_ids: set[str] = set()
    for lineno, rec in corpus_lines:
        doc_id = str(rec["_id"])
        if doc_id in doc_ids:
            raise InputError(src / "corpus.jsonl", f"duplicate _id {doc_id!r}", line=lineno, field="_id")
        doc_ids.add(doc_id)
        doc = {"id": doc_id, "title": str(rec.get("title") or ""), "text": str(rec.get("text") or "")}
        if rec.get("metadata"):
            doc["metadata"] = rec["metadata"]
        validate_record(src / "corpus.jsonl", lineno, doc, "corpus_doc.schema.json", "corpus document")
        corpus.append(doc)
    queries = {str(rec["_id"]): (lineno, rec) for lineno, rec in query_lines}
    for qid, judged in qrels.items():
        if qid not in queries:
            raise InputError(qrels_path, f"query-id {qid!r} is not in queries.jsonl", field="query-id")
        for doc_id in judged:
            if doc_id not in doc_ids:
                raise InputError(qrels_path, f"corpus-id {doc_id!r} (query {qid}) is not in corpus.jsonl",
                                 field="corpus-id")
    cases = []
    for qid, (lineno, rec) in queries.items():
        if qid not in qrels:
            continue
        text = str(rec.get("text") or "")
        if not text.strip():
            raise InputError(src / "queries.jsonl", "empty query text", line=lineno, field="text")
        case = {"id": qid, "query": text, "relevance": qrels[qid], "tags": {"split": split}}
        validate_record(src / "queries.jsonl", lineno, case, "golden_case.schema.json", "query")
        cases.append(case)

    name = src.resolve().name
    retriever = {"k": 100, "query_prefix": "", "doc_prefix": "", "text_fields": ["title", "text"], "separator": " "}
    artifacts = {"golden": {"kind": "golden", "version": f"beir-{split}", "path": GOLDEN_FILE},
                 **retrieval_artifacts("beir", retriever)}
    manifest = manifest_data(f"beir-{name}-{split}",
                             f"Imported from BEIR layout {src} (split {split}) by `harness import beir`.", artifacts)
    project = ImportedProject(files={CORPUS_FILE: corpus, GOLDEN_FILE: cases, **retrieval_files()},
                              manifests={"harness.toml": manifest})
    return write_project(out, project, fmt)
