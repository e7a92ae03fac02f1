"""diff, gate, baseline, rollback, attribute."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from harness.diff import DiffSettings

from harness.cli import HarnessCommand, HarnessGroup
from harness.commands.core import _progress, manifest_option, project
from harness.options import ALLOW_NO_BASELINE, DIFF_OPTIONS, click_options, diff_settings
from harness.report.xmltext import visible

# One definition of each option, shared with the pytest plugin (harness.options).
diff_options = click_options(*DIFF_OPTIONS)
allow_no_baseline_option = click_options(ALLOW_NO_BASELINE)


def _settings(alpha: float, correction: str, test_name: str, resamples: int, seed: int) -> DiffSettings:
    return diff_settings({"alpha": alpha, "correction": correction, "test_name": test_name,
                          "resamples": resamples, "seed": seed})


@click.command("diff", cls=HarnessCommand)
@click.argument("base", required=False)
@click.argument("head", required=False)
@manifest_option
@click.option("--json", "as_json", is_flag=True,
              help="Print the whole diff as JSON (every flipped case: a 1M-case diff lists every flip, each "
                   "case's record read; text and md show only the largest flips, and read only those).")
@click.option("--format", "fmt", type=click.Choice(["text", "md"]), default="text", show_default=True)
@diff_options
def diff_cmd(base: str | None, head: str | None, manifest: Path | None, as_json: bool, fmt: str, alpha: float,
             correction: str, test_name: str, resamples: int, seed: int) -> None:
    """Compare two runs: artifacts, metric deltas with CIs and p-values, segments, flipped cases.

    BASE defaults to the baseline (manifest `baseline`, the promoted run, or the run of the manifest at an
    earlier git commit); HEAD to the latest run of the current manifest. Both accept a run id or a run file.

    \b
    Example:
      harness diff                      # baseline vs latest run
      harness diff 20261126T0301 --json
    """
    from harness.baseline import resolve_pair_columns
    from harness.diff import compare, diff_json
    from harness.report.text import SHOWN_FLIPS_MD, SHOWN_FLIPS_TEXT, diff_markdown, print_diff

    loaded, layout = project(manifest)
    # format-4 runs are read as columns (nothing per case materialized); older run files load whole
    base_run, head_run, how = resolve_pair_columns(loaded, layout, base, head)
    # the text and md faces show the largest flips only: only those cases' records are fetched
    shown = None if as_json else SHOWN_FLIPS_MD if fmt == "md" else SHOWN_FLIPS_TEXT
    d = compare(base_run, head_run, _settings(alpha, correction, test_name, resamples, seed), layout,
                max_flips=shown)
    if as_json:
        click.echo(diff_json(d))
    elif fmt == "md":
        click.echo(diff_markdown(d), nl=False)
    else:
        click.echo(f"base: {visible(how)}", err=True)
        print_diff(d)


@click.command("gate", cls=HarnessCommand)
@manifest_option
@click.option("--base", "base", default=None, help="Run id or file to compare with (default: the baseline).")
@click.option("--format", "fmt", type=click.Choice(["text", "md", "json"]), default="text", show_default=True,
              help="json publishes every flipped case (a 1M-case diff lists every flip, each case's record "
                   "read); text and md show only the largest flips, and read only those.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the md/json report to this file (e.g. $GITHUB_STEP_SUMMARY) as well.")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write JUnit XML with one test per rule.")
@click.option("--attribute", "do_attribute", is_flag=True, help="Also attribute deltas to changed artifacts.")
@allow_no_baseline_option
@diff_options
@click.pass_context
def gate_cmd(ctx: click.Context, manifest: Path | None, base: str | None, fmt: str, output: Path | None,
             junit: Path | None, do_attribute: bool, allow_no_baseline: bool, alpha: float, correction: str,
             test_name: str, resamples: int, seed: int) -> None:
    """Run what is stale, diff against the baseline, apply the manifest's gate rules.

    Exit code 0 when every rule passes, 1 when one fails or cannot judge (a drop rule with no baseline, a
    metric the run did not score, errored cases no error_rate rule allows), 2 on a usage, config or
    input error (a rule naming an unknown metric, stage or segment tag is caught before anything runs).

    \b
    Example:
      harness gate --format md -o "$GITHUB_STEP_SUMMARY" --junit gate.xml
    """
    from harness.baseline import read_columns, resolve_base_columns
    from harness.gates import check_gate_config, gate, junit_xml
    from harness.pipeline import execute
    from harness.report.text import (
        SHOWN_FLIPS_MD,
        SHOWN_FLIPS_TEXT,
        diff_markdown,
        print_diff,
        print_verdict,
        verdict_markdown,
    )
    from harness.storage import atomic_write_text, check_writable

    for target in (output, junit):  # the verdict must never be hidden by an unwritable report path
        if target is not None:
            check_writable(target)
    loaded, layout = project(manifest)
    check_gate_config(loaded)
    settings = _settings(alpha, correction, test_name, resamples, seed)
    # validated before the head run is executed and stored; a format-4 baseline is read as columns
    base_run, how = resolve_base_columns(loaded, layout, base)
    with _progress(ctx) as progress:
        report = execute(loaded, progress=progress, layout=layout)
    head_run = read_columns(report.path, layout.project)  # the stored run, as columns: never loaded whole here
    verdict = gate(loaded.manifest.gates, head_run, base_run, settings=settings, layout=layout,
                   allow_no_baseline=allow_no_baseline,
                   max_flips=None if fmt == "json" else SHOWN_FLIPS_MD if fmt == "md" else SHOWN_FLIPS_TEXT)
    d = verdict.diff
    attribution = None
    if do_attribute and d is not None and d.artifacts and base_run is not None:
        from harness.attribute import attribute

        # both runs as the gate read them (columns of a format-4 run); the ablations read back as columns
        attribution = attribute(base_run, head_run, layout)
    if fmt == "json":
        text = json.dumps({"passed": verdict.passed, "base": how, "verdict": verdict.model_dump(mode="json"),
                           "diff": None if d is None else d.model_dump(mode="json"),
                           "attribution": None if attribution is None else attribution.model_dump(mode="json")},
                          indent=2) + "\n"
    elif fmt == "md":
        if d is not None:
            text = diff_markdown(d, verdict)
        else:
            text = "\n".join(verdict_markdown(verdict, f"No baseline: {how}.")) + "\n"
        if attribution is not None:
            sentences = [f"- {visible(a.sentence())}" for a in attribution.attributions]
            text += "\n**Attribution**\n\n" + "\n".join(sentences) + "\n"
    else:
        text = ""
        click.echo(f"base: {visible(how)}", err=True)
        if d is not None:
            print_diff(d, verdict)
        else:
            print_verdict(verdict)
        if attribution is not None:
            for a in attribution.attributions:
                click.echo(visible(a.sentence()))
    if text:
        click.echo(text, nl=False)
        if output is not None:
            atomic_write_text(output, text)
    if junit is not None:
        atomic_write_text(junit, junit_xml(verdict))
    if not verdict.passed:
        raise SystemExit(1)


@click.group("baseline", cls=HarnessGroup)
def baseline_group() -> None:
    """Show or promote the baseline run that diffs and gates compare against."""


@baseline_group.command("promote")
@click.argument("run", required=False)
@manifest_option
@click.option("--force", is_flag=True, help="Promote even if the run fails the gates.")
def promote_cmd(run: str | None, manifest: Path | None, force: bool) -> None:
    """Record RUN (default: the latest run of the manifest) as the baseline, if it passes the gates.

    \b
    Example:
      harness baseline promote
    """
    from harness.baseline import load_run_ref, promote, resolve_base, resolve_head
    from harness.errors import HarnessError
    from harness.gates import check_gate_config, gate

    loaded, layout = project(manifest)
    target = load_run_ref(run, layout) if run else resolve_head(loaded, layout)
    current, _ = resolve_base(loaded, layout)
    if (current is None or current.run_id != target.run_id) and not force:
        # The same gate as `harness gate`; with no baseline yet, the rules that need none still apply
        # (floors, ceilings, rates, errored cases, latency) and only the drop rules are not applicable.
        check_gate_config(loaded)
        verdict = gate(loaded.manifest.gates, target, current, allow_no_baseline=current is None)
        if not verdict.passed:
            names = ", ".join(r.rule for r in verdict.failed)
            raise HarnessError(f"run {target.run_id} fails the gates ({names}); not promoted",
                               hint="fix the regression, or pass --force")
    path = promote(target, layout)
    click.echo(f"baseline: {target.run_id} (manifest {target.manifest_id[:12]}) recorded in {path}")


@baseline_group.command("show")
@manifest_option
@click.option("--json", "as_json", is_flag=True, help="Print the baseline as JSON.")
def show_cmd(manifest: Path | None, as_json: bool) -> None:
    """Print which run is the baseline and how it was found.

    \b
    Example:
      harness baseline show --json
    """
    from harness.baseline import resolve_base

    loaded, layout = project(manifest)
    run, how = resolve_base(loaded, layout)
    if as_json:
        click.echo(json.dumps({"run_id": None if run is None else run.run_id,
                               "manifest_id": None if run is None else run.manifest_id, "how": how}, indent=2))
        return
    click.echo(how if run is None else f"{run.run_id} ({how})")


@click.command("rollback", cls=HarnessCommand)
@manifest_option
@click.option("--to", "to", default=None, metavar="RUN|MANIFEST",
              help="Run id or run file, or a manifest file, to roll back to (default: the promoted baseline).")
def rollback_cmd(manifest: Path | None, to: str | None) -> None:
    """Restore the pins (and snapshotted files) of the last passing baseline into the manifest, and say what
    changed per role. Only files inside the project are written; anything else is refused first.

    --to takes a run (its manifest's pins) or a manifest file (a variant, the manifest of a release that
    served well): its pins are put back, its relative paths read from its own folder.

    \b
    Example:
      harness rollback && harness verify
      harness rollback --to variants/prod.toml
    """
    from harness.baseline import load_promoted, load_run_ref, promoted, rollback_to
    from harness.errors import HarnessError
    from harness.report.canary import rolled_back_lines

    loaded, layout = project(manifest)
    target_file = Path(to) if to is not None else None
    if target_file is not None and target_file.suffix in (".toml", ".yaml", ".yml"):
        if not target_file.is_file():
            raise HarnessError(f"--to: {to}: no such manifest file",
                               hint="give a manifest file, a run id or a run file")
        from harness.manifest import load_manifest

        target = load_manifest(target_file)
        root = (layout.project or loaded.base_dir).resolve()
        full = target.path.resolve()
        where = full.relative_to(root).as_posix() if full.is_relative_to(root) else str(full)
        changes = rollback_to(loaded, layout, target.manifest, where)
        what = f"manifest {visible(to)} ({target.id[:12]})"
    else:
        if to is None:
            record = promoted(layout)
            if record is None:
                raise HarnessError("no promoted baseline to roll back to", hint="harness baseline promote RUN")
            run = load_promoted(record, layout)  # found as gate and diff find it: by run id first, then by path
        else:
            run = load_run_ref(to, layout)
        changes = rollback_to(loaded, layout, run.manifest, run.manifest_path)
        what = f"run {run.run_id}"
    roles = [c.role for c in changes]
    click.echo(f"rolled back {', '.join(roles) or 'nothing (already at the baseline)'} to {what}")
    for line in rolled_back_lines(changes):
        click.echo(f"  {line}")


@click.command("attribute", cls=HarnessCommand)
@click.argument("base", required=False)
@click.argument("head", required=False)
@manifest_option
@click.option("--metric", "-m", "metrics", multiple=True, help="Metrics to attribute (default: all).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def attribute_cmd(ctx: click.Context, base: str | None, head: str | None, manifest: Path | None,
                  metrics: tuple[str, ...], as_json: bool) -> None:
    """Attribute each metric's delta to the artifacts that changed (ablation runs, cached stages reused).

    \b
    Example:
      harness attribute -m ndcg@10 -m answer_f1
    """
    from harness.attribute import attribute
    from harness.baseline import resolve_pair_columns

    loaded, layout = project(manifest)
    base_run, head_run, _ = resolve_pair_columns(loaded, layout, base, head)  # format 4: columns, never whole
    with _progress(ctx) as progress:
        report = attribute(base_run, head_run, layout, list(metrics) or None, progress)
    if as_json:
        click.echo(json.dumps(report.model_dump(mode="json"), indent=2))
        return
    click.echo(f"changed: {', '.join(report.changed_roles)} ({report.method})")
    for a in report.attributions:
        click.echo(visible(a.sentence()))
