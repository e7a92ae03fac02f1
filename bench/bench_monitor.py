"""`harness ingest` and a full 28-day `harness monitor` pass over a synthetic 1,000,000-record log.

The log is :mod:`harness.monitor.synthetic`'s seeded stream (daily and weekly seasonality, no drift),
written as JSON Lines with a locked project for it (:func:`~harness.monitor.synthetic.write_project`:
golden set, corpus, a ``[monitor]`` table) in a temporary folder. Each command runs as its own
subprocess of this venv's ``harness``, one at a time, and reports its wall time and peak RSS (the
child's own ``ru_maxrss`` from ``os.wait4``, which counts the descendants it waited for). A command that
does not exist yet (``harness <cmd> --help`` fails) is reported as "not available", not an error.

Run from the project root: ``make bench monitor``, or ``python -m bench.bench_monitor``.
``MONITOR_RECORDS`` (default 1,000,000) sets the log's size and ``MONITOR_DAYS`` (default 28) its length;
``MONITOR_DIR`` keeps the project (with the log in ``logs/`` and the report in ``reports/``) and the
commands' output in that folder instead of a temporary one.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.measure import OFFLINE, run_measured

ROOT = Path(__file__).resolve().parents[1]


def _harness() -> Path:
    exe = Path(sys.executable).parent / "harness"
    return exe if exe.exists() else ROOT / ".venv" / "bin" / "harness"


def _run(argv: list[str], cwd: Path, log: Path) -> dict[str, Any]:
    """Run ``argv`` to completion; its exit code, wall time and peak RSS (MB), stdout/stderr in ``log``.*"""
    return run_measured(argv, cwd, log, {**os.environ, **OFFLINE})


def _available(harness: Path, command: str, cwd: Path) -> tuple[bool, str]:
    probe = subprocess.run([str(harness), command, "--help"], cwd=cwd, capture_output=True, text=True,
                           env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    last = (probe.stderr.strip().splitlines() or [""])[-1]
    return probe.returncode == 0, probe.stdout if probe.returncode == 0 else last


def _report_summary(path: Path) -> dict[str, Any]:
    """A few numbers from the monitor's JSON report (whatever of them it has)."""
    try:
        report = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        return {"unreadable": f"{path}: {exc}"}
    if not isinstance(report, dict):
        return {"type": type(report).__name__}
    summary: dict[str, Any] = {"keys": sorted(report)[:20]}
    for key in ("alarms", "slo", "contracts", "samples", "notes", "coverage"):
        if isinstance(report.get(key), list):
            summary[f"n_{key}"] = len(report[key])
    for key in ("verdict", "embedding_sample", "records"):
        if key in report and not isinstance(report[key], dict | list):
            summary[key] = report[key]
    return summary


def bench_monitor(records: int | None = None, days: int | None = None, seed: int = 0,
                  folder: Path | None = None) -> dict[str, Any]:
    """Generate the log and project, then time ``harness ingest`` and ``harness monitor`` over it."""
    from harness.manifest import load_manifest
    from harness.monitor import synthetic

    records = int(os.environ.get("MONITOR_RECORDS", 1_000_000)) if records is None else records
    days = int(os.environ.get("MONITOR_DAYS", 28)) if days is None else days
    if folder is None and os.environ.get("MONITOR_DIR"):
        folder = Path(os.environ["MONITOR_DIR"])
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        work = Path(folder) if folder is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        return _bench(work, records, days, seed, synthetic, load_manifest)


def _bench(work: Path, records: int, days: int, seed: int, synthetic: Any, load_manifest: Any) -> dict[str, Any]:
    spec = synthetic.StreamSpec(seed=seed, days=days, records_per_day=records / days)
    manifest = synthetic.write_project(spec, work / "project")
    spec = replace(spec, manifest_id=load_manifest(manifest).manifest.id)
    log = manifest.parent / "logs" / "synthetic.jsonl"  # inside the project, as ingest expects
    t0 = time.perf_counter()
    synthetic.write_jsonl(spec, log)
    gen_s = time.perf_counter() - t0
    with log.open("rb") as fh:
        n = sum(1 for _ in fh)
    result: dict[str, Any] = {
        "records": n, "days": days, "log_mb": round(log.stat().st_size / 2**20, 1),
        "generate_s": round(gen_s, 2), "generate_records_per_s": round(n / gen_s),
        "cores": os.cpu_count(),
    }
    harness = _harness()
    project = manifest.parent
    ok, help_text = _available(harness, "ingest", project)
    if ok:
        argv = [str(harness), "ingest"]
        if "--manifest" in help_text:
            argv += ["--manifest", str(manifest)]
        if "--json" in help_text:
            argv.append("--json")
        result["ingest"] = _run([*argv, str(log)], project, work / "ingest")
        result["ingest"]["records_per_s"] = round(n / max(result["ingest"]["wall_s"], 1e-9))
        with contextlib.suppress(OSError, ValueError):  # the command's own report (counts), if JSON
            report = json.loads(Path(result["ingest"]["stdout"]).read_text("utf-8"))
            for entry in report.get("files", []) if isinstance(report, dict) else []:
                if isinstance(entry, dict) and isinstance(entry.get("days"), list):
                    entry["days"] = f"{len(entry['days'])} days"
            result["ingest"]["report"] = report
    else:
        result["ingest"] = {"skipped": f"ingest: not available ({help_text})"}
    ok, help_text = _available(harness, "monitor", project)
    if ok and "skipped" not in result["ingest"]:
        out = project / "reports" / "monitor.json"
        argv = [str(harness), "monitor", "--manifest", str(manifest), "--since", spec.day(0).isoformat(),
                "--until", spec.day(days - 1).isoformat(), "--format", "json", "--out", str(out)]
        result["monitor"] = _run(argv, project, work / "monitor")
        result["monitor"]["exit_meaning"] = {0: "no alarm", 1: "alarm"}.get(result["monitor"]["exit"], "error")
        if out.exists():
            result["monitor"]["report"] = _report_summary(out)
    else:
        why = help_text if not ok else "ingest did not run"
        result["monitor"] = {"skipped": f"monitor: not available ({why})"}
    _print_table(result)
    return result


def _print_table(result: dict[str, Any]) -> None:
    rows = [("generate JSONL", f"{result['generate_s']:.1f}", "-",
             f"{result['generate_records_per_s']:,} rec/s, {result['log_mb']} MB")]
    for step in ("ingest", "monitor"):
        r = result[step]
        if "skipped" in r:
            rows.append((step, "-", "-", r["skipped"]))
        else:
            note = f"exit {r['exit']}" + (f" ({r['exit_meaning']})" if "exit_meaning" in r else "")
            rows.append((step, f"{r['wall_s']:.1f}", f"{r['peak_rss_mb']:.0f}", note))
    print(f"monitor bench: {result['records']:,} records over {result['days']} days, {result['cores']} cores",
          file=sys.stderr)
    print(f"{'step':<16}{'wall s':>9}{'peak MB':>10}  note", file=sys.stderr)
    for step, wall, rss, note in rows:
        print(f"{step:<16}{wall:>9}{rss:>10}  {note}", file=sys.stderr)


if __name__ == "__main__":
    print(json.dumps(bench_monitor(), indent=2))
