"""`harness run` exit codes when cases error: a summary by kind on stderr, exit 1, `--allow-errors`.

Driven as a user meets it: the CLI in a subprocess, an `openai` generator pointed at the project's fake
OpenAI-compatible server (a real HTTP server on 127.0.0.1) that fails every call, or none.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.testing.fake_openai import FakeOpenAIServer, Fault
from tests.conftest import add_generation, make_project


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-run-exit", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("OPENAI_BASE_URL", None)
    return subprocess.run([sys.executable, "-m", "harness.cli", "-q", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


def _project(root: Path, srv: FakeOpenAIServer) -> Path:
    make_project(root, lock=False)
    params = (f'{{ name = "openai", model = "fake-1", base_url = "{srv.base_url}", temperature = 0, '
              f"concurrency = 2, max_retries = 0, timeout_s = 5 }}")
    return add_generation(root, params)


def _runs(root: Path) -> list[Path]:
    return sorted((root / ".harness" / "runs").rglob("*.json"))


def test_every_generation_failing_exits_1_with_a_summary_by_kind(tmp_path: Path, server: FakeOpenAIServer) -> None:
    _project(tmp_path, server)
    server.push(Fault.server_error(500), times=None)
    out = _cli("run", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "internal error" not in out.stderr and "Traceback" not in out.stderr
    err = out.stderr
    assert "errors: 4 of 4 cases errored" in err and "--allow-errors" in err
    assert "server_error: 4 in generate (q1, q2, q3, q4)" in err
    assert "    q1: " in err and "HTTP 500" in err  # the first messages, not only a count
    assert len(_runs(tmp_path)) == 1  # the run is still stored: errors are values, never dropped


def test_json_summary_counts_errors_by_kind_and_keeps_the_exit_code(tmp_path: Path,
                                                                    server: FakeOpenAIServer) -> None:
    _project(tmp_path, server)
    server.push(Fault.server_error(503), times=None, match="when are TLS certificates rotated")
    server.push(Fault.bad_request("maximum context length exceeded"), times=None, match="how often do backups run")
    out = _cli("run", "--json", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    data = json.loads(out.stdout)  # stdout is still exactly the JSON summary
    errors = data["errors"]
    assert errors["total"] == 2 == data["counts"]["errors"]
    assert {k: v["count"] for k, v in errors["by_kind"].items()} == {"bad_request": 1, "server_error": 1}
    assert errors["by_kind"]["bad_request"]["cases"] == ["q1"]
    assert errors["by_kind"]["server_error"]["cases"] == ["q2"]
    assert "maximum context length" in errors["by_kind"]["bad_request"]["messages"][0]["message"]
    assert "errors: 2 of 4 cases errored" in out.stderr


def test_allow_errors_keeps_exit_0_and_still_reports(tmp_path: Path, server: FakeOpenAIServer) -> None:
    _project(tmp_path, server)
    server.push(Fault.server_error(500), times=None)
    out = _cli("run", "--allow-errors", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["errors"]["total"] == 4
    assert "errors: 4 of 4 cases errored (allowed by --allow-errors)" in out.stderr


def test_healthy_run_exits_0_with_no_error_summary(tmp_path: Path, server: FakeOpenAIServer) -> None:
    _project(tmp_path, server)
    out = _cli("run", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["errors"] == {"total": 0, "by_kind": {}}
    assert "errored" not in out.stderr
    text = _cli("run", cwd=tmp_path)  # cached: no call fails, nothing to summarise
    assert text.returncode == 0 and "errored" not in text.stderr


def test_help_documents_the_exit_codes(tmp_path: Path) -> None:
    out = _cli("run", "--help", cwd=tmp_path)
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "1 when any case errored" in text and "With --allow-errors, errored cases keep exit 0" in text
