"""Scorecards (绩效考核, issue 17 §3): every figure of a small November against a hand count, the fair comparison,
who sees which card, the export, and the page.

The town (tests/factories.py): a west grid of 10 households (building 1 in an urban village, 4 households of 2
persons in the ledger; building 2 with a figure of 6 and no ledger) served by worker1, and an east grid of 2 households
(3 persons each) served by worker2. November 2026 (2 November is a Monday; working time 09:00–12:00, 14:00–18:00):

* a campaign over the 6 ledger households: worker1 visits 3 in the west, worker2 one in the east (and one more in
  December);
* worker1 ends two patrols in the west covering lanes {1, 2, 3, 4} and {3, 4, 5} of 10;
* worker1 reports a case in the west and handles it on time (rated 5); worker2 handles an east case late;
* worker1 does a task the day before it is due; worker2 does one two days late.
"""

from __future__ import annotations

import io
import json
from datetime import date, datetime

import openpyxl
import pytest
from sqlalchemy import text

from spatial.access import Principal
from spatial.analysis import scorecards as fair
from spatial.errors import Forbidden
from spatial.store import cases, users
from spatial.store import scorecards as store
from spatial.store.models import Division
from spatial.worktime import LOCAL
from tests import factories
from tests.factories import COMMUNITY

PASSWORD = "correct horse battery"
FAR = "440305000000"
USERS = (("worker1", "grid_worker", None, f"{COMMUNITY}01"), ("worker2", "grid_worker", None, f"{COMMUNITY}02"),
         ("planner1", "planner", COMMUNITY, None), ("far1", "planner", FAR, None),
         ("viewer1", "viewer", COMMUNITY, None))
NOV = {"date_from": date(2026, 11, 1), "date_to": date(2026, 11, 30)}


def at(day: int, hm: str, month: int = 11) -> datetime:
    h, m = map(int, hm.split(":"))
    return datetime(2026, month, day, h, m, tzinfo=LOCAL)


def build(s, password_hash: str) -> dict:
    """The town in session ``s``; returns the principals by user name and the grids."""
    s.add(Division(code=FAR, level="district", name="罗湖区"))
    west, east = factories.two_grids(s)
    b1 = factories.building(s, west, 20, 20, 1, urban_village=True)
    factories.building(s, west, 60, 20, 2, households=6)
    b3 = factories.building(s, east, 260, 20, 1)
    homes = {}
    for b, rooms, residents in ((b1, ("0101", "0102", "0201", "0202"), 2), (b3, ("0101", "0102"), 3)):
        homes[b.id] = [s.scalar(text("INSERT INTO households (building_id, room, residents) VALUES (:b, :r, :n) "
                                     "RETURNING id"), {"b": b.id, "r": r, "n": residents}) for r in rooms]
    made = factories.users_with_grids(s, USERS, password_hash)
    who = {name: Principal(u.id, name, u.role, u.scope_code,
                           frozenset({west.id} if name == "worker1" else {east.id} if name == "worker2" else set()))
           for name, u in made.items()}
    campaign = s.scalar(text("INSERT INTO campaigns (name, created_by, created_at) VALUES ('入户排查', 'planner1', "
                             ":t) RETURNING id"), {"t": at(31, "09:00", 10)})
    for grid, b in ((west, b1), (east, b3)):
        s.execute(text("INSERT INTO campaign_grids VALUES (:c, :g)"), {"c": campaign, "g": grid.id})
        for h in homes[b.id]:
            s.execute(text("INSERT INTO campaign_targets VALUES (:c, :h, :g)"), {"c": campaign, "h": h, "g": grid.id})
    visits = [(homes[b1.id][i], "worker1", at(3 + i, "10:00")) for i in range(3)]
    visits += [(homes[b3.id][0], "worker2", at(5, "10:00")), (homes[b3.id][1], "worker2", at(1, "10:00", 12))]
    for h, worker, when in visits:
        s.execute(text("""INSERT INTO campaign_visits (campaign_id, household_id, result, visited_at, worker,
                          worker_position, distance_m, far_from_building)
                          VALUES (:c, :h, 'normal', :t, :w, ST_SetSRID(ST_MakePoint(114.07, 22.56), 4326), 0,
                                  false)"""),
                  {"c": campaign, "h": h, "t": when, "w": worker})
    for day, lanes in ((10, [1, 2, 3, 4]), (12, [3, 4, 5])):
        s.execute(text("""INSERT INTO patrol_records (worker_id, grid_id, datum, status, started_at, ended_at, scores)
                          VALUES (:w, :g, 'EPSG:4326', 'ended', :a, :b, CAST(:s AS jsonb))"""),
                  {"w": who["worker1"].user_id, "g": west.id, "a": at(day, "09:00"), "b": at(day, "10:00"),
                   "s": json.dumps({"lanes": {"total": 10, "covered": len(lanes), "ids": lanes}})})
    centre = who["planner1"]

    def case(x, reporter, worker, steps, day):
        lon, lat = factories.metres_box(x, 50, x + 0.1, 50.1).centroid.coords[0]
        c = cases.report_case(s, reporter, category=steps[0], lon=lon, lat=lat, description="测试事件",
                              reporter_name="张三丰", reporter_phone="13812345678", now=at(day, "09:00"))
        for action, when in steps[1]:
            actor = who[worker] if action in ("accept", "report_back") else centre
            cases.act(s, actor, c.id, action, now=when, assignee=worker if action == "dispatch" else None,
                      note="说明")
        return c.id

    flow = ("register", "dispatch", "accept", "report_back", "verify", "close")
    on_time = case(50, who["worker1"], "worker1", ("environment.garbage", list(zip(flow, [
        at(2, t) for t in ("09:10", "09:20", "09:30", "10:30", "10:50", "11:00")], strict=True))), 2)
    case(250, None, "worker2", ("market", list(zip(flow, [at(2, "09:10"), at(2, "09:20"), at(2, "09:30"),
                                                     at(9, "09:20"), at(9, "09:40"), at(9, "09:50")], strict=True))), 2)
    s.execute(text("UPDATE cases SET satisfaction = 5 WHERE id = :id"), {"id": on_time})
    for worker, grid, b, due, done in (("worker1", west, b1, date(2026, 11, 20), at(19, "15:00")),
                                       ("worker2", east, b3, date(2026, 11, 25), at(27, "15:00"))):
        s.execute(text("""INSERT INTO tasks (kind, grid_id, building_id, assignee_id, due, done_at, done_by, created_by)
                          VALUES ('care_visit', :g, :b, :u, :due, :done, :w, 'planner1')"""),
                  {"g": grid.id, "b": b.id, "u": who[worker].user_id, "due": due, "done": done, "w": worker})
    s.flush()
    return {"who": who, "made": made, "west": west, "east": east}


@pytest.fixture(scope="module")
def password_hash() -> str:
    return users.hash_password(PASSWORD)


@pytest.fixture
def town(db, password_hash):
    return db, build(db, password_hash)


W1 = dict(households=10.0, urban_village_households=4.0, households_visited=3, persons_visited=6,
          campaign_targets=4, campaign_visited=3, patrols=2, lanes_covered=5, lanes_total=10, cases_found=1,
          cases_due=1, cases_closed=1, cases_on_time=1, on_time_rate=1.0, rated=1, avg_satisfaction=5.0,
          tasks_due=1, tasks_done=1, tasks_on_time=1)
W2 = dict(households=2.0, urban_village_households=0.0, households_visited=1, persons_visited=3,
          campaign_targets=2, campaign_visited=1, patrols=0, lanes_covered=0, lanes_total=0, cases_found=0,
          cases_due=1, cases_closed=1, cases_on_time=0, on_time_rate=0.0, rated=0, avg_satisfaction=None,
          tasks_due=1, tasks_done=1, tasks_on_time=0)


def figures(card) -> dict:
    return {k: getattr(card, k) for k in store.MEASURES}


def test_every_figure_of_workers_and_grids_by_hand(town):
    db, t = town
    found = store.measures(db, t["who"]["planner1"], **NOV)
    assert [c.key for c in found.workers] == ["worker1", "worker2"]
    assert figures(found.workers[0]) == W1 and figures(found.workers[1]) == W2
    assert [c.key for c in found.grids] == [f"{COMMUNITY}01", f"{COMMUNITY}02"]
    # one worker per grid: the grid's card is its worker's (cases found: by any account in the grid)
    assert figures(found.grids[0]) == W1 and figures(found.grids[1]) == W2
    assert found.workers[0].grids == [f"{COMMUNITY}01"] and found.workers[0].community == COMMUNITY
    assert db.scalar(text("SELECT count(*) FROM audit_log WHERE action = 'read_scorecards'")) == 1
    # worker1: 0.3 × 0.3 + 0.2 × 0.5 + 0.3 × 1 + 0.1 × 1 + 0.1 × 1 = 0.69, × (1 + 0.2 × 0.4) = 0.7452
    # worker2: (0.3 × 0.5 + 0.3 × 0 + 0.1 × 0) / 0.7 = 0.2143 (no lanes known, no rating: left out)
    w1, w2 = fair.rank([_load(c) for c in found.workers])
    assert (w1.visit_share, w1.lane_share, w1.task_share, w1.satisfaction, w1.difficulty) == (0.3, 0.5, 1.0, 1.0, 1.08)
    assert (w1.composite, w1.rank, w2.composite, w2.rank) == (0.7452, 1, 0.2143, 2)
    # a two-worker grid splits its households
    db.execute(text("INSERT INTO grid_assignments (user_id, grid_id) VALUES (:u, :g)"),
               {"u": t["who"]["worker2"].user_id, "g": t["west"].id})
    w1_now, w2_now = store.measures(db, t["who"]["planner1"], **NOV).workers
    assert (w1_now.households, w2_now.households, w2_now.urban_village_households) == (5.0, 7.0, 2.0)


def _load(c) -> fair.Workload:
    return fair.Workload(c.key, c.community, c.households, c.urban_village_households, c.households_visited,
                         c.lanes_covered, c.lanes_total, c.on_time_rate, c.tasks_due, c.tasks_on_time,
                         c.avg_satisfaction)


def test_a_worker_with_600_households_is_not_ranked_below_one_with_250_for_the_same_share():
    def load(key, households, visited, uv=0.0):
        return fair.Workload(key, COMMUNITY, households, uv, visited, 4, 10, 0.9, 2, 2, 4.0)
    big, small = fair.rank([load("big", 600, 300), load("small", 250, 125)])
    assert big.visit_share == small.visit_share == 0.5 and big.composite == small.composite
    assert big.rank == small.rank == 1
    # the same share in an urban village scores more; ranks are per community
    village, estate, elsewhere = fair.rank([load("v", 600, 300, uv=600), load("e", 250, 125),
                                            fair.Workload("x", "440304099002", 10, 0, 1, 0, 0, None, 0, 0, None)])
    assert village.difficulty == 1.2 and village.composite > estate.composite
    assert (village.rank, estate.rank, elsewhere.rank) == (1, 2, 1)
    # nothing to judge: no composite, no rank
    (empty,) = fair.rank([fair.Workload("z", COMMUNITY, 0, 0, 0, 0, 0, None, 0, 0, None)])
    assert (empty.composite, empty.rank) == (None, None)


def test_who_sees_which_card(town):
    db, t = town
    mine = store.measures(db, t["who"]["worker1"], **NOV)
    assert [c.key for c in mine.workers] == ["worker1"] and [c.key for c in mine.grids] == [f"{COMMUNITY}01"]
    assert figures(mine.workers[0]) == {**W1}
    far = store.measures(db, t["who"]["far1"], **NOV)
    assert far.workers == [] and far.grids == []
    with pytest.raises(Forbidden):
        store.measures(db, t["who"]["viewer1"], **NOV)


@pytest.fixture
def served(app_env, password_hash):
    client, sessions = app_env
    with sessions.begin() as s:
        t = build(s, password_hash)
        headers = {n: {"Authorization": "Bearer " + users.issue_token(s, u, 3600)[0]} for n, u in t["made"].items()}
    return client, headers


def test_the_endpoint_the_export_and_the_scope(served):
    client, headers = served
    q = {"from": "2026-11-01", "to": "2026-11-30"}
    body = client.get("/api/scorecards", params=q, headers=headers["planner1"]).json()
    assert [c["key"] for c in body["workers"]] == ["worker1", "worker2"]
    assert body["workers"][0]["measures"] == W1 and body["workers"][0]["scores"]["composite"] == 0.7452
    assert {c["key"] for c in body["measures"]} == set(store.MEASURES) and body["formula"]
    assert all(c["definition"] for c in body["measures"] + body["scores"])
    mine = client.get("/api/scorecards", params=q, headers=headers["worker2"]).json()
    assert [c["key"] for c in mine["workers"]] == ["worker2"]
    assert [c["key"] for c in mine["grids"]] == [f"{COMMUNITY}02"]
    far = client.get("/api/scorecards", params={**q, "division": COMMUNITY}, headers=headers["far1"])
    assert far.status_code == 403 and far.json()["code"] == "scope.outside_area"
    assert client.get("/api/scorecards", params=q, headers=headers["far1"]).json()["workers"] == []
    assert client.get("/api/scorecards", params=q, headers=headers["viewer1"]).status_code == 403
    one = client.get("/api/scorecards", params={**q, "division": f"{COMMUNITY}02"}, headers=headers["planner1"]).json()
    assert [c["key"] for c in one["workers"]] == ["worker2"] and [c["key"] for c in one["grids"]] == [f"{COMMUNITY}02"]
    assert one["grids"][0]["measures"] == W2
    assert client.get("/api/scorecards", params={"from": "2026-11-30", "to": "2026-11-01"},
                      headers=headers["planner1"]).status_code == 422
    xlsx = client.get("/api/scorecards/export", params={**q, "division": COMMUNITY, "format": "xlsx"},
                      headers=headers["planner1"])
    assert xlsx.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(xlsx.content))
    sheet = book.worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("类别", "用户名/网格编码", "姓名/网格名称") and len(rows) == 5
    by_key = {r[1]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    assert by_key["worker1"]["走访户数"] == 3 and by_key["worker1"]["综合得分"] == 0.7452 and by_key["worker1"]["社区内排名"] == 1
    assert by_key[f"{COMMUNITY}02"]["类别"] == "网格" and by_key[f"{COMMUNITY}02"]["按期结案率"] == 0
    assert book.sheetnames[1] == "口径"
    csv = client.get("/api/scorecards/export", params={**q, "format": "csv"}, headers=headers["worker1"])
    lines = csv.content.decode("utf-8-sig").splitlines()
    assert len(lines) == 3 and lines[1].startswith("网格员,worker1,")


def test_the_page_shows_the_cards_and_the_definitions(live_server, browser, password_hash):
    from tests.conftest import open_logged_in

    base, sessions = live_server
    with sessions.begin() as s:
        build(s, password_hash)
    context, page, errors = open_logged_in(browser, f"{base}/scorecards?from=2026-11-01&to=2026-11-30",
                                           "planner1", PASSWORD)
    try:
        page.wait_for_selector("#workers tbody tr[data-key='worker1']")
        assert page.locator("#workers tbody tr").count() == 2
        assert page.locator("#workers tr[data-key='worker1'] td.rank").inner_text() == "1"
        assert "走访率" in page.locator("#workers thead").inner_text()
        assert "城中村户数占比" in page.locator("#definitions").inner_text()
        page.click("#lang")
        page.wait_for_selector("body[data-ready='1']")
        page.locator("#workers thead th", has_text="visit share").wait_for()
        assert errors == []
    finally:
        context.close()
