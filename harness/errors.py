"""The one family of errors that reach the user as one clear line and an exit code (2 unless set).

Bad input is reported where it is (file:line, field) with what was expected. Nothing here knows
the command line: :func:`harness.cli.main` prints ``str(error)`` (the message, then the hint) and
exits with ``error.exit_code``; the pytest plugin turns the same errors into usage errors. Errors
inside a run are not exceptions: they are recorded per case (see :class:`harness.types.CaseOutput`).

Every error a user can cause is a subclass of :class:`HarnessError` defined here, so a caller
catches one family and a newcomer finds every kind in one file.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CacheError",
    "HarnessError",
    "IFEvalFormatError",
    "InputError",
    "InstructionSpecError",
    "IntegrityError",
    "ManifestError",
    "MeasureError",
    "MissingDependencyError",
    "OutsideProjectError",
    "RecipeError",
    "RegistryError",
    "UnknownInstructionError",
    "UnknownMetricError",
    "UnknownNameError",
]


class HarnessError(Exception):
    """Usage, configuration or input error: exit code 2, nothing half-written."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


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


class RecipeError(ManifestError):
    """A bad index recipe value; ``key`` is the recipe field it is about (None: the recipe as a whole)."""

    def __init__(self, message: str, key: str | None = None, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.key = key


class OutsideProjectError(ManifestError):
    """An artifact path, or a symlink inside an artifact folder, leads out of the project."""


class IntegrityError(HarnessError):
    """A stored artifact (index, cached file) does not match its recorded sha256."""


class CacheError(HarnessError):
    """The cache file cannot be used: damaged, not a database, or locked. Exit 2 with the remedy."""


class MissingDependencyError(HarnessError):
    """A tool a check needs is not installed; the message says what to install."""


class MeasureError(HarnessError):
    """A trec_eval measure request harness cannot honour (unknown, unimplemented, bad parameters)."""


class UnknownMetricError(HarnessError):
    """A metric name that is not one of :func:`harness.metrics.metric_names` (never silently ``None``)."""


class RegistryError(HarnessError):
    """A registered name taken twice, or a spec that cannot be built (missing, unknown or mistyped arguments)."""


class UnknownNameError(RegistryError):
    """A name no built-in or plugin registers; the message or hint lists close matches."""


class InstructionSpecError(RegistryError):
    """An instruction spec that cannot be built: unknown keys, wrong or missing kwargs."""


class UnknownInstructionError(InstructionSpecError, UnknownNameError):
    """The instruction id is not registered; the message lists close matches."""


class IFEvalFormatError(HarnessError):
    """A malformed IFEval input or response, located as ``file:line`` when it came from a file."""

    def __init__(self, message: str, source: str | None = None, *, hint: str | None = None) -> None:
        super().__init__(f"{source}: {message}" if source else message, hint=hint)
        self.source = source
        self.detail = message
