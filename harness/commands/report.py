"""report: a run (and optionally its diff against a base) as HTML, markdown, JSON or JUnit XML."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from harness.cli import HarnessCommand
from harness.commands.core import manifest_option
from harness.commands.release import _settings, diff_options

if TYPE_CHECKING:
    from collections.abc import Iterator

    from harness.columns import RunColumns
    from harness.diff import DiffSettings
    from harness.manifest import LoadedManifest
    from harness.runs import RunTable, RunTableHeader
    from harness.storage import Layout
    from harness.types import RunResult


def _readable(path: Path) -> None:
    """Atomic writes create 0600 files; a report is meant to be opened and shared like any other file."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)


def _is_run_file(ref: str | None) -> bool:
    return ref is not None and ref.endswith(".json") and Path(ref).is_file()


@click.command("report", cls=HarnessCommand)
@click.argument("run", required=False)
@click.option("--against", "against", default=None, metavar="BASE",
              help='Also diff against BASE: a run id, a run file, or "baseline" (the manifest\'s baseline, the '
                   "promoted run, or the run at an earlier git commit).")
@manifest_option
@click.option("--format", "fmt", type=click.Choice(["html", "md", "json", "junit"]), default="html",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here. Default: html to .harness/reports/<run id>.html, the rest to stdout.")
@click.option("--fail-below", "fail_below", multiple=True, metavar="METRIC=VALUE",
              help="A case fails when METRIC is below VALUE (above, for lower-is-better metrics). Repeatable. "
                   "Default: the first retrieval metric below 0.5.")
@click.option("--no-corpus", is_flag=True, help="Show document ids only (skip loading the corpus for snippets).")
@click.option("--max-failing", type=click.IntRange(min=0), default=300, show_default=True,
              help="Failing cases detailed in the HTML report (the case table lists all).")
@diff_options
def report(run: str | None, against: str | None, manifest: Path | None, fmt: str, output: Path | None,
           fail_below: tuple[str, ...], no_corpus: bool, max_failing: int, alpha: float, correction: str,
           test_name: str, resamples: int, seed: int) -> None:
    """Render RUN (default: the latest run of the current manifest) as a report.

    A case is failing when it has an error, a critical format check failed, answer_contains, fact_recall or
    instructions_strict is 0, or a --fail-below threshold is crossed (default: the first retrieval metric
    below 0.5). Unscored values never fail. JUnit has one test case per golden case.

    \b
    Example:
      harness report                              # HTML, path printed
      harness report --against baseline -o report.html
      harness report --format md >> "$GITHUB_STEP_SUMMARY"
      harness report 20261126T0301 --format junit -o cases.xml
    """
    from harness.manifest import load_manifest
    from harness.runs import open_run
    from harness.storage import Layout

    loaded: LoadedManifest | None = None
    if manifest is not None or not _is_run_file(run):
        loaded = load_manifest(manifest)
    if loaded is not None:
        layout = _layout_for(loaded.path)
        head_table = _head_table(loaded, layout, run)
    else:
        head_table = open_run(run or "")
        mpath = head_table.header.manifest_path
        layout = _layout_for(mpath) if mpath else Layout(Path(".harness"))
    _report(head_table, against, loaded, layout, fmt, output, fail_below, no_corpus, max_failing,
            _settings(alpha, correction, test_name, resamples, seed))


def _layout_for(manifest_path: str | Path) -> Layout:
    from harness.storage import Layout

    return Layout.for_manifest(manifest_path)


def _head_table(loaded: LoadedManifest, layout: Layout, ref: str | None) -> RunTable:
    """The head run as :func:`harness.baseline.resolve_head` finds it, opened (:func:`harness.runs.open_run`)."""
    from harness.baseline import resolve_head_table

    return resolve_head_table(loaded, layout, ref)


def _base_table(against: str | None, loaded: LoadedManifest | None, head: RunTableHeader, layout: Layout
                ) -> tuple[LoadedManifest | None, RunTable | None, str | None]:
    """The base run as :func:`harness.baseline.resolve_base` / ``load_run_ref`` find it, opened."""
    from harness.baseline import resolve_base_table, run_ref_table
    from harness.errors import HarnessError
    from harness.manifest import load_manifest

    if against == "baseline":
        if loaded is None:
            if not head.manifest_path or not Path(head.manifest_path).is_file():
                raise HarnessError("--against baseline needs the manifest", hint="pass --manifest")
            loaded = load_manifest(head.manifest_path)
        found, how = resolve_base_table(loaded, layout)
        if found is None:
            raise HarnessError(f"nothing to compare with: {how}")
        return loaded, found, how
    if against:
        return loaded, run_ref_table(against, layout), f"given: {against}"
    return loaded, None, None


def _diff_side(table: RunTable) -> RunResult | RunColumns:
    """What ``harness diff`` compares of a stored run (:func:`harness.baseline.read_columns`)."""
    if table.header.table is None:
        return table.materialize()
    return table.columns(metrics=None, tags=True, latency=True)


def _report(head: RunTable, against: str | None, loaded: LoadedManifest | None, layout: Layout, fmt: str,
            output: Path | None, fail_below: tuple[str, ...], no_corpus: bool, max_failing: int,
            settings: DiffSettings) -> None:
    """The report of an opened run, every format by its one builder (:func:`harness.report.html.build_report_table`,
    :func:`harness.report.export.run_markdown_table`, ...). A format-4 run is read by columns, never whole; a
    run file of an older format is held whole (as open_run loads it), diffed and gated whole against a base
    loaded whole, and its page lists every case, as it always did."""
    from harness.diff import compare
    from harness.errors import HarnessError
    from harness.report import FailurePolicy, parse_thresholds
    from harness.report.export import run_json_table, run_junit_table, run_markdown_table
    from harness.report.html import MAX_LISTED_CASES, REPORT_MAX_FLIPS, render_html_table
    from harness.report.source import check_one_row_per_case
    from harness.storage import atomic_write_text

    h = head.header
    whole = h.table is None
    loaded, base, how = _base_table(against, loaded, h, layout)
    if base is not None and base.header.run_id == h.run_id:
        raise HarnessError(f"base and head are the same run ({h.run_id})", hint="pick another --against")
    policy = FailurePolicy(thresholds=parse_thresholds(fail_below, h))
    head_side = head.materialize() if whole else head.columns(metrics=None, tags=True, latency=True)
    diff = None
    base_side: RunResult | RunColumns | None = None
    if base is not None:
        base_side = base.materialize() if whole else _diff_side(base)
    for table in (head, base):  # a run file of an older format, read whole: served by columns, one row per case
        if table is not None and table.header.table is None:
            check_one_row_per_case(table.materialize())
    if base_side is not None:
        # a page lists at most MAX_LISTED_CASES cases; a larger stored run shows its largest flips only
        max_flips = REPORT_MAX_FLIPS if fmt == "html" and not whole and len(head) > MAX_LISTED_CASES else None
        diff = compare(base_side, head_side, settings, layout, max_flips=max_flips)

    if fmt == "html":
        # with a base to judge against, the page opens on the manifest's gate verdict (the gates of the manifest
        # as it is now when one is loaded, else those stored with the run), as `harness gate` would give it
        from harness.columns import RunColumns as Columns
        from harness.gates import evaluate_gates

        rules = loaded.manifest.gates if loaded is not None else h.manifest.gates
        verdict = (evaluate_gates(rules, head_side, diff, base=base_side)
                   if diff is not None and rules and base_side is not None else None)
        text = render_html_table(head, base=base, diff=diff, base_how=how, policy=policy, layout=layout,
                                 corpus=not no_corpus, max_failing=max_failing, verdict=verdict,
                                 max_cases=len(head) if whole else MAX_LISTED_CASES,
                                 columns=head_side if isinstance(head_side, Columns) else None,
                                 base_columns=base_side if isinstance(base_side, Columns) else None)
        path = output or layout.home / "reports" / f"{h.run_id}.html"
        atomic_write_text(path, text)
        _readable(path)
        click.echo(str(path))
        return
    if fmt == "md":
        text = run_markdown_table(head, diff, policy)
    elif fmt == "json":
        text = run_json_table(head, diff, policy)
    else:
        _emit_chunks(run_junit_table(head, policy), output)
        return
    _emit(text, output)


def _emit_chunks(chunks: Iterator[str], output: Path | None) -> None:
    """:func:`_emit` of a text made chunk by chunk, never held whole: to ``output`` atomically, else to stdout."""
    from harness.storage import atomic_write_chunks, check_writable

    if output is not None:
        check_writable(output)
        atomic_write_chunks(output, (chunk.encode("utf-8") for chunk in chunks))
        click.echo(str(output), err=True)
    else:
        for chunk in chunks:
            click.echo(chunk, nl=False)


def _emit(text: str, output: Path | None) -> None:
    _emit_chunks(iter((text,)), output)
