"""User-controlled text (golden-set tags, manifest versions and rule names, error messages) is shown on a
terminal and in markdown with its control characters made visible (``\\x1b``) and its rich markup shown,
never obeyed: a tag cannot recolour, clear or rewrite the gate's verdict (issue 10)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_project
from tests.reliability.clirun import cli_in_process

TAG = "bil\x01ling\x1b[31m[red]x[/red]\u202e"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]")  # what must never reach a terminal


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("HARNESS_HOME", "HARNESS_CACHE_DIR", "HARNESS_CACHE_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "proj"
    manifest = make_project(root, lock=False)
    cases = root / "golden" / "cases.jsonl"
    rows = [json.loads(line) for line in cases.read_text().splitlines()]
    for row in rows[:2]:
        row["tags"]["lang"] = TAG
    cases.write_text("".join(json.dumps(r) + "\n" for r in rows))
    manifest.write_text(manifest.read_text() + '''
[[gates]]
name = "floor \\u001b[2J[green]"
metric = "ndcg@10"
segment = "lang=*"
min = 0.0
''')
    monkeypatch.chdir(root)
    return root


def harness(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code, out, err = cli_in_process(capsys, *args)
    return code, out + err


def assert_shown_not_obeyed(text: str) -> None:
    assert not RAW.search(text), repr(text)
    assert "\\x01" in text and "\\x1b[31m" in text and "\\u202e" in text, text  # visible, not dropped


def test_gate_text_and_markdown_show_control_characters_and_markup(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert harness(capsys, "lock")[0] == 0
    code, text = harness(capsys, "gate", "--allow-no-baseline")
    assert code == 0, text
    assert_shown_not_obeyed(text)
    assert "[red]x[/red]" in text and "\\x1b[2J[green]" in text  # rich markup is printed as written

    code, md = harness(capsys, "gate", "--allow-no-baseline", "--format", "md", "-o", str(project / "s.md"))
    assert code == 0, md
    for shown in (md, (project / "s.md").read_text()):
        assert_shown_not_obeyed(shown)


def test_diff_text_and_markdown_show_a_changed_version_as_written(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = project / "harness.toml"
    assert harness(capsys, "lock")[0] == 0
    assert harness(capsys, "run")[0] == 0
    assert harness(capsys, "baseline", "promote")[0] == 0
    manifest.write_text(manifest.read_text().replace('version = "hashing-64"',
                                                     'version = "h\\u0001\\u001b[31m[red]64[/red]\\u202e"'))
    assert harness(capsys, "lock")[0] == 0
    code, text = harness(capsys, "run")
    assert code == 0, text
    assert not RAW.search(text), text
    for args in (("diff",), ("diff", "--format", "md")):
        code, text = harness(capsys, *args)
        assert code == 0, text
        assert_shown_not_obeyed(text)
        assert "[red]64[/red]" in text, text


def test_error_messages_in_the_run_summary_are_shown_not_obeyed(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.report.console import print_error_summary

    errors = {"total": 1, "by_kind": {"server_error": {
        "count": 1, "stage": "generate", "cases": ["q1"],
        "messages": [{"case_id": "q1", "message": "HTTP 500: bil\x01ling\x1b[31m\u202e"}]}}}
    print_error_summary(errors, 4, allowed=True)
    assert_shown_not_obeyed(capsys.readouterr().err)
