"""rag-harness: a manifest-pinned evaluation harness for retrieval-augmented LLM systems.

The public API is re-exported here; heavy dependencies load lazily on first use.
"""

from __future__ import annotations

from harness.errors import HarnessError, InputError, IntegrityError, ManifestError
from harness.types import (
    Aggregates,
    CaseOutput,
    CorpusDoc,
    GoldenCase,
    MetricSummary,
    RankedDoc,
    RunResult,
    Score,
)

__version__ = "0.1.0"

__all__ = [
    "Aggregates",
    "CaseOutput",
    "CorpusDoc",
    "GoldenCase",
    "HarnessError",
    "InputError",
    "IntegrityError",
    "ManifestError",
    "MetricSummary",
    "RankedDoc",
    "RunResult",
    "Score",
    "__version__",
]
