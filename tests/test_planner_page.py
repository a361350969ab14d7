"""The planner page in headless Chromium: preview a redraw, save it with a reason, reload and see it;
a second browser still holding the old version gets the conflict message."""

from __future__ import annotations

import pytest
from shapely.geometry import mapping

from spatial.store import users
from tests import factories
from tests.conftest import open_logged_in

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"
WEST = factories.COMMUNITY + "01"


@pytest.fixture
def site(live_server):
    base, sessions = live_server
    with sessions.begin() as s:
        west, east = factories.two_grids(s)
        factories.building(s, west, 20, 20, number=1, households=200, residents=500)
        factories.building(s, east, 215, 100, number=1, households=150, residents=400)
        users.create_user(s, "planner1", PASSWORD, "planner", scope_code=factories.SUBDISTRICT)
    return base


def open_planner(browser, base):
    _, page, errors = open_logged_in(browser, base + "/planner", "planner1", PASSWORD,
                                     viewport={"width": 1300, "height": 850})
    page.select_option("#grid", WEST)
    page.wait_for_function(f"() => document.getElementById('grid-info').textContent.includes('{WEST}')")
    return page, errors


def preview(page, x1: float) -> None:
    geometry = mapping(factories.metres_box(0, 0, x1, 200).geoms[0])
    count = int(page.locator("body").get_attribute("data-preview") or 0)
    page.evaluate("g => planner.boundaryEdit(g)", geometry)
    page.wait_for_function(f"() => Number(document.body.dataset.preview || 0) > {count}")


def test_redraw_preview_save_reload_and_stale_second_browser(site, browser, tmp_path):
    stale_page, stale_errors = open_planner(browser, site)  # holds version 1
    page, errors = open_planner(browser, site)
    preview(page, 250)
    assert page.locator("#moved-count").inner_text() == "1"
    assert page.locator("#moved li").all_inner_texts() == ["02 → 01: 1 栋 · 150 户"]
    # the east grid is left with no household: it may be saved, but the report says so in amber
    status = page.locator("#report-status")
    assert status.get_attribute("data-level") == "warn", status.inner_text()
    assert "将有 0 户" in status.inner_text() and "300–500" in status.inner_text()
    assert page.locator("#report table tr").count() == 1 + 2         # the two grids the change touches
    assert page.locator("#save").is_enabled()
    page.fill("#reason", "把市场街划入西网格")
    page.click("#save")
    page.wait_for_function("() => document.getElementById('message').textContent.includes('已保存')")
    assert "版本 2" in page.locator("#message").inner_text()
    page.screenshot(path=str(tmp_path / "planner.png"))

    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    page.select_option("#grid", WEST)
    page.wait_for_function("() => document.getElementById('history').textContent.includes('把市场街划入西网格')")
    assert "版本 2" in page.locator("#grid-info").inner_text()

    stale_page.evaluate("g => planner.boundaryEdit(g)", mapping(factories.metres_box(0, 0, 180, 200).geoms[0]))
    stale_page.wait_for_function("() => document.getElementById('message').textContent.length > 0")
    assert "已被他人修改" in stale_page.locator("#message").inner_text()
    assert not errors and not stale_errors


def test_a_change_that_moves_nothing_lists_one_grid_and_a_building_shows_its_counts(site, browser):
    page, errors = open_planner(browser, site)
    preview(page, 200)  # the west grid's own boundary again: nothing moves, no grid is touched
    status = page.locator("#report-status")
    assert status.get_attribute("data-level") == "good" and "无重叠" in status.inner_text()
    assert page.locator("#moved li").count() == 0 and page.locator("#report table tr").count() == 1
    page.click("#cancel")
    point = page.evaluate("""() => {
      const layer = planner.buildingsLayer.getLayers().find((l) => l.feature.properties.households === 200);
      const p = planner.map.latLngToContainerPoint(layer.getBounds().getCenter());
      const box = planner.map.getContainer().getBoundingClientRect();
      return [box.left + p.x, box.top + p.y];
    }""")
    page.mouse.click(*point)
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    assert "户数 200" in popup.inner_text() and "人口 500" in popup.inner_text() and "01 ·" in popup.inner_text()
    assert not errors
