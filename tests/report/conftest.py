"""The headless Chromium page the browser tests share (skipped where Chromium is not installed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.report.browser import Page, find_chromium


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    with Page(chromium, tmp_path / "profile") as p:
        yield p
