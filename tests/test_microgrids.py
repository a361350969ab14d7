"""Micro-grids of five buildings: the size arithmetic, contiguity, exact tiling, street crossings and stability
(pure, metres), then regenerated in a real PostGIS for the demo neighbourhood and for real Shatou buildings,
with every invariant checked in SQL (areas in EPSG:4547 m²)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, box
from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.analysis.microgrids import group_sizes, plan_micro_grids
from spatial.errors import InvalidInput, NotFound
from spatial.store.engine import acting_as
from spatial.store.microgrids import regenerate_micro_grids

EXACT_M2 = 1e-4


def max_fives(n: int) -> int:
    """Brute force: the most fives in a split of n into parts of 4–6 (None if no such split)."""
    best = None
    for sixes in range(n // 6 + 1):
        for fours in range(n // 4 + 1):
            rest = n - 6 * sixes - 4 * fours
            if rest >= 0 and rest % 5 == 0:
                best = max(best or 0, rest // 5)
    return best


@pytest.mark.parametrize("n", range(61))
def test_group_sizes_arithmetic(n):
    sizes = group_sizes(n)
    assert sum(sizes) == n
    if n in (1, 2, 3):
        assert sizes == [n]
    elif n == 7:
        assert sizes == [4, 3]
    elif n:
        assert all(4 <= s <= 6 for s in sizes)
        assert sizes.count(5) == max_fives(n)
        # fewest groups of 4 or 6 among splits with that many fives
        others = [c for k in range(1, 4) for c in itertools.combinations_with_replacement((4, 6), k)
                  if sum(c) == n - 5 * max_fives(n)]
        assert len(sizes) - sizes.count(5) == min((len(c) for c in others), default=0)


def lattice(n: int, seed: int, gap: float = 30.0):
    """n random buildings on a square lattice of ``gap`` metres; container = the lattice's box."""
    rng = np.random.default_rng(seed)
    cols = int(np.ceil(np.sqrt(n)))
    footprints = {}
    for i, cell in enumerate(rng.permutation(cols * cols)[:n]):
        x, y = (cell % cols) * gap, (cell // cols) * gap
        w, h = rng.uniform(6, 20, 2)
        dx, dy = rng.uniform(0, gap - 2 - w), rng.uniform(0, gap - 2 - h)
        footprints[i] = box(x + dx, y + dy, x + dx + w, y + dy + h)
    return box(-5, -5, cols * gap + 5, cols * gap + 5), footprints


def check_plan(plan, container, footprints):
    members = [b for g in plan.groups for b in g.buildings]
    assert sorted(members) == sorted(footprints)                      # each building in exactly one group
    polygons = np.array([g.polygon for g in plan.groups], dtype=object)
    union = shapely.union_all(polygons)
    assert union.symmetric_difference(container).area < EXACT_M2      # tiles the grid
    a, b = shapely.STRtree(polygons).query(polygons, predicate="intersects")
    assert shapely.area(shapely.intersection(polygons[a[a < b]], polygons[b[a < b]])).sum() < EXACT_M2
    for group in plan.groups:
        assert group.polygon.geom_type == "Polygon" and not group.jumps   # contiguous
        for key in group.buildings:                                       # no building cut
            assert footprints[key].area - group.polygon.intersection(footprints[key]).area < EXACT_M2


@pytest.mark.parametrize("n", range(1, 41))
def test_sizes_contiguity_and_tiling_for_1_to_40_buildings(n):
    container, footprints = lattice(n, seed=n)
    plan = plan_micro_grids(container, footprints)
    assert sorted(plan.sizes(), reverse=True) == group_sizes(n)
    check_plan(plan, container, footprints)


def two_rows(west: int, east: int):
    """Buildings in a west and an east column separated by a north-south street at x = 50."""
    footprints = {f"w{i}": box(10, 10 + 25 * i, 30, 25 + 25 * i) for i in range(west)}
    footprints |= {f"e{i}": box(70, 10 + 25 * i, 90, 25 + 25 * i) for i in range(east)}
    rows = max(west, east)
    return box(0, 0, 100, 25 * rows + 10), footprints, [LineString([(50, -10), (50, 25 * rows + 20)])]


def test_groups_stay_on_their_side_of_a_street():
    container, footprints, streets = two_rows(5, 5)
    plan = plan_micro_grids(container, footprints, streets)
    assert sorted(plan.sizes()) == [5, 5]
    assert {frozenset(k[0] for k in g.buildings) for g in plan.groups} == {frozenset("w"), frozenset("e")}
    assert not any(g.crosses_street for g in plan.groups)


def test_a_street_is_crossed_only_when_sizes_demand_it():
    container, footprints, streets = two_rows(3, 7)            # 10 = 5 + 5: one group must cross
    plan = plan_micro_grids(container, footprints, streets)
    assert sorted(plan.sizes()) == [5, 5]
    assert sum(g.crosses_street for g in plan.groups) == 1
    check_plan(plan, container, footprints)


def test_a_grid_in_two_pieces_is_joined_where_it_must_be():
    footprints = {i: box(5 + 12 * i, 5, 13 + 12 * i, 15) for i in range(3)}
    footprints |= {10 + i: box(105 + 12 * i, 5, 113 + 12 * i, 15) for i in range(3)}
    container = shapely.union_all([box(0, 0, 40, 20), box(100, 0, 140, 20)])
    plan = plan_micro_grids(container, footprints)
    assert plan.sizes() == [6] and plan.groups[0].jumps      # 3 + 3 cannot be valid apart


def test_unchanged_groups_survive_a_small_boundary_change():
    container, footprints = lattice(30, seed=3)
    first = plan_micro_grids(container, footprints)
    previous = {f"mg{i}": g.buildings for i, g in enumerate(first.groups)}
    # the boundary moves in around the easternmost building: the buildings it no longer holds leave the grid
    leaving = max(footprints, key=lambda k: footprints[k].bounds[2])
    maxx = container.bounds[2]
    lx0, ly0, _, ly1 = footprints[leaving].bounds
    smaller = container.difference(box(lx0 - 0.5, ly0 - 0.5, maxx + 1, ly1 + 0.5))     # a notch in the east edge
    remaining = {k: f for k, f in footprints.items() if smaller.contains(f)}
    assert 1 <= len(footprints) - len(remaining) <= 3
    second = plan_micro_grids(smaller, remaining, previous=previous)
    check_plan(second, smaller, remaining)
    assert all(4 <= s <= 6 for s in second.sizes())
    untouched = {gid for gid, members in previous.items() if set(members) <= set(remaining)}
    kept = {g.kept: g.buildings for g in second.groups if g.kept is not None}
    assert len(kept) >= len(untouched) - 1 and len(kept) >= 3
    for gid, members in kept.items():
        assert set(members) == set(previous[gid])


# --- in the store ------------------------------------------------------------------------------------------




INVARIANTS = {
    "buildings of the grids without a micro-grid": """
        SELECT count(*) FROM buildings b WHERE b.grid_id = ANY(:grids) AND b.micro_grid_id IS NULL""",
    "micro-grids of a size the arithmetic does not give": """
        SELECT count(*) FROM micro_grids m
        WHERE m.grid_id = ANY(:grids)
          AND (SELECT count(*) FROM buildings b WHERE b.micro_grid_id = m.id) NOT BETWEEN 4 AND 6
          AND (SELECT count(*) FROM buildings b WHERE b.grid_id = m.grid_id) NOT IN (1, 2, 3, 7)""",
    "grids whose micro-grids leave a gap or spill over (m² > 0.01)": """
        SELECT count(*) FROM grids g
        WHERE g.id = ANY(:grids) AND EXISTS (SELECT 1 FROM micro_grids m WHERE m.grid_id = g.id)
          AND ST_Area(ST_Transform(ST_SymDifference(g.boundary,
                (SELECT ST_Union(boundary) FROM micro_grids m WHERE m.grid_id = g.id)), 4547)) > 0.01""",
    "overlapping micro-grids (m² > 0.01)": """
        SELECT count(*) FROM micro_grids a JOIN micro_grids b ON a.id < b.id AND a.grid_id = b.grid_id
             AND a.boundary && b.boundary
        WHERE a.grid_id = ANY(:grids)
          AND ST_Area(ST_Transform(ST_Intersection(a.boundary, b.boundary), 4547)) > 0.01""",
    "buildings cut by a micro-grid boundary (m² > 0.01 outside their micro-grid, inside their grid)": """
        SELECT count(*) FROM buildings b JOIN micro_grids m ON m.id = b.micro_grid_id
             JOIN grids g ON g.id = b.grid_id
        WHERE b.grid_id = ANY(:grids)
          AND ST_Area(ST_Transform(ST_Difference(ST_Intersection(b.footprint, g.boundary), m.boundary), 4547))
              > 0.01""",
    "micro-grids not numbered 1..k in their grid": """
        SELECT count(*) FROM (SELECT grid_id, max(seq) AS top, count(*) AS n FROM micro_grids
                              WHERE grid_id = ANY(:grids) GROUP BY grid_id) s WHERE top <> n""",
}


def assert_invariants(session: Session, grids: list[int], *, odd_sizes: int = 0):
    """Every invariant holds; ``odd_sizes`` micro-grids may have sizes the data force (a footprint covered by
    several building parts counts as all of them and cannot be split)."""
    for name, query in INVARIANTS.items():
        allowed = odd_sizes if name.startswith("micro-grids of a size") else 0
        assert session.execute(text(query), {"grids": grids}).scalar_one() <= allowed, name


def test_demo_micro_grids_keep_every_invariant(demo):
    grids = demo.execute(text("SELECT id FROM grids WHERE retired_at IS NULL ORDER BY code")).scalars().all()
    reports = [regenerate_micro_grids(demo, gid) for gid in grids]
    assert_invariants(demo, grids)
    assert sum(r.buildings for r in reports) == 663
    for report in reports:
        sizes = sorted((s for s, c in report.sizes.items() for _ in range(c)), reverse=True)
        assert sizes == group_sizes(report.buildings)
        assert report.gap_m2 < 0.01 and report.overlap_m2 < 0.01 and report.outside == ()
    # reading order: seq 1 lies in the northernmost row (rows 15 m high) and is its westernmost micro-grid
    rows = demo.execute(text("""
        SELECT seq, ST_X(c) AS x, ST_Y(c) AS y FROM micro_grids, LATERAL ST_Centroid(ST_Transform(boundary, 4547)) c
        WHERE grid_id = :g ORDER BY seq"""), {"g": grids[0]}).all()
    top = max(r.y for r in rows)
    assert [r.seq for r in rows] == list(range(1, reports[0].micro_grids + 1))
    assert rows[0].y >= top - 15 and rows[0].x == min(r.x for r in rows if r.y >= top - 15)


def test_regenerating_keeps_unchanged_groups_and_their_heads(demo):
    gid = demo.execute(text("SELECT id FROM grids WHERE code = '44030409600101'")).scalar_one()
    regenerate_micro_grids(demo, gid)
    demo.execute(text("UPDATE micro_grids SET head_name = '王楼长', head_phone = '13800000000' WHERE grid_id = :g"),
                 {"g": gid})
    before = dict(demo.execute(text("""
        SELECT m.id, array_agg(b.id ORDER BY b.id) FROM micro_grids m JOIN buildings b ON b.micro_grid_id = m.id
        WHERE m.grid_id = :g GROUP BY m.id"""), {"g": gid}).all())
    again = regenerate_micro_grids(demo, gid)
    assert again.kept == len(before) and again.created == 0 and again.removed == 0
    # two buildings of one group leave the grid (as a boundary change would move them): its three others
    # cannot stay a group, so they are regrouped with the group bordering them longest; the rest stay
    leaving, group = demo.execute(text("""
        SELECT id, micro_grid_id FROM buildings WHERE grid_id = :g ORDER BY ST_X(ST_Centroid(footprint)) DESC
        LIMIT 1"""), {"g": gid}).one()
    gone = sorted({leaving, *[b for b in before[group] if b != leaving][:1]})
    other = demo.execute(text("SELECT id FROM grids WHERE code = '44030409600102'")).scalar_one()
    with acting_as(demo, "tester", "move buildings"):
        for number, building in zip((99998, 99999), gone):
            demo.execute(text("UPDATE buildings SET micro_grid_id = NULL, grid_id = :o, number = :n WHERE id = :b"),
                         {"o": other, "n": number, "b": building})
    report = regenerate_micro_grids(demo, gid)
    assert report.buildings == 34 and report.removed == 2 and report.created == 2 and report.kept == len(before) - 2
    after = dict(demo.execute(text("""
        SELECT m.id, array_agg(b.id ORDER BY b.id) FROM micro_grids m JOIN buildings b ON b.micro_grid_id = m.id
        WHERE m.grid_id = :g GROUP BY m.id"""), {"g": gid}).all())
    survivors = set(before) & set(after)
    assert group not in survivors and len(survivors) == len(before) - 2
    assert all(after[mid] == before[mid] for mid in survivors)
    heads = demo.execute(text("SELECT count(*) FROM micro_grids WHERE grid_id = :g AND head_name = '王楼长'"),
                         {"g": gid}).scalar_one()
    assert heads == len(survivors)
    assert_invariants(demo, [gid])


def test_unknown_or_retired_grid(demo):
    with pytest.raises(NotFound):
        regenerate_micro_grids(demo, 999_999)
    gid = demo.execute(text("SELECT id FROM grids WHERE code = '44030409600201'")).scalar_one()
    with acting_as(demo, "tester", "retire"):
        demo.execute(text("UPDATE buildings SET grid_id = NULL, number = NULL, micro_grid_id = NULL "
                          "WHERE grid_id = :g"), {"g": gid})
        demo.execute(text("UPDATE grids SET retired_at = now() WHERE id = :g"), {"g": gid})
    with pytest.raises(InvalidInput):
        regenerate_micro_grids(demo, gid)


@pytest.mark.shared_data
def test_real_shatou_buildings(db, shared_data):
    """Real OSM buildings (© OpenStreetMap contributors, ODbL): a synthetic community of street blocks, cut into
    grids of 250 m squares of blocks; every grid's micro-grids keep the invariants."""
    import geopandas as gpd

    from spatial.io import import_buildings, import_streets

    path = shared_data / "futian_shatou.gpkg"
    import_buildings(db, path, layer="buildings")
    import_streets(db, path)
    blocks = gpd.read_file(path, layer="derived_street_blocks")
    houses = gpd.read_file(path, layer="buildings").to_crs(4547).centroid
    centre = shapely.Point(houses.x.median(), houses.y.median())          # in the Shangsha urban village
    near = blocks[blocks.to_crs(4547).centroid.distance(centre) < 300]
    squares = (near.to_crs(4547).centroid.x // 250).astype(int).astype(str) + "_" + \
        (near.to_crs(4547).centroid.y // 250).astype(int).astype(str)
    grids = [shapely.union_all(near.geometry.values[(squares == s).values]) for s in sorted(set(squares))]
    # synthetic codes of their own: the module's demo transaction holds Futian's district row
    db.execute(text("""INSERT INTO divisions (code, level, name, parent_code, synthetic)
                       VALUES ('440398000000', 'district', '测试区', NULL, true)"""))
    db.execute(text("""INSERT INTO divisions (code, level, name, parent_code, synthetic)
                       VALUES ('440398098000', 'subdistrict', '测试街道', '440398000000', true)"""))
    db.execute(text("""INSERT INTO divisions (code, level, name, parent_code, boundary, synthetic)
                       VALUES ('440398098001', 'community', '测试社区', '440398098000',
                               ST_Multi(ST_GeomFromWKB(:wkb, 4326)), true)"""),
               {"wkb": shapely.union_all(grids).wkb})
    ids = []
    with acting_as(db, "tester", "synthetic grids"):
        for number, grid in enumerate(grids, start=1):
            ids.append(db.execute(text("""
                INSERT INTO grids (code, community_code, name, boundary)
                VALUES (:code, '440398098001', :name, ST_Multi(ST_GeomFromWKB(:wkb, 4326))) RETURNING id"""),
                {"code": f"440398098001{number:02d}", "name": f"网格{number}", "wkb": grid.wkb}).scalar_one())
    db.execute(text("""
        UPDATE buildings b SET grid_id = best.gid, number = best.n FROM (
            SELECT id, gid, row_number() OVER (PARTITION BY gid ORDER BY id) AS n FROM (
                SELECT DISTINCT ON (b.id) b.id, g.id AS gid FROM buildings b JOIN grids g
                  ON g.id = ANY(:ids) AND ST_Intersects(b.footprint, g.boundary)
                ORDER BY b.id, ST_Area(ST_Intersection(b.footprint, g.boundary)) DESC) m
            WHERE ST_Area(ST_Intersection((SELECT footprint FROM buildings WHERE id = m.id),
                                          (SELECT boundary FROM grids WHERE id = m.gid)))
                  >= 0.5 * ST_Area((SELECT footprint FROM buildings WHERE id = m.id))) best
        WHERE b.id = best.id"""), {"ids": ids})
    total = db.execute(text("SELECT count(*) FROM buildings WHERE grid_id = ANY(:ids)"), {"ids": ids}).scalar_one()
    assert total > 100
    reports = [regenerate_micro_grids(db, gid) for gid in ids]
    assert sum(r.buildings for r in reports) == total
    groups = sum(r.micro_grids for r in reports)
    assert_invariants(db, ids, odd_sizes=groups // 50)
    grouped = db.execute(text("SELECT count(*) FROM buildings WHERE grid_id = ANY(:ids) AND micro_grid_id IS NOT NULL"),
                         {"ids": ids}).scalar_one()
    assert grouped == total - sum(len(r.outside) for r in reports)
    assert sum(r.micro_grids * r.exact_five_share for r in reports) / sum(r.micro_grids for r in reports) > 0.5
