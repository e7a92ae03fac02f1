"""OpenTelemetry GenAI spans (OTLP JSON) into the log store: one record per trace, read back column by column."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import harness.monitor.ingest as ing
from harness.monitor.store import LogStore
from harness.storage import Layout
from harness.types import LogFieldMap

START = 1772409600_000000000  # 2026-03-02T00:00:00Z in ns


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        v: dict[str, Any] = {"boolValue": value}
    elif isinstance(value, int):
        v = {"intValue": str(value)}
    elif isinstance(value, float):
        v = {"doubleValue": value}
    else:
        v = {"stringValue": value}
    return {"key": key, "value": v}


def _span(trace: str, sid: str, parent: str, name: str, start_ms: int, end_ms: int, attrs: list[dict[str, Any]],
          status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"traceId": trace, "spanId": sid, "parentSpanId": parent, "name": name, "kind": 1,
            "startTimeUnixNano": str(START + start_ms * 1_000_000), "endTimeUnixNano": str(START + end_ms * 1_000_000),
            "attributes": attrs, "status": status or {}}


def _trace(trace: str, offset_ms: int, *, error: bool = False, old_form: bool = False) -> list[dict[str, Any]]:
    docs = json.dumps([{"id": "d1", "score": 0.9, "content": "passage one"},
                       {"id": "d2", "score": 0.4, "content": "passage two"}])
    if old_form:
        llm_attrs = [_attr("gen_ai.operation.name", "chat"),
                     _attr("gen_ai.prompt", json.dumps([{"role": "system", "content": "be brief"},
                                                        {"role": "user", "content": f"old question {trace}"}])),
                     _attr("gen_ai.completion.0.role", "assistant"),
                     _attr("gen_ai.completion.0.content", "old answer")]
    else:
        llm_attrs = [_attr("gen_ai.operation.name", "chat"), _attr("gen_ai.request.model", "m-1"),
                     _attr("gen_ai.usage.input_tokens", 42),
                     _attr("gen_ai.input.messages", json.dumps([
                         {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
                         {"role": "user", "parts": [{"type": "text", "content": f"question {trace}"}]}])),
                     {"key": "gen_ai.output.messages", "value": {"arrayValue": {"values": [{"kvlistValue": {"values": [
                         _attr("role", "assistant"),
                         {"key": "parts", "value": {"arrayValue": {"values": [{"kvlistValue": {"values": [
                             _attr("type", "text"), _attr("content", "the answer")]}}]}}}]}}]}}}]
    if error:
        llm_attrs.append(_attr("error.type", "TimeoutError"))
    return [
        _span(trace, "r" + trace, "", "rag.request", offset_ms, offset_ms + 1500, [_attr("geo", "eu"),
                                                                               _attr("tenant.tier", 2)]),
        _span(trace, "a" + trace, "r" + trace, "retrieval", offset_ms + 10, offset_ms + 260,
              [_attr("gen_ai.operation.name", "retrieval"), _attr("gen_ai.retrieval.documents", docs),
               _attr("gen_ai.retrieval.query.text", "retrieval text")]),
        _span(trace, "b" + trace, "r" + trace, "chat m-1", offset_ms + 300, offset_ms + 1450, llm_attrs,
              {"code": 2, "message": "deadline"} if error else {"code": 1}),
    ]


def _doc(spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceSpans": [{"resource": {"attributes": [_attr("service.name", "rag-api")]},
                               "scopeSpans": [{"scope": {"name": "app"}, "spans": spans}]}]}


def test_otlp_traces_become_records(tmp_path: Path) -> None:
    layout = Layout(tmp_path / ".harness")
    path = tmp_path / "traces.json"
    # spans of one trace may be split across documents (batches): one document per line
    t1, t2, t3 = _trace("aa01", 0), _trace("aa02", 60_000, error=True), _trace("aa03", 120_000, old_form=True)
    lines = [_doc(t1[:2]), _doc([*t1[2:], *t2]), _doc(t3), _doc([_span("aa04", "x", "", "noise", 0, 1, [])])]
    path.write_text("\n".join(json.dumps(d) for d in lines) + "\n")
    f = ing.ingest([path], layout=layout, mapping=LogFieldMap()).files[0]
    assert f.format == "otlp"
    assert (f.records, f.added) == (4, 3)
    assert f.rejected[0][0] == f"{path}:trace aa04" and "no user message" in f.rejected[0][1]
    rows = {r["record_id"]: r for r in LogStore(layout).read().to_pylist()}
    r1 = rows["aa01"]
    assert r1["ts"] == datetime(2026, 3, 2, tzinfo=UTC)
    assert (r1["query"], r1["answer"]) == ("question aa01", "the answer")
    assert (r1["retrieved_ids"], r1["retrieved_scores"]) == (["d1", "d2"], [0.9, 0.4])
    assert r1["contexts"] == ["passage one", "passage two"]
    assert dict(r1["latency"]) == {"retrieve": 0.25, "generate": 1.15, "total": 1.5}
    assert (r1["error"], r1["timeout"]) == (None, False)
    assert dict(r1["attrs"]) == {"service.name": "rag-api", "geo": "eu", "tenant.tier": "2",
                                 "gen_ai.request.model": "m-1", "gen_ai.usage.input_tokens": "42"}
    assert r1["source"] == f"{path}:trace aa01"
    assert dict(r1["fields"])["gen_ai.output.messages"] == "array"
    r2 = rows["aa02"]
    assert (r2["error"], r2["timeout"]) == ("TimeoutError", True)
    assert r2["ts"] == datetime(2026, 3, 2, 0, 1, tzinfo=UTC)
    r3 = rows["aa03"]
    assert (r3["query"], r3["answer"]) == ("old question aa03", "old answer")
    # one document for the whole file works the same; ingesting the same traces again adds nothing
    whole = tmp_path / "whole.json"
    whole.write_text(json.dumps(_doc([*t1, *t2])))
    g = ing.ingest([whole], layout=layout, mapping=LogFieldMap()).files[0]
    assert (g.format, g.records, g.added, g.skipped) == ("otlp", 2, 0, 2)


def test_a_damaged_otlp_line_is_rejected_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(_doc(_trace("bb01", 0))) + "\n{oops\n" + json.dumps(_doc(_trace("bb02", 5))) + "\n")
    f = ing.ingest([path], layout=Layout(tmp_path / "h"), mapping=LogFieldMap()).files[0]
    assert f.format == "otlp" and f.added == 2
    assert [p for p, _ in f.rejected] == [f"{path}:2"]
