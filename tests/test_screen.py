"""The command centre's screen: figures per community exact on the small town (households, open and overdue cases,
screening coverage, openings, checkpoints staffed at a given minute), scoped, and the wall page at 1920×1080 in
Chromium with MapLibre drawing gridgov's own vector tiles (MapLibre is asked which features it rendered)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import text

from spatial.access import Principal
from spatial.errors import NotFound
from spatial.store import campaigns, cases, screen, users
from spatial.worktime import LOCAL
from tests import factories
from tests.conftest import open_logged_in
from tests.test_inspection_store import town

PASSWORD = "correct horse battery"
ADMIN = Principal(1, "admin", "admin")
VIEWER = Principal(5, "view", "viewer", scope_code=factories.SUBDISTRICT)
OUTSIDER = Principal(6, "other", "viewer", scope_code="440305001000")


def _case(s, x, y, deadline: str, state: str = "reported") -> None:
    lon, lat = factories.metres_box(x, y, x + 0.1, y + 0.1).centroid.coords[0]
    case = cases.report_case(s, None, category="environment.garbage", lon=lon, lat=lat, description="垃圾")
    s.execute(text("UPDATE cases SET deadline = now() + CAST(:d AS interval), state = :s WHERE id = :id"),
              {"d": deadline, "s": state, "id": case.id})


def _town_with_cases_and_a_campaign(s):
    t = town(s)
    _case(s, 100, 100, "-2 hours")                 # overdue
    _case(s, 120, 100, "3 days")                   # open, on time
    _case(s, 140, 100, "-3 days", "closed")        # closed: neither
    campaign = campaigns.open_campaign(s, ADMIN, "冬季排查", division_code=factories.COMMUNITY)
    household = s.execute(text("SELECT id FROM households ORDER BY id LIMIT 1")).scalar_one()
    lon, lat = factories.metres_box(320, 60, 320.1, 60.1).centroid.coords[0]
    campaigns.record_visit(s, ADMIN, campaign.id, household, result="normal", lon=lon, lat=lat)
    return t


def test_figures_per_community_are_exact_and_staffed_now_follows_the_clock(db):
    _town_with_cases_and_a_campaign(db)
    day = (datetime.now(LOCAL) + timedelta(days=2)).date()  # deadlines: now − 2 h (overdue), now + 3 days (not yet)
    night = datetime.combine(day, time(3), LOCAL)          # 南门 24/7 only; 北门 staffed 06:00–22:00
    noon = datetime.combine(day, time(12), LOCAL)
    f = screen.screen_figures(db, VIEWER, factories.SUBDISTRICT, at=night)
    [c] = [c for c in f.communities if c.code == factories.COMMUNITY]
    households = db.execute(text("SELECT sum(households) FROM buildings WHERE community_code = :c"),
                                 {"c": factories.COMMUNITY}).scalar_one()
    targeted = db.execute(text("SELECT count(*) FROM campaign_targets")).scalar_one()
    assert (c.households, c.open_cases, c.overdue_cases, c.screened, c.targeted) == (households, 2, 1, 1, targeted)
    assert c.openings == {"openings": 4, "open": 1, "sealed": 1, "checkpoints": 2, "staffed_checkpoints": 2,
                          "staff": 3, "unguarded": 1}
    assert c.staffed_now == 1
    assert screen.screen_figures(db, VIEWER, factories.SUBDISTRICT, at=noon).total.staffed_now == 2
    assert f.total.households == sum(x.households for x in f.communities) and f.total.open_cases == 2


def test_figures_are_scoped_and_an_unknown_division_is_named(db):
    _town_with_cases_and_a_campaign(db)
    at = datetime(2026, 12, 2, 12, 0, tzinfo=LOCAL)
    outside = screen.screen_figures(db, OUTSIDER, factories.SUBDISTRICT, at=at)
    assert outside.communities == [] and outside.total.households == outside.total.open_cases == 0
    with pytest.raises(NotFound) as missing:
        screen.screen_figures(db, VIEWER, "440304099999", at=at)
    assert missing.value.code == "division.unknown"


@pytest.mark.browser
def test_the_wall_screen_shows_live_figures_on_a_maplibre_map(live_server, browser, tmp_path):
    base, sessions = live_server
    with sessions.begin() as s:
        _town_with_cases_and_a_campaign(s)
        users.create_user(s, "centre", PASSWORD, "viewer", scope_code=factories.SUBDISTRICT)
    context, page, errors = open_logged_in(browser, f"{base}/screen?division={factories.SUBDISTRICT}", "centre",
                                           PASSWORD, viewport={"width": 1920, "height": 1080}, locale="zh-CN")
    page.wait_for_function("() => Number(document.body.dataset.polls || 0) >= 1", timeout=20_000)
    assert page.locator("#kpi-open_cases .value").inner_text().startswith("2")
    assert "超期 1" in page.locator("#kpi-open_cases").inner_text()
    assert page.locator("#kpi-unguarded .value").inner_text() == "1"
    assert page.locator("#communities tbody tr").count() == 1
    # MapLibre drew gridgov's own tiles: ask it which features it rendered
    page.wait_for_function("() => screenPage.map && screenPage.map.loaded() && "
                           "screenPage.map.queryRenderedFeatures({layers: ['grids-fill']}).length > 0", timeout=30_000)
    rendered = page.evaluate("""() => [...new Set(screenPage.map.queryRenderedFeatures()
        .map((f) => f.sourceLayer))].sort()""")
    assert {"grids", "enclosures"} <= set(rendered), rendered
    assert page.evaluate("() => document.documentElement.scrollWidth <= 1920 && "
                         "document.documentElement.scrollHeight <= 1080")
    # a change arrives without a reload: a new overdue case shows at the next poll
    with sessions.begin() as s:
        _case(s, 160, 100, "-1 hours")
    page.evaluate("() => { clearTimeout(screenPage.timer); }")
    polls = int(page.evaluate("() => document.body.dataset.polls"))
    page.evaluate("() => refresh(new URLSearchParams(location.search).get('division'))")
    page.wait_for_function(f"() => Number(document.body.dataset.polls) > {polls}")
    assert "超期 2" in page.locator("#kpi-open_cases").inner_text()
    page.screenshot(path=str(tmp_path / "screen-1920.png"))
    context.close()
    assert not errors, errors
