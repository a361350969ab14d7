"""The first map page in a real headless Chromium: log in, see the grids and buildings, switch language."""

from __future__ import annotations

import pytest

from sqlalchemy import text

from spatial.store import cases, users
from tests import factories
from tests.conftest import watch_errors

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"


@pytest.fixture
def page(live_server, browser, tmp_path):
    base, sessions = live_server
    with sessions.begin() as s:
        west, east = factories.two_grids(s)
        for i in range(3):
            factories.building(s, west, 20 + 40 * i, 20, number=i + 1, households=150, residents=380)
        factories.building(s, east, 240, 60, number=1, households=90, residents=200, urban_village=True)
        for x, deadline, state in ((50, "-1 hour", "reported"), (90, "1 day", "reported"), (130, "1 day", "closed")):
            lon, lat = factories.metres_box(x, 120, x + 0.1, 120.1).centroid.coords[0]
            case = cases.report_case(s, None, category="environment.garbage", lon=lon, lat=lat, description="垃圾",
                                     reporter_name="张三丰", reporter_phone="13812345678")
            s.execute(text("UPDATE cases SET deadline = now() + CAST(:d AS interval), state = :s WHERE id = :id"),
                      {"d": deadline, "s": state, "id": case.id})
        users.create_user(s, "viewer1", PASSWORD, "viewer", scope_code=factories.SUBDISTRICT)
    context = browser.new_context(viewport={"width": 1200, "height": 800}, locale="zh-CN")
    errors = watch_errors(context)  # uncaught exceptions and CSP violations
    page = context.new_page()
    page.goto(base + "/")
    yield page
    page.screenshot(path=str(tmp_path / "map.png"))
    context.close()
    assert not errors, errors


def test_login_then_map_shows_grids_buildings_and_totals(page):
    assert page.locator("#login").is_visible()
    page.fill("input[name=username]", "viewer1")
    page.fill("input[name=password]", PASSWORD)
    page.click("#login button[type=submit]")
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)
    assert page.locator("#login").is_hidden()
    assert page.locator("#grid-count").inner_text() == "2"
    assert "540" in page.locator("#info").inner_text()  # 3 × 150 + 90 households
    assert int(page.locator("body").get_attribute("data-buildings")) == 4
    # open cases only (the closed one is not drawn), the overdue one with its red ring counted in the legend
    assert page.locator("#case-count").inner_text() == "2" and page.locator("#overdue-count").inner_text() == "1"
    assert "超期" in page.locator("#info").inner_text() and "事件高发点位" in page.locator("#info").inner_text()
    assert "张三丰" not in page.content()
    assert page.locator("header").inner_text().startswith("网格化服务管理地图")
    page.click("#lang")
    page.wait_for_function("() => document.documentElement.lang === 'en'")
    assert "Community grid map" in page.locator("header").inner_text()


def test_wrong_password_shows_an_error_and_keeps_the_dialog(page):
    page.fill("input[name=username]", "viewer1")
    page.fill("input[name=password]", "not the password")
    page.click("#login button[type=submit]")
    page.wait_for_function("() => document.getElementById('login-error').textContent.length > 0")
    assert page.locator("#login").is_visible()
    assert "错误" in page.locator("#login-error").inner_text()


def test_api_docs_work_offline_under_the_content_security_policy(live_server, browser):
    # /docs loaded Swagger UI from a CDN (so not offline, and not under a policy of 'self')
    base, _ = live_server
    context = browser.new_context()
    errors = watch_errors(context)
    elsewhere: list[str] = []

    def only_here(route) -> None:
        if route.request.url.startswith(base):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_here)
    page = context.new_page()
    response = page.goto(base + "/docs")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    # Swagger UI loads offline and draws operations. Known problem (session 7, left open): since the API passed
    # about 120 operations Swagger UI 5.35 draws only the first three tags (audit, auth, basemaps), with no console
    # error and not because of the document's size; the full list is checked on the document itself.
    page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    operations = sum(len(ops) for ops in page.request.get(base + "/openapi.json").json()["paths"].values())
    assert operations > 50
    assert not errors and not elsewhere, (errors, elsewhere)
    context.close()


def test_pages_have_no_inline_script_or_handler_and_every_answer_has_the_policy(live_server):
    import re

    import httpx

    base, _ = live_server
    for path in ("/", "/planner", "/inspector", "/field/", "/tokens", "/report", "/report/track", "/onboarding"):
        page = httpx.get(base + path)
        assert page.status_code == 200, path
        assert "script-src 'self';" in page.headers["content-security-policy"], path
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text), path  # every script is a file
        assert not re.search(r"\son[a-z]+\s*=", page.text), path
    assert "default-src 'self'" in httpx.get(base + "/api/health").headers["content-security-policy"]
