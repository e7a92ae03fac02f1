"""rag-harness: a manifest-pinned evaluation harness for retrieval-augmented LLM systems.

The public API, for notebooks and scripts as well as the CLI::

    import harness

    loaded = harness.load_manifest("harness.toml")      # parsed, validated; pins checked at run time
    head = harness.run("harness.toml").run               # RunReport(run: RunResult, path)
    app = harness.evaluate_outputs("cases.jsonl", "app-answers.jsonl").run   # another system's outputs, scored
    base = harness.load_run(".harness/runs/<manifest id>/<run id>.json")
    diff = harness.compare(base, head)                   # Diff: metric deltas, flips, shifts
    verdict = harness.gate(loaded.manifest.gates, head, base)   # Verdict: passed, results
    cases = harness.cases_frame(head)                    # pandas: one row per case; cases_table: Arrow
    deltas = harness.deltas_frame(diff)                  # one row per metric x segment (harness.frames)

Every name loads on first use (``__getattr__``), so ``import harness`` costs nothing until a name is
used: the CLI's start-up and the pytest plugin import only what they need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.baseline import rollback_to
    from harness.diff import Diff, DiffSettings, MetricDelta, compare
    from harness.errors import HarnessError, InputError, IntegrityError, ManifestError, MissingDependencyError
    from harness.evaluate import evaluate_outputs
    from harness.frames import (
        cases_frame,
        cases_table,
        deltas_frame,
        deltas_table,
        flips_frame,
        flips_table,
        metrics_frame,
        metrics_table,
    )
    from harness.gates import GateResult, Verdict, check_gate_config, gate
    from harness.generate.base import GENERATORS
    from harness.golden import load_corpus, load_golden
    from harness.instructions.registry import INSTRUCTIONS
    from harness.manifest import LoadedManifest, load_manifest
    from harness.monitor.ingest import ingest
    from harness.monitor.model import MonitorReport
    from harness.monitor.project import monitor_inputs
    from harness.monitor.run import run_monitor
    from harness.pipeline import RunReport, execute
    from harness.pipeline import run_manifest as run
    from harness.runs import load_run
    from harness.scorers import SCORERS
    from harness.shadow.canary import CanaryRequest, canary
    from harness.shadow.incident import IncidentSnapshot, incident_snapshot
    from harness.shadow.logs import LogQuery
    from harness.shadow.model import CanaryReport, ReplayReport
    from harness.shadow.replay import ReplayRequest, replay
    from harness.types import (
        Aggregates,
        Artifact,
        CaseError,
        CaseOutput,
        CorpusDoc,
        GateRule,
        GoldenCase,
        Manifest,
        MetricSummary,
        RankedDoc,
        RunResult,
        Score,
        ScorerSpec,
    )

__version__ = "0.1.0"

# public name -> (module, attribute in it)
_HOMES: dict[str, tuple[str, str]] = {
    **{n: ("harness.types", n) for n in (
        "Aggregates", "Artifact", "CaseError", "CaseOutput", "CorpusDoc", "GateRule", "GoldenCase", "Manifest",
        "MetricSummary", "RankedDoc", "RunResult", "Score", "ScorerSpec")},
    **{n: ("harness.errors", n) for n in (
        "HarnessError", "InputError", "IntegrityError", "ManifestError", "MissingDependencyError")},
    **{n: ("harness.frames", n) for n in (
        "cases_frame", "cases_table", "metrics_frame", "metrics_table", "deltas_frame", "deltas_table", "flips_frame",
        "flips_table")},
    "load_manifest": ("harness.manifest", "load_manifest"),
    "LoadedManifest": ("harness.manifest", "LoadedManifest"),
    "load_golden": ("harness.golden", "load_golden"),
    "load_corpus": ("harness.golden", "load_corpus"),
    "run": ("harness.pipeline", "run_manifest"),
    "execute": ("harness.pipeline", "execute"),
    "evaluate_outputs": ("harness.evaluate", "evaluate_outputs"),
    "RunReport": ("harness.pipeline", "RunReport"),
    "load_run": ("harness.runs", "load_run"),
    "compare": ("harness.diff", "compare"),
    "Diff": ("harness.diff", "Diff"),
    "DiffSettings": ("harness.diff", "DiffSettings"),
    "MetricDelta": ("harness.diff", "MetricDelta"),
    "gate": ("harness.gates", "gate"),
    "check_gate_config": ("harness.gates", "check_gate_config"),
    "Verdict": ("harness.gates", "Verdict"),
    "GateResult": ("harness.gates", "GateResult"),
    "SCORERS": ("harness.scorers", "SCORERS"),
    "GENERATORS": ("harness.generate.base", "GENERATORS"),
    "INSTRUCTIONS": ("harness.instructions.registry", "INSTRUCTIONS"),
    # production: logs in, drift watched, changes shipped (replay, canary, rollback, incident)
    "ingest": ("harness.monitor.ingest", "ingest"),
    "monitor_inputs": ("harness.monitor.project", "monitor_inputs"),
    "run_monitor": ("harness.monitor.run", "run_monitor"),
    "MonitorReport": ("harness.monitor.model", "MonitorReport"),
    "ReplayRequest": ("harness.shadow.replay", "ReplayRequest"),
    "replay": ("harness.shadow.replay", "replay"),
    "ReplayReport": ("harness.shadow.model", "ReplayReport"),
    "CanaryRequest": ("harness.shadow.canary", "CanaryRequest"),
    "canary": ("harness.shadow.canary", "canary"),
    "CanaryReport": ("harness.shadow.model", "CanaryReport"),
    "incident_snapshot": ("harness.shadow.incident", "incident_snapshot"),
    "IncidentSnapshot": ("harness.shadow.incident", "IncidentSnapshot"),
    "rollback_to": ("harness.baseline", "rollback_to"),
    "LogQuery": ("harness.shadow.logs", "LogQuery"),
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    module, attr = _HOMES[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])


__all__ = [
    "GENERATORS",
    "INSTRUCTIONS",
    "SCORERS",
    "Aggregates",
    "Artifact",
    "CanaryReport",
    "CanaryRequest",
    "CaseError",
    "CaseOutput",
    "CorpusDoc",
    "Diff",
    "DiffSettings",
    "GateResult",
    "GateRule",
    "GoldenCase",
    "HarnessError",
    "IncidentSnapshot",
    "InputError",
    "IntegrityError",
    "LoadedManifest",
    "LogQuery",
    "Manifest",
    "ManifestError",
    "MetricDelta",
    "MetricSummary",
    "MissingDependencyError",
    "MonitorReport",
    "RankedDoc",
    "ReplayReport",
    "ReplayRequest",
    "RunReport",
    "RunResult",
    "Score",
    "ScorerSpec",
    "Verdict",
    "__version__",
    "canary",
    "cases_frame",
    "cases_table",
    "check_gate_config",
    "compare",
    "deltas_frame",
    "deltas_table",
    "evaluate_outputs",
    "execute",
    "flips_frame",
    "flips_table",
    "gate",
    "incident_snapshot",
    "ingest",
    "load_corpus",
    "load_golden",
    "load_manifest",
    "load_run",
    "metrics_frame",
    "metrics_table",
    "monitor_inputs",
    "replay",
    "rollback_to",
    "run",
    "run_monitor",
]
