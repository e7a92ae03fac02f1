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


# --- values in range, names that exist (before: accepted, then a crash, a hang or a silent wrong answer) ---


def _nothing_written(proj: Path) -> None:
    assert not (proj / ".harness").exists()


@pytest.mark.parametrize(("recipe", "field", "expected"), [
    ('type = "hnsw"\nM = 0\n', "M", "M = 0 is out of range"),  # FAISS aborted the process (SIGABRT)
    ('type = "hnsw"\nM = -1\n', "M", "M = -1 is out of range"),  # memory blow-up
    ('type = "hnsw"\nM = 100000000\n', "M", "out of range"),  # MemoryError
    ('type = "hnsw"\nef_search = 0\n', "ef_search", "out of range"),  # silently accepted
    ('type = "hnsw"\nM = true\n', "M", "expected an integer"),
    ('type = "ivf"\nnprobe = 0\n', "nprobe", "out of range"),
    ('type = "ivf"\nnprobe = -2\n', "nprobe", "out of range"),
    ('type = "ivf"\nnlist = -3\n', "nlist", "out of range"),
    ('type = "ivf"\nnlist = 4\nnprobe = 8\n', "nprobe", "more than nlist"),
    ('type = "factory"\nfactory = "Garbage,Flat"\n', "factory", "could not parse"),  # RuntimeError, exit 3
    ('type = "factory"\nfactory = "PQ7"\n', "factory", "multiple of the number of subquantizers"),
])
@pytest.mark.parametrize("command", ["lock", "run"])
def test_index_recipe_values_are_range_checked(proj: Path, capsys: pytest.CaptureFixture[str], recipe: str,
                                               field: str, expected: str, command: str) -> None:
    path = proj / "indexes" / "flat.toml"
    path.write_text(recipe)
    line = recipe.splitlines().index(next(ln for ln in recipe.splitlines() if ln.startswith(f"{field} "))) + 1
    code, _, err = cli(capsys, command)
    assert code == 2, err
    assert_one_line(err, f"flat.toml:{line}: field '{field}'", expected)
    _nothing_written(proj)


def test_ivf_factory_with_more_lists_than_documents_is_exit_2_at_run(proj: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Before: FAISS's training raised RuntimeError (exit 3) after the embeddings were cached."""
    (proj / "indexes" / "flat.toml").write_text('type = "factory"\nfactory = "IVF256,Flat"\n')
    code, _, err = cli(capsys, "lock")  # lock does not read the corpus
    assert code == 0, err
    code, _, err = cli(capsys, "run")
    assert code == 2, err
    assert_one_line(err, "flat.toml:2: field 'factory'", "256 inverted lists", "only 6 documents")
    assert not (proj / ".harness" / "runs").exists() and not (proj / ".harness" / "store").exists()


@pytest.mark.parametrize(("old", "new", "field", "expected"), [
    ("dim = 64", "dim = 100000000", "artifacts.embedding.params.dim", "less than or equal to 65536"),
    ("k = 5", "k = true", "artifacts.retriever.params.k", "valid integer"),  # was accepted as k = 1
    ('text_fields = ["title", "text"]', "text_fields = []", "artifacts.retriever.params.text_fields",
     "at least 1 item"),  # every document was embedded as ''
])
def test_stage_param_bounds_at_lock(proj: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, field: str,
                                    expected: str) -> None:
    line = edit(proj / "harness.toml", old, new)
    code, _, err = cli(capsys, "lock")
    assert code == 2
    assert_one_line(err, f"harness.toml:{line}: field '{field}'", expected)
    _nothing_written(proj)


def test_text_field_no_document_has_is_exit_2_with_did_you_mean(proj: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Before: ``text_fields = ["titel"]`` embedded every document as the empty string and the run passed."""
    edit(proj / "harness.toml", 'text_fields = ["title", "text"]', 'text_fields = ["titel"]')
    code, _, err = cli(capsys, "lock")
    assert code == 0, err  # the corpus is read by run, not by lock
    line = next(i for i, ln in enumerate((proj / "harness.toml").read_text().splitlines(), 1) if "titel" in ln)
    code, _, err = cli(capsys, "run")
    assert code == 2
    assert_one_line(err, f"harness.toml:{line}: field 'artifacts.retriever.params.text_fields.0'", "'titel'",
                    "did you mean 'title'?")
    assert not (proj / ".harness" / "runs").exists() and not (proj / ".harness" / "store").exists()


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("", '\n[artifacts.generater]\nkind = "generator"\nversion = "1"\nparams = { name = "extractive" }\n',
     "kind 'generator' belongs under [artifacts.generator]"),  # generation was silently dropped
    ("", '\n[artifacts.promt]\nkind = "prompt"\nversion = "1"\npath = "harness.toml"\n',
     "kind 'prompt' belongs under [artifacts.prompt]"),
    ("[artifacts.golden]", "[artifacts.goldne]", "kind 'golden' belongs under [artifacts.golden]"),
])
@pytest.mark.parametrize("command", ["lock", "verify", "run"])
def test_misspelt_artifact_role_is_exit_2(proj: Path, capsys: pytest.CaptureFixture[str], old: str, new: str,
                                          expected: str, command: str) -> None:
    manifest = proj / "harness.toml"
    if old:
        edit(manifest, old, new)
    else:
        manifest.write_text(manifest.read_text() + new)
    role = new.split("[artifacts.")[1].split("]")[0]
    line = manifest.read_text().splitlines().index(f"[artifacts.{role}]") + 1
    code, _, err = cli(capsys, command)
    assert code == 2, err
    assert_one_line(err, f"harness.toml:{line}: field 'artifacts.{role}'", expected, "did you mean")
    _nothing_written(proj)


def test_missing_role_suggests_the_misspelt_one(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = proj / "harness.toml"
    edit(manifest, '[artifacts.golden]\nkind = "golden"', '[artifacts.goldne]\nkind = "other"')
    code, _, err = cli(capsys, "lock")
    assert code == 2
    assert_one_line(err, "field 'artifacts.golden'", "missing artifact role 'golden'",
                    "did you mean [artifacts.golden] for [artifacts.goldne]?")


def test_lock_refuses_a_prompt_run_would_reject(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: lock pinned a prompt that is not TOML, and only run said so."""
    manifest = add_generation(proj)
    prompt = proj / "prompts" / "answer.toml"
    prompt.write_text("[[messages]\nrole = \"user\"\n")
    before = manifest.read_text()
    code, _, err = cli(capsys, "lock")
    assert code == 2
    assert_one_line(err, "answer.toml:1")
    assert manifest.read_text() == before
    prompt.write_text('[[messages]]\nrole = "user"\ncontent = "{% if %}"\n')
    code, _, err = cli(capsys, "lock")
    assert code == 2
    assert_one_line(err, "answer.toml", "template syntax error")
    assert manifest.read_text() == before
