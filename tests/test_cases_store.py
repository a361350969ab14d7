"""Cases in the store: placed in the grid where they are reported, moved through the workflow by the right
people only, their clock in working time (deadlines, extensions, redo, lateness recorded), listed in scope."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import text

from spatial.access import Principal
from spatial.errors import Conflict, Forbidden, InvalidInput, NotFound, OutOfScope, StaleEdit
from spatial.store import cases
from spatial.worktime import LOCAL, Limit
from tests import factories

TUESDAY_10 = datetime(2026, 12, 1, 10, 0, tzinfo=LOCAL)


def at(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=LOCAL)


@pytest.fixture
def town(db):
    west, east = factories.two_grids(db)
    people = {
        "admin": Principal(1, "admin1", "admin"),
        "centre": Principal(2, "centre1", "planner", scope_code=factories.SUBDISTRICT),
        "worker": Principal(3, "worker1", "grid_worker", grid_ids=frozenset({west.id})),
        "east_worker": Principal(4, "worker2", "grid_worker", grid_ids=frozenset({east.id})),
        "west_verifier": Principal(5, "worker3", "grid_worker", grid_ids=frozenset({west.id})),
        "elsewhere": Principal(6, "planner9", "planner", scope_code="440305001000"),
    }
    return db, west, east, people


def point(x_m: float, y_m: float) -> tuple[float, float]:
    return factories.metres_box(x_m, y_m, x_m + 0.1, y_m + 0.1).centroid.coords[0]


def reported(db, who=None, x=50, y=50, category="environment.garbage", now=TUESDAY_10, **kw):
    lon, lat = point(x, y)
    return cases.report_case(db, who, category=category, lon=lon, lat=lat, description="楼下垃圾堆了三天",
                             reporter_name="张三丰", reporter_phone="13812345678", now=now, **kw)


def test_a_case_is_placed_in_its_grid_with_a_register_clock_and_masked_reporter(town):
    db, west, east, people = town
    case = reported(db)
    assert (case.grid_code, case.community_code, case.state) == (west.code, factories.COMMUNITY, "reported")
    assert case.deadline == at("2026-12-01 10:30") and case.clock_step == "register"
    assert (case.reporter_name, case.reporter_phone) == ("张*", "138****5678")
    assert len(case.tracking_code) == 10 and not set(case.tracking_code) & set("01OI")
    assert reported(db, x=250).grid_code == east.code


def test_reports_outside_every_community_or_of_unknown_categories_are_refused(town):
    db, *_ = town
    with pytest.raises(InvalidInput, match="not in any community"):
        reported(db, x=5000)
    with pytest.raises(InvalidInput, match="unknown case category"):
        reported(db, category="aliens")
    assert db.execute(text("SELECT count(*) FROM cases")).scalar() == 0


def test_an_open_case_of_the_same_category_nearby_is_offered_as_a_duplicate(town):
    db, *_ = town
    first = reported(db)
    assert reported(db, x=80).duplicates[0]["id"] == first.id  # 30 m away
    assert reported(db, x=150).duplicates == []  # 70 m and 100 m from the others
    assert reported(db, category="facilities.streetlight").duplicates == []


def test_the_whole_workflow_with_working_time_deadlines(town):
    db, west, _, p = town
    case = reported(db)
    case = cases.act(db, p["centre"], case.id, "register", version=case.version, now=at("2026-12-01 10:20"))
    assert case.clock_step == "dispatch" and case.deadline == at("2026-12-01 10:50")
    case = cases.act(db, p["centre"], case.id, "dispatch", assignee="worker1", now=at("2026-12-04 17:45"))
    # handling limit of 'environment' is 2 working days from Friday 17:45: Tuesday 17:45
    assert case.clock_step == "handle" and case.deadline == at("2026-12-08 17:45") and case.assignee == "worker1"
    case = cases.act(db, p["worker"], case.id, "accept", now=at("2026-12-07 09:00"))
    assert case.deadline == at("2026-12-08 17:45")  # accepting keeps the handling clock
    case = cases.act(db, p["worker"], case.id, "report_back", note="已清运", now=at("2026-12-07 11:00"))
    assert case.state == "feedback" and case.deadline == at("2026-12-07 15:00")  # 2 working hours, over lunch
    with pytest.raises(Forbidden, match="other than its handler"):
        cases.act(db, p["worker"], case.id, "verify")
    with pytest.raises(OutOfScope):  # another grid's worker does not even see it
        cases.act(db, p["east_worker"], case.id, "verify")
    case = cases.act(db, p["west_verifier"], case.id, "verify", now=at("2026-12-07 11:30"))
    case = cases.act(db, p["centre"], case.id, "close", now=at("2026-12-07 12:00"))
    assert case.state == "closed" and case.closed_at == at("2026-12-07 12:00") and case.deadline is None
    steps = [h["action"] for h in cases.history(db, p["centre"], case.id)]
    assert steps == ["report", "register", "dispatch", "accept", "report_back", "verify", "close"]
    late = {h["action"]: h["late_minutes"] for h in cases.history(db, p["centre"], case.id)}
    # dispatched Friday 17:45, 30 working minutes after the 10:50 dispatch deadline of Tuesday… days later:
    assert late["dispatch"] > 0 and late["register"] is None and late["close"] is None


def test_illegal_moves_stale_versions_and_missing_reasons_are_refused_and_change_nothing(town):
    db, _, _, p = town
    case = reported(db)
    with pytest.raises(Conflict, match="allowed now: register, reject"):
        cases.act(db, p["centre"], case.id, "close")
    with pytest.raises(StaleEdit):
        cases.act(db, p["centre"], case.id, "register", version=case.version + 1)
    with pytest.raises(InvalidInput, match="needs a reason"):
        cases.act(db, p["centre"], case.id, "reject")
    with pytest.raises(InvalidInput, match="assignee"):
        cases.act(db, p["centre"], cases.act(db, p["centre"], case.id, "register").id, "dispatch")
    assert cases.get_case(db, p["centre"], case.id).state == "registered"


def test_only_the_assignee_handles_and_only_the_command_centre_dispatches(town):
    db, _, _, p = town
    case = reported(db)
    with pytest.raises(Forbidden, match="planner"):
        cases.act(db, p["worker"], case.id, "register")
    cases.act(db, p["centre"], case.id, "register")
    cases.act(db, p["centre"], case.id, "dispatch", assignee="worker2")
    with pytest.raises(Forbidden, match="assignee"):
        cases.act(db, p["worker"], case.id, "accept")
    assert cases.act(db, p["east_worker"], case.id, "accept").state == "handling"  # assignee sees it anyway


def test_an_approved_extension_moves_the_deadline_and_a_redo_restarts_the_clock(town):
    db, _, _, p = town
    case = reported(db)
    cases.act(db, p["centre"], case.id, "register")
    case = cases.act(db, p["centre"], case.id, "dispatch", assignee="worker1", now=TUESDAY_10)
    assert case.deadline == at("2026-12-03 10:00")
    case = cases.act(db, p["worker"], case.id, "request_extension", note="需协调物业", extension=Limit(1, "work_days"))
    assert case.extension_requested["amount"] == 1 and case.deadline == at("2026-12-03 10:00")
    case = cases.act(db, p["centre"], case.id, "approve_extension")
    assert case.deadline == at("2026-12-04 10:00") and case.extension_requested is None
    cases.act(db, p["worker"], case.id, "accept")
    cases.act(db, p["worker"], case.id, "report_back", now=at("2026-12-03 15:00"))
    case = cases.act(db, p["west_verifier"], case.id, "verify_fail", note="还有残留", now=at("2026-12-03 16:00"))
    assert case.state == "handling" and case.deadline == at("2026-12-07 16:00")  # a fresh 2 working days
    assert db.execute(text("SELECT redos, extensions FROM cases WHERE id = :id"), {"id": case.id}).one() == (1, 1)


def test_urgent_categories_count_natural_hours_for_handling(town):
    db, _, _, p = town
    case = reported(db, category="facilities.manhole", now=at("2026-12-04 17:55"))
    assert case.deadline == at("2026-12-07 09:05")  # register within 10 working minutes, over the weekend
    cases.act(db, p["centre"], case.id, "register", now=at("2026-12-04 17:58"))
    case = cases.act(db, p["centre"], case.id, "dispatch", assignee="worker1", now=at("2026-12-04 18:30"))
    assert case.deadline == at("2026-12-05 18:30")  # 24 natural hours, Saturday included


def test_lists_in_scope_and_the_overdue_list(town):
    db, west, _, p = town
    old = reported(db, now=at("2026-11-30 09:00"))
    reported(db, x=250, now=at("2026-12-01 10:50"))  # its register deadline is 11:20
    now = at("2026-12-01 11:00")
    total, page = cases.list_cases(db, p["centre"], now=now)
    assert total == 2
    total, page = cases.list_cases(db, p["centre"], overdue=True, now=now)
    assert [c.id for c in page] == [old.id] and page[0].overdue and page[0].remaining_min < 0
    assert cases.list_cases(db, p["worker"], now=now)[0] == 1  # only the west grid's case
    assert cases.list_cases(db, p["elsewhere"], now=now)[0] == 0
    with pytest.raises(OutOfScope):
        cases.get_case(db, p["elsewhere"], old.id)


def test_a_reporter_tracks_the_case_without_personal_data(town):
    db, _, _, p = town
    case = reported(db)
    cases.act(db, p["centre"], case.id, "register")
    tracked = cases.track(db, case.tracking_code.lower())
    assert tracked["state"] == "registered" and [s["state"] for s in tracked["steps"]] == ["reported", "registered"]
    assert "张" not in str(tracked) and "138" not in str(tracked)
    with pytest.raises(NotFound, match="tracking code"):
        cases.track(db, "ZZZZZZZZZZ")


def test_a_redraw_does_not_move_an_open_case_but_says_where_it_would_fall(town):
    db, west, east, _ = town
    case = reported(db, x=190)
    redraw = text("UPDATE grids SET boundary = ST_GeomFromText(:wkt, 4326) WHERE id = :id")
    db.execute(redraw, {"wkt": factories.metres_box(0, 0, 180, 200).wkt, "id": west.id})
    db.execute(redraw, {"wkt": factories.metres_box(180, 0, 400, 200).wkt, "id": east.id})
    assert cases.get_case(db, Principal(1, "a", "admin"), case.id).grid_code == west.code
    assert cases.where_now(db, case.id)["grid_code"] == east.code


def test_an_admin_enters_a_day_of_a_year_the_calendar_does_not_know(town):
    db, _, _, p = town
    with pytest.raises(Forbidden):
        cases.enter_calendar_day(db, p["centre"], date(2027, 1, 1), False)
    cases.enter_calendar_day(db, p["admin"], date(2027, 1, 1), False, "元旦")
    case = reported(db, now=at("2026-12-31 17:50"))
    assert case.deadline == at("2027-01-04 09:20")  # Friday 1 January is off, then the weekend


def test_each_event_is_recorded_at_the_instant_the_action_took_effect(town):
    """Events carry the ``now`` of their action (not the transaction's clock): step times read from them agree
    with the deadlines and lateness computed at that instant."""
    db, _, _, p = town
    case = reported(db, now=at("2026-12-01 09:00"))
    cases.act(db, p["centre"], case.id, "register", now=at("2026-12-01 09:45"))
    events = cases.history(db, p["centre"], case.id)
    assert [e["at"] for e in events] == [at("2026-12-01 09:00"), at("2026-12-01 09:45")]
    assert events[1]["late_minutes"] == 15.0


def test_every_list_counts_what_it_lists_area_and_own_cases_apart(town):
    """The count of a long list (its two disjoint parts: the caller's area, their own cases outside it) against
    the list itself, for each kind of caller and filter: a case counted twice or missed shows here."""
    db, west, east, p = town
    old = reported(db, now=at("2026-11-30 09:00"))  # west, late by 11:00
    reported(db, x=250, now=at("2026-11-30 09:30"))  # east, late
    reported(db, x=260, now=at("2026-12-01 10:50"))  # east, on time
    by_outsider = reported(db, p["elsewhere"], x=60, now=at("2026-11-30 10:00"))  # west, reported by planner9
    for case, assignee in ((old, "worker2"), (by_outsider, "worker1")):  # worker2 holds a west case
        case = cases.act(db, p["centre"], case.id, "register", now=at("2026-11-30 11:00"))
        cases.act(db, p["centre"], case.id, "dispatch", assignee=assignee, now=at("2026-11-30 11:05"))
    now = at("2026-12-01 11:00")
    filters = [{}, {"overdue": True}, {"open_only": True}, {"mine": True}, {"state": "reported"},
               {"overdue": True, "mine": True}, {"grid_code": west.code}]
    seen = set()
    for name in ("admin", "centre", "worker", "east_worker", "elsewhere"):
        for kw in filters:
            listed = cases.list_cases(db, p[name], limit=1000, now=now, **kw)[1]
            total, page = cases.list_cases(db, p[name], limit=1, now=now, **kw)
            assert total == len(listed), (name, kw)
            assert [c.id for c in page] == [c.id for c in listed[:1]], (name, kw)
            seen.add((name, str(kw), total))
    totals = {(name, kw): total for name, kw, total in seen}
    assert totals[("elsewhere", "{}")] == 1  # the case they reported, outside their area
    assert totals[("east_worker", "{}")] == 3  # the two east ones, and the west one assigned to them
    assert totals[("east_worker", "{'overdue': True}")] == 1  # the east one not yet registered
    assert totals[("worker", "{'mine': True}")] == 1 and totals[("centre", "{}")] == 4
