"""A run as markdown (pull-request comments, $GITHUB_STEP_SUMMARY), JSON (scripts) or JUnit XML (CI test tabs).

The diff part of the markdown is :func:`harness.report.text.diff_markdown`, the same text `harness diff
--format md` prints. JUnit has one ``testcase`` per golden case (not per metric): a CI test tab then
names the cases that fail, with why, and per-metric pass/fail stays the job of `harness gate --junit`
(one test per rule). A case is a failure when :mod:`harness.report.failing` says it fails, an error
when its output carries an error, skipped when every metric is unscored for it, and passes otherwise.
Characters XML 1.0 cannot hold (control characters in a query or an error message) are written as
visible escapes (:mod:`harness.report.xmltext`), so the report always parses.

Each face has one builder, over a run as :func:`harness.runs.open_run` opens it (``run_markdown_table``,
``run_dict_table`` / ``run_json_table``, ``run_junit_table``); ``run_markdown(run)`` and the others serve a
:class:`~harness.types.RunResult` through it (:func:`harness.report.source.result_table`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from harness.diff import Diff
from harness.report.failing import CaseFailure, FailurePolicy, RunFacts
from harness.report.mdtext import md_code, md_text
from harness.report.xmltext import sanitize_tree
from harness.types import MetricSummary, RunResult, Score

if TYPE_CHECKING:
    from harness.columns import RunColumns
    from harness.runs import RunTable

MD_SEGMENT_METRICS = 8
MD_MAX_FAILING = 50


def _cell(text: object) -> str:
    """Markdown text (a table cell): one line, rendering as the original characters."""
    return md_text(str(text).replace("\r", " ").replace("\n", " "))


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def main_metrics(run: RunFacts) -> list[str]:
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


_CACHE_HITS = r'"cache_hits":(?P<hits>\{[^{}]*\})'
"""Where a stored output's ``cache_hits`` object is in its JSON (pydantic's compact dump; a quote inside a
string is escaped, so the key cannot be matched inside a value; the values are booleans, no braces)."""


def table_cache_hits(table: RunTable, rows: int = 65_536) -> dict[str, tuple[int, int]]:
    """:func:`cache_hits` of a stored run without its records: one pass over the ``output`` column of a
    format-4 table, ``rows`` at a time, matching each output's ``cache_hits`` object in its JSON and parsing
    only the distinct ones (a handful), weighted by how often each occurs. A run of an older format (held
    whole) is counted from its records."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if table.header.table is None:
        return cache_hits(table.materialize())
    out: dict[str, list[int]] = {}

    def count(hits: dict[str, bool], times: int) -> None:
        for stage, hit in hits.items():
            c = out.setdefault(stage, [0, 0])
            c[0] += int(bool(hit)) * times
            c[1] += times

    pf = pq.ParquetFile(table.path.with_name(table.header.table))
    for batch in pf.iter_batches(batch_size=rows, columns=["output"]):
        column = batch.column(0)
        found = pc.extract_regex(column, _CACHE_HITS).field(0)
        for entry in pc.value_counts(found.drop_null()).to_pylist():
            count(json.loads(entry["values"]), int(entry["counts"]))
        if found.null_count:  # not in the compact layout: read those outputs whole
            for text in column.filter(pc.is_null(found)).to_pylist():
                count(json.loads(text).get("cache_hits") or {}, 1)
    return {k: (v[0], v[1]) for k, v in out.items()}


def column_segment_sizes(cols: RunColumns) -> dict[str, int]:
    """segment (``tag=value``) -> how many of the run's cases are in it, from its tag columns (its rows' golden
    cases), in the order the segments first occur (a row's segments by tag key)."""
    import numpy as np
    import pyarrow.compute as pc

    found: list[tuple[int, int, str, int]] = []  # (first row, key's place, segment, size)
    for place, key in enumerate(sorted(cols.tags)):
        arr = cols.tags[key]
        encoded = pc.dictionary_encode(arr)
        codes = np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
        values = encoded.dictionary.to_pylist()
        present = codes >= 0
        if not present.any():
            continue
        kept = codes[present]
        rows = np.flatnonzero(present)
        uniq, first, size = np.unique(kept, return_index=True, return_counts=True)
        for code, at, k in zip(uniq.tolist(), first.tolist(), size.tolist(), strict=True):
            found.append((int(rows[at]), place, f"{key}={values[code]}", int(k)))
    found.sort()
    return {seg: k for _, _, seg, k in found}


def _summary_row(name: str, s: MetricSummary) -> str:
    better = "higher" if s.greater_is_better else "lower"
    return f"| {_cell(name)} | {_num(s.mean)} | {s.n} | {s.n_unscored} | {better} |"


def run_markdown(run: RunResult, diff: Diff | None = None, policy: FailurePolicy | None = None,
                 max_failing: int = MD_MAX_FAILING) -> str:
    """The run as markdown: :func:`run_markdown_table` of the run served from memory."""
    from harness.report.source import result_table

    return run_markdown_table(result_table(run), diff, policy, max_failing)


def _table_failures(table: RunTable, cols: RunColumns, policy: FailurePolicy, limit: int | None
                    ) -> tuple[int, list[tuple[CaseFailure, str]]]:
    """(how many cases fail, the first ``limit`` failures (None: all) with each case's query), the failing rows
    told by the columns and their reasons read from those rows' records only."""
    import numpy as np

    from harness.report.failing import FailureJudge

    judge = FailureJudge(table.header, policy)
    rows = np.flatnonzero(judge.mask(cols))
    out: list[tuple[CaseFailure, str]] = []
    wanted = rows if limit is None else rows[:limit]
    for _, cases, outputs, scores in cols.records(wanted):
        queries = {c.id: c.query for c in cases}
        of: dict[str, list[Score]] = {}
        for sc in scores:
            of.setdefault(sc.case_id, []).append(sc)
        for o in outputs:
            f = judge.case(o, of.get(o.case_id, []))
            if f is not None:
                out.append((f, queries.get(o.case_id, "")))
    return len(rows), out


def run_markdown_table(table: RunTable, diff: Diff | None = None, policy: FailurePolicy | None = None,
                       max_failing: int = MD_MAX_FAILING) -> str:
    """The run as markdown (pull-request comments, $GITHUB_STEP_SUMMARY), never holding a stored run whole: the
    header's aggregates, the tag and error columns, and the records of the failing cases it lists."""
    policy = policy or FailurePolicy()
    run = table.header
    cols = table.columns(metrics=None, tags=True, latency=False)
    name = run.manifest.name
    counts = run.counts
    hits = table_cache_hits(table)
    lines = [
        f"## harness report: run `{run.run_id}`",
        "",
        f"Manifest **{_cell(name)}** (`{run.manifest_id[:12]}`), created {run.created_at}. "
        f"{counts.get('cases', run.rows)} cases, {counts.get('errors', 0)} errors, "
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
        sizes = column_segment_sizes(cols)
        lines += ["", "**Segments**" + (f" (first {len(shown)} metrics)" if len(main_metrics(run)) > len(shown)
                                        else ""), "",
                  "| segment | cases | " + " | ".join(_cell(m) for m in shown) + " |",
                  "|---|---|" + "---|" * len(shown)]
        for seg, ms in run.aggregates.segments.items():
            vals = " | ".join(_num(ms[m].mean) if m in ms else "n/a" for m in shown)
            lines.append(f"| {_cell(seg)} | {sizes.get(seg, 0)} | {vals} |")
    n_failing, failures = _table_failures(table, cols, policy, max_failing)
    lines += ["", f"**Failing cases**: {n_failing} of {run.rows} ({policy.describe(run)})"]
    if n_failing:
        lines += ["", "| case | query | why |", "|---|---|---|"]
        for f, q in failures[:max_failing]:
            q = q if len(q) <= 80 else q[:77] + "..."
            lines.append(f"| {md_code(f.case_id, cell=True)} | {_cell(q)} | {_cell('; '.join(f.reasons))} |")
        if n_failing > max_failing:
            lines.append(f"\n... and {n_failing - max_failing} more (see `harness report --format html`).")
    text = "\n".join(lines) + "\n"
    if diff is not None:
        from harness.report.text import diff_markdown

        text += "\n" + diff_markdown(diff)
    return text


def run_dict_table(table: RunTable, diff: Diff | None = None, policy: FailurePolicy | None = None) -> dict[str, Any]:
    """The run as a JSON object for scripts: ids, counts, cache hits, aggregates, segment sizes and every failing
    case with why, its records read (in chunks) for those cases only; the diff as ``harness diff --json``."""
    policy = policy or FailurePolicy()
    run = table.header
    cols = table.columns(metrics=None, tags=True, latency=False)
    _, failures = _table_failures(table, cols, policy, None)
    return {
        "run_id": run.run_id,
        "manifest_id": run.manifest_id,
        "manifest_name": run.manifest.name,
        "created_at": run.created_at,
        "environment": run.environment,
        "counts": run.counts,
        "cache_hits": {k: {"hits": h, "cases": n} for k, (h, n) in table_cache_hits(table).items()},
        "stage_seconds": run.stage_seconds,
        "aggregates": run.aggregates.model_dump(mode="json"),
        "segment_sizes": column_segment_sizes(cols),
        "failing_definition": policy.describe(run),
        "failing": [{"case_id": f.case_id, "reasons": list(f.reasons), "metrics": sorted(f.metrics),
                     "error": f.error} for f, _ in failures],
        "diff": None if diff is None else diff.model_dump(mode="json"),
    }


def run_json_table(table: RunTable, diff: Diff | None = None, policy: FailurePolicy | None = None) -> str:
    return json.dumps(run_dict_table(table, diff, policy), indent=2, ensure_ascii=False) + "\n"


def run_dict(run: RunResult, diff: Diff | None = None, policy: FailurePolicy | None = None) -> dict[str, Any]:
    """:func:`run_dict_table` of the run served from memory."""
    from harness.report.source import result_table

    return run_dict_table(result_table(run), diff, policy)


def run_json(run: RunResult, diff: Diff | None = None, policy: FailurePolicy | None = None) -> str:
    """:func:`run_json_table` of the run served from memory."""
    from harness.report.source import result_table

    return run_json_table(result_table(run), diff, policy)


def run_junit(run: RunResult, policy: FailurePolicy | None = None) -> str:
    """JUnit XML, one test case per golden case (see the module docstring): :func:`run_junit_table` of the run
    served from memory, joined."""
    from harness.report.source import result_table

    return "".join(run_junit_table(result_table(run), policy))


JUNIT_BATCH_ROWS = 2_000
"""Cases per chunk of :func:`run_junit_table` (records parsed and XML written per chunk)."""


def _junit_totals(table: RunTable, policy: FailurePolicy) -> tuple[int, int, int, float]:
    """(failures, errors, skipped, seconds) of the JUnit suite, from the columns: an error is a row whose error
    column is set; a failure a row without one that :class:`FailureJudge` says fails; skipped a row of neither
    with at least one score and every score unscored; the seconds the sum, in case order, of each case's
    latencies as its test case sums them (a stored run's stage by stage in the run's stage order, the order its
    records list them in; a run held in memory from its records)."""
    import numpy as np

    from harness.report.failing import FailureJudge

    cols = table.columns(metrics=None, tags=False, latency=True)
    errored = np.asarray(cols.errored(), dtype=bool)
    failing = FailureJudge(table.header, policy).mask(cols) & ~errored
    n = len(cols)
    scored = np.zeros(n, dtype=bool)  # a score row exists (a value or an unscored one)
    valued = np.zeros(n, dtype=bool)  # a score with a value exists
    for m, v in cols.values.items():
        has = ~np.isnan(v)
        valued |= has
        scored |= has | np.asarray(cols.unscored[m], dtype=bool)
    skipped = ~errored & ~failing & scored & ~valued
    if table.header.table is None:  # held whole: each case's sum in its own stage order, at no cost
        per_case = [sum(o.latency_s.values()) for o in table.materialize().outputs]
    else:
        summed = np.zeros(n)
        for v in cols.latency.values():
            summed += np.where(np.isnan(v), 0.0, v)
        per_case = summed.tolist()
    total = 0.0
    for seconds in per_case:  # one by one, as the cases' times add up (numpy's sum is pairwise)
        total += seconds
    return int(failing.sum()), int(errored.sum()), int(skipped.sum()), total


def run_junit_table(table: RunTable, policy: FailurePolicy | None = None, *, rows: int = JUNIT_BATCH_ROWS
                    ) -> Iterator[str]:
    """JUnit XML of a run (see the module docstring) as consecutive chunks of its text: the suite's totals from
    the columns first, then the test cases ``rows`` cases at a time from
    :meth:`~harness.runs.RunTable.iter_batches`; neither a stored run nor the XML is ever held whole.

    The suite's ``time`` is the float sum of its test cases' times (each ``sum(latency_s.values())``) when each
    case of a stored run lists its stages in the run's stage order or has at most two (addition of two numbers
    commutes); the pipeline writes them so."""
    from xml.etree import ElementTree as ET

    from harness.report.failing import FailureJudge

    policy = policy or FailurePolicy()
    run = table.header
    n_fail, n_err, n_skip, total = _junit_totals(table, policy)
    quality = set(run.aggregates.metrics("quality"))
    suite_name = f"harness.report.{run.manifest.name or run.manifest_id[:12]}"
    suite = ET.Element("testsuite", name=suite_name, tests=str(len(table)), failures=str(n_fail), errors=str(n_err),
                       skipped=str(n_skip), time=f"{total:.3f}")
    props = ET.SubElement(suite, "properties")
    for k, v in (("run_id", run.run_id), ("manifest_id", run.manifest_id), ("failing", policy.describe(run))):
        ET.SubElement(props, "property", name=k, value=v)
    head = ET.tostring(sanitize_tree(suite), encoding="unicode", xml_declaration=True)
    end = "</testsuite>"
    if not head.endswith(end):  # the suite always has its properties, so it is never written as <testsuite/>
        raise AssertionError("the JUnit suite's head does not end with its closing tag")
    yield head[:-len(end)]
    judge = FailureJudge(run, policy)
    for _, outputs, scores in table.iter_batches(rows=rows):
        of: dict[str, list[Score]] = {}
        for sc in scores:
            of.setdefault(sc.case_id, []).append(sc)
        parts: list[str] = []
        for o in outputs:
            case_scores = of.get(o.case_id, [])
            values: dict[str, float | None] = {}
            for sc in case_scores:
                values[sc.metric] = sc.value
            case = ET.Element("testcase", classname=suite_name, name=o.case_id)
            case.set("time", f"{sum(o.latency_s.values()):.3f}")
            f = judge.case(o, case_scores)
            if o.error:
                msg = "; ".join(f.reasons) if f else o.error.message
                ET.SubElement(case, "error", message=msg, type=o.error.stage).text = msg
            elif f is not None:
                msg = "; ".join(f.reasons)
                ET.SubElement(case, "failure", message=msg, type="harness.failing").text = msg
            elif values and all(v is None for v in values.values()):
                ET.SubElement(case, "skipped", message="every metric is unscored for this case")
            shown = " ".join(f"{m}={'unscored' if v is None else f'{v:.4f}'}" for m, v in values.items()
                             if m in quality)
            ET.SubElement(case, "system-out").text = shown
            parts.append(ET.tostring(sanitize_tree(case), encoding="unicode"))
        if parts:
            yield "".join(parts)
    yield end + "\n"
