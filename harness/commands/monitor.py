"""`harness monitor`: judge the ingested production records: drift told apart from seasonality, SLOs and
the log's data contracts, per window and segment. Exit 0 when every check ran and none alarmed; 1 on an
alarm, or when nothing could be judged (never a pass by default); 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.cli import HarnessCommand
from harness.commands.core import manifest_option


@click.command("monitor", cls=HarnessCommand)
@manifest_option
@click.option("--since", default=None, metavar="DAY", help="First day to judge (YYYY-MM-DD; default: --until).")
@click.option("--until", default=None, metavar="DAY", help="Last day to judge (default: the newest stored day).")
@click.option("--reference", default=None, metavar="DAY[..DAY]",
              help="A named reference window; with --current, judge this pair instead of the daily comparisons.")
@click.option("--current", default=None, metavar="DAY[..DAY]", help="The named current window (with --reference).")
@click.option("--golden", "golden", is_flag=True,
              help="Also compare each day's queries with the golden set's (length, language, distance, topics).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="False-discovery rate of the alarm family (default: [monitor] alpha, 0.05).")
@click.option("--format", "fmt", type=click.Choice(["text", "md", "json", "html"]), default="text",
              show_default=True)
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report here (html needs it) instead of printing it.")
@click.option("--allow-outside", is_flag=True, help="Let --out lie outside the project.")
@click.pass_context
def monitor_cmd(ctx: click.Context, manifest: Path | None, since: str | None, until: str | None,
                reference: str | None, current: str | None, golden: bool, alpha: float | None, fmt: str,
                out: Path | None, allow_outside: bool) -> None:
    """Judge production logs (after `harness ingest`): each day against the day before at the same hours and
    the same weekday a week before, overall and per segment.

    An alarm is a drift that the aligned week-over-week comparison shows (a day-over-day move it does not
    show is the daily or weekly cycle, listed apart), an SLO limit broken, or a log-contract failure. The
    week-over-week, golden and named tests over all signals x segments x days are one Benjamini-Hochberg
    family; the day-over-day tests another. Exit 1 also when something could not be judged: a day without
    records, a day-over-day move with no week-over-week comparison, an SLO not judged over all traffic.

    \b
    Example:
      harness ingest logs/2026-11-*.jsonl
      harness monitor --since 2026-11-20 --until 2026-11-26 --format md
      harness monitor --reference 2026-11-01..2026-11-07 --current 2026-11-22..2026-11-28
    """
    from harness.commands.core import _progress, check_output, project
    from harness.errors import HarnessError
    from harness.monitor.project import monitor_inputs
    from harness.monitor.run import judged_days, parse_day, parse_range, run_monitor, zone
    from harness.storage import atomic_write_text
    from harness.types import MonitorConfig

    if (reference is None) != (current is None):
        raise HarnessError("--reference and --current go together", hint="give both, or neither")
    if reference is not None and (since or until or golden):
        raise HarnessError("--reference/--current judge one named pair; leave out --since, --until and --golden")
    if fmt == "html" and out is None:
        raise HarnessError("--format html needs --out FILE")
    loaded, layout = project(manifest)
    cfg = loaded.manifest.monitor or MonitorConfig()
    if alpha is not None:
        cfg = cfg.model_copy(update={"alpha": alpha})
    tz = zone(cfg.timezone)
    first = parse_day(since, "--since") if since else None
    last = parse_day(until, "--until") if until else None
    named = (parse_range(reference, tz, "--reference"), parse_range(current, tz, "--current")) \
        if reference is not None and current is not None else None
    check_output(out, loaded, allow_outside)
    with _progress(ctx) as progress:
        inputs, cache = monitor_inputs(loaded, layout, progress=progress, config=cfg)
        try:
            days = judged_days(inputs.parts_by_day, first, last) if named is None else []
            report = run_monitor(inputs, days=days, named=named, golden=golden, progress=progress)
        finally:
            cache.close()
    from harness.report.monitor import monitor_json, monitor_text

    if fmt == "html":
        from harness.report.monitor_html import monitor_html

        text = monitor_html(report)
    elif fmt == "json":
        text = json.dumps(monitor_json(report), indent=2, ensure_ascii=False) + "\n"
    else:
        text = monitor_text(report, fmt=fmt)  # type: ignore[arg-type]
    if out is not None:
        atomic_write_text(out, text)
        click.echo(f"{report.status}: report written to {out}", err=True)
    else:
        click.echo(text, nl=not text.endswith("\n"))
    if report.status != "ok":
        ctx.exit(1)
