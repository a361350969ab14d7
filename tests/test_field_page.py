"""The field page on a phone-sized headless Chromium (390 × 844): a grid worker logs in, types a position in
GCJ-02 (as WeChat gives it), sees the nearest households in order, records a visit, sees coverage go up, plans a
route; the page opens again with no connection, and a visit recorded offline is sent once the phone is online."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from fixtures.synthetic_city import load_city
from spatial.access import Principal
from spatial.geometry.crs import gcj02_to_wgs84, wgs84_to_gcj02
from spatial.store import campaigns, nearby, users
from tests.conftest import go_offline, open_logged_in

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"
COMMUNITY = "440399001001"
PLANNER = Principal(2, "planner1", "planner", scope_code="440399001000")


@pytest.fixture
def phone(live_server, browser, tmp_path):
    base, sessions = live_server
    with sessions.begin() as s:
        load_city(s, households=1500, seed=5)
        users.create_user(s, "worker1", PASSWORD, "grid_worker", grid_codes=(f"{COMMUNITY}01",))
        campaign = campaigns.open_campaign(s, PLANNER, "冬季排查", grid_codes=[f"{COMMUNITY}01", f"{COMMUNITY}02"])
        centre = s.execute(text("SELECT ST_X(ST_Centroid(boundary)), ST_Y(ST_Centroid(boundary)) FROM grids "
                                "WHERE code = :c"), {"c": f"{COMMUNITY}01"}).one()
    context, page, errors = open_logged_in(browser, base + "/field/", "worker1", PASSWORD,
                                           viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                           is_mobile=True, has_touch=True, locale="zh-CN")
    yield page, sessions, campaign, (float(centre[0]), float(centre[1]))
    page.screenshot(path=str(tmp_path / "field.png"), full_page=True)
    context.close()
    assert not errors, errors


def type_position(page, lon: float, lat: float, crs: str) -> None:
    page.evaluate("delete document.body.dataset.count; document.getElementById('where').open = true")
    page.fill("#lon", f"{lon:.7f}")
    page.fill("#lat", f"{lat:.7f}")
    page.select_option("#crs", crs)
    page.click("#set-position")
    page.wait_for_selector("body[data-count]", timeout=15_000)


def test_a_worker_finds_the_nearest_households_records_a_visit_and_sees_coverage_rise(phone):
    page, sessions, campaign, (lon, lat) = phone
    assert page.locator("header").inner_text().startswith("网格员外勤")
    assert 0 < int(page.locator("#targeted").inner_text()) < campaign.targeted  # my grid's part of the campaign
    before = int(page.locator("#screened").inner_text())
    glon, glat = wgs84_to_gcj02(lon, lat)
    type_position(page, float(glon), float(glat), "GCJ-02")
    assert "GCJ-02" in page.locator("#where-now").inner_text() and "GCJ-02" in page.locator("#crs-note").text_content()
    items = page.locator("li.household")
    distances = [float(d) for d in items.evaluate_all("els => els.map(e => e.dataset.distance)")]
    assert len(distances) >= 10 and distances == sorted(distances)
    shown = [int(i) for i in items.evaluate_all("els => els.map(e => e.dataset.id)")]
    worker = Principal(1, "worker1", "grid_worker", grid_ids=frozenset(page_grid_ids(sessions)))
    with sessions() as s:
        wlon, wlat = gcj02_to_wgs84(float(glon), float(glat))
        found = nearby.nearby(s, worker, float(wlon), float(wlat), radius_m=200, limit=100)
        expected = [h.id for h in found.households]
        s.rollback()
    assert shown == expected
    assert "*" in items.first.inner_text()  # masked head of household
    items.first.click()
    page.wait_for_selector("#visit:not([hidden])")
    page.select_option("#visit-result", "follow_up")
    page.fill("#visit-note", "独居老人，需定期回访")
    page.click("#visit button[type=submit]")
    page.wait_for_function(f"() => Number(document.getElementById('screened').textContent) === {before + 1}",
                           timeout=15_000)
    page.wait_for_selector(f"li.household[data-id='{shown[0]}'][data-status='visited']", timeout=15_000)
    with sessions() as s:
        row = s.execute(text("SELECT result, note, far_from_building FROM campaign_visits")).one()
        phone_number = s.execute(text("SELECT head_phone FROM households WHERE id = :h"), {"h": shown[0]}).scalar()
    assert row == ("follow_up", "独居老人，需定期回访", False)
    # a visited household opens for a reveal only, which needs a reason
    page.locator(f"li.household[data-id='{shown[0]}']").click()
    page.wait_for_selector("#visit[data-visitable='0']:not([hidden])")
    assert page.locator("#visit button[type=submit]").is_hidden()
    page.click("#reveal summary")
    page.click("#reveal-go")
    assert "理由" in page.locator("#reveal-out").inner_text()
    page.fill("#reveal-reason", "电话联系户主")
    page.click("#reveal-go")
    page.wait_for_function(f"() => document.getElementById('reveal-out').textContent.includes('{phone_number}')")
    page.click("#visit-cancel")
    page.click("#route")
    page.wait_for_selector("body[data-route]", timeout=20_000)
    assert int(page.locator("#route-length").inner_text()) > 0
    assert page.locator("#route-info li").count() == int(page.get_attribute("body", "data-route"))
    page.click("#lang")
    page.wait_for_function("() => document.documentElement.lang === 'en'")
    assert page.locator("header").inner_text().startswith("Field work")


def page_grid_ids(sessions) -> list[int]:
    with sessions() as s:
        return list(s.execute(text("SELECT grid_id FROM grid_assignments")).scalars())


def test_the_page_opens_offline_and_sends_a_queued_visit_when_back_online(phone):
    page, sessions, _campaign, (lon, lat) = phone
    page.wait_for_function("() => navigator.serviceWorker && navigator.serviceWorker.ready.then(() => true)")
    page.reload()
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=15_000)
    type_position(page, lon, lat, "EPSG:4326")
    target = page.locator("li.household[data-status='unvisited']").first
    household = int(target.get_attribute("data-id"))
    page.context.set_offline(True)
    page.reload()  # served by the service worker
    assert page.locator("header").inner_text().startswith("网格员外勤")
    page.wait_for_function("() => document.getElementById('net').textContent === '离线'")
    page.context.set_offline(False)  # the page reloads itself to fetch its data
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)
    type_position(page, lon, lat, "EPSG:4326")
    go_offline(page)
    page.locator(f"li.household[data-id='{household}']").click()
    page.click("#visit button[type=submit]")
    page.wait_for_selector("#queued:not([hidden])")
    with sessions() as s:
        assert s.execute(text("SELECT count(*) FROM campaign_visits")).scalar() == 0
    page.context.set_offline(False)
    page.wait_for_selector("#queued[hidden]", state="attached", timeout=15_000)
    with sessions() as s:
        assert s.execute(text("SELECT household_id FROM campaign_visits")).scalars().all() == [household]


DOT = """() => { const m = field.homes.getLayers()[0], p = field.map.latLngToContainerPoint(m.getLatLng());
  const r = field.map.getContainer().getBoundingClientRect(); return [r.left + p.x, r.top + p.y]; }"""


def test_a_tap_on_a_building_opens_its_households_and_the_position_moves_only_when_asked(phone):
    page, _, _, (lon, lat) = phone
    glon, glat = wgs84_to_gcj02(lon, lat)
    type_position(page, float(glon), float(glat), "GCJ-02")
    typed = page.input_value("#lon")
    page.locator("#map").scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # the map's pan to the position ends
    page.mouse.click(*page.evaluate(DOT))
    popup = page.locator(".building-popup")
    popup.wait_for()
    building = popup.get_attribute("data-building")
    listed = page.locator("li.household").evaluate_all("els => els.map(e => e.dataset.id)")
    offered = popup.locator("button").evaluate_all("els => els.map(e => e.dataset.id)")
    with_building = page.evaluate(f"() => [...document.querySelectorAll('li.household')].filter(li => {{"
                                  f"let b = li.previousElementSibling; while (b && !b.classList.contains('building')) "
                                  f"b = b.previousElementSibling; return b && b.dataset.building === '{building}'; }})"
                                  f".map(li => li.dataset.id)")
    assert offered and offered == with_building and set(offered) <= set(listed)
    assert page.input_value("#lon") == typed and page.input_value("#crs") == "GCJ-02"   # the tap moved nothing
    popup.locator("button").first.click()
    page.wait_for_selector(f"#visit[data-household='{offered[0]}']:not([hidden])")
    page.click("#visit-cancel")

    box = page.locator("#map").bounding_box()
    page.evaluate("delete document.body.dataset.count")
    page.mouse.click(box["x"] + 12, box["y"] + box["height"] - 12)                 # a corner: no dot there
    page.locator("#move-here").wait_for()
    assert page.input_value("#lon") == typed                                          # not yet
    page.click("#move-here")
    page.wait_for_selector("body[data-count]", timeout=15_000)
    assert page.input_value("#crs") == "EPSG:4326" and page.input_value("#lon") != typed
