"""pytest plugin: golden cases as test items, per-case thresholds, and the release gate as one item.

A thin front end over the same core as the CLI (DESIGN principle 9): options come from
:mod:`harness.options`, the run is :func:`harness.pipeline.execute`, the gate is :func:`harness.gates.gate`
against :func:`harness.baseline.resolve_base`, exactly as ``harness gate``.

Activate it with ``--harness-manifest harness.toml`` or the ini key ``harness_manifest`` (relative to
the ini file). Without either it does nothing: no collection, no run, and the fixtures skip.

What it collects (``harness.toml::<case id>``, then ``harness.toml::gate``):

- one item per golden case, marked ``harness`` and ``<tag>_<value>`` for each tag (sanitized to an
  identifier, registered, so ``-m topic_storage`` and ``--strict-markers`` work). A case fails when
  its output carries an error or a threshold breaks (syntax in :mod:`harness.options`), with each
  broken threshold's value, limit and the score's explanation. A thresholded metric that is unscored
  for the case (``None``: no relevance judgments, no facts, ...) is not a failure by default: the
  threshold is skipped, and the case is skipped when nothing else was checked
  (``--harness-unscored=fail`` makes it a failure). A case with no thresholds passes unless it has an
  error.
- one gate item applying the manifest's ``[[gates]]`` rules to this session's run and its diff
  against the baseline, exactly as ``harness gate`` (the same p-values: the diff's one family); it
  fails listing the failed checks (a drop rule with no baseline fails unless
  ``--harness-allow-no-baseline``; errored cases fail unless an ``error_rate`` rule allows them), and
  skips (with the reason) when the manifest has no rules or every rule skipped.

One job per module, and this package is the plugin the ``pytest11`` entry point names (its hooks and
fixtures are re-exported here):

- :mod:`harness.pytest.options`: flags and ini keys, their values, the configuration checks
  (mistakes are one usage error before anything runs), which arguments collect the manifest;
- :mod:`harness.pytest.state`: the session state in ``config.stash`` and the pipeline run once per
  test run (lazily; under pytest-xdist one worker runs it under a file lock, the others load it);
- :mod:`harness.pytest.items`: the manifest as a collector, the case and gate items, tag markers;
- :mod:`harness.pytest.fixtures`: ``harness_manifest``, ``harness_run``, ``harness_case``
  (:class:`HarnessCase`) and the parametrization over golden cases.
"""

from __future__ import annotations

from harness.pytest.fixtures import HarnessCase, harness_case, harness_manifest, harness_run, pytest_generate_tests
from harness.pytest.items import marker_name, pytest_collect_file, pytest_runtest_makereport
from harness.pytest.options import pytest_addoption, pytest_configure
from harness.pytest.state import pytest_report_header, pytest_terminal_summary

__all__ = [
    "HarnessCase",
    "harness_case",
    "harness_manifest",
    "harness_run",
    "marker_name",
    "pytest_addoption",
    "pytest_collect_file",
    "pytest_configure",
    "pytest_generate_tests",
    "pytest_report_header",
    "pytest_runtest_makereport",
    "pytest_terminal_summary",
]
