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
from spatial.geometry.crs import GCJ02, WGS84, transform_xy
from tests.conftest import open_logged_in, watch_errors

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


def left_minutes(label: str) -> float:
    """Minutes of a page label "剩余 1 小时 20 分" / "超时 35 分" (negative when overdue)."""
    match = re.fullmatch(r"(剩余|超时) (?:(\d+) 小时)? ?(?:(\d+) 分)?", label)
    assert match and (match[2] or match[3]), label
    minutes = int(match[2] or 0) * 60 + int(match[3] or 0)
    return -minutes if match[1] == "超时" else minutes


@pytest.fixture
def worker(town, browser, tmp_path):
    base, sessions = town
    lon, lat = position(60, 60)
    created = httpx.post(base + "/api/public/cases", json={
        "category": "environment.garbage", "x": lon, "y": lat, "crs": "EPSG:4326", "description": "垃圾满了"})
    assert created.status_code == 201, created.text
    with sessions() as s:
        case_id = s.execute(text("SELECT id FROM cases WHERE tracking_code = :c"),
                            {"c": created.json()["tracking_code"]}).scalar_one()
    context, page, errors = open_logged_in(browser, base + "/field/", "worker1", PASSWORD, **PHONE)
    page.on("console", lambda m: errors.append("console: " + m.text)
            if m.type == "error" and not EXPECTED.search(m.text) else None)
    yield base, sessions, page, case_id
    page.screenshot(path=str(tmp_path / "worker.png"), full_page=True)
    context.close()
    assert not errors, errors


def refresh_cases(page, choice: str | None = None) -> int:
    """Reload the list (with the filter ``choice``); how many cases it shows. The page clears body[data-cases]
    when a load starts (in the click or change handler) and sets it when the latest load has rendered."""
    if choice is None:
        page.click("#case-refresh")
    else:
        page.select_option("#case-filter", choice)
    page.wait_for_selector("body[data-cases]", timeout=15_000)
    return int(page.get_attribute("body", "data-cases"))


def act_on_page(page, action: str, note: str | None = None) -> None:
    if note is not None:
        page.fill("#case-note", note)
    version = page.get_attribute("#case-sheet", "data-version")
    page.click(f"#case-actions button[data-action='{action}']")
    page.wait_for_function(f"() => document.getElementById('case-sheet').dataset.version !== '{version}'",
                           timeout=15_000)


def test_a_worker_sees_the_case_accepts_it_and_reports_back(worker, tmp_path):
    base, sessions, page, case_id = worker
    page.click("#tabs [data-tab='cases']")
    page.wait_for_selector(f"li.case[data-id='{case_id}'][data-state='reported']", timeout=15_000)
    assert page.locator("#field").is_hidden() and page.locator("#case-badge").is_hidden()
    centre = bearer(base, "centre1")
    etag = None
    for body in ({"action": "register"}, {"action": "dispatch", "assignee": "worker1"}):
        answer = httpx.post(f"{base}/api/cases/{case_id}/actions", headers={**centre, **({"If-Match": etag} if etag else {})},
                            json=body)
        assert answer.status_code == 200, answer.text
        etag = answer.headers["etag"]
    refresh_cases(page)
    item = page.locator(f"li.case[data-id='{case_id}']")
    assert item.get_attribute("data-state") == "dispatched"
    assert "我的" in item.inner_text() and "已派遣" in item.inner_text()
    assert left_minutes(item.locator(".left").inner_text()) > 0
    assert page.locator("#case-badge").inner_text() == "1"
    assert refresh_cases(page, "mine") == 1
    assert refresh_cases(page, "state:feedback") == 0
    assert refresh_cases(page, "state:dispatched") == 1
    item.click()
    page.wait_for_selector(f"#case-sheet[data-case-id='{case_id}']:not([hidden])")
    offered = page.locator("#case-actions button").evaluate_all("els => els.map(e => e.dataset.action)")
    assert offered == ["accept", "return", "request_extension"]  # no dispatching on the field page
    assert page.locator("#case-actions button[data-action='accept']").inner_text() == "接单"
    assert page.locator("#case-actions button[data-action='request_extension']").inner_text() == "申请延期"
    page.screenshot(path=str(tmp_path / "case-sheet.png"))
    # someone changes the case meanwhile (the worker, from another phone): the page's ETag is stale, 412
    me = bearer(base, "worker1")
    other = httpx.post(f"{base}/api/cases/{case_id}/actions", headers=me, json={
        "action": "request_extension", "note": "需要物业配合", "extension": {"amount": 1, "unit": "work_days"}})
    assert other.status_code == 200, other.text
    act_on_page(page, "accept")
    assert "刚被他人更新" in page.locator("#case-message").inner_text()
    assert page.get_attribute("#case-sheet", "data-state") == "dispatched"
    assert "需要物业配合" in page.locator("#case-history").inner_text()  # reloaded
    page.click("#case-actions button[data-action='return']")  # needs a reason: the page asks, sends nothing
    assert page.locator("#case-message").inner_text() == "请填写理由"
    act_on_page(page, "accept")
    assert page.get_attribute("#case-sheet", "data-state") == "handling"
    assert "已完成：接单" in page.locator("#case-message").inner_text()
    act_on_page(page, "report_back", note="已联系环卫清理完毕")
    assert page.get_attribute("#case-sheet", "data-state") == "feedback"
    assert page.locator("#case-actions button").count() == 0  # its handler does not verify it
    with sessions() as s:
        events = s.execute(text("SELECT action, actor, note FROM case_events WHERE case_id = :c ORDER BY id"),
                           {"c": case_id}).all()
    assert [e.action for e in events] == ["report", "register", "dispatch", "request_extension", "accept",
                                          "report_back"]
    assert events[-1].actor == "worker1" and events[-1].note == "已联系环卫清理完毕"
    page.click("#case-close")
    # another worker of the grid verifies it, or sends it back for redo, on their page
    context = page.context.browser.new_context(**PHONE)
    other_errors = console_errors(context)
    other_page = context.new_page()
    other_page.goto(base + "/field/")
    other_page.fill("input[name=username]", "worker2")
    other_page.fill("input[name=password]", PASSWORD)
    other_page.click("#login button[type=submit]")
    other_page.wait_for_selector("body[data-ready='1']", timeout=20_000)
    other_page.click("#tabs [data-tab='cases']")
    assert refresh_cases(other_page, "mine") == 0
    assert refresh_cases(other_page, "state:feedback") == 1
    other_page.click(f"li.case[data-id='{case_id}']")
    other_page.wait_for_selector("#case-sheet:not([hidden])")
    offered = other_page.locator("#case-actions button").evaluate_all("els => els.map(e => e.dataset.action)")
    assert offered == ["verify", "verify_fail"]
    act_on_page(other_page, "verify_fail", note="路边还有垃圾")
    assert other_page.get_attribute("#case-sheet", "data-state") == "handling"
    context.close()
    assert not other_errors, other_errors


def test_an_overdue_case_shows_overdue_in_red_and_a_worker_reports_one_here(worker, tmp_path):
    base, sessions, page, case_id = worker
    with sessions.begin() as s:  # its registration is 10 days late
        s.execute(text("UPDATE cases SET deadline = now() - interval '10 days' WHERE id = :c"), {"c": case_id})
    page.click("#tabs [data-tab='cases']")
    item = page.locator(f"li.case[data-id='{case_id}']")
    page.wait_for_selector(f"li.case[data-id='{case_id}'][data-overdue='1']", timeout=15_000)  # reloaded on opening
    assert page.input_value("#case-filter") == "open"  # what the page opens with: the cases not finished
    label = item.locator(".left")
    assert label.inner_text().startswith("超时 ")
    assert label.evaluate("e => getComputedStyle(e).color") == "rgb(198, 40, 40)"
    answer = httpx.get(f"{base}/api/cases/{case_id}", headers=bearer(base, "worker1")).json()
    assert answer["overdue"] and abs(left_minutes(label.inner_text()) - answer["remaining_min"]) <= 2
    assert refresh_cases(page, "overdue") == 1
    # report a case here: the position typed on the field tab in GCJ-02 (as WeChat gives it)
    page.click("#tabs [data-tab='field']")
    lon, lat = position(150, 120)
    glon, glat = transform_xy(lon, lat, WGS84, GCJ02)
    page.fill("#lon", f"{float(glon):.7f}")
    page.fill("#lat", f"{float(glat):.7f}")
    page.select_option("#crs", "GCJ-02")
    page.click("#set-position")
    page.click("#tabs [data-tab='cases']")
    page.click("#case-here")
    page.wait_for_selector("#case-report:not([hidden])")
    assert "GCJ-02" in page.locator("#report-where").inner_text()
    page.select_option("#report-category", "facilities.streetlight")
    page.fill("#report-description", "3 号楼前路灯不亮")
    page.click("#case-report button[type=submit]")
    page.wait_for_selector("body[data-reported-case]", timeout=15_000)
    new_id = int(page.get_attribute("body", "data-reported-case"))
    with sessions() as s:
        row = s.execute(text("SELECT ST_X(location), ST_Y(location), reporter_kind, reporter_user, state FROM cases "
                             "WHERE id = :c"), {"c": new_id}).one()
    assert abs(row[0] - lon) < 1e-6 and abs(row[1] - lat) < 1e-6  # GCJ-02 taken back to WGS 84
    assert row[2:] == ("grid_worker", "worker1", "reported")
    assert refresh_cases(page, "") == 2 and refresh_cases(page, "open") == 2
    assert page.locator(f"li.case[data-id='{new_id}']").count() == 1
    page.screenshot(path=str(tmp_path / "cases.png"), full_page=True)
    page.click("#lang")  # English: the tab, the filter and the time left follow
    page.wait_for_function("() => document.documentElement.lang === 'en'")
    page.wait_for_function("() => document.querySelector('li.case .left').textContent.endsWith('overdue')")
    assert page.locator("#tabs [data-tab='cases']").inner_text().startswith("Cases")
    assert re.fullmatch(r"(\d+ h )?(\d+ min )?overdue", label.inner_text())
    # a finished case leaves the list the page opens with, and stays under "all"
    with sessions.begin() as s:
        s.execute(text("UPDATE cases SET state = 'closed', deadline = NULL, closed_at = now() WHERE id = :c"),
                  {"c": new_id})
    assert refresh_cases(page, "open") == 1 and refresh_cases(page, "") == 2
