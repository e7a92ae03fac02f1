"""`harness runs list | show | prune | migrate`: find the stored runs (``<home>/runs/<manifest id>/<run id>.json``),
read one, and delete the ones nothing needs.

Listing and pruning read each run file's header only (:meth:`harness.runs.RunStore.scan`); ``show`` reads
the header and, of a format-4 run's table, its error columns and the few errored cases' records it quotes
(:func:`error_summary_of`), never the whole run. By default they look at the runs of the manifest found
here (every version of it: the runs whose recorded manifest path is that file); ``--all`` at every run of the
store.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from harness.cli import HarnessGroup
from harness.commands.core import manifest_option
from harness.report.xmltext import visible

if TYPE_CHECKING:
    from harness.runs import PrunePlan, RunTable, RunTableHeader, StoredRun
    from harness.storage import Layout
    from harness.types import MetricRole, MetricSummary

HEADLINE_METRICS = 3  # quality metrics shown per run when --metric is not given


@click.group("runs", cls=HarnessGroup)
def runs_group() -> None:
    """List, show and prune the stored runs (.harness/runs/).

    \b
    Example:
      harness runs list                  # the runs of the manifest here, newest first
      harness runs show 20261201T1120    # one run's summary (a unique prefix of its id)
      harness runs prune --keep 5 --dry-run
    """


all_option = click.option("--all", "all_runs", is_flag=True,
                          help="Every run of the project's store, not only the runs of the manifest.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
metric_option = click.option("--metric", "-m", "metrics", multiple=True, metavar="METRIC",
                             help=f"Metric to show (repeatable; default: the first {HEADLINE_METRICS} quality "
                             "metrics of the newest run).")


@dataclass
class _Scope:
    """Where the store is, which manifest file's runs are meant (None: every run), and the manifest file
    given or found here (None: none)."""

    layout: Layout
    manifest: Path | None
    found: Path | None
    note: str | None = None


def _scope(manifest: Path | None, all_runs: bool) -> _Scope:
    """The project's store from the manifest's place only: the manifest is found, not loaded, so a run can
    be listed and shown while the manifest is broken (prune reads its ``baseline`` and refuses if it cannot).
    With no manifest found, ``$HARNESS_HOME`` says where the store is."""
    from harness.errors import HarnessError, InputError, ManifestError
    from harness.manifest import find_manifest
    from harness.storage import Layout

    if manifest is not None and all_runs:
        raise HarnessError("--manifest and --all exclude each other", hint="give one of them")
    if manifest is not None:
        if not manifest.is_file():
            raise InputError(manifest, "no such manifest file")
        return _Scope(Layout.for_manifest(manifest), manifest.resolve(), manifest.resolve())
    try:
        found = find_manifest()
    except ManifestError:
        home = os.environ.get("HARNESS_HOME")
        if not home:
            raise
        note = None if all_runs else "no manifest found here: showing every run of $HARNESS_HOME"
        return _Scope(Layout(home), None, None, note)
    return _Scope(Layout.for_manifest(found), None if all_runs else found.resolve(), found.resolve())


def _manifest_file(run: StoredRun, layout: Layout) -> Path | None:
    """The manifest file a run was made from, as it resolves in this project (None if unknown)."""
    recorded = run.header.manifest_path if run.header else None
    if not recorded:
        return None
    path = Path(recorded)
    if not path.is_absolute():
        if layout.project is None:
            return None
        path = layout.project / path
    return path.resolve()


@dataclass
class _Store:
    """The scanned store: every run, the ones in scope, each run's manifest file (when known) and how many
    damaged files the scope leaves out (those of other manifest ids)."""

    scope: _Scope
    every: list[StoredRun]
    selected: list[StoredRun]
    files: dict[Path, Path]
    damaged_elsewhere: int = 0


def _scan(scope: _Scope) -> _Store:
    from harness.runs import RunStore, newest_first

    every = RunStore(scope.layout.runs, scope.layout.project).scan()
    files = {r.path: f for r in every if (f := _manifest_file(r, scope.layout)) is not None}
    if scope.manifest is None:
        return _Store(scope, every, every, files)
    mine = [r for r in every if files.get(r.path) == scope.manifest]
    ids = {r.manifest_id for r in mine}
    # A damaged file cannot say which manifest file it came from: listed with the runs of its manifest id.
    damaged = [r for r in every if r.damaged and r.manifest_id in ids]
    selected = newest_first(mine + damaged)
    elsewhere = sum(1 for r in every if r.damaged and r.manifest_id not in ids)
    return _Store(scope, every, selected, files, elsewhere)


# --- baselines --------------------------------------------------------------------------------------------


@dataclass
class _Refs:
    """What the baselines and manifests refer to: run id -> why it is a baseline, and snapshot pins."""

    baselines: dict[str, str] = field(default_factory=dict)
    pins: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


_SKIPPED_DIRS = frozenset({".git", ".harness", ".venv", "venv", "node_modules", "__pycache__"})
_MANIFEST_SUFFIXES = (".toml", ".yaml", ".yml")
_MAX_SCANNED_FILES = 20_000


def _project_manifests(project: Path | None) -> set[Path]:
    """Every file of the project that may be a manifest (its text names ``artifacts``): a manifest that was
    never run can still name a baseline, and prune must not delete it (read: :func:`_references`)."""
    if project is None or not project.is_dir():
        return set()
    out: set[Path] = set()
    seen = 0
    for folder, dirs, files in os.walk(project):
        dirs[:] = [d for d in dirs if d not in _SKIPPED_DIRS]
        for name in files:
            seen += 1
            if seen > _MAX_SCANNED_FILES:
                return out
            if name.endswith(_MANIFEST_SUFFIXES):
                path = Path(folder) / name
                try:
                    if "artifacts" in path.read_text("utf-8", errors="replace"):
                        out.add(path)
                except OSError:
                    out.add(path)  # unreadable: _references reports it and prune refuses
    return out


def _references(store: _Store) -> _Refs:
    """The runs a baseline points to (the promoted baseline; the ``baseline`` of each manifest file of the
    project's runs, as the file says now and as each run recorded it) and the pins those records and files
    hold. What cannot be read is a problem: prune refuses to go on, list warns."""
    from harness.baseline import promoted
    from harness.config import read_config
    from harness.errors import HarnessError

    refs = _Refs()
    named: list[tuple[str, str]] = []  # (reference, why)
    try:
        record = promoted(store.scope.layout)
    except HarnessError as exc:
        refs.problems.append(f"cannot tell the promoted baseline: {exc}")
        record = None
    if record is not None:
        named.append((record.run_id, "the promoted baseline"))
        refs.pins |= {a["sha256"] for a in record.artifacts.values()
                      if isinstance(a, dict) and isinstance(a.get("sha256"), str)}
    for run in store.every:
        if run.header is not None and run.header.manifest.baseline:
            named.append((run.header.manifest.baseline, f"the baseline its manifest {run.manifest_id[:12]} names"))
    found, project = store.scope.found, store.scope.layout.project
    manifest_files = set(store.files.values()) | ({found} if found else set()) | _project_manifests(project)
    inside = {p for p in manifest_files if project is None or p.is_relative_to(project.resolve())}
    for path in sorted(p for p in inside if p.is_file()):  # a recorded path out of the project is not read
        try:
            data, _ = read_config(path, "manifest")
        except HarnessError as exc:
            refs.problems.append(f"cannot read the baseline a manifest names: {exc}")
            continue
        baseline = data.get("baseline")
        if isinstance(baseline, str) and baseline:
            named.append((baseline, f"the baseline {_shown_path(path, store.scope.layout)} names"))
        artifacts = data.get("artifacts")
        if isinstance(artifacts, dict):
            refs.pins |= {a["sha256"] for a in artifacts.values()
                          if isinstance(a, dict) and isinstance(a.get("sha256"), str)}
    for ref, why in named:
        run_id = Path(ref).stem if ref.endswith(".json") else ref
        for run in store.every:  # an id or a prefix of one, as `harness diff BASE` takes it
            if run.run_id.startswith(run_id):
                refs.baselines.setdefault(run.run_id, why)
    return refs


def _shown_path(path: Path, layout: Layout) -> str:
    if layout.project is not None:
        try:
            return path.relative_to(layout.project.resolve()).as_posix()
        except ValueError:
            pass
    return str(path)


# --- list -------------------------------------------------------------------------------------------------


def _headline(runs: list[StoredRun], chosen: tuple[str, ...]) -> list[str]:
    if chosen:
        return list(chosen)
    for run in runs:
        if run.header is not None:
            return run.header.aggregates.metrics("quality")[:HEADLINE_METRICS]
    return []


def _mean(summary: MetricSummary | None) -> str:
    if summary is None:
        return "-"
    return "unscored" if summary.mean is None else f"{summary.mean:.4f}"


def _row(run: StoredRun, refs: _Refs) -> dict[str, Any]:
    row: dict[str, Any] = {"run_id": run.run_id, "manifest_id": run.manifest_id, "path": str(run.path),
                           "size_bytes": run.size, "baseline": refs.baselines.get(run.run_id),
                           "damaged": run.problem}
    h = run.header
    if h is not None:
        row |= {"created_at": h.created_at, "manifest_name": h.manifest.name, "manifest_path": h.manifest_path,
                "cases": h.counts.get("cases"), "errors": h.counts.get("errors"),
                "metrics": {m: h.aggregates.overall[m].mean for m in h.aggregates.metrics("quality")}}
    return row


@runs_group.command("list")
@manifest_option
@all_option
@json_option
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Show only the newest N runs.")
@metric_option
def list_cmd(manifest: Path | None, all_runs: bool, as_json: bool, limit: int | None,
             metrics: tuple[str, ...]) -> None:
    """List the stored runs, newest first: id, when, manifest, cases, headline metrics, errors, whether it is
    a baseline, size. A damaged run file is listed with the reason.

    \b
    Example:
      harness runs list --all --limit 10
      harness runs list --json | jq '.runs[0].run_id'
    """
    from rich.filesize import decimal

    scope = _scope(manifest, all_runs)
    store = _scan(scope)
    refs = _references(store)
    shown = store.selected[:limit] if limit else store.selected
    total = sum(r.size for r in store.selected)
    notes = [*(n for n in [scope.note] if n), *refs.problems]
    if store.damaged_elsewhere:
        notes.append(f"{store.damaged_elsewhere} damaged run file(s) of other manifests: see `harness runs list --all`")
    others = len(store.every) - len(store.selected)
    if not store.selected and others:
        notes.append(f"no run of {scope.manifest} yet; {others} run(s) of other manifests: `harness runs list --all`")
    if as_json:
        click.echo(json.dumps({"store": str(scope.layout.runs), "runs": [_row(r, refs) for r in shown],
                               "total": len(store.selected), "total_bytes": total, "warnings": notes}, indent=2))
        return
    for note in notes:
        click.echo(f"warning: {visible(note)}", err=True)
    _print_list(shown, _headline(shown, metrics), refs)
    damaged = sum(1 for r in store.selected if r.damaged)
    click.echo(f"{len(store.selected)} runs ({damaged} damaged), {decimal(total)} in {scope.layout.runs}"
               + (f"; showing the newest {len(shown)}" if len(shown) < len(store.selected) else ""), err=True)


def _list_cells(run: StoredRun, headline: list[str], refs: _Refs) -> list[str]:
    from rich.filesize import decimal

    h = run.header
    baseline = "baseline" if run.run_id in refs.baselines else ""
    if h is None:
        return [run.run_id, "-", f"? {run.manifest_id[:12]}", "-", *("-" for _ in headline), "-", baseline,
                decimal(run.size), f"damaged: {run.problem}"]
    return [run.run_id, h.created_at, f"{h.manifest.name} {run.manifest_id[:12]}", str(h.counts.get("cases", "-")),
            *(_mean(h.aggregates.overall.get(m)) for m in headline), str(h.counts.get("errors", "-")), baseline,
            decimal(run.size), "ok"]


def _print_list(runs: list[StoredRun], headline: list[str], refs: _Refs) -> None:
    """A rich table on a terminal; tab-separated lines (a header line first) in a pipe."""
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    columns = ["run", "created", "manifest", "cases", *headline, "errors", "baseline", "size", "status"]
    rows = [[visible(c) for c in _list_cells(r, headline, refs)] for r in runs]
    console = Console()
    if not console.is_terminal:
        for cells in [[visible(c) for c in columns], *rows]:
            click.echo("\t".join(c.replace("\t", " ") for c in cells))
        return
    show_status = any(r.damaged for r in runs)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
    for name in columns if show_status else columns[:-1]:
        numeric = name in ("cases", "errors", "size", *headline)
        # the run id (what one copies), its time and the numbers are never cut; the manifest gives way first
        whole = name in ("run", "created", "baseline") or numeric
        table.add_column(escape(visible(name)), justify="right" if numeric else "left", no_wrap=whole,
                         min_width=max(len(r.run_id) for r in runs) if name == "run" and runs else None,
                         overflow="fold" if name == "status" else "ellipsis")
    for cells in rows:
        cells[1] = cells[1].replace("T", " ").removesuffix("Z")[:16]  # the minute is enough on screen
        table.add_row(*(escape(c) for c in (cells if show_status else cells[:-1])))
    console.print(table)


# --- show -------------------------------------------------------------------------------------------------


def error_summary_of(table: RunTable) -> dict[str, Any]:
    """:func:`harness.report.console.error_summary` of a stored run's outputs, from its ``error_stage`` /
    ``error_kind`` columns: counts per kind from the columns, the few ids and messages quoted per kind from
    those cases' records alone (:meth:`~harness.runs.RunTable.take`)."""
    import numpy as np

    from harness.report.console import SHOWN_CASES, SHOWN_MESSAGES, ErrorTally

    cols = table.columns(metrics=[], tags=False, latency=False)
    rows = np.flatnonzero(cols.errored())
    tally = ErrorTally()
    if not len(rows):
        return tally.summary()
    kinds = cols.error_kind.take(rows).to_pylist()
    counts: dict[str, int] = {}
    quoted: list[int] = []  # the first rows of each kind, in row order: what the tally keeps of them
    keep = max(SHOWN_CASES, SHOWN_MESSAGES)
    for row, kind in zip(rows.tolist(), kinds, strict=True):
        n = counts.get(kind, 0)
        counts[kind] = n + 1
        if n < keep:
            quoted.append(row)
    ids = cols.case_ids.take(quoted).to_pylist()
    _, outputs, _ = table.take(ids)
    tally.add(outputs)  # in row order: take answers in the order asked
    summary = tally.summary()
    by_kind = summary["by_kind"]
    for kind, entry in by_kind.items():
        entry["count"] = counts[kind]
    ordered = dict(sorted(by_kind.items(), key=lambda kv: (-kv[1]["count"], kv[0])))
    return {"total": len(rows), "by_kind": ordered}


def _summary(header: RunTableHeader, errors: dict[str, Any], stored: StoredRun, refs: _Refs) -> dict[str, Any]:
    aggregates = header.aggregates.model_dump(mode="json")
    return {
        "run_id": header.run_id, "created_at": header.created_at, "path": str(stored.path),
        "size_bytes": stored.size, "baseline": refs.baselines.get(header.run_id),
        "manifest": {"name": header.manifest.name, "id": header.manifest_id, "path": header.manifest_path,
                     "description": header.manifest.description},
        "artifacts": {role: a.model_dump(mode="json", include={"kind", "version", "path", "uri", "sha256"})
                      for role, a in header.manifest.artifacts.items()},
        "scorers": [s.model_dump(mode="json") for s in header.scorers],
        "environment": header.environment, "counts": header.counts, "stage_seconds": header.stage_seconds,
        "aggregates": aggregates, "errors": errors,
    }


@runs_group.command("show")
@click.argument("run_id")
@manifest_option
@json_option
@metric_option
def show_cmd(run_id: str, manifest: Path | None, as_json: bool, metrics: tuple[str, ...]) -> None:
    """Show one run's summary: manifest, artifacts and pins, counts, stage seconds, metrics overall and per
    segment, errors by kind. RUN_ID may be a unique prefix of the id.

    \b
    Example:
      harness runs show 20261201T112005Z-960609
      harness runs show 20261201T1120 --json
    """
    from harness.runs import RunStore, open_run

    scope = _scope(manifest, True)
    store = _scan(scope)
    path = RunStore(scope.layout.runs).find(run_id)
    table = open_run(path, project=scope.layout.project)
    stored = next(r for r in store.every if r.path == path)
    refs = _references(store)
    header = table.header
    data = _summary(header, error_summary_of(table), stored, refs)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    _print_show(header, data, list(metrics) or header.aggregates.metrics("quality")[:HEADLINE_METRICS])


def _print_show(run: RunTableHeader, data: dict[str, Any], headline: list[str]) -> None:
    from rich.filesize import decimal
    from rich.markup import escape
    from rich.table import Table

    from harness.report.console import make_console

    console = make_console()

    def line(text: str) -> None:
        console.print(text, markup=False, highlight=False)

    m = data["manifest"]
    baseline = f"  [{data['baseline']}]" if data["baseline"] else ""
    line(visible(f"run {run.run_id}  created {run.created_at}{baseline}"))
    line(visible(f"file {data['path']} ({decimal(data['size_bytes'])})"))
    line(visible(f"manifest {m['name']} {m['id'][:12]}  {m['path'] or ''}"))
    arts = Table(title="artifacts")
    for col in ("role", "kind", "version", "pin", "path / uri"):
        arts.add_column(col)
    for role, a in data["artifacts"].items():
        arts.add_row(*(escape(visible(c)) for c in (role, a["kind"], a["version"] or "-",
                                                       (a["sha256"] or "unpinned")[:12], a["path"] or a["uri"] or "-")))
    console.print(arts)
    line(visible(", ".join(f"{k} {v}" for k, v in run.counts.items())))
    line(visible("seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in run.stage_seconds.items())))
    overall = Table(title="metrics (overall)")
    for col, justify in (("metric", "left"), ("role", "left"), ("mean", "right"), ("n", "right"),
                         ("unscored", "right")):
        overall.add_column(col, justify=justify)  # type: ignore[arg-type]
    roles: tuple[MetricRole, ...] = ("quality", "diagnostic")
    for role in roles:
        for name in run.aggregates.metrics(role):
            s = run.aggregates.overall[name]
            cells = (s.label or name, role, _mean(s), str(s.n), str(s.n_unscored))
            overall.add_row(*(escape(visible(c)) for c in cells))
    console.print(overall)
    if run.aggregates.segments:
        seg = Table(title="metrics per segment")
        seg.add_column("segment")
        for name in headline:
            seg.add_column(escape(visible(name)), justify="right")
        for segment, summaries in run.aggregates.segments.items():
            seg.add_row(escape(visible(segment)), *(_mean(summaries.get(n)) for n in headline))
        console.print(seg)
    errors = data["errors"]
    if not errors["total"]:
        line("errors: none")
        return
    line(f"errors: {errors['total']} of {run.counts.get('cases', run.rows)} cases")
    for kind, entry in errors["by_kind"].items():
        first = entry["messages"][0]["message"] if entry["messages"] else ""
        line(visible(f"  {kind} ({entry['stage']}): {entry['count']}, e.g. {', '.join(entry['cases'])}: {first}"))


# --- prune ------------------------------------------------------------------------------------------------


@runs_group.command("prune")
@click.option("--keep", type=click.IntRange(min=0), required=True, metavar="N",
              help="Keep the newest N runs of each manifest id (each version of a manifest).")
@click.option("--keep-versions", type=click.IntRange(min=1), default=None, metavar="K",
              help="Keep runs of only the K newest versions of each manifest file (default: every version).")
@manifest_option
@all_option
@click.option("--dry-run", is_flag=True, help="Print what would be removed and freed; delete nothing.")
@click.option("--include-damaged", is_flag=True, help="Delete damaged run files too (kept by default).")
@click.option("--keep-snapshots", is_flag=True,
              help="Keep the artifact snapshots only the removed runs referred to (deleted by default).")
@json_option
def prune_cmd(keep: int, keep_versions: int | None, manifest: Path | None, all_runs: bool, dry_run: bool,
              include_damaged: bool, keep_snapshots: bool, as_json: bool) -> None:
    """Delete stored runs except every run a baseline points to and the newest N of each manifest id; then
    the artifact snapshots that only the removed runs referred to.

    A manifest id is one version of a manifest, so by default every version keeps its newest runs (and
    `harness diff` still finds the run of the manifest at an earlier git commit); --keep-versions K keeps
    runs of only the K newest versions of each manifest file. A manifest id that keeps runs keeps the one
    its LATEST pointer names; an emptied one loses its folder. A damaged run file is kept unless
    --include-damaged. Nothing outside the store's runs and snapshot folders is touched; if the baseline
    record or a manifest cannot be read, nothing is deleted.

    \b
    Example:
      harness runs prune --keep 5 --dry-run
      harness runs prune --keep 1 --keep-versions 3 --all
    """
    from harness.errors import HarnessError
    from harness.runs import RunStore, plan_prune, remove_runs, remove_snapshots, snapshot_size

    scope = _scope(manifest, all_runs)
    store = _scan(scope)
    refs = _references(store)
    if refs.problems:
        raise HarnessError(f"{refs.problems[0]}; nothing was deleted",
                           hint="fix or remove what cannot be read, then prune again")
    latest: dict[str, str] = {}
    runs_store = RunStore(scope.layout.runs)
    for manifest_id in sorted({r.manifest_id for r in store.selected}):
        try:
            pointer = runs_store.latest_id(manifest_id)
        except HarnessError:
            pointer = None  # a damaged pointer names no run; the next `harness run` writes it again
        if pointer is not None:
            latest[manifest_id] = pointer
    plan = plan_prune(store.selected, keep, refs.baselines, latest, versions=keep_versions, manifest_of=store.files,
                      include_damaged=include_damaged)
    snapshots, skipped = _snapshot_plan(store, plan, refs, keep_snapshots)
    blobs = scope.layout.blobs
    if dry_run:
        removed_runs = list(plan.remove)
        removed_snaps = [(pin, size) for pin in sorted(snapshots) if (size := snapshot_size(blobs, pin)) is not None]
    else:
        removed_runs = remove_runs(scope.layout.runs, plan.remove)
        removed_snaps = remove_snapshots(blobs, snapshots) if snapshots else []
    report = {
        "dry_run": dry_run, "store": str(scope.layout.runs), "keep": keep, "keep_versions": keep_versions,
        "removed": [{"run_id": r.run_id, "manifest_id": r.manifest_id, "path": str(r.path), "size_bytes": r.size,
                     "damaged": r.problem} for r in removed_runs],
        "kept": [{"run_id": r.run_id, "manifest_id": r.manifest_id, "why": why} for r, why in plan.keep],
        "snapshots": {"removed": [{"pin": pin, "size_bytes": size} for pin, size in removed_snaps],
                      "skipped": skipped},
        "freed_bytes": sum(r.size for r in removed_runs) + sum(size for _, size in removed_snaps),
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    _print_prune(report, removed_runs, plan)


def _snapshot_plan(store: _Store, plan: PrunePlan, refs: _Refs, keep_snapshots: bool) -> tuple[set[str], str | None]:
    """The snapshot pins to delete (those the removed runs referred to and nothing else does: no remaining
    run of the whole store, the promoted baseline's record, or a manifest file of the project) and, when
    none are, why not."""
    from harness.runs import snapshot_pins

    if keep_snapshots:
        return set(), "--keep-snapshots"
    removed = {r.path for r in plan.remove}
    remaining = [r for r in store.every if r.path not in removed]
    damaged = next((r for r in remaining if r.header is None), None)
    if damaged is not None:
        return set(), (f"a damaged run file remains ({damaged.path}): which snapshots it refers to cannot be "
                       "told, so none are deleted")
    candidates: set[str] = set()
    for r in plan.remove:
        if r.header is not None:
            candidates |= snapshot_pins(r.header.manifest)
    referenced = set(refs.pins)
    for r in remaining:
        if r.header is not None:
            referenced |= snapshot_pins(r.header.manifest)
    return candidates - referenced, None


def _print_prune(report: dict[str, Any], removed: list[StoredRun], plan: PrunePlan) -> None:
    from rich.filesize import decimal

    verb = "would remove" if report["dry_run"] else "removed"
    for r in removed:
        what = f"damaged: {r.problem}" if r.damaged else (r.header.manifest.name if r.header else "")
        click.echo(visible(f"{verb} {r.run_id}  {r.manifest_id[:12]}  {decimal(r.size)}  {what}"))
    for r, why in plan.keep:
        click.echo(visible(f"kept {r.run_id}  {r.manifest_id[:12]}  ({why})"))
    snaps = report["snapshots"]
    for s in snaps["removed"]:
        click.echo(f"{verb} snapshot {s['pin'][:12]}  {decimal(s['size_bytes'])}")
    if snaps["skipped"]:
        click.echo(visible(f"snapshots kept: {snaps['skipped']}"))
    run_bytes = sum(r["size_bytes"] for r in report["removed"])
    snap_bytes = sum(s["size_bytes"] for s in snaps["removed"])
    freed = "would free" if report["dry_run"] else "freed"
    click.echo(f"{verb} {len(report['removed'])} run file(s) ({decimal(run_bytes)}) and {len(snaps['removed'])} "
               f"snapshot(s) ({decimal(snap_bytes)}); kept {len(report['kept'])} run(s); {freed} "
               f"{decimal(report['freed_bytes'])} ({report['freed_bytes']} bytes)")


@runs_group.command("migrate")
@manifest_option
@json_option
def migrate_cmd(manifest: Path | None, as_json: bool) -> None:
    """Rewrite the store's run files of an older format (1, 2, 3: one JSON document holding every case) as
    format 4 (a small JSON header and a Parquet table, one row per case), so diff, gate and listing read them
    in columns. Each migrated run loads exactly as before; damaged files are left as they are and reported.
    Older files keep loading without this: it only makes them cheaper to read. Safe to run again.

    \b
    Example:
      harness runs migrate
      harness runs migrate --json
    """
    from harness.runs import RunStore, migrate_runs

    scope = _scope(manifest, True)
    root = scope.layout.runs
    migrated = migrate_runs(root)
    damaged = [r for r in RunStore(root, scope.layout.project).scan() if r.damaged]
    report = {"store": str(root), "migrated": [str(p) for p in migrated],
              "damaged": [{"path": str(r.path), "problem": r.problem} for r in damaged]}
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"migrated {len(migrated)} run file(s) to format 4 in {_shown_path(root, scope.layout)}")
    for r in damaged:
        click.echo(f"left as it is (damaged): {_shown_path(r.path, scope.layout)}: {r.problem}")
