"""Risk zones in the store: the highest of overlapping zones wins; buildings, units, households and persons have a
level at any time t, read from the zones' history; designating, changing and lifting are checked and audited;
households and persons per level; the households of a zone; rules suggest (never designate), unknown when data
are missing."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from shapely.geometry import MultiPolygon
from sqlalchemy import text

from spatial.access import Principal
from spatial.analysis import risk_levels as rl
from spatial.errors import Conflict, Forbidden, InvalidInput, OutOfScope, StaleEdit
from spatial.store import risk_zones as rz
from spatial.store.models import Household
from tests import factories

PLANNER = Principal(2, "planner1", "planner", scope_code=factories.SUBDISTRICT)
ADMIN = Principal(1, "admin1", "admin")


@pytest.fixture
def town(db):
    west, east = factories.two_grids(db)
    b1 = factories.building(db, west, 20, 20, number=1, households=3)
    b2 = factories.building(db, west, 120, 120, number=2, households=1)
    b3 = factories.building(db, east, 260, 60, number=1, households=1)
    for unit, room in (("1", "101"), ("1", "102"), ("2", "201")):
        db.add(Household(building_id=b1.id, unit=unit, room=room, residents=2, head_name="张三",
                         head_phone="13812345678"))
    db.add(Household(building_id=b2.id, room="101", residents=4, head_name="李四"))
    db.add(Household(building_id=b3.id, room="101", residents=1, head_name="王五"))
    db.flush()
    now = db.execute(text("SELECT now()")).scalar_one()
    return db, {"west": west, "east": east, "b1": b1, "b2": b2, "b3": b3}, now


def households(db, building) -> dict[str, int]:
    return dict(db.execute(text("SELECT room, id FROM households WHERE building_id = :b"), {"b": building.id}).all())


def test_the_highest_of_overlapping_zones_wins_and_a_lift_lowers_it(town):
    db, t, now = town
    grid = rz.designate(db, PLANNER, target_kind="grid", target_ref=t["west"].code, level="yellow", reason="病例密接")
    building = rz.designate(db, PLANNER, target_kind="building", target_ref=str(t["b1"].id), level="red",
                            reason="确诊病例居住楼栋")
    assert grid.community_code == factories.COMMUNITY and grid.name.startswith("西网格")
    answer = rz.building_level(db, t["b1"].id)
    assert (answer.winner.level, answer.winner.zone_id) == ("red", building.id)
    assert {z.zone_id for z in answer.zones} == {grid.id, building.id}
    assert rz.building_level(db, t["b2"].id).winner.level == "yellow"  # same grid, no building zone
    assert rz.building_level(db, t["b3"].id).winner is None            # east grid: no zone
    # a zone of the other scheme at equal severity: the later designation wins, whatever the scheme
    sealed = rz.designate(db, PLANNER, target_kind="building", target_ref=str(t["b1"].id), level="sealed",
                          scheme_name="control", reason="封控")
    assert rz.building_level(db, t["b1"].id).winner.zone_id == sealed.id
    later = now + timedelta(seconds=1)
    rz.lift(db, PLANNER, sealed.id, 1, reason="解封")
    rz.lift(db, PLANNER, building.id, 1, reason="解封", at=later)
    assert rz.building_level(db, t["b1"].id, later).winner.level == "yellow"
    assert rz.building_level(db, t["b1"].id, now).winner.zone_id == building.id  # still red until `later`


def test_units_households_and_persons_take_their_levels(town):
    db, t, now = town
    rooms = households(db, t["b1"])
    rz.designate(db, PLANNER, target_kind="grid", target_ref=t["west"].code, level="blue", reason="防范")
    unit = rz.designate(db, PLANNER, target_kind="unit", target_ref=str(t["b1"].id), unit="2", level="orange",
                        reason="单元内有居家隔离")
    building = rz.building_level(db, t["b1"].id)
    assert building.winner.level == "blue" and building.units["2"].zone_id == unit.id  # the unit is listed apart
    assert rz.household_level(db, PLANNER, rooms["201"]).winner.level == "orange"
    assert rz.household_level(db, PLANNER, rooms["101"]).winner.level == "blue"
    # a person: the household they lived in at t
    db.execute(text("""
        INSERT INTO persons (household_id, name, id_number_sealed, id_number_hash, id_number_masked, moved_in,
                             moved_out, moved_out_reason, relation)
        VALUES (:h1, '赵六', '\\x00', :hash1, '440304********0011', CAST(:t0 AS date), CAST(:t1 AS date), 'moved', 'head'),
               (:h2, '赵六', '\\x00', :hash1, '440304********0011', CAST(:t1 AS date), NULL, NULL, 'head')"""),
        {"h1": rooms["101"], "h2": rooms["201"], "hash1": hashlib.sha256(b"x").digest(),
         "t0": now - timedelta(days=30), "t1": now - timedelta(days=3)})
    person = db.scalar(text("SELECT id FROM persons WHERE moved_out IS NULL"))
    assert rz.person_level(db, PLANNER, person).winner.level == "orange"
    with pytest.raises(OutOfScope):  # that row is the current residence; before it the person lived elsewhere
        rz.person_level(db, PLANNER, person, now - timedelta(days=10))
    earlier = db.scalar(text("SELECT id FROM persons WHERE moved_out IS NOT NULL"))
    # ten days ago the zones did not exist yet (designated now): no level
    assert rz.person_level(db, PLANNER, earlier, now - timedelta(days=10)).winner is None
    worker_elsewhere = Principal(9, "w9", "grid_worker", grid_ids=frozenset({t["east"].id}))
    with pytest.raises(OutOfScope):
        rz.household_level(db, worker_elsewhere, rooms["201"])
    with pytest.raises(Forbidden):
        rz.household_level(db, Principal(8, "v", "viewer", scope_code=factories.SUBDISTRICT), rooms["201"])


def test_the_level_at_a_past_time_follows_the_history(town):
    db, t, now = town
    zone = rz.designate(db, PLANNER, target_kind="division", target_ref=factories.COMMUNITY, level="yellow",
                        reason="社区出现病例", valid_from=now - timedelta(days=10))
    zone = rz.change(db, PLANNER, zone.id, 1, level="red", reason="病例增加", at=now - timedelta(days=5))
    zone = rz.change(db, ADMIN, zone.id, 2, level="orange", reason="降级", at=now - timedelta(days=1),
                     valid_to=now + timedelta(days=7))
    b = t["b3"].id
    assert rz.building_level(db, b, now - timedelta(days=11)).winner is None
    assert rz.building_level(db, b, now - timedelta(days=7)).winner.level == "yellow"
    assert rz.building_level(db, b, now - timedelta(days=3)).winner.level == "red"
    assert rz.building_level(db, b, now).winner.level == "orange"
    assert rz.building_level(db, b, now + timedelta(days=8)).winner is None  # past its planned end
    versions = rz.history(db, PLANNER, zone.id)
    assert [(v["version"], v["change"], v["level"], v["author"]) for v in versions] == [
        (1, "designate", "yellow", "planner1"), (2, "change", "red", "planner1"), (3, "change", "orange", "admin1")]
    assert versions[0]["valid_to"] == versions[1]["valid_from"] == now - timedelta(days=5)
    assert zone.version == 3 and zone.in_force and zone.valid_from == now - timedelta(days=10)
    actions = db.execute(text("SELECT action FROM audit_log WHERE object_type = 'risk_zone' ORDER BY id")).scalars()
    assert list(actions) == ["designate_zone", "change_zone", "change_zone"]
    lifted = rz.lift(db, PLANNER, zone.id, 3, reason="解除")
    assert not lifted.in_force and lifted.change == "lift"
    with pytest.raises(Conflict):
        rz.change(db, PLANNER, zone.id, 4, level="red", reason="again")
    assert rz.building_level(db, b, now - timedelta(days=3)).winner.level == "red"  # the past stays as it was


def test_edits_are_checked(town):
    db, t, now = town
    zone = rz.designate(db, PLANNER, target_kind="grid", target_ref=t["east"].code, level="yellow", reason="r")
    with pytest.raises(StaleEdit):
        rz.change(db, PLANNER, zone.id, 7, level="red", reason="r")
    with pytest.raises(InvalidInput):
        rz.change(db, PLANNER, zone.id, 1, level="purple", reason="r")
    with pytest.raises(InvalidInput):
        rz.change(db, PLANNER, zone.id, 1, level="yellow", reason="r")  # nothing to change
    with pytest.raises(InvalidInput):
        rz.change(db, PLANNER, zone.id, 1, level="red", reason=" ")
    with pytest.raises(Forbidden):
        rz.designate(db, Principal(5, "i", "inspector", scope_code=factories.SUBDISTRICT), target_kind="grid",
                     target_ref=t["east"].code, level="red", reason="r")
    elsewhere = Principal(6, "p9", "planner", scope_code="440305001000")
    with pytest.raises(Forbidden):
        rz.designate(db, elsewhere, target_kind="grid", target_ref=t["east"].code, level="red", reason="r")
    with pytest.raises(OutOfScope):
        rz.get_zone(db, elsewhere, zone.id)
    # a role configured to designate (inspectors, here) may
    inspector = Principal(5, "i", "inspector", scope_code=factories.SUBDISTRICT)
    assert rz.designate(db, inspector, target_kind="grid", target_ref=t["east"].code, level="red", reason="r",
                        roles=("planner", "inspector")).level == "red"
    with pytest.raises(InvalidInput):
        rz.designate(db, PLANNER, target_kind="unit", target_ref=str(t["b1"].id), level="red", reason="r")
    with pytest.raises(InvalidInput):
        rz.designate(db, PLANNER, target_kind="grid", target_ref=t["east"].code, level="red", reason="r",
                     valid_from=now, valid_to=now - timedelta(hours=1))
    # a community planner sees a zone over their subdistrict
    community_planner = Principal(7, "cp", "planner", scope_code=factories.COMMUNITY)
    wide = rz.designate(db, ADMIN, target_kind="division", target_ref=factories.SUBDISTRICT, level="blue",
                        reason="全街道防范")
    assert wide.id in {z.id for z in rz.list_zones(db, community_planner)}


def test_a_drawn_polygon_and_an_enclosure(town):
    db, t, now = town
    polygon = factories.metres_box(10, 10, 150, 150)
    zone = rz.designate(db, PLANNER, target_kind="polygon", polygon=polygon, level="orange", reason="划定",
                        name="一号片区")
    assert zone.scope_code == factories.COMMUNITY and zone.name == "一号片区"
    assert rz.building_level(db, t["b2"].id).winner.zone_id == zone.id  # its point on surface is inside
    smaller = MultiPolygon(factories.metres_box(10, 10, 60, 60).geoms)
    zone = rz.change(db, PLANNER, zone.id, 1, polygon=smaller, reason="缩小范围")
    assert rz.building_level(db, t["b2"].id).winner is None and rz.building_level(db, t["b1"].id).winner
    db.execute(text("INSERT INTO enclosures (name, community_code, boundary) VALUES ('东围合', :c, "
                    "ST_GeometryN(ST_GeomFromEWKT(:g), 1))"),
               {"c": factories.COMMUNITY, "g": "SRID=4326;" + factories.metres_box(250, 50, 290, 80).wkt})
    enclosure = db.scalar(text("SELECT id FROM enclosures"))
    zone = rz.designate(db, PLANNER, target_kind="enclosure", target_ref=str(enclosure), level="red", reason="围合")
    assert rz.building_level(db, t["b3"].id).winner.zone_id == zone.id


def test_households_and_persons_per_level_and_the_households_of_a_zone(town):
    db, t, now = town
    rz.designate(db, PLANNER, target_kind="grid", target_ref=t["west"].code, level="yellow", reason="r")
    unit = rz.designate(db, PLANNER, target_kind="unit", target_ref=str(t["b1"].id), unit="1", level="red",
                        reason="r")
    when, rows = rz.per_level(db, PLANNER, factories.SUBDISTRICT)
    got = {(r.code, r.severity): (r.households, r.persons) for r in rows}
    west, east = t["west"].code, t["east"].code
    assert got == {(west, 5): (2, 4), (west, 3): (2, 6), (east, None): (1, 1)}
    _, rows = rz.per_level(db, PLANNER, factories.SUBDISTRICT, by="community")
    assert {(r.code, r.severity): r.households for r in rows} == {
        (factories.COMMUNITY, 5): 2, (factories.COMMUNITY, 3): 2, (factories.COMMUNITY, None): 1}
    _, past = rz.per_level(db, PLANNER, factories.SUBDISTRICT, at=now - timedelta(days=1))
    assert {r.severity for r in past} == {None}
    screen = rz.levels_per_community(db, PLANNER)
    assert screen == [{"community_code": factories.COMMUNITY, "severity": 5, "households": {"5": 2, "3": 2, "none": 1},
                       "persons": {"5": 4, "3": 6, "none": 1}, "zones": {"5": 1, "3": 1}}]
    listed = rz.zone_households(db, PLANNER, unit.id)
    assert [h.room for h in listed] == ["101", "102"] and listed[0].head_name == "张*"
    assert listed[0].head_phone == "138****5678"
    assert db.scalar(text("SELECT count(*) FROM audit_log WHERE action = 'read_masked'")) == 1
    sheet = rz.zone_sheet(db, PLANNER, unit.id)
    assert sheet["grids"] == [{"grid_code": west, "households": 2, "residents": 4, "buildings": 1}]
    with pytest.raises(Forbidden):
        rz.zone_households(db, Principal(8, "v", "viewer", scope_code=factories.SUBDISTRICT), unit.id)


def test_rules_suggest_a_level_and_say_why_unknown_when_data_are_missing(town):
    db, t, now = town
    rooms = households(db, t["b1"])
    for i, room in enumerate(("101", "102")):
        db.execute(text("""
            INSERT INTO persons (household_id, name, id_number_sealed, id_number_hash, id_number_masked, tags,
                                 isolation_from, isolation_to)
            VALUES (:h, '隔离者', '\\x00', :hash, '440304********0011', ARRAY['home_isolation'], CAST(:f AS date),
                    CAST(:to AS date))"""),
            {"h": rooms[room], "hash": hashlib.sha256(str(i).encode()).digest(), "f": now - timedelta(days=3),
             "to": now + timedelta(days=4)})
    rules = (rl.Rule("home_isolation", 2, "orange"), rl.Rule("positive_screenings", 1, "red"))
    _, found = rz.suggestions(db, PLANNER, factories.COMMUNITY, rules=rules, window_days=7)
    by_area = {s.area: s for s in found}
    west, east = by_area[t["west"].code], by_area[t["east"].code]
    assert (west.status, west.level.level, west.incomplete) == ("suggest", "orange", True)  # nobody screened
    assert [(r.indicator, r.value, r.fired) for r in west.reasons] == [("home_isolation", 2, True),
                                                                       ("positive_screenings", None, False)]
    assert (east.status, east.level) == ("unknown", None)  # no ledger and nobody screened there: unknown, not 0
    # in the 封控/管控/防范 scheme the same rules suggest the level of the same or next higher severity
    _, found = rz.suggestions(db, PLANNER, factories.COMMUNITY, rules=rules, scheme_name="control", window_days=7)
    assert {s.area: s.level.level for s in found if s.level} == {t["west"].code: "controlled"}
    assert db.scalar(text("SELECT count(*) FROM risk_zones")) == 0  # a suggestion designates nothing


def test_level_resolution_on_plain_data():
    scheme = rl.Scheme.from_row("five_colour", "五色图", "Five", [
        {"level": "green", "severity": 1}, {"level": "red", "severity": 5}, {"level": "yellow", "severity": 3}])
    assert [lv.level for lv in scheme.levels] == ["red", "yellow", "green"]
    assert scheme.at_severity(4).level == "red" and scheme.at_severity(2).level == "yellow"
    a, b, c = (rl.ZoneLevel(i, 1, "five_colour", lv, sev) for i, lv, sev in ((1, "red", 5), (2, "red", 5),
                                                                             (3, "green", 1)))
    assert rl.highest([a, c, b]) is b and rl.highest([]) is None
    with pytest.raises(ValueError):
        rl.Rule("rumours", 1, "red")
    s = rl.suggest("x", {"cases:epidemic": 0}, (rl.Rule("cases", 1, "yellow", ("epidemic",)),), scheme)
    assert (s.status, s.level, s.incomplete) == ("none", None, False)


def test_the_screen_counts_zones_per_community(town):
    from datetime import datetime, timezone

    from spatial.store import screen

    db, t, now = town
    rz.designate(db, PLANNER, target_kind="division", target_ref=factories.SUBDISTRICT, level="blue", reason="r")
    rz.designate(db, PLANNER, target_kind="building", target_ref=str(t["b1"].id), level="red", reason="r")
    rz.designate(db, PLANNER, target_kind="unit", target_ref=str(t["b1"].id), unit="2", level="red", reason="r")
    viewer = Principal(8, "v", "viewer", scope_code=factories.SUBDISTRICT)
    f = screen.screen_figures(db, viewer, factories.SUBDISTRICT, at=datetime.now(timezone.utc))
    [c] = f.communities
    assert (c.risk_severity, c.risk_zones) == (5, {"5": 2, "2": 1})
    assert (f.total.risk_severity, f.total.risk_zones) == (5, {"5": 2, "2": 1})
