"""Walk test of the overview map (issue 19 item 4) for a viewer, on a phone (390 × 844, touch) and a desktop
(1440 × 900): grids carry their label ("01 · 450户") where it fits and lose it where it does not, and the legend
has an entry for every layer of the switcher, with the symbols the issue found missing (dedicated grids, grid
and community edges, streets and footpaths, enclosure outlines). Screenshots are kept in the test's tmp_path."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from spatial.store import users
from tests import factories
from tests.conftest import open_logged_in

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"
SIZES = {"phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
         "desktop": {"viewport": {"width": 1440, "height": 900}}}


@pytest.mark.parametrize("size", sorted(SIZES))
def test_a_viewer_reads_the_overview_map(live_server, browser, tmp_path, size):
    base, sessions = live_server
    with sessions.begin() as s:
        west, east = factories.two_grids(s)
        for i in range(3):
            factories.building(s, west, 20 + 40 * i, 20, number=i + 1, households=150, residents=380)
        factories.building(s, east, 240, 60, number=1, households=90, residents=200, urban_village=True)
        s.execute(text("UPDATE grids SET kind = 'dedicated' WHERE id = :g"), {"g": east.id})
        users.create_user(s, "viewer1", PASSWORD, "viewer", scope_code=factories.SUBDISTRICT)
    context, page, errors = open_logged_in(browser, base + "/", "viewer1", PASSWORD, locale="zh-CN", **SIZES[size])
    try:
        labels = page.locator(".leaflet-tooltip.area-label")
        assert sorted(labels.all_inner_texts()) == ["01 · 450户", "02 · 90户"]
        assert page.get_attribute("#map", "data-area-labels") == "2"  # both fit at the zoom of the whole area
        if size == "phone":
            assert page.get_attribute("#legend", "open") is None  # folded, the map stays visible
            page.click("#legend summary")
        page.screenshot(path=str(tmp_path / f"{size}-map.png"))
        for button in ("#lang", "#logout"):  # the header stays on one line ("Log/out" wrapped)
            assert page.locator(button).bounding_box()["height"] < 34, button
        # every layer of the switcher has its legend entry; the symbols the issue missed are named
        switcher = page.locator(".leaflet-control-layers-overlays label").count()
        entries = page.locator("#info .legend[data-layer]")
        assert entries.count() == switcher == 9
        legend = page.locator("#legend").inner_text()
        for words in ("专属网格", "网格边界", "社区边界", "车行道路", "步道", "围合区域边界", "城中村楼栋", "超期", "事件高发点位"):
            assert words in legend, words
        assert page.locator(".leaflet-tooltip.area-label").first.is_visible()
        # zoomed far out the grids are a few pixels wide: their labels give way
        page.evaluate("map.setZoom(map.getZoom() - 5, { animate: false })")  # the page's Leaflet map
        page.wait_for_function("() => document.getElementById('map').dataset.areaLabels === '0'")
        assert not labels.first.is_visible() and labels.count() == 2
        page.click("#lang")
        page.wait_for_function("() => [...document.querySelectorAll('.area-label')].some((e) => / hh$/.test(e.textContent))")
        page.wait_for_function("() => document.getElementById('map').dataset.areaLabels === '2'"  # zoomed to fit again
                               " && document.querySelectorAll('.area-label').length === 2")  # the old ones faded out
        assert sorted(labels.all_inner_texts()) == ["01 · 450 hh", "02 · 90 hh"]
        assert page.locator("#info .legend[data-layer]").count() == 9
        page.screenshot(path=str(tmp_path / f"{size}-map-en.png"))
    finally:
        context.close()
    assert not errors, errors

