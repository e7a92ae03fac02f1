"""Errors that reach the user as one clear line and exit code 2.

Bad input is reported where it is (file:line, field) with what was expected; the CLI prints
``str(error)`` and exits with ``error.exit_code``. Errors inside a run are not exceptions: they are
recorded per case (see :class:`harness.types.CaseOutput`).
"""

from __future__ import annotations

from pathlib import Path

import click


class HarnessError(click.ClickException):
    """Usage, configuration or input error: exit code 2, nothing half-written."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def format_message(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"

    def __str__(self) -> str:
        return self.format_message()


class InputError(HarnessError):
    """Malformed input file: always names file[:line] and, where known, the field."""

    def __init__(
        self,
        path: str | Path,
        message: str,
        *,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = str(path) if line is None else f"{path}:{line}"
        if field:
            where += f": field '{field}'"
        super().__init__(f"{where}: {message}", hint=hint)
        self.path = str(path)
        self.line = line
        self.field = field


class ManifestError(HarnessError):
    """The manifest is malformed or its pins do not match the artifacts."""


class IntegrityError(HarnessError):
    """A stored artifact (index, cached file) does not match its recorded sha256."""
