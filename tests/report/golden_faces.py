"""The report faces (html, md, json, junit) of a fixed set of runs, as files: the oracle of
tests/report/test_report_golden.py.

Each ``golden/<scenario>.json.xz`` holds the inputs (head run, base run, diff, verdict, corpus, policy: stored,
so a change to the run generator, aggregation or the diff's statistics does not move them) and the text of
every face of :data:`FACES` rendered from them. The texts were written by the code before the whole-run and
columnar builders became one path (then both gave these same bytes); the test renders them again from a
:class:`~harness.types.RunResult` (the public API), from the run stored as format 4 (read by columns) and from
the run as an old single-file run, and wants these bytes from each.

A deliberate change to what a report says (the templates, a wording) changes the texts: re-render them from
the stored inputs with ``.venv/bin/python -m tests.report.golden_faces`` and review the diff of the pages
(``--inputs`` also rebuilds the inputs from tests/report/test_report_columns.make_run; the texts then come
from the new inputs). The generator line of the HTML (the installed version) is fixed to "rag-harness" here.
"""

from __future__ import annotations

import argparse
import base64
import json
import lzma
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.diff import Diff
from harness.gates import Verdict
from harness.report import FailurePolicy
from harness.runs import RunStore, RunTable, open_run
from harness.types import CorpusDoc, RunResult

GOLDEN = Path(__file__).parent / "golden"
SUFFIX = ".json.xz"
GENERATOR = "rag-harness"


def _diff(text: str) -> Diff:
    """A diff as stored: pickled (its published dump, ``harness diff --json``, leaves out what it was computed
    with, so it does not load back)."""
    diff = pickle.loads(base64.b64decode(text))  # the test's own data
    if not isinstance(diff, Diff):
        raise TypeError(f"not a Diff: {type(diff).__name__}")
    return diff


@dataclass
class Inputs:
    head: RunResult
    base: RunResult | None = None
    diff: Diff | None = None
    verdict: Verdict | None = None
    corpus: dict[str, CorpusDoc] | None = None
    policy: FailurePolicy = field(default_factory=FailurePolicy)

    def dump(self) -> dict[str, Any]:
        return {
            "head": self.head.model_dump(mode="json"),
            "base": None if self.base is None else self.base.model_dump(mode="json"),
            "diff": None if self.diff is None else base64.b64encode(pickle.dumps(self.diff, protocol=4)).decode(),
            "verdict": None if self.verdict is None else self.verdict.model_dump(mode="json"),
            "corpus": None if self.corpus is None else [d.model_dump(mode="json") for d in self.corpus.values()],
            "policy": self.policy.model_dump(mode="json"),
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> Inputs:
        corpus = None if data["corpus"] is None else [CorpusDoc.model_validate(d) for d in data["corpus"]]
        return cls(
            head=RunResult.model_validate(data["head"]),
            base=None if data["base"] is None else RunResult.model_validate(data["base"]),
            diff=None if data["diff"] is None else _diff(data["diff"]),
            verdict=None if data["verdict"] is None else Verdict.model_validate(data["verdict"]),
            corpus=None if corpus is None else {d.id: d for d in corpus},
            policy=FailurePolicy.model_validate(data["policy"]))


@dataclass(frozen=True)
class Face:
    """One rendering: ``kind`` (html, md, json, junit), with the diff (and base) or not, and options."""

    kind: str
    with_diff: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    table_only: bool = False  # an option only the columnar builder has (max_cases): not rendered from a RunResult


FACES: dict[str, Face] = {
    "html": Face("html"),
    "html_diff": Face("html", True, {"max_failing": 7, "base_how": "given: base.json"}),
    "html_capped": Face("html", False, {"max_cases": 30, "max_failing": 5}, table_only=True),
    "md": Face("md"),
    "md_diff": Face("md", True),
    "md_short": Face("md", False, {"max_failing": 3}),
    "json": Face("json"),
    "json_diff": Face("json", True),
    "junit": Face("junit"),
}


def render(face: Face, inputs: Inputs, head: RunResult | RunTable, base: RunResult | RunTable | None) -> str:
    """``face`` of ``head`` (a RunResult: the public functions; a RunTable: the columnar ones)."""
    from harness.report import render_html, run_json, run_junit, run_markdown
    from harness.report.export import run_json_table, run_junit_table, run_markdown_table
    from harness.report.html import render_html_table

    diff = inputs.diff if face.with_diff else None
    policy = inputs.policy
    if face.kind == "html":
        kw: dict[str, Any] = dict(policy=policy, corpus=False if inputs.corpus is None else inputs.corpus,
                                  **face.options)
        if face.with_diff:
            kw.update(base=base, diff=diff, verdict=inputs.verdict)
        if isinstance(head, RunTable):
            return render_html_table(head, **kw)
        return render_html(head, **kw)
    if face.kind == "md":
        if isinstance(head, RunTable):
            return run_markdown_table(head, diff, policy, **face.options)
        return run_markdown(head, diff, policy, **face.options)
    if face.kind == "json":
        return run_json_table(head, diff, policy) if isinstance(head, RunTable) else run_json(head, diff, policy)
    if face.kind == "junit":
        if isinstance(head, RunTable):
            return "".join(run_junit_table(head, policy, rows=7))
        return run_junit(head, policy)
    raise ValueError(face.kind)


def _v3(folder: Path, run: RunResult) -> Path:
    """``run`` as a single-file (format 3) run file, which open_run loads whole."""
    path = folder / "old" / run.manifest_id / f"{run.run_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run.model_dump_json(indent=1), "utf-8")
    return path


SOURCES = ("result", "stored", "v3")


def sources(inputs: Inputs, folder: Path) -> Iterator[tuple[str, RunResult | RunTable, RunResult | RunTable | None]]:
    """(source name, head, base): the inputs' runs in memory, stored as format 4 and as old run files."""
    yield "result", inputs.head, inputs.base
    store = RunStore(folder / "runs")
    yield ("stored", open_run(store.save(inputs.head)),
           None if inputs.base is None else open_run(store.save(inputs.base)))
    yield ("v3", open_run(_v3(folder, inputs.head)),
           None if inputs.base is None else open_run(_v3(folder, inputs.base)))


@contextmanager
def fixed_generator() -> Iterator[None]:
    import harness.report.html as html

    real = html._generator
    html._generator = lambda: GENERATOR
    try:
        yield
    finally:
        html._generator = real


def faces_of(inputs: Inputs) -> list[str]:
    """The faces a scenario has: those with a diff only when it has one, the capped page only of a run the
    cap cuts."""
    cut = len(inputs.head.outputs) > FACES["html_capped"].options["max_cases"]
    return [f for f, face in FACES.items()
            if (not face.with_diff or inputs.diff is not None) and (f != "html_capped" or cut)]


def _read_raw(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(lzma.decompress((GOLDEN / f"{name}{SUFFIX}").read_bytes()))
    return data


def read(name: str) -> tuple[Inputs, dict[str, str]]:
    """A scenario's inputs and its faces' texts (face name -> text)."""
    data = _read_raw(name)
    return Inputs.load(data["inputs"]), data["faces"]


def scenarios() -> list[str]:
    return sorted(p.name[: -len(SUFFIX)] for p in GOLDEN.glob(f"*{SUFFIX}"))


# ---- building the inputs (once; they are then read from the files) -----------------------------------------


def _corpus() -> dict[str, CorpusDoc]:
    docs = [CorpusDoc(id=f"d{j}", title=f"Doc <{j}> & co", text=("Backups run hourly. " * (j + 1)) + f"<b>{j}</b>")
            for j in range(12)]
    return {d.id: d for d in docs}


def _pair(n_base: int, n_head: int, seed: int, error_rate: float) -> tuple[RunResult, RunResult, Diff]:
    from harness.diff import DiffSettings, compare
    from tests.report.test_report_columns import make_run

    base = make_run(n_base, seed, run_id=f"20260101T000000Z-gb{seed:04d}")
    head = make_run(n_head, seed + 10, run_id=f"20260101T000001Z-gh{seed:04d}", base_of=base, error_rate=error_rate)
    return base, head, compare(base, head, DiffSettings(n_resamples=300))


def build_inputs() -> dict[str, Inputs]:
    """The scenarios: the kinds of run the differential tests of the two paths covered."""
    from harness.gates import evaluate_gates
    from harness.types import GateRule
    from tests.report.test_junit_stream import reaggregated, with_control_characters
    from tests.report.test_report_columns import POLICIES, make_run

    out: dict[str, Inputs] = {}
    # errors of three kinds, unscored values, explanations, diagnostics, tags one case lacks, cache hits, flips
    base, head, diff = _pair(40, 45, 1, 0.05)
    out["flips_thresholds"] = Inputs(head, base, diff, policy=POLICIES[1])
    base, head, diff = _pair(36, 40, 2, 0.15)
    rules = [GateRule(metric="ndcg@10", max_drop=0.01), GateRule(metric="recall@5", min=0.9),
             GateRule(metric="answer_f1", max_drop=0.5, segment="topic=*")]
    out["flips_verdict_corpus"] = Inputs(head, base, diff, evaluate_gates(rules, head, diff, base=base), _corpus())
    out["no_golden_cases"] = Inputs(make_run(30, 5, run_id="20260101T000002Z-gnocase", with_cases=False))
    out["old_run"] = Inputs(make_run(30, 6, run_id="20260101T000003Z-goldrun"))
    # skipped (every score unscored), a case without a single score, in the same run
    run = make_run(30, 5, run_id="20260101T000004Z-gskip", error_rate=0.0)
    ids = {o.case_id for i, o in enumerate(run.outputs) if i % 3 == 0}
    none = {o.case_id for i, o in enumerate(run.outputs) if i % 3 == 1}
    scores = [s.model_copy(update={"value": None, "explanation": "not applicable: no answer"})
              if s.case_id in ids else s for s in run.scores if s.case_id not in none]
    out["unscored_and_scoreless"] = Inputs(reaggregated(run, scores), policy=POLICIES[1])
    every = make_run(12, 9, run_id="20260101T000005Z-gallun")
    out["all_unscored"] = Inputs(reaggregated(every, [s.model_copy(update={"value": None}) for s in every.scores]))
    # characters XML cannot hold, in answers, error messages and explanations
    out["control_characters"] = Inputs(with_control_characters(
        make_run(30, 6, run_id="20260101T000006Z-gctrl", error_rate=0.3)), policy=POLICIES[1])
    # three latency stages and no golden cases; a run of no cases at all
    run = make_run(30, 7, run_id="20260101T000007Z-gstag", with_cases=False)
    outputs = [o.model_copy(update={"latency_s": {**o.latency_s, "rerank": (i % 9) * 0.0137}})
               for i, o in enumerate(run.outputs)]
    out["three_stages"] = Inputs(run.model_copy(update={"outputs": tuple(outputs),
                                                        "stage_seconds": {**run.stage_seconds, "rerank": 0.5}}))
    out["no_cases"] = Inputs(make_run(0, 8, run_id="20260101T000008Z-gnone"))
    # more failing cases than a capped case table lists
    out["many_failing"] = Inputs(make_run(60, 7, run_id="20260101T000009Z-gcapped", error_rate=0.3))
    return out


def write(rebuild_inputs: bool = False) -> None:
    """Render every face of every scenario from every source, check they agree, and write the files."""
    import tempfile

    GOLDEN.mkdir(exist_ok=True)
    # the inputs as stored (kept as they are when only re-rendering: a diff pickled again differs in bytes)
    raw = ({name: inputs.dump() for name, inputs in build_inputs().items()} if rebuild_inputs else
           {name: _read_raw(name)["inputs"] for name in scenarios()})
    with tempfile.TemporaryDirectory() as tmp, fixed_generator():
        for name, dumped in raw.items():
            stored = Inputs.load(json.loads(json.dumps(dumped)))  # what the test reads back
            texts: dict[str, str] = {}
            for face_name in faces_of(stored):
                face = FACES[face_name]
                seen: dict[str, str] = {}
                for source, head, base in sources(stored, Path(tmp) / name / face_name):
                    if face.table_only and source == "result":
                        continue
                    seen[source] = render(face, stored, head, base)
                first = next(iter(seen.values()))
                differ = [s for s, text in seen.items() if text != first]
                if differ:
                    raise AssertionError(f"{name} {face_name}: {differ} differ from {next(iter(seen))}")
                texts[face_name] = first
            blob = json.dumps({"inputs": dumped, "faces": texts}, ensure_ascii=False)
            packed = lzma.compress(blob.encode("utf-8"), preset=9 | lzma.PRESET_EXTREME)
            (GOLDEN / f"{name}{SUFFIX}").write_bytes(packed)
            print(f"{name}: {', '.join(texts)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", action="store_true", help="rebuild the inputs too (from make_run)")
    write(parser.parse_args().inputs)


if __name__ == "__main__":
    main()
