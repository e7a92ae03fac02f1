"""Generation through the pipeline: extractive offline default and the openai generator over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.manifest import lock
from harness.pipeline import run_manifest
from tests.conftest import add_generation, make_project


def test_extractive_generation_scores_and_caches(tmp_path: Path) -> None:
    make_project(tmp_path, lock=False)
    manifest = add_generation(tmp_path, '{ name = "extractive", n_passages = 3 }')
    run = run_manifest(manifest).run
    out = {o.case_id: o for o in run.outputs}
    assert run.counts["generated"] == 4 and run.counts["errors"] == 0
    answer = json.loads(out["q1"].answer or "")
    assert "hourly" in answer["answer"] and answer["citations"][0] == "d2"
    assert out["q2"].answer == (out["q2"].answer or "").lower()
    assert out["q1"].messages[0]["content"].startswith("[d2]")
    v = run.case_scores()
    assert v["q1"]["answer_contains"] == 1.0 and v["q1"]["fact_recall"] == 1.0
    assert v["q1"]["format_pass"] == 1.0 and v["q2"]["instructions_strict"] == 1.0
    assert v["q3"]["format_pass"] is None  # no contract: unscored, explicitly
    again = run_manifest(manifest).run
    assert again.counts["generated"] == 0 and again.case_scores() == v
    # a prompt-only change re-renders messages; the extractive generator does not read them, so its
    # cache key (and answer) is unchanged, and embedding and retrieval never re-run
    prompt = tmp_path / "prompts" / "answer.toml"
    prompt.write_text(prompt.read_text().replace("Q: ", "Question: "))
    lock(manifest)
    changed = run_manifest(manifest).run
    assert changed.counts["generated"] == 0 and changed.counts["retrieved"] == 0
    assert changed.counts["embedded_texts"] == 0
    assert "Question: " in {o.case_id: o for o in changed.outputs}["q1"].messages[0]["content"]


def test_openai_generator_end_to_end_with_faults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.testing.fake_openai import FakeOpenAIServer, Fault

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-sentinel-123")
    with FakeOpenAIServer() as srv:
        params = (
            f'{{ name = "openai", model = "fake-1", base_url = "{srv.base_url}", temperature = 0, '
            f"max_tokens = 64, concurrency = 4, max_retries = 2, timeout_s = 5 }}"
        )
        make_project(tmp_path, lock=False)
        manifest = add_generation(tmp_path, params)
        srv.push(
            Fault.server_error(500),
            Fault.server_error(500),
            Fault.server_error(500),
            match="Q: when are TLS certificates rotated",
        )
        run = run_manifest(manifest).run
        out = {o.case_id: o for o in run.outputs}
        assert out["q2"].error is not None and run.counts["errors"] == 1  # counted, never dropped
        assert run.case_scores()["q2"]["answer_contains"] == 0.0  # never scored as a pass
        assert all(out[c].answer for c in ("q1", "q3", "q4"))
        calls = srv.requests_received
        again = run_manifest(manifest).run
        assert again.counts["errors"] == 0 and srv.requests_received == calls + 1  # only the failed case
        prompt = tmp_path / "prompts" / "answer.toml"
        prompt.write_text(prompt.read_text().replace("Q: ", "Question: "))
        lock(manifest)
        changed = run_manifest(manifest).run  # prompt-only change: every case generated again, nothing retrieved
        assert changed.counts["generated"] == 4 and changed.counts["retrieved"] == 0
        assert srv.requests_received == calls + 5
    for path in (tmp_path / ".harness").rglob("*"):
        if path.is_file():
            assert b"sk-test-sentinel-123" not in path.read_bytes(), path


def test_groundedness_flags_a_fabricated_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Copied passage sentences are grounded; an answer with numbers no passage states is not."""
    from harness.testing.fake_openai import FakeOpenAIServer

    def responder(body: dict) -> str:
        prompt = body["messages"][-1]["content"]
        if "how often do backups run" in prompt:
            return '{"answer": "Backups run every 3 hours and are kept for 90 days.", "citations": ["d2"]}'
        return "Backups run hourly and are kept for seven days."

    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    make_project(tmp_path / "extractive", lock=False)
    grounded = run_manifest(add_generation(tmp_path / "extractive")).run.case_scores()
    with FakeOpenAIServer(responder=responder) as srv:
        make_project(tmp_path / "fabricated", lock=False)
        params = f'{{ name = "openai", model = "m", base_url = "{srv.base_url}" }}'
        run = run_manifest(add_generation(tmp_path / "fabricated", params)).run
    fabricated = run.case_scores()
    assert grounded["q1"]["groundedness"] > 0.5 and grounded["q1"]["unsupported_claims"] == 0
    assert fabricated["q1"]["groundedness"] < grounded["q1"]["groundedness"]
    assert fabricated["q1"]["unsupported_claims"] >= 1 and fabricated["q1"]["grounded"] == 0.0
    score = next(s for s in run.scores if s.case_id == "q1" and s.metric == "groundedness")
    assert score.details is not None and any(not c["supported"] for c in score.details["claims"])
    assert "3" in (score.explanation or "") or "90" in (score.explanation or "")
