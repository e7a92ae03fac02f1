"""The CLI as a user meets it: help with examples, one-line errors with exit 2, init that runs at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import _COMMANDS, cli


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("name", sorted(_COMMANDS))
def test_every_command_has_help_with_an_example(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    cmd = cli.get_command(None, name)  # type: ignore[arg-type]
    if cmd is not None and hasattr(cmd, "commands"):  # a group: its sub-commands carry the examples
        for sub in cmd.commands.values():  # type: ignore[attr-defined]
            assert "Example" in (sub.help or ""), f"{name} {sub.name}"
    else:
        assert "Example" in result.output, name


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "harness.toml").write_text('schema_version = 1\nname = "x"\nartifacts = {}\nbogus = 1\n')
    out = _cli("run", cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "harness.toml:4" in lines[0]
    assert "Traceback" not in out.stderr
    debug = _cli("--debug", "run", cwd=tmp_path)
    assert "Traceback" in debug.stderr


def test_missing_manifest_hint(tmp_path: Path) -> None:
    out = _cli("verify", cwd=tmp_path)
    assert out.returncode == 2 and "hint:" in out.stderr and "harness init" in out.stderr


@pytest.mark.slow
def test_init_scaffolds_a_project_that_runs(tmp_path: Path) -> None:
    target = tmp_path / "proj"
    out = _cli("init", str(target))
    assert out.returncode == 0, out.stderr
    for rel in ("harness.toml", "golden/cases.jsonl", "golden/corpus.jsonl", "validators/contracts.toml",
                "indexes/flat-ip.toml", "prompts/answer.toml"):
        assert (target / rel).is_file(), rel
    assert _cli("init", str(target)).returncode == 2  # never overwrites silently
    run = _cli("-q", "run", "--json", cwd=target)
    assert run.returncode == 0, run.stderr
    agg = json.loads(run.stdout)["aggregates"]
    assert agg["recall@5"] == 1.0 and agg["answer_contains"] >= 0.5
    gate = _cli("-q", "gate", cwd=target)
    # no baseline yet: a drop rule cannot judge, so the gate fails and says how to get one
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "harness baseline promote" in gate.stdout + gate.stderr
    assert _cli("-q", "gate", "--allow-no-baseline", cwd=target).returncode == 0  # floors still apply
    assert _cli("-q", "baseline", "promote", cwd=target).returncode == 0
    gate = _cli("-q", "gate", cwd=target)
    assert gate.returncode == 0, gate.stdout + gate.stderr
