"""Issue 15 on the pages, in a phone-sized headless Chromium: the resident sends a photo with the report (its GPS
gone when stored; a file that is no image refused in Chinese, the report kept), joins the open case of the same
problem nearby, and rates the closed case once on the tracking page; a grid worker sees the 督办 tag on the
field page and adds a photo to the case. No CSP violation, no console error."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image
from sqlalchemy import text

from tests import test_case_pages as pages
from tests.conftest import open_logged_in
from tests.test_case_followup import jpeg_with_gps
from tests.test_case_pages import PASSWORD, PHONE, bearer, position

town, resident = pages.town, pages.resident  # the pages' fixtures: a community, a resident's phone

pytestmark = pytest.mark.browser


def fill_report(page, base: str) -> None:
    page.goto(base + "/report")
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)
    page.select_option("#category", "environment.garbage")
    page.click("#locate")
    page.wait_for_selector("body[data-position='gps']")
    page.fill("#description", "垃圾桶满了")


def test_a_photo_goes_with_the_report_without_its_gps_and_a_fake_one_is_refused(resident, tmp_path):
    base, sessions, page, errors = resident
    fill_report(page, base)
    page.set_input_files("#photos", [
        {"name": "scene.jpg", "mimeType": "image/jpeg", "buffer": jpeg_with_gps(320, 240)},
        {"name": "fake.jpg", "mimeType": "image/jpeg", "buffer": b"<html>not a photo</html>"}])
    page.click("#submit")
    page.wait_for_selector("body[data-photos]", timeout=15_000)
    assert page.get_attribute("body", "data-photos") == "1"
    assert page.get_attribute("body", "data-photos-refused") == "1"
    info = page.locator("#photos-info").inner_text()
    assert "已上传照片 1 张" in info and "JPEG、PNG 或 WebP" in info
    code = page.get_attribute("body", "data-code")
    with sessions() as s:
        stored = s.execute(text("SELECT p.bytes, p.width FROM case_photos p JOIN cases c ON c.id = p.case_id "
                                "WHERE c.tracking_code = :c"), {"c": code}).all()
    assert len(stored) == 1 and stored[0].width == 320
    assert not Image.open(io.BytesIO(bytes(stored[0].bytes))).getexif()
    page.goto(f"{base}/report/track?code={code}")
    page.wait_for_selector("body[data-tracked='reported']", timeout=15_000)
    page.wait_for_function("() => { const i = document.querySelector('#result-photos img'); "
                           "return i && i.complete && i.naturalWidth === 320; }", timeout=15_000)
    page.screenshot(path=str(tmp_path / "track-photo.png"), full_page=True)
    assert not errors, errors


def test_the_resident_joins_the_same_problem_and_rates_it_once_closed(resident, tmp_path):
    base, sessions, page, errors = resident
    lon, lat = position(70, 50)  # 20 m from where the phone is (50, 50)
    first = httpx.post(base + "/api/public/cases", json={"category": "environment.garbage", "x": lon, "y": lat,
                                                         "crs": "EPSG:4326", "description": "垃圾"})
    assert first.status_code == 201
    fill_report(page, base)
    page.click("#submit")
    page.wait_for_selector("body[data-code]", timeout=15_000)
    assert page.locator("#duplicates").is_visible() and "相距 20 米" in page.locator("#duplicate-list").inner_text()
    page.click("#duplicate-list button.join")
    page.wait_for_selector("body[data-merged='1']", timeout=15_000)
    code = page.get_attribute("body", "data-code")
    with sessions() as s:
        case_id = s.execute(text("SELECT id FROM cases WHERE tracking_code = :c"),
                            {"c": first.json()["tracking_code"]}).scalar_one()
    centre, worker, verifier = bearer(base, "centre1"), bearer(base, "worker1"), bearer(base, "worker2")
    for who, body in ((centre, {"action": "register"}), (centre, {"action": "dispatch", "assignee": "worker1"}),
                      (worker, {"action": "accept"}), (worker, {"action": "report_back"}),
                      (verifier, {"action": "verify"}), (centre, {"action": "close"})):
        assert httpx.post(f"{base}/api/cases/{case_id}/actions", headers=who, json=body).status_code == 200
    page.goto(f"{base}/report/track?code={code}")
    page.wait_for_selector("body[data-tracked='closed']", timeout=15_000)
    assert "已合并到同一问题的事件" in page.locator("#steps").inner_text()
    assert page.locator("#rating").is_visible()
    page.click("#rating-send")  # no score chosen: the page asks for one
    assert "请选择 1 到 5 分" in page.locator("#error").inner_text()
    page.check("#stars input[value='4']")
    page.fill("#rating-comment", "处理很快")
    page.click("#rating-send")
    page.wait_for_selector("body[data-rated='4']", timeout=15_000)
    assert page.locator("#rating").is_hidden() and "4 分" in page.locator("#rated").inner_text()
    page.screenshot(path=str(tmp_path / "rated.png"), full_page=True)
    again = httpx.post(f"{base}/api/public/cases/{code}/rating", json={"score": 1})
    assert again.status_code == 409
    page.reload()
    page.wait_for_selector("body[data-tracked='closed']", timeout=15_000)
    assert page.locator("#rating").is_hidden() and page.locator("#rated").is_visible()
    assert not errors, errors


def test_a_grid_worker_sees_the_supervision_tag_and_adds_a_photo(town, browser, tmp_path):
    base, sessions = town
    lon, lat = position(60, 60)
    created = httpx.post(base + "/api/public/cases", json={"category": "environment.garbage", "x": lon, "y": lat,
                                                           "crs": "EPSG:4326", "description": "垃圾满了"})
    with sessions() as s:
        case_id = s.execute(text("SELECT id FROM cases WHERE tracking_code = :c"),
                            {"c": created.json()["tracking_code"]}).scalar_one()
    flagged = httpx.post(f"{base}/api/cases/{case_id}/supervise", headers=bearer(base, "centre1"),
                         json={"note": "今天下班前处理"})
    assert flagged.status_code == 200, flagged.text
    context, page, errors = open_logged_in(browser, base + "/field/", "worker1", PASSWORD, **PHONE)
    page.click("#tabs [data-tab='cases']")
    page.wait_for_selector("body[data-cases='1']", timeout=15_000)
    item = page.locator(f"#case-list li[data-id='{case_id}']")
    assert item.get_attribute("data-supervised") == "1" and "督办" in item.inner_text()
    item.click()
    page.wait_for_selector("#case-sheet:not([hidden])")
    assert "今天下班前处理" in page.locator("#case-supervised").inner_text()
    page.set_input_files("#case-photo", {"name": "p.jpg", "mimeType": "image/jpeg", "buffer": jpeg_with_gps()})
    page.wait_for_selector("#case-sheet[data-photos='1'] #case-photos img", timeout=15_000)
    assert page.locator("#case-photos img").first.get_attribute("src").startswith("data:image/jpeg")
    page.screenshot(path=str(tmp_path / "field-photo.png"), full_page=True)
    assert not errors, errors
    context.close()
