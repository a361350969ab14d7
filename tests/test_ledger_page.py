"""The field page's ledger editor (更正, issue 14 §2) on a phone-sized headless Chromium (390 × 844): a grid worker
opens a household, changes its head's phone and sees it masked after a reload; adds a resident and sees the
campaign's person count rise; an edit made meanwhile by someone else is explained ("已被他人修改，已重新载入") and
the sheet reloaded."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from spatial.personal_keys import PersonalKeys
from spatial.store import campaigns, persons, users
from tests.conftest import open_logged_in
from tests.test_ledger_edits import WEST, load_ledger
from tests.test_residents import id_number

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"


@pytest.fixture
def phone(live_server, browser, tmp_path):
    base, sessions = live_server
    keys = PersonalKeys.create(tmp_path / "personal.key")  # where the app's settings look (data_dir)
    with sessions.begin() as s:
        town = load_ledger(s, tmp_path, keys)
        users.create_user(s, "worker1", PASSWORD, "grid_worker", grid_codes=(WEST,))
        campaigns.open_campaign(s, town["planner"], "冬季排查", grid_codes=[WEST])
        centre = s.execute(text("SELECT ST_X(ST_Centroid(footprint)), ST_Y(ST_Centroid(footprint)) FROM buildings "
                                "WHERE id = :b"), {"b": town["b1"].id}).one()
    context, page, errors = open_logged_in(browser, base + "/field/", "worker1", PASSWORD,
                                           viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                           is_mobile=True, has_touch=True, locale="zh-CN")
    yield page, sessions, keys, town, (float(centre[0]), float(centre[1]))
    page.screenshot(path=str(tmp_path / "ledger.png"), full_page=True)
    context.close()
    assert not errors, errors


def open_ledger(page, lon: float, lat: float, household: int) -> None:
    """Set the position, open the household's sheet and its ledger editor."""
    page.evaluate("delete document.body.dataset.count; document.getElementById('where').open = true")
    page.fill("#lon", f"{lon:.7f}")
    page.fill("#lat", f"{lat:.7f}")
    page.select_option("#crs", "EPSG:4326")
    page.click("#set-position")
    page.wait_for_selector("body[data-count]", timeout=15_000)
    page.locator(f"li.household[data-id='{household}']").click()
    page.wait_for_selector("#visit:not([hidden])")
    page.click("#ledger-open")
    page.wait_for_selector(f"#ledger[data-household='{household}']:not([hidden]) li[data-person]", timeout=15_000)


def test_a_worker_corrects_a_phone_sees_it_masked_and_a_stale_edit_is_explained(phone):
    page, sessions, keys, town, (lon, lat) = phone
    a, head = town["a"], town["people"]["张一"]
    assert page.locator("#persons-targeted").inner_text() == "4"  # the west grid's residents, 不漏一人
    open_ledger(page, lon, lat, a)
    row = page.locator(f"#ledger li[data-person='{head}']")
    assert "张*" in row.inner_text() and "138****0001" in row.inner_text()
    row.locator("button[data-act='phone']").click()
    page.fill("#ledger-phone-value", "137 1234 5678")
    page.click("#ledger-phone-save")
    page.wait_for_function("() => document.getElementById('ledger-message').textContent === '已保存'")
    assert "137****5678" in page.locator(f"#ledger li[data-person='{head}']").inner_text()
    with sessions() as s:
        sealed = s.execute(text("SELECT phone_sealed, phone_masked FROM persons WHERE id = :p"), {"p": head}).one()
    assert sealed.phone_masked == "137****5678" and b"13712345678" not in bytes(sealed.phone_sealed)
    assert keys.open(persons.PHONE_FIELD, sealed.phone_sealed) == "13712345678"
    # after a reload the list and the sheet show the new phone, masked
    page.reload()
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)
    page.wait_for_selector(f"li.household[data-id='{a}']", timeout=15_000)
    assert "137****5678" in page.locator(f"li.household[data-id='{a}']").inner_text()
    assert "13712345678" not in page.content()
    open_ledger(page, lon, lat, a)
    assert "137****5678" in page.locator(f"#ledger li[data-person='{head}']").inner_text()
    # a new resident: the campaign counts one more person
    page.click("#ledger-add summary")
    page.fill("#ledger-name", "赵六")
    page.fill("#ledger-id", id_number(6))
    page.select_option("#ledger-kind", "floating")
    page.click("#ledger-add-save")
    page.wait_for_selector("#ledger[data-residents='4']", timeout=15_000)
    page.wait_for_function("() => document.getElementById('persons-targeted')?.textContent === '5'", timeout=15_000)
    # someone else changes the household meanwhile: the next edit is refused, explained and the sheet reloaded
    shown = int(page.get_attribute("#ledger", "data-version"))
    with sessions.begin() as s:
        s.execute(text("UPDATE households SET floor = 9 WHERE id = :h"), {"h": a})
        now = s.scalar(text("SELECT version FROM households WHERE id = :h"), {"h": a})
    assert now > shown
    page.locator(f"#ledger li[data-person='{head}'] button[data-act='phone']").click()
    page.fill("#ledger-phone-value", "13700000000")
    page.click("#ledger-phone-save")
    page.wait_for_function("() => document.getElementById('ledger-message').textContent === '已被他人修改，已重新载入'",
                           timeout=15_000)
    assert int(page.get_attribute("#ledger", "data-version")) == now
    assert page.locator("#ledger-phone").is_hidden() and page.locator("#ledger-out").is_hidden()
    assert page.input_value("#ledger-floor") == "9"
    with sessions() as s:
        assert s.scalar(text("SELECT phone_masked FROM persons WHERE id = :p"), {"p": head}) == "137****5678"
    page.click("#lang")
    page.wait_for_function("() => document.documentElement.lang === 'en'")
    page.wait_for_function("() => document.getElementById('ledger-persons').textContent.includes('Head of household')",
                           timeout=15_000)
    assert page.locator("#ledger-open").inner_text() == "Correct"
