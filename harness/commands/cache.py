"""`harness cache check | clear | stats`: look at the project's cache and index store, and clear them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from harness.cli import HarnessGroup
from harness.commands.core import manifest_option

if TYPE_CHECKING:
    from harness.storage import Layout


def _layout(manifest: Path | None) -> tuple[Layout, bool]:
    """The project's layout from its manifest's place only: these verbs must work when the manifest or
    the cache is damaged, so the manifest is found, never parsed. With no manifest found, ``$HARNESS_HOME``
    (or ``$HARNESS_CACHE_DIR`` alone, for the cache file only) says where the state is. The flag says
    whether the layout's home (so its stored indexes) is known."""
    import os

    from harness.errors import ManifestError
    from harness.manifest import find_manifest
    from harness.storage import Layout

    if manifest is not None:
        return Layout.for_manifest(manifest), True
    try:
        return Layout.for_manifest(find_manifest()), True
    except ManifestError:
        home = os.environ.get("HARNESS_HOME")
        if home:
            return Layout(home), True
        cache_dir = os.environ.get("HARNESS_CACHE_DIR")
        if cache_dir:
            return Layout(cache_dir), False
        raise


def _index_report(layout: Layout) -> dict[str, Any]:
    from harness.index import IndexStore

    store = IndexStore(layout.index_store)
    out: dict[str, Any] = {"ok": 0, "damaged": {}}
    if not store.root.is_dir():
        return out
    for folder in sorted(p for p in store.root.iterdir() if p.is_dir()):
        if not store.exists(folder.name):
            continue  # a build that never finished: not an index yet, rebuilt when needed
        problem = store.check(folder.name)
        if problem is None:
            out["ok"] += 1
        else:
            out["damaged"][folder.name] = problem
    return out


def _corpus_report(layout: Layout) -> dict[str, Any]:
    """Every passage store read through (each document's checksum and decoding): ok count, damaged by file."""
    from harness.corpus import StoredCorpus
    from harness.errors import IntegrityError

    out: dict[str, Any] = {"ok": 0, "damaged": {}}
    root = layout.corpus_store
    if not root.is_dir():
        return out
    for path in sorted(root.glob("*.sqlite")):
        try:
            store = StoredCorpus(path)
            try:
                for _ in store.batches():
                    pass
            finally:
                store.close()
        except IntegrityError as exc:
            out["damaged"][path.name] = exc.message
        else:
            out["ok"] += 1
    return out


@click.group("cache", cls=HarnessGroup)
def cache_group() -> None:
    """Check, clear or count the project's cache (.harness/cache/cache.sqlite) and stored indexes.

    \b
    Example:
      harness cache check          # exit 1 if anything is damaged
      harness cache clear          # start afresh: every stage is recomputed
    """


@cache_group.command("check")
@manifest_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--repair", is_flag=True, help="Delete damaged rows (they are recomputed when next needed).")
def check_cmd(manifest: Path | None, as_json: bool, repair: bool) -> None:
    """SQLite's integrity check, every entry's checksum and decoding per namespace, and every stored index's
    sha256; exit 1 naming what is damaged.

    \b
    Example:
      harness cache check --json
    """
    from harness.cache import check
    from harness.cache import repair as repair_rows

    layout, home_known = _layout(manifest)
    report = check(layout.cache_db)
    removed: dict[str, int] = {}
    if repair and report.damaged and not report.error and not report.integrity:
        removed = repair_rows(layout.cache_db)
        report = check(layout.cache_db)
    indexes: dict[str, Any] = _index_report(layout) if home_known else {"ok": 0, "damaged": {}}
    corpora: dict[str, Any] = _corpus_report(layout) if home_known else {"ok": 0, "damaged": {}}
    damaged = report.damaged or bool(indexes["damaged"]) or bool(corpora["damaged"])
    if as_json:
        click.echo(json.dumps({
            "cache": str(report.path), "exists": report.exists, "ok": not damaged, "error": report.error,
            "integrity": report.integrity,
            "namespaces": {ns: {"rows": r.rows, "ok": r.ok, "damaged": r.damaged, "unchecked": r.unchecked,
                                "damaged_keys": r.damaged_keys} for ns, r in report.namespaces.items()},
            "indexes": indexes, "corpora": corpora, "repaired": removed}, indent=2))
        if damaged:
            raise SystemExit(1)
        return
    if not report.exists:
        click.echo(f"no cache yet at {report.path}")
    elif report.error:
        status = "LOCKED" if "locked" in report.error or "busy" in report.error else "DAMAGED"
        click.echo(f"{status} {report.path}: {report.error}", err=True)
    else:
        for line in report.integrity[:10]:
            click.echo(f"DAMAGED {report.path}: integrity_check: {line}", err=True)
        for ns, r in report.namespaces.items():
            note = f", {r.unchecked} from before checksums (recomputed when needed)" if r.unchecked else ""
            fixed = f", {removed[ns]} damaged removed" if removed.get(ns) else ""
            click.echo(f"{'DAMAGED' if r.damaged else 'ok':<8}{ns:<12} {r.rows} entries, {r.damaged} damaged"
                       f"{fixed}{note}")
    for key, problem in indexes["damaged"].items():
        click.echo(f"DAMAGED index {key[:12]}: {problem}", err=True)
    click.echo(f"{'DAMAGED' if indexes['damaged'] else 'ok':<8}{'indexes':<12} {indexes['ok']} ok, "
               f"{len(indexes['damaged'])} damaged")
    for problem in corpora["damaged"].values():
        click.echo(f"DAMAGED {problem}", err=True)
    click.echo(f"{'DAMAGED' if corpora['damaged'] else 'ok':<8}{'corpora':<12} {corpora['ok']} passage stores ok, "
               f"{len(corpora['damaged'])} damaged")
    if not damaged:
        return
    if report.error or report.integrity:
        hint = "`harness cache clear` starts the cache afresh (every stage is recomputed)"
    elif not report.damaged:
        hint = ("`harness cache clear --indexes` removes the stored indexes and passage stores (rebuilt when next "
                "needed)")
    else:
        hint = "`harness cache check --repair` removes the damaged entries, `harness cache clear` all entries"
    click.echo(f"damaged: {hint}", err=True)
    raise SystemExit(1)


@cache_group.command("clear")
@manifest_option
@click.option("--namespace", "namespaces", multiple=True,
              type=click.Choice(["embeddings", "rankings", "generations", "judgments", "hashes", "lm_pmi"]),
              help="Clear only these namespaces' entries (repeatable).")
@click.option("--indexes", is_flag=True,
              help="Clear the stored indexes and corpus passage stores (rebuilt when next needed).")
def clear_cmd(manifest: Path | None, namespaces: tuple[str, ...], indexes: bool) -> None:
    """Start afresh: remove the cache file (whatever state it is in) and the stored indexes, or only the
    namespaces or indexes named. Everything removed is recomputed when next needed; runs, baselines and
    snapshots are kept.

    \b
    Example:
      harness cache clear
      harness cache clear --namespace generations
      harness cache clear --indexes
    """
    from harness.cache import clear

    layout, home_known = _layout(manifest)
    everything = not namespaces and not indexes
    removed = clear(layout.cache_db, namespaces) if everything or namespaces else []
    for folder in (layout.index_store, layout.corpus_store):
        if (everything or indexes) and home_known and folder.is_dir():
            shutil.rmtree(folder)
            removed.append(str(folder))
    for what in removed:
        click.echo(f"removed {what}")
    if not removed:
        click.echo(f"nothing to clear at {layout.home if home_known else layout.cache_dir}")


@cache_group.command("stats")
@manifest_option
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def stats_cmd(manifest: Path | None, as_json: bool) -> None:
    """Entries and bytes per namespace, and the file's size.

    \b
    Example:
      harness cache stats
    """
    from harness.cache import check

    layout, _ = _layout(manifest)
    report = check(layout.cache_db, full=False)
    if report.error:
        from harness.cache import cache_error

        raise cache_error(report.path, RuntimeError(report.error))
    size = sum(p.stat().st_size for p in layout.cache_dir.glob(layout.cache_db.name + "*") if p.is_file()) \
        if report.exists else 0
    data = {"cache": str(report.path), "bytes": size,
            "namespaces": {ns: {"rows": r.rows, "bytes": r.bytes} for ns, r in report.namespaces.items()}}
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"{report.path}: {size / 1e6:.1f} MB")
    for ns, r in report.namespaces.items():
        click.echo(f"  {ns:<12} {r.rows:>8} entries  {r.bytes / 1e6:8.1f} MB")
