"""The results store: one versioned JSON file per run, under the manifest id that produced it.

Layout: ``<home>/runs/<manifest id>/<run id>.json`` and ``<home>/runs/<manifest id>/LATEST``.
Files are written atomically; a run id is sortable by time.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

from harness.errors import HarnessError, InputError
from harness.storage import atomic_write_text
from harness.types import RunResult

RUN_FORMAT_VERSION = 1


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


class RunStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, manifest_id: str, run_id: str) -> Path:
        return self.root / manifest_id / f"{run_id}.json"

    def save(self, run: RunResult) -> Path:
        path = self.path_for(run.manifest_id, run.run_id)
        atomic_write_text(path, run.model_dump_json(indent=1))
        atomic_write_text(path.parent / "LATEST", run.run_id + "\n")
        return path

    def latest(self, manifest_id: str) -> RunResult | None:
        pointer = self.root / manifest_id / "LATEST"
        if not pointer.is_file():
            return None
        return load_run(self.path_for(manifest_id, pointer.read_text().strip()))

    def find(self, run_id: str) -> Path:
        matches = sorted(self.root.glob(f"*/{run_id}*.json"))
        if len(matches) != 1:
            what = "no run" if not matches else f"{len(matches)} runs"
            raise HarnessError(f"{what} matching id {run_id!r} under {self.root}")
        return matches[0]


def load_run(path: str | Path) -> RunResult:
    path = Path(path)
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise InputError(path, "no such run file") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"malformed run file: {exc.msg}", line=exc.lineno) from None
    version = data.get("format_version")
    if version != RUN_FORMAT_VERSION:
        raise InputError(path, f"run format version {version!r} is not supported (expected {RUN_FORMAT_VERSION})",
                         field="format_version")
    return RunResult.model_validate(data)
