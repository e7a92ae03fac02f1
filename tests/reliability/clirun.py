"""The CLI driven in-process, as `harness ...` would run it: exit code, stdout and stderr."""

from __future__ import annotations

import pytest

from harness.cli import main


def cli_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``harness -q ARGS`` through :func:`harness.cli.main`; a non-integer SystemExit code counts as 1."""
    capsys.readouterr()
    try:
        main(["-q", *args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err
