"""Grid plan edits in pure Shapely (metres): snapping around buildings, shared boundaries, split, merge,
and the validation report. Random layouts via hypothesis check the invariants that must always hold."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, box

from spatial.analysis import gridplan as gp
from spatial.errors import InvalidInput


def community(buildings: list[tuple[float, float]] = (), households: int = 10) -> gp.Community:
    """A 400 m × 200 m community, west grid 1 (x < 200) and east grid 2; 20 × 15 m buildings at (x, y)."""
    footprints = np.array([box(x, y, x + 20, y + 15) for x, y in buildings], dtype=object)
    grids = {1: gp.Grid(1, "A01", "west", "comprehensive", box(0, 0, 200, 200), workers=2),
             2: gp.Grid(2, "A02", "east", "comprehensive", box(200, 0, 400, 200), workers=1)}
    current, _, _ = gp.assign_buildings(footprints, {1: grids[1].geom, 2: grids[2].geom})
    n = len(buildings)
    b = gp.Buildings(np.arange(1, n + 1), footprints, current, [f"B{i}" for i in range(1, n + 1)],
                     np.full(n, households), np.full(n, households * 2))
    return gp.Community("C", box(0, 0, 400, 200), grids, b)


CODES = {1: "A01", 2: "A02", -1: "A03"}


def test_unchanged_plan_is_clean():
    c = community([(20, 20), (300, 100)])
    report = gp.check_plan(c, {}, CODES)
    assert report.ok and not report.gaps and not report.moved_buildings
    assert [(w.grid, w.households, w.workers) for w in report.workload] == [("A01", 10, 2), ("A02", 10, 1)]


def test_redraw_snaps_around_a_building_it_would_cut():
    c = community([(195, 50)])  # x 195–215: the east grid holds 15 of its 20 m
    assert c.buildings.grid_ids.tolist() == [2]
    plan = gp.plan_redraw(c, 1, box(0, 0, 210, 200), move_shared_boundary=True)  # now the west holds 15 m
    report = gp.check_plan(c, plan, CODES)
    assert report.ok, report.problems()
    assert [m.to_grid for m in report.moved_buildings] == ["A01"]
    assert shapely.covers(plan[1], c.buildings.footprints[0])


def test_overlap_without_moving_the_shared_boundary_is_reported():
    c = community()
    report = gp.check_plan(c, gp.plan_redraw(c, 1, box(0, 0, 250, 200)), CODES)
    assert not report.ok
    assert len(report.overlaps) == 1 and report.overlaps[0].area_m2 == pytest.approx(50 * 200)
    assert report.overlaps[0].grids == ("A01", "A02")


def test_moving_the_shared_boundary_leaves_no_gap_and_no_overlap():
    c = community([(260, 20)])
    plan = gp.plan_redraw(c, 1, box(0, 0, 300, 200), move_shared_boundary=True)
    report = gp.check_plan(c, plan, CODES)
    assert report.ok and not report.gaps
    assert plan[2].area == pytest.approx(100 * 200)
    assert [m.to_grid for m in report.moved_buildings] == ["A01"]


def test_released_land_goes_to_the_neighbour_or_is_reported_as_a_gap():
    c = community()
    shrunk = gp.plan_redraw(c, 1, box(0, 0, 150, 200), move_shared_boundary=True)
    assert gp.check_plan(c, shrunk, CODES).gaps == [] and shrunk[2].area == pytest.approx(250 * 200)
    hole = gp.plan_redraw(c, 1, box(0, 0, 150, 200))  # without moving: the strip is left uncovered
    gaps = gp.check_plan(c, hole, CODES).gaps
    assert len(gaps) == 1 and gaps[0].area_m2 == pytest.approx(50 * 200)


def test_parts_outside_the_community_are_reported():
    c = community()
    report = gp.check_plan(c, {1: box(-30, 0, 200, 200)}, CODES)
    assert [(p.grids, p.area_m2) for p in report.outside] == [(("A01",), 30 * 200)]


def test_split_keeps_buildings_whole_and_tiles_the_grid():
    c = community([(90, 90), (20, 20)])  # the first straddles x = 100
    plan = gp.plan_split(c, 1, LineString([(100, -10), (100, 210)]))
    report = gp.check_plan(c, plan, CODES)
    assert report.ok and not report.gaps
    assert plan[1].area + plan[-1].area == pytest.approx(200 * 200)


def test_split_by_a_line_that_does_not_cross_is_refused():
    with pytest.raises(InvalidInput, match="exactly two parts"):
        gp.plan_split(community(), 1, LineString([(50, 50), (60, 60)]))


def test_merge_needs_adjacent_grids():
    c = community([(20, 20), (300, 20)])
    plan = gp.plan_merge(c, [1, 2])
    assert plan[2] is None and plan[1].area == pytest.approx(400 * 200)
    report = gp.check_plan(c, plan, CODES)
    assert report.ok and [w.households for w in report.workload] == [20]
    far = community()
    far.grids[2].geom = box(250, 0, 400, 200)
    with pytest.raises(InvalidInput, match="share no border"):
        gp.plan_merge(far, [1, 2])


def test_workload_flags_grids_out_of_range():
    c = community([(20, 20), (60, 20), (300, 20)], households=200)
    report = gp.check_plan(c, {}, CODES, households_range=(300, 500))
    assert [(w.households, w.in_range) for w in report.workload] == [(400, True), (200, False)]
    assert not any(w.touched for w in report.workload) and report.warning_codes() == []  # nothing changed


def test_a_merge_beyond_the_range_warns_for_the_grid_it_makes_and_lists_only_touched_grids():
    c = community([(20, 20), (60, 20), (300, 20)], households=200)
    report = gp.check_plan(c, gp.plan_merge(c, [1, 2]), CODES, households_range=(300, 500))
    assert report.ok  # may be saved...
    assert report.warning_codes() == [{"code": "plan.households_out_of_range", "grid": CODES[1], "households": 600,
                                       "low": 300, "high": 500}]  # ...but not in silence
    assert [(w.grid, w.touched) for w in report.workload] == [(CODES[1], True)]
    moved = gp.check_plan(c, {1: box(0, 0, 400, 200), 2: None}, CODES)
    assert {w.grid for w in moved.workload if w.touched} == {CODES[1]}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 37), st.integers(0, 17)), min_size=1, max_size=25, unique=True),
       st.floats(40, 360), st.floats(-40, 40))
def test_any_redraw_with_shared_boundary_keeps_exact_cover_and_cuts_nothing(cells, x, slant):
    """Buildings on a 10 m lattice (non-overlapping), a slanted new boundary anywhere: afterwards no
    overlap, no gap, nothing outside, no building cut."""
    c = community([(10 * i + 1, 10 * j + 2) for i, j in cells if 10 * i + 21 <= 400 and 10 * j + 17 <= 200])
    c.buildings.footprints = np.array([box(x0, y0, x0 + 8, y0 + 7) for x0, y0 in
                                       ((float(g.bounds[0]), float(g.bounds[1])) for g in c.buildings.footprints)],
                                      dtype=object)
    drawn = shapely.Polygon([(0, 0), (x - slant, 0), (x + slant, 200), (0, 200)])
    plan = gp.plan_redraw(c, 1, drawn, move_shared_boundary=True)
    report = gp.check_plan(c, plan, CODES)
    assert report.ok, report.problems()
    assert not report.gaps



def test_a_building_left_on_uncovered_land_is_not_cut_but_loses_its_grid():
    c = community([(300, 150)])
    report = gp.check_plan(c, {2: box(200, 0, 400, 100)}, CODES)
    assert report.ok and report.cut_buildings == []
    assert [(m.from_grid, m.to_grid) for m in report.moved_buildings] == [("A02", None)]
    assert report.gaps[0].area_m2 == pytest.approx(200 * 100)
