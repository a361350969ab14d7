"""The onboarding page (新街道上线) in a real headless Chromium: an admin uploads the subdistrict and its
communities, then drawn grids; each file is checked first (report shown, nothing written), then imported; a bad
file is refused with the feature and the reason shown. The residents' step shows every rejected row of a ledger
(line, column, reason), writes nothing, and imports the good rows once "skip rejected rows" is ticked."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
import shapely
from sqlalchemy import text

from spatial.personal_keys import PersonalKeys
from spatial.store import users
from tests import factories
from tests.conftest import open_logged_in
from tests.test_onboarding import MID, SUB, WEST, X0, Y0, Y1, write_divisions
from tests.test_residents import bad_check, family, person, write_xlsx

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"


def count(sessions, sql: str) -> int:
    with sessions() as s:
        return s.execute(text(sql)).scalar_one()


def test_an_admin_uploads_divisions_then_grids_checking_each_first(live_server, browser, tmp_path):
    base, sessions = live_server
    with sessions.begin() as s:
        users.create_user(s, "admin1", PASSWORD, "admin")
    divisions = write_divisions(tmp_path / "街道.geojson")
    bad = tmp_path / "坏.geojson"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {
        "代码": "440304098", "名称": "坏社区"}, "geometry": shapely.geometry.mapping(shapely.box(X0, Y0, MID, Y1))}]}),
        encoding="utf-8")
    half = (Y0 + Y1) / 2
    grids = tmp_path / "网格.geojson"
    gpd.GeoDataFrame({"name": ["南网格", "北网格"]}, geometry=[shapely.box(X0, Y0, MID, half),
                                                           shapely.box(X0, half, MID, Y1)],
                     crs="EPSG:4326").to_file(grids, driver="GeoJSON")
    context, page, errors = open_logged_in(browser, base + "/onboarding", "admin1", PASSWORD, locale="zh-CN")
    try:
        assert page.locator("header").inner_text().startswith("新街道上线")
        step = page.locator("#step-divisions")
        assert step.locator("button.commit").is_disabled()
        step.locator("input[name=file]").set_input_files(str(bad))
        step.locator("button[value=true]").click()
        page.wait_for_selector("#step-divisions .report[data-state=refused]")
        assert "not 12 digits" in step.locator(".report").inner_text() and step.locator("button.commit").is_disabled()

        step.locator("input[name=file]").set_input_files(str(divisions))
        step.locator("input[name=district_name]").fill("福田区")
        step.locator("button[value=true]").click()
        page.wait_for_selector("#step-divisions .report[data-state=checked]")
        assert "已检查，未写入" in step.locator(".report").inner_text()
        assert count(sessions, "SELECT count(*) FROM divisions") == 0
        step.locator("button.commit").click()
        page.wait_for_selector("#step-divisions .report[data-state=written]")
        assert "新增 4" in step.locator(".report").inner_text()
        assert count(sessions, f"SELECT count(*) FROM divisions WHERE code LIKE '{SUB[:9]}%'") == 3

        assert "gridgov import buildings" in page.locator("#cli").inner_text()
        step = page.locator("#step-grids")
        step.locator("input[name=file]").set_input_files(str(grids))
        step.locator("input[name=community]").fill(WEST)
        step.locator("button[value=true]").click()
        page.wait_for_selector("#step-grids .report[data-state=checked]")
        assert count(sessions, "SELECT count(*) FROM grids") == 0
        step.locator("button.commit").click()
        page.wait_for_selector("#step-grids .report[data-state=written]")
        assert "新增 2" in step.locator(".report").inner_text()
        assert count(sessions, f"SELECT count(*) FROM grids WHERE community_code = '{WEST}'") == 2

        page.click("#lang")
        page.wait_for_function("() => document.documentElement.lang === 'en'")
        assert page.locator("header").inner_text().startswith("Bring your own subdistrict")
        assert "inserted 2" in page.locator("#step-grids .report").inner_text()  # the reports follow the language
        page.screenshot(path=str(tmp_path / "onboarding.png"), full_page=True)
    finally:
        context.close()
    assert not errors, errors


def test_the_residents_step_lists_each_rejected_row_then_imports_skipping_them(app_env, live_server, browser,
                                                                                tmp_path):
    client, _ = app_env
    base, sessions = live_server
    with sessions.begin() as s:
        users.create_user(s, "admin1", PASSWORD, "admin")
        west, _ = factories.two_grids(s)
        code = factories.building(s, west, 10, 10, number=1).code
    PersonalKeys.load_or_create(client.app.state.settings.personal_key_path, create=True)
    ledger = write_xlsx(tmp_path / "实有人口.xlsx", family(code, "101", 1) + [
        person("坏校验", bad_check(20), code=code, room="301"),
        person("坏电话", "110101199003074477", phone="12345", code=code, room="302"),
        person("无此楼", "110101199003074514", code=code[:-5] + "99999", room="303")])
    context, page, errors = open_logged_in(browser, base + "/onboarding", "admin1", PASSWORD, locale="zh-CN")
    try:
        step = page.locator("#step-residents")
        step.locator("input[name=file]").set_input_files(str(ledger))
        step.locator("button[value=true]").click()
        page.wait_for_selector("#step-residents .report[data-state=refused]")
        rows = step.locator("table.rejected tbody tr")
        assert rows.count() == 3
        cells = [[c.strip() for c in rows.nth(i).locator("td").all_inner_texts()] for i in range(3)]
        assert [(c[0], c[1].split(" ")[0]) for c in cells] == [("5", "身份证号"), ("6", "联系电话"), ("7", "楼栋编码")]
        assert "check digit" in cells[0][2] and "行号" in step.locator("table.rejected thead").inner_text()
        assert "3 行被拒绝，未写入任何数据" in step.locator(".report .message").inner_text()
        assert step.locator("button.commit").is_disabled() and count(sessions, "SELECT count(*) FROM persons") == 0

        step.locator("input[name=skip_errors]").check()
        step.locator("button[value=true]").click()
        page.wait_for_selector("#step-residents .report[data-state=checked]")
        assert "新增人员 3" in step.locator(".report").inner_text() and rows.count() == 3
        assert count(sessions, "SELECT count(*) FROM persons") == 0
        step.locator("button.commit").click()
        page.wait_for_selector("#step-residents .report[data-state=written]")
        assert "已写入" in step.locator(".report").inner_text()
        assert count(sessions, "SELECT count(*) FROM persons") == 3

        page.click("#lang")
        page.wait_for_function("() => document.documentElement.lang === 'en'")
        assert "Reason" in step.locator("table.rejected thead").inner_text()
        assert "persons new 3" in step.locator(".report").inner_text()
        page.screenshot(path=str(tmp_path / "onboarding-residents.png"), full_page=True)
    finally:
        context.close()
    assert not errors, errors
