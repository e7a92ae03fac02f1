"""report: a run (and optionally its diff against a base) as HTML, markdown, JSON or JUnit XML."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli import HarnessCommand
from harness.commands.core import manifest_option
from harness.commands.release import _settings, diff_options


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
    from harness.baseline import load_run_ref, resolve_base, resolve_head
    from harness.diff import compare
    from harness.errors import HarnessError
    from harness.manifest import LoadedManifest, load_manifest
    from harness.report import FailurePolicy, parse_thresholds, render_html, run_json, run_junit, run_markdown
    from harness.runs import load_run
    from harness.storage import Layout, atomic_write_text

    loaded: LoadedManifest | None = None
    if manifest is not None or not _is_run_file(run):
        loaded = load_manifest(manifest)
    if loaded is not None:
        layout = Layout.for_manifest(loaded.path)
        head = resolve_head(loaded, layout, run)
    else:
        head = load_run(run or "")
        layout = Layout.for_manifest(head.manifest_path) if head.manifest_path else Layout(Path(".harness"))

    base = None
    how: str | None = None
    if against == "baseline":
        if loaded is None:
            if not head.manifest_path or not Path(head.manifest_path).is_file():
                raise HarnessError("--against baseline needs the manifest", hint="pass --manifest")
            loaded = load_manifest(head.manifest_path)
        base, how = resolve_base(loaded, layout)
        if base is None:
            raise HarnessError(f"nothing to compare with: {how}")
    elif against:
        base, how = load_run_ref(against, layout), f"given: {against}"
    if base is not None and base.run_id == head.run_id:
        raise HarnessError(f"base and head are the same run ({head.run_id})", hint="pick another --against")

    policy = FailurePolicy(thresholds=parse_thresholds(fail_below, head))
    settings = _settings(alpha, correction, test_name, resamples, seed)
    diff = None if base is None else compare(base, head, settings, layout)

    if fmt == "html":
        # with a base to judge against, the page opens on the manifest's gate verdict (the gates of the manifest
        # as it is now when one is loaded, else those stored with the run), as `harness gate` would give it
        from harness.gates import evaluate_gates

        rules = loaded.manifest.gates if loaded is not None else head.manifest.gates
        verdict = evaluate_gates(rules, head, diff, base=base) if diff is not None and rules else None
        text = render_html(head, base=base, diff=diff, base_how=how, policy=policy, layout=layout,
                           corpus=not no_corpus, max_failing=max_failing, verdict=verdict)
        path = output or layout.home / "reports" / f"{head.run_id}.html"
        atomic_write_text(path, text)
        _readable(path)
        click.echo(str(path))
        return
    if fmt == "md":
        text = run_markdown(head, diff, policy)
    elif fmt == "json":
        text = run_json(head, diff, policy)
    else:
        text = run_junit(head, policy)
    if output is not None:
        atomic_write_text(output, text)
        click.echo(str(output), err=True)
    else:
        click.echo(text, nl=False)
