"""The inspector page in headless Chromium on the small town: the gap is shown, sealing it from the page removes it
from the summary, a patrol route is drawn, the printable report opens, and a stale edit is told apart."""

from __future__ import annotations

import pytest

from spatial.store import users
from tests import factories
from tests.conftest import open_logged_in
from tests.test_inspection_store import town

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"
FIRST_GAP_JS = """() => fetch('/api/inspection/layers/unguarded?division=' + inspector.state.division,
    {headers: {Authorization: 'Bearer ' + sessionStorage.getItem('gridgov.token')}})
    .then(r => r.json()).then(fc => fc.features[0].id)"""


@pytest.fixture
def site(live_server):
    base, sessions = live_server
    with sessions.begin() as s:
        t = town(s)
        users.create_user(s, "insp1", PASSWORD, "inspector", scope_code=factories.SUBDISTRICT)
        users.create_user(s, "viewer1", PASSWORD, "viewer", scope_code=factories.SUBDISTRICT)
    return base, t


def open_page(browser, base):
    context, page, errors = open_logged_in(browser, base + "/inspector", "insp1", PASSWORD,
                                           viewport={"width": 1300, "height": 850})
    page.wait_for_function("() => Number(document.body.dataset.loaded || 0) >= 1", timeout=20_000)
    return context, page, errors


def test_inspector_sees_the_gap_seals_it_and_plans_a_patrol(site, browser, tmp_path):
    base, t = site
    context, page, errors = open_page(browser, base)
    assert page.locator("#sum-unguarded").inner_text() == "1"
    assert page.locator("#sum-openings").inner_text() == "4"
    assert "步行" in page.locator("#distance-kind").inner_text()
    assert page.locator("body").get_attribute("data-openings") == "4"
    assert int(page.locator("body").get_attribute("data-buildings")) > 0  # footprints drawn (issue 19 item 4)
    assert page.locator("path.leaflet-interactive").count() >= 5      # enclosure, openings, beyond, barrier
    page.screenshot(path=str(tmp_path / "inspector.png"))

    # the beyond-threshold buildings follow the threshold
    page.fill("#threshold", "100")
    page.click("#refresh")
    page.wait_for_function("() => Number(document.body.dataset.loaded) >= 2")
    assert page.locator("#sum-beyond").inner_text() == "9 / 19"

    gap = page.evaluate(FIRST_GAP_JS)
    page.evaluate("id => inspector.edit(id)", gap)
    page.wait_for_selector("#editor:not([hidden])")
    assert "东巷" in page.locator("#edit-title").inner_text()
    page.select_option("#edit-status", "sealed")
    page.select_option("#edit-barrier", "water_barrier")
    page.fill("#edit-width", "6")
    page.click("#edit-save")
    page.wait_for_function("() => document.getElementById('message').textContent.includes('已保存')")
    assert page.locator("#sum-unguarded").inner_text() == "0"
    assert page.locator("#sum-sealed").inner_text() == "2"

    assert page.locator("path.edit-ring").count() == 1                          # the edited opening is ringed
    page.click("#edit-close")
    assert page.locator("path.edit-ring").count() == 0

    page.click("#patrol")
    page.wait_for_selector("body[data-patrol='2']", timeout=20_000)
    assert "m" in page.locator("#patrol-length").inner_text()
    assert page.locator("#patrol-stops li").count() == 2
    assert page.locator(".route-mark.stop").all_inner_texts() == ["1", "2"]       # stops numbered in walking order
    assert page.locator(".route-mark.start").count() == 1 and page.locator(".route-arrow").count() >= 1
    assert "held-karp" not in page.locator("#patrol-length").inner_text()

    with context.expect_page() as popup:
        page.click("#print")
    report = popup.value
    report.wait_for_selector("body[data-report='1']", timeout=20_000)
    assert report.url.startswith(base + "/inspector/report?") and "threshold_m=100" in report.url
    assert "卡口覆盖报告" in report.locator("#report-body h1").inner_text()
    assert "测试小区" in report.content()
    assert report.locator("#report-map path.leaflet-interactive").count() >= 5   # enclosure and its openings
    assert report.locator("#print-now").is_visible()
    report.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert not errors


def test_the_inspector_reads_hours_and_labels_not_codes(site, browser):
    base, _ = site
    context, page, errors = open_page(browser, base)
    assert page.locator("#summary th", has_text="卡口（有人值守 / 全部）").count() == 1
    tips = page.evaluate("() => inspector.openings().map((p) => inspector.tip(p))")
    assert any("周一至周日 06:00-22:00" in tip for tip in tips)               # 北门, "Mo-Su 06:00-22:00"
    assert any("全天 24 小时" in tip for tip in tips)                           # 南门, "24/7"
    assert not any("off" in tip or "Mo-Su" in tip for tip in tips)
    context.close()
    assert not errors


def test_a_grid_worker_is_sent_to_the_field_page(site, browser, live_server):
    base, _ = site
    _, sessions = live_server
    with sessions.begin() as s:
        users.create_user(s, "worker1", PASSWORD, "grid_worker", scope_code=factories.SUBDISTRICT)
    context, page, errors = open_logged_in(browser, base + "/inspector", "worker1", PASSWORD)
    assert "网格员请使用手机端" in page.locator("#message").inner_text()
    assert page.locator("#summary").inner_text() == "" and page.evaluate("() => inspector.openings().length") == 0
    context.close()


def test_a_stale_edit_is_reloaded_with_a_message(site, browser):
    base, _ = site
    _, page, errors = open_page(browser, base)
    _, other, _ = open_page(browser, base)
    first = page.evaluate("() => Number(document.body.dataset.openings)")
    assert first == 4
    opening = page.evaluate(FIRST_GAP_JS)
    for p in (page, other):
        p.evaluate("id => inspector.edit(id)", opening)
        p.wait_for_selector("#editor:not([hidden])")
    other.select_option("#edit-status", "sealed")
    other.click("#edit-save")
    other.wait_for_function("() => document.getElementById('message').textContent.includes('已保存')")
    page.select_option("#edit-status", "checkpoint")
    page.fill("#edit-cp-name", "东南门")
    page.click("#edit-save")
    page.wait_for_function("() => document.getElementById('message').textContent.includes('已被他人修改')")
    assert page.locator("#edit-status").input_value() == "sealed"      # reloaded: the other edit is shown
    assert not errors


def test_the_overview_shows_the_inspectors_checkpoint_figures(site, browser, tmp_path):
    """One definition, one source: the overview map counts openings (not checkpoint records, which include 中心岗,
    a post 50 m inside the wall that guards no gap) and shows the same figures as the inspector's summary."""
    base, t = site
    context, page, errors = open_page(browser, base)
    shown = {k: page.locator(f"#sum-{k}").inner_text() for k in ("openings", "sealed", "checkpoints")}
    context.close()
    for who in ("insp1", "viewer1"):
        context, overview, errors = open_logged_in(browser, base + "/", who, PASSWORD,
                                                   viewport={"width": 1300, "height": 850})
        assert {k: overview.locator(f"#sum-{k}").inner_text() for k in shown} == shown, who
        assert overview.evaluate("() => layers.checkpoints.getLayers().length") == int(shown["openings"])
        overview.screenshot(path=str(tmp_path / f"overview-{who}.png"))
        context.close()
        assert not errors, errors
    staffed, _ = (int(n) for n in shown["checkpoints"].split(" / "))
    assert staffed == 2 < 3   # 南门 and 北门; the staffed record 中心岗 inside the wall guards no opening
