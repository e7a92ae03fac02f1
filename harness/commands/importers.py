"""`harness import beir`."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli import HarnessGroup


@click.group("import", cls=HarnessGroup)
def import_group() -> None:
    """Import golden sets and corpora from other layouts."""


@import_group.command("beir")
@click.argument("src", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write golden/, indexes/ and the locked manifest into.")
@click.option("--split", default="test", show_default=True, help="Which qrels/<split>.tsv to judge with.")
@click.option("--format", "fmt", type=click.Choice(["toml", "yaml"]), default="toml", show_default=True)
def beir_cmd(src: Path, out: Path, split: str, fmt: str) -> None:
    """Turn a BEIR folder into a golden set + corpus + locked manifest.

    \b
    Example:
      harness import beir ../shared/data/scifact --out scifact
      harness run --manifest scifact/harness.toml
    """
    from harness.importers.beir import import_beir

    path = import_beir(src, out, split=split, fmt=fmt)
    click.echo(f"wrote {path}")
