"""Scorers: per-case scores first, aggregates second (DESIGN principle 2).

A scorer turns (case, output) pairs into :class:`~harness.types.Score` values, one per case and
metric, and declares the metrics it produces with their direction. Scorers register in
:data:`SCORERS` and are rebuilt from ``{"name", "args"}`` specs stored in runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from harness.metrics import MetricInfo
from harness.registry import Registry
from harness.types import CaseOutput, GoldenCase, Score


class Scorer(Protocol):
    spec: dict[str, Any]

    def metrics(self) -> list[MetricInfo]: ...

    def score(self, cases: Sequence[GoldenCase], outputs: Sequence[CaseOutput]) -> list[Score]: ...


SCORERS: Registry[Scorer] = Registry("scorer", builtins_module="harness.scorers.builtin")

__all__ = ["SCORERS", "Scorer"]
