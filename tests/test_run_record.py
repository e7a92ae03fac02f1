"""The run record is typed end to end: version-1 run files load through one migration, version 2 round-trips,
other versions are refused; a retrieval failure is a typed error of its case."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import InputError
from harness.runs import RunStore, load_run
from harness.types import CaseError, GenerationRecord, Manifest, ScorerSpec
from tests.reliability.clirun import cli_in_process

DATA = Path(__file__).parent / "data"
V1_ERRORS = DATA / "run_v1_errors.json"  # `harness run` (version 1) of the test project against a faulty endpoint
V1_INIT = DATA / "run_v1_init.json"  # `harness init` + `harness run` (version 1): gates, extractive generator


def _raw(path: Path) -> dict:
    return json.loads(path.read_text("utf-8"))


def test_a_version_1_run_loads_typed_with_every_number_kept() -> None:
    raw = _raw(V1_ERRORS)
    assert raw["format_version"] == 1
    run = load_run(V1_ERRORS)
    assert run.format_version == 3
    assert isinstance(run.manifest, Manifest) and run.manifest.id == run.manifest_id == raw["manifest_id"]
    assert run.manifest.metrics.retrieval == tuple(raw["manifest"]["metrics"]["retrieval"])
    assert run.scorers[0] == ScorerSpec(name="retrieval", args=raw["scorers"][0]["args"])
    out = {o.case_id: o for o in run.outputs}
    assert out["q1"].error == CaseError(stage="generate", kind="empty_response", message=raw["outputs"][0]["error"])
    assert out["q4"].error is not None and out["q4"].error.kind == "content_filter"
    assert out["q2"].error is None and out["q2"].generation == GenerationRecord(
        attempts=1, passages_shown=tuple(raw["outputs"][1]["extra"]["passages_shown"]), finish_reason="length")
    assert out["q2"].generation.truncated and not out["q3"].generation.truncated  # type: ignore[union-attr]
    # scores and aggregates as they were stored; version 1's per-validator metrics become diagnostics
    assert [s.model_dump() for s in run.scores] == raw["scores"]
    for name, summary in raw["aggregates"]["overall"].items():
        got = run.aggregates.overall[name]
        assert (got.mean, got.n, got.n_unscored, got.greater_is_better) == (
            summary["mean"], summary["n"], summary["n_unscored"], summary["greater_is_better"])
        diagnostic = name in ("format_fail:json_cited.parses", "format_fail:json_cited.cites",
                              "format_fail:short_plain.words")
        assert got.role == ("diagnostic" if diagnostic else "quality"), name
        assert got.label == (name.split(":", 1)[1] if diagnostic else None)
    assert run.counts == raw["counts"]


def test_a_migrated_run_is_stored_as_version_4_and_loads_the_same(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    for fixture in (V1_ERRORS, V1_INIT):
        run = load_run(fixture)
        path = RunStore(tmp_path / "runs").save(run)
        stored = _raw(path)
        assert stored["format_version"] == 4  # the header; the cases, outputs and scores are in its table
        outputs = [json.loads(o) for o in pq.read_table(path.with_suffix(".parquet"))["output"].to_pylist()]
        assert all("extra" not in o and "error_stage" not in o for o in outputs)
        again = load_run(path)
        assert again.model_dump(exclude={"manifest_path"}) == run.model_dump(exclude={"manifest_path"})


def test_version_1_gate_rules_stored_with_their_defaults_load() -> None:
    # version 1 stored `quantile = 0.95` on every rule, which a non-latency rule may not set
    assert all("quantile" in g for g in _raw(V1_INIT)["manifest"]["gates"])
    run = load_run(V1_INIT)
    assert [g.metric for g in run.manifest.gates] == ["ndcg@10", "answer_contains"]
    assert all("quantile" not in g for g in run.manifest.model_dump(mode="json")["gates"])


@pytest.mark.parametrize("fmt", ["md", "json", "junit"])
def test_reports_of_a_version_1_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = cli_in_process(capsys, "report", str(V1_ERRORS), "--format", fmt)
    assert code == 0, err
    assert "q1" in out and "empty_response" in out


def _run_file(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data), "utf-8")
    return path


def test_a_version_2_run_loads_as_version_3(tmp_path: Path) -> None:
    # version 2 files lack the supplied-outputs fields of version 3 (CaseOutput.contexts, GoldenCase.output)
    run = load_run(V1_ERRORS)
    data = json.loads(run.model_dump_json())
    for o in data["outputs"]:
        del o["contexts"]
    for c in data["cases"]:
        del c["output"]
    loaded = load_run(_run_file(tmp_path, {**data, "format_version": 2}))
    assert loaded.format_version == 3
    assert loaded.model_dump(exclude={"manifest_path"}) == run.model_dump(exclude={"manifest_path"})


@pytest.mark.parametrize("version", [0, 5, "2", None])  # 4 is the columnar header (tests/test_run_store_columnar.py)
def test_an_unknown_format_version_is_one_error_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str], version: object) -> None:
    path = _run_file(tmp_path, {**_raw(V1_ERRORS), "format_version": version})
    with pytest.raises(InputError, match=r"run format version .* is not supported"):
        load_run(path)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli_in_process(capsys, "report", str(path))
    assert code == 2 and str(path) in err and "format_version" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(("change", "field"), [
    ({"extra": {"attempts": 1, "passages_shown": [], "tokens": 5}}, "outputs.0.extra.tokens"),
    ({"extra": {"attempts": 1}}, "outputs.0.extra"),
    ({"error_stage": "score"}, "outputs.0.error_stage"),
    ({"extra": {"attempts": "many", "passages_shown": []}}, "outputs.0.extra.attempts"),
])
def test_a_version_1_output_that_does_not_fit_is_bad_input_naming_the_field(tmp_path: Path, change: dict,
                                                                              field: str) -> None:
    data = _raw(V1_ERRORS)
    data["outputs"][0] = {**data["outputs"][0], **change}
    with pytest.raises(InputError) as info:
        load_run(_run_file(tmp_path, data))
    assert info.value.exit_code == 2 and field in str(info.value), str(info.value)


def test_a_version_2_run_with_a_version_1_output_is_refused(tmp_path: Path) -> None:
    run = load_run(V1_ERRORS)
    data = json.loads(run.model_dump_json())
    data["outputs"][0]["extra"] = {"attempts": 1}
    with pytest.raises(InputError, match="damaged run file"):
        load_run(_run_file(tmp_path, data))



# --- a retrieval failure is an error of its case ------------------------------------------------------------


@pytest.fixture
def failing_query(monkeypatch: pytest.MonkeyPatch) -> str:
    """Embedding q2's query raises (as a model or an endpoint might on one input); every other text embeds."""
    from harness.embed import Embedder

    needle = "TLS certificates"
    real = Embedder.embed

    def embed(self: Embedder, texts: list[str], prefix: str = "", description: str = "embedding",
              **_: object) -> object:
        if description == "embedding queries" and any(needle in t for t in texts):
            raise RuntimeError("injected: this query cannot be embedded")
        return real(self, texts, prefix, description)

    monkeypatch.setattr(Embedder, "embed", embed)
    return needle


def _generation_project(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from tests.conftest import add_generation, make_project

    monkeypatch.delenv("HARNESS_HOME", raising=False)
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)
    monkeypatch.chdir(root)
    make_project(root, lock=False)
    return add_generation(root)


def test_a_retrieval_failure_is_a_typed_error_of_its_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str], failing_query: str,
                                                          ) -> None:
    _generation_project(tmp_path, monkeypatch)
    code, out, err = cli_in_process(capsys, "run", "--json")
    assert code == 1, err  # fail closed, as for a generation error
    assert "errors: 1 of 4 cases errored" in err and "RuntimeError: 1 in retrieve (q2)" in err, err
    summary = json.loads(out)
    assert summary["counts"]["errors"] == 1 and summary["counts"]["retrieval_errors"] == 1
    assert summary["errors"]["by_kind"]["RuntimeError"]["stage"] == "retrieve"

    from harness.runs import load_run

    run = load_run(summary["path"])
    outputs = {o.case_id: o for o in run.outputs}
    q2 = outputs["q2"]
    assert q2.error == CaseError(stage="retrieve", kind="RuntimeError",
                                 message="RuntimeError: injected: this query cannot be embedded")
    assert q2.ranking == () and q2.answer is None and q2.generation is None  # never sent to the generator
    assert all(outputs[c].error is None and outputs[c].ranking for c in ("q1", "q3", "q4"))
    scores = {(s.case_id, s.metric): s for s in run.scores}
    for metric in run.manifest.metrics.retrieval:  # unscored with the reason, not a 0 nor a pass
        s = scores[("q2", metric)]
        assert s.value is None and s.explanation == f"retrieval failed: {q2.error.message}", metric
        assert scores[("q1", metric)].value is not None
    assert scores[("q2", "answer_contains")].value == 0.0  # no answer is never a pass
    assert (scores[("q2", "answer_contains")].explanation or "").startswith("retrieval failed: RuntimeError")

    code, _, err = cli_in_process(capsys, "run", "--allow-errors")
    assert code == 0, err


def test_a_failed_retrieval_is_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    _generation_project(tmp_path, monkeypatch)
    with monkeypatch.context() as m:
        from harness.embed import Embedder

        real = Embedder.embed

        def embed(self: Embedder, texts: list[str], prefix: str = "", description: str = "embedding",
                  **_: object) -> object:
            if description == "embedding queries" and any("TLS certificates" in t for t in texts):
                raise RuntimeError("injected")
            return real(self, texts, prefix, description)

        m.setattr(Embedder, "embed", embed)
        assert cli_in_process(capsys, "run")[0] == 1
    code, out, err = cli_in_process(capsys, "run", "--json")
    assert code == 0, err
    counts = json.loads(out)["counts"]
    assert counts["errors"] == 0 and counts["retrieved"] == 1  # only q2 retrieved again; the rest cached


def test_a_setup_problem_while_retrieving_still_stops_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from harness.embed import Embedder
    from harness.errors import MissingDependencyError

    _generation_project(tmp_path, monkeypatch)

    def embed(self: Embedder, texts: list[str], prefix: str = "", description: str = "embedding",
              **_: object) -> object:
        raise MissingDependencyError("the embedding model needs a package", hint="pip install it")

    monkeypatch.setattr(Embedder, "embed", embed)
    code, _, err = cli_in_process(capsys, "run")
    assert code == 2 and "needs a package" in err and len(err.strip().splitlines()) == 1, err


def test_a_retrieval_stage_that_fails_every_query_is_not_recorded_as_case_errors(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # a broken stage (every query raises) is not N case errors that --allow-errors would let pass
    from harness.embed import Embedder

    _generation_project(tmp_path, monkeypatch)
    real = Embedder.embed

    def embed(self: Embedder, texts: list[str], prefix: str = "", description: str = "embedding",
              **_: object) -> object:
        if description == "embedding queries":
            raise RuntimeError("injected: the query encoder is broken")
        return real(self, texts, prefix, description)

    monkeypatch.setattr(Embedder, "embed", embed)
    code, _, err = cli_in_process(capsys, "run", "--allow-errors")
    assert code == 3 and "the query encoder is broken" in err, err
    assert not list((tmp_path / ".harness" / "runs").rglob("*.json"))
