"""Case figures against a fixture of 15 cases with known event times: every figure checked by hand-computed
numbers (working time 09:00–12:00 and 14:00–18:00; December 2026 starts on a Tuesday)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
import shapely
from sqlalchemy import text

from spatial.access import Principal
from spatial.errors import InvalidInput
from spatial.store import case_figures as figures
from spatial.store import cases
from spatial.worktime import LOCAL, Limit
from tests import factories

CENTRE = Principal(2, "centre1", "planner", scope_code=factories.SUBDISTRICT)
WORKERS = {"worker1": Principal(3, "worker1", "grid_worker"), "worker2": Principal(4, "worker2", "grid_worker")}
HANDLER_ACTIONS = {"accept", "report_back", "request_extension"}


def at(day: int, hm: str, month: int = 12, year: int = 2026) -> datetime:
    h, m = map(int, hm.split(":"))
    return datetime(year, month, day, h, m, tzinfo=LOCAL)


def make(db, x: float, category: str, reported_at: datetime, steps, worker: str | None = None) -> int:
    """A case reported at x metres east (west grid < 200 ≤ east grid), then ``steps`` of (action, instant)."""
    lon, lat = factories.metres_box(x, 50, x + 0.1, 50.1).centroid.coords[0]
    case = cases.report_case(db, None, category=category, lon=lon, lat=lat, description="测试事件",
                             reporter_name="张三丰", reporter_phone="13812345678", now=reported_at)
    for action, now in steps:
        who = WORKERS[worker] if action in HANDLER_ACTIONS else CENTRE
        cases.act(db, who, case.id, action, now=now, assignee=worker if action == "dispatch" else None,
                  note="说明", extension=Limit(1, "work_days") if action == "request_extension" else None)
    return case.id


def path(day: int, times: list[str], actions=("register", "dispatch", "accept", "report_back", "verify", "close")):
    return [(a, at(day, t)) for a, t in zip(actions, times, strict=True)]


W, E = 50, 250  # x of a case in the west and in the east grid


@pytest.fixture
def town(db):
    west, east = factories.two_grids(db)
    ids = {}
    # 1 west, on time, stays 10 10 10 60 20 10
    ids[1] = make(db, W, "environment.garbage", at(2, "09:00"),
                  path(2, ["09:10", "09:20", "09:30", "10:30", "10:50", "11:00"]), "worker1")
    # 2 west, registered 30 minutes late; stays 60 10 10 40 20 10
    ids[2] = make(db, W, "environment.garbage", at(3, "09:00"),
                  path(3, ["10:00", "10:10", "10:20", "11:00", "11:20", "11:30"]), "worker1")
    # 3 west, one redo; stays 10 10 10 30 30 30 10 10
    ids[3] = make(db, W, "environment.garbage", at(4, "09:00"), path(
        4, ["09:10", "09:20", "09:30", "10:00", "10:30", "11:00", "11:10", "11:20"],
        ("register", "dispatch", "accept", "report_back", "verify_fail", "report_back", "verify", "close")), "worker1")
    # 4 west, an approved extension (no state change); stays 10 10 20 60 20 10
    ids[4] = make(db, W, "facilities.streetlight", at(7, "09:00"), path(
        7, ["09:10", "09:20", "09:25", "09:30", "09:40", "10:40", "11:00", "11:10"],
        ("register", "dispatch", "request_extension", "approve_extension", "accept", "report_back", "verify",
         "close")), "worker1")
    # 5 east, open in handling, deadline 5 working days after 8 Dec 09:20 (15 Dec); stays 10 10 10
    ids[5] = make(db, E, "disputes", at(8, "09:00"), path(8, ["09:10", "09:20", "09:30"],
                                                          ("register", "dispatch", "accept")), "worker2")
    # 6 east, open, its handling deadline in January: not due in December
    ids[6] = make(db, E, "market", at(30, "17:00"), path(30, ["17:10", "17:20"], ("register", "dispatch")), "worker2")
    # 7 west, closed in November
    ids[7] = make(db, W, "environment.garbage", at(30, "09:00", month=11), [
        (a, at(30, t, month=11)) for a, t in zip(("register", "dispatch", "accept", "report_back", "verify", "close"),
                                                 ["09:10", "09:20", "09:30", "10:30", "10:50", "11:00"])], "worker1")
    # 8 east, rejected; 9 east, deferred: neither is ever due
    ids[8] = make(db, E, "environment.garbage", at(2, "09:00"), path(2, ["09:05"], ("reject",)))
    ids[9] = make(db, E, "facilities.streetlight", at(9, "09:00"), path(9, ["09:10", "09:20"], ("register", "defer")))
    # 10 east, never registered: its register deadline (10 Dec 09:30) passed; nobody assigned; no stay completed
    ids[10] = make(db, E, "environment.garbage", at(10, "09:00"), [])
    # 11 east, handled late (deadline 4 Dec 09:20, reported back 7 Dec 09:20); stays 10 10 10 1670 20 10
    ids[11] = make(db, E, "market", at(1, "09:00"), [
        ("register", at(1, "09:10")), ("dispatch", at(1, "09:20")), ("accept", at(1, "09:30")),
        ("report_back", at(7, "09:20")), ("verify", at(7, "09:40")), ("close", at(7, "09:50"))], "worker2")
    # 12 west, closed then reopened: open, dispatch deadline 11 Dec 11:00; stays 10 10 10 30 10 10
    ids[12] = make(db, W, "environment.garbage", at(11, "09:00"), path(
        11, ["09:10", "09:20", "09:30", "10:00", "10:10", "10:20", "10:30"],
        ("register", "dispatch", "accept", "report_back", "verify", "close", "reopen")), "worker1")
    # 13 east, merged into case 10: counted nowhere
    ids[13] = make(db, E + 5, "environment.garbage", at(10, "09:05"), [])
    db.execute(text("UPDATE cases SET duplicate_of = :d WHERE id = :id"), {"d": ids[10], "id": ids[13]})
    # 14 west, on time; stays 10 10 10 120 10 10
    ids[14] = make(db, W, "disputes", at(14, "09:00"),
                   path(14, ["09:10", "09:20", "09:30", "11:30", "11:40", "11:50"]), "worker1")
    # 15 east, registered 10 minutes late, extended; stays 40 10 20 60 10 10
    ids[15] = make(db, E, "environment.garbage", at(15, "09:00"), path(
        15, ["09:40", "09:50", "10:00", "10:05", "10:10", "11:10", "11:20", "11:30"],
        ("register", "dispatch", "request_extension", "approve_extension", "accept", "report_back", "verify",
         "close")), "worker2")
    for case, score in {1: 5, 2: 3, 4: 4, 14: 4, 11: 2, 15: 5, 7: 1}.items():
        db.execute(text("UPDATE cases SET satisfaction = :s WHERE id = :id"), {"s": score, "id": ids[case]})
    return db, west, east, ids


def december(db, by: str, who: Principal = CENTRE) -> dict:
    result = figures.case_figures(db, who, by=by, date_from=date(2026, 12, 1), date_to=date(2026, 12, 31))
    return {r.key: r for r in result.rows}


WEST = dict(due=6, closed=5, closed_on_time=4, redone=1, extended=1, closure_rate=0.8333, on_time_rate=0.6667,
            redo_rate=0.2, extension_rate=0.1667, avg_step_minutes=round(790 / 38, 1), rated=4, avg_satisfaction=4.0)
EAST = dict(due=4, closed=2, closed_on_time=0, redone=0, extended=1, closure_rate=0.5, on_time_rate=0.0,
            redo_rate=0.0, extension_rate=0.25, avg_step_minutes=round(1910 / 15, 1), rated=2, avg_satisfaction=3.5)


def check(row, expected: dict) -> None:
    assert {k: getattr(row, k) for k in expected} == expected


def test_per_grid_every_figure_by_hand(town):
    db, west, east, _ = town
    rows = december(db, "grid")
    assert list(rows) == [west.code, east.code]
    assert rows[west.code].label == "西网格"
    check(rows[west.code], WEST)
    check(rows[east.code], EAST)


def test_per_worker_and_the_unassigned_case_last(town):
    db, *_ = town
    rows = december(db, "worker")
    assert list(rows) == ["worker1", "worker2", None]
    check(rows["worker1"], WEST)
    check(rows[None], dict(due=1, closed=0, closure_rate=0.0, redo_rate=None, avg_step_minutes=None,
                           avg_satisfaction=None))
    # worker2: cases 5, 11, 15
    check(rows["worker2"], dict(due=3, closed=2, closed_on_time=0, extended=1, closure_rate=0.6667,
                                extension_rate=0.3333, avg_step_minutes=round(1910 / 15, 1)))


def test_per_community_subdistrict_category_and_department(town):
    db, *_ = town
    everything = dict(due=10, closed=7, closed_on_time=4, redone=1, extended=2, closure_rate=0.7, on_time_rate=0.4,
                      redo_rate=0.1429, extension_rate=0.2, avg_step_minutes=round(2700 / 53, 1),
                      rated=6, avg_satisfaction=round(23 / 6, 2))
    [community] = december(db, "community").values()
    assert (community.key, community.label) == (factories.COMMUNITY, "测试社区")
    check(community, everything)
    [subdistrict] = december(db, "subdistrict").values()
    assert (subdistrict.key, subdistrict.label) == (factories.SUBDISTRICT, "测试街道")
    check(subdistrict, everything)
    by_category = december(db, "category")
    assert list(by_category) == ["disputes", "environment.garbage", "facilities.streetlight", "market"]
    # garbage: 1, 2, 3, 10, 12, 15; stays 120 + 150 + 140 + 0 + 80 + 150 over 6 + 6 + 8 + 0 + 6 + 6
    check(by_category["environment.garbage"], dict(due=6, closed=4, closed_on_time=2, redone=1, extended=1,
                                                   closure_rate=0.6667, on_time_rate=0.3333, redo_rate=0.25,
                                                   avg_step_minutes=round(640 / 32, 1), rated=3,
                                                   avg_satisfaction=4.33))
    assert by_category["environment.garbage"].label == "垃圾堆放"
    check(by_category["disputes"], dict(due=2, closed=1, closed_on_time=1, avg_step_minutes=round(200 / 9, 1)))
    by_department = december(db, "department")
    assert set(by_department) == {"城市管理和综合执法局", "司法所", "市场监督管理局"}
    check(by_department["城市管理和综合执法局"], dict(due=7, closed=5, extended=2, extension_rate=0.2857))
    check(by_department["市场监督管理局"], dict(due=1, closed=1, on_time_rate=0.0, rated=1,
                                                       avg_satisfaction=2.0))


def test_per_month_in_shanghai_time(town):
    db, *_ = town
    result = figures.case_figures(db, CENTRE, by="month", date_from=date(2026, 11, 1), date_to=date(2027, 1, 31))
    rows = {r.key: r for r in result.rows}
    assert list(rows) == ["2026-11", "2026-12", "2027-01"]
    check(rows["2026-11"], dict(due=1, closed=1, closed_on_time=1, avg_step_minutes=20.0, rated=1,
                                     avg_satisfaction=1.0))
    check(rows["2026-12"], dict(due=10, closed=7))
    check(rows["2027-01"], dict(due=1, closed=0, closure_rate=0.0, avg_step_minutes=10.0))  # case 6: 10, 10


def test_a_case_closed_at_local_midnight_belongs_to_the_day_it_starts(town):
    db, west, _, ids = town
    db.execute(text("UPDATE cases SET closed_at = :t WHERE id = :id"), {"t": at(1, "00:00"), "id": ids[7]})
    assert december(db, "grid")[west.code].due == 7
    db.execute(text("UPDATE cases SET closed_at = :t WHERE id = :id"),
               {"t": datetime(2026, 11, 30, 23, 59, tzinfo=LOCAL), "id": ids[7]})
    assert december(db, "grid")[west.code].due == 6


def test_the_period_defaults_to_the_current_month_up_to_today(town):
    db, west, _, _ = town
    result = figures.case_figures(db, CENTRE, by="grid", today=date(2026, 12, 9))
    assert (result.date_from, result.date_to) == (date(2026, 12, 1), date(2026, 12, 9))
    assert {r.key: r.due for r in result.rows}[west.code] == 4  # cases 1-4; 12 and 14 fall due later
    only_end = figures.case_figures(db, CENTRE, by="grid", date_to=date(2026, 11, 30))
    assert (only_end.date_from, [r.due for r in only_end.rows]) == (date(2026, 11, 1), [1])


def test_figures_keep_to_the_callers_area(town):
    db, west, east, _ = town
    west_worker = Principal(5, "worker3", "grid_worker", grid_ids=frozenset({west.id}))
    assert list(december(db, "grid", west_worker)) == [west.code]
    check(december(db, "grid", west_worker)[west.code], WEST)
    assert december(db, "grid", Principal(6, "planner9", "planner", scope_code="440305001000")) == {}
    # worker2 handles east cases but has no grid: its area is empty, being the assignee adds nothing
    assert december(db, "worker", Principal(4, "worker2", "grid_worker")) == {}


def test_bad_groups_and_periods_are_refused(town):
    db, *_ = town
    with pytest.raises(InvalidInput, match="by must be one of"):
        figures.case_figures(db, CENTRE, by="planet", date_from=date(2026, 12, 1), date_to=date(2026, 12, 31))
    with pytest.raises(InvalidInput, match="before it starts"):
        figures.case_figures(db, CENTRE, by="grid", date_from=date(2026, 12, 2), date_to=date(2026, 12, 1))
    with pytest.raises(InvalidInput, match="at most"):
        figures.case_figures(db, CENTRE, by="grid", date_from=date(2020, 1, 1), date_to=date(2026, 12, 1))
    with pytest.raises(InvalidInput, match="between 2000-01-01 and 2199-12-31"):
        figures.case_figures(db, CENTRE, by="grid", date_from=date(9999, 12, 31))


def test_the_endpoint_answers_with_labelled_columns_and_refuses_bad_input(app_env):
    from spatial.store import users
    from tests.conftest import login

    client, sessions = app_env
    with sessions.begin() as s:
        west, _ = factories.two_grids(s)
        make(s, W, "environment.garbage", at(2, "09:00"),
             path(2, ["09:10", "09:20", "09:30", "10:30", "10:50", "11:00"]), "worker1")
        make(s, E, "environment.garbage", at(10, "09:00"), [])
        users.create_user(s, "centre1", "correct horse battery", "planner", scope_code=factories.SUBDISTRICT)
        west_code = west.code
    headers = login(client, "centre1", "correct horse battery")
    answer = client.get("/api/cases/figures?by=grid&from=2026-12-01&to=2026-12-31", headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["by"], body["from"], body["to"]) == ("grid", "2026-12-01", "2026-12-31")
    assert body["group"] == {"key": "grid", "zh": "网格", "en": "grid"}
    labels = {c["key"]: c["zh"] for c in body["columns"]}
    assert labels["closure_rate"] == "结案率" and labels["on_time_rate"] == "按期结案率"
    assert set(labels) == set(body["rows"][0])
    rows = {r["key"]: r for r in body["rows"]}
    assert rows[west_code]["closure_rate"] == 1.0 and rows[west_code]["avg_step_minutes"] == 20.0
    assert [r["closure_rate"] for r in body["rows"]] == [1.0, 0.0]
    assert "张" not in answer.text and "138" not in answer.text
    month = client.get("/api/cases/figures?by=month&from=2026-12-01&to=2026-12-31", headers=headers).json()
    assert [r["key"] for r in month["rows"]] == ["2026-12"]
    for query, words in (("by=planet", "by"), ("from=2026-12-02&to=2026-12-01", "before it starts"),
                         ("from=2026-13-01", "from"), ("from=2020-01-01&to=2026-12-01", "at most"),
                         ("from=9999-12-31", "from"), ("to=0001-01-01", "to")):
        refused = client.get(f"/api/cases/figures?{query}", headers=headers)
        assert refused.status_code == 422 and words in refused.text, (query, refused.text)
    assert client.get("/api/cases/figures").status_code == 401


# -- hot spots ------------------------------------------------------------------------------------------------------

NOW = at(15, "12:00")


def lonlat(x: float, y: float) -> shapely.Point:
    return factories.metres_box(x, y, x + 0.1, y + 0.1).centroid


def spot(db, x: float, y: float, category: str = "environment.garbage", days_ago: int = 1,
         state: str | None = None) -> int:
    case = cases.report_case(db, None, category=category, lon=lonlat(x, y).x, lat=lonlat(x, y).y, description="又堆了",
                             now=NOW - timedelta(days=days_ago))
    if state:
        db.execute(text("UPDATE cases SET state = :s WHERE id = :id"), {"s": state, "id": case.id})
    return case.id


@pytest.fixture
def spots(db):
    west, east = factories.two_grids(db)
    ids = {name: spot(db, x, y) for name, (x, y) in
           {"a": (50, 50), "b": (70, 50), "c": (90, 50), "d": (70, 70), "h": (300, 150), "i": (310, 150),
            "j": (150, 150)}.items()}
    ids["e"] = spot(db, 60, 40, days_ago=200)                      # old but still open: in the pool
    ids["f"] = spot(db, 60, 60, days_ago=200, state="closed")      # old and closed: only with days=365
    ids["g"] = spot(db, 55, 55, state="rejected")                  # never
    ids["merged"] = spot(db, 52, 52)
    db.execute(text("UPDATE cases SET duplicate_of = :a WHERE id = :id"), {"a": ids["a"], "id": ids["merged"]})
    for name, (x, y) in {"s1": (50, 60), "s2": (60, 60), "s3": (55, 80)}.items():
        ids[name] = spot(db, x, y, category="facilities.streetlight")
    return db, west, east, ids


def test_hot_spots_are_dbscan_clusters_of_one_category_within_50_m(spots):
    from spatial.store.case_hotspots import hotspots

    db, _, _, ids = spots
    [garbage] = hotspots(db, CENTRE, category="environment.garbage", now=NOW)
    assert garbage.properties["case_ids"] == sorted(ids[n] for n in "abcde")
    assert (garbage.properties["cases"], garbage.properties["unresolved"]) == (5, 5)
    assert garbage.properties["category"] == "垃圾堆放" and garbage.geometry.geom_type == "Polygon"
    for x, y in ((50, 50), (70, 50), (90, 50), (70, 70), (60, 40)):
        assert garbage.geometry.contains(lonlat(x, y)), (x, y)
    assert garbage.geometry.contains(lonlat(70, 25)) and not garbage.geometry.contains(lonlat(70, 10))  # 25 m wider
    assert not garbage.geometry.contains(lonlat(150, 150))
    year = hotspots(db, CENTRE, category="environment.garbage", days=365, now=NOW)[0].properties
    assert (year["cases"], year["unresolved"]) == (6, 5) and ids["f"] in year["case_ids"]
    pairs = hotspots(db, CENTRE, category="environment.garbage", min_cases=2, now=NOW)
    assert [f.properties["cases"] for f in pairs] == [5, 2]
    every = hotspots(db, CENTRE, now=NOW)
    assert [(f.id, f.properties["cases"]) for f in every] == [("environment.garbage#1", 5),
                                                              ("facilities.streetlight#2", 3)]
    assert [f.properties["cases"] for f in hotspots(db, CENTRE, category="environment", now=NOW)] == [5]
    assert hotspots(db, CENTRE, category="environment.garbage", eps_m=10, now=NOW) == []


def test_hot_spots_keep_to_the_callers_area_and_refuse_bad_input(spots):
    from spatial.store.case_hotspots import hotspots

    db, west, east, _ = spots
    east_worker = Principal(7, "worker7", "grid_worker", grid_ids=frozenset({east.id}))
    assert hotspots(db, east_worker, min_cases=2, now=NOW)[0].properties["cases"] == 2  # h, i
    assert hotspots(db, east_worker, now=NOW) == []
    with pytest.raises(InvalidInput, match="unknown case category"):
        hotspots(db, CENTRE, category="aliens")
    with pytest.raises(InvalidInput, match="days"):
        hotspots(db, CENTRE, days=0)


def test_the_hot_spot_endpoint_answers_geojson_in_the_callers_crs(app_env):
    from spatial.store import users
    from tests.conftest import login

    client, sessions = app_env
    with sessions.begin() as s:
        factories.two_grids(s)
        for x in (50, 70, 90):
            cases.report_case(s, None, category="environment.garbage", lon=lonlat(x, 50).x, lat=lonlat(x, 50).y,
                              description="又堆了", reporter_name="张三丰", reporter_phone="13812345678")
        users.create_user(s, "centre1", "correct horse battery", "planner", scope_code=factories.SUBDISTRICT)
    headers = login(client, "centre1", "correct horse battery")
    answer = client.get("/api/cases/hotspots?category=environment.garbage&days=90", headers=headers)
    assert answer.status_code == 200, answer.text
    [feature] = answer.json()["features"]
    assert feature["properties"]["cases"] == 3 and feature["geometry"]["type"] == "Polygon"
    assert "张三丰" not in answer.text and "13812345678" not in answer.text
    metres = client.get("/api/cases/hotspots?crs=EPSG:4547", headers=headers).json()["features"][0]
    xs = [x for x, _ in metres["geometry"]["coordinates"][0]]
    assert abs(min(xs) - (factories.ORIGIN_X + 25)) < 1 and abs(max(xs) - (factories.ORIGIN_X + 115)) < 1
    for query, words in (("category=aliens", "unknown case category"), ("days=0", "days"),
                         ("category=Not-A-Code", "category"), ("eps_m=1", "eps_m")):
        refused = client.get(f"/api/cases/hotspots?{query}", headers=headers)
        assert refused.status_code == 422 and words in refused.text, (query, refused.text)


def test_step_times_over_nights_weekends_holidays_and_a_working_saturday(db):
    """Stays of several days: only working time counts (09:00–12:00, 14:00–18:00), none on a weekend, on a day off
    the admin entered (Wednesday 9 December) or at night, and a full day on the admin's 调休 Saturday 19 December;
    extension events inside a stay do not split it, and a case late only at them is not on time."""
    admin = Principal(1, "admin1", "admin")
    cases.enter_calendar_day(db, admin, date(2026, 12, 9), False, "测试假日")
    cases.enter_calendar_day(db, admin, date(2026, 12, 19), True, "测试调休")
    factories.two_grids(db)
    # A, garbage: Fri 4 17:00 → Mon 7 09:30 (late) → Tue 8 10:00 → 15:00 → Thu 10 11:00 → Sat 12 10:00 → Mon 14 09:10;
    # stays 60 + 30, 390 + 60, 120 + 60, 180 + 0 + 120, 300 + 420 + 0, 0 + 0 + 10: 1750
    make(db, W, "environment.garbage", at(4, "17:00"), [
        ("register", at(7, "09:30")), ("dispatch", at(8, "10:00")), ("accept", at(8, "15:00")),
        ("report_back", at(10, "11:00")), ("verify", at(12, "10:00")), ("close", at(14, "09:10"))], "worker1")
    # B, disputes, on time: Fri 18 17:50 → Sat 19 09:10 → 09:30 → 10:00 → Mon 21 10:00 → 11:00 → 11:10;
    # stays 10 + 10, 20, 30, 360 + 0 + 60, 60, 10: 560
    make(db, W, "disputes", at(18, "17:50"), [
        ("register", at(19, "09:10")), ("dispatch", at(19, "09:30")), ("accept", at(19, "10:00")),
        ("report_back", at(21, "10:00")), ("verify", at(21, "11:00")), ("close", at(21, "11:10"))], "worker1")
    # C, market: handling from Mon 21 09:30 to Fri 25 09:00 (390 + 420 + 420 + 420 + 0), its deadline (Thu 24 09:20)
    # passed when the extension was asked (10:00) and approved (10:30), the report back on time after it;
    # stays 10 10 10 1650 30 10: 1720
    make(db, E, "market", at(21, "09:00"), [
        ("register", at(21, "09:10")), ("dispatch", at(21, "09:20")), ("accept", at(21, "09:30")),
        ("request_extension", at(24, "10:00")), ("approve_extension", at(24, "10:30")),
        ("report_back", at(25, "09:00")), ("verify", at(25, "09:30")), ("close", at(25, "09:40"))], "worker1")
    by_category = december(db, "category")
    check(by_category["environment.garbage"], dict(due=1, closed=1, closed_on_time=0,
                                                   avg_step_minutes=round(1750 / 6, 1)))
    check(by_category["disputes"], dict(due=1, closed=1, closed_on_time=1, avg_step_minutes=round(560 / 6, 1)))
    check(by_category["market"], dict(due=1, closed=1, closed_on_time=0, extended=1,
                                      avg_step_minutes=round(1720 / 6, 1)))
    [community] = december(db, "community").values()
    check(community, dict(due=3, closed=3, closed_on_time=1, avg_step_minutes=round(4030 / 18, 1)))
