"""Reports people want to read: one self-contained HTML file, or markdown, JSON and JUnit for CI.

`harness report` renders a stored run (and, with a base, its diff): metric summaries with per-case
histograms and per-segment bars, segment tables, a sortable and filterable case table, and every
failing case with its retrieved passages, answer and validator messages side by side.
"""

from harness.report.export import run_dict, run_json, run_junit, run_markdown
from harness.report.failing import CaseFailure, FailurePolicy, find_failures, parse_thresholds
from harness.report.html import build_report, load_run_corpus, render_html, render_report

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
