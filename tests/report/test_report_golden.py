"""Every report face (html, md, json, junit) of every stored scenario is byte for byte its golden text
(tests/report/golden, written by tests/report/golden_faces.py), rendered from each place a run comes from: a
RunResult through the public functions (render_html, run_markdown, run_json, run_junit), the run stored as
format 4 and read by columns, and the run as an old single-file run (open_run loads it whole). The scenarios
are the kinds of run the reports must say alike: errors of three kinds, unscored values with reasons,
explanations, diagnostics, tags one case lacks, cache hits, a base with flips and a gate verdict, a given
corpus, thresholds, every score of a case unscored and a case without scores, characters XML cannot hold, three
latency stages, no golden cases, no cases at all, and a case table capped below the run's size."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.report import FailurePolicy
from harness.runs import RunTable
from tests.report.golden_faces import FACES, SOURCES, faces_of, fixed_generator, read, render, scenarios, sources

SCENARIOS = scenarios()


@pytest.fixture(autouse=True)
def _fixed_generator() -> Iterator[None]:
    with fixed_generator():
        yield


def test_the_golden_files_are_there_and_hold_every_face_of_their_scenario() -> None:
    assert len(SCENARIOS) >= 10
    kinds = set()
    for name in SCENARIOS:
        inputs, faces = read(name)
        assert sorted(faces) == sorted(faces_of(inputs)), name
        assert all(text for text in faces.values()), name
        kinds |= {FACES[f].kind for f in faces}
    assert kinds == {"html", "md", "json", "junit"}


def _first_difference(got: str, want: str) -> str:
    at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want)))
    return f"first difference at {at}: got {got[at - 80:at + 80]!r}, want {want[at - 80:at + 80]!r}"


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_face_of_every_source_is_the_golden_text(tmp_path: Path, name: str) -> None:
    inputs, faces = read(name)
    checked: set[tuple[str, str]] = set()
    for source, head, base in sources(inputs, tmp_path):
        for face_name, want in faces.items():
            face = FACES[face_name]
            if face.table_only and source == "result":
                continue
            got = render(face, inputs, head, base)
            assert got == want, f"{name} {face_name} from {source}: {_first_difference(got, want)}"
            checked.add((source, face_name))
    assert {s for s, _ in checked} == set(SOURCES)


@pytest.mark.parametrize("source", ["stored", "v3"])
def test_the_report_command_prints_the_golden_texts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    source: str) -> None:
    """`harness report RUN_FILE` of a format-4 run and of an old run file writes the golden texts; with the case
    table's cap below the run's size, the format-4 run's page is capped and the old run's lists every case, as
    it always did."""
    from click.testing import CliRunner

    import harness.report.html as html
    from harness.commands.report import report as report_cmd

    inputs, faces = read("many_failing")
    assert inputs.policy == FailurePolicy() and len(inputs.head.outputs) > FACES["html_capped"].options["max_cases"]
    table = next(head for name, head, _ in sources(inputs, tmp_path) if name == source)
    assert isinstance(table, RunTable)
    path = table.path
    monkeypatch.setattr(html, "MAX_LISTED_CASES", FACES["html_capped"].options["max_cases"])
    monkeypatch.chdir(tmp_path)
    for fmt, face in (("md", "md"), ("json", "json"), ("junit", "junit")):
        res = CliRunner().invoke(report_cmd, [str(path), "--format", fmt])
        assert res.exit_code == 0, res.output
        assert res.stdout == faces[face], f"{source} {fmt}: {_first_difference(res.stdout, faces[face])}"
    page = tmp_path / "page.html"
    capped = source == "stored"
    extra = ["--max-failing", str(FACES["html_capped"].options["max_failing"])] if capped else []
    res = CliRunner().invoke(report_cmd, [str(path), "--no-corpus", "-o", str(page), *extra])
    assert res.exit_code == 0, res.output
    want = faces["html_capped" if capped else "html"]
    assert page.read_text("utf-8") == want, f"{source} html: {_first_difference(page.read_text('utf-8'), want)}"
    assert ('id="cases-left-out"' in want) == capped
