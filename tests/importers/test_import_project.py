"""What every importer shares (harness/importers/project.py): nothing is written unless every target can be."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.reliability.clirun import cli_in_process


def test_an_unwritable_target_is_one_line_exit_2_before_any_file_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "rows.csv"
    src.write_text("question,response\nhow long,30 minutes\n")
    out = tmp_path / "proj"
    (out / "outputs").mkdir(parents=True)
    (out / "outputs" / "outputs.jsonl").mkdir()  # a folder where the outputs file must go
    code, _, err = cli_in_process(capsys, "import", "table", str(src), "--out", str(out), "--map", "query=question",
                                  "--map", "answer=response")
    assert code == 2, err
    target = re.escape(str(out / "outputs" / "outputs.jsonl"))
    assert re.fullmatch(rf"error: cannot write {target}: it is a folder", err.strip()), err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["outputs", "outputs/outputs.jsonl"]


def test_importing_over_a_project_is_refused_and_keeps_its_edits(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "rows.csv"
    src.write_text("question,response\nhow long,30 minutes\n")
    out = tmp_path / "proj"
    args = ("import", "table", str(src), "--out", str(out), "--map", "query=question", "--map", "answer=response")
    assert cli_in_process(capsys, *args)[0] == 0
    manifest = out / "harness.toml"
    edited = manifest.read_text() + '\n[[gates]]\nmetric = "answer_f1"\nmin = 0.5\n'
    manifest.write_text(edited)
    code, _, err = cli_in_process(capsys, *args)
    assert code == 2 and "already exists" in err and manifest.read_text() == edited, err
