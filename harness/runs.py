"""The results store: one run per run id, under the manifest id that produced it.

Layout (format 4): ``<home>/runs/<manifest id>/<run id>.json`` (the header: small JSON) beside
``<run id>.parquet`` (the table: one row per case, in the run's case order, one row group per appended
batch; besides the columns of the contract, ``score_seq`` holds each of a row's scores' place in the order
the run's scores were written, so a run materializes exactly as it was saved; the ranking columns of
:data:`harness.columns.RANKING_SCHEMA` and ``cache_hit:<stage>`` per latency stage let the diff's score
shift, calibration and latency rules read columns, never decode a record; a table written without them
still reads, the diff then decoding its records), and
``<home>/runs/<manifest id>/LATEST``. :class:`RunWriter` streams a run's cases into the table as
they complete (memory: one batch), under a temporary name, then renames it and writes the header last,
atomically: a run exists once its header does. The header records the table's sha256 and row count; a
header whose table is missing or does not match them is a damaged run (one error naming it, exit 2), and a
table without its header (a killed run) is ignored by listing and deleted by pruning. A run id is sortable
by time. :func:`open_run` reads a run by columns (:class:`RunTable`); :func:`load_run` materializes it.

A run records its manifest's path relative to the project's root (``variants/prompt-v2.toml``), so a
moved, copied or cloned project's runs refer to its own files; loading resolves it against the project
(given, or the one whose ``.harness`` holds the run file). Runs stored with an absolute path load as they
are. A run file that cannot be read (not UTF-8, not JSON, not a run) is one error naming it, exit 2.

Run files carry a ``format_version``: 4 (:data:`TABLE_FORMAT_VERSION`) is the header of a columnar run;
the single-JSON-file versions still load: 3 (:data:`harness.types.RUN_FORMAT_VERSION`, the in-memory
version) as it is, version 1 through :func:`migrate_v1` once on load, version 2 (which lacks only the
optional fields of supplied outputs) as version 3; any other version is refused. :func:`migrate_runs`
rewrites a store's old files as format 4.

A run file begins with its header (:class:`RunHeader`: ids, manifest, counts, stage seconds, aggregates;
JSON keys in that order), so listing and pruning a store read a few kilobytes of each file, not its cases,
outputs and scores (:meth:`RunStore.scan`). Files stored before that order load the same; their header is
found by reading further.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import to_json

from harness.columns import (
    RANKING_COLUMNS,
    RANKING_SCHEMA,
    RankingBatches,
    RunColumns,
    ranking_batch,
    ranking_lists,
)
from harness.errors import HarnessError, InputError
from harness.storage import atomic_write_bytes, atomic_write_text, check_writable, project_root
from harness.types import (
    RUN_FORMAT_VERSION,
    Aggregates,
    CaseError,
    CaseOutput,
    Frozen,
    GenerationRecord,
    GoldenCase,
    Manifest,
    RunResult,
    Score,
    ScorerSpec,
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

TABLE_FORMAT_VERSION = 4
"""``format_version`` of a columnar run's header (:class:`RunWriter`); its table is ``<run id>.parquet``."""


class RunTableHeader(RunHeader):
    """A format-4 header: :class:`RunHeader`'s fields, then the run's environment and scorer specs, its
    row count, and its table's file name and sha256. For a run of an older format (loaded whole),
    ``table`` and ``table_sha256`` are None."""

    environment: dict[str, Any] = Field(default_factory=dict)
    scorers: tuple[ScorerSpec, ...] = ()
    rows: int = Field(ge=0)
    table: str | None = None
    table_sha256: str | None = None


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

    def writer(self, manifest_id: str, *, run_id: str | None = None, metrics: Sequence[str],
               tag_keys: Sequence[str], latency_stages: Sequence[str]) -> RunWriter:
        """A :class:`RunWriter` of a new run of ``manifest_id`` (``run_id``: a new one by default), its table's
        columns fixed now: these metrics' values, these tag keys, these latency stages."""
        return RunWriter(self.root / manifest_id, manifest_id, run_id or new_run_id(), metrics=metrics,
                         tag_keys=tag_keys, latency_stages=latency_stages)

    def save(self, run: RunResult) -> Path:
        """Write the run (format 4, through :class:`RunWriter`: its header and table) and point LATEST at it;
        the header's path."""
        return _save(self.root, run, relative_manifest_path(run.manifest_path), point_latest=True)

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
    with contextlib.suppress(OSError):
        size += _table_path_of(path).stat().st_size
    try:
        header = read_header(path)
    except InputError as exc:
        return StoredRun(path, manifest_id, run_id, size, None, exc.message, mtime)
    if header.run_id != run_id or header.manifest_id != manifest_id:
        problem = (f"{path}: misplaced run file: it holds run {header.run_id} of manifest {header.manifest_id[:12]}, "
                   f"its place says run {run_id} of manifest {manifest_id[:12]}")
        return StoredRun(path, manifest_id, run_id, size, None, problem, mtime)
    if header.format_version == TABLE_FORMAT_VERSION:  # its table is there, with its rows (sha256: on open)
        try:
            _check_table(path, _read_table_header(path), full=False)
        except InputError as exc:
            return StoredRun(path, manifest_id, run_id, size, None, exc.message, mtime)
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
    """Read and validate a run (a format-4 header and its table, materialized; or a whole older run file);
    its relative manifest path is resolved against ``project`` (default: the project holding the run file,
    or under ``HARNESS_HOME`` the project found from here)."""
    return open_run(path, project=project).materialize()


def _read_json(path: Path) -> tuple[Any, bool]:
    """A run file's parsed JSON, and whether it holds a number that is not finite."""
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
    return data, numbers.non_finite


def _resolved_manifest_path(manifest_path: str | None, path: Path, project: Path | None) -> str | None:
    if manifest_path and not Path(manifest_path).is_absolute():
        root = project if project is not None else _default_project(path)
        if root is not None:
            return str(root / manifest_path)
    return manifest_path


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
    elif version == TABLE_FORMAT_VERSION and issubclass(model, RunHeader):
        pass  # a columnar run's header (its table is read by open_run)
    elif version != RUN_FORMAT_VERSION:
        raise InputError(path, f"run format version {version!r} is not supported (expected "
                         f"{TABLE_FORMAT_VERSION}, or 1, 2 and 3, which load as they were)", field="format_version")
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
            run.path.unlink()  # the header first: the run is gone at once; a table left behind is an orphan
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise HarnessError(f"cannot delete {run.path}: {exc.strerror or exc} (deleted {len(removed)} of "
                               f"{len(targets)} run files before it)") from None
        try:
            _table_path_of(run.path).unlink(missing_ok=True)
        except OSError as exc:
            raise HarnessError(f"cannot delete {_table_path_of(run.path)}: {exc.strerror or exc} (the table of "
                               f"the deleted run {run.run_id}; the next prune deletes it)") from None
        removed.append(run)
    touched = {run.path.parent for run in removed} | {p.parent for p in remove_orphan_tables(root)}
    for folder in sorted(touched):
        _repair_latest(folder)
    return removed


def _repair_latest(folder: Path) -> None:
    pointer = folder / "LATEST"
    try:
        named = pointer.read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        if not pointer.exists():
            with contextlib.suppress(OSError):  # emptied of its orphan tables, never held a run
                folder.rmdir()
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


# --- the columnar run store (format 4) -------------------------------------------------------------------

_TABLE_SUFFIX = ".parquet"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_JSON_COLUMNS = ("case", "output", "scores")
_RECORD_COLUMNS = ("case_id", *_JSON_COLUMNS)
_SAVE_ROWS = 10_000  # rows per row group when a whole run is saved
_NON_FINITE_TEXT = re.compile(rb"NaN|Infinity")
_SCORES = TypeAdapter(list[Score])


class NonFiniteValueError(ValueError):
    """A value given to :class:`RunWriter` is NaN or infinite: a run stores finite numbers only (None is
    how a score says it is unscored)."""


def _table_path_of(header: Path) -> Path:
    return header.with_name(header.stem + _TABLE_SUFFIX)


def _json(value: Any, where: str) -> bytes:
    """``value`` (a model dump) as pydantic's JSON, as the single-file format stored it; a number that is
    not finite is refused, naming where. The dump is python-mode: a JSON-mode dump turns an infinity
    inside a free-form dict (``details``, ``metadata``) into null, silently."""
    data = to_json(value)
    if _NON_FINITE_TEXT.search(data):  # rare: "NaN" inside a string is checked by parsing
        numbers = _Numbers()
        parsed = json.loads(data, parse_float=numbers.number, parse_constant=numbers.constant)
        bad = _non_finite(parsed) if numbers.non_finite else None
        if bad is not None:
            raise NonFiniteValueError(f"{where}: field {bad[0]!r} is {bad[1]}, not a finite number")
    return data


class _HashingSink:
    """The file object a :class:`pyarrow.parquet.ParquetWriter` writes to: bytes go to the file and into
    a sha256, so the table's digest is known when it is closed without reading it again."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self._sha = hashlib.sha256()
        self._size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._sha.update(view)
        self._size += view.nbytes
        self._fh.write(view)
        return view.nbytes

    def flush(self) -> None:
        self._fh.flush()

    def tell(self) -> int:
        return self._size

    def close(self) -> None:
        self.closed = True  # the writer owns the file, not the Parquet writer

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def _lock(fd: int, *, wait: bool) -> bool:
    """An exclusive advisory lock on ``fd`` (held by a writer until its header is written; a killed writer's
    lock is released by the kernel). False if another holds it (``wait`` False). Without ``fcntl``: True."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _unique(names: Sequence[str], what: str) -> tuple[str, ...]:
    if isinstance(names, str):
        raise TypeError(f"{what}: a sequence of names, not the string {names!r}")
    out = tuple(names)
    if len(set(out)) != len(out):
        dup = next(n for n in out if out.count(n) > 1)
        raise ValueError(f"{what}: {dup!r} is given twice")
    return out


def _schema(metrics: Sequence[str], tag_keys: Sequence[str], stages: Sequence[str]) -> pa.Schema:
    fields = [pa.field("case_id", pa.string(), nullable=False), pa.field("case", pa.string()),
              pa.field("output", pa.string(), nullable=False), pa.field("scores", pa.string(), nullable=False),
              pa.field("error_stage", pa.string()), pa.field("error_kind", pa.string()),
              pa.field("score_seq", pa.list_(pa.int64()), nullable=False)]
    fields += [pa.field(f"tag:{k}", pa.string()) for k in tag_keys]
    fields += [pa.field(f"value:{m}", pa.float64()) for m in metrics]
    fields += [pa.field(f"unscored:{m}", pa.bool_(), nullable=False) for m in metrics]
    fields += [pa.field(f"latency:{s}", pa.float64()) for s in stages]
    fields += list(RANKING_SCHEMA)
    fields += [pa.field(f"cache_hit:{s}", pa.bool_(), nullable=False) for s in stages]
    return pa.schema(fields)


class RunWriter:
    """Writes one run as it completes: :meth:`append` a batch of cases (their outputs and scores) at a
    time, one Parquet row group each, then :meth:`commit` the header. Memory: one batch.

    The table is written under a temporary name (``.<run id>.parquet.<random>.tmp``, locked while this
    writer lives) and renamed to ``<run id>.parquet`` on commit; the header is written last, atomically,
    with the table's sha256 and row count, and LATEST then points at the run. :meth:`abort` (or leaving a
    ``with`` block without committing) removes the table. The columns are fixed when the writer opens: a
    score of an undeclared metric, a tag key or a latency stage not declared is an ``AssertionError`` (a
    programming error, never dropped); a NaN or infinite number is a :class:`NonFiniteValueError`."""

    def __init__(self, folder: Path, manifest_id: str, run_id: str, *, metrics: Sequence[str],
                 tag_keys: Sequence[str], latency_stages: Sequence[str], point_latest: bool = True) -> None:
        for name, value in (("run id", run_id), ("manifest id", manifest_id)):
            if not _RUN_ID.match(value):
                raise ValueError(f"{value!r} is not a valid {name}")
        self._metrics = _unique(metrics, "metrics")
        self._tag_keys = _unique(tag_keys, "tag keys")
        self._stages = _unique(latency_stages, "latency stages")
        self._folder = folder
        self._manifest_id = manifest_id
        self._run_id = run_id
        self._point_latest = point_latest
        self._schema = _schema(self._metrics, self._tag_keys, self._stages)
        self._rows = 0
        self._scores = 0  # scores appended so far: the next one's place in the run's order
        self._done = False
        self.header_path = folder / f"{run_id}.json"
        self.table_path = folder / f"{run_id}{_TABLE_SUFFIX}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._tmp = folder / f".{run_id}{_TABLE_SUFFIX}.{secrets.token_hex(4)}.tmp"
            self._fh: IO[bytes] = open(self._tmp, "xb")  # noqa: SIM115 - closed by commit or abort
        except OSError as exc:
            check_writable(self.header_path)
            raise HarnessError(f"cannot write {self.table_path}: {exc.strerror or exc}") from None
        try:
            self._lock_fd = os.open(self._tmp, os.O_RDONLY)
            _lock(self._lock_fd, wait=True)
            self._sink = _HashingSink(self._fh)
            self._writer: pq.ParquetWriter | None = pq.ParquetWriter(
                self._sink, self._schema, compression="zstd",
                use_dictionary=["case_id", "error_stage", "error_kind", *(f"tag:{k}" for k in self._tag_keys)],
                write_statistics=["case_id", "case"])  # case: its null count (a run saved without cases)
        except BaseException:
            self._fh.close()
            if hasattr(self, "_lock_fd"):
                os.close(self._lock_fd)
            self._tmp.unlink(missing_ok=True)
            raise

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def rows(self) -> int:
        """Cases appended so far."""
        return self._rows

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._done:
            self.abort()

    def _open(self) -> pq.ParquetWriter:
        if self._writer is None or self._done:
            raise RuntimeError(f"the writer of run {self._run_id} is closed")
        return self._writer

    def append(self, cases: Sequence[GoldenCase], outputs: Sequence[CaseOutput], scores: Sequence[Score]) -> None:
        """Write a batch: ``cases`` and ``outputs`` in the same (the run's) order, ``scores`` in any order,
        each of one of these cases. One row group."""
        if len(cases) != len(outputs):
            raise ValueError(f"{len(cases)} cases but {len(outputs)} outputs")
        self._append(cases, outputs, scores)

    def _append(self, cases: Sequence[GoldenCase | None], outputs: Sequence[CaseOutput],
                scores: Sequence[Score]) -> None:
        writer = self._open()
        n = len(outputs)
        ids = [o.case_id for o in outputs]
        index = {cid: i for i, cid in enumerate(ids)}
        if len(index) != n:
            raise ValueError(f"case {next(c for c in ids if ids.count(c) > 1)!r} is twice in one batch")
        for case, cid in zip(cases, ids, strict=True):
            if case is not None and case.id != cid:
                raise ValueError(f"case {case.id!r} is given with the output of case {cid!r}: not the same order")
        values: dict[str, list[float | None]] = {m: [None] * n for m in self._metrics}
        unscored: dict[str, list[bool]] = {m: [False] * n for m in self._metrics}
        seen: set[tuple[int, str]] = set()
        per_case: list[list[dict[str, Any]]] = [[] for _ in range(n)]
        seq: list[list[int]] = [[] for _ in range(n)]
        for k, s in enumerate(scores):
            i = index.get(s.case_id)
            if i is None:
                raise ValueError(f"a score of case {s.case_id!r}, which is not in this batch")
            column = values.get(s.metric)
            if column is None:
                raise AssertionError(f"a score of metric {s.metric!r}, not declared when the writer of run "
                                     f"{self._run_id} opened (declared: {', '.join(self._metrics) or 'none'})")
            if (i, s.metric) in seen:
                raise ValueError(f"two scores of metric {s.metric!r} for case {s.case_id!r}")
            seen.add((i, s.metric))
            if s.value is not None and not math.isfinite(s.value):
                raise NonFiniteValueError(f"case {s.case_id!r}: the score of {s.metric!r} is {s.value}, not a finite "
                                          "number (an unscored case has the value None)")
            column[i] = s.value
            unscored[s.metric][i] = s.value is None
            per_case[i].append(s.model_dump())
            seq[i].append(self._scores + k)
        columns: dict[str, list[Any]] = {
            "case_id": ids,
            "case": [None if c is None else _json(c.model_dump(), f"case {c.id!r}").decode()
                     for c in cases],
            "output": [_json(o.model_dump(), f"the output of case {o.case_id!r}").decode()
                       for o in outputs],
            "scores": [_json(lst, f"the scores of case {cid!r}").decode() for lst, cid in zip(per_case, ids,
                                                                                               strict=True)],
            "error_stage": [None if o.error is None else o.error.stage for o in outputs],
            "error_kind": [None if o.error is None else o.error.kind for o in outputs],
            "score_seq": seq,
        }
        tags: dict[str, list[str | None]] = {k: [None] * n for k in self._tag_keys}
        for i, case in enumerate(cases):
            for key, value in ({} if case is None else case.tags).items():
                if key not in tags:
                    raise AssertionError(f"case {ids[i]!r} has tag {key!r}, not declared when the writer of run "
                                         f"{self._run_id} opened (declared: {', '.join(self._tag_keys) or 'none'})")
                tags[key][i] = value
        latency: dict[str, list[float | None]] = {st: [None] * n for st in self._stages}
        for i, out in enumerate(outputs):
            for stage, seconds in out.latency_s.items():
                if stage not in latency:
                    raise AssertionError(f"case {ids[i]!r} has a latency of stage {stage!r}, not declared when the "
                                         f"writer of run {self._run_id} opened "
                                         f"(declared: {', '.join(self._stages) or 'none'})")
                if not math.isfinite(seconds):
                    raise NonFiniteValueError(f"case {ids[i]!r}: the latency of stage {stage!r} is {seconds}, "
                                              "not a finite number")
                latency[stage][i] = seconds
        columns |= {f"tag:{k}": v for k, v in tags.items()}
        columns |= {f"value:{m}": v for m, v in values.items()}
        columns |= {f"unscored:{m}": v for m, v in unscored.items()}
        columns |= {f"latency:{st}": v for st, v in latency.items()}
        columns |= ranking_lists(cases, outputs)
        # a cache hit of a stage without a declared latency stays in the output's JSON only (no latency to gate)
        columns |= {f"cache_hit:{st}": [bool(o.cache_hits.get(st, False)) for o in outputs] for st in self._stages}
        if n == 0:
            return
        writer.write_table(pa.Table.from_pydict(columns, schema=self._schema), row_group_size=n)
        self._rows += n
        self._scores += len(scores)

    def commit(self, *, created_at: str, manifest: Manifest, manifest_path: str | None,
               environment: Mapping[str, Any], scorers: Sequence[ScorerSpec], aggregates: Aggregates,
               stage_seconds: Mapping[str, float], counts: Mapping[str, int]) -> Path:
        """Close the table, rename it into place and write the header (the run now exists); point LATEST at
        it. The header's path. ``manifest_path`` is stored relative to its project when inside one."""
        return self._commit(created_at=created_at, manifest=manifest,
                            manifest_path=relative_manifest_path(manifest_path), environment=environment,
                            scorers=scorers, aggregates=aggregates, stage_seconds=stage_seconds, counts=counts)

    def _commit(self, *, created_at: str, manifest: Manifest, manifest_path: str | None,
                environment: Mapping[str, Any], scorers: Sequence[ScorerSpec], aggregates: Aggregates,
                stage_seconds: Mapping[str, float], counts: Mapping[str, int]) -> Path:
        writer = self._open()
        head: dict[str, Any] = {
            "format_version": TABLE_FORMAT_VERSION, "run_id": self._run_id, "created_at": created_at,
            "manifest_id": self._manifest_id, "manifest_path": manifest_path, "counts": dict(counts),
            "stage_seconds": dict(stage_seconds), "aggregates": aggregates.model_dump(),
            "manifest": manifest.model_dump(), "environment": dict(environment),
            "scorers": [s.model_dump() for s in scorers],
        }
        _json(head, f"the header of run {self._run_id}")  # every number finite, before anything is renamed
        try:
            writer.close()
            self._writer = None
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            ids = pq.ParquetFile(self._tmp).read(columns=["case_id"])["case_id"]
            if pc.count_distinct(ids).as_py() != self._rows:
                counted = pc.value_counts(ids)
                dup = next(v["values"] for v in counted.to_pylist() if v["counts"] > 1)
                raise ValueError(f"case {dup!r} was appended twice to run {self._run_id}")
            del ids
            head |= {"rows": self._rows, "table": self.table_path.name, "table_sha256": self._sink.hexdigest()}
            os.replace(self._tmp, self.table_path)
            _fsync_dir(self._folder)
            atomic_write_bytes(self.header_path, to_json(head, indent=1))
            if self._point_latest:
                atomic_write_text(self._folder / "LATEST", self._run_id + "\n")
        except BaseException:
            self.abort()
            raise
        self._done = True
        os.close(self._lock_fd)
        return self.header_path

    def abort(self) -> None:
        """Remove the table written so far (nothing of the run is left). A committed run is kept."""
        if self._done:
            return
        self._done = True
        with contextlib.suppress(Exception):
            if self._writer is not None:
                self._writer.close()
        self._writer = None
        with contextlib.suppress(OSError):
            self._fh.close()
        self._tmp.unlink(missing_ok=True)
        if not self.header_path.exists():  # renamed but no header: this writer's, not a stored run's table
            with contextlib.suppress(OSError):
                if os.path.samestat(os.fstat(self._lock_fd), self.table_path.stat()):
                    self.table_path.unlink()
        os.close(self._lock_fd)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _first_seen(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _save(root: Path, run: RunResult, manifest_path: str | None, *, point_latest: bool) -> Path:
    """Write a whole run through :class:`RunWriter`, in row groups of :data:`_SAVE_ROWS` cases."""
    outputs = run.outputs
    if run.cases and [c.id for c in run.cases] != [o.case_id for o in outputs]:
        raise ValueError(f"run {run.run_id}: its cases and outputs are not of the same cases in the same order")
    row_of = {o.case_id: i for i, o in enumerate(outputs)}
    chunks: list[list[Score]] = [[] for _ in range(0, len(outputs), _SAVE_ROWS)]
    for s in run.scores:
        i = row_of.get(s.case_id)
        if i is None:
            raise ValueError(f"run {run.run_id}: a score of case {s.case_id!r}, which has no output")
        chunks[i // _SAVE_ROWS].append(s)
    writer = RunWriter(root / run.manifest_id, run.manifest_id, run.run_id,
                       metrics=_first_seen(s.metric for s in run.scores),
                       tag_keys=_first_seen(k for c in run.cases for k in c.tags),
                       latency_stages=_first_seen(k for o in outputs for k in o.latency_s),
                       point_latest=point_latest)
    with writer:
        for k, chunk in enumerate(chunks):
            start, stop = k * _SAVE_ROWS, (k + 1) * _SAVE_ROWS
            cases: Sequence[GoldenCase | None] = (run.cases[start:stop] if run.cases
                                                  else [None] * len(outputs[start:stop]))
            writer._append(cases, outputs[start:stop], chunk)
        return writer._commit(created_at=run.created_at, manifest=run.manifest, manifest_path=manifest_path,
                              environment=run.environment, scorers=run.scorers, aggregates=run.aggregates,
                              stage_seconds=run.stage_seconds, counts=run.counts)


# --- reading ---------------------------------------------------------------------------------------------


def _read_table_header(path: Path) -> RunTableHeader:
    data, non_finite = _read_json(path)
    return _validated(path, data, RunTableHeader, non_finite)


def _damaged(path: Path, message: str, field: str | None = None) -> InputError:
    return InputError(path, f"damaged run: {message}", field=field, hint=_DAMAGED_HINT)


def _check_table(path: Path, header: RunTableHeader, *, full: bool) -> pq.ParquetFile:
    """The header's table, opened: it exists, is named as the header says, holds ``rows`` rows and the
    columns of a run table; with ``full``, its sha256 is the header's too."""
    expected = path.stem + _TABLE_SUFFIX
    if header.table != expected:
        raise _damaged(path, f"its table is {header.table!r}, expected {expected!r}", "table")
    if header.table_sha256 is None or not _SHA256.match(header.table_sha256):
        raise _damaged(path, "no sha256 of its table", "table_sha256")
    table = path.with_name(expected)
    try:
        if full:
            sha = hashlib.sha256()
            with open(table, "rb") as fh:
                while block := fh.read(1 << 20):
                    sha.update(block)
            if sha.hexdigest() != header.table_sha256:
                raise _damaged(path, f"its table {table.name} does not match the header's sha256 "
                               f"(changed or cut off since the run was written)", "table_sha256")
        pf = pq.ParquetFile(table)
    except FileNotFoundError:
        raise _damaged(path, f"its table {table.name} is missing", "table") from None
    except OSError as exc:
        raise _damaged(path, f"its table {table.name} cannot be read: {exc.strerror or exc}", "table") from None
    except (pa.ArrowException, ValueError) as exc:
        raise _damaged(path, f"its table {table.name} is not a Parquet file ({exc})", "table") from None
    if pf.metadata.num_rows != header.rows:
        raise _damaged(path, f"its table {table.name} has {pf.metadata.num_rows} rows, the header says "
                       f"{header.rows}", "rows")
    schema = pf.schema_arrow
    want = {"case_id": pa.string(), "case": pa.string(), "output": pa.string(), "scores": pa.string(),
            "error_stage": pa.string(), "error_kind": pa.string(), "score_seq": pa.list_(pa.int64())}
    for name in schema.names:
        prefix = name.split(":", 1)[0] + ":" if ":" in name else name
        kind = {"tag:": pa.string(), "value:": pa.float64(), "unscored:": pa.bool_(),
                "latency:": pa.float64()}.get(prefix)
        if kind is not None:
            want.setdefault(name, kind)
    for name, kind in want.items():
        got = schema.field(name).type if name in schema.names else None
        if got is None or not (got == kind or (pa.types.is_list(got) and pa.types.is_list(kind)
                               and got.value_type == kind.value_type)):
            raise _damaged(path, f"its table {table.name} lacks the {kind} column {name!r}", "table")
    return pf


def open_run(path: str | Path, *, project: Path | None = None) -> RunTable:
    """A stored run, to read by columns (:meth:`RunTable.columns`), by case (:meth:`RunTable.take`), by
    batch or whole. A format-4 run's table is checked against its header (sha256, rows) first; a run file
    of an older format is loaded whole and served the same way."""
    path = Path(path)
    data, non_finite = _read_json(path)
    if isinstance(data, dict) and data.get("format_version") == TABLE_FORMAT_VERSION:
        header = _validated(path, data, RunTableHeader, non_finite)
        pf = _check_table(path, header, full=True)
        header = header.model_copy(
            update={"manifest_path": _resolved_manifest_path(header.manifest_path, path, project)})
        return _ParquetRun(path, header, pf)
    run = _validated(path, data, RunResult, non_finite)
    run = run.model_copy(update={"manifest_path": _resolved_manifest_path(run.manifest_path, path, project)})
    return _ResultRun(path, run)


class RunTable:
    """One stored run, read without holding it whole (except :meth:`materialize`). ``header``: the run's
    header (:class:`RunTableHeader`: ids, manifest, aggregates, counts, scorers, environment, rows)."""

    path: Path
    header: RunTableHeader

    def __len__(self) -> int:
        return self.header.rows

    def columns(self, metrics: Sequence[str] | None = None, tags: bool | Sequence[str] = True,
                latency: bool | Sequence[str] = False) -> RunColumns:
        """The run as per-case columns (:class:`~harness.columns.RunColumns`), reading only these:
        ``metrics`` (None: every metric of the run; one the run lacks is all NaN and never unscored), the
        tags (True: all; or these keys), the latency stages (False: none; True: all; or these). Its
        ``fetch`` is :meth:`take`."""
        raise NotImplementedError

    def take(self, case_ids: Sequence[str]) -> tuple[list[GoldenCase], list[CaseOutput], list[Score]]:
        """These cases' golden cases, outputs and scores, in the order asked; an unknown id is left out."""
        raise NotImplementedError

    def iter_batches(self, rows: int = 10_000) -> Iterator[tuple[list[GoldenCase], list[CaseOutput], list[Score]]]:
        """The run in batches of at most ``rows`` cases, in its case order (scores by case)."""
        raise NotImplementedError

    def iter_outputs(self, rows: int = 10_000) -> Iterator[list[CaseOutput]]:
        """The run's outputs alone in batches of at most ``rows``, in its case order, checked as
        :meth:`iter_batches` checks them (a format-4 table decodes only its ``output`` column: its cases and
        scores, two thirds of the decoding, are not read)."""
        for _, outputs, _ in self.iter_batches(rows):
            yield outputs

    def materialize(self) -> RunResult:
        """The whole run in memory, as :func:`load_run` returns it."""
        raise NotImplementedError

    def _columns(self, metrics: Sequence[str] | None, tags: bool | Sequence[str],
                 latency: bool | Sequence[str], all_metrics: Sequence[str], all_tags: Sequence[str],
                 all_stages: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
        wanted_metrics = list(all_metrics) if metrics is None else _unique_list(metrics)
        wanted_tags = list(all_tags) if tags is True else [] if tags is False else _unique_list(tags)
        wanted_stages = list(all_stages) if latency is True else [] if latency is False else _unique_list(latency)
        return wanted_metrics, wanted_tags, wanted_stages

    def _run_columns(self, case_ids: pa.Array, values: dict[str, np.ndarray], unscored: dict[str, np.ndarray],
                     tags: dict[str, pa.Array], error_stage: pa.Array, error_kind: pa.Array,
                     latency: dict[str, np.ndarray], no_case: np.ndarray | None,
                     cache_hits: dict[str, np.ndarray] | None = None,
                     ranking_batches: RankingBatches | None = None) -> RunColumns:
        h = self.header
        extra: dict[str, Any] = {} if no_case is None else {"no_case": no_case}
        if cache_hits:
            extra["cache_hits"] = cache_hits
        return RunColumns(run_id=h.run_id, manifest_id=h.manifest_id, manifest=h.manifest, aggregates=h.aggregates,
                          counts=dict(h.counts), scorers=h.scorers, case_ids=case_ids, values=values,
                          unscored=unscored, tags=tags, error_stage=error_stage, error_kind=error_kind,
                          latency=latency, fetch=self.take, extra=extra, batches=self.iter_batches,
                          ranking_batches=ranking_batches)


def _unique_list(names: Sequence[str]) -> list[str]:
    if isinstance(names, str):
        raise TypeError(f"a sequence of names, not the string {names!r}")
    return _first_seen(names)


def _float_column(path: Path, column: pa.ChunkedArray, name: str) -> np.ndarray:
    """A float64 column as numpy, null as NaN; a NaN or infinite stored value is a damaged run. (numpy,
    not ``pc.fill_null``, which imports pandas on its first call: seconds.)"""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    out: np.ndarray = np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)
    bad = ~np.isfinite(out)
    if array.null_count:
        bad &= ~np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if bad.any():
        raise _damaged(path, "a number that is not finite in its table", f"{name}[{int(np.argmax(bad))}]")
    return out


def _bool_column(column: pa.ChunkedArray) -> np.ndarray:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    out = np.asarray(array.to_numpy(zero_copy_only=False), dtype=object if array.null_count else bool)
    return out.astype(bool) if array.null_count == 0 else np.array([bool(v) for v in out], dtype=bool)


class _ParquetRun(RunTable):
    def __init__(self, path: Path, header: RunTableHeader, pf: pq.ParquetFile) -> None:
        self.path = path
        self.header = header
        self._pf = pf
        names = pf.schema_arrow.names
        self._metrics = [n[len("value:"):] for n in names if n.startswith("value:")]
        self._tags = [n[len("tag:"):] for n in names if n.startswith("tag:")]
        self._stages = [n[len("latency:"):] for n in names if n.startswith("latency:")]
        # tables written before these columns existed lack them: the diff then reads records instead
        self._hit_stages = {n[len("cache_hit:"):] for n in names if n.startswith("cache_hit:")}
        self._ranked = all(c in names for c in RANKING_COLUMNS)
        self._ids: pa.Array | None = None
        self._starts: np.ndarray | None = None

    @property
    def table_path(self) -> Path:
        return self.path.with_name(self.header.table or "")

    def columns(self, metrics: Sequence[str] | None = None, tags: bool | Sequence[str] = True,
                latency: bool | Sequence[str] = False) -> RunColumns:
        ms, ts, ss = self._columns(metrics, tags, latency, self._metrics, self._tags, self._stages)
        read = ["case_id", "error_stage", "error_kind"]
        read += [f"value:{m}" for m in ms if m in self._metrics] + [f"unscored:{m}" for m in ms if m in self._metrics]
        read += [f"tag:{k}" for k in ts if k in self._tags] + [f"latency:{s}" for s in ss if s in self._stages]
        hit_stages = [s for s in ss if s in self._stages and s in self._hit_stages]
        read += [f"cache_hit:{s}" for s in hit_stages]
        try:
            t = self._pf.read(columns=read)
        except (OSError, pa.ArrowException) as exc:
            raise _damaged(self.path, f"its table {self.table_path.name} cannot be read ({exc})", "table") from None
        n = t.num_rows
        if n != self.header.rows:
            raise _damaged(self.path, f"its table has {n} rows, the header says {self.header.rows}", "rows")
        values: dict[str, np.ndarray] = {}
        unscored: dict[str, np.ndarray] = {}
        for m in ms:
            if m in self._metrics:
                values[m] = _float_column(self.path, t[f"value:{m}"], f"value:{m}")
                unscored[m] = _bool_column(t[f"unscored:{m}"])
            else:
                values[m] = np.full(n, np.nan)
                unscored[m] = np.zeros(n, dtype=bool)
        tag_cols = {k: t[f"tag:{k}"].combine_chunks() if k in self._tags else pa.nulls(n, pa.string()) for k in ts}
        lat = {s: _float_column(self.path, t[f"latency:{s}"], f"latency:{s}") if s in self._stages
               else np.full(n, np.nan) for s in ss}
        hits = {s: _bool_column(t[f"cache_hit:{s}"]) for s in hit_stages}
        return self._run_columns(t["case_id"].combine_chunks(), values, unscored, tag_cols,
                                 t["error_stage"].combine_chunks(), t["error_kind"].combine_chunks(), lat,
                                 self._no_case(), hits, self.ranking_batches if self._ranked else None)

    def ranking_batches(self, rows: int = 65_536) -> Iterator[pa.RecordBatch]:
        """The table's ranking columns (:data:`~harness.columns.RANKING_SCHEMA`) in row order, ``rows`` at a
        time; a score that is not finite or lists of unequal lengths are a damaged run."""
        first = 0
        try:
            for batch in self._pf.iter_batches(batch_size=rows, columns=list(RANKING_COLUMNS)):
                scores, grades = batch.column("rank_scores"), batch.column("rank_grades")
                flat = np.asarray(scores.flatten().to_numpy(zero_copy_only=False), dtype=np.float64)
                if not np.isfinite(flat).all():
                    lengths = np.asarray(pc.list_value_length(scores).to_numpy(zero_copy_only=False))
                    at = int(np.searchsorted(np.cumsum(lengths), int(np.argmax(~np.isfinite(flat))), side="right"))
                    raise _damaged(self.path, "a ranking score that is not finite in its table",
                                   f"rank_scores[{first + at}]")
                if not pc.equal(pc.list_value_length(scores), pc.list_value_length(grades)).to_numpy(
                        zero_copy_only=False).all():
                    raise _damaged(self.path, "rank_scores and rank_grades of unequal lengths in its table",
                                   f"rank_grades[{first}:{first + batch.num_rows}]")
                first += batch.num_rows
                yield batch
        except (OSError, pa.ArrowException) as exc:
            raise _damaged(self.path, f"its table {self.table_path.name} cannot be read ({exc})", "table") from None

    def _no_case(self) -> np.ndarray | None:
        """Bool per row: the row has no golden case (a saved run without cases); None when every row has one.
        Told by the footer's null counts of ``case``, else by reading that column."""
        md = self._pf.metadata
        at = self._pf.schema_arrow.get_field_index("case")
        nulls = 0
        for g in range(md.num_row_groups):
            stats = md.row_group(g).column(at).statistics
            if stats is None or not stats.has_null_count:
                nulls = -1
                break
            nulls += stats.null_count
        if nulls == 0:
            return None
        column = self._pf.read(columns=["case"])["case"]
        mask: np.ndarray = pc.is_null(column).to_numpy(zero_copy_only=False).astype(bool)
        return mask if mask.any() else None

    def _index(self) -> tuple[pa.Array, np.ndarray]:
        if self._ids is None or self._starts is None:
            self._ids = self._pf.read(columns=["case_id"])["case_id"].combine_chunks()
            md = self._pf.metadata
            sizes = [md.row_group(g).num_rows for g in range(md.num_row_groups)]
            self._starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        return self._ids, self._starts

    def take(self, case_ids: Sequence[str]) -> tuple[list[GoldenCase], list[CaseOutput], list[Score]]:
        wanted = _unique_list(case_ids)
        if not wanted:
            return [], [], []
        ids, starts = self._index()
        rows = np.flatnonzero(pc.is_in(ids, value_set=pa.array(wanted, pa.string())).to_numpy(zero_copy_only=False))
        found: dict[str, tuple[GoldenCase | None, CaseOutput, list[Score]]] = {}
        groups = np.searchsorted(starts, rows, side="right") - 1
        for g in np.unique(groups):
            local = rows[groups == g] - starts[g]
            batch = self._pf.read_row_group(int(g), columns=list(_RECORD_COLUMNS)).take(pa.array(local))
            for rec in self._records(batch, int(starts[g]), local):
                found[rec[1].case_id] = rec
        picked = [found[c] for c in wanted if c in found]
        return ([c for c, _, _ in picked if c is not None], [o for _, o, _ in picked],
                [s for _, _, ss in picked for s in ss])

    def _records(self, batch: pa.Table | pa.RecordBatch, first: int, rows: np.ndarray | None = None
                 ) -> list[tuple[GoldenCase | None, CaseOutput, list[Score]]]:
        """Parse a batch of the table's record columns; ``first``/``rows``: where its rows are in the table. A
        batch read without the ``case`` or ``scores`` column (:meth:`iter_outputs`) gives no case and no scores."""
        where = (lambda i: first + i) if rows is None else (lambda i: first + int(rows[i]))
        present = set(batch.schema.names)
        cols = {name: batch.column(name) for name in _RECORD_COLUMNS if name in present}
        for name in (n for n in _JSON_COLUMNS if n in cols):  # a NaN or infinity in the JSON: found by the text,
            # confirmed by parsing
            suspect = pc.match_substring_regex(cols[name], "NaN|Infinity")
            for at in (i for i, hit in enumerate(suspect.to_pylist()) if hit) if pc.any(suspect).as_py() else ():
                numbers = _Numbers()
                parsed = json.loads(cols[name][at].as_py(), parse_float=numbers.number,
                                    parse_constant=numbers.constant)
                bad = _non_finite(parsed) if numbers.non_finite else None
                if bad is not None:
                    field = f"rows.{where(at)}.{name}" + (f".{bad[0]}" if bad[0] else "")
                    raise _damaged(self.path, f"{bad[1]} is not a finite number", field)
        out: list[tuple[GoldenCase | None, CaseOutput, list[Score]]] = []
        ids = cols["case_id"].to_pylist()
        absent: list[Any] = [None] * len(ids)
        for i, (cid, case, output, scores) in enumerate(zip(
                ids, cols["case"].to_pylist() if "case" in cols else absent, cols["output"].to_pylist(),
                cols["scores"].to_pylist() if "scores" in cols else absent, strict=True)):
            name = "case"
            try:
                golden = None if case is None else GoldenCase.model_validate_json(case)
                name = "output"
                out_rec = CaseOutput.model_validate_json(output)
                name = "scores"
                score_list = [] if scores is None else _SCORES.validate_json(scores)
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(x) for x in err["loc"])
                raise _damaged(self.path, err["msg"], f"rows.{where(i)}.{name}" + (f".{loc}" if loc else "")) from None
            if out_rec.case_id != cid or (golden is not None and golden.id != cid) or any(
                    s.case_id != cid for s in score_list):
                raise _damaged(self.path, f"the records of row {where(i)} are not all of case {cid!r}",
                               f"rows.{where(i)}")
            out.append((golden, out_rec, score_list))
        return out

    def _record_batches(self, rows: int, columns: Sequence[str] = _RECORD_COLUMNS
                        ) -> Iterator[list[tuple[GoldenCase | None, CaseOutput, list[Score]]]]:
        if rows < 1:
            raise ValueError("rows must be at least 1")
        first = 0
        for batch in self._pf.iter_batches(batch_size=rows, columns=list(columns)):
            yield self._records(batch, first)
            first += batch.num_rows

    def iter_outputs(self, rows: int = 10_000) -> Iterator[list[CaseOutput]]:
        for records in self._record_batches(rows, ("case_id", "output")):  # the other record columns unread
            yield [o for _, o, _ in records]

    def _ordered_scores(self, placed: list[tuple[int, list[Score], list[int]]]) -> list[Score]:
        """The run's scores in the order they were written (``score_seq``: each score's place in it)."""
        total = sum(len(ss) for _, ss, _ in placed)
        out: list[Score | None] = [None] * total
        for row, ss, seq in placed:
            if len(seq) != len(ss):
                raise _damaged(self.path, f"row {row} has {len(ss)} scores but {len(seq)} places for them",
                               f"rows.{row}.score_seq")
            for s, k in zip(ss, seq, strict=True):
                if not 0 <= k < total or out[k] is not None:
                    raise _damaged(self.path, f"row {row} places a score at {k}, taken or out of 0..{total - 1}",
                                   f"rows.{row}.score_seq")
                out[k] = s
        return [s for s in out if s is not None]

    def iter_batches(self, rows: int = 10_000) -> Iterator[tuple[list[GoldenCase], list[CaseOutput], list[Score]]]:
        for records in self._record_batches(rows):
            yield ([c for c, _, _ in records if c is not None], [o for _, o, _ in records],
                   [s for _, _, ss in records for s in ss])

    def materialize(self) -> RunResult:
        h = self.header
        cases: list[GoldenCase | None] = []
        outputs: list[CaseOutput] = []
        placed: list[tuple[int, list[Score], list[int]]] = []
        first = 0
        for batch in self._pf.iter_batches(batch_size=_SAVE_ROWS, columns=[*_RECORD_COLUMNS, "score_seq"]):
            seqs = batch.column("score_seq").to_pylist()
            for i, ((c, o, ss), seq) in enumerate(zip(self._records(batch, first), seqs, strict=True)):
                cases.append(c)
                outputs.append(o)
                placed.append((first + i, ss, seq))
            first += batch.num_rows
        absent = sum(1 for c in cases if c is None)
        if absent not in (0, len(cases)):
            row = next(i for i, c in enumerate(cases) if c is None)
            raise _damaged(self.path, "some rows have a golden case and some do not", f"rows.{row}.case")
        scores = self._ordered_scores(placed)
        try:
            return RunResult(format_version=RUN_FORMAT_VERSION, run_id=h.run_id, created_at=h.created_at,
                             manifest_id=h.manifest_id, manifest=h.manifest, manifest_path=h.manifest_path,
                             environment=h.environment, scorers=h.scorers,
                             cases=tuple(c for c in cases if c is not None), outputs=tuple(outputs),
                             scores=tuple(scores), aggregates=h.aggregates, stage_seconds=h.stage_seconds,
                             counts=h.counts)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise _damaged(self.path, err["msg"], ".".join(str(x) for x in err["loc"]) or None) from None




class _ResultRun(RunTable):
    """A run file of an older format, loaded whole, served as a :class:`RunTable`."""

    def __init__(self, path: Path, run: RunResult) -> None:
        self.path = path
        self._run = run
        self.header = RunTableHeader(format_version=run.format_version, run_id=run.run_id, created_at=run.created_at,
                                     manifest_id=run.manifest_id, manifest_path=run.manifest_path,
                                     counts=run.counts, stage_seconds=run.stage_seconds, aggregates=run.aggregates,
                                     manifest=run.manifest, environment=run.environment, scorers=run.scorers,
                                     rows=len(run.outputs))
        self._cases = {c.id: c for c in run.cases}
        self._scores: dict[str, list[Score]] = {}
        for s in run.scores:
            self._scores.setdefault(s.case_id, []).append(s)
        self._outputs = {o.case_id: o for o in run.outputs}

    def columns(self, metrics: Sequence[str] | None = None, tags: bool | Sequence[str] = True,
                latency: bool | Sequence[str] = False) -> RunColumns:
        run = self._run
        ms, ts, ss = self._columns(metrics, tags, latency, _first_seen(s.metric for s in run.scores),
                                   _first_seen(k for c in run.cases for k in c.tags),
                                   _first_seen(k for o in run.outputs for k in o.latency_s))
        n = len(run.outputs)
        row = {o.case_id: i for i, o in enumerate(run.outputs)}
        values = {m: np.full(n, np.nan) for m in ms}
        unscored = {m: np.zeros(n, dtype=bool) for m in ms}
        for s in run.scores:
            if s.metric in values and s.case_id in row:
                if s.value is None:
                    unscored[s.metric][row[s.case_id]] = True
                else:
                    values[s.metric][row[s.case_id]] = s.value
        cases = [self._cases.get(o.case_id) for o in run.outputs]
        tag_cols = {k: pa.array([None if c is None else c.tags.get(k) for c in cases], pa.string()) for k in ts}
        lat = {st: np.array([o.latency_s.get(st, np.nan) for o in run.outputs], dtype=np.float64) for st in ss}
        return self._run_columns(
            pa.array([o.case_id for o in run.outputs], pa.string()), values, unscored, tag_cols,
            pa.array([None if o.error is None else o.error.stage for o in run.outputs], pa.string()),
            pa.array([None if o.error is None else o.error.kind for o in run.outputs], pa.string()), lat,
            None if all(c is not None for c in cases) else np.array([c is None for c in cases], dtype=bool),
            {st: np.array([bool(o.cache_hits.get(st, False)) for o in run.outputs], dtype=bool) for st in ss},
            self.ranking_batches)

    def ranking_batches(self, rows: int = 10_000) -> Iterator[pa.RecordBatch]:
        """The run's ranking columns (:data:`~harness.columns.RANKING_SCHEMA`), made from its records."""
        outputs = self._run.outputs
        for start in range(0, len(outputs), rows):
            part = outputs[start:start + rows]
            yield ranking_batch([self._cases.get(o.case_id) for o in part], part)

    def take(self, case_ids: Sequence[str]) -> tuple[list[GoldenCase], list[CaseOutput], list[Score]]:
        wanted = [c for c in _unique_list(case_ids) if c in self._outputs]
        return ([self._cases[c] for c in wanted if c in self._cases], [self._outputs[c] for c in wanted],
                [s for c in wanted for s in self._scores.get(c, [])])

    def iter_batches(self, rows: int = 10_000) -> Iterator[tuple[list[GoldenCase], list[CaseOutput], list[Score]]]:
        if rows < 1:
            raise ValueError("rows must be at least 1")
        outputs = self._run.outputs
        for start in range(0, len(outputs), rows):
            yield self.take([o.case_id for o in outputs[start:start + rows]])

    def materialize(self) -> RunResult:
        return self._run


# --- migration and orphans -------------------------------------------------------------------------------


def migrate_runs(root: Path) -> list[Path]:
    """Rewrite every run file of a store (``<home>/runs``) of an older format (1, 2, 3) as format 4, each
    loading as it did (same fields, same score order; the stored manifest path as it was); LATEST is left
    as it is. Returns the migrated runs' header paths. A damaged or misplaced file is left as it is (listing
    shows why); a format-4 run is skipped."""
    migrated: list[Path] = []
    if not root.is_dir():
        return migrated
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.glob("*.json")):
            if path.name.startswith(".") or not path.is_file():
                continue
            try:
                data, non_finite = _read_json(path)
                if not isinstance(data, dict) or data.get("format_version") == TABLE_FORMAT_VERSION:
                    continue
                run = _validated(path, data, RunResult, non_finite)
            except InputError:
                continue
            if run.run_id != path.stem or run.manifest_id != folder.name:
                continue
            _save(root, run, run.manifest_path, point_latest=False)
            migrated.append(path)
    return migrated


def remove_orphan_tables(root: Path) -> list[Path]:
    """Delete the tables no header names, left by killed runs (``<run id>.parquet`` without
    ``<run id>.json``, and the temporary tables of writers that are gone); a table a live writer holds is
    left alone (its lock). Returns the deleted paths."""
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        for table in sorted(folder.glob(f"*{_TABLE_SUFFIX}")) + sorted(folder.glob(f".*{_TABLE_SUFFIX}.*.tmp")):
            if table.name.startswith("."):
                run_id = table.name[1:].split(_TABLE_SUFFIX, 1)[0]
            else:
                run_id = table.name[: -len(_TABLE_SUFFIX)]
            header = folder / f"{run_id}.json"
            if not table.name.startswith(".") and header.exists():
                continue
            try:
                fd = os.open(table, os.O_RDONLY)
            except OSError:
                continue
            try:
                if not _lock(fd, wait=False):
                    continue  # a writer is still at it
                if not table.name.startswith(".") and header.exists():
                    continue  # committed meanwhile
                with contextlib.suppress(FileNotFoundError):
                    table.unlink()
                    removed.append(table)
            finally:
                os.close(fd)
    return removed
