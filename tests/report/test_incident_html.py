"""The incident snapshot's HTML page in a real headless Chromium (tests/report/browser.py) at a desktop width
(1400 px) and a phone's (400 px): nothing makes the page scroll sideways, the verdict comes first, every moved
signal has its chart with axis titles, ticks and a legend, the deployments and the first moved window are
marked on it, and the page fetches nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.report.incident_html import incident_html
from harness.shadow.incident import IncidentSnapshot
from tests.report.browser import OVERFLOW, Page
from tests.shadow.test_incident import World, outage, world  # noqa: F401  (the module-scoped fixtures)

CHARTS = """[...document.querySelectorAll("svg.chart")].filter(s => s.checkVisibility()).map(s => ({
  fig: s.closest("figure").id, seg: s.closest("figure").getAttribute("data-segment"),
  signal: s.closest("figure").querySelector("figcaption code")?.textContent,
  titles: [...s.querySelectorAll("text.axis-title")].map(t => t.textContent),
  ticks: s.querySelectorAll("text.tick").length, legend: [...s.querySelectorAll("text.legend")].map(t => t.textContent),
  band: [...s.querySelectorAll("rect.alarm:not(.key)")].map(r => r.getBoundingClientRect().width),
  deploys: s.querySelectorAll("line.deploy").length, ref: s.querySelectorAll("line.refline title").length,
  moved: s.querySelectorAll("circle.dot.alarm").length, lines: s.querySelectorAll("polyline.series").length,
  expected: s.querySelectorAll("polyline.refline").length,
  width: s.getBoundingClientRect().width}))"""

SHOTS = Path("/tmp") / "incident-report-shots"


@pytest.fixture(scope="module")
def pages(world: World, outage: tuple[Path, IncidentSnapshot],  # noqa: F811
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("incident-html")
    out = {}
    for name, snap in (("incident", world.incident), ("quiet", world.quiet), ("outage", outage[1])):
        out[name] = folder / f"{name}.html"
        out[name].write_text(incident_html(snap), "utf-8")
    return out


def _shot(page: Page, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    w, h = page.screenshot(path, max_height=7000)
    assert w > 0 and h > 0 and path.stat().st_size > 10_000
    SHOTS.mkdir(exist_ok=True)
    shutil.copy(path, SHOTS / path.name)  # to look at after the run
    return path


@pytest.mark.parametrize("width", [1400, 400])
def test_the_incident_page_fits_and_marks_the_deployments(world: World, pages: dict[str, Path], page: Page,  # noqa: F811
                                                          width: int, tmp_path: Path) -> None:
    snap = world.incident
    page.open(pages["incident"].as_uri(), width, scripts=False)
    m = page.eval(OVERFLOW)
    assert m["width"] == width and m["scroll_width"] <= width and m["overflowing"] == [], m
    # the verdict comes right after the header (whose height depends on how long the project's path is)
    header_bottom = page.eval("document.querySelector('header.top').getBoundingClientRect().bottom")
    assert page.eval("document.querySelector('.verdict').getBoundingClientRect().top") < header_bottom + 90
    assert page.eval("document.querySelector('.verdict').dataset.status") == "moved"
    assert "first moved" in page.eval("document.querySelector('.verdict .headline').textContent")
    charts = page.eval(CHARTS)
    series = [c for c in charts if c["fig"].startswith("series-")]
    keys = {(p.signal, p.segment) for p in snap.series}
    assert len(series) == len(keys) >= 3
    assert {(c["signal"], c["seg"]) for c in series} >= {("format_valid", "geo=eu"), ("format_valid", "all")}
    for c in series:
        assert c["titles"][0] == "window start" and c["titles"][1].startswith(c["signal"])
        assert c["ticks"] >= 6 and c["legend"] == ["value", "moved", "reference"] and c["lines"] >= 1
        assert c["deploys"] == 2 and c["ref"] == 1 and c["moved"] >= 1  # the canary start and the rollout
        assert len(c["band"]) == 1 and c["band"][0] > 2  # the first moved window, visible at either width
        assert c["width"] <= width - 20
    traffic = next(c for c in charts if c["fig"] == "traffic-chart")
    assert traffic["titles"] == ["window start", "share of records"] and traffic["deploys"] == 2
    assert len(traffic["legend"]) == 2 and traffic["width"] <= width - 20
    # the prompt's text diff is on the page, its removed line marked
    dels = page.eval("[...document.querySelectorAll('pre.udiff span.del')].map(s => s.textContent)")
    assert dels == ["-{% if contract %}Format: {{ contract.prompt }}{% endif %}\"\"\""]
    # nothing is fetched: no src/href leaving the page
    assert page.eval("[...document.querySelectorAll('[src], link[href]')].length") == 0
    print(f"incident page at {width}px: {m['height']} px high")
    _shot(page, tmp_path, f"incident-{width}")
    # everything open: still nothing sideways
    page.eval("document.querySelectorAll('details').forEach(d => d.open = true)")
    m = page.eval(OVERFLOW)
    assert m["scroll_width"] <= width and m["overflowing"] == [], m


@pytest.mark.parametrize("width", [1400, 400])
def test_the_quiet_page(pages: dict[str, Path], page: Page, width: int, tmp_path: Path) -> None:
    page.open(pages["quiet"].as_uri(), width, scripts=False)
    m = page.eval(OVERFLOW)
    assert m["scroll_width"] <= width and m["overflowing"] == [], m
    assert page.eval("document.querySelector('.verdict').dataset.status") == "quiet"
    assert page.eval("document.querySelectorAll('figure.series').length") == 0
    assert m["height"] < 4000
    _shot(page, tmp_path, f"quiet-{width}")


@pytest.mark.parametrize("width", [1400, 400])
def test_the_outage_page_charts_the_volume_against_the_expected(outage: tuple[Path, IncidentSnapshot],  # noqa: F811
                                                                pages: dict[str, Path], page: Page, width: int,
                                                                tmp_path: Path) -> None:
    snap = outage[1]
    page.open(pages["outage"].as_uri(), width, scripts=False)
    m = page.eval(OVERFLOW)
    assert m["scroll_width"] <= width and m["overflowing"] == [], m
    assert page.eval("document.querySelector('.verdict').dataset.status") == "moved"
    assert "volume down to" in page.eval("document.querySelector('.verdict .headline').textContent")
    charts = {(c["signal"], c["seg"]): c for c in page.eval(CHARTS) if c["fig"].startswith("series-")}
    vol = charts[("volume", "all")]
    assert vol["titles"] == ["window start", "volume (records)"] and vol["legend"] == ["records", "moved", "expected"]
    assert vol["expected"] >= 1 and vol["ref"] == 0 and vol["lines"] >= 1 and vol["ticks"] >= 6
    moved = {x.bucket for x in snap.moves if x.signal == "volume" and x.segment == "all"}
    assert vol["moved"] == len(moved) >= 12 and len(vol["band"]) == 1 and vol["width"] <= width - 20
    assert ("error_kind", "all") in charts and charts[("error_kind", "all")]["ref"] == 1
    _shot(page, tmp_path, f"outage-{width}")
