"""`harness incident`: the first 30 minutes of an incident on one page: which manifest ids were live when, the
first window where signals moved, the segments hit, and the artifact diff between the versions live before
and after. Exit 0 when the snapshot was written and nothing moved; 1 when signals moved (an incident is
confirmed) or nothing could be judged; 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.cli import HarnessCommand
from harness.commands.core import manifest_option


@click.command("incident", cls=HarnessCommand)
@manifest_option
@click.option("--log", "log", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Read this log file (JSONL, Parquet, OTLP JSON) instead of the ingested store.")
@click.option("--since", required=True, metavar="TIME",
              help="Where the incident may have begun: 2026-11-20T14:00Z, 2026-11-20, now-6h.")
@click.option("--until", default=None, metavar="TIME", help="The end of the judged time (default: the last record).")
@click.option("--window", "window", default="1h", show_default=True, metavar="DURATION",
              help="Bucket size (whole minutes that divide a day: 15m, 30m, 1h, 2h, 1d).")
@click.option("--format", "fmt", type=click.Choice(["text", "md", "json", "html"]), default="text",
              show_default=True)
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the snapshot here (html needs it) instead of printing it.")
@click.option("--allow-outside", is_flag=True, help="Let --out lie outside the project.")
@click.pass_context
def incident_cmd(ctx: click.Context, manifest: Path | None, log: Path | None, since: str, until: str | None,
                 window: str, fmt: str, out: Path | None, allow_outside: bool) -> None:
    """Snapshot an incident: the manifest ids live per window and their deployments, the first window whose
    signals moved for the worse against the reference (the same length of time before --since, compared at
    the same clock time of day), the segments hit, and the artifact diff between the manifest live before
    and the one(s) live after.

    The traffic volume is a signal: a window's records under half or over twice those expected from the
    reference at that time of day is a move. Every window x signal x segment test is one Benjamini-Hochberg
    family at [monitor] alpha. A window too thin to test that should not be is a move or "cannot judge",
    never "nothing moved".

    \b
    Example:
      harness incident --since now-6h --format md
      harness incident --log prod.jsonl --since 2026-11-20T12:00Z --format html -o incident.html
    """
    from harness.commands.core import check_output, project
    from harness.errors import HarnessError
    from harness.monitor.run import zone
    from harness.shadow.incident import incident_snapshot, parse_window
    from harness.shadow.logs import parse_time
    from harness.storage import atomic_write_text
    from harness.types import MonitorConfig

    if fmt == "html" and out is None:
        raise HarnessError("--format html needs --out FILE")
    loaded, layout = project(manifest)
    cfg = loaded.manifest.monitor or MonitorConfig()
    tz = zone(cfg.timezone)
    first = parse_time(since, "--since", tz)
    last = parse_time(until, "--until", tz) if until is not None else None
    step = parse_window(window)
    if log is not None and not log.is_file():
        raise HarnessError(f"--log {log}: no such file")
    check_output(out, loaded, allow_outside)
    snap = incident_snapshot(loaded, layout, since=first, until=last, window=step, log=log, config=cfg)
    from harness.report.incident import incident_json, incident_text

    if fmt == "html":
        from harness.report.incident_html import incident_html

        text = incident_html(snap)
    elif fmt == "json":
        text = json.dumps(incident_json(snap), indent=2, ensure_ascii=False) + "\n"
    else:
        text = incident_text(snap, fmt=fmt)  # type: ignore[arg-type]
    if out is not None:
        atomic_write_text(out, text)
        click.echo(f"{snap.status}: {snap.verdict}", err=True)
        click.echo(f"snapshot written to {out}", err=True)
    else:
        click.echo(text, nl=not text.endswith("\n"))
    if snap.exit_code:
        ctx.exit(snap.exit_code)
