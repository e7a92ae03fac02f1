"""`harness init`."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli import HarnessCommand


@click.command("init", cls=HarnessCommand)
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--name", default=None, help="Project name (default: the folder's name).")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def init_cmd(folder: Path, name: str | None, force: bool) -> None:
    """Scaffold a project (manifest, golden/, validators/, indexes/, prompts/) that runs at once.

    \b
    Example:
      harness init my-eval && cd my-eval && harness run
    """
    from harness.scaffold import scaffold
    from harness.storage import check_writable

    check_writable(folder / "harness.toml")  # one line, exit 2, before any file is written
    path = scaffold(folder, name, force)
    click.echo(f"created {path} (locked); next: harness run, harness baseline promote, and after a change "
               f"harness gate (--manifest {path})")
