"""Reports people want to read: one self-contained HTML file, or markdown, JSON and JUnit for CI.

`harness report` renders a stored run (and, with a base, its diff and optionally the gate's verdict):
it opens on the summary, the verdict and what changed, with a paged, sortable and filterable case
table; labelled per-case histograms and per-segment charts, segment tables, and every failing case
with its retrieved passages, answer and validator messages side by side are one click away.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.report.export import run_dict, run_json, run_junit, run_markdown
    from harness.report.failing import CaseFailure, FailurePolicy, find_failures, parse_thresholds
    from harness.report.html import build_report, load_run_corpus, render_html, render_report

# Loaded on first use: the text front ends import harness.report.xmltext, which must not pull in the
# HTML renderer (Jinja2, about a third of a second) on every `harness run`.
_HOMES = {
    "run_dict": "export", "run_json": "export", "run_junit": "export", "run_markdown": "export",
    "CaseFailure": "failing", "FailurePolicy": "failing", "find_failures": "failing", "parse_thresholds": "failing",
    "build_report": "html", "load_run_corpus": "html", "render_html": "html", "render_report": "html",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'harness.report' has no attribute {name!r}")
    return getattr(importlib.import_module(f"harness.report.{_HOMES[name]}"), name)

__all__ = [
    "CaseFailure",
    "FailurePolicy",
    "build_report",
    "find_failures",
    "load_run_corpus",
    "parse_thresholds",
    "render_html",
    "render_report",
    "run_dict",
    "run_json",
    "run_junit",
    "run_markdown",
]
