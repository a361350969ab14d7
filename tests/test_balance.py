"""Balanced grid plans: the pure proposal on the demo (contiguous, exact cover, no building cut, ≥ 90 % of grids in
300–500 households), then propose/adopt in a real PostGIS: a proposal writes nothing, adopting retires the old
grids and writes new versions with history, codes and building numbers. Areas in EPSG:4547 m²."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from sqlalchemy import text
from sqlalchemy.orm import Session

from fixtures.demo import generate
from spatial.analysis.balance import grid_count, plan_stats, polsby_popper, propose_balanced_plan
from spatial.errors import Conflict, InvalidInput, NotFound
from spatial.geometry.crs import from_wgs84
from spatial.store.engine import acting_as
from spatial.store.plans import adopt_plan, propose_plan

VILLAGE, SHAWEI = "440304096001", "440304096002"
_TO_METRES = Transformer.from_crs(4326, 4547, always_xy=True)


def metres(geom):
    return shapely.transform(geom, lambda xy: np.column_stack(_TO_METRES.transform(xy[:, 0], xy[:, 1])))


@pytest.fixture(scope="module")
def village():
    """The demo's urban-village community in metres: (area, footprints, households, street and wall lines)."""
    city = generate()
    area = metres(next(d.boundary for d in city.divisions if d.code == VILLAGE))
    footprints = {b.ref: metres(b.footprint) for b in city.buildings if b.community_code == VILLAGE}
    households = {b.ref: b.households for b in city.buildings if b.community_code == VILLAGE}
    lines = [metres(e.geom) for e in city.edges] + [metres(e.boundary.exterior) for e in city.enclosures]
    return area, footprints, households, lines


def test_grid_count_and_stats():
    assert grid_count(4000, 300, 500) == 10 and grid_count(100, 300, 500) == 1
    square = shapely.box(0, 0, 10, 10)
    stats = plan_stats([square, square], [300, 500], 300, 500)
    assert stats["mean_abs_deviation"] == 100 and stats["share_in_range"] == 1.0
    assert abs(stats["polsby_popper_mean"] - polsby_popper(square)) < 1e-12
    assert abs(polsby_popper(square) - 0.785) < 1e-3


def test_village_plan_is_contiguous_exact_uncut_and_in_range(village):
    area, footprints, households, lines = village
    plan = propose_balanced_plan(area, footprints, households, lines)
    polygons = [r.polygon for r in plan.regions]
    assert all(p.geom_type == "Polygon" for p in polygons)                 # contiguous
    union = shapely.union_all(polygons)
    assert union.symmetric_difference(area).area < 1e-3                     # covers exactly
    pairs = [(i, j) for i in range(len(polygons)) for j in range(i) if polygons[i].intersects(polygons[j])]
    assert sum(polygons[i].intersection(polygons[j]).area for i, j in pairs) < 1e-3
    owner = {b: i for i, r in enumerate(plan.regions) for b in r.buildings}
    assert sorted(owner) == sorted(footprints)                              # every building in one grid
    for key, footprint in footprints.items():                               # none cut
        assert footprint.area - polygons[owner[key]].intersection(footprint).area < 1e-4
    assert [r.households for r in plan.regions] == [sum(households[b] for b in r.buildings) for r in plan.regions]
    assert plan.stats["share_in_range"] >= 0.9
    assert plan.stats["households"] == sum(households.values())


def test_plan_is_deterministic_and_an_empty_area_is_one_grid(village):
    area, footprints, households, lines = village
    some = dict(list(footprints.items())[:60])
    first = propose_balanced_plan(area, some, households, lines, seed=3)
    again = propose_balanced_plan(area, some, households, lines, seed=3)
    assert [r.buildings for r in first.regions] == [r.buildings for r in again.regions]
    empty = propose_balanced_plan(area, {}, {}, lines)
    assert len(empty.regions) == 1 and empty.regions[0].polygon.equals(area)


# --- in the store ------------------------------------------------------------------------------------------




def counts(session: Session) -> tuple:
    return session.execute(text("""
        SELECT (SELECT count(*) FROM grids), (SELECT count(*) FROM grid_versions),
               (SELECT count(*) FROM micro_grids), (SELECT md5(string_agg(id || ':' || coalesce(grid_id, 0) || ':'
                      || coalesce(number, 0), ',' ORDER BY id)) FROM buildings)""")).one()


def test_a_proposal_writes_nothing(demo):
    before = counts(demo)
    proposal = propose_plan(demo, SHAWEI)
    assert counts(demo) == before
    assert proposal.community_code == SHAWEI and proposal.stats["share_in_range"] >= 0.9
    assert proposal.current_stats["grids"] == 5 and proposal.current_stats["share_in_range"] < 1.0
    collection = proposal.feature_collection()
    assert len(collection["features"]) == len(proposal.grids)
    lon, lat = collection["features"][0]["geometry"]["coordinates"][0][0]
    assert 113.9 < lon < 114.2 and 22.4 < lat < 22.7                        # lon/lat, (x, y) order


def test_adopt_writes_new_versions_with_history(demo):
    proposal = propose_plan(demo, SHAWEI)
    old = demo.execute(text("SELECT id FROM grids WHERE community_code = :c AND retired_at IS NULL ORDER BY id"),
                       {"c": SHAWEI}).scalars().all()
    report = adopt_plan(demo, SHAWEI, proposal, "planner.li", "rebalance Shawei grids")
    assert sorted(report.retired) == old
    assert [code for _, code in report.created] == [f"{SHAWEI}{n:02d}" for n in range(6, 6 + len(proposal.grids))]
    # history: retired versions and new grids carry who and why
    rows = demo.execute(text("""
        SELECT v.grid_id, v.version, v.retired, v.author, v.reason FROM grid_versions v
        WHERE v.grid_id = ANY(:ids) AND v.valid_to IS NULL ORDER BY v.grid_id"""),
        {"ids": old + [gid for gid, _ in report.created]}).all()
    assert all(r.author == "planner.li" and r.reason == "rebalance Shawei grids" for r in rows)
    assert {r.grid_id for r in rows if r.retired} == set(old) and all(r.version == 2 for r in rows if r.retired)
    assert all(r.version == 1 for r in rows if not r.retired)
    # every building of the community is in the new grid holding most of its footprint, numbered 1..n
    checks = demo.execute(text("""
        SELECT count(*) FILTER (WHERE g.retired_at IS NOT NULL OR b.grid_id IS NULL) AS stale,
               count(*) FILTER (WHERE b.code IS NULL OR substr(b.code, 1, 14) <> g.code) AS bad_code,
               count(*) FILTER (WHERE ST_Area(ST_Transform(ST_Difference(b.footprint, g.boundary), 4547)) > 0.01)
                   AS cut
        FROM buildings b LEFT JOIN grids g ON g.id = b.grid_id WHERE b.community_code = :c"""), {"c": SHAWEI}).one()
    assert tuple(checks) == (0, 0, 0)
    gaps = demo.execute(text("""
        SELECT ST_Area(ST_Transform(ST_SymDifference(d.boundary,
                   (SELECT ST_Union(boundary) FROM grids WHERE community_code = :c AND retired_at IS NULL)), 4547)),
               (SELECT count(*) FROM grids a JOIN grids b ON a.id < b.id AND a.community_code = b.community_code
                 WHERE a.community_code = :c AND a.retired_at IS NULL AND b.retired_at IS NULL
                   AND ST_Area(ST_Transform(ST_Intersection(a.boundary, b.boundary), 4547)) > 0.01)
        FROM divisions d WHERE d.code = :c"""), {"c": SHAWEI}).one()
    assert gaps[0] < 0.01 and gaps[1] == 0
    numbers = demo.execute(text("""
        SELECT grid_id, array_agg(number ORDER BY number) FROM buildings WHERE community_code = :c GROUP BY grid_id"""),
        {"c": SHAWEI}).all()
    assert all(list(n) == list(range(1, len(n) + 1)) for _, n in numbers)
    assert report.micro_grids > 0 and report.buildings_unassigned == 0
    # grid 1 of the new numbering lies in the northernmost row, west of the others there
    first = demo.execute(text("""SELECT ST_Y(ST_Centroid(ST_Transform(boundary, 4547))) FROM grids
                                 WHERE code = :code"""), {"code": report.created[0][1]}).scalar_one()
    top = demo.execute(text("""SELECT max(ST_Y(ST_Centroid(ST_Transform(boundary, 4547)))) FROM grids
                               WHERE community_code = :c AND retired_at IS NULL"""), {"c": SHAWEI}).scalar_one()
    assert first >= top - 50


def test_adopt_refuses_what_it_cannot_do_and_changes_nothing(demo):
    proposal = propose_plan(demo, SHAWEI)
    before = counts(demo)
    with pytest.raises(InvalidInput):
        adopt_plan(demo, VILLAGE, proposal, "planner", "wrong community")
    with pytest.raises(InvalidInput):
        adopt_plan(demo, SHAWEI, proposal, "planner", "  ")
    with pytest.raises(NotFound):
        propose_plan(demo, "440304096099")
    with pytest.raises(InvalidInput):
        propose_plan(demo, SHAWEI, low=500, high=300)
    area = from_wgs84(shapely.box(114.066, 22.561, 114.069, 22.564), "GCJ-02")   # a drawn area, phone coordinates
    drawn = propose_plan(demo, area=area, area_crs="GCJ-02")
    assert drawn.community_code is None and drawn.grids
    with pytest.raises(InvalidInput):
        adopt_plan(demo, SHAWEI, drawn, "planner", "drawn area")
    assert counts(demo) == before
    # every grid number of the community already used: a conflict, nothing written
    with acting_as(demo, "tester", "use up numbers"):
        demo.execute(text("""
            INSERT INTO grids (code, community_code, name, boundary, retired_at)
            SELECT :c || lpad(n::text, 2, '0'), :c, 'old ' || n, (SELECT boundary FROM divisions WHERE code = :c), now()
            FROM generate_series(6, 99) AS n"""), {"c": SHAWEI})
    before = counts(demo)
    with pytest.raises(Conflict):
        adopt_plan(demo, SHAWEI, proposal, "planner", "no numbers left")
    assert counts(demo) == before
