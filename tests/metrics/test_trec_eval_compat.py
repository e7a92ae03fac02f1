"""Oracle tests: trec_eval's own expected outputs and pytrec_eval on random runs.

* ``harness metrics`` prints exactly trec_eval's expected output, every line, nothing missing or
  extra (trec_eval's own test suite files in ../shared/data/trec_eval).
* compute_metrics and the file path agree with pytrec_eval within 1e-9 on random graded qrels and
  runs with tied scores, missing queries and unjudged documents.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from harness.commands.metrics import metrics as metrics_cmd
from harness.errors import InputError, MeasureError
from harness.metrics import compute_metrics
from harness.metrics.trec import (
    evaluate_files,
    evaluate_trec,
    format_trec,
    parse_measures,
    read_qrels,
    read_run,
    trec_json,
)
from harness.metrics.trec import files as trec_files

pytrec_eval = pytest.importorskip("pytrec_eval")

TREC_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "trec_eval"
needs_data = pytest.mark.skipif(
    not TREC_DIR.is_dir(),
    reason=f"trec_eval test data not found at {TREC_DIR} (the repo's sibling shared/data)",
)

# expected file -> (qrels, run, CLI flags), from COMMANDS_from_Makefile_quicktest.txt
ORACLES = {
    "out.test": ("qrels.test", "results.test", []),
    "out.test.a": ("qrels.test", "results.test", ["-m", "all_trec"]),
    "out.test.aq": ("qrels.test", "results.test", ["-m", "all_trec", "-q"]),
    "out.test.aqc": ("qrels.test", "results.trunc", ["-m", "all_trec", "-q", "-c"]),
    "out.test.aqcM": ("qrels.test", "results.trunc", ["-m", "all_trec", "-q", "-c", "-M100"]),
    "out.test.aql": ("qrels.rel_level", "results.test", ["-m", "all_trec", "-mrelstring.20", "-q", "-l2"]),
    "out.test.meas_params": (
        "qrels.test",
        "results.test",
        [
            "-q",
            "-miprec_at_recall..10,.20,.25,.75,.50",
            "-m",
            "P.5,7,3",
            "-m",
            "recall.20,2000",
            "-m",
            "Rprec_mult.5.0,0.2,0.35",
            "-mutility.2,-1,0,0",
            "-m",
            "11pt_avg..25,.5,.75",
            "-mndcg.1=3,2=9,4=4.5",
            "-mndcg_cut.10,20,23.4",
            "-msuccess.2,5,20",
        ],
    ),
}
# trec_eval 10's all_trec measures (measures.c), as the expected -q outputs name them.
ALL_TREC = {"runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "map", "gm_map", "Rprec", "bpref",
            "recip_rank", "iprec_at_recall", "P", "relstring", "recall", "unj", "rbp", "rbp_resid", "infAP",
            "gm_bpref", "utility", "11pt_avg", "ndcg", "relative_P", "Rprec_mult", "success", "map_cut",
            "ndcg_cut", "ndcg_rel", "Rndcg", "binG", "G", "set_P", "set_recall", "set_relative_P", "set_map",
            "set_F", "num_nonrel_judged_ret"}  # fmt: skip


def _base(name: str) -> str:
    """trec_eval measure of an output name: P_10 -> P, iprec_at_recall_0.10 -> iprec_at_recall."""
    name = name.strip()
    m = re.match(
        r"^(ndcg_cut|map_cut|P|recall|success|relative_P|unj|iprec_at_recall|Rprec_mult|relstring)_[\d.]+$", name
    )
    if m:
        return m.group(1)
    m = re.match(r"^(ndcg|utility|11pt_avg)_.*[=,]", name)
    return m.group(1) if m else name


def _key(line: str) -> tuple[str, str]:
    name, qid, _ = line.split("\t")
    return name.strip(), qid


@needs_data
@pytest.mark.parametrize("expected_name", sorted(ORACLES))
def test_cli_output_equals_trec_eval_line_by_line(expected_name: str) -> None:
    qrels, run, flags = ORACLES[expected_name]
    result = CliRunner().invoke(metrics_cmd, [*flags, str(TREC_DIR / qrels), str(TREC_DIR / run)])
    assert result.exit_code == 0, result.output
    got = result.output.splitlines()
    expected = (TREC_DIR / expected_name).read_text().splitlines()
    # Every line, in order: nothing missing, nothing extra, byte for byte.
    missing = [line for line in expected if line not in got]
    extra = [line for line in got if line not in expected]
    assert not missing and not extra, (missing[:5], extra[:5])
    assert got == expected
    assert result.output == (TREC_DIR / expected_name).read_text()
    if "all_trec" in flags:
        # relstring is printed per query only
        assert {_base(line.split("\t")[0]) for line in got} | {"relstring"} == ALL_TREC
        if "-q" in flags:
            assert {line.split("\t")[1] for line in got} == {"301", "302", "303", "all"}


@needs_data
def test_expected_files_name_every_all_trec_measure() -> None:
    expected = (TREC_DIR / "out.test.aq").read_text().splitlines()
    assert {_base(line.split("\t")[0]) for line in expected} == ALL_TREC
    assert {m.name for m in parse_measures(["all_trec"])} == ALL_TREC

@needs_data
def test_missing_query_lines_with_c_and_depth_limit() -> None:
    qrels, run = read_qrels(TREC_DIR / "qrels.test"), read_run(TREC_DIR / "results.trunc")
    plain = evaluate_trec(qrels, run, parse_measures(["num_ret", "map"]))
    complete = evaluate_trec(qrels, run, parse_measures(["num_ret", "map"]), average_complete=True)
    assert plain.query_ids == ("301", "303") and complete.query_ids == ("301", "302", "303")
    m_plain = {v.name: v.summary for v in plain.values}["map"]
    m_complete = {v.name: v.summary for v in complete.values}["map"]
    assert m_complete == pytest.approx(m_plain * 2 / 3)
    cut = evaluate_trec(qrels, run, parse_measures(["num_ret"]), max_depth=50, average_complete=True)
    assert cut.values[0].per_query.tolist() == [50, 0, 50]


@needs_data
def test_file_path_equals_the_python_api_on_trec_data() -> None:
    qrels, run = read_qrels(TREC_DIR / "qrels.rel_level"), read_run(TREC_DIR / "results.test")
    res = evaluate_trec(
        qrels, run, parse_measures(["map", "ndcg_cut.10", "P.5", "recip_rank"]), relevance_level=2
    )
    api = compute_metrics(qrels.to_mapping(), run.to_mapping(), ["map", "ndcg@10", "precision@5", "mrr"],
                          relevance_level=2)  # fmt: skip
    by_name = {v.name: v.per_query for v in res.values}
    for trec_name, name in [("map", "map"), ("ndcg_cut_10", "ndcg@10"), ("P_5", "precision@5"),
                            ("recip_rank", "mrr")]:  # fmt: skip
        for qid, value in zip(res.query_ids, by_name[trec_name].tolist(), strict=True):
            assert api[name][qid] == value


# ------------------------------------------------------------------------------------- pytrec_eval

# pytrec_eval drops a measure's default cutoffs when a parameterized variant is also requested, so
# default and custom cutoffs are evaluated separately and merged.
PYTREC_MEASURES = {"ndcg", "ndcg_cut", "P", "recall", "map", "map_cut", "recip_rank", "Rprec", "success",
                   "num_ret", "num_rel", "num_rel_ret"}  # fmt: skip
PYTREC_CUSTOM = {"ndcg_cut.3,7", "P.3,7", "recall.7", "map_cut.3", "success.3"}
_TREC_TO_HARNESS = [
    (re.compile(r"^ndcg_cut_(\d+)$"), "ndcg@{}"),
    (re.compile(r"^P_(\d+)$"), "precision@{}"),
    (re.compile(r"^recall_(\d+)$"), "recall@{}"),
    (re.compile(r"^map_cut_(\d+)$"), "map@{}"),
    (re.compile(r"^success_(\d+)$"), "success@{}"),
    (re.compile(r"^(ndcg|map|num_ret|num_rel|num_rel_ret)$"), "{}"),
    (re.compile(r"^recip_rank$"), "mrr"),
    (re.compile(r"^Rprec$"), "rprec"),
]


def _harness_name(trec_name: str) -> str:
    for pattern, fmt in _TREC_TO_HARNESS:
        m = pattern.match(trec_name)
        if m:
            return fmt.format(*m.groups())
    raise AssertionError(f"unmapped pytrec_eval measure {trec_name}")


def _pytrec(qrels: dict, run: dict, level: int) -> dict[str, dict[str, float]]:
    out = pytrec_eval.RelevanceEvaluator(qrels, PYTREC_MEASURES, relevance_level=level).evaluate(run)
    custom = pytrec_eval.RelevanceEvaluator(qrels, PYTREC_CUSTOM, relevance_level=level).evaluate(run)
    for qid, values in custom.items():
        out[qid].update(values)
    assert {"P_5", "P_3", "P_1000", "ndcg_cut_7", "map_cut_1000", "success_10"} <= set(
        next(iter(out.values()))
    )
    return out


def _random_case(seed: int) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    """Graded qrels (-1..3, grade 0 included) and runs with many tied scores and unjudged docs."""
    rng = np.random.default_rng(seed)
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for i in range(25):
        qid = f"q{i}"
        pool = [f"doc{j}" for j in rng.choice(3000, size=int(rng.integers(5, 400)), replace=False)]
        qrels[qid] = {d: int(rng.choice([-1, 0, 0, 1, 1, 2, 3])) for d in pool[: int(rng.integers(1, 60))]}
        if i % 6 == 5:
            continue  # in qrels, missing from the run
        depth = int(rng.integers(0, 1200)) if i % 5 == 0 else int(rng.integers(1, 300))
        docs = list(dict.fromkeys(pool[: depth // 2] + [f"doc{j}" for j in rng.integers(0, 3000, depth)]))
        scores = np.round(rng.normal(size=len(docs)), int(rng.integers(0, 3)))  # ties
        run[qid] = dict(zip(docs, scores.tolist(), strict=True))
    run["not_in_qrels"] = {"doc1": 1.0}
    qrels["only_nonrelevant"] = {"doc1": 0, "doc2": -1}
    run["only_nonrelevant"] = {"doc1": 2.0, "doc2": 1.0, "doc3": 1.0}
    return qrels, run


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("level", [1, 2])
def test_compute_metrics_matches_pytrec_eval(seed: int, level: int) -> None:
    qrels, run = _random_case(seed)
    expected = _pytrec(qrels, run, level)
    names = sorted(next(iter(expected.values())))
    ours = compute_metrics(qrels, {q: list(d.items()) for q, d in run.items()},
                           [_harness_name(n) for n in names], relevance_level=level)  # fmt: skip
    compared = 0
    for qid in qrels:
        has_rel = any(g >= level for g in qrels[qid].values())
        for name in names:
            value = ours[_harness_name(name)][qid]
            if not has_rel:
                assert value is None
            elif qid not in run:
                assert value == 0.0 or name == "num_rel"
            else:
                assert value == pytest.approx(expected[qid][name], abs=1e-9), (qid, name)
                compared += 1
    assert compared > 500
    assert "not_in_qrels" not in ours["map"]


@pytest.mark.parametrize("seed", [3, 4])
def test_file_path_matches_pytrec_eval(seed: int, tmp_path: Path) -> None:
    qrels, run = _random_case(seed)
    rng = np.random.default_rng(seed)
    lines = [f"{q} Q0 {d} {r} {s!r} tag" for q, docs in run.items() for r, (d, s) in enumerate(docs.items())]
    rng.shuffle(lines)  # any line order
    (tmp_path / "run").write_text("# comment\n\n" + "\n".join(lines) + "\n")
    (tmp_path / "qrels").write_text(
        "".join(f"{q} 0 {d} {g}\n" for q, j in qrels.items() for d, g in j.items())
    )
    expected = _pytrec(qrels, run, 1)
    names = sorted(next(iter(expected.values())))
    cutoffs: dict[str, set[str]] = {}
    for name in names:
        m = re.match(r"^(ndcg_cut|map_cut|P|recall|success)_(\d+)$", name)
        if m:
            cutoffs.setdefault(m.group(1), set()).add(m.group(2))
    measures = parse_measures(["all_trec", *(f"{k}.{','.join(sorted(v))}" for k, v in cutoffs.items())])
    res = evaluate_files(tmp_path / "qrels", tmp_path / "run", measures)
    per_query = {v.name: dict(zip(res.query_ids, v.per_query.tolist(), strict=True)) for v in res.values}
    assert set(res.query_ids) == set(expected)
    for qid in expected:
        for name in names:
            assert per_query[name][qid] == pytest.approx(expected[qid][name], abs=1e-9), (qid, name)
    summaries = {v.name: v.summary for v in res.values}
    assert summaries["map"] == pytest.approx(np.mean([expected[q]["map"] for q in expected]), abs=1e-12)
    assert summaries["num_ret"] == sum(expected[q]["num_ret"] for q in expected)


def test_pytrec_eval_breaks_ties_by_doc_id_descending_like_harness() -> None:
    qrels = {"q": {"a": 1}}
    run = {"q": {"a": 1.0, "b": 1.0}}
    assert pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)["q"]["recip_rank"] == 0.5
    assert compute_metrics(qrels, {"q": [("a", 1.0), ("b", 1.0)]}, ["mrr"])["mrr"]["q"] == 0.5


# ---------------------------------------------------------------------------------------- parsing


def test_score_parser_is_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(scale=1000, size=400)
    tokens = [f"{v:.6f}" for v in values[:100]] + [repr(float(v)) for v in values[100:200]]
    tokens += [f"{v:.3e}" for v in values[200:300]] + [f"{v:.15g}" for v in values[300:]]
    tokens += ["-0", "+3", ".5", "5.", "007.250", "1E3", "-inf", "123456789012345", "1234567890123456"]
    text = "".join(f"q Q0 d{i} 0 {t} r\n" for i, t in enumerate(tokens))
    (tmp_path / "run").write_text(text)
    run = read_run(tmp_path / "run")
    assert run.scores.tolist() == [float(t) for t in tokens]


def test_reader_handles_chunks_comments_extra_fields_and_tabs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(1)
    rows = [(f"q{rng.integers(0, 30)}", f"doc-{i}", float(rng.integers(0, 50)) / 7) for i in range(3000)]
    out = []
    for i, (q, d, s) in enumerate(rows):
        sep = "\t" if i % 3 else "  "
        out.append(
            f"{q}{sep}Q0 {d} {i} {s!r}{sep}run{i % 4} extra junk"
            if i % 5 == 0
            else f"{q} Q0 {d} {i} {s!r} run"
        )
        if i % 97 == 0:
            out.append("# a comment line")
        if i % 89 == 0:
            out.append("   ")
    (tmp_path / "run").write_text("\n".join(out))  # no final newline
    monkeypatch.setattr(trec_files, "_CHUNK_BYTES", 997)
    run = read_run(tmp_path / "run")
    mapping = run.to_mapping()
    expected: dict[str, list[tuple[str, float]]] = {}
    for q, d, s in rows:
        expected.setdefault(q, []).append((d, s))
    assert mapping == expected
    assert run.runid == "run"


@pytest.mark.parametrize(
    "content, line, fragment",
    [
        ("q Q0 d1 1 1.0 r\nq Q0 d2 2 r\n", 2, "expected 6"),
        ("q Q0 d1 1 1.0 r\n\n# x\nq Q0 d2 2 1.0\n", 4, "expected 6"),
        ("q Q0 d1 1 1.0 r\nq Q0 d2 2 one r\n", 2, "must be a number"),
        ("q Q0 d1 1 nan r\n", 1, "must be a number"),
        ("q Q0 d1 1 1.0 r\nq Q0 d2 1 0.5 r\nq Q0 d1 1 0.1 r\n", 3, "ranked twice"),
    ],
)
def test_bad_run_lines_are_reported_with_file_and_line(
    content: str, line: int, fragment: str, tmp_path: Path
) -> None:
    (tmp_path / "qrels").write_text("q 0 d1 1\n")
    (tmp_path / "run").write_text(content)
    result = CliRunner().invoke(metrics_cmd, [str(tmp_path / "qrels"), str(tmp_path / "run")])
    assert result.exit_code == 2
    assert f"{tmp_path / 'run'}:{line}:" in result.output and fragment in result.output


@pytest.mark.parametrize(
    "content, line, fragment",
    [
        ("q 0 d1 1\nq 0 d2\n", 2, "expected 4"),
        ("q 0 d1 1 extra\n", 1, "expected 4"),
        ("q 0 d1 high\n", 1, "must be an integer"),
        ("q 0 d1 1\nq 0 d1 2\n", 2, "judged twice"),
    ],
)
def test_bad_qrels_lines_are_reported_with_file_and_line(
    content: str, line: int, fragment: str, tmp_path: Path
) -> None:
    (tmp_path / "qrels").write_text(content)
    (tmp_path / "run").write_text("q Q0 d1 1 1.0 r\n")
    result = CliRunner().invoke(metrics_cmd, [str(tmp_path / "qrels"), str(tmp_path / "run")])
    assert result.exit_code == 2
    assert f"{tmp_path / 'qrels'}:{line}:" in result.output and fragment in result.output


def test_duplicates_are_found_in_interleaved_runs_of_uneven_depth(tmp_path: Path) -> None:
    (tmp_path / "qrels").write_text("a 0 d1 1\nb 0 d1 1\n")
    lines = ["a Q0 d1 1 3 r", "b Q0 d1 1 3 r", "a Q0 d2 2 2 r", "b Q0 d2 2 2 r", "b Q0 d3 3 1 r"]
    (tmp_path / "run").write_text("\n".join(lines) + "\n")
    ok = evaluate_files(tmp_path / "qrels", tmp_path / "run", parse_measures(["num_ret"]))
    assert ok.values[0].per_query.tolist() == [2, 3]
    (tmp_path / "run").write_text("\n".join([*lines, "a Q0 d2 4 0.5 r"]) + "\n")
    with pytest.raises(InputError, match=r"run:6: document 'd2' is ranked twice for query 'a'"):
        evaluate_files(tmp_path / "qrels", tmp_path / "run", parse_measures(["num_ret"]))


# ------------------------------------------------------------------------------------ measures, CLI


def test_measure_requests() -> None:
    names = [m.name for m in parse_measures([])]
    assert names == ["runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "map", "gm_map", "Rprec", "bpref",
                     "recip_rank", "iprec_at_recall", "P"]  # fmt: skip
    ms = parse_measures(["success", "P.10,5", "all_trec", "ndcg_cut.23.4,20"])
    by = {m.name: m for m in ms}
    assert (
        by["P"].cutoffs == (5, 10)
        and by["ndcg_cut"].cutoffs == (20, 23)
        and by["success"].cutoffs == (1, 5, 10)
    )
    assert by["map_cut"].cutoffs == (5, 10, 15, 20, 30, 100, 200, 500, 1000)
    assert [m.name for m in ms][:3] == ["runid", "num_q", "num_ret"]
    assert parse_measures(["P.5", "P.5"])[0].cutoffs == (5,)
    for bad, fragment in [("P_avgjg", "not implemented"), ("prefs", "not implemented"), ("nope", "unknown"),
                          ("P.0", "positive"), ("P.5,5", "duplicate"), ("map.3", "no parameters"),
                          ("ndcg.x=1", "pairs"), ("all_trec.5", "nickname"), ("P.", "empty"),
                          ("utility.1,2", "takes 4"), ("iprec_at_recall.x", "numbers"),
                          ("Rprec_mult.1,1.0", "duplicate"), ("rbp.q=1", "pairs"), ("ndcg.p=0.5", "pairs"),
                          ("relstring.-1", ">= 0"), ("11pt_avg.inf", "numbers")]:  # fmt: skip
        with pytest.raises(MeasureError, match=fragment):
            parse_measures([bad])
    with pytest.raises(MeasureError, match="two parameter lists"):
        parse_measures(["P.5", "P.10"])


def test_command_object_and_usage_errors(tmp_path: Path) -> None:
    assert isinstance(metrics_cmd, click.Command)
    (tmp_path / "qrels").write_text("q 0 d1 1\n")
    (tmp_path / "run").write_text("other Q0 d1 1 1.0 r\n")
    runner = CliRunner()
    bad_measure = runner.invoke(metrics_cmd, ["-m", "P_avgjg", str(tmp_path / "qrels"), str(tmp_path / "run")])
    assert bad_measure.exit_code == 2 and "not implemented" in bad_measure.output
    no_overlap = runner.invoke(metrics_cmd, [str(tmp_path / "qrels"), str(tmp_path / "run")])
    assert no_overlap.exit_code == 2 and "no query has both" in no_overlap.output
    complete = runner.invoke(metrics_cmd, ["-c", "-m", "map", str(tmp_path / "qrels"), str(tmp_path / "run")])
    assert complete.exit_code == 0 and complete.output == "map                   \tall\t0.0000\n"
    missing = runner.invoke(metrics_cmd, [str(tmp_path / "qrels"), str(tmp_path / "absent")])
    assert missing.exit_code == 2


def test_json_output(tmp_path: Path) -> None:
    (tmp_path / "qrels").write_text("q1 0 a 1\nq1 0 b 0\nq2 0 c 2\n")
    (tmp_path / "run").write_text("q1 Q0 a 1 2.0 sys\nq1 Q0 b 2 1.0 sys\nq2 Q0 x 1 1.0 sys\n")
    args = ["--json", "-q", "-m", "P.1,2", "-m", "num_ret", str(tmp_path / "qrels"), str(tmp_path / "run")]
    result = CliRunner().invoke(metrics_cmd, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["runid"] == "sys" and doc["num_q"] == 2 and doc["queries"] == ["q1", "q2"]
    assert doc["measures"]["P_1"] == {"all": 0.5, "q1": 1.0, "q2": 0.0}
    assert doc["measures"]["num_ret"] == {"all": 3, "q1": 2, "q2": 1}
    res = evaluate_files(tmp_path / "qrels", tmp_path / "run", parse_measures(["P.2"]))
    assert "q1" not in json.loads(trec_json(res))["measures"]["P_2"]
    assert format_trec(res) == "P_2                   \tall\t0.2500\n"


def test_arrow_fast_path_equals_the_general_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    lines = [
        f"q{rng.integers(0, 40)} Q0 doc-{rng.integers(0, 500)}x{i} {i} {float(rng.integers(0, 30)) / 8!r} tag{i % 3}"
        for i in range(5000)
    ]
    text = "\n".join(lines)
    path = tmp_path / "run"
    for variant in (text + "\n", text):  # with and without a final newline
        path.write_text(variant)
        fast = trec_files._read_run_arrow(path, path.read_bytes())
        assert fast is not None
        with monkeypatch.context() as m:
            m.setattr(trec_files, "_read_run_arrow", lambda p, d: None)
            slow = read_run(path)
        assert fast.query_bytes == slow.query_bytes and fast.runid == slow.runid == "tag1"
        np.testing.assert_array_equal(fast.qindex, slow.qindex)
        np.testing.assert_array_equal(fast.docs, slow.docs)
        np.testing.assert_array_equal(fast.scores, slow.scores)
    # anything but six single-space-separated fields per line goes to the general reader
    for bad in ["q Q0 d 1 2.0 r\tx\n", "q Q0 d 1 2.0  r\n", "# c\nq Q0 d 1 2.0 r\n", "q Q0 d 1 2.0 r \n",
                "q Q0 d 1 2.0 r extra\n", "q Q0 d 1 nan r\n", " q Q0 d 1 2.0 r\n", "q Q0 d 1 2.0 r\n\nq Q0 e 1 1 r\n",
                "q Q0 d 1 2.0 r\r\n", ""]:  # fmt: skip
        assert trec_files._read_run_arrow(path, bad.encode()) is None, bad
