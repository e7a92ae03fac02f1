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
