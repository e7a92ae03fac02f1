"""The opt-in LLM judge: cached calls through the generator interface, verdicts stored in the run."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.manifest import lock
from harness.run import run_manifest
from harness.scorers.judge import parse_verdicts
from tests.conftest import add_generation, make_project


def judge_responder(body: Mapping[str, Any]) -> str:
    """Supports a claim when it mentions 'hourly'; replies garbage for claims mentioning 'ninety'."""
    user = body["messages"][-1]["content"]
    claims = re.findall(r"^(\d+)\. (.*)$", user.split("Claims:", 1)[-1], re.M)
    if any("ninety" in c for _, c in claims):
        return "I think so."
    return json.dumps({"verdicts": [{"claim": int(i), "supported": "hourly" in c, "reason": "checked"}
                                    for i, c in claims]})


def test_judge_scores_caches_and_stores_verdicts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.testing.fake_openai import FakeOpenAIServer

    monkeypatch.setenv("OPENAI_API_KEY", "sk-judge")
    make_project(tmp_path, lock=False)
    manifest = add_generation(tmp_path, '{ name = "extractive" }')
    with FakeOpenAIServer(responder=judge_responder) as srv:
        manifest.write_text(manifest.read_text() + f"""
[[scorers]]
name = "llm_judge"
args = {{ generator = {{ name = "openai", model = "judge-1", base_url = "{srv.base_url}", temperature = 0 }} }}
""")
        lock(manifest)
        run = run_manifest(manifest).run
        calls = srv.requests_received
        assert calls >= 3
        by = {(s.case_id, s.metric): s for s in run.scores}
        q1 = by[("q1", "judge_support")]
        assert q1.details is not None
        verdicts = {c["claim"]: c["supported"] for c in q1.details["claims"]}
        assert verdicts == {c: "hourly" in c for c in verdicts} and any(verdicts.values())
        assert q1.value == pytest.approx(sum(verdicts.values()) / len(verdicts))
        assert by[("q1", "judge_unsupported_claims")].value == len(verdicts) - sum(verdicts.values())
        q2 = by[("q2", "judge_support")]
        assert q2.value is None and "unparseable" in (q2.explanation or "")  # never read as a pass
        assert "answer_contains" in run.aggregates.overall  # defaults still run beside the judge
        again = run_manifest(manifest).run
        assert srv.requests_received == calls  # cached: a re-run never re-judges
        assert {(s.case_id, s.metric): s.value for s in again.scores} == {k: s.value for k, s in by.items()}


def test_parse_verdicts() -> None:
    assert [v["supported"] for v in parse_verdicts('{"verdicts": [{"claim": 2, "supported": false}, '
                                                   '{"claim": 1, "supported": true}]}', 2)] == [True, False]
    with pytest.raises(ValueError, match="claim"):
        parse_verdicts('{"verdicts": [{"claim": 1, "supported": true}]}', 2)
    with pytest.raises(ValueError):
        parse_verdicts('{"verdicts": [{"claim": 1, "supported": "yes"}]}', 1)
