"""The CLI in a real pseudo-terminal (pexpect), with progress bars on, as people use it.

No CI variable in the child's environment, TERM=xterm-256color and a fixed window: the bars render
exactly as on a developer's screen. The quick start (init -> run -> baseline promote -> gate) must
exit cleanly, Ctrl-C during a bar must abort cleanly, and a long embedding must show a rate and an ETA.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import sys
import time
from pathlib import Path

import pexpect
import pytest

from harness.manifest import lock

ROWS, COLS = 40, 160
# A bar frame after colours are stripped: "... 1234/20010  6% 5,678/s 0:00:01 0:00:03"
_FRAME = re.compile(r"(?P<done>\d+)/(?P<total>\d+)\s+\d+%\s+(?P<rate>[\d,.]+)/s\s+"
                    r"(?P<elapsed>\d+:\d\d:\d\d)\s+(?P<eta>\d+:\d\d:\d\d)")
_COUNT = re.compile(r"(?P<done>\d+)/(?P<total>\d+)\s+\d+%")
_SGR = re.compile(r"\x1b\[[0-9;]*m")
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\r\n]")
# Enough hashing-encoder work for an embedding bar of a few seconds on a loaded 2-core machine.
BIG_DOCS = 10_000
WORDS_PER_DOC = 100


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"CI", "NO_COLOR", "COLUMNS", "LINES", "HARNESS_HOME", "HARNESS_CACHE_DIR"}}
    env.update(TERM="xterm-256color", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def _default_sigint() -> None:
    """In the child, before exec: ^C does what it does in a user's terminal. A test run started in the
    background by a non-interactive shell (``cmd &``, a CI wrapper) inherits SIGINT ignored, and Python then
    installs no KeyboardInterrupt handler: ^C would do nothing, and the test would measure the launcher."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _spawn(*args: str, cwd: Path, timeout: float = 60) -> pexpect.spawn:
    return pexpect.spawn(sys.executable, ["-m", "harness.cli", *args], cwd=str(cwd), env=_env(),
                         dimensions=(ROWS, COLS), encoding="utf-8", codec_errors="replace", timeout=timeout,
                         preexec_fn=_default_sigint)


def _finish(child: pexpect.spawn) -> tuple[int | None, str]:
    """(exit status, everything the screen received) once the child has ended."""
    out = child.read()
    child.close()
    return child.exitstatus, out


def _harness(*args: str, cwd: Path, timeout: float = 60) -> tuple[int | None, str]:
    return _finish(_spawn(*args, cwd=cwd, timeout=timeout))


def _frames(screen: str) -> list[str]:
    """The text pieces the terminal showed between cursor movements (bar frames, lines)."""
    return [p for p in _CONTROL.split(_SGR.sub("", screen)) if p.strip()]


def _assert_clean(code: int | None, screen: str, expected: int = 0) -> None:
    assert code == expected, screen[-3000:]
    assert "internal error" not in screen and "Traceback" not in screen, screen[-3000:]


def _runs(root: Path) -> list[Path]:
    return sorted((root / ".harness" / "runs").rglob("*.json"))


def _big_project(tmp_path: Path) -> Path:
    """`harness init`'s example with the weightless hashing encoder and a corpus grown to BIG_DOCS."""
    root = tmp_path / "big"
    code, screen = _harness("init", str(root), cwd=tmp_path)
    _assert_clean(code, screen)
    manifest = root / "harness.toml"
    text = manifest.read_text()
    text, n = re.subn(r'(\[artifacts\.embedding\]\n)(?:(?!\n\[).)*', r'\1kind = "embedding_model"\n'
                      r'version = "hashing-64"\nparams = { backend = "hashing", dim = 64 }\n', text, flags=re.S)
    assert n == 1
    manifest.write_text(text)
    corpus = root / "golden" / "corpus.jsonl"
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(5000)]
    extra = "".join(json.dumps({"id": f"filler-{i}", "title": f"filler {i}",
                                "text": " ".join(rng.choices(vocab, k=WORDS_PER_DOC))}) + "\n"
                    for i in range(BIG_DOCS))
    corpus.write_text(corpus.read_text() + extra)
    lock(manifest)
    return manifest


@pytest.mark.slow
def test_quick_start_in_a_terminal(tmp_path: Path) -> None:
    """The README's first commands, each under a pty with bars on: no internal error, exit 0."""
    code, screen = _harness("init", "my-eval", cwd=tmp_path)
    _assert_clean(code, screen)
    project = tmp_path / "my-eval"
    code, screen = _harness("run", cwd=project, timeout=120)  # loads MiniLM: the real first run
    _assert_clean(code, screen)
    assert "embedding corpus" in screen and "scoring" in screen  # the bars were really drawn
    assert len(_runs(project)) == 1
    code, screen = _harness("baseline", "promote", cwd=project)
    _assert_clean(code, screen)
    code, screen = _harness("gate", cwd=project)
    _assert_clean(code, screen)
    assert "PASS" in screen and "FAIL" not in screen
    assert "scoring" in screen  # gate's own run drew its bars too


def test_ctrl_c_during_a_bar_aborts_cleanly_and_the_next_run_works(tmp_path: Path) -> None:
    manifest = _big_project(tmp_path)
    root = manifest.parent
    child = _spawn("run", cwd=root)
    child.expect("embedding corpus", timeout=60)  # a bar is on the screen
    child.sendintr()  # the terminal's ^C: SIGINT to the foreground process group
    code, screen = _finish(child)
    assert code == 130, screen[-3000:]
    assert "aborted" in screen and "Traceback" not in screen and "internal error" not in screen
    assert _runs(root) == []  # nothing half-written
    code, screen = _harness("run", cwd=root, timeout=90)
    _assert_clean(code, screen)
    assert len(_runs(root)) == 1


def test_long_embedding_shows_rate_and_eta(tmp_path: Path) -> None:
    manifest = _big_project(tmp_path)
    t0 = time.monotonic()
    code, screen = _harness("run", cwd=manifest.parent, timeout=90)
    seconds = time.monotonic() - t0
    _assert_clean(code, screen)
    shown = [f for f in _frames(screen) if "embedding corpus" in f and (c := _COUNT.search(f)) and int(c["done"])]
    assert len(shown) >= 3, (seconds, _frames(screen)[:20])  # the bar lasted: several frames drawn
    bars = [_FRAME.search(f) for f in shown]
    # from the first step on, every frame shows a rate in items per second and an ETA (not "-:--:--")
    assert all(bars), [f for f, m in zip(shown, bars, strict=True) if not m][:5]
    total = BIG_DOCS + 6  # the example's own documents
    assert all(m and int(m["total"]) == total and float(m["rate"].replace(",", "")) > 0 for m in bars)
    assert any(m and m["eta"] != "0:00:00" and int(m["done"]) < total for m in bars), shown[:5]


def test_rate_and_eta_survive_steps_slower_than_the_speed_window() -> None:
    """A batch of long documents on a CPU can take a minute; rich's default 30 s window then keeps one
    sample and the rate and ETA went blank for the whole run (a SciFact embedding showed neither)."""
    from rich.console import Console

    from harness.progress import Progress

    clock = [1000.0]
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=COLS, color_system=None)
    with Progress(enabled=True, console=console, get_time=lambda: clock[0]) as progress, \
            progress.task("embedding corpus", 10) as advance:
        for _ in range(3):
            clock[0] += 45.0  # each step slower than rich's default window
            advance(1)
        deadline = time.monotonic() + 5
        while "3/10" not in buf.getvalue() and time.monotonic() < deadline:  # drawn ~10 times a second
            time.sleep(0.05)
    frames = [m for f in _frames(buf.getvalue()) if (m := _FRAME.search(f)) and m["done"] == "3"]
    assert frames, _frames(buf.getvalue())[-5:]
    m = frames[-1]
    assert float(m["rate"]) == pytest.approx(1 / 45, abs=0.05)  # 3 steps in 135 s
    assert m["elapsed"] == "0:02:15" and m["eta"] == "0:05:15"  # 7 more steps at 45 s each


def test_ctrl_c_during_generation_keeps_finished_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """^C while calls to a (slow) endpoint are in flight: a clean abort, and a re-run pays only for the rest."""
    from harness.testing.fake_openai import FakeOpenAIServer
    from tests.conftest import add_generation, make_project

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-terminal")
    with FakeOpenAIServer(latency_s=0.5) as srv:
        make_project(tmp_path, lock=False)
        add_generation(tmp_path, f'{{ name = "openai", model = "m", base_url = "{srv.base_url}", concurrency = 1 }}')
        child = _spawn("run", cwd=tmp_path)
        child.expect(r"generate.*1/4", timeout=60)  # one answer back, the next call in flight
        child.sendintr()
        code, screen = _finish(child)
        assert code == 130, screen[-3000:]
        assert "aborted" in screen and "Traceback" not in screen and "internal error" not in screen
        assert _runs(tmp_path) == []
        before = srv.requests_received
        code, screen = _harness("run", cwd=tmp_path)
        _assert_clean(code, screen)
        assert len(_runs(tmp_path)) == 1
        assert srv.requests_received - before <= 3  # the finished answer came from the cache
