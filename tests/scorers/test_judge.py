"""The opt-in LLM judge: cached calls through the generator interface, verdicts stored in the run."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.manifest import lock
from harness.pipeline import run_manifest
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


def _word_judge(body: Mapping[str, Any]) -> str:
    """A rule-based judge: a claim is supported when every word of 4+ letters occurs in the passages;
    claims mentioning 'garble' get a reply that is not the JSON asked for."""
    user = body["messages"][-1]["content"]
    passages, claims_part = user.split("\n\nClaims:\n", 1)
    claims = re.findall(r"^(\d+)\. (.*)$", claims_part, re.M)
    if any("garble" in c for _, c in claims):
        return "Looks fine to me."
    seen = set(re.findall(r"[a-z]{4,}", passages.lower()))
    return json.dumps({"verdicts": [{"claim": int(i), "supported": set(re.findall(r"[a-z]{4,}", c.lower())) <= seen}
                                    for i, c in claims]})


def test_bench_measures_the_judge_on_labelled_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make bench grounding` with GROUNDING_JUDGE: the llm_judge prompt and parser on (response,
    context) pairs; errors score 0 and are counted; a second pass is served from the cache."""
    from harness.cache import Cache
    from harness.grounding.judge import judge_scores, judge_spec_from_env
    from harness.grounding.measures import roc_auc
    from harness.scorers.judge import judge_generator
    from harness.testing.fake_openai import FakeOpenAIServer, Fault

    monkeypatch.setenv("OPENAI_API_KEY", "sk-bench-judge")
    context = ["Backups run hourly and are kept for seven days.", "Compaction merges segments every night."]
    pairs = [
        ("Backups run hourly. Backups are kept for seven days.", context, 1.0),
        ("Backups run hourly. Backups are kept for thirty days.", context, 0.5),
        ("Compaction merges segments weekly.", context, 0.0),
        ("Hourly.", context, 1.0),  # too short for a sentence claim: judged as one claim
        ("Backups garble the segments.", context, 0.0),  # unparseable reply: an error, never a pass
        ("Compaction crashes the server nightly.", context, 0.0),  # the call keeps failing: an error
        ("Backups run hourly and nightly.", "Backups run hourly. " + "Filler text. " * 40, 0.0),  # cut off
    ]
    responses = [p[0] for p in pairs]
    contexts = [p[1] for p in pairs]
    cache = Cache(":memory:")
    with FakeOpenAIServer(responder=_word_judge) as srv:
        srv.push(Fault.server_error(500), match="crashes", times=None)
        monkeypatch.setenv("GROUNDING_JUDGE", json.dumps({"name": "openai", "model": "judge-1",
                                                          "base_url": srv.base_url, "temperature": 0}))
        spec = judge_spec_from_env()
        assert spec is not None and spec["model"] == "judge-1"
        scores, info = judge_scores(judge_generator(spec), responses, contexts, cache, max_chars=120, max_retries=1)
        assert scores.tolist() == [p[2] for p in pairs]
        assert info["errors"] == 2 and info["error_kinds"] == {"unparseable reply": 1, "call failed: server_error": 1}
        assert info["truncated_contexts"] == 1 and info["calls_cached"] == 0
        first = srv.requests_received
        again, info2 = judge_scores(judge_generator(spec), responses, contexts, cache, max_chars=120, max_retries=1)
        assert again.tolist() == scores.tolist()
        assert srv.requests_received - first == 2  # only the failed call is retried (twice); the rest are cached
        assert info2["calls_cached"] == len(pairs) - 1
    labels = np.array([True, False, False, True, False, False, False])
    assert roc_auc(labels, scores) == 1.0
    monkeypatch.setenv("GROUNDING_JUDGE", "gpt-judge")
    assert judge_spec_from_env() == {"name": "openai", "model": "gpt-judge", "temperature": 0}


@pytest.mark.parametrize(("value", "message"), [
    ('{"name": "openai", "model": ', "GROUNDING_JUDGE: not valid JSON"),
    ('{"name": "openai", "model": "m", "api_key": "sk-oops"}', "api_key"),
    ('{"model": "m"}', "needs a 'name'"),
])
def test_bench_judge_bad_setting_is_one_line_exit_2(value: str, message: str) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {**os.environ, "GROUNDING_JUDGE": value, "GROUNDING_LM": "0"}
    proc = subprocess.run([sys.executable, "-m", "bench", "grounding"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], proc.stderr[-2000:]
    assert "sk-oops" not in proc.stderr + proc.stdout  # a key given by mistake is never echoed
    assert proc.stdout == ""
