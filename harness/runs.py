"""The results store: one versioned JSON file per run, under the manifest id that produced it.

Layout: ``<home>/runs/<manifest id>/<run id>.json`` and ``<home>/runs/<manifest id>/LATEST``.
Files are written atomically; a run id is sortable by time.

A run records its manifest's path relative to the project's root (``variants/prompt-v2.toml``), so a
moved, copied or cloned project's runs refer to its own files; loading resolves it against the project
(given, or the one whose ``.harness`` holds the run file). Runs stored with an absolute path load as they
are. A run file that cannot be read (not UTF-8, not JSON, not a run) is one error naming it, exit 2.

Run files carry a ``format_version``: the current one (:data:`harness.types.RUN_FORMAT_VERSION`) loads
as it is, version 1 goes through :func:`migrate_v1` once on load, version 2 (which lacks only the optional
fields of supplied outputs) loads as version 3, any other version is refused.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.errors import HarnessError, InputError
from harness.storage import atomic_write_text, project_root
from harness.types import RUN_FORMAT_VERSION, CaseError, Frozen, GenerationRecord, RunResult

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def relative_manifest_path(manifest_path: str | None) -> str | None:
    """The manifest's path relative to its project's root (POSIX), if it lies inside it."""
    if not manifest_path or not Path(manifest_path).is_absolute():
        return manifest_path
    path = Path(manifest_path)
    try:
        return path.resolve().relative_to(project_root(path)).as_posix()
    except ValueError:
        return manifest_path


class RunStore:
    def __init__(self, root: Path, project: Path | None = None) -> None:
        self.root = root
        self.project = project

    def path_for(self, manifest_id: str, run_id: str) -> Path:
        return self.root / manifest_id / f"{run_id}.json"

    def save(self, run: RunResult) -> Path:
        path = self.path_for(run.manifest_id, run.run_id)
        stored = run.model_copy(update={"manifest_path": relative_manifest_path(run.manifest_path)})
        atomic_write_text(path, stored.model_dump_json(indent=1))
        atomic_write_text(path.parent / "LATEST", run.run_id + "\n")
        return path

    def latest(self, manifest_id: str) -> RunResult | None:
        pointer = self.root / manifest_id / "LATEST"
        if not pointer.is_file():
            return None
        try:
            run_id = pointer.read_bytes().decode("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(pointer, f"unreadable pointer to the latest run ({exc})",
                             hint=f"delete {pointer}; the next `harness run` writes it again") from None
        if not _RUN_ID.match(run_id):
            raise InputError(pointer, f"damaged pointer to the latest run: {run_id[:40]!r} is not a run id",
                             hint=f"delete {pointer}; the next `harness run` writes it again")
        return load_run(self.path_for(manifest_id, run_id), project=self.project)

    def find(self, run_id: str) -> Path:
        if not _RUN_ID.match(run_id):
            raise HarnessError(f"{run_id!r} is not a run id or an existing run file",
                               hint="run ids look like 20260101T120000Z-a1b2c3; see .harness/runs/")
        matches = sorted(self.root.glob(f"*/{run_id}*.json"))
        if len(matches) != 1:
            what = "no run" if not matches else f"{len(matches)} runs"
            raise HarnessError(f"{what} matching id {run_id!r} under {self.root}")
        return matches[0]


def _project_of_run_file(path: Path) -> Path | None:
    """The project whose ``.harness/runs/<manifest id>/`` holds this run file, if it is laid out so."""
    path = path.resolve()
    if len(path.parents) >= 4 and path.parents[1].name == "runs" and path.parents[2].name == ".harness":
        return path.parents[3]
    return None


def _default_project(path: Path) -> Path | None:
    if os.environ.get("HARNESS_HOME"):
        from harness.manifest import find_manifest

        try:
            return project_root(find_manifest())
        except HarnessError:
            return None
    return _project_of_run_file(path)


def _non_finite(data: object) -> tuple[str, float] | None:
    """(dotted field, value) of the first NaN or infinite number in a parsed JSON value, else None."""
    stack: list[tuple[str, object]] = [("", data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return where, value
        if isinstance(value, dict):
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{where}.{i}" if where else str(i), v) for i, v in reversed(list(enumerate(value))))
    return None


def load_run(path: str | Path, *, project: Path | None = None) -> RunResult:
    """Read and validate a run file; its relative manifest path is resolved against ``project`` (default:
    the project holding the run file, or under ``HARNESS_HOME`` the project found from here)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, "no such run file") from None
    except OSError as exc:
        raise InputError(path, f"unreadable run file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"damaged run file: not UTF-8 at byte {exc.start}",
                         hint="delete it, or restore it from a copy") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"malformed run file: {exc.msg}", line=exc.lineno,
                         hint="delete it, or restore it from a copy") from None
    except RecursionError:
        raise InputError(path, "malformed run file: nested too deeply") from None
    if not isinstance(data, dict):
        raise InputError(path, f"not a run file: a JSON {type(data).__name__}, expected an object")
    bad = _non_finite(data)
    if bad is not None:
        field, value = bad
        raise InputError(path, f"damaged run file: {value} is not a finite number", field=field,
                         hint="delete it, or restore it from a copy")
    version = data.get("format_version")
    if version == 1:
        data = migrate_v1(path, data)
    elif version == 2:  # version 3 only added optional fields (supplied outputs): a v2 file is a v3 run
        data = {**data, "format_version": RUN_FORMAT_VERSION}
    elif version != RUN_FORMAT_VERSION:
        raise InputError(path, f"run format version {version!r} is not supported (expected {RUN_FORMAT_VERSION}, "
                         "or 1 and 2, which are migrated)", field="format_version")
    try:
        run = RunResult.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"])
        raise InputError(path, f"damaged run file: {err['msg']}", field=field or None,
                         hint="delete it, or restore it from a copy") from None
    if run.manifest_path and not Path(run.manifest_path).is_absolute():
        root = project if project is not None else _default_project(path)
        if root is not None:
            run = run.model_copy(update={"manifest_path": str(root / run.manifest_path)})
    return run


# --- version 1 -> 2 ------------------------------------------------------------------------------------


class _V1Extra(Frozen):
    """``CaseOutput.extra`` of a version-1 run: every key it could hold (any other is refused)."""

    attempts: int | None = None
    passages_shown: tuple[str, ...] | None = None
    error_kind: str | None = None
    finish_reason: str | None = None
    truncated: bool | None = None  # derived from finish_reason; not kept


class _V1Output(BaseModel):
    """The fields of a version-1 ``CaseOutput`` that version 2 types; the rest pass through as they are."""

    model_config = ConfigDict(extra="allow")

    error: str | None = None
    error_stage: Literal["generate", "retrieve"] | None = None
    extra: _V1Extra = _V1Extra()


_V1_DIAGNOSTIC_PREFIX = "format_fail:"  # version 1 recorded no metric roles; its only diagnostics were these


def _v1_summary(name: str, summary: Any) -> Any:
    if not isinstance(summary, dict) or not name.startswith(_V1_DIAGNOSTIC_PREFIX):
        return summary
    return {**summary, "role": "diagnostic", "label": name[len(_V1_DIAGNOSTIC_PREFIX):]}


def migrate_v1(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """A version-1 run file's data in version 2's shape, for :class:`~harness.types.RunResult` to validate.

    Version 1 kept a case's error as ``error`` / ``error_stage`` / ``extra["error_kind"]`` and what the
    generation stage recorded as ``extra`` keys (``attempts``, ``passages_shown``, ``finish_reason``,
    ``truncated``); version 2 has :class:`~harness.types.CaseError` and
    :class:`~harness.types.GenerationRecord`. Version 1 recorded no metric roles: the per-validator
    ``format_fail:<contract>.<check>`` metrics become ``diagnostic`` (labelled ``<contract>.<check>``),
    every other metric ``quality``. The manifest and scorer specs keep their shape, except that version 1
    stored every gate rule field, defaults included: the ``quantile`` of a rule on another metric than
    latency (always its default then) is left out, as version 2 stores it. An output that does not fit
    version 1 is bad input naming the field.
    """
    outputs = data.get("outputs")
    if not isinstance(outputs, list):
        return {**data, "format_version": RUN_FORMAT_VERSION}  # validation names what is wrong
    migrated: list[Any] = []
    for i, raw in enumerate(outputs):
        if not isinstance(raw, dict):
            migrated.append(raw)
            continue
        try:
            old = _V1Output.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(x) for x in ("outputs", i, *err["loc"]))
            raise InputError(path, f"damaged version-1 run file: {err['msg']}", field=field,
                             hint="delete it, or restore it from a copy") from None
        out: dict[str, Any] = dict(old.model_extra or {})
        if old.error is not None:
            stage = old.error_stage or "generate"  # version 1 set no other stage
            out["error"] = CaseError(stage=stage, kind=old.extra.error_kind or stage, message=old.error)
        x = old.extra
        if (x.attempts is None) != (x.passages_shown is None):
            raise InputError(path, "damaged version-1 run file: extra records one of attempts and passages_shown "
                             "without the other", field=f"outputs.{i}.extra",
                             hint="delete it, or restore it from a copy")
        if x.attempts is not None and x.passages_shown is not None:
            out["generation"] = GenerationRecord(attempts=x.attempts, passages_shown=x.passages_shown,
                                                 finish_reason=x.finish_reason)
        migrated.append(out)
    aggregates = data.get("aggregates")
    if isinstance(aggregates, dict):
        overall, segments = aggregates.get("overall"), aggregates.get("segments")
        aggregates = {**aggregates}
        if isinstance(overall, dict):
            aggregates["overall"] = {m: _v1_summary(m, s) for m, s in overall.items()}
        if isinstance(segments, dict):
            aggregates["segments"] = {
                seg: {m: _v1_summary(m, s) for m, s in ms.items()} if isinstance(ms, dict) else ms
                for seg, ms in segments.items()
            }
    migrated_run = {**data, "format_version": RUN_FORMAT_VERSION, "outputs": migrated}
    manifest = data.get("manifest")
    if isinstance(manifest, dict) and isinstance(manifest.get("gates"), list):
        gates = [{k: v for k, v in g.items() if k != "quantile"} if isinstance(g, dict) and g.get("metric") != "latency"
                 else g for g in manifest["gates"]]
        migrated_run["manifest"] = {**manifest, "gates": gates}
    if aggregates is not None:
        migrated_run["aggregates"] = aggregates
    return migrated_run
