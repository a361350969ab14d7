"""Walk test of the inspection page (issue 19 item 10) for an inspector, on a phone (390 × 844, touch) and on a
desktop (1440 × 900): the job as an inspector does it — choose the enclosure, read its checkpoint figures
(labelled, the same numbers as the overview map), tap an unguarded opening on the map (ringed while edited) and
seal it, tap a start and plan the patrol (numbered stops, arrows for the direction), open the printable report.
Screenshots are kept in the test's tmp_path (pytest keeps the last runs' directories: --basetemp=DIR)."""

from __future__ import annotations

import pytest

from spatial.store import users
from tests import factories
from tests.conftest import open_logged_in
from tests.test_inspection_store import town

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"
SIZES = {"phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
         "desktop": {"viewport": {"width": 1440, "height": 900}}}
# the page's point (viewport pixels) of the opening whose id is given, from the page's Leaflet map and layer
OPENING_AT = """id => { const l = openings.getLayers().find((l) => l.feature.properties.id === id);
    const p = map.latLngToContainerPoint(l.getLatLng()), r = document.getElementById('map').getBoundingClientRect();
    return [r.left + p.x, r.top + p.y, r.width, r.height]; }"""


def tap(page, size: str, x: float, y: float) -> None:
    if size == "phone":
        page.touchscreen.tap(x, y)
    else:
        page.mouse.click(x, y)


@pytest.mark.parametrize("size", sorted(SIZES))
def test_an_inspector_walks_the_inspection_page(live_server, browser, tmp_path, size):
    base, sessions = live_server
    with sessions.begin() as s:
        town(s)
        users.create_user(s, "insp1", PASSWORD, "inspector", scope_code=factories.SUBDISTRICT)
    context, page, errors = open_logged_in(browser, base + "/", "insp1", PASSWORD, locale="zh-CN", **SIZES[size])
    shots = lambda name: page.screenshot(path=str(tmp_path / f"{size}-{name}.png"))  # noqa: E731
    try:
        # the overview's checkpoint figures, to compare (the login stays with the tab)
        page.wait_for_selector("#sum-checkpoints", state="attached", timeout=20_000)
        overview = {key: page.locator(f"#sum-{key}").text_content() for key in ("checkpoints", "openings", "sealed")}
        assert "有人值守 / 全部" in page.locator("#legend").text_content()
        page.goto(base + "/inspector")
        page.wait_for_function("() => Number(document.body.dataset.loaded || 0) >= 1", timeout=20_000)
        # the map is a usable part of the screen, beside or above the panel
        box = page.locator("#map").bounding_box()
        assert box["width"] >= 0.9 * page.viewport_size["width"] * (1 if size == "phone" else 0.7), box
        assert box["height"] >= 250, box
        # the enclosure by its name, with what is wrong with it in words
        options = page.locator("#enclosure option").all_inner_texts()
        assert options == ["全部", "测试小区 · 未管控 1 / 出入口 4"], options
        page.select_option("#enclosure", label=options[1])
        page.wait_for_function("() => Number(document.body.dataset.loaded) >= 2")
        # the checkpoint figures, labelled, and the same as the overview's
        figures = {th: td for th, td in zip(page.locator("#summary th").all_inner_texts(),
                                            page.locator("#summary td").all_inner_texts())}
        assert figures["出入口"] == "4" and figures["未管控出入口"] == "1", figures
        assert overview == {"checkpoints": figures["卡口（有人值守 / 全部）"], "openings": figures["出入口"],
                            "sealed": figures["已封闭"]}, (overview, figures)
        shots("enclosure")
        assert "点击地图上的出入口圆点" in page.locator("#edit-hint").inner_text()  # how to edit, said once
        # the unguarded opening, tapped on the map: ringed, its editor in view, saved
        gap = page.evaluate("() => inspector.openings().find((p) => p.unguarded).id")
        x, y, *_ = page.evaluate(OPENING_AT, gap)
        tap(page, size, x, y)
        page.wait_for_selector("#editor:not([hidden])")
        editor = page.locator("#editor").bounding_box()
        assert editor["y"] + editor["height"] <= page.viewport_size["height"] + 1, editor  # in view where it opened
        assert page.locator("#edit-title").inner_text().endswith("东巷 · 正在编辑")
        assert page.locator("path.edit-ring").count() == 1
        page.select_option("#edit-status", "sealed")
        page.fill("#edit-width", "6")
        save = page.locator("#edit-save")
        assert save.is_visible() and save.is_enabled()
        save.scroll_into_view_if_needed()
        shots("editing")
        save.click()
        page.wait_for_function("() => document.getElementById('message').textContent.includes('已保存')")
        assert page.locator("#sum-unguarded").inner_text() == "0"
        page.click("#edit-close")
        assert page.locator("path.edit-ring").count() == 0
        # the patrol: a start tapped on the map, numbered stops in the list and on the map, arrows along the way
        x, y, width, height = page.evaluate(OPENING_AT, gap)
        left, top = page.locator("#map").bounding_box()["x"], page.locator("#map").bounding_box()["y"]
        tap(page, size, left + width / 2, top + height / 2)
        assert page.locator("#message").inner_text() == "起点已设定"
        patrol = page.locator("#patrol")
        assert patrol.is_enabled()
        patrol.click()
        page.wait_for_selector("body[data-patrol]", timeout=20_000)
        n = int(page.get_attribute("body", "data-patrol"))
        assert n >= 2 and page.locator("#patrol-stops li").count() == n
        assert page.locator(".route-mark.stop").all_inner_texts() == [str(i) for i in range(1, n + 1)]
        assert page.locator(".route-mark.start").count() == 1 and page.locator(".route-arrow").count() >= 1
        assert page.locator("#patrol-length").inner_text().startswith("长度 ")
        stops = page.locator("#patrol-stops").bounding_box()
        assert stops["y"] + stops["height"] <= page.viewport_size["height"] + 1, stops  # the list is in view
        shots("patrol")
        # the printable report of the same enclosure, in its own tab
        with context.expect_page() as popup:
            page.click("#print")
        report = popup.value
        report.wait_for_selector("body[data-report='1']", timeout=20_000)
        assert "卡口覆盖报告" in report.locator("#report-body h1").inner_text()
        assert "测试小区" in report.locator("#report-body").inner_text()
        assert report.locator("#print-now").is_visible() and report.locator("#print-now").is_enabled()
        report.screenshot(path=str(tmp_path / f"{size}-report.png"), full_page=True)
    finally:
        shots("last")
        context.close()
    assert not errors, errors
