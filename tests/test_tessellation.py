"""Morphological tessellation (spatial/analysis/tessellation.py): cells tile the container exactly and never cut a
building, for random layouts (hypothesis) and the edge cases. Pure geometry in metres; no database."""

from __future__ import annotations

import numpy as np
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, MultiPolygon, Polygon, box

from spatial.analysis.tessellation import majority_owner, tessellate

EXACT_M2 = 1e-4       # gap, overlap and footprint loss allowed: floating-point dust (µm snapping)


def assert_tiles(t, container, footprints):
    cells = np.array(list(t.cells.values()), dtype=object)
    assert all(shapely.is_valid(cells))
    union = shapely.union_all(cells)
    assert shapely.difference(container, union).area < EXACT_M2          # no gap
    assert shapely.difference(union, container).area < EXACT_M2          # nothing outside
    a, b = shapely.STRtree(cells).query(cells, predicate="intersects")
    keep = a < b
    assert shapely.area(shapely.intersection(cells[a[keep]], cells[b[keep]])).sum() < EXACT_M2   # no overlap
    for key, cell in t.cells.items():                                   # no building cut
        inside = footprints[key].intersection(container)
        assert inside.area - cell.intersection(inside).area < EXACT_M2, key


@st.composite
def layouts(draw):
    """Buildings on a jittered lattice (some touching their east neighbour), in a box container that may clip
    the outer ones; coordinates around EPSG:4547 values for Shenzhen."""
    cols, rows = draw(st.integers(1, 6)), draw(st.integers(1, 5))
    x0, y0 = 507_000.0 + draw(st.floats(0, 50)), 2_495_000.0 + draw(st.floats(0, 50))
    footprints = {}
    for i in range(cols):
        for j in range(rows):
            if not draw(st.booleans()) and (i, j) != (0, 0):
                continue
            w, h = draw(st.floats(4, 18)), draw(st.floats(4, 18))
            dx = 0.0 if draw(st.booleans()) else draw(st.floats(0, 19 - w))
            dy = draw(st.floats(0, 19 - h))
            x, y = x0 + 20 * i + dx, y0 + 20 * j + dy
            footprints[f"b{i}_{j}"] = box(x, y, x + w, y + h)
    touching = draw(st.booleans())
    if touching and "b0_0" in footprints:                   # a building sharing an edge with b0_0
        _, miny, maxx, maxy = footprints["b0_0"].bounds
        footprints["touch"] = box(maxx, miny, maxx + 1.0, maxy)       # ends before the next lattice column
    margin = draw(st.floats(-3, 15))
    container = box(x0 - margin, y0 - margin, x0 + 20 * cols + margin, y0 + 20 * rows + margin)
    return container, footprints


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts())
def test_random_layouts_tile_exactly_without_cutting(layout):
    container, footprints = layout
    t = tessellate(container, footprints)
    kept = set(t.cells)
    for key, footprint in footprints.items():
        share = footprint.intersection(container).area / footprint.area
        if share > 0.5 + 1e-9:
            assert key in kept
        if share < 0.5 - 1e-9:
            assert key not in kept and key in t.excluded
    if kept:
        assert_tiles(t, container, footprints)
    else:
        assert t.unowned is not None and t.unowned.equals(container)


def test_no_building_leaves_the_container_unowned():
    container = box(0, 0, 100, 100)
    t = tessellate(container, {})
    assert t.cells == {} and t.unowned.equals(container)


def test_one_building_gets_the_whole_container():
    container = Polygon([(0, 0), (60, 0), (60, 40), (30, 70), (0, 40)])
    t = tessellate(container, {"a": box(10, 10, 20, 20)})
    assert set(t.cells) == {"a"}
    assert t.cells["a"].symmetric_difference(container).area < EXACT_M2


def test_two_buildings_split_along_the_bisector():
    container = box(0, 0, 100, 40)
    t = tessellate(container, {"w": box(10, 10, 20, 30), "e": box(70, 10, 80, 30)})
    assert_tiles(t, container, {"w": box(10, 10, 20, 30), "e": box(70, 10, 80, 30)})
    assert abs(t.cells["w"].bounds[2] - 45.0) < 0.01 and abs(t.cells["w"].area - 45 * 40) < 1.0


def test_touching_and_multipolygon_buildings():
    footprints = {
        "a": box(10, 10, 20, 20), "b": box(20, 10, 30, 20),              # share an edge
        "m": MultiPolygon([box(50, 10, 55, 15), box(50, 25, 55, 30)]),  # two parts, one building
        "c": box(80, 40, 90, 45),
    }
    container = box(0, 0, 100, 60)
    t = tessellate(container, footprints)
    assert set(t.cells) == set(footprints)
    assert_tiles(t, container, footprints)
    assert t.cells["m"].contains(footprints["m"].buffer(-1e-6))


def test_partly_outside_goes_by_majority():
    container = box(0, 0, 50, 50)
    footprints = {"in": box(10, 10, 20, 20),
                  "mostly_in": box(40, 10, 56, 20),       # 10 of 16 m inside
                  "mostly_out": box(44, 30, 60, 40)}      # 6 of 16 m inside
    t = tessellate(container, footprints)
    assert set(t.cells) == {"in", "mostly_in"}
    assert t.straddling == ("mostly_in",) and t.excluded == ("mostly_out",)
    assert_tiles(t, container, footprints)
    # the inside part of the excluded building is land of the kept ones
    assert shapely.union_all(list(t.cells.values())).contains(box(44.1, 30.1, 49.9, 39.9))


def test_overlapping_buildings_give_the_overlap_to_the_first():
    footprints = {"a": box(10, 10, 30, 30), "b": box(25, 10, 40, 30), "inner": box(12, 12, 15, 15)}
    container = box(0, 0, 60, 40)
    t = tessellate(container, footprints)
    assert set(t.cells) == {"a", "b"} and "inner" in t.excluded
    assert t.cells["a"].contains(footprints["a"].buffer(-1e-6))
    assert t.cells["b"].intersection(box(25, 10, 30, 30)).area < EXACT_M2
    union = shapely.union_all(list(t.cells.values()))
    assert union.symmetric_difference(container).area < EXACT_M2


def test_barriers_keep_land_on_its_side_of_the_street():
    container = box(0, 0, 100, 100)
    street = LineString([(0, 50), (100, 50)])
    footprints = {"north": box(45, 90, 55, 95), "south": box(10, 10, 90, 40)}
    plain = tessellate(container, footprints)
    walled = tessellate(container, footprints, barriers=[street])
    assert plain.cells["south"].intersection(box(0, 50, 100, 100)).area > 100   # nearest across the street
    assert walled.cells["south"].intersection(box(0, 50, 100, 100)).area < EXACT_M2
    assert walled.enclosure_of["north"] != walled.enclosure_of["south"]
    assert_tiles(walled, container, footprints)


def test_empty_enclosure_goes_to_the_nearest_building():
    container = box(0, 0, 100, 100)
    streets = [LineString([(0, 50), (100, 50)])]
    t = tessellate(container, {"a": box(10, 10, 20, 20), "b": box(70, 10, 80, 20)}, barriers=streets)
    assert_tiles(t, container, {"a": box(10, 10, 20, 20), "b": box(70, 10, 80, 20)})
    assert all(cell.geom_type == "Polygon" for cell in t.cells.values())


def test_majority_owner():
    grids = [box(0, 0, 10, 10), box(10, 0, 20, 10)]
    assert majority_owner([box(2, 2, 4, 4), box(8, 2, 13, 4), box(9, 2, 11, 4), box(50, 50, 51, 51)],
                          grids).tolist() == [0, 1, 0, -1]
    assert majority_owner([], grids).tolist() == []
