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

A run file begins with its header (:class:`RunHeader`: ids, manifest, counts, stage seconds, aggregates;
JSON keys in that order), so listing and pruning a store read a few kilobytes of each file, not its cases,
outputs and scores (:meth:`RunStore.scan`). Files stored before that order load the same; their header is
found by reading further.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import math
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_json

from harness.errors import HarnessError, InputError
from harness.storage import atomic_write_bytes, atomic_write_text, project_root
from harness.types import (
    RUN_FORMAT_VERSION,
    Aggregates,
    CaseError,
    Frozen,
    GenerationRecord,
    Manifest,
    RunResult,
)

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DAMAGED_HINT = "delete it, or restore it from a copy"
_Model = TypeVar("_Model", bound=BaseModel)


class RunHeader(BaseModel):
    """The leading fields of a run file: what listing, a summary and pruning need, without the cases,
    outputs and scores. Validated as :class:`~harness.types.RunResult` validates them (after the same
    migration)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    format_version: int
    run_id: str
    created_at: str
    manifest_id: str
    manifest_path: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    aggregates: Aggregates
    manifest: Manifest


_HEADER_FIELDS = tuple(RunHeader.model_fields)


@dataclass(frozen=True)
class StoredRun:
    """One run file of a store as :meth:`RunStore.scan` found it: where it is (its folder is the manifest
    id, its name the run id), its size, and its header, or why it is damaged."""

    path: Path
    manifest_id: str
    run_id: str
    size: int
    header: RunHeader | None
    problem: str | None = None
    mtime_ns: int = 0

    @property
    def damaged(self) -> bool:
        return self.header is None

    def age_key(self) -> tuple[str, int, str, str]:
        """Sorts runs by when they were made: the second in the run id, then when the file was written
        (runs of one second have random ids)."""
        return self.run_id.split("-", 1)[0], self.mtime_ns, self.run_id, self.manifest_id


def newest_first(runs: Iterable[StoredRun]) -> list[StoredRun]:
    return sorted(runs, key=StoredRun.age_key, reverse=True)


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
        """Write the run file, header fields first (see :class:`RunHeader`), and point LATEST at it."""
        path = self.path_for(run.manifest_id, run.run_id)
        stored = run.model_copy(update={"manifest_path": relative_manifest_path(run.manifest_path)})
        data = stored.model_dump(mode="json")
        ordered = {k: data[k] for k in _HEADER_FIELDS} | {k: v for k, v in data.items() if k not in _HEADER_FIELDS}
        atomic_write_bytes(path, to_json(ordered, indent=1))  # pydantic's own JSON, as model_dump_json writes
        atomic_write_text(path.parent / "LATEST", run.run_id + "\n")
        return path

    def latest_id(self, manifest_id: str) -> str | None:
        """The run id the manifest's LATEST pointer names, or None; a damaged pointer is one error naming it."""
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
        return run_id

    def latest(self, manifest_id: str) -> RunResult | None:
        run_id = self.latest_id(manifest_id)
        return None if run_id is None else load_run(self.path_for(manifest_id, run_id), project=self.project)

    def find(self, run_id: str) -> Path:
        """The run file of a run id or a unique prefix of one; none, or several (listed), is one error."""
        if not _RUN_ID.match(run_id):
            raise HarnessError(f"{run_id!r} is not a run id or an existing run file",
                               hint="run ids look like 20260101T120000Z-a1b2c3; `harness runs list` lists them")
        matches = sorted(self.root.glob(f"*/{run_id}*.json"))
        exact = [m for m in matches if m.stem == run_id]
        if len(exact) == 1 or len(matches) == 1:
            return (exact or matches)[0]
        if not matches:
            raise HarnessError(f"no run matching id {run_id!r} under {self.root}",
                               hint="`harness runs list --all` lists the stored runs")
        shown = ", ".join(f"{m.stem} (manifest {m.parent.name[:12]})" for m in matches[:_SHOWN_CANDIDATES])
        more = f" and {len(matches) - _SHOWN_CANDIDATES} more" if len(matches) > _SHOWN_CANDIDATES else ""
        raise HarnessError(f"{len(matches)} runs match id {run_id!r}: {shown}{more}", hint="give more of the run id")

    def scan(self) -> list[StoredRun]:
        """Every run file in the store, newest first, each read by its header only: a damaged file is
        listed with the reason, never skipped."""
        if not self.root.is_dir():
            return []
        found = [_stored_run(path) for folder in self.root.iterdir() if folder.is_dir()
                 for path in folder.glob("*.json") if not path.name.startswith(".") and not path.is_dir()]
        return newest_first(found)


_SHOWN_CANDIDATES = 10


def _stored_run(path: Path) -> StoredRun:
    manifest_id, run_id = path.parent.name, path.stem
    try:
        stat = path.stat()
    except OSError as exc:
        return StoredRun(path, manifest_id, run_id, 0, None, f"unreadable run file: {exc.strerror or exc}")
    size, mtime = stat.st_size, stat.st_mtime_ns
    try:
        header = read_header(path)
    except InputError as exc:
        return StoredRun(path, manifest_id, run_id, size, None, exc.message, mtime)
    if header.run_id != run_id or header.manifest_id != manifest_id:
        problem = (f"{path}: misplaced run file: it holds run {header.run_id} of manifest {header.manifest_id[:12]}, "
                   f"its place says run {run_id} of manifest {manifest_id[:12]}")
        return StoredRun(path, manifest_id, run_id, size, None, problem, mtime)
    return StoredRun(path, manifest_id, run_id, size, header, mtime_ns=mtime)


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
        raise _not_utf8(path, exc.start) from None
    numbers = _Numbers()
    try:
        data = json.loads(text, parse_float=numbers.number, parse_constant=numbers.constant)
    except json.JSONDecodeError as exc:
        raise _malformed(path, exc) from None
    except RecursionError:
        raise InputError(path, "malformed run file: nested too deeply") from None
    run = _validated(path, data, RunResult, numbers.non_finite)
    if run.manifest_path and not Path(run.manifest_path).is_absolute():
        root = project if project is not None else _default_project(path)
        if root is not None:
            run = run.model_copy(update={"manifest_path": str(root / run.manifest_path)})
    return run


def read_header(path: Path) -> RunHeader:
    """The header of a run file, reading only as far as its header fields (the first few kilobytes of a
    file :meth:`RunStore.save` wrote; all of one stored before the header came first), and checking that
    the file ends its JSON object (a cut-off file). Bad content is the one error :func:`load_run` gives;
    the rest of the file is checked when it is loaded."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    numbers = _Numbers()
    scan = _LeadingFields(frozenset(_HEADER_FIELDS), json.JSONDecoder(parse_float=numbers.number,
                                                                        parse_constant=numbers.constant))
    text, read, size = "", 0, _FIRST_READ
    try:
        with open(path, "rb") as fh:
            while True:
                block = fh.read(size)
                final = len(block) < size
                try:
                    text += decoder.decode(block, final=final)
                except UnicodeDecodeError as exc:
                    raise _not_utf8(path, read + exc.start) from None
                read += len(block)
                try:
                    if scan.feed(text, final):
                        break
                except json.JSONDecodeError as exc:
                    raise _malformed(path, exc) from None
                except RecursionError:
                    raise InputError(path, "malformed run file: nested too deeply") from None
                size *= 2
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - _TAIL))
            if not fh.read().rstrip().endswith(b"}"):
                raise InputError(path, "damaged run file: cut off (it does not end its JSON object)",
                                 hint=_DAMAGED_HINT)
    except FileNotFoundError:
        raise InputError(path, "no such run file") from None
    except OSError as exc:
        raise InputError(path, f"unreadable run file: {exc.strerror or exc}") from None
    return _validated(path, scan.fields, RunHeader, numbers.non_finite)


_FIRST_READ = 1 << 18  # 256 KiB: the header of a run with many segments and metrics fits
_TAIL = 64
_WS = re.compile(r"[ \t\n\r]*")


class _Numbers:
    """:mod:`json` number hooks that note whether a NaN or infinite number was read, so a run file's
    values are walked (:func:`_non_finite`, which names the field) only when one was."""

    def __init__(self) -> None:
        self.non_finite = False

    def number(self, text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            self.non_finite = True
        return value

    def constant(self, name: str) -> float:
        self.non_finite = True
        return float(name)  # NaN, Infinity, -Infinity


class _LeadingFields:
    """The top-level fields of a JSON object, read from its text as the text grows, up to the field that
    completes ``wanted`` (to the object's end if some are missing). Each value is decoded by :mod:`json`;
    a field is taken once the separator after it is read (a number cut at the end of the text is not
    whole), and reading resumes after the last field taken."""

    def __init__(self, wanted: frozenset[str], decoder: json.JSONDecoder) -> None:
        self.wanted = wanted
        self.decoder = decoder
        self.fields: dict[str, Any] = {}
        self._next: int | None = None  # where the next field starts; None before the opening brace

    def feed(self, text: str, final: bool) -> bool:
        """Read on in ``text`` (the file so far, all of it when ``final``); True once done. A malformed
        object raises :class:`json.JSONDecodeError`, as does a final text that ends too soon."""
        try:
            if self._next is None:
                pos = self._skip(text, 0)
                if text[pos] != "{":
                    raise json.JSONDecodeError("Expecting an object", text, pos)
                pos = self._skip(text, pos + 1)
                if text[pos] == "}":
                    return True
                self._next = pos
            while True:
                pos = self._skip(text, self._next)
                if text[pos] != '"':
                    raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, pos)
                key, pos = self.decoder.raw_decode(text, pos)
                pos = self._skip(text, pos)
                if text[pos] != ":":
                    raise json.JSONDecodeError("Expecting ':' delimiter", text, pos)
                value, pos = self.decoder.raw_decode(text, self._skip(text, pos + 1))
                pos = self._skip(text, pos)
                if text[pos] not in ",}":
                    raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
                self.fields[key] = value
                if text[pos] == "}" or self.wanted <= self.fields.keys():
                    return True
                self._next = pos + 1
        except IndexError:
            if final:
                raise json.JSONDecodeError("Unexpected end of the file", text, len(text)) from None
            return False
        except json.JSONDecodeError:
            if final:
                raise
            return False

    @staticmethod
    def _skip(text: str, pos: int) -> int:
        match = _WS.match(text, pos)
        return pos if match is None else match.end()


def _not_utf8(path: Path, at: int) -> InputError:
    return InputError(path, f"damaged run file: not UTF-8 at byte {at}", hint=_DAMAGED_HINT)


def _malformed(path: Path, exc: json.JSONDecodeError) -> InputError:
    return InputError(path, f"malformed run file: {exc.msg}", line=exc.lineno, hint=_DAMAGED_HINT)


def _validated(path: Path, data: Any, model: type[_Model], non_finite: bool) -> _Model:
    """``data`` read from a run file as ``model``: finite numbers only (``non_finite``: the decoder read a
    number that is not), older versions migrated first."""
    if not isinstance(data, dict):
        raise InputError(path, f"not a run file: a JSON {type(data).__name__}, expected an object")
    bad = _non_finite(data) if non_finite else None
    if bad is not None:
        field, value = bad
        raise InputError(path, f"damaged run file: {value} is not a finite number", field=field, hint=_DAMAGED_HINT)
    version = data.get("format_version")
    if version == 1:
        data = migrate_v1(path, data)
    elif version == 2:  # version 3 only added optional fields (supplied outputs): a v2 file is a v3 run
        data = {**data, "format_version": RUN_FORMAT_VERSION}
    elif version != RUN_FORMAT_VERSION:
        raise InputError(path, f"run format version {version!r} is not supported (expected {RUN_FORMAT_VERSION}, "
                         "or 1 and 2, which are migrated)", field="format_version")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"])
        raise InputError(path, f"damaged run file: {err['msg']}", field=field or None, hint=_DAMAGED_HINT) from None


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
    version 1 is bad input naming the field. A run header (no outputs) migrates the same.
    """
    migrated_run = {**data, "format_version": RUN_FORMAT_VERSION}
    outputs = data.get("outputs")
    if isinstance(outputs, list):  # else validation names what is wrong
        migrated_run["outputs"] = _v1_outputs(path, outputs)
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
    manifest = data.get("manifest")
    if isinstance(manifest, dict) and isinstance(manifest.get("gates"), list):
        gates = [{k: v for k, v in g.items() if k != "quantile"} if isinstance(g, dict) and g.get("metric") != "latency"
                 else g for g in manifest["gates"]]
        migrated_run["manifest"] = {**manifest, "gates": gates}
    if aggregates is not None:
        migrated_run["aggregates"] = aggregates
    return migrated_run


def _v1_outputs(path: Path, outputs: list[Any]) -> list[Any]:
    """Version-1 outputs in version 2's shape (a case's error and generation record typed)."""
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
    return migrated


# --- pruning --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrunePlan:
    """What :func:`plan_prune` decided: the run files to delete, and every other one with why it stays."""

    remove: tuple[StoredRun, ...]
    keep: tuple[tuple[StoredRun, str], ...]


def plan_prune(runs: Sequence[StoredRun], keep: int, protected: Mapping[str, str], latest: Mapping[str, str], *,
               versions: int | None = None, manifest_of: Mapping[Path, object] | None = None,
               include_damaged: bool = False) -> PrunePlan:
    """Which of ``runs`` to delete: all but the ``keep`` newest intact runs of each manifest id, the runs
    ``protected`` names (run id -> why, such as a baseline), and damaged files unless ``include_damaged``.

    With ``versions``, only the ``versions`` newest manifest ids of each manifest file (``manifest_of``: run
    path -> its manifest file; ordered by their newest run) keep runs that way; older versions keep only
    protected runs. A manifest id that keeps any run keeps the one its LATEST pointer names (``latest``:
    manifest id -> run id), so the pointer never names a deleted run while its folder has runs."""
    ordered = newest_first(runs)
    old_versions: set[str] = set()
    if versions is not None:
        versions_of: dict[object, list[str]] = {}
        for run in ordered:
            if run.header is not None:
                ids = versions_of.setdefault((manifest_of or {}).get(run.path, run.manifest_id), [])
                if run.manifest_id not in ids:
                    ids.append(run.manifest_id)
        recent = {mid for ids in versions_of.values() for mid in ids[:versions]}
        old_versions = {mid for ids in versions_of.values() for mid in ids} - recent
    newest: dict[str, int] = {}
    why: dict[Path, list[str]] = {}
    for run in ordered:
        reasons = why.setdefault(run.path, [])
        if run.run_id in protected:
            reasons.append(protected[run.run_id])
        if run.damaged:
            if not include_damaged:
                reasons.append("damaged (kept unless --include-damaged)")
        elif run.manifest_id not in old_versions and newest.get(run.manifest_id, 0) < keep:
            newest[run.manifest_id] = newest.get(run.manifest_id, 0) + 1
            reasons.append(f"among the newest {keep} of its manifest id")
    keeps_some = {run.manifest_id for run in ordered if why[run.path]}
    for run in ordered:
        if run.manifest_id in keeps_some and latest.get(run.manifest_id) == run.run_id:
            why[run.path].append("its manifest id's LATEST run")
    return PrunePlan(remove=tuple(r for r in ordered if not why[r.path]),
                     keep=tuple((r, "; ".join(why[r.path])) for r in ordered if why[r.path]))


def remove_runs(root: Path, runs: Iterable[StoredRun]) -> list[StoredRun]:
    """Delete these run files, the ones already gone aside; returns those deleted. Every path is checked
    first to be a ``.json`` file in a manifest folder directly under ``root``, so nothing else is touched.
    Then each emptied manifest folder loses its LATEST pointer (and goes, if nothing else is in it), and a
    pointer left naming a deleted run names the newest run that remains."""
    base = root.resolve()
    targets = list(runs)
    for run in targets:
        if run.path.suffix != ".json" or run.path.parent.resolve().parent != base or run.path.is_dir():
            raise HarnessError(f"refusing to delete {run.path}: not a run file of the store {root}; "
                               "nothing was deleted")
    removed: list[StoredRun] = []
    for run in targets:
        try:
            run.path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise HarnessError(f"cannot delete {run.path}: {exc.strerror or exc} (deleted {len(removed)} of "
                               f"{len(targets)} run files before it)") from None
        removed.append(run)
    for folder in sorted({run.path.parent for run in removed}):
        _repair_latest(folder)
    return removed


def _repair_latest(folder: Path) -> None:
    pointer = folder / "LATEST"
    try:
        named = pointer.read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return  # no pointer, or a damaged one: `RunStore.latest` says so, the next run writes it again
    if (folder / f"{named}.json").is_file():
        return
    remaining = [p for p in folder.glob("*.json") if not p.name.startswith(".")]
    if remaining:
        newest = max(remaining, key=lambda p: (p.stem.split("-", 1)[0], p.stat().st_mtime_ns, p.stem))
        atomic_write_text(pointer, newest.stem + "\n")
        return
    pointer.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # something else is in it: left as it is
        folder.rmdir()


_PIN = re.compile(r"^[0-9a-f]{64}$")


def snapshot_pins(manifest: Manifest) -> set[str]:
    """The pins of the manifest's path artifacts: the snapshots (``<home>/store/blobs/<pin>/``) it refers to."""
    return {a.sha256 for a in manifest.artifacts.values() if a.path is not None and a.sha256 is not None}


def snapshot_size(blobs: Path, pin: str) -> int | None:
    """Bytes held by the snapshot folder of ``pin``, or None if there is none (or it is not a plain folder)."""
    folder = blobs / pin
    if not _PIN.match(pin) or folder.is_symlink() or not folder.is_dir():
        return None
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def remove_snapshots(blobs: Path, pins: Iterable[str]) -> list[tuple[str, int]]:
    """Delete the snapshot folders of these pins, each renamed out of its place first (so a reader never
    sees half of one); returns (pin, bytes) of those deleted. Only plain folders named by a pin directly
    under ``blobs`` are touched."""
    removed: list[tuple[str, int]] = []
    for pin in sorted(pins):
        size = snapshot_size(blobs, pin)
        if size is None:
            continue
        doomed = blobs / f".pruned-{pin}-{secrets.token_hex(3)}"
        try:
            (blobs / pin).rename(doomed)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise HarnessError(f"cannot delete the snapshot {blobs / pin}: {exc.strerror or exc}") from None
        try:
            shutil.rmtree(doomed)
        except OSError as exc:
            raise HarnessError(f"cannot delete {doomed} (the snapshot {pin}, moved aside): {exc.strerror or exc}",
                               hint="delete that folder by hand") from None
        removed.append((pin, size))
    return removed
