"""`harness import hotpotqa`: HotpotQA questions as golden cases, their paragraphs as the corpus.

Two record layouts are read, one question per JSON Lines record (or a JSON array of them, as HotpotQA's
own ``hotpot_dev_distractor_v1.json`` is):

* the processed layout (``question_id``, ``question_text``, ``answers_objects`` [{spans, number, date}],
  ``contexts`` [{title, paragraph_text, is_supporting}]);
* HotpotQA's original layout (``_id``, ``question``, ``answer``, ``context`` [[title, [sentences]]],
  ``supporting_facts`` [[title, sentence index]], ``type``, ``level``).

Each question's paragraphs join one corpus; identical paragraphs (same title and text) shared by questions
are one document, whose id is ``p-`` and 16 hex digits of the sha256 of title and text (stable across
imports and subsets). A supporting paragraph is judged relevant (grade 1), the other paragraphs given with
the question judged non-relevant (grade 0). The answer spans are the reference answers; ``type`` and
``level`` become tags when present. The project retrieves from the corpus and answers with the bundled
extractive generator, so ``harness run`` works at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.golden import iter_jsonl, parse_json_line, validate_record
from harness.importers.project import (
    CORPUS_FILE,
    GOLDEN_FILE,
    ImportedProject,
    content_id,
    generation_artifacts,
    generation_files,
    manifest_data,
    retrieval_artifacts,
    retrieval_files,
    write_project,
)

Paragraph = tuple[str, str, bool]  # title, text, supporting


def _records(path: Path) -> list[tuple[int, Any]]:
    """(line, record) of a JSON Lines file, or (1-based position, record) of a file holding one JSON array."""
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        data = path.read_bytes().removeprefix(b"\xef\xbb\xbf") if head.startswith(b"[") else None
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    if data is not None:
        return list(enumerate(parse_json_line(path, data, 1, 0), 1))  # it starts with '[': a list
    return list(iter_jsonl(path))


def _text(path: Path, line: int, value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InputError(path, f"expected a string, got {type(value).__name__}", line=line, field=field)
    return value


def _id(path: Path, line: int, value: Any, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError(path, f"expected a string id, got {type(value).__name__}", line=line, field=field)
    return str(value)


def _processed(path: Path, line: int, rec: dict[str, Any]) -> tuple[str, str, list[str], list[Paragraph]]:
    answers: list[str] = []
    objects = rec.get("answers_objects") or []
    if not isinstance(objects, list):
        raise InputError(path, "expected a list of answer objects", line=line, field="answers_objects")
    for i, obj in enumerate(objects):
        if not isinstance(obj, dict):
            raise InputError(path, "expected an object {spans, number, date}", line=line, field=f"answers_objects.{i}")
        spans = obj.get("spans") or []
        answers += [_text(path, line, s, f"answers_objects.{i}.spans") for s in spans]
        if obj.get("number"):
            answers.append(str(obj["number"]))
        date = obj.get("date") or {}
        if isinstance(date, dict) and any(date.values()):
            answers.append(" ".join(str(date[k]) for k in ("day", "month", "year") if date.get(k)))
    contexts = rec.get("contexts")
    if not isinstance(contexts, list) or not contexts:
        raise InputError(path, "expected a non-empty list of paragraphs", line=line, field="contexts")
    paragraphs: list[Paragraph] = []
    for i, ctx in enumerate(contexts):
        if not isinstance(ctx, dict) or not isinstance(ctx.get("is_supporting"), bool):
            raise InputError(path, "expected {title, paragraph_text, is_supporting (true or false)}", line=line,
                             field=f"contexts.{i}")
        paragraphs.append((_text(path, line, ctx.get("title", ""), f"contexts.{i}.title"),
                           _text(path, line, ctx.get("paragraph_text"), f"contexts.{i}.paragraph_text"),
                           ctx["is_supporting"]))
    question = _text(path, line, rec.get("question_text"), "question_text")
    return _id(path, line, rec["question_id"], "question_id"), question, answers, paragraphs


def _original(path: Path, line: int, rec: dict[str, Any]) -> tuple[str, str, list[str], list[Paragraph]]:
    context = rec.get("context")
    if not isinstance(context, list) or not context:
        raise InputError(path, "expected a non-empty list of [title, [sentences]]", line=line, field="context")
    facts = rec.get("supporting_facts") or []
    if not isinstance(facts, list) or not all(isinstance(f, list) and f and isinstance(f[0], str) for f in facts):
        raise InputError(path, "expected a list of [title, sentence index]", line=line, field="supporting_facts")
    supporting = {f[0] for f in facts}
    paragraphs: list[Paragraph] = []
    for i, item in enumerate(context):
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], list)
                and all(isinstance(s, str) for s in item[1])):
            raise InputError(path, "expected [title, [sentences]]", line=line, field=f"context.{i}")
        paragraphs.append((item[0], "".join(item[1]), item[0] in supporting))
    answer = rec.get("answer")
    answers = [] if answer is None else [_text(path, line, answer, "answer")]
    return _id(path, line, rec["_id"], "_id"), _text(path, line, rec.get("question"), "question"), answers, paragraphs


def read_hotpotqa(path: Path, limit: int | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(golden cases, corpus documents) of a HotpotQA file; every record checked (errors name file:line)."""
    docs: dict[str, dict[str, Any]] = {}
    cases: list[dict[str, Any]] = []
    first: dict[str, int] = {}
    for line, rec in _records(path):
        if limit is not None and len(cases) >= limit:
            break
        if isinstance(rec, dict) and "question_id" in rec:
            qid, question, answers, paragraphs = _processed(path, line, rec)
        elif isinstance(rec, dict) and "_id" in rec:
            qid, question, answers, paragraphs = _original(path, line, rec)
        else:
            raise InputError(path, "expected a HotpotQA question: an object with 'question_id' (processed layout) "
                             "or '_id' (HotpotQA's own)", line=line)
        relevance: dict[str, int] = {}
        for title, text, supporting in paragraphs:
            doc_id = content_id("p-", title, text, length=16)
            docs.setdefault(doc_id, {"id": doc_id, "title": title, "text": text})
            relevance[doc_id] = max(relevance.get(doc_id, 0), int(supporting))
        if not any(relevance.values()):
            raise InputError(path, f"question {qid!r} has no supporting paragraph", line=line)
        tags = {k: str(rec[k]) for k in ("type", "level") if isinstance(rec.get(k), str)}
        case: dict[str, Any] = {"id": qid, "query": question, "relevance": relevance}
        if answers:
            case["answers"] = list(dict.fromkeys(a for a in answers if a.strip()))
        if tags:
            case["tags"] = tags
        validate_record(path, line, case, "golden_case.schema.json", "golden case")
        if qid in first:
            raise InputError(path, f"duplicate question id {qid!r} (first at line {first[qid]})", line=line)
        first[qid] = line
        cases.append(case)
    if not cases:
        raise InputError(path, "no questions found")
    return cases, list(docs.values())


def import_hotpotqa(src: str | Path, out: str | Path, limit: int | None = None, fmt: str = "toml",
                    k: int = 100) -> tuple[Path, int, int]:
    """Write the project; returns the manifest path, the number of cases and of corpus documents."""
    src = Path(src)
    cases, docs = read_hotpotqa(src, limit)
    artifacts = {"golden": {"kind": "golden", "version": f"hotpotqa-{src.stem}", "path": GOLDEN_FILE},
                 **retrieval_artifacts(f"hotpotqa-{src.stem}", {"k": k, "text_fields": ["title", "text"]}),
                 **generation_artifacts()}
    description = (f"Imported from {src} by `harness import hotpotqa`"
                   + (f" (first {limit} questions)" if limit is not None else "") + ".")
    project = ImportedProject(
        files={GOLDEN_FILE: cases, CORPUS_FILE: docs, **retrieval_files(), **generation_files()},
        manifests={"harness.toml": manifest_data(f"hotpotqa-{src.stem}", description, artifacts)},
    )
    return write_project(out, project, fmt), len(cases), len(docs)
