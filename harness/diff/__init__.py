"""What changed between two runs, by how much, whether it is noise, and why.

One comparison for every reader: :func:`compare` builds the :class:`Diff` (see
:mod:`harness.diff.compute`); the CLI, the gate (:func:`harness.gates.gate`), the reports and the
pytest plugin read it.

Modules: ``records`` (the typed records), ``align`` (which cases pair up), ``artifacts`` (artifact
changes), ``metrics`` (paired statistics, one corrected family), ``flips`` (per-case flips), ``shift``
(score distribution and calibration shift), ``compute`` (puts them together).
"""

from harness.diff.compute import compare
from harness.diff.records import (
    ArtifactChange,
    CalibrationShift,
    CaseFlip,
    Diff,
    DiffSettings,
    MetricDelta,
    ScoreShift,
    diff_json,
)

__all__ = [
    "ArtifactChange",
    "CalibrationShift",
    "CaseFlip",
    "Diff",
    "DiffSettings",
    "MetricDelta",
    "ScoreShift",
    "compare",
    "diff_json",
]

