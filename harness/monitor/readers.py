"""Readers of production logs: JSON Lines, Parquet and OpenTelemetry GenAI spans as OTLP JSON.

Each reader yields the records of one file in order, each with its position (``file:line`` for JSONL,
``file:row N`` for Parquet, 1-based, ``file:trace <id>`` for OTLP) or a :class:`Rejected` line (a record
that cannot be read: it is reported and the rest of the file is still read). A problem with the file as a
whole (missing, unreadable, not the format it claims) is an :class:`~harness.errors.InputError` raised by
:func:`open_source`, before anything of any file is written.

JSONL lines are decoded by :func:`harness.golden.parse_json_line` (strict: UTF-8, no NaN, no repeated keys,
bounded nesting), so a bad line is rejected with the same reason a golden set would give.

OTLP JSON
---------
The layout is the OTLP/JSON encoding of ``ExportTraceServiceRequest``: ``resourceSpans[].scopeSpans[]
.spans[]``, either one JSON document per file or one per line (the collector's ``file`` exporter). Spans
are grouped by ``traceId``; each trace is one record. The attribute names follow the GenAI semantic
conventions of OpenTelemetry semantic-conventions **v1.40.0** (the GenAI conventions as they moved to the
``semantic-conventions-genai`` repository, v0.1.0), with the older forms read as well:

- operation: ``gen_ai.operation.name``; ``chat``, ``text_completion`` and ``generate_content`` are the
  inference span (stage ``generate``), ``retrieval`` the retrieval span (stage ``retrieve``; the older
  ``retrieve``/``retrieve_documents`` values are accepted), ``embeddings`` stage ``embed``; any other
  operation is its own stage name.
- query: the last ``user`` message of the inference span's ``gen_ai.input.messages`` (``[{role, parts:
  [{type: "text", content}]}]``, structured or a JSON string); older forms: ``gen_ai.prompt`` (a JSON list
  of ``{role, content}`` or plain text), the flattened ``gen_ai.prompt.<i>.role/content``, the span events
  ``gen_ai.content.prompt`` (attribute ``gen_ai.prompt``) and ``gen_ai.user.message`` (attribute
  ``content``); without an inference span, the retrieval span's ``gen_ai.retrieval.query.text``.
- answer: the ``assistant`` text of ``gen_ai.output.messages``; older: ``gen_ai.completion`` (JSON or
  text), ``gen_ai.completion.<i>.content``, events ``gen_ai.content.completion`` / ``gen_ai.choice``.
- retrieved ids, scores and contexts: the retrieval span's ``gen_ai.retrieval.documents`` (``[{id, score}]``,
  structured or a JSON string; a document's ``content``/``text`` is its context).
- latency: each span's duration (``endTimeUnixNano - startTimeUnixNano``, seconds) under its stage (spans of
  one stage summed); ``total`` is the root span's duration. ts is the root span's ``startTimeUnixNano``.
- error: the first span (by start time) whose ``status.code`` is ERROR (2); its kind is the span's
  ``error.type``, else ``"error"``. The record is a timeout when that kind contains "timeout" or
  "deadline" (case-insensitive), or when a ``timeout`` attribute (the mapping's name) is true.
- every other scalar resource and span attribute (``service.name``, ``geo``, ...) is kept as an attribute
  (a segment key), first value wins in the order resource, root span, other spans by start time; the
  mapping's ``record_id``, ``manifest_id``, ``contract`` and ``timeout`` name attributes to read those
  columns from (the record id is the trace id when no such attribute is set).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from harness.config import MAX_DEPTH
from harness.errors import InputError
from harness.golden import MAX_LINE_BYTES, parse_json_line
from harness.golden import jsonl_lines as golden_jsonl_lines
from harness.types import LogFieldMap

Format = Literal["jsonl", "parquet", "otlp"]
FormatChoice = Literal["auto", "jsonl", "parquet", "otlp"]
FORMATS: tuple[str, ...] = ("auto", "jsonl", "parquet", "otlp")

_BOM = b"\xef\xbb\xbf"
_JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json", ".log", ".txt"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}
PARQUET_BATCH = 20_000
_OTLP_START = re.compile(rb'\s*\{\s*"resourceSpans"\s*:')


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that cannot be stored: where it is, why, and its text when it has one."""

    position: str
    reason: str
    raw: str | None = None


@dataclass(slots=True)
class Mapped:
    """A record already mapped onto the stored columns (the OTLP reader builds these itself)."""

    record_id: str | None
    ts: datetime
    query: str
    answer: str | None = None
    retrieved_ids: list[str] | None = None
    retrieved_scores: list[float] | None = None
    contexts: list[str] | None = None
    latency: dict[str, float] | None = None
    error: str | None = None
    timeout: bool = False
    manifest_id: str | None = None
    instructions: str | None = None
    contract: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    """One input file, checked: its format and, for OTLP, its decoded documents (small files)."""

    path: Path
    label: str  # how positions name the file (as given on the command line)
    format: Format
    size: int
    rows: int | None = None  # Parquet: the row count from its metadata
    otlp_docs: tuple[tuple[int, Any], ...] = ()  # (line, document) pairs; line 0: the whole file


def detect_format(path: Path, fmt: FormatChoice) -> Format:
    """The format of ``path``: as given, else by suffix (``.parquet``/``.pq``) or content: a JSON file whose
    first key is ``resourceSpans`` is OTLP, any other JSON or JSON Lines file is JSONL."""
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    if suffix in _PARQUET_SUFFIXES:
        return "parquet"
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
            if head == b"PAR1":
                return "parquet"
            head += fh.read(1 << 16)
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    if _OTLP_START.match(head.lstrip(_BOM)):
        return "otlp"
    if suffix in _JSONL_SUFFIXES or head.lstrip(_BOM + b" \t\r\n")[:1] in (b"{", b""):
        return "jsonl"
    raise InputError(path, "cannot tell the log's format from its name or content",
                     hint="pass --format jsonl, parquet or otlp")


def open_source(path: Path, fmt: FormatChoice, label: str | None = None) -> Source:
    """Check a log file before anything is written: it exists, can be read, and is in its format (a Parquet
    file's footer reads; an OTLP file's documents decode). Raises InputError naming the file."""
    label = label if label is not None else str(path)
    if not path.exists():
        raise InputError(label, "no such log file")
    if not path.is_file():
        raise InputError(label, "not a file")
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise InputError(label, f"cannot read: {exc.strerror or exc}") from None
    kind = detect_format(path, fmt)
    if kind == "parquet":
        import pyarrow.parquet as pq

        try:
            meta = pq.ParquetFile(path).metadata
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
            raise InputError(label, f"not a readable Parquet file: {' '.join(str(exc).split())}") from None
        return Source(path, label, kind, size, rows=meta.num_rows)
    if kind == "otlp":
        return Source(path, label, kind, size, otlp_docs=tuple(_otlp_documents(path, label)))
    return Source(path, label, kind, size)


# --- JSON Lines -------------------------------------------------------------------------------------------

_SLOW = object()


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


_FAST_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _fast_json(raw: bytes) -> Any:
    """A line decoded by the C decoder, or :data:`_SLOW` when the strict reader must judge it (escapes that
    may be lone surrogates, deep nesting); raises ValueError for anything the strict reader refuses. A key
    repeated in one object keeps its last value here (the strict reader's check costs 2x on every line)."""
    if b"\\u" in raw or raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        return _SLOW
    return _FAST_DECODER.decode(raw.decode("utf-8"))


def jsonl_lines(source: Source) -> Iterator[tuple[int, int, bytes] | Rejected]:
    """(line number, byte offset, bytes) per non-blank line of a JSONL source (a leading byte-order mark
    removed; :func:`harness.golden.jsonl_lines`), or :class:`Rejected` for a line longer than the reader takes."""
    for lineno, start, raw in golden_jsonl_lines(source.path, source.label):
        if raw is None:
            yield Rejected(f"{source.label}:{lineno}", f"line longer than {MAX_LINE_BYTES >> 20} MiB")
        else:
            yield lineno, start, raw


def decode_line(label: str, lineno: int, offset: int, raw: bytes) -> tuple[str, Any] | Rejected:
    """One JSONL line as (``file:line``, value), or :class:`Rejected` with the strict reader's reason."""
    try:
        value = _fast_json(raw)
    except (ValueError, RecursionError):
        value = _SLOW
    if value is _SLOW:
        try:
            value = parse_json_line(label, raw, lineno, offset)
        except InputError as exc:
            prefix = f"{label}:{lineno}: "
            reason = exc.message[len(prefix):] if exc.message.startswith(prefix) else exc.message
            return Rejected(f"{label}:{lineno}", reason, raw.decode("utf-8", "replace").rstrip("\r\n"))
    return f"{label}:{lineno}", value


def iter_jsonl(source: Source) -> Iterator[tuple[str, Any] | Rejected]:
    """(``file:line``, value) per non-blank line, or :class:`Rejected` for a line that does not decode (the
    reason :func:`harness.golden.parse_json_line` gives). Never stops early on a bad line."""
    for item in jsonl_lines(source):
        yield item if isinstance(item, Rejected) else decode_line(source.label, *item)


# --- Parquet ----------------------------------------------------------------------------------------------


def parquet_columns(source: Source) -> list[str]:
    """Top-level column names of a Parquet source."""
    import pyarrow.parquet as pq

    return list(pq.ParquetFile(source.path).schema_arrow.names)


def iter_parquet(source: Source) -> Iterator[tuple[str, Any] | Rejected]:
    """(``file:row N``, row as a dict) per row, 1-based, read in batches."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(source.path)
        row = 0
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH):
            for value in batch.to_pylist():
                row += 1
                yield f"{source.label}:row {row}", value
    except OSError as exc:
        raise InputError(source.label, f"cannot read: {exc.strerror or exc}") from None
    except Exception as exc:  # a damaged row group: the file is unreadable from here on
        raise InputError(source.label, f"damaged Parquet data: {' '.join(str(exc).split())}") from None


# --- OTLP JSON --------------------------------------------------------------------------------------------


def _otlp_documents(path: Path, label: str) -> Iterator[tuple[int, Any]]:
    """The file's OTLP documents: the whole file when it is one JSON value, else one per non-blank line
    (a line that does not decode is kept as an InputError value, rejected when the records are read)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(label, f"cannot read: {exc.strerror or exc}") from None
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    try:
        whole = json.loads(data)
    except (ValueError, RecursionError):
        whole = None
    if isinstance(whole, dict):
        if "resourceSpans" not in whole:
            raise InputError(label, "not an OTLP JSON trace export: no 'resourceSpans' at the top level")
        yield 0, whole
        return
    offset = 0
    any_doc = False
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        start = offset
        offset += len(raw) + 1
        if not raw.strip():
            continue
        try:
            doc: Any = parse_json_line(label, raw, lineno, start)
        except InputError as exc:
            doc = exc
        if isinstance(doc, dict) and "resourceSpans" in doc:
            any_doc = True
        yield lineno, doc
    if not any_doc:
        raise InputError(label, "not an OTLP JSON trace export: no document with 'resourceSpans'")


def any_value(value: Any) -> Any:
    """An OTLP/JSON ``AnyValue`` as plain Python (int64 values arrive as strings; kvlists become dicts)."""
    if not isinstance(value, dict):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return value["intValue"]
    if "doubleValue" in value:
        v = value["doubleValue"]
        return float(v) if isinstance(v, int | float | str) else v
    if "arrayValue" in value:
        return [any_value(v) for v in (value["arrayValue"] or {}).get("values", []) or []]
    if "kvlistValue" in value:
        return attributes((value["kvlistValue"] or {}).get("values", []) or [])
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes(items: Any) -> dict[str, Any]:
    """``[{key, value: AnyValue}]`` as a dict (first occurrence of a key wins)."""
    out: dict[str, Any] = {}
    if not isinstance(items, list):
        return out
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("key"), str) and item["key"] not in out:
            out[item["key"]] = any_value(item.get("value"))
    return out


_INFERENCE_OPS = {"chat", "text_completion", "generate_content"}
_RETRIEVAL_OPS = {"retrieval", "retrieve", "retrieve_documents"}
_STAGES = {**dict.fromkeys(_INFERENCE_OPS, "generate"), **dict.fromkeys(_RETRIEVAL_OPS, "retrieve"),
           "embeddings": "embed"}
_CONTENT_PREFIXES = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
                     "gen_ai.prompt", "gen_ai.completion", "gen_ai.retrieval.documents",
                     "gen_ai.retrieval.query.text", "gen_ai.tool.definitions", "gen_ai.tool.call.arguments",
                     "gen_ai.tool.call.result")


@dataclass
class _Span:
    span_id: str
    parent: str
    name: str
    start: int
    end: int
    attrs: dict[str, Any]
    resource: dict[str, Any]
    status_code: Any
    status_message: str | None
    events: list[tuple[str, dict[str, Any]]]

    @property
    def op(self) -> str | None:
        op = self.attrs.get("gen_ai.operation.name")
        return op if isinstance(op, str) else None


def _nanos(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    raise ValueError(f"{value!r} is not a count of nanoseconds")


def _spans(doc: dict[str, Any]) -> Iterator[tuple[str, _Span] | str]:
    """(trace id, span) for each span of a document, or a reason string for a span that cannot be read."""
    for rs in doc.get("resourceSpans") or []:
        if not isinstance(rs, dict):
            yield "a resourceSpans entry is not an object"
            continue
        resource = attributes((rs.get("resource") or {}).get("attributes"))
        for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []:
            if not isinstance(ss, dict):
                yield "a scopeSpans entry is not an object"
                continue
            for sp in ss.get("spans") or []:
                if not isinstance(sp, dict) or not isinstance(sp.get("traceId"), str) or not sp["traceId"]:
                    yield "a span without a traceId"
                    continue
                try:
                    start = _nanos(sp.get("startTimeUnixNano"))
                    end = _nanos(sp.get("endTimeUnixNano", start))
                except ValueError as exc:
                    yield f"span {sp.get('spanId')!r} of trace {sp['traceId']}: bad time ({exc})"
                    continue
                status = sp.get("status") or {}
                events = [(str(e.get("name", "")), attributes(e.get("attributes")))
                          for e in sp.get("events") or [] if isinstance(e, dict)]
                yield sp["traceId"], _Span(str(sp.get("spanId", "")), str(sp.get("parentSpanId") or ""),
                                           str(sp.get("name", "")), start, end, attributes(sp.get("attributes")),
                                           resource, status.get("code") if isinstance(status, dict) else None,
                                           status.get("message") if isinstance(status, dict) else None, events)


def _decoded(value: Any) -> Any:
    """A structured attribute recorded as a JSON string (allowed by the conventions) decoded; else as is."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _message_text(message: Any) -> str | None:
    if not isinstance(message, dict):
        return None
    parts = message.get("parts")
    if isinstance(parts, list):
        texts = [str(p["content"]) for p in parts
                 if isinstance(p, dict) and p.get("type", "text") == "text" and isinstance(p.get("content"), str)]
        return "\n".join(texts) if texts else None
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI-style content parts
        texts = [str(p["text"]) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "\n".join(texts) if texts else None
    return None


def _pick(messages: Any, role: str, last: bool) -> str | None:
    messages = _decoded(messages)
    if isinstance(messages, str):
        return messages
    if not isinstance(messages, list):
        return None
    ordered = reversed(messages) if last else iter(messages)
    for m in ordered:
        if isinstance(m, dict) and m.get("role", role) == role:
            text = _message_text(m)
            if text is not None:
                return text
    return None


def _flattened(attrs: dict[str, Any], prefix: str, role: str, last: bool) -> str | None:
    """OpenLLMetry's flattened ``gen_ai.prompt.<i>.role`` / ``.content`` form."""
    found: list[tuple[int, str]] = []
    i = 0
    while f"{prefix}.{i}.content" in attrs or f"{prefix}.{i}.role" in attrs:
        content = attrs.get(f"{prefix}.{i}.content")
        if isinstance(content, str) and attrs.get(f"{prefix}.{i}.role", role) == role:
            found.append((i, content))
        i += 1
    if not found:
        return None
    return found[-1][1] if last else found[0][1]


def _from_attributes(a: dict[str, Any], messages: str, legacy: str, role: str, last: bool) -> str | None:
    """A message's text from a span's attributes: the current ``gen_ai.*.messages``, the legacy attribute, or
    its flattened ``<legacy>.N.content`` form (OpenLLMetry), the first that has one."""
    for text in (_pick(a.get(messages), role, last), _pick(a.get(legacy), role, last)):
        if text is not None:
            return text
    return _flattened(a, legacy, role, last)


def _query_of(span: _Span) -> str | None:
    text = _from_attributes(span.attrs, "gen_ai.input.messages", "gen_ai.prompt", "user", True)
    if text is not None:
        return text
    for name, ea in reversed(span.events):
        if name == "gen_ai.client.inference.operation.details":
            text = _pick(ea.get("gen_ai.input.messages"), "user", True)
        elif name == "gen_ai.content.prompt":
            text = _pick(ea.get("gen_ai.prompt"), "user", True)
        elif name == "gen_ai.user.message":
            text = ea.get("content") if isinstance(ea.get("content"), str) else None
        else:
            continue
        if text is not None:
            return text
    return None


def _answer_of(span: _Span) -> str | None:
    text = _from_attributes(span.attrs, "gen_ai.output.messages", "gen_ai.completion", "assistant", False)
    if text is not None:
        return text
    for name, ea in span.events:
        if name == "gen_ai.client.inference.operation.details":
            text = _pick(ea.get("gen_ai.output.messages"), "assistant", False)
        elif name == "gen_ai.content.completion":
            text = _pick(ea.get("gen_ai.completion"), "assistant", False)
        elif name == "gen_ai.choice":
            msg = _decoded(ea.get("message"))
            text = _message_text(msg) if isinstance(msg, dict) else (msg if isinstance(msg, str) else None)
        else:
            continue
        if text is not None:
            return text
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def scalar_text(value: Any) -> str:
    """A scalar attribute as text: strings as they are, booleans as JSON (``true``), numbers as Python
    prints them (``3``, ``0.25``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_error(code: Any) -> bool:
    return code in (2, "2", "STATUS_CODE_ERROR", "ERROR")


def _trace_record(trace_id: str, spans: list[_Span], mapping: LogFieldMap) -> Mapped | str:
    """One trace as a record, or the reason it cannot be one."""
    spans.sort(key=lambda s: (s.start, s.span_id))
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if not s.parent or s.parent not in ids]
    root = roots[0] if roots else spans[0]
    inference = next((s for s in spans if s.op in _INFERENCE_OPS), None)
    retrieval = next((s for s in spans if s.op in _RETRIEVAL_OPS), None)
    query = _query_of(inference) if inference is not None else None
    if query is None and retrieval is not None:
        q = retrieval.attrs.get("gen_ai.retrieval.query.text")
        query = q if isinstance(q, str) else None
    if query is None or not query.strip():
        return "no user message (gen_ai.input.messages of a chat/text_completion span) or retrieval query text"
    answer = _answer_of(inference) if inference is not None else None
    rec = Mapped(None, datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=root.start // 1000), query,
                 answer=answer)
    fields: dict[str, str] = {}
    if retrieval is not None:
        docs = _decoded(retrieval.attrs.get("gen_ai.retrieval.documents"))
        if docs is not None:
            if not isinstance(docs, list) or not all(isinstance(d, dict) and d.get("id") is not None for d in docs):
                return "gen_ai.retrieval.documents is not a list of {id, score} objects"
            rec.retrieved_ids = [scalar_text(d["id"]) for d in docs]
            scores = [d.get("score") for d in docs]
            if all(isinstance(s, int | float) and not isinstance(s, bool) for s in scores) and scores:
                rec.retrieved_scores = [float(s) for s in scores]
            texts = [d.get("content", d.get("text")) for d in docs]
            if texts and all(isinstance(t, str) for t in texts):
                rec.contexts = texts
    latency: dict[str, float] = {}
    for s in spans:
        if s is root:
            continue
        stage = _STAGES.get(s.op or "", s.op)
        if stage:
            latency[stage] = latency.get(stage, 0.0) + max(s.end - s.start, 0) / 1e9
    latency["total"] = max(root.end - root.start, 0) / 1e9
    rec.latency = latency
    failed = next((s for s in spans if _is_error(s.status_code)), None)
    if failed is not None:
        kind = failed.attrs.get("error.type")
        rec.error = scalar_text(kind) if kind is not None and kind != "" else "error"
        low = rec.error.lower()
        rec.timeout = "timeout" in low or "deadline" in low
    attrs: dict[str, str] = {}
    for s in (root, *(x for x in spans if x is not root)):
        for bag in (s.resource, s.attrs):
            for key, value in bag.items():
                if key not in fields:
                    fields[key] = _json_type(value)
                if key.startswith(_CONTENT_PREFIXES) or key in attrs or value is None \
                        or isinstance(value, list | dict):
                    continue
                attrs[key] = scalar_text(value)
    special = {"record_id": mapping.record_id, "manifest_id": mapping.manifest_id, "contract": mapping.contract,
               "timeout": mapping.timeout}
    rec.record_id = attrs.pop(special["record_id"], None) or trace_id
    rec.manifest_id = attrs.pop(special["manifest_id"], None)
    rec.contract = attrs.pop(special["contract"], None)
    timeout = attrs.pop(special["timeout"], None)
    if timeout == "true":
        rec.timeout = True
    attrs.pop("gen_ai.operation.name", None)  # per span, not per record
    rec.attrs = attrs
    rec.fields = fields
    return rec


def iter_otlp(source: Source, mapping: LogFieldMap) -> Iterator[tuple[str, Mapped] | Rejected]:
    """(``file:trace <id>``, record) per trace of the file, in order of first appearance; a trace without a
    query, a document line that does not decode and a span that cannot be read are :class:`Rejected`."""
    traces: dict[str, list[_Span]] = {}
    for lineno, doc in source.otlp_docs:
        where = f"{source.label}:{lineno}" if lineno else source.label
        if isinstance(doc, InputError):
            reason = doc.message.split(": ", 1)[1] if doc.message.startswith(f"{where}: ") else doc.message
            yield Rejected(where, reason)
            continue
        if not isinstance(doc, dict) or "resourceSpans" not in doc:
            yield Rejected(where, "not an OTLP trace document (no 'resourceSpans')")
            continue
        for item in _spans(doc):
            if isinstance(item, str):
                yield Rejected(where, item)
            else:
                traces.setdefault(item[0], []).append(item[1])
    for trace_id, spans in traces.items():
        position = f"{source.label}:trace {trace_id}"
        rec = _trace_record(trace_id, spans, mapping)
        if isinstance(rec, str):
            yield Rejected(position, rec)
        else:
            yield position, rec
