"""A run as markdown (pull-request comments, $GITHUB_STEP_SUMMARY), JSON (scripts) or JUnit XML (CI test tabs).

The diff part of the markdown is :func:`harness.report.text.diff_markdown`, the same text `harness diff
--format md` prints. JUnit has one ``testcase`` per golden case (not per metric): a CI test tab then
names the cases that fail, with why, and per-metric pass/fail stays the job of `harness gate --junit`
(one test per rule). A case is a failure when :mod:`harness.report.failing` says it fails, an error
when its output carries an error, skipped when every metric is unscored for it, and passes otherwise.
Characters XML 1.0 cannot hold (control characters in a query or an error message) are written as
visible escapes (:mod:`harness.report.xmltext`), so the report always parses.
"""

from __future__ import annotations

import json
from typing import Any

from harness.diff import Diff
from harness.report.failing import FailurePolicy, find_failures
from harness.report.mdtext import md_code, md_text
from harness.report.xmltext import sanitize_tree
from harness.types import MetricSummary, RunResult

MD_SEGMENT_METRICS = 8
MD_MAX_FAILING = 50


def _cell(text: object) -> str:
    """Markdown text (a table cell): one line, rendering as the original characters."""
    return md_text(str(text).replace("\r", " ").replace("\n", " "))


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def main_metrics(run: RunResult) -> list[str]:
    """The quality metrics in the run's order (diagnostics, such as per-validator failures, are shown apart)."""
    return run.aggregates.metrics("quality")


def cache_hits(run: RunResult) -> dict[str, tuple[int, int]]:
    """stage -> (cases served from cache, cases that ran the stage)."""
    out: dict[str, list[int]] = {}
    for o in run.outputs:
        for stage, hit in o.cache_hits.items():
            c = out.setdefault(stage, [0, 0])
            c[0] += int(hit)
            c[1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def _summary_row(name: str, s: MetricSummary) -> str:
    better = "higher" if s.greater_is_better else "lower"
    return f"| {_cell(name)} | {_num(s.mean)} | {s.n} | {s.n_unscored} | {better} |"


def run_markdown(run: RunResult, diff: Diff | None = None, policy: FailurePolicy | None = None,
                 max_failing: int = MD_MAX_FAILING) -> str:
    policy = policy or FailurePolicy()
    name = run.manifest.name
    counts = run.counts
    hits = cache_hits(run)
    lines = [
        f"## harness report: run `{run.run_id}`",
        "",
        f"Manifest **{_cell(name)}** (`{run.manifest_id[:12]}`), created {run.created_at}. "
        f"{counts.get('cases', len(run.outputs))} cases, {counts.get('errors', 0)} errors, "
        f"{counts.get('unscored', 0)} unscored values"
        + ("; cache hits: " + ", ".join(f"{s} {h}/{n}" for s, (h, n) in hits.items()) if hits else "")
        + ".",
        "",
        "| metric | mean | n | unscored | better |",
        "|---|---|---|---|---|",
    ]
    overall = run.aggregates.overall
    lines += [_summary_row(m, overall[m]) for m in main_metrics(run)]
    validators = run.aggregates.metrics("diagnostic")
    if validators:
        lines += ["", "<details><summary>Per-validator failure rates</summary>", "",
                  "| validator | failure rate | n | unscored | better |", "|---|---|---|---|---|"]
        lines += [_summary_row(overall[m].label or m, overall[m]) for m in validators]
        lines += ["", "</details>"]
    if run.aggregates.segments:
        shown = main_metrics(run)[:MD_SEGMENT_METRICS]
        sizes = segment_sizes(run)
        lines += ["", "**Segments**" + (f" (first {len(shown)} metrics)" if len(main_metrics(run)) > len(shown)
                                        else ""), "",
                  "| segment | cases | " + " | ".join(_cell(m) for m in shown) + " |",
                  "|---|---|" + "---|" * len(shown)]
        for seg, ms in run.aggregates.segments.items():
            vals = " | ".join(_num(ms[m].mean) if m in ms else "n/a" for m in shown)
            lines.append(f"| {_cell(seg)} | {sizes.get(seg, 0)} | {vals} |")
    failures = find_failures(run, policy)
    queries = {c.id: c.query for c in run.cases}
    lines += ["", f"**Failing cases**: {len(failures)} of {len(run.outputs)} ({policy.describe(run)})"]
    if failures:
        lines += ["", "| case | query | why |", "|---|---|---|"]
        for f in list(failures.values())[:max_failing]:
            q = queries.get(f.case_id, "")
            q = q if len(q) <= 80 else q[:77] + "..."
            lines.append(f"| {md_code(f.case_id, cell=True)} | {_cell(q)} | {_cell('; '.join(f.reasons))} |")
        if len(failures) > max_failing:
            lines.append(f"\n... and {len(failures) - max_failing} more (see `harness report --format html`).")
    text = "\n".join(lines) + "\n"
    if diff is not None:
        from harness.report.text import diff_markdown

        text += "\n" + diff_markdown(diff)
    return text


def segment_sizes(run: RunResult) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for c in run.cases:
        for seg in c.segments():
            sizes[seg] = sizes.get(seg, 0) + 1
    return sizes


def run_dict(run: RunResult, diff: Diff | None = None, policy: FailurePolicy | None = None) -> dict[str, Any]:
    policy = policy or FailurePolicy()
    failures = find_failures(run, policy)
    return {
        "run_id": run.run_id,
        "manifest_id": run.manifest_id,
        "manifest_name": run.manifest.name,
        "created_at": run.created_at,
        "environment": run.environment,
        "counts": run.counts,
        "cache_hits": {k: {"hits": h, "cases": n} for k, (h, n) in cache_hits(run).items()},
        "stage_seconds": run.stage_seconds,
        "aggregates": run.aggregates.model_dump(mode="json"),
        "segment_sizes": segment_sizes(run),
        "failing_definition": policy.describe(run),
        "failing": [{"case_id": f.case_id, "reasons": list(f.reasons), "metrics": sorted(f.metrics),
                     "error": f.error} for f in failures.values()],
        "diff": None if diff is None else diff.model_dump(mode="json"),
    }


def run_json(run: RunResult, diff: Diff | None = None, policy: FailurePolicy | None = None) -> str:
    return json.dumps(run_dict(run, diff, policy), indent=2, ensure_ascii=False) + "\n"


def run_junit(run: RunResult, policy: FailurePolicy | None = None) -> str:
    """JUnit XML, one test case per golden case (see the module docstring)."""
    from xml.etree import ElementTree as ET

    policy = policy or FailurePolicy()
    failures = find_failures(run, policy)
    values = run.case_scores()
    quality = set(run.aggregates.metrics("quality"))
    suite_name = f"harness.report.{run.manifest.name or run.manifest_id[:12]}"
    suite = ET.Element("testsuite", name=suite_name, tests=str(len(run.outputs)), failures="0", errors="0",
                       skipped="0", time="0")
    props = ET.SubElement(suite, "properties")
    for k, v in (("run_id", run.run_id), ("manifest_id", run.manifest_id), ("failing", policy.describe(run))):
        ET.SubElement(props, "property", name=k, value=v)
    n_fail = n_err = n_skip = 0
    total = 0.0
    for o in run.outputs:
        case = ET.SubElement(suite, "testcase", classname=suite_name, name=o.case_id)
        seconds = sum(o.latency_s.values())
        total += seconds
        case.set("time", f"{seconds:.3f}")
        scores = values.get(o.case_id, {})
        f = failures.get(o.case_id)
        if o.error:
            n_err += 1
            msg = "; ".join(f.reasons) if f else o.error.message
            ET.SubElement(case, "error", message=msg, type=o.error.stage).text = msg
        elif f is not None:
            n_fail += 1
            msg = "; ".join(f.reasons)
            ET.SubElement(case, "failure", message=msg, type="harness.failing").text = msg
        elif scores and all(v is None for v in scores.values()):
            n_skip += 1
            ET.SubElement(case, "skipped", message="every metric is unscored for this case")
        shown = " ".join(f"{m}={'unscored' if v is None else f'{v:.4f}'}" for m, v in scores.items()
                         if m in quality)
        ET.SubElement(case, "system-out").text = shown
    suite.set("failures", str(n_fail))
    suite.set("errors", str(n_err))
    suite.set("skipped", str(n_skip))
    suite.set("time", f"{total:.3f}")
    return ET.tostring(sanitize_tree(suite), encoding="unicode", xml_declaration=True) + "\n"
