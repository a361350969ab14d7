"""The case pages on a phone-sized headless Chromium (390 × 844): a resident reports a problem without an account
(browser geolocation, WGS 84), gets a tracking code and follows it; the API's refusals read as clear Chinese; a grid
worker sees the case of their grid in the field page's Cases tab, accepts it and reports back once a planner has
dispatched it to them (If-Match); an overdue case shows 超时 in red. No CSP violation, no console error."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import text

from spatial.store import users
from tests import factories
from tests.conftest import watch_errors

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True,
         "locale": "zh-CN"}


def position(x_m: float, y_m: float) -> tuple[float, float]:
    """WGS 84 (lon, lat) of a point x_m, y_m metres from the factories' origin (inside the west grid below 200)."""
    lon, lat = factories.metres_box(x_m, y_m, x_m + 0.1, y_m + 0.1).centroid.coords[0]
    return float(lon), float(lat)


@pytest.fixture
def town(live_server):
    base, sessions = live_server
    with sessions.begin() as s:
        west, _ = factories.two_grids(s)
        users.create_user(s, "centre1", PASSWORD, "planner", scope_code=factories.SUBDISTRICT)
        users.create_user(s, "worker1", PASSWORD, "grid_worker", grid_codes=(west.code,))
        users.create_user(s, "worker2", PASSWORD, "grid_worker", grid_codes=(west.code,))
    return base, sessions


EXPECTED = re.compile(r"Failed to load resource: the server responded with a status of (404|409|412|422|429)")


def console_errors(context) -> list[str]:
    """Every console error of the context's pages (CSP violations and uncaught exceptions through watch_errors),
    but Chromium's note of an answer the test provokes on purpose (a 4xx the page explains)."""
    errors = watch_errors(context)

    def console(message) -> None:
        if message.type == "error" and not EXPECTED.search(message.text):
            errors.append("console: " + message.text)

    context.on("page", lambda page: page.on("console", console))
    return errors


def bearer(base: str, username: str) -> dict[str, str]:
    answer = httpx.post(base + "/api/auth/token", data={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": "Bearer " + answer.json()["access_token"]}


@pytest.fixture
def resident(town, browser, tmp_path):
    base, sessions = town
    lon, lat = position(50, 50)
    context = browser.new_context(**PHONE, geolocation={"longitude": lon, "latitude": lat, "accuracy": 15},
                                  permissions=["geolocation"])
    errors = console_errors(context)
    page = context.new_page()
    yield base, sessions, page, errors
    page.screenshot(path=str(tmp_path / "resident.png"), full_page=True)
    context.close()


def submit_and_wait(page) -> None:
    page.evaluate("document.getElementById('error').hidden = true")
    page.click("#submit")
    page.wait_for_function("() => document.body.dataset.code || !document.getElementById('error').hidden",
                           timeout=15_000)


def test_a_resident_reports_without_an_account_and_tracks_the_code(resident, tmp_path):
    base, sessions, page, errors = resident
    page.goto(base + "/report")
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)
    groups = page.locator("#category optgroup").evaluate_all("els => els.map(e => e.label)")
    assert "市容环境 · City appearance and environment" in groups
    assert page.locator("#category optgroup[label^='市容环境'] option[value='environment.garbage']").inner_text() \
        .startswith("垃圾堆放")
    page.select_option("#category", "environment.garbage")
    assert "城市管理" in page.locator("#category-info").inner_text()
    page.click("#locate")
    page.wait_for_selector("body[data-position='gps']")
    assert "WGS 84" in page.locator("#where").inner_text()
    page.fill("#description", "小区东门垃圾桶满了，垃圾堆在路边")
    page.screenshot(path=str(tmp_path / "report-form.png"), full_page=True)
    page.click("#contact summary")
    page.fill("#reporter-name", "张三")
    page.fill("#reporter-phone", "12345")  # the API refuses it (422): the page says so in Chinese
    submit_and_wait(page)
    assert page.locator("#error").get_attribute("data-status") == "422"
    assert "手机号码格式不正确" in page.locator("#error").inner_text()
    page.fill("#reporter-phone", "13812345678")
    submit_and_wait(page)
    code = page.get_attribute("body", "data-code")
    assert re.fullmatch(r"[2-9A-HJ-NP-Z]{10}", code)
    assert page.locator("#code").inner_text() == code and page.locator("#code").is_visible()
    assert "请保存查询码" in page.locator("#done").inner_text()
    font_px = float(page.locator("#code").evaluate("e => parseFloat(getComputedStyle(e).fontSize)"))
    assert font_px >= 28  # shown large
    with sessions() as s:
        row = s.execute(text("SELECT ST_X(location), ST_Y(location), reporter_phone, reporter_kind, state FROM cases "
                             "WHERE tracking_code = :c"), {"c": code}).one()
    lon, lat = position(50, 50)
    assert abs(row[0] - lon) < 1e-6 and abs(row[1] - lat) < 1e-6  # WGS 84 sent as such, not shifted
    assert row[2:] == ("13812345678", "resident", "reported")
    page.screenshot(path=str(tmp_path / "report-code.png"))
    page.click("#track-link")
    page.wait_for_selector("body[data-tracked='reported']", timeout=15_000)
    steps = page.locator("#steps li")
    assert steps.count() == 1 and steps.first.inner_text().startswith("已上报")
    assert re.search(r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}", steps.first.inner_text())
    result = page.locator("#result").inner_text()
    assert "垃圾堆放" in result and "138" not in result and "张" not in result  # no personal data
    # the dispatcher registers it: the resident sees the new step
    centre = bearer(base, "centre1")
    with sessions() as s:
        case_id = s.execute(text("SELECT id FROM cases WHERE tracking_code = :c"), {"c": code}).scalar_one()
    assert httpx.post(f"{base}/api/cases/{case_id}/actions", headers=centre, json={"action": "register"}).status_code == 200
    page.reload()
    page.wait_for_selector("body[data-tracked='registered']", timeout=15_000)
    assert [t.split("\n")[0] for t in steps.all_inner_texts()] == ["已上报 reported", "已立案 registered"]
    page.fill("#tracking-code", "ABCDEFGH23")
    page.click("#track button[type=submit]")
    page.wait_for_selector("#error:not([hidden])")
    assert "没有找到这个查询码" in page.locator("#error").inner_text()
    assert not errors, errors


def test_a_position_outside_every_community_and_a_flood_read_as_clear_chinese(resident):
    base, sessions, page, errors = resident
    page.goto(base + "/report")
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)
    page.select_option("#category", "facilities.streetlight")
    page.fill("#description", "路灯不亮")
    far_lon, far_lat = position(3000, -2000)
    page.context.set_geolocation({"longitude": far_lon, "latitude": far_lat, "accuracy": 10})
    page.click("#locate")
    page.wait_for_function(f"() => document.getElementById('where').textContent.includes('{far_lat:.6f}')")
    submit_and_wait(page)
    assert page.locator("#error").get_attribute("data-status") == "422"
    assert "不在本服务覆盖的社区范围内" in page.locator("#error").inner_text()
    lon, lat = position(120, 80)
    page.context.set_geolocation({"longitude": lon, "latitude": lat, "accuracy": 10})
    page.click("#locate")
    page.wait_for_function(f"() => document.getElementById('where').textContent.includes('{lat:.6f}')")
    page.locator("#map").tap()  # a tap on the map (its centre, where the locate put the view) sets the position
    page.wait_for_selector("body[data-position='map']")
    body = {"category": "facilities.streetlight", "x": lon, "y": lat, "crs": "EPSG:4326", "description": "路灯",
            "reporter_phone": "13900000000"}
    assert [httpx.post(base + "/api/public/cases", json=body).status_code for _ in range(5)] == [201] * 5
    page.click("#contact summary")
    page.fill("#reporter-phone", "139 0000 0000")
    submit_and_wait(page)
    assert page.locator("#error").get_attribute("data-status") == "429"
    assert "提交太频繁" in page.locator("#error").inner_text() and "try again" in page.locator("#error").inner_text()
    with sessions() as s:
        assert s.execute(text("SELECT count(*) FROM cases")).scalar() == 5
    page.fill("#reporter-phone", "")
    submit_and_wait(page)  # without the phone, this address is still under its limit
    code = page.get_attribute("body", "data-code")
    with sessions() as s:
        x, y = s.execute(text("SELECT ST_X(location), ST_Y(location) FROM cases WHERE tracking_code = :c"),
                         {"c": code}).one()
    assert abs(x - lon) < 3e-5 and abs(y - lat) < 3e-5  # the tapped point, in WGS 84 (GCJ-02 would be ~500 m off)
    assert not errors, errors
