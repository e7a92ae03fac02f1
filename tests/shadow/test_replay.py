"""Shadow replay: logged queries through a baseline and a candidate, judged like the gate.

Against the fake chat model of :mod:`harness.testing.shadow` through the real ``openai`` client: a candidate
whose prompt drops the format line fails on ``format_pass`` overall and per segment, a coarse IVF index
fails on the retrieval scores and groundedness, a reworded prompt passes; A/A replays (the same system under
another generator seed) stay within the nominal false-alarm rate; on a 0/1 metric the diff's sign-flip
p-value is the exact McNemar p-value (scipy's binomial test on the discordant pairs).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from harness.errors import HarnessError
from harness.manifest import LoadedManifest, load_manifest
from harness.monitor.synthetic import StreamSpec
from harness.shadow.logs import LogQuery, parse_time
from harness.shadow.model import ReplayReport
from harness.shadow.replay import ReplayRequest, default_rules, plan_replay, replay, report_path
from harness.storage import Layout
from harness.testing import FakeOpenAIServer, Fault
from harness.testing.shadow import (
    SYSTEM,
    SYSTEM_NEUTRAL,
    ShadowProject,
    logged_traffic,
    shadow_responder,
    write_shadow_project,
)

SPEC = StreamSpec(days=3, records_per_day=400)
N_LOGGED = 150
ENV = {"OPENAI_API_KEY": "test", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture(scope="module", autouse=True)
def _env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for k, v in ENV.items():
            mp.setenv(k, v)
        for k in ("HARNESS_HOME", "HARNESS_CACHE_DIR", "OPENAI_BASE_URL"):
            mp.delenv(k, raising=False)
        yield


@dataclass
class World:
    srv: FakeOpenAIServer
    project: ShadowProject
    log: Path

    def m(self, which: str) -> LoadedManifest:
        return load_manifest(getattr(self.project, which))

    @property
    def layout(self) -> Layout:
        return Layout.for_manifest(self.project.baseline)

    def request(self, candidate: str | Path, baseline: str = "baseline", **kw: Any) -> ReplayRequest:
        cand = load_manifest(candidate) if isinstance(candidate, Path) else self.m(candidate)
        return ReplayRequest(baseline=self.m(baseline), candidate=cand, layout=self.layout,
                             log=kw.pop("log", self.log), **kw)


def _world(tmp: Path, srv: FakeOpenAIServer, limit: int, **kw: Any) -> World:
    project = write_shadow_project(tmp / "proj", base_url=srv.base_url, spec=SPEC, **kw)
    log = logged_traffic(SPEC, tmp / "logs" / "traffic.jsonl", manifest_id=load_manifest(project.baseline).id,
                         limit=limit)
    return World(srv, project, log)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with FakeOpenAIServer(responder=shadow_responder()) as srv:
        yield _world(tmp_path_factory.mktemp("replay"), srv, N_LOGGED)


@pytest.fixture(scope="module")
def runs(world: World) -> dict[str, ReplayReport]:
    return {name: replay(world.request(name)) for name in ("neutral", "format_broken", "coarse_ivf")}


def _failed(report: ReplayReport) -> set[tuple[str, str | None]]:
    return {(r.metric, r.segment) for r in report.results if r.status == "fail"}


def _p(report: ReplayReport, metric: str, segment: str = "all") -> float | None:
    md = report.diff.metric(metric, segment)
    assert md is not None
    return md.p_adjusted


# --- the three candidates --------------------------------------------------------------------------------


def test_format_broken_candidate_fails_on_format_pass_overall_and_in_every_segment(runs: dict[str, ReplayReport]
                                                                                   ) -> None:
    rep = runs["format_broken"]
    assert rep.status == "fail" and rep.rules == "default"
    failed = _failed(rep)
    assert ("format_pass", None) in failed
    segments = {seg for m, seg in failed if m == "format_pass" and seg}
    assert {"geo=eu", "geo=us", "geo=apac", "device=web", "device=mobile"} <= segments
    assert any(r.startswith("format_pass") for r in rep.reasons)
    md = rep.diff.metric("format_pass", "all")
    assert md is not None and md.base_mean == 1.0 and md.head_mean == 0.0 and md.n == N_LOGGED
    assert md.p_adjusted is not None and md.p_adjusted < 0.001
    # retrieval did not change: no score signal moved, nothing failed there
    assert not {m for m, _ in failed} & {"top1_score", "topk_mean_score"}
    assert rep.diff.metric("top1_score", "all").changed == 0  # type: ignore[union-attr]


def test_coarse_ivf_candidate_fails_on_retrieval_scores_and_groundedness(runs: dict[str, ReplayReport]) -> None:
    rep = runs["coarse_ivf"]
    assert rep.status == "fail"
    failed = {m for m, seg in _failed(rep) if seg is None}
    assert {"top1_score", "topk_mean_score", "groundedness"} <= failed
    assert "format_pass" not in failed
    for metric in ("top1_score", "topk_mean_score", "groundedness"):
        md = rep.diff.metric(metric, "all")
        assert md is not None and md.head_mean is not None and md.base_mean is not None
        assert md.head_mean < md.base_mean and md.significant
    top = next(a for a in rep.agreement if a.segment == "all")
    assert top.ranking_jaccard is not None and top.ranking_jaccard < 0.6  # the coarse index retrieves other docs


def test_neutral_candidate_passes(runs: dict[str, ReplayReport]) -> None:
    rep = runs["neutral"]
    assert rep.status == "pass", rep.reasons
    assert rep.reasons == () and not _failed(rep)
    assert rep.candidate.errors == 0 and rep.candidate.generated > 0
    assert rep.artifacts and {a.role for a in rep.artifacts} == {"prompt"}


def test_measured_p_values(runs: dict[str, ReplayReport]) -> None:
    """The numbers the report quotes (printed with -s)."""
    for name, metric in (("format_broken", "format_pass"), ("coarse_ivf", "top1_score"),
                         ("coarse_ivf", "groundedness"), ("neutral", "groundedness")):
        md = runs[name].diff.metric(metric, "all")
        assert md is not None
        print(f"{name} {metric}: {md.base_mean:.3f} -> {md.head_mean:.3f} p={md.p_value} p_adj={md.p_adjusted} "
              f"family={runs[name].diff.family_size}")


def test_same_manifest_on_both_sides_flags_nothing(world: World) -> None:
    rep = replay(world.request("baseline"))
    assert rep.status == "pass", rep.reasons
    assert rep.diff.family_size == 0 and all(md.changed == 0 for md in rep.diff.metrics)
    assert rep.candidate.generated == 0 and rep.candidate.cache_hits == rep.candidate.cases  # every answer cached
    for a in rep.agreement:
        assert (a.answer_exact, a.answer_token_f1, a.ranking_jaccard, a.top1_same) == (1.0, 1.0, 1.0, 1.0)
    assert any("served from the cache" in n for n in rep.notes)
    assert rep.candidate.latency["generate"].n == 0


def test_report_sides_moves_and_storage(world: World, runs: dict[str, ReplayReport]) -> None:
    rep = runs["format_broken"]
    path = report_path(rep, world.layout)
    assert path.is_file() and path.parent.parent == world.layout.home / "replays"
    stored = json.loads(path.read_text())
    assert stored["status"] == "fail" and stored["selection"]["replayed"] == N_LOGGED
    for side in (rep.baseline, rep.candidate):
        assert Path(side.run_path).is_file() and Path(side.run_path).parent.parent == path.parent
        assert side.cases == N_LOGGED and side.errors == 0
    assert rep.baseline.manifest_id != rep.candidate.manifest_id
    # the format-broken prompt made fresh calls: its latency is measured over them
    lat = rep.candidate.latency["generate"]
    assert lat.n == rep.candidate.generated > 0 and lat.p50 is not None and lat.p99 is not None
    assert lat.p50 <= lat.p95 <= lat.p99  # type: ignore[operator]
    chars = next(m for m in rep.moves if m.signal == "answer_chars" and m.segment == "all")
    assert chars.baseline_median is not None and chars.candidate_median is not None
    assert chars.candidate_median < chars.baseline_median  # plain text is shorter than the JSON object
    assert {m.signal for m in rep.moves} == {"answer_chars", "n_retrieved"}
    assert not {r.metric for r in rep.results} & {"answer_chars", "n_retrieved"}
    agree = next(a for a in rep.agreement if a.segment == "all")
    assert agree.answer_exact == 0.0 and agree.top1_same == 1.0 and agree.ranking_jaccard == 1.0
    assert agree.answer_token_f1 is not None and agree.answer_token_f1 > 0.8  # same sentence, another format
    seg = {a.segment for a in rep.agreement}
    assert {"all", "geo=eu", "device=web"} <= seg


# --- rules ---------------------------------------------------------------------------------------------


def test_default_rules_cover_every_directional_metric_overall_and_per_segment() -> None:
    rules = default_rules(["geo", "device"], 30, ["format_pass", "top1_score"])
    assert len(rules) == 6
    assert {(r.metric, r.segment, r.max_abs_drop, r.min_segment_size) for r in rules} == {
        ("format_pass", None, 0.0, 1), ("format_pass", "geo=*", 0.0, 30), ("format_pass", "device=*", 0.0, 30),
        ("top1_score", None, 0.0, 1), ("top1_score", "geo=*", 0.0, 30), ("top1_score", "device=*", 0.0, 30)}
    assert all(r.require_significant for r in rules)


def test_default_rules_only_for_metrics_some_record_can_score(world: World, tmp_path: Path) -> None:
    log = logged_traffic(SPEC, tmp_path / "plain.jsonl", manifest_id="x", limit=40, contract=None)
    plan = plan_replay(world.request("neutral", log=log))
    metrics = {r.metric for r in plan.rules}
    assert "format_pass" not in metrics and "format" not in {s.name for s in plan.scorers}
    assert {"groundedness", "top1_score", "topk_mean_score", "answer_empty", "abstained"} <= metrics
    assert "instructions_strict" not in metrics


def _variant(world: World, name: str, extra: str, base: str = "neutral") -> Path:
    src = getattr(world.project, base)
    path = src.with_name(name)
    path.write_text(src.read_text() + "\n" + extra)
    return path


def test_a_rule_with_an_unknown_metric_is_an_error_before_any_request(world: World) -> None:
    path = _variant(world, "gated-bad.toml", '[[replay.gates]]\nmetric = "format_passs"\nmax_abs_drop = 0.0\n')
    before = world.srv.requests_received
    with pytest.raises(HarnessError) as exc:
        replay(world.request(path))
    msg = str(exc.value)
    assert "format_passs" in msg and "'format_pass'" in msg and "gated-bad.toml:" in msg
    assert "replay.gates.0.metric" in msg
    assert world.srv.requests_received == before


def test_a_rule_with_an_unknown_segment_key_is_an_error(world: World) -> None:
    path = _variant(world, "gated-seg.toml",
                    '[[replay.gates]]\nmetric = "top1_score"\nsegment = "gep=*"\nmax_abs_drop = 0.0\n')
    before = world.srv.requests_received
    with pytest.raises(HarnessError, match=r"'gep'.*did you mean 'geo'"):
        replay(world.request(path))
    assert world.srv.requests_received == before


def test_manifest_rules_replace_the_default_ones(world: World) -> None:
    path = _variant(world, "gated-ok.toml", '[[replay.gates]]\nmetric = "top1_score"\nmax_abs_drop = 0.0\n\n'
                    '[[replay.gates]]\nmetric = "error_rate"\nmax_rate = 0.5\n', base="format_broken")
    rep = replay(world.request(path, sample=40))
    assert rep.rules == "manifest" and {r.metric for r in rep.results} == {"top1_score", "error_rate"}
    assert rep.status == "pass"  # format_pass is not ruled here: the manifest's rules are the rules


# --- bad input ------------------------------------------------------------------------------------------


def _edited_log(tmp: Path, name: str, edit: Callable[[dict[str, Any], int], dict[str, Any]], limit: int = 30
                ) -> Path:
    src = logged_traffic(SPEC, tmp / "src.jsonl", manifest_id="x", limit=limit)
    rows = [json.loads(line) for line in src.read_text().splitlines()]
    out = tmp / name
    out.write_text("".join(json.dumps(edit(r, i)) + "\n" for i, r in enumerate(rows)))
    return out


def test_a_record_naming_an_unknown_contract_is_bad_input_at_its_line(world: World, tmp_path: Path) -> None:
    log = _edited_log(tmp_path, "bad-contract.jsonl", lambda r, i: {**r, "contract": "json_citd"} if i == 6 else r)
    before = world.srv.requests_received
    with pytest.raises(HarnessError, match=r"bad-contract\.jsonl:7: .*'json_citd'.*did you mean 'json_cited'"):
        plan_replay(world.request("neutral", log=log))
    assert world.srv.requests_received == before
    assert not (world.layout.home / "replays").exists() or all(
        (d / "report.json").exists() for d in (world.layout.home / "replays").iterdir())


def test_a_record_with_an_unknown_instruction_is_bad_input_at_its_line(world: World, tmp_path: Path) -> None:
    bad = [{"id": "length_constraints:number_wordz", "kwargs": {"num_words": 5, "relation": "at least"}}]
    log = _edited_log(tmp_path, "bad-instr.jsonl", lambda r, i: {**r, "instructions": bad} if i == 3 else r)
    with pytest.raises(HarnessError, match=r"bad-instr\.jsonl:4: .*number_wordz"):
        plan_replay(world.request("neutral", log=log))


def test_logged_instructions_are_scored_and_blank_queries_skipped(world: World, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa

    import harness.shadow.replay as engine

    good = [{"id": "length_constraints:number_words", "kwargs": {"num_words": 3, "relation": "at least"}}]
    log = _edited_log(tmp_path, "instr.jsonl", lambda r, i: {**r, "instructions": good} if i % 3 == 0 else r)
    read = engine.read_records

    def blank_two(*args: Any, **kw: Any) -> pa.Table:  # the readers reject blank queries; a store could hold one
        table = read(*args, **kw)
        queries = table["query"].to_pylist()
        for i in (5, 11):
            queries[i] = "  "
        return table.set_column(table.schema.get_field_index("query"), "query", pa.array(queries, pa.string()))

    monkeypatch.setattr(engine, "read_records", blank_two)
    rep = replay(world.request("neutral", log=log))
    assert rep.selection.matched == 30 and rep.selection.replayed == 28
    assert rep.selection.skipped == {"no query": 2}
    with_instr = {c.id for c in load_run_cases(rep) if c.instructions}
    assert len(with_instr) == 10  # i % 3 == 0: 0, 3, ..., 27 (5 and 11, blanked, are not among them)
    md = rep.diff.metric("instructions_strict", "all")
    assert md is not None and md.n == 10 and md.head_mean == 1.0
    assert "instructions_strict" in {r.metric for r in rep.results}
    # a case without instructions is unscored with the reason, never a silent 1.0
    from harness.runs import load_run

    run = load_run(Path(rep.candidate.run_path))
    unscored = [s for s in run.scores if s.metric == "instructions_strict" and s.case_id not in with_instr]
    assert len(unscored) == 18 and all(s.value is None and s.explanation == "no instructions" for s in unscored)


def load_run_cases(rep: ReplayReport) -> list[Any]:
    from harness.runs import load_run

    return list(load_run(Path(rep.candidate.run_path)).cases)


def test_a_stale_pin_is_an_error_before_any_request(world: World, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(world.project.root, root, ignore=shutil.ignore_patterns(".harness"))
    (root / "prompts" / "answer-neutral.toml").write_text(
        (root / "prompts" / "answer-neutral.toml").read_text() + "\n# edited\n")
    before = world.srv.requests_received
    req = ReplayRequest(baseline=load_manifest(root / "harness.toml"),
                        candidate=load_manifest(root / "variants" / "neutral.toml"),
                        layout=Layout.for_manifest(root / "harness.toml"), log=world.log)
    with pytest.raises(HarnessError, match="does not match its pin"):
        replay(req)
    assert world.srv.requests_received == before and not (root / ".harness" / "replays").exists()


# --- selection ------------------------------------------------------------------------------------------


def test_store_window_segment_and_nested_seeded_samples(world: World, tmp_path: Path) -> None:
    from harness.monitor.ingest import ingest

    b = world.m("baseline")
    layout = world.layout
    assert b.manifest.monitor is not None
    ingest([world.log], layout=layout, mapping=b.manifest.monitor.mapping)
    rows = [json.loads(line) for line in world.log.read_text().splitlines()]
    eu = [r for r in rows if r["geo"] == "eu"]
    small = plan_replay(world.request("neutral", log=None, query=LogQuery(segment=("geo", "eu")), sample=10, seed=3))
    big = plan_replay(world.request("neutral", log=None, query=LogQuery(segment=("geo", "eu")), sample=25, seed=3))
    assert small.selection.source == "store" and small.selection.matched == len(eu)
    assert (small.selection.replayed, big.selection.replayed) == (10, 25)
    assert {c.id for c in small.cases} <= {c.id for c in big.cases}  # nested
    assert all(c.tags["geo"] == "eu" for c in big.cases)
    other = plan_replay(world.request("neutral", log=None, query=LogQuery(segment=("geo", "eu")), sample=10, seed=4))
    assert {c.id for c in other.cases} != {c.id for c in small.cases}  # the seed picks the sample
    again = plan_replay(world.request("neutral", log=None, query=LogQuery(segment=("geo", "eu")), sample=10, seed=3))
    assert [c.id for c in again.cases] == [c.id for c in small.cases]  # reproducible
    case = big.cases[0]
    src = next(r for r in rows if r["id"] == case.id)
    assert case.query == src["query"] and case.contract == "json_cited" and case.relevance == {}
    assert case.tags == {"geo": src["geo"], "device": src["device"]}  # [monitor].segments only


def test_nothing_to_replay_is_bad_input_and_writes_nothing(world: World) -> None:
    from harness.shadow.replay import replays_dir

    before = sorted(replays_dir(world.layout).glob("*")) if replays_dir(world.layout).is_dir() else []
    future = parse_time("2030-01-01", "--since")
    with pytest.raises(HarnessError, match="nothing to replay: 0 logged record"):
        replay(world.request("neutral", query=LogQuery(since=future)))
    with pytest.raises(HarnessError, match="1 replayable; a paired comparison needs at least 2"):
        replay(world.request("neutral", sample=1))
    with pytest.raises(HarnessError, match="no logged record has the attribute 'nokey'"):
        replay(world.request("neutral", query=LogQuery(segment=("nokey", "x"))))
    after = sorted(replays_dir(world.layout).glob("*")) if replays_dir(world.layout).is_dir() else []
    assert after == before  # nothing was written


def test_a_replay_below_the_floor_cannot_judge_even_a_worse_candidate(world: World) -> None:
    """Six records of the coarse index: nothing significant can come out of them, which is not a pass."""
    rep = replay(world.request("coarse_ivf", sample=6))
    assert rep.status == "cannot_judge"
    same = replay(world.request("neutral", sample=6))  # nothing differs: every rule passes, still not a pass
    assert same.status == "cannot_judge"
    assert any("fewer than min_segment_size = 30" in r for r in same.reasons), same.reasons


def test_duplicate_ids_in_a_log_file_are_counted_not_dropped_silently(world: World, tmp_path: Path) -> None:
    lines = world.log.read_text().splitlines()
    dup = tmp_path / "dup.jsonl"
    dup.write_text("\n".join(lines[:40] + lines[:10]) + "\n")
    rep = replay(world.request("neutral", log=dup))
    assert rep.selection.skipped.get("duplicate record id") == 10
    assert rep.selection.replayed == 40


def test_a_candidate_cannot_pass_by_loosening_its_own_contract(world: World, tmp_path: Path) -> None:
    """The format-broken prompt with validators whose json_cited checks nothing: judged by the baseline's
    definition of the contract the records name, it still fails on format_pass."""
    import shutil

    from harness.manifest import lock

    root = world.project.root
    loose = root / "validators-loose"
    shutil.rmtree(loose, ignore_errors=True)
    loose.mkdir()
    text = (root / "validators" / "contracts.toml").read_text()
    loose_text = text.split("checks = [")[0] + "checks = []\n"
    (loose / "contracts.toml").write_text(loose_text)
    cand = root / "variants" / "loose.toml"
    cand.write_text(world.project.format_broken.read_text().replace('path = "../validators"',
                                                                      'path = "../validators-loose"'))
    lock(cand)
    rep = replay(world.request(cand))
    assert rep.status == "fail"
    assert ("format_pass", None) in _failed(rep)
    assert any("define contract(s) json_cited differently" in n for n in rep.notes)


def test_baseline_errors_make_the_replay_cannot_judge(world: World, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cold-cache"))
    world.srv.push(Fault.bad_request("no (fake)"), match=SYSTEM, times=20)
    try:
        rep = replay(world.request("neutral", sample=60))
    finally:
        world.srv.clear_faults()
    assert rep.baseline.errors > 0 and rep.candidate.errors == 0
    assert rep.status == "cannot_judge"
    assert any("the baseline errored on" in r for r in rep.reasons)


def test_candidate_errors_fail_the_replay(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cold-cache"))  # nothing answered yet
    world.srv.push(Fault.bad_request("no (fake)"), match=SYSTEM_NEUTRAL, times=None)
    try:
        rep = replay(world.request("neutral", sample=12))
    finally:
        world.srv.clear_faults()
    assert rep.status == "fail"
    assert rep.candidate.errors == 12 and sum(rep.candidate.errors_by_kind.values()) == 12
    assert rep.baseline.errors == 0
    assert any(r.metric == "error_rate" and r.status == "fail" for r in rep.results)
    assert rep.baseline.generated > 0 and rep.baseline.latency["generate"].n > 0  # a cold cache: measured


# --- statistics -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("b", "c"), [(0, 1), (1, 0), (3, 1), (6, 0), (2, 7), (5, 5), (9, 2), (0, 12)])
def test_the_sign_flip_test_on_a_01_metric_is_the_exact_mcnemar_test(b: int, c: int) -> None:
    from harness.stats import paired_permutation_test

    n = 14
    base = np.array([1.0] * b + [0.0] * c + [1.0] * ((n - b - c) // 2) + [0.0] * (n - b - c - (n - b - c) // 2))
    head = np.array([0.0] * b + [1.0] * c + list(base[b + c:]))
    p = paired_permutation_test(base, head, n_resamples=2**n).p_value
    expected = stats.binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    assert p == pytest.approx(expected, rel=1e-12, abs=1e-15)


def _mixed_format_responder() -> Callable[[Mapping[str, Any]], str]:
    """The shadow model, but each side breaks the format on its own share of prompts (discordant pairs both
    ways: the baseline on a quarter, the candidate on half)."""
    inner = shadow_responder()

    def respond(body: Mapping[str, Any]) -> str:
        text = inner(body)
        prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages") or ())
        question = prompt.rsplit("Question:", 1)[-1]
        h = hashlib.sha256(question.encode()).digest()
        if SYSTEM_NEUTRAL in prompt and h[0] % 2 == 0:
            return "plain words, no JSON"
        if SYSTEM in prompt and h[1] % 4 == 0:
            return "plain words, no JSON"
        return text

    return respond


def test_replay_p_value_on_format_pass_is_the_exact_mcnemar_p(tmp_path: Path) -> None:
    with FakeOpenAIServer(responder=_mixed_format_responder()) as srv:
        w = _world(tmp_path, srv, 120, n_distractors=0)
        # 12 cases: the sign-flip test enumerates all 2**12 sign vectors (exact), as McNemar's exact test does
        rep = replay(w.request("neutral", sample=12, seed=5))
    from harness.runs import load_run

    bv = load_run(Path(rep.baseline.run_path)).metric_values("format_pass")
    hv = load_run(Path(rep.candidate.run_path)).metric_values("format_pass")
    worse = sum(1 for k in bv if bv[k] == 1.0 and hv[k] == 0.0)
    better = sum(1 for k in bv if bv[k] == 0.0 and hv[k] == 1.0)
    assert worse >= 2 and better >= 1, (worse, better)
    md = rep.diff.metric("format_pass", "all")
    assert md is not None and md.n == 12
    assert md.p_value == pytest.approx(stats.binomtest(worse, worse + better, 0.5).pvalue, rel=1e-12)
    print(f"format_pass discordant: {worse} worse, {better} better; p={md.p_value}")


# --- concurrency, A/A -----------------------------------------------------------------------------------


def test_concurrency_is_bounded(tmp_path: Path) -> None:
    with FakeOpenAIServer(responder=shadow_responder(), latency_s=0.05) as srv:
        w = _world(tmp_path, srv, 60, n_distractors=0)
        rep = replay(w.request("neutral", concurrency=4, sample=40))
        assert rep.status == "pass", rep.reasons
        assert 2 <= srv.max_in_flight <= 4
        assert rep.baseline.generated + rep.candidate.generated == srv.requests_received


def test_aa_replays_stay_within_the_nominal_false_alarm_rate(tmp_path: Path) -> None:
    """Baseline against the same system under another generator seed (another cache key and manifest id; the
    noisy model answers from the best or the second-best passage by a hash of the seed): R seeded samples,
    each judged by the default rules. Under the global null, BH's false discovery rate is the family-wise
    error rate, so at most alpha of the replays may flag anything (plus a binomial margin)."""
    r_samples, size, alpha = 16, 60, 0.05
    with FakeOpenAIServer(responder=shadow_responder(noisy=True)) as srv:
        w = _world(tmp_path, srv, 300, aa_variants=1, n_distractors=0)
        reports = [replay(w.request(w.project.aa[0], sample=size, seed=s)) for s in range(r_samples)]
    alarms = [r for r in reports if r.status != "pass"]
    changed = [r.diff.metric("groundedness", "all").changed for r in reports]  # type: ignore[union-attr]
    assert min(changed) > 5  # the two seeds do answer differently: this is a real test
    assert all(r.candidate.manifest_id != r.baseline.manifest_id for r in reports)
    margin = stats.binom.ppf(0.99, r_samples, alpha)
    unjudged = sum(1 for r in reports for x in r.results if x.message.startswith("not judged"))
    judged = sum(1 for r in reports for x in r.results if x.status != "skip")
    print(f"A/A: {len(alarms)}/{r_samples} replays flagged ({len(alarms) / r_samples:.3f}; alpha {alpha}, "
          f"allowed {int(margin)}); statuses {[r.status for r in alarms]}; {judged} rule results judged, "
          f"{unjudged} segment results too few changed to judge (skipped)")
    assert len(alarms) <= margin, [r.reasons for r in alarms]


def test_explicit_segment_value_absent_from_the_records_cannot_judge(world: World) -> None:
    path = _variant(world, "gated-value.toml",
                    '[[replay.gates]]\nmetric = "top1_score"\nsegment = "geo=mars"\nmax_abs_drop = 0.0\n')
    rep = replay(world.request(path, sample=20))
    assert rep.status == "cannot_judge" and any("geo=mars" in r for r in rep.reasons)




def test_signals_scorer_reuses_the_monitors_definitions() -> None:
    from harness.scorers import SCORERS, ScoringContext
    from harness.types import CaseError, CaseOutput, GoldenCase, RankedDoc

    cases = [GoldenCase(id=f"c{i}", query=f"q{i}") for i in range(5)]
    ranking = (RankedDoc(doc_id="a", score=0.9), RankedDoc(doc_id="b", score=0.5), RankedDoc(doc_id="c", score=0.1))
    outputs = [
        CaseOutput(case_id="c0", ranking=ranking, answer="Backups run hourly."),
        CaseOutput(case_id="c1", ranking=ranking, answer="  \n "),
        CaseOutput(case_id="c2", ranking=ranking[:1], answer="Sorry, I don't know that."),
        CaseOutput(case_id="c3", error=CaseError(stage="retrieve", kind="ValueError", message="boom")),
        CaseOutput(case_id="c4", ranking=ranking, ranking_scored=False, answer="x"),
    ]
    scorer = SCORERS.build("signals", {})
    assert {m.name: m.greater_is_better for m in scorer.metrics()} == {
        "top1_score": True, "topk_mean_score": True, "answer_empty": False, "abstained": False}
    got = {(s.case_id, s.metric): s.value for s in scorer.score(cases, outputs, ScoringContext())}
    assert got[("c0", "top1_score")] == 0.9 and got[("c0", "topk_mean_score")] == pytest.approx(0.5)
    assert (got[("c0", "answer_empty")], got[("c0", "abstained")]) == (0.0, 0.0)
    assert (got[("c1", "answer_empty")], got[("c1", "abstained")]) == (1.0, 0.0)
    assert (got[("c2", "top1_score")], got[("c2", "topk_mean_score")], got[("c2", "abstained")]) == (0.9, 0.9, 1.0)
    # no ranking: unscored (never 0 or 1 by default); no answer: answer_empty 1, abstained unscored
    assert (got[("c3", "top1_score")], got[("c3", "answer_empty")], got[("c3", "abstained")]) == (None, 1.0, None)
    assert got[("c4", "top1_score")] is None and got[("c4", "topk_mean_score")] is None  # scores stand for ranks


def test_a_rule_on_a_metric_these_records_cannot_give_cannot_judge(world: World, tmp_path: Path) -> None:
    path = _variant(world, "gated-format.toml", '[[replay.gates]]\nmetric = "format_pass"\nmax_abs_drop = 0.0\n')
    log = logged_traffic(SPEC, tmp_path / "plain.jsonl", manifest_id="x", limit=20, contract=None)
    rep = replay(world.request(path, log=log))  # valid configuration; no record names a contract
    assert rep.status == "cannot_judge" and any("format_pass" in r for r in rep.reasons)
