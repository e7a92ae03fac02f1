"""The `harness` command line: one thin front end over the core.

Sub-commands are imported lazily so `harness run` on an unchanged manifest starts in well under a
second; heavy libraries (torch, sentence-transformers, faiss) load only when a stage needs them.
Exit codes: 0 success, 1 a gate or check failed or a run had errored cases, 2 usage/config/input error,
130 interrupted (Ctrl-C), 3 internal error (a bug).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import click

from harness.errors import HarnessError

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_COMMANDS = {
    "init": ("harness.commands.init", "init_cmd"),
    "run": ("harness.commands.core", "run_cmd"),
    "lock": ("harness.commands.core", "lock_cmd"),
    "verify": ("harness.commands.core", "verify_cmd"),
    "schema": ("harness.commands.core", "schema_cmd"),
    "import": ("harness.commands.importers", "import_group"),
    "diff": ("harness.commands.release", "diff_cmd"),
    "gate": ("harness.commands.release", "gate_cmd"),
    "baseline": ("harness.commands.release", "baseline_group"),
    "rollback": ("harness.commands.release", "rollback_cmd"),
    "attribute": ("harness.commands.release", "attribute_cmd"),
    "report": ("harness.commands.report", "report"),
    "metrics": ("harness.commands.metrics", "metrics"),
    "ifeval": ("harness.commands.ifeval", "ifeval"),
    "cache": ("harness.commands.cache", "cache_group"),
    "runs": ("harness.commands.runs", "runs_group"),
    "ingest": ("harness.commands.ingest", "ingest_cmd"),
    "monitor": ("harness.commands.monitor", "monitor_cmd"),
    "coverage": ("harness.commands.coverage", "coverage_cmd"),
    "golden": ("harness.commands.coverage", "golden_group"),
    "incident": ("harness.commands.incident", "incident_cmd"),
    "replay": ("harness.commands.shadow", "replay_cmd"),
    "canary": ("harness.commands.shadow", "canary_cmd"),
}


@functools.cache
def _click_error(exit_code: int) -> type[click.ClickException]:
    """The click error class that shows a message (``str(error)``: message, then hint) and exits with this code."""
    return type(f"HarnessExit{exit_code}", (click.ClickException,), {"exit_code": exit_code})


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """The one place the error family meets click: a HarnessError leaves as a click error."""
    try:
        yield
    except HarnessError as exc:
        raise _click_error(exc.exit_code)(str(exc)) from exc


class HarnessCommand(click.Command):
    """A command whose option callbacks and body report HarnessError as one line and its exit code."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        with _user_errors():
            return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        with _user_errors():
            return super().invoke(ctx)


class HarnessGroup(HarnessCommand, click.Group):
    """A group reporting errors as :class:`HarnessCommand` does; its sub-commands and groups are of these classes."""

    command_class = HarnessCommand
    group_class = type


class LazyGroup(HarnessGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return None
        module, attr = _COMMANDS[cmd_name]
        cmd = getattr(importlib.import_module(module), attr)
        if not isinstance(cmd, click.Command):  # pragma: no cover - programming error
            raise TypeError(f"{module}.{attr} is not a click command")
        return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.version_option(package_name="rag-harness")
@click.pass_context
def cli(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """rag-harness: pin every artifact of a RAG system, run golden sets, and score them.

    Exit codes: 0 success; 1 a gate or check failed, or cases errored in a run; 2 a usage, config or
    input error; 130 interrupted; 3 an internal error (a bug: please report it with --debug output).

    \b
    Example:
      harness import beir ../data/scifact --out scifact
      harness run --manifest scifact/harness.toml --json
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["quiet"] = quiet


def main(argv: list[str] | None = None) -> Any:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        return cli.main(args=argv, prog_name="harness", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        if debug:
            raise
        msg = exc.format_message()
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            msg += f" (see `{exc.ctx.command_path} --help`)"
        from harness.redact import redact

        click.echo(f"error: {redact(msg)}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if debug:
            raise
        from harness.redact import redact

        click.echo(f"internal error: {type(exc).__name__}: {redact(str(exc))} (run with --debug for a traceback)",
                   err=True)
        sys.exit(3)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())  # click returns a command's exit code in non-standalone mode; the console script exits with it
