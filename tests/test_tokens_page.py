"""The access tokens page in a real headless Chromium: log in, make a token (its secret shown once, working as
the password of HTTP Basic on the OGC API), see it listed, revoke it, in Chinese and English."""

from __future__ import annotations

import httpx
import pytest

from spatial.store import users
from tests import factories
from tests.conftest import open_logged_in

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"


def test_make_use_and_revoke_a_token_on_the_page(live_server, browser, tmp_path):
    base, sessions = live_server
    with sessions.begin() as s:
        factories.two_grids(s)
        users.create_user(s, "viewer1", PASSWORD, "viewer", scope_code=factories.SUBDISTRICT)
    context, page, errors = open_logged_in(browser, base + "/tokens", "viewer1", PASSWORD, locale="zh-CN")
    try:
        assert page.locator("header").inner_text().startswith("访问令牌")
        assert page.locator("body").get_attribute("data-tokens") == "0"
        assert "还没有令牌" in page.locator("#tokens").inner_text()
        page.fill("#token-name", "QGIS 办公室")
        page.fill("#token-days", "30")
        page.click("#create button[type=submit]")
        page.wait_for_selector("body[data-tokens='1']")
        secret = page.locator("#secret").inner_text()
        assert secret.startswith("ggpat_") and page.locator("#secret-user").inner_text() == "viewer1"
        row = page.locator("#tokens tbody tr").first
        assert "QGIS 办公室" in row.inner_text() and "有效" in row.inner_text() and secret not in row.inner_text()
        grids = httpx.get(f"{base}/ogc/collections/grids/items", auth=("viewer1", secret))
        assert grids.status_code == 200 and grids.json()["numberMatched"] == 2
        page.fill("#token-name", "x")
        page.fill("#token-days", "400")  # beyond the form's max: the browser refuses to send it
        page.click("#create button[type=submit]")
        assert page.locator("body").get_attribute("data-tokens") == "1"
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#tokens button.revoke")
        page.wait_for_function("() => document.querySelector('#tokens tbody tr').className === 'revoked'")
        assert "已吊销" in page.locator("#tokens tbody tr").first.inner_text()
        assert httpx.get(f"{base}/ogc/collections", auth=("viewer1", secret)).status_code == 401
        page.click("#lang")
        page.wait_for_function("() => document.documentElement.lang === 'en'")
        assert page.locator("header").inner_text().startswith("Access tokens")
        page.wait_for_function(  # the table is drawn again in English after the switch
            "() => document.querySelector('#tokens tbody tr').innerText.includes('revoked')", timeout=10_000)
        page.screenshot(path=str(tmp_path / "tokens.png"))
    finally:
        context.close()
    assert not errors, errors
