"""Which run to compare against, promoting a run as the baseline, and rolling back to it.

BASE resolution, in order: an explicit run id or run file; the manifest's ``baseline`` field (a run
id); the promoted baseline (``<home>/baseline.json``); the latest run of the manifest as it was at an
earlier git commit. HEAD is the latest run of the current manifest unless given.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import Field, ValidationError

from harness.columns import RunColumns
from harness.errors import HarnessError, InputError
from harness.manifest import LoadedManifest
from harness.runs import RunStore, RunTable, load_run, open_run
from harness.storage import Layout, atomic_write_json, project_root
from harness.types import Frozen, Manifest, RunResult

if TYPE_CHECKING:
    from harness.shadow.model import RolledBack


R = TypeVar("R", RunResult, "RunResult | RunColumns", RunTable)
Reader = Callable[[Path, "Path | None"], R]


def _load(path: Path, project: Path | None) -> RunResult:
    return load_run(path, project=project)


def read_columns(path: Path, project: Path | None) -> RunResult | RunColumns:
    """A stored run for diff and gate: a format-4 run as columns (:meth:`harness.runs.RunTable.columns`:
    the per-case ids, values, tags, errors and latency, nothing per case materialized; its records are
    read by id or streamed when asked for), a run file of an older format loaded whole as before."""
    table = open_run(path, project=project)
    if table.header.table is None:
        return table.materialize()
    return table.columns(metrics=None, tags=True, latency=True)


def _open(path: Path, project: Path | None) -> RunTable:
    return open_run(path, project=project)


def _manifest_id(run: RunResult | RunColumns | RunTable) -> str:
    return run.header.manifest_id if isinstance(run, RunTable) else run.manifest_id


def load_run_ref(ref: str, layout: Layout) -> RunResult:
    """A run by id (or id prefix) in this project's store, or by run file. A run file path that no longer
    exists (a moved or cloned project's record) is looked up by its run id; a path relative to the
    project's home (how baselines are recorded) resolves there."""
    return _run_ref(ref, layout, _load)


def run_ref_columns(ref: str, layout: Layout) -> RunResult | RunColumns:
    """:func:`load_run_ref`, read by :func:`read_columns`."""
    return _run_ref(ref, layout, read_columns)


def run_ref_table(ref: str, layout: Layout) -> RunTable:
    """:func:`load_run_ref`, opened (:func:`harness.runs.open_run`: a format-4 run read by columns on demand)."""
    return _run_ref(ref, layout, _open)


def _run_ref(ref: str, layout: Layout, read: Reader[R]) -> R:
    path = Path(ref)
    if path.suffix == ".json":
        for candidate in (path, layout.home / path):
            if candidate.is_file():
                return read(candidate, _project_of(candidate, layout))
        ref = path.stem
    return read(RunStore(layout.runs).find(ref), layout.project)


def _project_of(run_file: Path, layout: Layout) -> Path | None:
    """The current project for run files inside its own store; None (the file's own project) otherwise."""
    try:
        run_file.resolve().relative_to(layout.home.resolve())
    except ValueError:
        return None
    return layout.project


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def previous_commit_run(loaded: LoadedManifest, layout: Layout) -> RunResult | None:
    """Latest run of the manifest as committed earlier (newest commit first) whose id differs from now."""
    return _previous_commit_run(loaded, layout, _load)


def _previous_commit_run(loaded: LoadedManifest, layout: Layout, read: Reader[R]) -> R | None:
    import tomllib

    import yaml

    top = _git(["rev-parse", "--show-toplevel"], loaded.path.parent)
    if top is None:
        return None
    cwd = Path(top.strip()).resolve()
    rel = loaded.path.resolve().relative_to(cwd).as_posix()  # git reads pathspecs from cwd: run at the top
    commits = (_git(["log", "--format=%H", "-n", "50", "--", rel], cwd) or "").split()
    store = RunStore(layout.runs, layout.project)
    for commit in commits:
        text = _git(["show", f"{commit}:{rel}"], cwd)
        if text is None:
            continue
        try:
            data = yaml.safe_load(text) if loaded.path.suffix in (".yaml", ".yml") else tomllib.loads(text)
            mid = Manifest.model_validate(data).id
        except Exception:
            continue
        if mid == loaded.id:
            continue
        run_id = store.latest_id(mid)
        if run_id is not None:
            return read(store.path_for(mid, run_id), store.project)
    return None


class BaselineRecord(Frozen):
    """What ``harness baseline promote`` records (``.harness/baseline.json``; every promotion is also
    appended to ``baselines.jsonl``): the run, its manifest, where its file was (relative to the home) and
    the artifacts it pinned."""

    run_id: str
    manifest_id: str | None = None
    path: str | None = None
    promoted_at: str | None = None
    artifacts: dict[str, Any] = Field(default_factory=dict)


def promoted(layout: Layout) -> BaselineRecord | None:
    """The promoted baseline's record, or None; a damaged record is one error naming the file and field."""
    path = layout.baseline_file
    if not path.is_file():
        return None
    hint = "promote the baseline again with `harness baseline promote RUN`"
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise InputError(path, f"damaged baseline record ({type(exc).__name__})", hint=hint) from None
    try:
        return BaselineRecord.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or None
        raise InputError(path, f"damaged baseline record: {err['msg']}", field=field, hint=hint) from None


def load_promoted(record: BaselineRecord, layout: Layout) -> RunResult:
    """The run a baseline record names: by run id in this project's store first (a moved or cloned
    project's record may still name the old folder), else by the recorded path (relative to the home,
    or absolute in records from before)."""
    return _promoted_run(record, layout, _load)


def _promoted_run(record: BaselineRecord, layout: Layout, read: Reader[R]) -> R:
    try:
        return read(RunStore(layout.runs).find(record.run_id), layout.project)
    except InputError:
        raise
    except HarnessError:
        pass
    if record.path:
        return _run_ref(record.path, layout, read)
    raise HarnessError(f"the promoted baseline {record.run_id} is not in {layout.runs}",
                       hint="promote a run of this project with `harness baseline promote RUN`")


def resolve_base(loaded: LoadedManifest, layout: Layout, explicit: str | None = None) -> tuple[RunResult | None, str]:
    """(base run or None, how it was found)."""
    return _resolve_base(loaded, layout, explicit, _load)


def resolve_base_columns(loaded: LoadedManifest, layout: Layout, explicit: str | None = None
                         ) -> tuple[RunResult | RunColumns | None, str]:
    """:func:`resolve_base`, the run read by :func:`read_columns` (what ``harness gate`` compares with)."""
    return _resolve_base(loaded, layout, explicit, read_columns)


def resolve_base_table(loaded: LoadedManifest, layout: Layout, explicit: str | None = None
                       ) -> tuple[RunTable | None, str]:
    """:func:`resolve_base`, the run opened (:func:`harness.runs.open_run`; what ``harness report`` reads)."""
    return _resolve_base(loaded, layout, explicit, _open)


def _resolve_base(loaded: LoadedManifest, layout: Layout, explicit: str | None, read: Reader[R]
                  ) -> tuple[R | None, str]:
    if explicit:
        return _run_ref(explicit, layout, read), f"given: {explicit}"
    if loaded.manifest.baseline:
        return _run_ref(loaded.manifest.baseline, layout, read), f"manifest baseline {loaded.manifest.baseline}"
    record = promoted(layout)
    if record is not None:
        return _promoted_run(record, layout, read), f"promoted baseline {record.run_id}"
    earlier = _previous_commit_run(loaded, layout, read)
    if earlier is not None:
        return earlier, f"run of the manifest at an earlier commit ({_manifest_id(earlier)[:12]})"
    return None, "no baseline (promote one with `harness baseline promote`)"


def resolve_head(loaded: LoadedManifest, layout: Layout, explicit: str | None = None) -> RunResult:
    return _resolve_head(loaded, layout, explicit, _load)


def resolve_head_table(loaded: LoadedManifest, layout: Layout, explicit: str | None = None) -> RunTable:
    """:func:`resolve_head`, the run opened (:func:`harness.runs.open_run`)."""
    return _resolve_head(loaded, layout, explicit, _open)


def _resolve_head(loaded: LoadedManifest, layout: Layout, explicit: str | None, read: Reader[R]) -> R:
    if explicit:
        return _run_ref(explicit, layout, read)
    store = RunStore(layout.runs, layout.project)
    run_id = store.latest_id(loaded.id)
    if run_id is None:
        raise HarnessError(f"no run of the current manifest ({loaded.id[:12]}) yet", hint="run `harness run` first")
    return read(store.path_for(loaded.id, run_id), store.project)


def resolve_pair(loaded: LoadedManifest, layout: Layout, base: str | None = None,
                 head: str | None = None) -> tuple[RunResult, RunResult, str]:
    """(base, head, how base was found) for commands that need both; no baseline is an error."""
    return _resolve_pair(loaded, layout, base, head, _load)


def resolve_pair_columns(loaded: LoadedManifest, layout: Layout, base: str | None = None, head: str | None = None
                         ) -> tuple[RunResult | RunColumns, RunResult | RunColumns, str]:
    """:func:`resolve_pair`, both runs read by :func:`read_columns` (what ``harness diff`` compares)."""
    return _resolve_pair(loaded, layout, base, head, read_columns)


def _resolve_pair(loaded: LoadedManifest, layout: Layout, base: str | None, head: str | None, read: Reader[R]
                  ) -> tuple[R, R, str]:
    base_run, how = _resolve_base(loaded, layout, base, read)
    if base_run is None:
        raise HarnessError(f"nothing to compare with: {how}")
    return base_run, _resolve_head(loaded, layout, head, read), how


def promote(run: RunResult, layout: Layout) -> Path:
    """Record ``run`` as the baseline. The record names the run file relative to the home, so it survives
    the project being moved, copied or cloned."""
    path = RunStore(layout.runs).path_for(run.manifest_id, run.run_id)
    try:
        rel = path.resolve().relative_to(layout.home.resolve()).as_posix()
    except ValueError:
        rel = str(path)
    record = BaselineRecord(run_id=run.run_id, manifest_id=run.manifest_id, path=rel,
                            promoted_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            artifacts=run.manifest.model_dump(mode="json")["artifacts"]).model_dump(mode="json")
    history = layout.home / "baselines.jsonl"
    history.parent.mkdir(parents=True, exist_ok=True)
    with open(history, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
    atomic_write_json(layout.baseline_file, record, indent=2)
    return layout.baseline_file


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _manifest_position(manifest_path: str | None, root: Path, current: Path) -> Path:
    """Where the run's manifest sits relative to its project's root, applied to this project.

    Runs record it relative to the root; older runs recorded an absolute path, which is used if it is
    inside this project, else re-rooted: the folder it names if it still exists (a clone's original),
    else the longest tail of it that names a file here (a moved project), else the current manifest's
    place."""
    if not manifest_path:
        return current.relative_to(root)
    recorded = Path(manifest_path)
    if not recorded.is_absolute():
        return recorded
    if _inside(recorded, root):
        return recorded.resolve().relative_to(root.resolve())
    if recorded.is_file():
        with contextlib.suppress(ValueError):
            return recorded.resolve().relative_to(project_root(recorded))
    parts = recorded.parts[1:]
    for i in range(len(parts)):
        tail = Path(*parts[i:])
        if (root / tail).is_file():
            return tail
    return current.relative_to(root)


def _snapshot_pin(src: Path, params: dict[str, Any]) -> str:
    """The pin of a snapshot's content, computed as the manifest computes a path artifact's."""
    from harness.hashing import sha256_parts, sha256_path

    digest = sha256_path(src)
    return digest if not params else sha256_parts(digest, json.dumps(params, sort_keys=True))


def _stored(data: dict[str, Any]) -> dict[str, Any]:
    """An artifact's fields as a manifest spells them: unset ones (None, "", {}) left out, ``kind`` kept."""
    return {k: v for k, v in data.items() if k == "kind" or v not in (None, "", {})}


def _toml_value(value: Any, like: Any) -> Any:
    """``value`` for tomlkit, written as ``like`` was: a table that was inline stays inline (nested too)."""
    import tomlkit
    from tomlkit.items import InlineTable

    if isinstance(value, dict) and isinstance(like, InlineTable | None):
        table = tomlkit.inline_table()
        for k, v in value.items():
            table[k] = _toml_value(v, None)
        return table
    return value


def _plain(value: Any) -> Any:
    unwrap = getattr(value, "unwrap", None)
    return unwrap() if callable(unwrap) else value


def _plain_yaml(value: Any) -> Any:
    """A ruamel.yaml round-trip value as plain Python (CommentedMap/Seq and scalar string types)."""
    if isinstance(value, dict):
        return {str(k): _plain_yaml(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_yaml(v) for v in value]
    return str(value) if isinstance(value, str) else value


def _restore_artifacts(arts: Any, base_arts: dict[str, dict[str, Any]], restored: list[str],
                       plain: Any, value: Any, new_entry: Any) -> None:
    """Edit a round-trip ``artifacts`` mapping (tomlkit or ruamel.yaml) in place to the baseline's: roles the
    baseline had not are removed, each restored role's changed values set, and nothing else touched, so the
    file's comments, order and layout stay. ``plain`` reads a value as plain Python; ``value(v, like)`` makes
    the value to write for ``v`` in the style of the one it replaces; ``new_entry(fields)`` a whole artifact."""
    for role in [r for r in list(arts) if r not in base_arts]:
        del arts[role]  # the baseline had no such artifact
    for role in restored:
        want = _stored(base_arts[role])
        if role not in arts:
            arts[role] = new_entry(want)
            continue
        entry = arts[role]
        for k in [k for k in list(entry) if k not in want and plain(entry[k]) not in (None, "", {})]:
            del entry[k]
        for k, v in want.items():
            if k not in entry or plain(entry[k]) != v:
                entry[k] = value(v, entry.get(k))


def _toml_rolled_back(text: str, base_arts: dict[str, dict[str, Any]], restored: list[str]) -> str:
    """The manifest's text with only the rolled-back artifacts' changed values edited in place (tomlkit),
    so its comments, order and inline tables are kept, as ``harness lock`` keeps them."""
    import tomlkit

    doc = tomlkit.parse(text)
    if "artifacts" not in doc:
        doc["artifacts"] = tomlkit.table()

    def new_entry(fields: dict[str, Any]) -> Any:  # a [artifacts.<role>] table
        table = tomlkit.table()
        for k, v in fields.items():
            table[k] = _toml_value(v, None)
        return table

    _restore_artifacts(doc["artifacts"], base_arts, restored, _plain, _toml_value, new_entry)
    return tomlkit.dumps(doc)


def _yaml_rolled_back(text: str, base_arts: dict[str, dict[str, Any]], restored: list[str]) -> str:
    """The YAML manifest's text with only the rolled-back artifacts' changed values edited (ruamel.yaml's
    round trip, as ``harness lock`` edits it), so its comments, order and quoting are kept."""
    from harness.manifest import yaml_round_trip

    data, dump = yaml_round_trip(text)
    if data.get("artifacts") is None:
        data["artifacts"] = {}
    _restore_artifacts(data["artifacts"], base_arts, restored, _plain_yaml, lambda v, like: v, lambda fields: fields)
    return dump(data)


def rollback(loaded: LoadedManifest, layout: Layout, run: RunResult) -> list[str]:
    """Put the baseline run's pinned artifacts back (:func:`rollback_to`); returns the roles restored."""
    return [r.role for r in rollback_to(loaded, layout, run.manifest, run.manifest_path)]


def rollback_to(loaded: LoadedManifest, layout: Layout, target: Manifest, target_path: str | None
                ) -> list[RolledBack]:
    """Put a baseline manifest's pinned artifacts back into ``loaded``'s manifest: files from the snapshot
    store (unless the project's file already holds the pinned content), pins into the manifest.

    ``target_path`` is where the baseline's manifest sits (relative to the project's root, as runs record
    it, or absolute), so its relative artifact paths are re-based onto ours. Returns what changed, per role.
    Content that was never snapshotted (models by uri) is restored by pin only; verify tells if it no
    longer matches. Everything is planned and checked first (each snapshot against its pin, each
    destination inside the project), then written; nothing is written outside the project, wherever the
    baseline's run was made (a moved, copied or cloned project refers to its own files).
    """
    from harness.hashing import project_root as confinement_root
    from harness.manifest import load_manifest, resolve_content
    from harness.shadow.model import RolledBack
    from harness.snapshots import blob_path
    from harness.storage import atomic_write_text

    root = layout.project or project_root(loaded.path)
    bound = confinement_root(loaded.base_dir)  # where artifact paths may lead: the git work tree, else root
    current_manifest = loaded.path.resolve()
    # The baseline's relative paths are relative to its own manifest's folder: re-base them onto ours.
    run_dir = root.resolve() / _manifest_position(target_path, root, current_manifest).parent
    base_arts = dict(target.artifacts)
    for role, art in base_arts.items():
        if art.path and not Path(art.path).is_absolute():
            rebased = Path(os.path.relpath(run_dir / art.path, loaded.base_dir)).as_posix()
            base_arts[role] = art.model_copy(update={"path": rebased})
    current = loaded.manifest.artifacts
    restored: list[str] = []
    changes: list[RolledBack] = []
    plans: list[tuple[Path, Path]] = []
    for role, art in base_arts.items():
        if current.get(role) == art:
            continue
        now = current.get(role)
        restored_file = None
        if art.path is not None:
            dst = resolve_content(art, loaded.base_dir)
            if not (_inside(dst, root) or _inside(dst, bound)):
                raise HarnessError(f"cannot roll back '{role}': its file {art.path} lies outside the project "
                                   f"{bound}; nothing was changed",
                                   hint="restore that file by hand, or roll back to a run made in this project")
            if not (dst.exists() and art.sha256 is not None and _snapshot_pin(dst, art.params) == art.sha256):
                src = blob_path(layout, art)
                if src is None:
                    raise HarnessError(f"cannot roll back '{role}': no snapshot of {art.path} ({art.sha256}) in "
                                       "the store; nothing was changed",
                                       hint="a manifest's files are snapshotted when it runs (harness run, "
                                       "harness replay)")
                if _snapshot_pin(src, art.params) != art.sha256:
                    raise HarnessError(f"cannot roll back '{role}': the snapshot {src} does not match its pin "
                                       f"{art.sha256}; nothing was changed",
                                       hint="the store was altered; restore the file by hand")
                plans.append((src, dst))
                restored_file = os.path.relpath(dst, root.resolve())
        restored.append(role)
        changes.append(RolledBack(role=role, kind=art.kind, before_version=now.version if now else None,
                                  after_version=art.version, before_sha256=now.sha256 if now else None,
                                  after_sha256=art.sha256, restored_file=restored_file))
    for role, now in current.items():
        if role not in base_arts:  # the baseline had no such artifact: the rollback removes it from the manifest
            changes.append(RolledBack(role=role, kind=now.kind, before_version=now.version,
                                      before_sha256=now.sha256, removed=True))
    if not _inside(current_manifest, root):
        raise HarnessError(f"cannot roll back: the manifest {current_manifest} lies outside the project {root}")
    for src, dst in plans:
        tmp = dst.with_name(dst.name + ".rollback-tmp")
        if src.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(src, tmp)
            if dst.exists():
                shutil.rmtree(dst)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tmp)
        tmp.replace(dst)
    base_data = {role: art.model_dump(mode="json") for role, art in base_arts.items()}
    text = loaded.path.read_text("utf-8-sig")
    rolled_back = _yaml_rolled_back if loaded.path.suffix in (".yaml", ".yml") else _toml_rolled_back
    atomic_write_text(loaded.path, rolled_back(text, base_data, restored))
    load_manifest(loaded.path)
    return changes
