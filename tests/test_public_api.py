"""The public API a notebook user meets: ``import harness`` is cheap, every exported name resolves and is
typed for a type checker, load -> run -> compare -> gate works through it alone, and a user's script
using it passes ``mypy --strict``."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import harness


def test_import_harness_loads_nothing_heavy() -> None:
    code = ("import sys, harness; heavy = [m for m in ('pydantic', 'click', 'numpy', 'harness.types', "
            "'harness.pipeline') if m in sys.modules]; print(heavy); assert not heavy")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_exported_name_resolves() -> None:
    for name in harness.__all__:
        assert getattr(harness, name) is not None, name
    assert set(harness.__all__) == set(harness._HOMES) | {"__version__"}  # the literal list cannot drift
    assert set(harness.__all__) <= set(dir(harness))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = harness.nope


def test_load_run_compare_gate_through_the_api(project: Path) -> None:
    loaded = harness.load_manifest(project)
    report = harness.run(project)
    head = report.run
    assert isinstance(head, harness.RunResult) and head.manifest_id == loaded.id
    assert harness.load_run(report.path).run_id == head.run_id

    diff = harness.compare(head, head)
    assert isinstance(diff, harness.Diff)
    assert diff.metrics and not any(d.significant for d in diff.metrics)

    drop = harness.GateRule(metric="ndcg@10", max_drop=0.05)
    floor = harness.GateRule(metric="ndcg@10", min=0.0)
    assert harness.gate([drop, floor], head, head).passed
    # no baseline: the drop rule cannot judge, so the gate fails closed (the floor still applies)
    verdict = harness.gate([drop, floor], head, None)
    assert not verdict.passed
    assert [r.status for r in verdict.results if r.rule == floor.label] == ["pass"]
    assert "ndcg@10" in harness.SCORERS.build("retrieval", {"metrics": ["ndcg@10"]}).metrics()[0].name


def test_every_public_name_is_typed_for_a_type_checker() -> None:
    """A type checker sees the names ``__getattr__`` serves through the ``if TYPE_CHECKING:`` imports; a name
    missing there would be ``Any`` to it (mypy types a module's unknown attributes by ``__getattr__``)."""
    tree = ast.parse(Path(harness.__file__).read_text("utf-8"))
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    typed: dict[str, tuple[str | None, str]] = {}
    for node in ast.walk(block):
        if isinstance(node, ast.ImportFrom):
            typed |= {(a.asname or a.name): (node.module, a.name) for a in node.names}
    assert typed == harness._HOMES


# A notebook user's script: the README's example, a typed helper, and misuses a type checker must catch.
USER_HELPERS = """
def regressed(diff: harness.Diff) -> list[str]:
    return [d.metric for d in diff.metrics if d.direction == "regressed" and d.significant]


def failed_rules(verdict: harness.Verdict) -> list[str]:
    return [r.rule for r in verdict.failed]


reveal_type(harness.run)
reveal_type(head.aggregates.overall["ndcg@10"].mean)
"""
MISUSES = """
import harness

run: harness.RunResult = harness.load_run("r.json")
n: int = harness.compare(run, run)
harness.gate("ndcg@10", run, None)
harness.cases_table(harness.compare(run, run))
"""


@pytest.mark.slow
def test_a_user_script_passes_mypy_strict_and_misuse_is_caught(tmp_path: Path) -> None:
    """mypy --strict on the README's example as a script: it passes, the names are real types (not Any), and
    misuses are errors. harness is read as an installed package is (its own errors are not the user's);
    the ML libraries behind the pipeline are skipped only to keep this fast: no public type names them."""
    from mypy import api

    from tests.test_readme_example import python_api_blocks

    (tmp_path / "user.py").write_text("\n".join(python_api_blocks()) + USER_HELPERS, "utf-8")
    (tmp_path / "misuse.py").write_text(MISUSES, "utf-8")
    (tmp_path / "mypy.ini").write_text(textwrap.dedent(f"""\
        [mypy]
        strict = True
        mypy_path = {Path(harness.__file__).parents[1]}
        cache_dir = {tmp_path / "cache"}

        [mypy-harness.*]
        ignore_errors = True

        [mypy-torch.*,transformers.*,openai.*,sentence_transformers.*,huggingface_hub.*]
        follow_imports = skip
    """), "utf-8")
    stdout, stderr, _ = api.run(["--config-file", str(tmp_path / "mypy.ini"), "--no-error-summary",
                                 "--hide-error-context", str(tmp_path / "user.py"), str(tmp_path / "misuse.py")])
    assert not stderr, stderr
    lines = stdout.splitlines()
    user = [ln for ln in lines if "user.py" in ln]
    assert not [ln for ln in user if ": error:" in ln], stdout
    notes = [ln.split("Revealed type is ", 1)[1] for ln in user if "Revealed type is" in ln]
    assert len(notes) == 2 and "RunReport" in notes[0] and notes[1] == '"float | None"', notes
    errors = sorted(int(m.group(1)) for ln in lines if (m := re.search(r"misuse\.py:(\d+): error:", ln)))
    assert errors == [5, 6, 7], stdout  # compare is no int; rules are GateRules; a Diff is no RunResult
