"""Enclosures, openings and coverage on a small hand-made town with exact distances.

Metres east/north of the test origin (tests/factories.py). The community is 400 × 200 m (west grid x < 200, east
grid x > 200); the enclosure is the box (50, 50)–(350, 150):

    H(100,180) ───────北街─────── I(300,180)
        │ 中巷                        │ 东巷
    ────┼── (100,150) 西北门 sealed ──┼── (300,150) 北门 staffed 06–22 ──   ← north wall
        │      [north bldg]           │
    F(100,100) ───────内街─────── G(300,100)        中心岗 (200,100): a checkpoint 50 m from the wall
        │ [west bldg]                 │ [east bldg]
    ────┼── (100,50) 南门 staffed 24/7 ┼── (300,50) open, unguarded ──  J(200,50)   ← south wall
        │                             │                                 │ 死胡同 (ends at the wall)
    A(0,20) ── B(100,20) ─────南街──── C(200,20) ──── D(300,20) ──── E(400,20)

Buildings (20 × 15 m, centre = south-west corner + (10, 7.5)): west (110, 60) with 10 households (a count),
north (140, 125) with 6 (a count), east (320, 60) with 3 household rows. Walking distances to the nearest staffed
checkpoint: west 37.5 m (南门), north 132.5 m (南门: the lane is 32.5 m away), east 112.5 m (北门, offset 30 m).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pyproj import Transformer
from shapely.geometry import LineString, Point, box, mapping
from sqlalchemy import text

from spatial.access import Principal
from spatial.errors import Forbidden, InvalidInput, NotFound, StaleEdit
from spatial.store import bulk, coverage
from spatial.store import openings as op
from spatial.store.models import Household
from tests import factories
from tests.factories import ORIGIN_X, ORIGIN_Y

TO_LONLAT = Transformer.from_crs(4547, 4326, always_xy=True)
ADMIN = Principal(1, "admin", "admin")
INSPECTOR = Principal(2, "insp", "inspector", scope_code=factories.SUBDISTRICT)
PLANNER = Principal(3, "plan", "planner", scope_code=factories.SUBDISTRICT)
OUTSIDER = Principal(4, "other", "planner", scope_code="440305001000")
NODES = {"A": (0, 20), "B": (100, 20), "C": (200, 20), "D": (300, 20), "E": (400, 20), "F": (100, 100),
         "G": (300, 100), "K": (200, 100), "H": (100, 180), "I": (300, 180), "J": (200, 50)}
EDGES = [("A", "B", "南街", "residential"), ("B", "C", "南街", "residential"), ("C", "D", "南街", "residential"),
         ("D", "E", "南街", "residential"), ("B", "F", "中巷", "footway"), ("F", "H", "中巷", "footway"),
         ("D", "G", "东巷", "footway"), ("G", "I", "东巷", "footway"), ("F", "K", "内街", "footway"),
         ("K", "G", "内街", "footway"), ("C", "J", "死胡同", "footway"), ("H", "I", "北街", "residential")]


def ll(x: float, y: float) -> tuple[float, float]:
    lon, lat = TO_LONLAT.transform(ORIGIN_X + x, ORIGIN_Y + y)
    return float(lon), float(lat)


def polygon(x0, y0, x1, y1):
    return factories.metres_box(x0, y0, x1, y1).geoms[0]


@dataclass
class Town:
    enclosure_id: int
    grids: dict[str, int]
    buildings: dict[str, int]
    checkpoints: dict[str, int]


def town(session) -> Town:
    """Build the town of the module docstring (enclosure stored but not yet scanned)."""
    west, east = factories.two_grids(session)
    nodes = [{"origin_ref": k, "location": Point(ll(*xy))} for k, xy in NODES.items()]
    edges = [{"origin_ref": f"{a}{b}", "source_ref": a, "target_ref": b, "name": name, "oneway": False,
              "foot": True, "car": highway == "residential", "highway": highway,
              "length_m": float(((NODES[b][0] - NODES[a][0]) ** 2 + (NODES[b][1] - NODES[a][1]) ** 2) ** 0.5),
              "geom": LineString([ll(*NODES[a]), ll(*NODES[b])])} for a, b, name, highway in EDGES]
    bulk.load_street_network(session, "town", nodes, edges)
    enclosure = session.execute(text("""
        INSERT INTO enclosures (name, kind, community_code, boundary)
        VALUES ('测试小区', 'estate', :c, ST_GeomFromWKB(:wkb, 4326))
        RETURNING id"""), {"c": factories.COMMUNITY, "wkb": polygon(50, 50, 350, 150).wkb}).scalar_one()
    b_west = factories.building(session, west, 110, 60, number=1, households=10, residents=25)
    b_north = factories.building(session, west, 140, 125, number=2, households=6, residents=12)
    b_east = factories.building(session, east, 320, 60, number=1, households=3, residents=7)
    session.add_all([Household(building_id=b_east.id, room=f"010{i}", head_name=name, head_phone="13812345678")
                     for i, name in enumerate(("张三丰", "李四", "王五"), start=1)])
    checkpoints = {}
    for name, xy, status, hours, staff in [("南门", (100, 50), "staffed", "24/7", 2),
                                           ("北门", (300, 150), "staffed", "Mo-Su 06:00-22:00", 1),
                                           ("西北门", (100, 150), "sealed", "off", 0),
                                           ("中心岗", (200, 100), "staffed", "24/7", 1)]:
        checkpoints[name] = session.execute(text("""
            INSERT INTO checkpoints (enclosure_id, name, location, kind, status, opening_hours, staff_count)
            VALUES (:e, :name, ST_SetSRID(ST_Point(:lon, :lat), 4326), 'pedestrian', :status, :hours, :staff)
            RETURNING id"""), {"e": enclosure, "name": name, "lon": ll(*xy)[0], "lat": ll(*xy)[1], "status": status,
                               "hours": hours, "staff": staff}).scalar_one()
    session.flush()
    return Town(enclosure, {"west": west.id, "east": east.id},
                {"west": b_west.id, "north": b_north.id, "east": b_east.id}, checkpoints)


def opening_at(openings, x: float, y: float, tolerance_m: float = 1.0):
    """The opening within ``tolerance_m`` of (x, y) metres (degrees → metres, small-area approximation)."""
    lon, lat = ll(x, y)
    near = [o for o in openings if abs(o.location[0] - lon) * 102_800 < tolerance_m
            and abs(o.location[1] - lat) * 110_800 < tolerance_m]
    assert len(near) == 1, (x, y, [o.location for o in openings])
    return near[0]


@pytest.fixture
def scanned(db):
    t = town(db)
    (result,) = op.scan_openings(db, [t.enclosure_id])
    return t, result


# -- detection ------------------------------------------------------------------------------------------------------


def test_openings_are_where_streets_cross_the_perimeter(db, scanned):
    t, result = scanned
    openings = op.openings_of(db, [t.enclosure_id])
    assert result.crossings == 4 and len(openings) == 4          # the dead end at (200, 50) is not an opening
    south, north_west = opening_at(openings, 100, 50), opening_at(openings, 100, 150)
    gap, north = opening_at(openings, 300, 50), opening_at(openings, 300, 150)
    assert {o.origin for o in openings} == {"detected"}
    assert (south.street_name, gap.street_name) == ("中巷", "东巷") and south.highway == "footway"
    assert south.status == "checkpoint" and south.checkpoint.name == "南门" and south.checkpoint.staffed
    assert north.checkpoint.schedule.hours == 7 * 16
    assert north_west.status == "sealed" and north_west.barrier_kind == "unrecorded"
    assert north_west.barrier_m == pytest.approx(3.0, abs=0.01)   # a footway is 3 m wide by default
    assert gap.status == "open" and gap.unguarded_reason == "open" and gap.checkpoint is None
    assert result.far_checkpoints == [(t.checkpoints["中心岗"], "中心岗", pytest.approx(50, abs=0.5))]
    fractions = [o.perimeter_fraction for o in openings]
    assert fractions == sorted(fractions)


def test_first_use_scans_once_and_rescans_keep_planners_work(db):
    t = town(db)
    assert op.ensure_scanned(db, [t.enclosure_id]) == [t.enclosure_id]
    assert op.ensure_scanned(db, [t.enclosure_id]) == []
    openings = op.openings_of(db, [t.enclosure_id])
    gap = opening_at(openings, 300, 50)
    op.update_opening(db, INSPECTOR, gap.id, status="sealed", barrier_kind="water_barrier", width_m=6)
    deleted = opening_at(openings, 100, 150)
    op.delete_opening(db, PLANNER, deleted.id)
    # a new lane through the west wall, then a rescan
    bulk.load_street_network(db, "town2", [{"origin_ref": "L", "location": Point(ll(20, 100))},
                                           {"origin_ref": "M", "location": Point(ll(80, 100))}], [
        {"origin_ref": "LM", "source_ref": "L", "target_ref": "M", "name": "新巷", "oneway": False, "foot": True,
         "car": False, "highway": "footway", "length_m": 60.0, "geom": LineString([ll(20, 100), ll(80, 100)])}])
    result = op.rescan(db, PLANNER, t.enclosure_id)
    assert len(result.added) == 1 and result.crossings == 5
    after = op.openings_of(db, [t.enclosure_id])
    assert len(after) == 4                                         # 4 + the new one − the deleted one
    assert opening_at(after, 50, 100).street_name == "新巷"
    kept = opening_at(after, 300, 50)
    assert kept.status == "sealed" and kept.barrier_kind == "water_barrier"
    assert kept.barrier_m == pytest.approx(6.0, abs=0.01)
    assert not [o for o in after if o.id == deleted.id]


def test_redrawing_the_boundary_drops_open_gaps_and_keeps_checkpoints_as_stale(db, scanned):
    t, _ = scanned
    before = op.openings_of(db, [t.enclosure_id])
    gap, north = opening_at(before, 300, 50), opening_at(before, 300, 150)
    manual = op.add_opening(db, PLANNER, t.enclosure_id, *ll(200, 152), street_name="便门")
    result = op.redraw_enclosure(db, PLANNER, t.enclosure_id, polygon(50, 50, 250, 150))
    openings = op.openings_of(db, [t.enclosure_id])
    assert result.removed == [gap.id] and result.stale == [north.id]   # the open gap goes, the staffed gate stays
    assert {o.id for o in openings} >= {manual.id}
    assert opening_at(openings, 200, 150).id == manual.id          # still on the (shorter) north wall


# -- editing ----------------------------------------------------------------------------------------------------------


def test_manual_openings_snap_to_the_perimeter_and_far_ones_are_refused(db, scanned):
    t, _ = scanned
    added = op.add_opening(db, PLANNER, t.enclosure_id, *ll(200, 153), street_name="便门", width_m=4)
    assert added.origin == "manual" and added.status == "open" and added.width_m == 4
    assert opening_at([added], 200, 150, tolerance_m=0.2)
    with pytest.raises(InvalidInput, match="from the perimeter"):
        op.add_opening(db, PLANNER, t.enclosure_id, *ll(200, 100))
    with pytest.raises(InvalidInput):
        op.add_opening(db, PLANNER, t.enclosure_id, *ll(200, 100), max_from_perimeter_m=0)
    with pytest.raises(Forbidden):
        op.add_opening(db, INSPECTOR, t.enclosure_id, *ll(200, 153))
    with pytest.raises(NotFound):
        op.add_opening(db, OUTSIDER, t.enclosure_id, *ll(200, 153))
    moved = op.update_opening(db, PLANNER, added.id, location=ll(220, 148), version=added.version)
    assert opening_at([moved], 220, 150, tolerance_m=0.2) and moved.version == added.version + 1
    with pytest.raises(InvalidInput):
        op.update_opening(db, PLANNER, added.id, location=ll(220, 100))
    with pytest.raises(Forbidden):
        op.update_opening(db, INSPECTOR, added.id, location=ll(230, 150))


def test_state_changes_create_and_keep_checkpoints(db, scanned):
    t, _ = scanned
    gap = opening_at(op.openings_of(db, [t.enclosure_id]), 300, 50)
    spec = op.CheckpointSpec(name="东南门", kind="both", opening_hours="Mo-Fr 07:00-19:00", staff_count=2)
    staffed = op.update_opening(db, INSPECTOR, gap.id, status="checkpoint", checkpoint=spec, version=gap.version)
    assert staffed.status == "checkpoint" and staffed.checkpoint.name == "东南门" and staffed.checkpoint.staffed
    assert staffed.checkpoint.opening_hours == "Mo-Fr 07:00-19:00" and staffed.checkpoint.schedule.hours == 60
    assert db.scalar(text("SELECT staffed_minutes FROM checkpoint_schedules WHERE checkpoint_id = :c"),
                     {"c": staffed.checkpoint.id}) == 60 * 60
    sealed = op.update_opening(db, INSPECTOR, gap.id, status="sealed", barrier_kind="fence")
    assert sealed.checkpoint.status == "sealed" and sealed.barrier_m == pytest.approx(3.0, abs=0.01)
    assert sealed.barrier.length > 0
    reopened = op.update_opening(db, INSPECTOR, gap.id, status="checkpoint")   # the same checkpoint, staffed again
    assert reopened.checkpoint.id == staffed.checkpoint.id and reopened.checkpoint.staffed
    opened = op.update_opening(db, INSPECTOR, gap.id, status="open")
    assert opened.unguarded_reason == "open" and opened.barrier is None and opened.checkpoint.status == "unstaffed"
    # a rescan does not hand the unlinked checkpoint to another opening
    op.rescan(db, PLANNER, t.enclosure_id)
    assert opening_at(op.openings_of(db, [t.enclosure_id]), 300, 50).status == "open"


@pytest.mark.parametrize("change", [
    dict(status="closed"), dict(status="sealed", barrier_kind="sandbags"), dict(status="open", barrier_kind="fence"),
    dict(status="checkpoint", checkpoint=op.CheckpointSpec(opening_hours="8-20")),
    dict(status="checkpoint", checkpoint=op.CheckpointSpec(kind="boat")), dict(width_m=0), dict(width_m=1e6),
])
def test_bad_changes_are_refused_and_nothing_is_written(db, scanned, change):
    t, _ = scanned
    gap = opening_at(op.openings_of(db, [t.enclosure_id]), 300, 50)
    before = db.execute(text("SELECT status, width_m, version FROM openings WHERE id = :id"), {"id": gap.id}).one()
    with pytest.raises(InvalidInput):
        op.update_opening(db, INSPECTOR, gap.id, note="changed?", **change)
    after = db.execute(text("SELECT status, width_m, version, note FROM openings WHERE id = :id"), {"id": gap.id}).one()
    assert tuple(after[:3]) == tuple(before) and after.note is None


def test_a_stale_version_is_refused(db, scanned):
    t, _ = scanned
    gap = opening_at(op.openings_of(db, [t.enclosure_id]), 300, 50)
    op.update_opening(db, INSPECTOR, gap.id, note="first", version=gap.version)
    with pytest.raises(StaleEdit):
        op.update_opening(db, INSPECTOR, gap.id, note="second", version=gap.version)
    with pytest.raises(StaleEdit):
        op.delete_opening(db, PLANNER, gap.id, version=gap.version)
    with pytest.raises(InvalidInput, match="nothing to change"):
        op.update_opening(db, INSPECTOR, gap.id)


def test_checkpoints_are_registered_on_a_perimeter_only(db, scanned):
    t, _ = scanned
    opening = op.create_checkpoint(db, PLANNER, *ll(301, 48), "东南门", opening_hours="Mo-Su 06:00-22:00")
    assert opening.status == "checkpoint" and opening.checkpoint.name == "东南门"
    assert opening_at([opening], 300, 50)                           # took the free opening there
    new_gate = op.create_checkpoint(db, PLANNER, *ll(350, 100), "东门", staff_count=2)
    assert new_gate.origin == "manual" and new_gate.checkpoint.staff_count == 2
    count = db.scalar(text("SELECT count(*) FROM checkpoints"))
    with pytest.raises(InvalidInput, match="from the perimeter"):
        op.create_checkpoint(db, PLANNER, *ll(200, 100), "院中岗")    # 50 m from the wall
    with pytest.raises(InvalidInput):
        op.create_checkpoint(db, PLANNER, *ll(200, 100), "院中岗", max_from_perimeter_m=40)
    assert op.create_checkpoint(db, PLANNER, *ll(200, 100), "院中岗", max_from_perimeter_m=60).checkpoint
    assert db.scalar(text("SELECT count(*) FROM checkpoints")) == count + 1
    with pytest.raises(InvalidInput):
        op.create_checkpoint(db, PLANNER, *ll(300, 50), "坏时间", opening_hours="sometimes")


def test_schedules_are_forgotten_when_opening_hours_change(db, scanned):
    t, _ = scanned
    south = t.checkpoints["南门"]
    assert db.scalar(text("SELECT opening_hours FROM checkpoint_schedules WHERE checkpoint_id = :c"), {"c": south})
    db.execute(text("UPDATE checkpoints SET opening_hours = 'Mo-Fr 08:00-18:00' WHERE id = :c"), {"c": south})
    assert db.scalar(text("SELECT count(*) FROM checkpoint_schedules WHERE checkpoint_id = :c"), {"c": south}) == 0
    view = opening_at(op.openings_of(db, [t.enclosure_id]), 100, 50)
    assert view.checkpoint.schedule.hours == 50                    # parsed on the fly meanwhile
    assert op.sync_schedules(db) == 1
    assert db.scalar(text("SELECT staffed @> 9 * 60 AND NOT staffed @> 5 * 1440 + 9 * 60 FROM checkpoint_schedules "
                          "WHERE checkpoint_id = :c"), {"c": south})


@pytest.mark.parametrize("geometry", [
    {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]},                       # not closed
    {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},               # bow tie
    {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]},                               # too few
    {"type": "Polygon", "coordinates": []},
    {"type": "Point", "coordinates": [0, 0]},
    {"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 0]]], [[[2, 2], [3, 2], [3, 3], [2, 2]]]]},
    {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], ["x", 1], [0, 0]]]},
    {"coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
])
def test_an_enclosure_must_be_a_closed_valid_polygon(geometry):
    with pytest.raises(InvalidInput):
        op.check_polygon(geometry)


def test_drawing_an_enclosure_detects_its_openings(db):
    town(db)
    shape = polygon(20, 40, 180, 160)
    new_id, result = op.create_enclosure(db, PLANNER, "西区", op.check_polygon(mapping(shape)))
    assert result.crossings == 3                                    # 中巷 twice and 内街 through the east side
    stored = db.scalar(text("SELECT community_code FROM enclosures WHERE id = :id"), {"id": new_id})
    assert stored == factories.COMMUNITY
    with pytest.raises(InvalidInput, match="m²"):
        op.create_enclosure(db, PLANNER, "太小", polygon(20, 40, 25, 45))
    with pytest.raises(Forbidden):
        op.create_enclosure(db, INSPECTOR, "督查员不能画", shape)
    with pytest.raises(InvalidInput):
        op.create_enclosure(db, PLANNER, "火星", box(10, 10, 10.01, 10.01))   # in no community


# -- coverage -------------------------------------------------------------------------------------------------------


def test_walking_coverage_has_the_hand_computed_distances(db):
    t = town(db)
    report = coverage.coverage_report(db, INSPECTOR, enclosure_id=t.enclosure_id, threshold_m=100)
    (e,) = report.enclosures
    by_building = {b.building_id: b for b in e.buildings}
    assert by_building[t.buildings["west"]].distance_m == pytest.approx(37.5, abs=0.5)
    assert by_building[t.buildings["north"]].distance_m == pytest.approx(132.5, abs=0.5)
    assert by_building[t.buildings["east"]].distance_m == pytest.approx(112.5, abs=0.5)
    assert {b.building_id for b in e.beyond} == {t.buildings["north"], t.buildings["east"]}
    assert e.households == 19 and e.households_beyond == 9
    counts = e.counts()
    assert (counts["openings"], counts["sealed"], counts["checkpoints"], counts["open"], counts["unguarded"]) == \
        (4, 1, 2, 1, 1)
    assert counts["barrier_m"] == pytest.approx(3.0, abs=0.05) and counts["staff"] == 3
    assert [o.street_name for o in e.unguarded] == ["东巷"]
    assert e.staffing.none.is_empty                                  # 南门 is staffed around the clock
    sole = {o.checkpoint.name: e.staffing.sole[o.id].hours for o in e.staffed}
    assert sole == {"南门": 7 * 8, "北门": 0}
    loads = {c.name: c for c in e.checkpoint_loads}
    assert loads["南门"].households == 16 and loads["北门"].households == 3
    assert report.totals["households_beyond"] == 9


def test_straight_line_coverage_and_thresholds(db):
    t = town(db)
    (e,) = coverage.coverage_report(db, ADMIN, enclosure_id=t.enclosure_id, threshold_m=100,
                                    distance="straight").enclosures
    by_building = {b.building_id: b.distance_m for b in e.buildings}
    assert by_building[t.buildings["north"]] == pytest.approx(96.5, abs=0.5)
    assert by_building[t.buildings["east"]] == pytest.approx(87.8, abs=0.5)
    assert e.beyond == [] and e.distance == "straight"
    for bad in (0, -5, 1e9, float("nan")):
        with pytest.raises(InvalidInput):
            coverage.coverage_report(db, ADMIN, enclosure_id=t.enclosure_id, threshold_m=bad)
    with pytest.raises(InvalidInput):
        coverage.coverage_report(db, ADMIN, enclosure_id=t.enclosure_id, distance="crow")


def test_hours_gaps_grids_without_checkpoints_and_many_grids(db, scanned):
    t, _ = scanned
    south = opening_at(op.openings_of(db, [t.enclosure_id]), 100, 50)
    op.update_opening(db, INSPECTOR, south.id, status="checkpoint",
                      checkpoint=op.CheckpointSpec(opening_hours="Mo-Su 08:00-20:00", staff_count=2))
    report = coverage.coverage_report(db, INSPECTOR, division=factories.COMMUNITY, threshold_m=300, many_grids=1)
    (e,) = report.enclosures
    assert e.staffing.none.hours == 7 * 8                           # 22:00–06:00 nobody at any gate
    assert e.staffing.hourly[0][23] == 0 and e.staffing.hourly[0][12] == 2
    assert report.level == "community" and report.grids_without_checkpoint == []
    assert all(c.many_grids for c in e.checkpoint_loads)
    north = opening_at(op.openings_of(db, [t.enclosure_id]), 300, 150)
    op.update_opening(db, INSPECTOR, north.id, status="sealed", barrier_kind="water_barrier")
    report = coverage.coverage_report(db, INSPECTOR, division=factories.SUBDISTRICT)
    assert [g.code for g in report.grids_without_checkpoint] == [factories.COMMUNITY + "02"]
    assert report.enclosures[0].staffing.none.hours == 7 * 12
    assert report.totals["enclosures_with_hours_unstaffed"] == 1


def test_households_beyond_are_masked_scoped_and_audited(db):
    t = town(db)
    report = coverage.coverage_report(db, INSPECTOR, enclosure_id=t.enclosure_id, threshold_m=100)
    before = db.scalar(text("SELECT count(*) FROM audit_log"))
    rows = coverage.households_beyond(db, INSPECTOR, report)
    assert [r["head_name"] for r in rows] == ["张*", "李*", "王*"]
    assert all("head_phone" not in r and "head_id_number" not in r for r in rows)
    audit_row = db.execute(text("SELECT action, object_id FROM audit_log ORDER BY id DESC LIMIT 1")).one()
    assert db.scalar(text("SELECT count(*) FROM audit_log")) == before + 1
    assert audit_row.action == "read_masked" and len(audit_row.object_id.split(",")) == 3
    with pytest.raises(Forbidden):
        coverage.households_beyond(db, Principal(9, "v", "viewer"), report)


def test_scope_hides_other_areas(db):
    t = town(db)
    with pytest.raises(NotFound):
        coverage.coverage_report(db, OUTSIDER, enclosure_id=t.enclosure_id)
    assert coverage.coverage_report(db, OUTSIDER, division=factories.SUBDISTRICT).enclosures == []
    with pytest.raises(Forbidden):
        op.visible_enclosure_ids(db, Principal(9, "v", "viewer", scope_code=factories.SUBDISTRICT))
    worker = Principal(10, "w", "grid_worker", grid_ids=frozenset({t.grids["east"]}))
    assert op.visible_enclosure_ids(db, worker) == [t.enclosure_id]


def test_two_first_uses_at_once_scan_the_enclosure_once(fresh_db_url):
    """Two inspectors open the report of a new enclosure at the same moment: one scans, the other waits and
    finds it scanned (without the lock both scanned and every opening was stored twice)."""
    import threading

    from spatial.store.engine import make_engine, make_sessionmaker

    engine = make_engine(fresh_db_url, pool_size=3)
    sessions = make_sessionmaker(engine)
    try:
        with sessions.begin() as s:
            t = town(s)
        first = sessions()
        assert op.ensure_scanned(first, [t.enclosure_id]) == [t.enclosure_id]  # not committed yet
        seen: list[list[int]] = []

        def second() -> None:
            with sessions.begin() as s:
                seen.append(op.ensure_scanned(s, [t.enclosure_id]))

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive()  # waiting for the first scan
        first.commit()
        first.close()
        thread.join(10)
        assert seen == [[]]
        with sessions() as s:
            stored = s.execute(text("SELECT count(*) FROM openings WHERE enclosure_id = :e AND deleted_at IS NULL"),
                               {"e": t.enclosure_id}).scalar_one()
            crossings = s.execute(text("SELECT crossings FROM enclosure_scans WHERE enclosure_id = :e"),
                                  {"e": t.enclosure_id}).scalar_one()
        assert stored == crossings > 0
    finally:
        engine.dispose()
