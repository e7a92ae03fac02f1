"""`harness replay`, `harness canary` and `harness rollback --to MANIFEST` as people run them: the CLI in a
subprocess (the real `openai` client) against the fake chat endpoint in this process, over the shadow test
project and its logged traffic (harness.testing.shadow). Exit codes, what is printed where, what is written
(and, on bad input, that nothing is), and one replay in a real pseudo-terminal with its progress bar."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.manifest import load_manifest, lock
from harness.monitor.synthetic import StreamSpec
from harness.testing.fake_openai import FakeOpenAIServer
from harness.testing.shadow import ShadowProject, logged_traffic, shadow_responder, write_shadow_project

SPEC = StreamSpec(days=2, records_per_day=50)
CANARY_SPEC = StreamSpec(days=2, records_per_day=500)  # a canary reads the log only: it may be larger
# the output contract is critical: a canary breaking it fails whatever its score (default: its weight only)
CANARY_TABLE = '\n[canary]\nmin_records = 30\nsignals = [{ name = "format_valid", critical = true }]\n'

# The commands through harness.cli.main, registered here if the CLI does not list them yet.
DRIVER = ("import sys; from harness import cli; "
          "cli._COMMANDS.setdefault('replay', ('harness.commands.shadow', 'replay_cmd')); "
          "cli._COMMANDS.setdefault('canary', ('harness.commands.shadow', 'canary_cmd')); "
          "sys.exit(cli.main())")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"HARNESS_HOME", "HARNESS_CACHE_DIR", "CI", "NO_COLOR"}}
    env.update(OPENAI_API_KEY="test", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               **extra)
    return env


def harness(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", DRIVER, *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    return lines[0]


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@dataclass(frozen=True)
class Shadow:
    server: FakeOpenAIServer
    project: ShadowProject
    log: Path
    baseline_id: str


@pytest.fixture(scope="module")
def shadow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shadow]:
    with FakeOpenAIServer(responder=shadow_responder()) as server:
        project = write_shadow_project(tmp_path_factory.mktemp("shadow") / "proj", base_url=server.base_url,
                                       spec=SPEC)
        baseline_id = load_manifest(project.baseline).id
        log = logged_traffic(SPEC, project.root / "logs" / "prod.jsonl", manifest_id=baseline_id)
        yield Shadow(server, project, log, baseline_id)


def _copy(shadow: Shadow, dest: Path) -> Path:
    """A copy of the project without its state (runs, caches): the manifests' relative paths still hold."""
    shutil.copytree(shadow.project.root, dest, ignore=shutil.ignore_patterns(".harness"))
    return dest


# ---- harness replay ------------------------------------------------------------------------------------


def _replay(shadow: Shadow, candidate: Path, *more: str) -> subprocess.CompletedProcess[str]:
    root = shadow.project.root
    return harness("replay", "--baseline", str(shadow.project.baseline), "--candidate", str(candidate),
                   "--log", str(shadow.log), *more, cwd=root)


def test_replay_of_the_format_broken_variant_fails_naming_format_pass_and_a_segment(shadow: Shadow) -> None:
    out = _replay(shadow, shadow.project.format_broken)  # the text face, in a pipe
    assert out.returncode == 1, out.stderr[-3000:]
    assert out.stdout.startswith("replay: FAIL: "), out.stdout[:500]
    rows = [line for line in out.stdout.splitlines() if "FAIL" in line and "format_pass" in line]
    assert rows and any(re.search(r"(geo|device)=\w+", row) for row in rows), out.stdout[-4000:]
    assert "\x1b[" not in out.stdout  # no colour in a pipe
    stored = re.search(r"^report stored: (.+)$", out.stderr, re.M)
    assert stored and Path(stored.group(1)).is_file(), out.stderr
    report = json.loads(Path(stored.group(1)).read_text())
    assert report["status"] == "fail"
    failed = [r for r in report["results"] if r["status"] == "fail"]
    assert any(r["metric"] == "format_pass" and r["segment"] for r in failed), failed
    assert {r["segment"].split("=")[0] for r in failed if r["segment"]} <= {"geo", "device"}
    assert report["candidate"]["manifest_id"] == load_manifest(shadow.project.format_broken).id
    for side in ("baseline", "candidate"):
        assert Path(report[side]["run_path"]).is_file()
        assert f"{side} run: {report[side]['run_path']}" in out.stderr


def test_replay_of_a_neutral_change_passes(shadow: Shadow) -> None:
    out = _replay(shadow, shadow.project.neutral, "--format", "json")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads(out.stdout)  # stdout is the JSON and nothing else
    assert report["status"] == "pass" and report["selection"]["replayed"] == report["selection"]["matched"] > 60
    assert not [r for r in report["results"] if r["status"] == "fail"]
    assert {a["role"] for a in report["artifacts"]} == {"prompt"}


@pytest.mark.parametrize(("args", "says"), [
    (("--segment", "geo"), "--segment: 'geo' is not key=value"),
    (("--since", "yesterday-ish"), "--since: 'yesterday-ish' is not a time"),
    (("--log", "logs/missing.jsonl"), "logs/missing.jsonl: no such file"),
    (("--baseline", "variants/nope.toml"), "nope.toml"),
])
def test_bad_input_is_one_line_and_writes_nothing(shadow: Shadow, args: tuple[str, ...], says: str) -> None:
    root = shadow.project.root
    before = listing(root / ".harness" / "replays")
    base = [] if "--baseline" in args else ["--baseline", str(shadow.project.baseline)]
    log = [] if "--log" in args else ["--log", str(shadow.log)]
    out = harness("replay", *base, "--candidate", str(shadow.project.neutral), *log, *args, cwd=root)
    assert out.returncode == 2, out.stderr
    assert says in one_error_line(out)
    assert listing(root / ".harness" / "replays") == before


def test_replay_out_file_outside_the_project_is_refused_first(shadow: Shadow, tmp_path: Path) -> None:
    root = shadow.project.root
    before = listing(root / ".harness" / "replays")
    out = _replay(shadow, shadow.project.neutral, "-o", str(tmp_path / "report.md"), "--format", "md")
    assert out.returncode == 2 and "outside the project" in one_error_line(out)
    assert listing(root / ".harness" / "replays") == before and not (tmp_path / "report.md").exists()


def test_replay_in_a_terminal_draws_a_progress_bar(shadow: Shadow, tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    shadow.server.latency_s = 0.05  # each fresh answer takes a moment: the bar is up for a second or more
    try:
        env = _env(TERM="xterm-256color", HARNESS_CACHE_DIR=str(tmp_path / "cold-cache"))
        child = pexpect.spawn(sys.executable, ["-c", DRIVER, "replay", "--baseline", str(shadow.project.baseline),
                                               "--candidate", str(shadow.project.neutral), "--log", str(shadow.log)],
                              cwd=str(shadow.project.root), env=env, dimensions=(40, 160), encoding="utf-8",
                              codec_errors="replace", timeout=180)
        screen = child.read()
        child.close()
    finally:
        shadow.server.latency_s = 0.0
    assert child.exitstatus == 0, screen[-3000:]
    assert "Traceback" not in screen and "internal error" not in screen
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    frames = re.findall(r"(\d+)/(\d+)\s+\d+%", plain)
    assert frames and any(0 < int(done) < int(total) for done, total in frames), plain[-3000:]
    assert "replay: " in plain and "PASS" in plain
    assert re.search(r"\x1b\[[0-9;]*m", screen)  # a terminal gets colour


# ---- harness rollback --to MANIFEST --------------------------------------------------------------------


def test_rollback_to_a_manifest_file_restores_it_and_says_what_changed(shadow: Shadow, tmp_path: Path) -> None:
    root = _copy(shadow, tmp_path / "proj")
    out = harness("rollback", "--to", "variants/neutral.toml", cwd=root)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("rolled back prompt to manifest variants/neutral.toml")
    assert any(re.fullmatch(r"  prompt \(prompt\): answer -> answer-neutral, sha256 [0-9a-f]{12} -> [0-9a-f]{12}, "
                            r"pin only", line) for line in lines), out.stdout
    prompt = load_manifest(root / "harness.toml").manifest.artifacts["prompt"]
    assert prompt.version == "answer-neutral" and prompt.path == "prompts/answer-neutral.toml"
    assert harness("verify", cwd=root).returncode == 0
    again = harness("rollback", "--to", "variants/neutral.toml", cwd=root)
    assert again.returncode == 0 and again.stdout.startswith("rolled back nothing (already at the baseline)")
    missing = harness("rollback", "--to", "variants/missing.toml", cwd=root)
    assert missing.returncode == 2 and "variants/missing.toml: no such manifest file" in one_error_line(missing)


def test_rollback_to_a_manifest_whose_file_lies_outside_the_project_changes_nothing(
        shadow: Shadow, tmp_path: Path) -> None:
    root = _copy(shadow, tmp_path / "proj")
    shared = tmp_path / "shared" / "answer.toml"
    shared.parent.mkdir()
    shared.write_text((root / "prompts" / "answer-neutral.toml").read_text())
    variant = root / "variants" / "outside.toml"
    variant.write_text((root / "variants" / "neutral.toml").read_text().replace(
        'path = "../prompts/answer-neutral.toml"', 'path = "../../shared/answer.toml"\nallow_outside = true'))
    lock(variant)
    manifest_before = (root / "harness.toml").read_text()
    files_before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and ".harness" not in p.parts}
    out = harness("rollback", "--to", "variants/outside.toml", cwd=root)
    assert out.returncode == 2, out.stdout + out.stderr
    line = one_error_line(out)
    assert "lies outside the project" in line and "nothing was changed" in line
    assert (root / "harness.toml").read_text() == manifest_before
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and ".harness" not in p.parts} \
        == files_before


# ---- harness canary ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Canary:
    root: Path
    baseline_id: str
    candidate_id: str


def _not_json(record: dict[str, Any], is_canary: bool) -> dict[str, Any]:
    """What the format-broken prompt does in production: its answers stop being the contract's JSON."""
    if is_canary and isinstance(record.get("answer"), str):
        record = {**record, "answer": json.loads(record["answer"])["answer"]}
    return record


def _canary_project(shadow: Shadow, dest: Path, *, broken: bool) -> Canary:
    """A copy of the project whose harness.toml was rolled forward to the format-broken prompt (the canary;
    the baseline it replaced kept as prod.toml, beside it), with a log where 30% of the traffic was served by
    the canary (its answers no longer JSON when ``broken``)."""
    root = _copy(shadow, dest)
    original = (root / "harness.toml").read_text() + CANARY_TABLE  # [canary] is not part of the manifest id
    (root / "prod.toml").write_text(original)
    (root / "harness.toml").write_text(original.replace('version = "answer"', 'version = "answer-plain"')
                                       .replace("prompts/answer.toml", "prompts/answer-plain.toml"))
    lock(root / "harness.toml")
    base_id, cand_id = load_manifest(root / "prod.toml").id, load_manifest(root / "harness.toml").id
    assert base_id == shadow.baseline_id != cand_id
    logged_traffic(CANARY_SPEC, root / "logs" / "prod.jsonl", manifest_id=base_id, canary_id=cand_id,
                   canary_share=0.3, edit=_not_json if broken else None)
    return Canary(root, base_id, cand_id)


def _canary(c: Canary, *more: str, baseline: str = "prod.toml") -> subprocess.CompletedProcess[str]:
    return harness("canary", "--baseline", baseline, "--log", "logs/prod.jsonl", *more, cwd=c.root)


def test_a_broken_canary_fails_and_rollback_puts_the_baseline_back(shadow: Shadow, tmp_path: Path) -> None:
    c = _canary_project(shadow, tmp_path / "proj", broken=True)
    manifest = c.root / "harness.toml"
    before = manifest.read_text()

    # a baseline given only by its id, with no stored run of it: its pins are unknown, nothing changes
    out = _canary(c, "--rollback", baseline=f"id:{c.baseline_id}")
    assert out.returncode == 1, out.stderr[-2000:]
    assert "no stored run" in out.stderr and "nothing was changed" in out.stderr
    assert manifest.read_text() == before

    out = _canary(c)
    assert out.returncode == 1, out.stderr[-2000:]
    assert out.stdout.startswith("canary: FAIL: "), out.stdout[:400]
    evidence = [line for line in out.stdout.splitlines() if "format_valid" in line and "LOW" in line]
    assert evidence, out.stdout[-3000:]
    assert manifest.read_text() == before  # no --rollback: nothing changes

    out = _canary(c, "--rollback", "--format", "json")
    assert out.returncode == 1, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["status"] == "fail"
    rolled = {r["role"]: r for r in report["rolled_back"]}
    assert set(rolled) == {"prompt"}
    assert (rolled["prompt"]["before_version"], rolled["prompt"]["after_version"]) == ("answer-plain", "answer")
    assert "rolled back harness.toml to the baseline" in out.stderr and "answer-plain -> answer" in out.stderr
    assert load_manifest(manifest).id == c.baseline_id
    assert manifest.read_text() == (c.root / "prod.toml").read_text()  # the pins back, the file as it was
    verify = harness("verify", cwd=c.root)
    assert verify.returncode == 0 and c.baseline_id in verify.stdout


def test_canary_rollback_never_writes_outside_the_project(shadow: Shadow, tmp_path: Path) -> None:
    c = _canary_project(shadow, tmp_path / "proj", broken=True)
    shared = tmp_path / "shared" / "answer.toml"
    shared.parent.mkdir()
    shared.write_text((c.root / "prompts" / "answer.toml").read_text())
    outside = c.root / "prod-outside.toml"
    outside.write_text((c.root / "prod.toml").read_text().replace(
        'path = "prompts/answer.toml"', 'path = "../shared/answer.toml"\nallow_outside = true'))
    lock(outside)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and ".harness" not in p.parts}
    out = _canary(c, "--rollback", baseline="prod-outside.toml")
    assert out.returncode == 1, out.stderr[-2000:]
    assert "lies outside the project" in out.stderr and "nothing was changed" in out.stderr
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and ".harness" not in p.parts} == before


def test_an_aa_canary_passes_and_rollback_changes_nothing(shadow: Shadow, tmp_path: Path) -> None:
    c = _canary_project(shadow, tmp_path / "proj", broken=False)
    before = (c.root / "harness.toml").read_text()
    out = _canary(c, "--rollback", "--format", "md")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert out.stdout.startswith("## harness canary: PASS\n")
    assert "the canary passed; nothing was rolled back" in out.stderr
    assert (c.root / "harness.toml").read_text() == before


def test_canary_bad_input_is_one_line(shadow: Shadow, tmp_path: Path) -> None:
    c = _canary_project(shadow, tmp_path / "proj", broken=False)
    out = _canary(c, baseline="variants/missing.toml")
    assert out.returncode == 2 and "neither a manifest file nor a manifest id" in one_error_line(out)
    out = _canary(c, "--until", "2026-11-01", "--since", "2026-11-03")
    assert out.returncode == 2 and "is not before --until" in one_error_line(out)
