"""Risk zones in a real headless Chromium: the overview map colours zones by level with a legend, its slider shows
the zones as they were days ago and the replay runs through the last 28 days to today; the printable zone sheet
shows the boundary, level, households per grid, the masked list and the checkpoints, in Chinese and English."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from spatial.access import Principal
from spatial.store import risk_zones, users
from spatial.store.models import Household
from tests import factories
from tests.conftest import open_logged_in

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"
PLANNER = Principal(0, "planner1", "planner", scope_code=factories.SUBDISTRICT)


@pytest.fixture
def town(live_server):
    base, sessions = live_server
    with sessions.begin() as s:
        west, east = factories.two_grids(s)
        b1 = factories.building(s, west, 20, 20, number=1, households=2, residents=5)
        factories.building(s, east, 260, 60, number=1, households=1, residents=1)
        s.add_all([Household(building_id=b1.id, unit="1", room="101", residents=3, head_name="张三丰",
                             head_phone="13812345678"),
                   Household(building_id=b1.id, unit="1", room="102", residents=2, head_name="李四")])
        lon, lat = factories.metres_box(30, 40, 30.1, 40.1).centroid.coords[0]
        s.execute(text("INSERT INTO checkpoints (name, location, status, staff_count) VALUES "
                       "('西门卡口', ST_SetSRID(ST_MakePoint(:x, :y), 4326), 'staffed', 2)"), {"x": lon, "y": lat})
        users.create_user(s, "planner1", PASSWORD, "planner", scope_code=factories.SUBDISTRICT)
        users.create_user(s, "viewer1", PASSWORD, "viewer", scope_code=factories.SUBDISTRICT)
        now = s.execute(text("SELECT now()")).scalar_one()
        zone = risk_zones.designate(s, PLANNER, target_kind="grid", target_ref=west.code, level="yellow",
                                    reason="出现密接", valid_from=now - timedelta(days=10))
        risk_zones.change(s, PLANNER, zone.id, 1, level="red", reason="确诊病例", at=now - timedelta(days=3))
        building = risk_zones.designate(s, PLANNER, target_kind="building", target_ref=str(b1.id), level="sealed",
                                        scheme_name="control", reason="楼栋封控", name="一号楼封控区")
    return base, zone.id, building.id


def test_the_map_colours_zones_by_level_and_the_slider_replays_the_last_weeks(town, browser, tmp_path):
    base, zone_id, _ = town
    context, page, errors = open_logged_in(browser, base + "/", "viewer1", PASSWORD,
                                           viewport={"width": 1200, "height": 800}, locale="zh-CN")
    body = page.locator("body")
    assert body.get_attribute("data-zones") == "2"
    assert sorted(body.get_attribute("data-zone-levels").split(",")) == ["red", "sealed"]
    panel = page.locator("#zone-panel")
    assert "红色" in panel.inner_text() and "封控区" in panel.inner_text()  # the legend: both schemes' levels
    page.locator("#zone-day").fill("-5")  # five days ago: the grid zone was still yellow, the building zone not yet
    page.wait_for_function("() => document.body.dataset.zoneDay === '-5'")
    assert body.get_attribute("data-zone-levels") == "yellow"
    assert "5 天前" in page.locator("#zone-when").inner_text()
    page.locator("#zone-day").fill("-20")
    page.wait_for_function("() => document.body.dataset.zoneDay === '-20'")
    assert body.get_attribute("data-zones") == "0"
    page.click("#zone-play")
    page.wait_for_function("() => document.body.dataset.zoneDay === '-28'", timeout=10_000)
    page.wait_for_function("() => document.body.dataset.replayed === '1'", timeout=40_000)
    assert body.get_attribute("data-zone-day") == "0" and body.get_attribute("data-zones") == "2"
    page.screenshot(path=str(tmp_path / "zones.png"))
    page.click("#lang")
    page.wait_for_function("() => document.documentElement.lang === 'en' && document.body.dataset.ready === '1'")
    page.wait_for_function("() => document.getElementById('zone-panel').innerText.includes('Risk zones')")
    assert "Sealed area" in panel.inner_text()
    context.close()
    assert not errors, errors


def test_the_printable_zone_sheet(town, browser, tmp_path):
    base, zone_id, building_zone = town
    context, page, errors = open_logged_in(browser, f"{base}/risk-zones/{building_zone}/sheet", "planner1", PASSWORD,
                                           viewport={"width": 1000, "height": 1200}, locale="zh-CN")
    page.wait_for_selector("#zone-name")
    assert page.locator("#zone-name").inner_text() == "一号楼封控区"
    assert "封控区" in page.locator("#zone-level").inner_text()
    assert page.locator("#sheet-households").inner_text() == "2"
    assert "西门卡口" in page.locator("#sheet-checkpoints").inner_text()
    content = page.content()
    assert "张*" in content and "138****5678" in content and "张三丰" not in content  # masked on the server
    assert page.locator("#sheet-map path.leaflet-interactive").count() >= 1  # the boundary is drawn
    page.screenshot(path=str(tmp_path / "sheet.png"), full_page=True)
    page.click("#lang")
    page.wait_for_function("() => document.getElementById('zone-level')?.innerText.includes('Sealed area')")
    assert "Households per grid" in page.locator("#sheet-body").inner_text()
    context.close()
    assert not errors, errors
    # a viewer sees the sheet's counts (0: no household data) and no list
    context, page, errors = open_logged_in(browser, f"{base}/risk-zones/{zone_id}/sheet", "viewer1", PASSWORD)
    page.wait_for_selector("#zone-name")
    assert page.locator("#sheet-households").inner_text() == "0" and "李*" not in page.content()
    context.close()
    assert not errors, errors


def test_the_wall_screen_colours_communities_by_their_highest_zone(town, browser):
    base, _, _ = town
    context, page, errors = open_logged_in(browser, f"{base}/screen?division={factories.SUBDISTRICT}", "viewer1",
                                           PASSWORD, viewport={"width": 1920, "height": 1080}, locale="zh-CN")
    page.wait_for_function("() => Number(document.body.dataset.polls || 0) >= 1", timeout=20_000)
    assert page.locator("#kpi-risk .value").inner_text().startswith("2")
    assert page.locator("#communities tbody td.risk-level").get_attribute("data-severity") == "5"
    assert "红色" in page.locator("#communities tbody td.risk-level").inner_text()
    page.wait_for_function("() => document.body.dataset.riskColoured === '1'", timeout=30_000)
    colour = page.evaluate("() => screenPage.map.getPaintProperty('risk-communities', 'fill-color')")
    assert colour[:3] == ["match", ["get", "code"], factories.COMMUNITY] and colour[3] == "#d32f2f"
    assert page.evaluate("() => document.documentElement.scrollWidth <= 1920 && "
                         "document.documentElement.scrollHeight <= 1080")
    context.close()
    assert not errors, errors
