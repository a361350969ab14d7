"""Walk tests of the grid worker's field page (issue 19 items 11 and 6), on a phone (390 × 844, touch) and on a
desktop (1440 × 900): what a worker sees doing the job — the first household without scrolling, "nearest 100 of
N", a chooser when several campaigns are open, a visited household's result and time, a numbered route that
starts at the building the worker stands at, labels that do not run together, and, offline, the list kept and
a waiting visit marked 待上传 before and after a reload. Screenshots are kept in each test's tmp_path (pytest
keeps the last runs' directories: pytest --basetemp=DIR to choose where)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from fixtures.synthetic_city import load_city
from spatial.access import Principal
from spatial.store import campaigns, nearby, users
from tests.conftest import go_offline, open_logged_in

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"
COMMUNITY = "440399001001"
PLANNER = Principal(2, "planner1", "planner", scope_code="440399001000")
SIZES = {"phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
         "desktop": {"viewport": {"width": 1440, "height": 900}}}


@pytest.fixture(params=sorted(SIZES))
def walk(request, live_server, browser, tmp_path):
    """The field page of worker1 (grid 01) with two open campaigns, and the point on surface (lon, lat, WGS 84)
    of a building of grid 01 to stand at."""
    base, sessions = live_server
    with sessions.begin() as s:
        load_city(s, households=1500, seed=5)
        users.create_user(s, "worker1", PASSWORD, "grid_worker", grid_codes=(f"{COMMUNITY}01",))
        winter = campaigns.open_campaign(s, PLANNER, "冬季排查", grid_codes=[f"{COMMUNITY}01", f"{COMMUNITY}02"])
        fire = campaigns.open_campaign(s, PLANNER, "消防排查", grid_codes=[f"{COMMUNITY}01"])
        building = s.execute(text(
            "SELECT b.id, ST_X(ST_PointOnSurface(b.footprint)), ST_Y(ST_PointOnSurface(b.footprint)) "
            "FROM buildings b JOIN grids g ON g.id = b.grid_id WHERE g.code = :c "
            "AND EXISTS (SELECT 1 FROM households h WHERE h.building_id = b.id) "
            "ORDER BY ST_Distance(b.footprint, ST_Centroid(g.boundary)) LIMIT 1"), {"c": f"{COMMUNITY}01"}).one()
    context, page, errors = open_logged_in(browser, base + "/field/", "worker1", PASSWORD, locale="zh-CN",
                                           **SIZES[request.param])
    shots = lambda name: page.screenshot(path=str(tmp_path / f"{request.param}-{name}.png"))  # noqa: E731
    yield page, sessions, (winter, fire), building, request.param, shots
    shots("last")
    context.close()
    assert not errors, errors


def set_position(page, lon: float, lat: float) -> None:
    page.evaluate("delete document.body.dataset.count; document.getElementById('where').open = true")
    page.fill("#lon", f"{lon:.7f}")
    page.fill("#lat", f"{lat:.7f}")
    page.select_option("#crs", "EPSG:4326")
    page.click("#set-position")
    page.wait_for_selector("body[data-count]", timeout=15_000)


def visible(page, selector: str) -> int:
    return page.locator(selector).evaluate_all("els => els.filter(e => e.offsetParent !== null).length")


def test_a_worker_walks_the_field_page(walk):
    page, sessions, (winter, fire), (building, lon, lat), size, shots = walk
    # several open campaigns: a chooser, not the first one silently; the choice stays
    options = page.locator("#campaign option").all_inner_texts()
    assert options == ["消防排查", "冬季排查"] and "2 个排查任务进行中" in page.locator("#progress").inner_text()
    page.select_option("#campaign", str(winter.id))
    page.wait_for_selector(f"#progress[data-campaign='{winter.id}']")
    set_position(page, lon, lat)
    page.reload()  # as the worker opens it again: the position is kept, the list comes at once
    page.wait_for_selector("body[data-ready='1'][data-count]", timeout=20_000)
    assert page.get_attribute("#progress", "data-campaign") == str(winter.id)
    assert page.locator("#where-now").inner_text().startswith("我的位置") and page.get_attribute("#where", "open") is None
    shots("first-screen")
    with sessions() as s:
        households = s.execute(text("SELECT sum(b.households) FROM buildings b JOIN grids g ON g.id = b.grid_id "
                                    "WHERE g.code = :c"), {"c": f"{COMMUNITY}01"}).scalar()
    assert page.locator(".area-label").all_inner_texts() == [f"01 · {households}户"]  # my grid, labelled
    # the first household is on the first screen, above the bar of buttons (no scrolling)
    first = page.locator("li.household").first.bounding_box()
    bar = page.locator("#actions").bounding_box()
    assert page.evaluate("window.scrollY") == 0
    assert first["y"] + first["height"] <= min(bar["y"], page.viewport_size["height"]), (first, bar)
    assert bar["y"] + bar["height"] <= page.viewport_size["height"] + 1  # the buttons are where the thumb is
    # "nearest 100 of N": the limit is not the total
    worker = Principal(1, "worker1", "grid_worker", grid_ids=frozenset(grid_ids(sessions)))
    with sessions() as s:
        total = len(nearby.nearby(s, worker, lon, lat, radius_m=200, limit=500, campaign_id=winter.id).households)
        s.rollback()
    assert total > 100
    assert page.locator("#status").inner_text() == f"最近 100 户 / 范围内共 {total} 户"
    # 20 rows, then the rest on request: the page stays short
    assert visible(page, "li.household") == 20 and page.locator("#more").inner_text() == "再显示 80 户"
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 2000 + (0 if size == "phone" else 400), height
    page.click("#more")
    assert visible(page, "li.household") == 100 and page.locator("#more").is_hidden()
    # a visit, then the visited household's sheet tells the result and the time
    target = page.locator("li.household[data-status='unvisited']").first
    household = target.get_attribute("data-id")
    target.click()
    page.wait_for_selector("#visit[data-visitable='1']:not([hidden])")
    assert page.locator("#visit-done").is_hidden()
    page.select_option("#visit-result", "follow_up")
    page.click("#visit button[type=submit]")
    page.wait_for_selector(f"li.household[data-id='{household}'][data-status='visited']", timeout=15_000)
    assert page.locator("#screened").inner_text() == "1"
    page.locator(f"li.household[data-id='{household}']").click()
    page.wait_for_selector("#visit[data-visitable='0']:not([hidden])")
    done = page.locator("#visit-done").inner_text()
    assert done.startswith("已排查·需跟进 · 走访时间 ") and re.search(r"\d{1,2}:\d{2}", done), done
    assert page.locator("#visit button[type=submit]").is_hidden() and page.locator("#ledger-open").is_visible()
    shots("visited-sheet")
    # a wrong result is corrected from the same sheet, with a reason; the list shows the corrected one
    page.click("#visit-fix summary")
    assert page.locator("#fix-result").input_value() == "follow_up"
    page.select_option("#fix-result", "vacant")
    page.click("#fix-send")
    assert page.locator("#fix-out").inner_text() == "请填写理由（至少 2 个字）"
    page.fill("#fix-reason", "误选，实为空置房")
    page.click("#fix-send")
    page.wait_for_function(f"() => document.querySelector(\"li.household[data-id='{household}'] .state\")"
                           "?.textContent === '空置房'", timeout=15_000)
    assert page.locator("#visit").is_hidden() and page.locator("#status").inner_text() == "已更正走访结果"
    assert page.locator("#screened").inner_text() == "1"
    with sessions() as s:
        assert s.execute(text("SELECT result, reason, corrected_by FROM campaign_visit_corrections")).one() == \
            ("vacant", "误选，实为空置房", "worker1")
    # the route: numbered stops in the list and on the map, starting with the building the worker stands at
    page.click("#route")
    page.wait_for_selector("body[data-route]", timeout=20_000)
    stops = page.locator("#route-info li")
    n = int(page.get_attribute("body", "data-route"))
    assert stops.count() == n > 1
    assert [s.strip() for s in stops.locator("i.stop").all_inner_texts()] == [str(i) for i in range(1, n + 1)]
    assert stops.first.get_attribute("data-building") == str(building) and "起点：您所在的楼栋" in stops.first.inner_text()
    assert page.locator(".stop-icon").all_inner_texts() == [str(i) for i in range(1, n + 1)]
    shots("route")
    # in English: rooms read "Unit 1 · 0101", the header's buttons stay on one line
    page.click("#lang")
    page.wait_for_function("() => document.documentElement.lang === 'en' && document.body.dataset.ready")
    page.wait_for_function("() => /^Unit \\S+ · \\S+/.test(document.querySelector('li.household .room').textContent)")
    for button in ("#lang", "#logout"):
        assert page.locator(button).bounding_box()["height"] < 34, button
    assert page.locator("#status").inner_text() == f"nearest 100 of {total} within the radius"
    assert "Start: the building you are at" in page.locator("#route-info li").first.inner_text()
    shots("english")


def grid_ids(sessions) -> list[int]:
    with sessions() as s:
        return list(s.execute(text("SELECT grid_id FROM grid_assignments")).scalars())


@pytest.mark.parametrize("walk", ["phone"], indirect=True)  # offline is the phone's case (one run keeps CI short)
def test_offline_the_list_stays_and_a_waiting_visit_says_to_send(walk):
    page, sessions, (winter, _), (_, lon, lat), _size, shots = walk
    page.wait_for_function("() => navigator.serviceWorker && navigator.serviceWorker.ready.then(() => true)")
    page.select_option("#campaign", str(winter.id))
    page.wait_for_selector(f"#progress[data-campaign='{winter.id}']")
    set_position(page, lon, lat)
    page.reload()  # now under the service worker
    page.wait_for_selector("body[data-ready='1'][data-count]", timeout=20_000)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=15_000)
    shown = page.locator("li.household").evaluate_all("els => els.map(e => e.dataset.id)")
    go_offline(page)
    target = page.locator("li.household[data-status='unvisited']").first
    household = target.get_attribute("data-id")
    target.click()
    page.click("#visit button[type=submit]")
    pending = page.locator(f"li.household[data-id='{household}'][data-status='pending']")
    pending.wait_for()
    assert pending.locator(".state").inner_text() == "待上传" and page.locator("#queued").inner_text() == "1 待上传"
    pending.click()  # not a form again: what waits to be sent
    page.wait_for_selector("#visit[data-visitable='0']:not([hidden])")
    assert page.locator("#visit-done").inner_text().startswith("待上传")
    page.click("#visit-cancel")
    page.reload()  # offline: the list, the map and the position as they were, the visit still waiting
    page.wait_for_function("() => document.getElementById('net').textContent === '离线'")
    page.wait_for_selector("body[data-cached='1']")
    assert page.locator("li.household").evaluate_all("els => els.map(e => e.dataset.id)") == shown
    assert page.locator(f"li.household[data-id='{household}']").get_attribute("data-status") == "pending"
    assert page.locator("#status").inner_text().startswith("离线：显示")
    assert page.locator("#where-now").inner_text().startswith("我的位置")
    assert page.evaluate("field.homes.getLayers().length") > 0
    shots("offline-reload")
    with sessions() as s:
        assert s.execute(text("SELECT count(*) FROM campaign_visits")).scalar() == 0
    page.context.set_offline(False)  # the page reloads itself, sends the visit, shows it visited
    page.wait_for_selector(f"li.household[data-id='{household}'][data-status='visited']", timeout=20_000)
    with sessions() as s:
        assert s.execute(text("SELECT campaign_id, household_id FROM campaign_visits")).one() == (winter.id, int(household))
