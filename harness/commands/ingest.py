"""`harness ingest LOG...`: production logs (JSONL, Parquet, OTLP JSON spans) into the project's store."""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from harness.cli import HarnessCommand
from harness.commands.core import manifest_option

if TYPE_CHECKING:
    from harness.manifest import LoadedManifest
    from harness.storage import Layout
    from harness.types import LogFieldMap

FIRST_REJECTED = 5  # rejected positions printed per file


def _mapping(manifest: Path | None, overrides: tuple[str, ...]) -> tuple[LoadedManifest, Layout, LogFieldMap]:
    from harness.errors import HarnessError
    from harness.manifest import load_manifest
    from harness.storage import Layout
    from harness.types import LogFieldMap

    loaded = load_manifest(manifest)
    config = loaded.manifest.monitor
    mapping = config.mapping if config is not None else LogFieldMap()
    updates: dict[str, str] = {}
    names = list(LogFieldMap.model_fields)
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise HarnessError(f"--map {item!r}: expected FIELD=PATH", hint=f"fields: {', '.join(names)}")
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            raise HarnessError(f"--map {item!r}: unknown field '{key}'",
                               hint=f"did you mean '{close[0]}'?" if close else f"fields: {', '.join(names)}")
        updates[key] = value
    if updates:
        mapping = mapping.model_copy(update=updates)
    return loaded, Layout.for_manifest(loaded.path), mapping


@click.command("ingest", cls=HarnessCommand)
@click.argument("logs", nargs=-1, required=True, type=click.Path(path_type=Path))
@manifest_option
@click.option("--format", "fmt", type=click.Choice(["auto", "jsonl", "parquet", "otlp"]), default="auto",
              show_default=True, help="The logs' format (auto: by name and content).")
@click.option("--map", "overrides", multiple=True, metavar="FIELD=PATH",
              help="Where a record field is in the logs (overrides [monitor.mapping]); repeatable, "
                   "e.g. --map query=request.text.")
@click.option("--assume-utc", is_flag=True, help="Read timestamps without a time zone as UTC (else rejected).")
@click.option("--allow-outside", is_flag=True, help="Accept log files outside the project.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def ingest_cmd(ctx: click.Context, logs: tuple[Path, ...], manifest: Path | None, fmt: str,
               overrides: tuple[str, ...], assume_utc: bool, allow_outside: bool, as_json: bool) -> None:
    """Ingest production logs into the project's store (.harness/logs/, Parquet by day).

    A record needs a timestamp and a query; the mapping ([monitor.mapping] of the manifest, --map) says
    where they and the optional fields are. Re-ingesting a file adds nothing; a record id already stored is
    skipped. Lines that cannot be stored are reported with file:line and reason (and kept in
    .harness/logs/rejected/); the rest of the file is stored.

    Exit code: 0 when every record was accepted; 1 when some were rejected; 2 on a usage, config or input
    error (nothing written).

    \b
    Example:
      harness ingest logs/2026-03-*.jsonl --map query=request.text
      harness ingest traces.json --format otlp --json
    """
    from harness.commands.core import _progress
    from harness.errors import OutsideProjectError
    from harness.hashing import confine_path, project_root
    from harness.monitor.ingest import ingest

    loaded, layout, mapping = _mapping(manifest, overrides)
    if not allow_outside:
        root = project_root(loaded.path.resolve().parent)
        for log in logs:
            try:
                confine_path(log, root)
            except OutsideProjectError as exc:
                raise OutsideProjectError(f"log {log}: {exc.message}",
                                          hint="logs stay inside the project; pass --allow-outside to read "
                                               "them from elsewhere") from None
    with _progress(ctx) as progress:
        report = ingest(list(logs), layout=layout, mapping=mapping, fmt=fmt,  # type: ignore[arg-type]
                        assume_utc=assume_utc, progress=progress, labels=[os.fspath(p) for p in logs])
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        for f in report.files:
            note = " (already ingested)" if f.already_ingested else ""
            click.echo(f"{f.path}: {f.records} records: {f.added} added, {f.skipped} already stored, "
                       f"{f.duplicates} duplicates, {f.rejected_count} rejected{note}"
                       + (f"; days {f.days[0]}..{f.days[-1]}" if f.days else ""))
            for position, reason in f.rejected[:FIRST_REJECTED]:
                click.echo(f"  rejected {position}: {reason}", err=True)
            if f.rejected_count > FIRST_REJECTED:
                click.echo(f"  ... and {f.rejected_count - FIRST_REJECTED} more rejected "
                           f"(.harness/logs/rejected/{f.source_hash}.jsonl)", err=True)
    if report.rejected:
        raise SystemExit(1)
