"""run, lock, verify, schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from harness.cli import HarnessCommand
from harness.options import MANIFEST, click_options

if TYPE_CHECKING:
    from harness.manifest import LoadedManifest
    from harness.storage import Layout

manifest_option = click_options(MANIFEST)  # one definition, shared with the pytest plugin


def project(manifest: Path | None) -> tuple[LoadedManifest, Layout]:
    """(loaded manifest, layout) for a --manifest option (or the manifest found from here)."""
    from harness.manifest import load_manifest
    from harness.storage import Layout

    loaded = load_manifest(manifest)
    return loaded, Layout.for_manifest(loaded.path)


def _progress(ctx: click.Context):
    from harness.progress import Progress

    return Progress(enabled=False) if (ctx.obj or {}).get("quiet") else Progress()


def check_output(out: Path | None, loaded: LoadedManifest, allow_outside: bool) -> None:
    """An ``--out`` file, checked before anything is computed: inside the project unless ``allow_outside``,
    and writable."""
    from harness.hashing import confine_path, project_root
    from harness.storage import check_writable

    if out is None:
        return
    if not allow_outside:
        confine_path(out, project_root(loaded.base_dir))
    check_writable(out)


@click.command("run", cls=HarnessCommand)
@manifest_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--allow-errors", is_flag=True,
              help="Exit 0 even when cases errored (they are still counted, summarised and stored).")
@click.option("--engine", "engine_kind", type=click.Choice(["local", "ray"]), default=None,
              help="Where corpus embedding, index building and large golden sets run (default: the manifest's "
              "[engine], else local). ray: a Ray cluster (RAY_ADDRESS) or a local one; needs rag-harness[ray].")
@click.pass_context
def run_cmd(ctx: click.Context, manifest: Path | None, as_json: bool, allow_errors: bool,
            engine_kind: str | None) -> None:
    """Run every golden case through retrieval and generation, score it, and store the run under the
    manifest id.

    Cases that error (a generation that failed after its retries, ...) are stored, scored as failures
    and summarised on stderr by kind with the first case ids and messages.

    Exit code: 0 when every case ran; 1 when any case errored; 2 on a usage, config or input error.
    With --allow-errors, errored cases keep exit 0.

    \b
    Example:
      harness run --manifest harness.toml --json
    """
    from harness.pipeline import run_manifest, summary
    from harness.report.console import print_error_summary

    with _progress(ctx) as progress:
        report = run_manifest(manifest, progress=progress, engine_kind=engine_kind)
    data = summary(report)  # from the run's header and what was tallied while it streamed: the run is not read
    errors = report.errors
    data["errors"] = errors
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        from harness.report.console import print_run_summary

        print_run_summary(data)
    print_error_summary(errors, report.header.counts["cases"], allowed=allow_errors)
    if errors["total"] and not allow_errors:
        raise SystemExit(1)


@click.command("lock", cls=HarnessCommand)
@manifest_option
def lock_cmd(manifest: Path | None) -> None:
    """Compute the sha256 pin of every artifact and write it into the manifest.

    \b
    Example:
      harness lock --manifest harness.toml
    """
    from harness.cache import Cache
    from harness.manifest import HashMemo, find_manifest, load_manifest, lock
    from harness.storage import Layout

    path = manifest or find_manifest()
    load_manifest(path)  # a rejected manifest leaves nothing behind, not even an empty cache
    cache = Cache(Layout.for_manifest(path).cache_db)
    try:
        pins = lock(path, HashMemo(cache))
    finally:
        cache.close()
    for role, pin in pins.items():
        click.echo(f"{role:<12} {pin}")
    click.echo(f"locked {path}")


@click.command("verify", cls=HarnessCommand)
@manifest_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify_cmd(manifest: Path | None, as_json: bool) -> None:
    """Check every artifact against its pin; exit 1 naming each mismatch.

    \b
    Example:
      harness verify --manifest harness.toml
    """
    from harness.manifest import load_manifest, verify

    loaded = load_manifest(manifest)
    bad = verify(loaded)
    if as_json:
        click.echo(json.dumps({"ok": not bad, "manifest_id": loaded.id,
                               "mismatches": [{"role": r, "expected": e, "actual": a} for r, e, a in bad]}, indent=2))
        if bad:
            raise SystemExit(1)
        return
    for role, expected, actual in bad:
        art = loaded.manifest.artifacts[role]
        where = art.path or art.uri or "params"
        click.echo(f"MISMATCH {role} ({where}): expected {expected or '(not pinned)'}, actual {actual}", err=True)
    if bad:
        raise SystemExit(1)
    click.echo(f"ok: {len(loaded.manifest.artifacts)} artifacts match their pins; manifest id {loaded.id}")


@click.command("schema", cls=HarnessCommand)
@click.argument("name", type=click.Choice(["manifest", "golden_case", "corpus_doc", "outputs_record"]))
def schema_cmd(name: str) -> None:
    """Print a published JSON Schema.

    \b
    Example:
      harness schema golden_case > golden.schema.json
    """
    from harness.golden import schema_path

    click.echo(schema_path(name).read_text("utf-8"), nl=False)
