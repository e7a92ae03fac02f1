"""`harness replay` (logged queries through a baseline and a candidate manifest, compared paired) and
`harness canary` (canary traffic against baseline traffic in the same windows, with ``--rollback``).

Both validate every input (manifest files and ids, the log file, times, the segment, ``--out``) before
anything runs or is written; both exit 0 on a pass, 1 on a failure or when something could not be judged
(never a pass by default), 2 on bad input. ``--format json`` prints the JSON alone on stdout; every other
message goes to stderr.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from harness.cli import HarnessCommand
from harness.commands.core import manifest_option

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from harness.manifest import LoadedManifest
    from harness.shadow.logs import LogQuery
    from harness.shadow.model import RolledBack
    from harness.storage import Layout
    from harness.types import Manifest

_HEX_ID = re.compile(r"^(?:id:)?([0-9a-f]{64})$")

FORMATS = click.Choice(["text", "md", "json"])


def _window_options(f: click.decorators.FC) -> click.decorators.FC:
    for opt in reversed([
        click.option("--log", "log", type=click.Path(path_type=Path, dir_okay=False), default=None,
                     metavar="FILE", help="Read this log file (JSONL, Parquet, OTLP JSON) instead of the "
                     "project's ingested records."),
        click.option("--since", default=None, metavar="TIME",
                     help="First record time (ISO date or date-time, or now-6h); in [monitor] timezone."),
        click.option("--until", default=None, metavar="TIME", help="Records before this time."),
    ]):
        f = opt(f)
    return f


def _output_options(f: click.decorators.FC) -> click.decorators.FC:
    for opt in reversed([
        click.option("--format", "fmt", type=FORMATS, default="text", show_default=True),
        click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Write the report here instead of printing it."),
        click.option("--allow-outside", is_flag=True, help="Let --out lie outside the project."),
    ]):
        f = opt(f)
    return f


def _log_file(log: Path | None) -> Path | None:
    from harness.errors import HarnessError

    if log is not None and not log.is_file():
        raise HarnessError(f"--log: {log}: no such file", hint="give a log file, or drop --log to read the "
                           "project's ingested records")
    return log


def _query(since: str | None, until: str | None, segment: str | None, tz: ZoneInfo,
           manifest_ids: tuple[str, ...] | None = None) -> LogQuery:
    from harness.errors import HarnessError
    from harness.shadow.logs import LogQuery, parse_segment, parse_time

    lo = parse_time(since, "--since", tz) if since else None
    hi = parse_time(until, "--until", tz) if until else None
    if lo is not None and hi is not None and lo >= hi:
        raise HarnessError(f"--since {since} is not before --until {until}")
    seg = parse_segment(segment) if segment is not None else None
    return LogQuery(since=lo, until=hi, segment=seg, manifest_ids=manifest_ids)


def _zone(loaded: LoadedManifest) -> ZoneInfo:
    """The [monitor] timezone that --since/--until without an offset are in (as harness monitor reads it)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from harness.errors import HarnessError
    from harness.types import MonitorConfig

    name = (loaded.manifest.monitor or MonitorConfig()).timezone
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise HarnessError(f"[monitor] timezone: unknown time zone '{name}' (an IANA name such as 'UTC' or "
                           "'Europe/Paris')") from None


def _relative(path: Path, layout: Layout) -> str:
    """A manifest's path relative to the project's root (as runs record it), or absolute outside it."""
    root = (layout.project or path.parent).resolve()
    full = path.resolve()
    return full.relative_to(root).as_posix() if full.is_relative_to(root) else str(full)


def _emit(text: str, out: Path | None, status: str) -> None:
    from harness.storage import atomic_write_text

    if out is not None:
        atomic_write_text(out, text)
        click.echo(f"{status}: report written to {out}", err=True)
    else:
        click.echo(text, nl=not text.endswith("\n"))


# ---- harness replay -------------------------------------------------------------------------------------


@click.command("replay", cls=HarnessCommand)
@click.option("--baseline", "baseline", required=True, type=click.Path(path_type=Path, dir_okay=False),
              metavar="MANIFEST", help="The manifest serving now.")
@click.option("--candidate", "candidate", default=None, type=click.Path(path_type=Path, dir_okay=False),
              metavar="MANIFEST", help="The manifest to try (default: --manifest, or the project's harness.toml).")
@manifest_option
@_window_options
@click.option("--segment", default=None, metavar="KEY=VALUE", help="Only records with this attribute (geo=eu).")
@click.option("--sample", type=click.IntRange(min=1), default=None, metavar="N",
              help="Replay a seeded sample of N matched records (default: [replay] sample, else all).")
@click.option("--seed", type=int, default=None, help="The sample's seed (default: [replay] seed).")
@click.option("--concurrency", type=click.IntRange(1, 256), default=None, metavar="N",
              help="Calls in flight (default: [replay] concurrency, else the generator's own).")
@click.option("--engine", "engine_kind", type=click.Choice(["local", "ray"]), default=None,
              help="Where both sides' heavy work (embedding, indexing, scoring) runs (default: the candidate "
                   "manifest's [engine]); ray needs the ray extra.")
@_output_options
@click.pass_context
def replay_cmd(ctx: click.Context, baseline: Path, candidate: Path | None, manifest: Path | None, log: Path | None,
               since: str | None, until: str | None, segment: str | None, sample: int | None, seed: int | None,
               concurrency: int | None, engine_kind: Literal["local", "ray"] | None, fmt: str, out: Path | None,
               allow_outside: bool) -> None:
    """Replay logged production queries through a baseline and a candidate manifest, and compare them.

    Both sides run the same queries (all matched records, a window, a segment, or a seeded sample) through
    the whole pipeline, every cache applies (a killed replay resumes without repeating paid calls), and
    their label-free signals are compared paired: paired tests for numeric signals, McNemar for pass/fail
    ones, per segment, corrected across signals x segments, judged by the candidate's [[replay.gates]] (or
    the default rules). Also: agreement between the two answers, latency p50/p95/p99 per stage.

    Exit 0 when every rule passes, 1 when one fails or something cannot be judged, 2 on bad input.

    \b
    Example:
      harness replay --log logs/2026-11-30.jsonl --baseline harness.toml --candidate variants/new-prompt.toml
      harness replay --baseline prod.toml --since now-1d --segment geo=eu --sample 500 --format md
    """
    from harness.commands.core import _progress, check_output
    from harness.manifest import load_manifest
    from harness.storage import Layout

    base = load_manifest(baseline)
    cand = load_manifest(candidate if candidate is not None else manifest)
    layout = Layout.for_manifest(cand.path)
    query = _query(since, until, segment, _zone(cand))
    log = _log_file(log)
    check_output(out, cand, allow_outside)

    from harness.shadow.replay import ReplayRequest, replay, report_path

    request = ReplayRequest(baseline=base, candidate=cand, layout=layout, log=log, query=query, sample=sample,
                            seed=seed, concurrency=concurrency, engine=engine_kind)
    with _progress(ctx) as progress:
        report = replay(request, progress)
    from harness.report.replay import replay_json, replay_md, replay_text

    _emit(_face(fmt, out, lambda: replay_json(report), lambda: replay_md(report),
                lambda color: replay_text(report, color=color)), out, report.status)
    stored = report_path(report, layout)
    click.echo(f"report stored: {stored}", err=True)
    for side in (report.baseline, report.candidate):
        click.echo(f"{side.label} run: {side.run_path}", err=True)
    if report.status != "pass":
        ctx.exit(1)


def _face(fmt: str, out: Path | None, as_json: Callable[[], str], as_md: Callable[[], str],
          as_text: Callable[[bool], str]) -> str:
    """The report in the asked format (text is coloured only on a terminal and never into a file)."""
    if fmt == "json":
        return as_json()
    if fmt == "md":
        return as_md()
    return as_text(out is None and sys.stdout.isatty())


# ---- harness canary -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Side:
    """A canary side as given: a manifest file (loaded) or a bare manifest id."""

    given: str
    manifest_id: str
    loaded: LoadedManifest | None = None


def _side(given: str, what: str) -> _Side:
    from harness.errors import HarnessError
    from harness.manifest import load_manifest

    match = _HEX_ID.match(given.strip().lower())
    path = Path(given)
    if match and not path.is_file():
        return _Side(given, match.group(1))
    if not path.is_file():
        raise HarnessError(f"{what}: {given} is neither a manifest file nor a manifest id",
                           hint="give a manifest file, or its id as id:<64 hex digits> (harness verify prints it)")
    loaded = load_manifest(path)
    return _Side(given, loaded.id, loaded)


def _rollback_target(side: _Side, layout: Layout) -> tuple[Manifest, str | None] | str:
    """(the baseline's Manifest, where it sits) to roll back to, or why there is none."""
    if side.loaded is not None:
        return side.loaded.manifest, _relative(side.loaded.path, layout)
    from harness.runs import RunStore

    for stored in RunStore(layout.runs).scan():
        if stored.header is not None and stored.header.manifest_id == side.manifest_id:
            return stored.header.manifest, stored.header.manifest_path
    return (f"the baseline {side.manifest_id[:12]} was given as an id and no stored run in {layout.runs} has that "
            "manifest, so its pins are unknown; nothing was changed (give --baseline as its manifest file)")


def _roll_back(loaded: LoadedManifest, layout: Layout, side: _Side) -> list[RolledBack] | str:
    from harness.baseline import rollback_to
    from harness.errors import HarnessError

    target = _rollback_target(side, layout)
    if isinstance(target, str):
        return target
    manifest, where = target
    try:
        return rollback_to(loaded, layout, manifest, where)
    except HarnessError as exc:
        return str(exc)


@click.command("canary", cls=HarnessCommand)
@click.option("--baseline", "baseline", required=True, metavar="MANIFEST|ID",
              help="The baseline: its manifest file, or its manifest id (id:<sha256> or the 64 hex digits).")
@click.option("--candidate", "candidate", default=None, metavar="MANIFEST|ID",
              help="The canary: its manifest file or id (default: --manifest, or the project's harness.toml).")
@manifest_option
@_window_options
@click.option("--rollback", "do_rollback", is_flag=True,
              help="When the canary does not pass, put the baseline's pins back into --manifest.")
@_output_options
@click.pass_context
def canary_cmd(ctx: click.Context, baseline: str, candidate: str | None, manifest: Path | None, log: Path | None,
               since: str | None, until: str | None, do_rollback: bool, fmt: str, out: Path | None,
               allow_outside: bool) -> None:
    """Judge canary traffic: records served by the candidate's manifest id against records served by the
    baseline's in the same time windows and segments.

    Unpaired tests per signal and segment, stratified by the hour (van Elteren's rank-sum test for numeric
    signals, Cochran-Mantel-Haenszel for rates), corrected across signals x segments; each signal is
    classified pass / high / low under the project's [canary] table and the segment scored (Kayenta's
    score), then [[canary.gates]] apply. With --rollback,
    a canary that does not pass puts the baseline's pins (and snapshotted files) back into the project's
    manifest, inside the project only, and the report says what changed.

    Exit 0 on a pass, 1 on a failure or when it cannot judge (too few records on a side), 2 on bad input.

    \b
    Example:
      harness canary --log logs/today.jsonl --baseline variants/prod.toml --candidate harness.toml
      harness canary --baseline id:3f2a...c9 --since now-2h --rollback
    """
    from harness.commands.core import _progress, check_output, project
    from harness.types import CanaryConfig, MonitorConfig

    loaded, layout = project(manifest)
    base = _side(baseline, "--baseline")
    cand = _side(candidate, "--candidate") if candidate is not None else _Side(str(loaded.path), loaded.id, loaded)
    query = _query(since, until, None, _zone(loaded))
    log = _log_file(log)
    check_output(out, loaded, allow_outside)

    from harness.shadow.canary import CanaryRequest, canary

    request = CanaryRequest(
        layout=layout, config=loaded.manifest.canary or CanaryConfig(),
        monitor=loaded.manifest.monitor or MonitorConfig(), baseline_id=base.manifest_id,
        candidate_id=cand.manifest_id, project=loaded,
        baseline_path=_relative(base.loaded.path, layout) if base.loaded else None,
        candidate_path=_relative(cand.loaded.path, layout) if cand.loaded else None, log=log, query=query)
    with _progress(ctx) as progress:
        report = canary(request, progress)
    refused: str | None = None
    if do_rollback:
        if report.status == "pass":
            click.echo("--rollback: the canary passed; nothing was rolled back", err=True)
        else:
            done = _roll_back(loaded, layout, base)
            if isinstance(done, str):
                refused = done
            else:
                report = report.model_copy(update={"rolled_back": tuple(done)})
                from harness.report.canary import rolled_back_lines

                where = _relative(loaded.path, layout)
                click.echo(f"rolled back {where} to the baseline {base.manifest_id[:12]}: "
                           + (f"{len(done)} role(s)" if done else "nothing to change"), err=True)
                for line in rolled_back_lines(done):
                    click.echo(f"  {line}", err=True)
    from harness.report.canary import canary_json, canary_md, canary_text

    _emit(_face(fmt, out, lambda: canary_json(report), lambda: canary_md(report),
                lambda color: canary_text(report, color=color)), out, report.status)
    if refused is not None:
        click.echo(f"error: --rollback: {refused}", err=True)
    if report.status != "pass":
        ctx.exit(1)
