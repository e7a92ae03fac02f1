"""What the benchmarks share: run one command to completion and measure it."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_measured(argv: list[str], cwd: Path, log: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """Run ``argv`` in ``cwd`` with ``env`` to completion: its exit code, wall time, peak RSS (MB) and CPU
    seconds (of the process and its children, from ``wait4``); stdout and stderr kept beside ``log``."""
    out, err = log.with_suffix(".stdout"), log.with_suffix(".stderr")
    with out.open("wb") as fo, err.open("wb") as fe:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=fo, stderr=fe, env=dict(env))
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen so it does not wait
    tail = err.read_text("utf-8", "replace").strip().splitlines()[-3:]
    return {"exit": proc.returncode, "wall_s": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "stderr_tail": tail, "stdout": str(out)}
