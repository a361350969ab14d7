"""The first map page in a real headless Chromium: log in, see the grids and buildings, switch language."""

from __future__ import annotations

import pytest

from spatial.store import users
from tests import factories

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
        users.create_user(s, "viewer1", PASSWORD, "viewer", scope_code=factories.SUBDISTRICT)
    context = browser.new_context(viewport={"width": 1200, "height": 800}, locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
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
    assert page.locator("header").inner_text().startswith("网格化服务管理地图")
    page.click("#lang")
    page.wait_for_function("document.documentElement.lang === 'en'")
    assert "Community grid map" in page.locator("header").inner_text()


def test_wrong_password_shows_an_error_and_keeps_the_dialog(page):
    page.fill("input[name=username]", "viewer1")
    page.fill("input[name=password]", "not the password")
    page.click("#login button[type=submit]")
    page.wait_for_function("document.getElementById('login-error').textContent.length > 0")
    assert page.locator("#login").is_visible()
    assert "错误" in page.locator("#login-error").inner_text()
