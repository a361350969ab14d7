"""Recording a patrol on the field page (issue 17 §2), phone-sized headless Chromium with emulated geolocation:
start, walk a lane (context.set_geolocation), check in at the nearest building, lose the connection, end the patrol
offline, come back online: the queue is sent in order and the scores are shown; nothing is stored twice."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from fixtures.synthetic_city import load_city
from spatial.store import users
from tests.conftest import go_offline, open_logged_in

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"
GRID = "440399001001" + "01"


def test_a_worker_records_a_patrol_partly_offline_and_sees_its_scores(live_server, browser):
    base, sessions = live_server
    with sessions.begin() as s:
        load_city(s, households=300, seed=5)
        users.create_user(s, "worker1", PASSWORD, "grid_worker", grid_codes=(GRID,))
        # a lane of the grid beside a building: walk it from end to end
        walk = s.execute(text("""
            SELECT ST_X(ST_LineInterpolatePoint(e.geom, f)) AS lon, ST_Y(ST_LineInterpolatePoint(e.geom, f)) AS lat
            FROM (SELECT e.geom FROM street_edges e JOIN grids g ON g.code = :g AND ST_Within(e.geom, g.boundary)
                  JOIN buildings b ON b.grid_id = g.id AND ST_DWithin(b.footprint::geography, e.geom::geography, 20)
                  WHERE e.foot ORDER BY e.length_m DESC, e.id LIMIT 1) e,
                 generate_series(0.0, 1.0, 0.1) AS f"""), {"g": GRID}).all()
    assert len(walk) == 11
    first = {"longitude": walk[0].lon, "latitude": walk[0].lat, "accuracy": 5}
    context, page, errors = open_logged_in(browser, base + "/field/", "worker1", PASSWORD,
                                           viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                           locale="zh-CN", geolocation=first, permissions=["geolocation"])
    try:
        page.wait_for_selector("#patrol-grid option", state="attached")
        page.click("#patrol-start")
        page.wait_for_selector("body[data-patrol='recording']")
        for p in walk[1:]:
            context.set_geolocation({"longitude": p.lon, "latitude": p.lat, "accuracy": 5})
            page.wait_for_timeout(250)
        page.wait_for_function("() => /\\b([5-9]|1[0-9])\\b/.test(document.getElementById('patrol-status').textContent)")
        page.click("#patrol-checkin")
        page.wait_for_function("() => document.getElementById('patrol-message').textContent.startsWith('已签到')",
                               timeout=15_000)
        go_offline(page)
        page.click("#patrol-end")  # queued: no connection
        page.wait_for_selector("body[data-patrol='idle']")
        assert page.evaluate("JSON.parse(localStorage.getItem('gridgov.patrol.queue')).length") >= 1
        context.set_offline(False)
        page.wait_for_selector("body[data-patrol-ended]", timeout=20_000)
        assert "巷道覆盖" in page.locator("#patrol-scores").inner_text()
        assert page.evaluate("JSON.parse(localStorage.getItem('gridgov.patrol.queue')).length") == 0
    finally:
        context.close()
    assert not errors, errors
    with sessions() as s:
        record = s.execute(text("SELECT id, status, scores FROM patrol_records")).one()
        fixes = s.scalar(text("SELECT count(*) FROM patrol_fixes"))
        checkins = s.scalar(text("SELECT count(*) FROM patrol_checkins"))
    assert record.status == "ended" and record.scores["fixes"]["received"] == fixes >= 5
    assert checkins == 1 and record.scores["checkins"]["buildings"] == 1
