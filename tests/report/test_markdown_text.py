"""Markdown reports render user text as itself: a regex keeps its single backslashes (no `\\\\d+`), syntax
characters are escaped only where markdown would read them. The oracle is a real CommonMark renderer with
GitHub's table and strikethrough extensions (markdown-it-py, which rich already depends on)."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from harness.manifest import lock
from harness.pipeline import run_manifest
from harness.report import find_failures, run_markdown
from harness.report.mdtext import md_code, md_text
from tests.conftest import add_generation, make_project

MD = MarkdownIt("commonmark").enable("table").enable("strikethrough")

# real patterns: the bundled example's contracts, a fact regex, and text that looks like markdown
SAMPLES = [
    r"\d+",
    r"(^\s*[-*#>]|\*\*|`)",
    r"^```",
    r"no match for /\d{2,3}\.\d+ (days|hours)/",
    r"C:\path\to\file\ and a trailing backslash \ ",
    "a | b || c",
    "snake_case _emphasis_ __dunder__ *star* ~~struck~~",
    "[a link](https://example.com) ![img](x.png) [ref][r] [plain]",
    "<b>bold</b> &amp; &#42; <https://example.com> <!-- c --> </i> <?x?>",
    "ndcg@10 0.2754 < 0.5 and 3 <4 > 2",
    "```fence``` and `tick`",
]


def _cells(markdown: str) -> list[str]:
    """The text of every table body cell, as a browser would show it."""
    html = MD.render(markdown)
    return [unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td>(.*?)</td>", html, re.S)]


@pytest.mark.parametrize("text", SAMPLES)
def test_text_and_code_spans_render_as_the_original(text: str) -> None:
    table = "| a | b |\n|---|---|\n| " + md_text(text) + " | " + md_code(text, cell=True) + " |\n"
    plain, code = _cells(table)
    assert plain == text.strip() and code == text
    # outside a table a pipe needs no escape in a code span; text still renders as itself
    span = re.fullmatch(r"<p><code>(.*)</code></p>\n", MD.render(md_code(text)), re.S)
    assert span is not None and unescape(span.group(1)) == text
    assert unescape(re.sub(r"<[^>]+>", "", MD.render(md_text(text)))).strip() == text.strip()


def test_a_regex_keeps_its_backslashes_in_the_markdown_source() -> None:
    assert md_text(r"\d+ days") == r"\d+ days"  # a backslash before a letter is literal in markdown
    assert md_code(r"\d+") == r"`\d+`"
    assert md_text(r"\.") == r"\\."  # before punctuation it would escape it: doubled so it shows
    assert md_text("snake_case") == "snake_case"  # intraword underscores cannot emphasize
    assert md_text("ndcg@10 0.27 < 0.5") == "ndcg@10 0.27 < 0.5"  # no tag can start here


def test_run_markdown_shows_a_validator_regex_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run whose contract has a regex check that fails: the failing-case row renders the pattern exactly."""
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)
    make_project(tmp_path, lock=False)
    pattern = r"^\d{3}\.\d+ (days|hours)$"
    manifest = add_generation(tmp_path, case_updates={1: {"answers": ["every ninety days"], "contract": "short_plain"}})
    contracts = tmp_path / "validators" / "contracts.toml"
    toml_pattern = pattern.replace("\\", "\\\\")
    contracts.write_text(contracts.read_text().replace(
        '{ type = "length", name = "words", max_words = 25 }',
        f'{{ type = "length", name = "words", max_words = 25 }}, {{ type = "regex", name = "count", '
        f'pattern = "{toml_pattern}", must = "match" }}'))
    lock(manifest)
    run = run_manifest(manifest).run
    reasons = "; ".join(find_failures(run)["q2"].reasons)
    assert f"/{pattern}/" in reasons  # the validator names its pattern as written

    md = run_markdown(run)
    row = next(line for line in md.splitlines() if line.startswith("| `q2` |"))
    # the source: \d stays as written; only the backslash before "." (which would escape it) and the pipe change
    assert r"/^\d{3}\\.\d+ (days\|hours)$/" in row and r"\\d" not in row
    cells = _cells(md)
    assert cells[cells.index("q2") + 2] == reasons  # rendered: exactly the reasons the run recorded
