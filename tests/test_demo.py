"""The demo neighbourhood (fixtures/demo.py): deterministic, and consistent once loaded into a real PostGIS.

The demo is loaded once per module (about 2 s) in a transaction that is rolled back at the end, like the ``db``
fixture but shared by the read-only checks below. Areas and distances are measured in EPSG:4547 metres.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from fixtures import demo
from fixtures.demo import generate, load_demo
from spatial.geometry.codes import is_valid_id_number, reading_order

PREFIX = {"prefix": demo.SUBDISTRICT[0][:9] + "%"}


@pytest.fixture(scope="module")
def city() -> demo.DemoCity:
    return generate()


@pytest.fixture(scope="module")
def loaded(demo_module: Session) -> tuple[Session, dict[str, int]]:
    """(session, counts returned by load_demo) from conftest's module-wide demo."""
    return demo_module, demo_module.info["demo_counts"]


@pytest.fixture
def db_demo(loaded) -> Session:
    return loaded[0]


def scalar(session: Session, sql: str, **params):
    return session.execute(text(sql), {**PREFIX, **params}).scalar_one()


def test_generate_is_deterministic(city):
    assert generate().fingerprint() == city.fingerprint()
    assert generate(seed=7).fingerprint() != city.fingerprint()


def test_generated_counts_are_realistic(city):
    counts = city.counts()
    assert 600 <= counts["buildings"] <= 1200
    assert 8000 <= counts["households"] <= 15000
    assert counts["households"] == sum(b.households for b in city.buildings)
    assert counts["residents"] == sum(b.residents for b in city.buildings)
    assert 3 <= sum(d.level == "community" for d in city.divisions) <= 4
    assert {c.status for c in city.checkpoints} == {"staffed", "sealed", "unstaffed"}
    village = [b for b in city.buildings if b.urban_village and b.households]
    assert all(5 <= b.levels <= 8 for b in village)
    towers = [b for b in city.buildings if not b.urban_village and b.levels >= 25]
    assert towers and all(b.levels <= 33 and 2 <= b.units <= 4 for b in towers)


def test_load_returns_the_rows_written(loaded, city):
    session, counts = loaded
    assert counts["already_loaded"] == 0
    expected = city.counts()
    for table, key in (("grids", "grids"), ("buildings", "buildings"), ("households", "households"),
                       ("street_nodes", "nodes"), ("street_edges", "edges"), ("enclosures", "enclosures"),
                       ("checkpoints", "checkpoints")):
        assert counts[table] == expected[key], table
    assert counts["divisions"] == len(city.divisions)
    assert scalar(session, "SELECT count(*) FROM divisions WHERE code LIKE :prefix AND synthetic") == \
        len(city.divisions) - 1


def test_loading_twice_duplicates_nothing(db_demo, loaded):
    tables = ("divisions", "grids", "grid_versions", "buildings", "households", "street_nodes", "street_edges",
              "enclosures", "checkpoints")
    before = {t: scalar(db_demo, f"SELECT count(*) FROM {t}") for t in tables}
    again = load_demo(db_demo)
    assert again["already_loaded"] == 1
    assert {k: v for k, v in again.items() if k != "already_loaded"} == \
        {k: v for k, v in loaded[1].items() if k != "already_loaded"}
    assert {t: scalar(db_demo, f"SELECT count(*) FROM {t}") for t in tables} == before


def test_grid_history_names_the_demo_as_author(db_demo):
    assert scalar(db_demo, """SELECT count(*) FROM grid_versions v JOIN grids g ON g.id = v.grid_id
                              WHERE g.community_code LIKE :prefix
                                AND (v.author <> 'demo' OR v.reason <> 'demo neighbourhood')""") == 0


def test_communities_tile_the_subdistrict(db_demo):
    gap = scalar(db_demo, """
        SELECT ST_Area(ST_SymDifference(ST_Transform(s.boundary, 4547), ST_Transform(ST_Union(c.boundary), 4547)))
        FROM divisions s JOIN divisions c ON c.parent_code = s.code
        WHERE s.code LIKE :prefix AND s.level = 'subdistrict' GROUP BY s.boundary""")
    assert gap < 1.0


def test_grids_cover_each_community_exactly(db_demo):
    rows = db_demo.execute(text("""
        SELECT d.code,
               ST_Area(ST_SymDifference(ST_Transform(d.boundary, 4547), ST_Transform(ST_Union(g.boundary), 4547)))
        FROM divisions d JOIN grids g ON g.community_code = d.code
        WHERE d.level = 'community' AND d.code LIKE :prefix GROUP BY d.code, d.boundary"""), PREFIX).all()
    assert len(rows) == 4
    assert all(area < 1.0 for _, area in rows), rows


def test_grids_do_not_overlap(db_demo):
    assert scalar(db_demo, """
        SELECT count(*) FROM grids a JOIN grids b
          ON a.community_code = b.community_code AND a.id < b.id AND ST_Intersects(a.boundary, b.boundary)
        WHERE a.community_code LIKE :prefix
          AND ST_Area(ST_Intersection(ST_Transform(a.boundary, 4547), ST_Transform(b.boundary, 4547))) > 1""") == 0


def test_no_building_is_cut_by_a_grid_boundary(db_demo):
    assert scalar(db_demo, "SELECT count(*) FROM buildings WHERE origin = 'demo' AND grid_id IS NULL") == 0
    assert scalar(db_demo, """
        SELECT count(*) FROM buildings b JOIN grids g ON g.id = b.grid_id
        WHERE b.origin = 'demo' AND NOT ST_CoveredBy(b.footprint, g.boundary)""") == 0


def test_building_codes_nest_in_their_grid(db_demo):
    rows = db_demo.execute(text("""
        SELECT b.code, g.code, b.number FROM buildings b JOIN grids g ON g.id = b.grid_id
        WHERE b.origin = 'demo'""")).all()
    numbers = defaultdict(list)
    for code, grid, number in rows:
        assert code is not None and len(code) == 19 and code.isdigit() and code.startswith(grid), code
        numbers[grid].append(number)
    assert all(sorted(n) == list(range(1, len(n) + 1)) for n in numbers.values())


def test_grid_codes_follow_reading_order(db_demo):
    rows = db_demo.execute(text("""
        SELECT community_code, code, ST_X(c), ST_Y(c)
        FROM (SELECT community_code, code, ST_Centroid(ST_Transform(boundary, 4547)) AS c FROM grids
              WHERE community_code LIKE :prefix) s ORDER BY code"""), PREFIX).all()
    by_community = defaultdict(list)
    for community, code, x, y in rows:
        by_community[community].append((code, (x, y)))
    assert len(by_community) == 4
    for community, grids in by_community.items():
        order = reading_order([xy for _, xy in grids], demo.GRID_ROW_TOLERANCE_M)
        assert [grids[i][0] for i in order] == [f"{community}{n:02d}" for n in range(1, len(grids) + 1)]


def test_households_per_grid(db_demo):
    rows = db_demo.execute(text("""
        SELECT g.kind, g.name, coalesce(sum(b.households), 0) FROM grids g LEFT JOIN buildings b ON b.grid_id = g.id
        WHERE g.community_code LIKE :prefix GROUP BY g.id"""), PREFIX).all()
    comprehensive = [(name, n) for kind, name, n in rows if kind == "comprehensive"]
    assert comprehensive and all(250 <= n <= 650 for _, n in comprehensive), comprehensive
    assert sum(300 <= n <= 500 for _, n in comprehensive) >= 0.7 * len(comprehensive)
    assert any(kind == "dedicated" and "工业园" in name for kind, name, _ in rows)


def test_household_rows_match_building_counts(db_demo):
    assert scalar(db_demo, """
        SELECT count(*) FROM buildings b
        LEFT JOIN (SELECT building_id, count(*) AS n, sum(residents) AS r FROM households GROUP BY building_id) h
          ON h.building_id = b.id
        WHERE b.origin = 'demo'
          AND (coalesce(h.n, 0) <> b.households OR coalesce(h.r, 0) <> b.residents)""") == 0


def test_household_id_numbers_are_valid(db_demo):
    ids = db_demo.execute(text("""SELECT h.head_id_number FROM households h JOIN buildings b ON b.id = h.building_id
                                  WHERE b.origin = 'demo'""")).scalars().all()
    assert len(ids) > 8000
    assert all(is_valid_id_number(i) for i in ids)


def test_street_network_is_one_component(db_demo):
    components = scalar(db_demo, """
        SELECT count(DISTINCT component) FROM pgr_connectedComponents(
            'SELECT id, source, target, cost, reverse_cost FROM walk_edges')""")
    assert components == 1


def test_edges_are_split_at_every_junction(db_demo):
    assert scalar(db_demo, """
        SELECT count(*) FROM street_edges a JOIN street_edges b ON a.id < b.id AND ST_Crosses(a.geom, b.geom)
        WHERE a.origin = 'demo' AND b.origin = 'demo'""") == 0
    assert scalar(db_demo, """
        SELECT count(*) FROM street_nodes n JOIN street_edges e
          ON ST_DWithin(n.location, e.geom, 1e-7) AND n.id NOT IN (e.source, e.target)
        WHERE n.origin = 'demo' AND e.origin = 'demo'""") == 0
    assert scalar(db_demo, """
        SELECT max(abs(length_m - ST_Length(ST_Transform(geom, 4547)))) FROM street_edges
        WHERE origin = 'demo'""") < 0.01


def test_every_residential_building_is_near_a_walkable_node(db_demo):
    assert scalar(db_demo, """
        SELECT count(*) FROM buildings b
        WHERE b.origin = 'demo' AND b.households > 0 AND NOT EXISTS (
            SELECT 1 FROM street_nodes n JOIN walk_edges w ON n.id IN (w.source, w.target)
            WHERE ST_DWithin(n.location, b.footprint, 0.001)
              AND ST_DWithin(ST_Transform(n.location, 4547), ST_Transform(b.footprint, 4547), 60))""") == 0


def test_checkpoints_sit_on_perimeters_at_street_nodes(db_demo):
    assert scalar(db_demo, """
        SELECT count(*) FROM checkpoints c JOIN enclosures e ON e.id = c.enclosure_id
        WHERE e.community_code LIKE :prefix AND (
            NOT ST_DWithin(ST_Transform(c.location, 4547), ST_Transform(ST_ExteriorRing(e.boundary), 4547), 0.01)
         OR NOT EXISTS (SELECT 1 FROM street_nodes n WHERE n.origin = 'demo'
                        AND ST_DWithin(n.location, c.location, 1e-8)))""") == 0
    kinds = dict(db_demo.execute(text("""
        SELECT e.kind, count(*) FROM checkpoints c JOIN enclosures e ON e.id = c.enclosure_id
        WHERE e.community_code LIKE :prefix GROUP BY e.kind"""), PREFIX).all())
    assert set(kinds) == {"estate", "urban_village", "industrial"}
