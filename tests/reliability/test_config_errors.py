"""Configuration mistakes are one line (file:line, field, what was wrong, a did-you-mean) and exit 2,
at ``lock``, ``verify`` and ``run`` alike, before anything is written; and the pytest plugin turns them
into one usage error.

Before this change: a typo in a stage's params was not looked at until the stage ran, wrong-typed
params (``k = "twenty"``) passed ``lock`` and ended in exit 3 with a pydantic dump, manifest key typos
had no suggestion, an unknown metric in ``--harness-threshold`` failed every case (not one usage
error), and a missing ``--harness-manifest`` file was a collection error at best.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import add_generation
from tests.reliability.clirun import cli_in_process

cli = cli_in_process


def edit(path: Path, old: str, new: str) -> int:
    """Replace ``old`` by ``new`` in the file; the 1-based line of the edit."""
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    return text[: text.index(old)].count("\n") + 1


def assert_one_line(err: str, *parts: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for part in parts:
        assert part in lines[0], (part, err)
    assert "Traceback" not in err and "validation error" not in err and "pydantic" not in err


@pytest.mark.parametrize("command", ["lock", "verify", "run"])
def test_wrong_typed_retriever_param_is_one_line_everywhere(proj: Path, capsys: pytest.CaptureFixture[str],
                                                           command: str) -> None:
    manifest = proj / "harness.toml"
    before = manifest.read_text()
    line = edit(manifest, "params = { k = 5,", 'params = { k = "twenty",')
    code, _, err = cli(capsys, command)
    assert code == 2
    assert_one_line(err, f"harness.toml:{line}: field 'artifacts.retriever.params.k'", "valid integer", "'twenty'")
    assert manifest.read_text() == before.replace("k = 5,", 'k = "twenty",')  # lock wrote no pins
    assert not (proj / ".harness" / "runs").exists() and not (proj / ".harness" / "store").exists()


@pytest.mark.parametrize(("old", "new", "field", "expected"), [
    ('text_fields = ["title", "text"]', 'text_feilds = ["title", "text"]', "artifacts.retriever.params.text_feilds",
     "did you mean text_fields?"),
    ("backend = \"hashing\", dim = 64", "backend = \"hashing\", dim = \"wide\"", "artifacts.embedding.params.dim",
     "valid integer"),
    ("backend = \"hashing\"", "backend = \"hashin\"", "artifacts.embedding.params.backend", "'hashin'"),
    ('path = "golden/cases.jsonl"', 'pth = "golden/cases.jsonl"', "artifacts.golden.pth", "did you mean path?"),
    ("[metrics]", "[metric]", "metric", "did you mean metrics?"),
])
def test_manifest_typos_and_types_at_lock(proj: Path, capsys: pytest.CaptureFixture[str], old: str, new: str,
                                          field: str, expected: str) -> None:
    line = edit(proj / "harness.toml", old, new)
    code, _, err = cli(capsys, "lock")
    assert code == 2
    assert_one_line(err, f"harness.toml:{line}: field '{field}'", expected)


def test_generator_params_are_checked_at_lock(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = add_generation(proj)  # locks with { name = "extractive", n_passages = 3 }
    line = edit(manifest, "n_passages = 3", 'n_passages = "five"')
    code, _, err = cli(capsys, "lock")
    assert code == 2
    assert_one_line(err, f"harness.toml:{line}: field 'artifacts.generator.params.n_passages'", "'five'")

    edit(manifest, 'n_passages = "five"', "n_pasages = 3")
    code, _, err = cli(capsys, "verify")
    assert code == 2
    assert_one_line(err, "field 'artifacts.generator.params.n_pasages'", "did you mean n_passages?")

    edit(manifest, "n_pasages = 3", "n_passages = 3")
    edit(manifest, 'name = "extractive"', 'name = "extractiv"')
    code, _, err = cli(capsys, "run")
    assert code == 2
    assert_one_line(err, "field 'artifacts.generator.params.name'", "did you mean extractive?")


def test_index_recipe_file_is_checked_at_lock(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = proj / "indexes" / "flat.toml"
    recipe.write_text('type = "ivf"\nnlist = "five"\n')
    code, _, err = cli(capsys, "lock")
    assert code == 2
    assert_one_line(err, "flat.toml:2: field 'nlist'", "expected an integer")
    recipe.write_text('type = "ivf"\nnlst = 4\n')
    code, _, err = cli(capsys, "lock")
    assert code == 2
    assert_one_line(err, "flat.toml:2: field 'nlst'", "did you mean nlist?")


# --- the pytest plugin -------------------------------------------------------------------------------------


def run_pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_pytest_unknown_threshold_metric_is_one_usage_error(proj: Path) -> None:
    from harness.manifest import lock

    lock(proj / "harness.toml")
    out = run_pytest(proj, "--harness-manifest", "harness.toml", "--harness-threshold", "ndcg@01 >= 0.5")
    assert out.returncode == pytest.ExitCode.USAGE_ERROR, out.stdout + out.stderr
    assert "names metric 'ndcg@01'" in out.stderr and "did you mean ndcg@10" in out.stderr
    assert "failed" not in out.stdout and not (proj / ".harness" / "runs").exists()


def test_pytest_missing_manifest_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    pass\n")
    out = run_pytest(tmp_path, "--harness-manifest", "nope/harness.toml")
    assert out.returncode == pytest.ExitCode.USAGE_ERROR, out.stdout + out.stderr
    assert "nope/harness.toml" in out.stderr and "does not exist" in out.stderr


def test_pytest_bad_gate_rule_is_one_usage_error(proj: Path) -> None:
    from harness.manifest import lock

    manifest = proj / "harness.toml"
    manifest.write_text(manifest.read_text() + '\n[[gates]]\nmetric = "recal@5"\nmin = 0.5\n')
    lock(manifest)
    out = run_pytest(proj, "--harness-manifest", "harness.toml")
    assert out.returncode == pytest.ExitCode.USAGE_ERROR, out.stdout + out.stderr
    assert "field 'gates.0.metric'" in out.stderr and "did you mean 'recall@5'" in out.stderr
