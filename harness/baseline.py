"""Which run to compare against, promoting a run as the baseline, and rolling back to it.

BASE resolution, in order: an explicit run id or run file; the manifest's ``baseline`` field (a run
id); the promoted baseline (``<home>/baseline.json``); the latest run of the manifest as it was at an
earlier git commit. HEAD is the latest run of the current manifest unless given.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.manifest import LoadedManifest, Manifest
from harness.runs import RunStore, load_run
from harness.storage import Layout, atomic_write_json
from harness.types import RunResult


def load_run_ref(ref: str, layout: Layout) -> RunResult:
    path = Path(ref)
    if path.suffix == ".json" and path.is_file():
        return load_run(path)
    return load_run(RunStore(layout.runs).find(ref))


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def previous_commit_run(loaded: LoadedManifest, layout: Layout) -> RunResult | None:
    """Latest run of the manifest as committed earlier (newest commit first) whose id differs from now."""
    import tomllib

    import yaml

    top = _git(["rev-parse", "--show-toplevel"], loaded.path.parent)
    if top is None:
        return None
    cwd = Path(top.strip()).resolve()
    rel = loaded.path.resolve().relative_to(cwd).as_posix()  # git reads pathspecs from cwd: run at the top
    commits = (_git(["log", "--format=%H", "-n", "50", "--", rel], cwd) or "").split()
    store = RunStore(layout.runs)
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
        run = store.latest(mid)
        if run is not None:
            return run
    return None


def promoted(layout: Layout) -> dict[str, Any] | None:
    if not layout.baseline_file.is_file():
        return None
    return json.loads(layout.baseline_file.read_text("utf-8"))


def resolve_base(loaded: LoadedManifest, layout: Layout, explicit: str | None = None) -> tuple[RunResult | None, str]:
    """(base run or None, how it was found)."""
    if explicit:
        return load_run_ref(explicit, layout), f"given: {explicit}"
    if loaded.manifest.baseline:
        return load_run_ref(loaded.manifest.baseline, layout), f"manifest baseline {loaded.manifest.baseline}"
    record = promoted(layout)
    if record is not None:
        path = Path(record["path"])
        promoted_run = load_run(path) if path.is_file() else load_run_ref(record["run_id"], layout)
        return promoted_run, f"promoted baseline {record['run_id']}"
    earlier = previous_commit_run(loaded, layout)
    if earlier is not None:
        return earlier, f"run of the manifest at an earlier commit ({earlier.manifest_id[:12]})"
    return None, "no baseline (promote one with `harness baseline promote`)"


def resolve_head(loaded: LoadedManifest, layout: Layout, explicit: str | None = None) -> RunResult:
    if explicit:
        return load_run_ref(explicit, layout)
    run = RunStore(layout.runs).latest(loaded.id)
    if run is None:
        raise HarnessError(f"no run of the current manifest ({loaded.id[:12]}) yet", hint="run `harness run` first")
    return run


def resolve_pair(loaded: LoadedManifest, layout: Layout, base: str | None = None,
                 head: str | None = None) -> tuple[RunResult, RunResult, str]:
    """(base, head, how base was found) for commands that need both; no baseline is an error."""
    base_run, how = resolve_base(loaded, layout, base)
    if base_run is None:
        raise HarnessError(f"nothing to compare with: {how}")
    return base_run, resolve_head(loaded, layout, head), how


def promote(run: RunResult, layout: Layout) -> Path:
    path = RunStore(layout.runs).path_for(run.manifest_id, run.run_id)
    record = {"run_id": run.run_id, "manifest_id": run.manifest_id, "path": str(path),
              "promoted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "artifacts": run.manifest.get("artifacts", {})}
    history = layout.home / "baselines.jsonl"
    history.parent.mkdir(parents=True, exist_ok=True)
    with open(history, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
    atomic_write_json(layout.baseline_file, record, indent=2)
    return layout.baseline_file


def rollback(loaded: LoadedManifest, layout: Layout, run: RunResult) -> list[str]:
    """Put the baseline run's pinned artifacts back: files from the snapshot store, pins into the manifest.

    Returns the roles restored. Content that was never snapshotted (models by uri) is restored by pin
    only; verify tells if it no longer matches.
    """
    from harness.manifest import Artifact, load_manifest, resolve_content
    from harness.snapshots import blob_path
    from harness.storage import atomic_write_text

    # The baseline's relative paths are relative to its own manifest's folder: re-base them onto ours.
    run_dir = Path(run.manifest_path).parent if run.manifest_path else loaded.base_dir
    base_arts: dict[str, Any] = {}
    for role, data in run.manifest.get("artifacts", {}).items():
        path = data.get("path")
        if path and not Path(path).is_absolute():
            data = {**data, "path": Path(os.path.relpath(run_dir / path, loaded.base_dir)).as_posix()}
        base_arts[role] = data
    current = loaded.manifest.artifacts
    restored: list[str] = []
    plans: list[tuple[Path, Path]] = []
    for role, data in base_arts.items():
        art = Artifact.model_validate(data)
        if current.get(role) == art:
            continue
        if art.path is not None:
            src = blob_path(layout, art)
            if src is None:
                raise HarnessError(f"cannot roll back '{role}': no snapshot of {art.path} ({art.sha256}) in the store")
            plans.append((src, resolve_content(art, loaded.base_dir)))
        restored.append(role)
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
    text = loaded.path.read_text("utf-8")
    if loaded.path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
        data["artifacts"] = base_arts
        atomic_write_text(loaded.path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    else:
        import tomlkit

        doc = tomlkit.parse(text)
        table = tomlkit.table()
        for role, data in base_arts.items():
            sub = tomlkit.table()
            for k, v in data.items():
                if v in (None, "", {}) and k not in ("kind",):
                    continue
                sub[k] = v
            table[role] = sub
        doc["artifacts"] = table
        atomic_write_text(loaded.path, tomlkit.dumps(doc))
    load_manifest(loaded.path)
    return restored
