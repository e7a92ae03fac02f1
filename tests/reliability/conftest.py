"""Fixtures shared by the reliability tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_project


@pytest.fixture
def proj(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny unlocked project (hashing embedder) as the working folder, with no shared store or cache."""
    monkeypatch.delenv("HARNESS_HOME", raising=False)
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    make_project(tmp_path, lock=False)
    return tmp_path
