"""Street networks from plain line layers (no node ids): noding, levels, classes, one-way, CRS, report, routing.

Real data: the OSM edges of ../shared/data/futian_shatou.gpkg (© OpenStreetMap contributors, ODbL) rewritten in
tmp_path as a plain line layer (geometry + highway/oneway/bridge/tunnel, no u/v/key, no nodes layer). Synthetic
layers (Geofabrik-style shapefile, Chinese-field shapefile in GBK, GCJ-02 GeoPackage) are built in tmp_path.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from shapely.geometry import LineString, MultiLineString, Point
from sqlalchemy import text

from spatial.errors import InvalidInput
from spatial.geometry.crs import wgs84_to_gcj02
from spatial.io import import_streets
from spatial.store import network as net

LON0, LAT0 = 114.03, 22.53
M_LON = 111_320 * math.cos(math.radians(LAT0))  # metres per degree, near Shatou
M_LAT = 110_574


def at(x: float, y: float) -> tuple[float, float]:
    """(lon, lat) of a point x metres east and y metres north of (LON0, LAT0)."""
    return LON0 + x / M_LON, LAT0 + y / M_LAT


def line(*points: tuple[float, float]) -> LineString:
    return LineString([at(x, y) for x, y in points])


def write(path: Path, geoms: list, as_layer: str = "roads", crs: str | None = "EPSG:4326", **columns) -> Path:
    """A layer of ``geoms`` (EPSG:4326 unless ``crs``) with ``columns``; Shapefiles are written in GBK."""
    frame = gpd.GeoDataFrame(columns, geometry=list(geoms), crs=crs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        options = {"encoding": "GBK"} if path.suffix == ".shp" else {}
        pyogrio.write_dataframe(frame, path, layer=as_layer, **options)
    return path


def count(db, table: str, origin: str) -> int:
    return db.execute(text(f"SELECT count(*) FROM {table} WHERE origin = :o"), {"o": origin}).scalar_one()


def route_m(db, network: str, a: tuple[float, float], b: tuple[float, float]) -> float:
    graph = net.build_graph(db, network, [a, b], margin_m=3000)
    return net.legs(db, graph, [(0, 1)])[0].length_m


def nodes_near(db, origin: str, point: tuple[float, float], within_m: float = 1.0) -> int:
    return db.execute(text(
        "SELECT count(*) FROM street_nodes WHERE origin = :o AND "
        "ST_DWithin(location::geography, ST_SetSRID(ST_Point(:x, :y), 4326)::geography, :d)"),
        {"o": origin, "x": point[0], "y": point[1], "d": within_m}).scalar_one()


# -- noding ------------------------------------------------------------------------------------------------------
def test_crossing_and_touching_lines_make_nodes_near_misses_snap(db, tmp_path):
    path = write(tmp_path / "x.gpkg", [
        line((0, 0), (200, 0)),           # A: west-east
        line((100, -100), (100, 100)),    # B: crosses A at (100, 0)
        line((150, 80), (150, 0.3)),      # C: stops 0.3 m short of A: snapped onto it
        line((50, 80), (50, 2)),          # D: 2 m short of A: beyond the 0.5 m tolerance, stays apart
        line((200, 0), (300, 0.2)),       # E: starts at A's end
    ], highway=["residential"] * 5)
    report = import_streets(db, path)
    origin = report.origin
    assert origin == "x:roads" and report.layers == ("roads",)
    assert nodes_near(db, origin, at(100, 0), 0.01) == 1       # the crossing
    assert nodes_near(db, origin, at(150, 0), 0.01) == 1       # the snapped T-junction, on A
    assert nodes_near(db, origin, at(50, 0), 1.5) == 0         # no node on A below D
    # A cut at 100 and 150 (3 pieces), B at 0 (2), C, D, E whole: 8 edges, every one two-way
    edges = report.tallies["street_edges"]
    assert edges.inserted == 8 and count(db, "street_edges", origin) == 8
    assert db.execute(text("SELECT bool_and(NOT oneway) AND bool_and(abs(length_m - ST_Length(geom::geography)) < 0.01)"
                           " FROM street_edges WHERE origin = :o"), {"o": origin}).scalar_one()
    # routes through the crossing and the snapped junction, lengths in metres
    assert route_m(db, "walk", at(100, -100), at(0, 0)) == pytest.approx(200, rel=0.01)
    assert route_m(db, "drive", at(150, 80), at(300, 0.2)) == pytest.approx(80 + 150, rel=0.01)
    pieces = report.connectivity
    assert pieces.pieces == 2                                    # D is on its own
    assert pieces.total_m == pytest.approx(200 + 200 + 79.7 + 78 + 100, rel=0.01)
    assert pieces.largest_share == pytest.approx(1 - 78 / pieces.total_m, rel=0.01)
    assert "network: 2 connected pieces; the longest holds 8" in report.summary()

    again = import_streets(db, path)
    assert again.inserted == 0 and again.tallies["street_edges"].already_present == 8
    assert count(db, "street_nodes", origin) == report.tallies["street_nodes"].inserted


def test_a_bridge_crossing_is_no_junction_chinese_fields(db, tmp_path):
    """A Chinese district layer (Shapefile in GBK): 道路等级 classes, 桥梁 and 隧道 flags, 道路名称, 单行."""
    path = write(tmp_path / "道路中心线.shp", [
        line((0, 0), (200, 0)),            # ground 主干道
        line((100, -100), (100, 100)),     # 桥梁 over it; its north end lies on the next road
        line((0, 100), (200, 100)),        # ground 次干道, cut where the bridge ends on it
        line((0, -100), (200, -100)),      # 快速路 in a 隧道 below the bridge's south end
        line((150, 0), (150, 100)),        # 人行道 joining the two ground roads
    ], crs="EPSG:4326", 道路名称=["深南大道", "天桥", "滨河路", "隧道路", "人行道"],
        道路等级=["城市主干道", "主干道", "次干道", "快速路", "人行道"], 桥梁=["否", "是", "否", "否", "否"],
        隧道=["否", "否", "否", "是", "否"], 单行=["否", "否", "否", "是", "否"])
    report = import_streets(db, path)
    origin = report.origin
    assert nodes_near(db, origin, at(100, 0), 5) == 0          # the bridge passes over: no node
    assert nodes_near(db, origin, at(100, 100), 0.01) == 1     # its end joins the road it meets
    # the bridge's south end touches the tunnel's line (another level): an end always joins
    assert nodes_near(db, origin, at(100, -100), 0.01) == 1
    rows = dict(db.execute(text("SELECT name, array_agg(DISTINCT highway || ':' || foot || ':' || car || ':' || oneway)"
                                " FROM street_edges WHERE origin = :o GROUP BY name"), {"o": origin}).all())
    assert rows["深南大道"] == ["primary:true:true:false"]
    assert rows["滨河路"] == ["secondary:true:true:false"]
    assert rows["隧道路"] == ["trunk:false:true:true"]
    assert rows["人行道"] == ["footway:true:false:false"]
    # walking from the bridge's middle to the primary road below it goes round by its north end and the footway
    # (the tunnel road by its south end is closed to walkers)
    walked = route_m(db, "walk", at(100, 10), at(90, -1))
    assert walked == pytest.approx(90 + 50 + 100 + 60 + 1, rel=0.02)
    assert report.connectivity.pieces == 1 and report.connectivity.largest_share == pytest.approx(1.0)
    # 是/否 in 单行: the tunnel road is one-way west → east
    assert route_m(db, "drive", at(10, -100), at(190, -100)) == pytest.approx(180, rel=0.01)
    with pytest.raises(InvalidInput, match="no route"):
        route_m(db, "drive", at(190, -100), at(10, -100))


def test_geofabrik_fclass_and_oneway_codes(db, tmp_path):
    """Geofabrik roads shapefile: fclass, oneway F/T/B, bridge/tunnel T/F, layer 0 when untagged."""
    path = write(tmp_path / "gis_osm_roads_free_1.shp", [
        line((0, 0), (300, 0)),            # F: one-way along the line (east)
        line((0, 50), (300, 50)),          # T: one-way against it (west)
        line((0, 100), (300, 100)),        # B: both ways
        line((150, -50), (150, 150)),      # footway crossing all three (ground level)
        line((50, -50), (50, 150)),        # motorway on a bridge (layer 0 written, bridge T): no junctions
    ], osm_id=["11", "12", "13", "14", "15"], fclass=["secondary", "tertiary", "residential", "footway", "motorway"],
        oneway=["F", "T", "B", "B", "F"], bridge=["F", "F", "F", "F", "T"], tunnel=["F"] * 5, layer=[0] * 5)
    report = import_streets(db, path)
    origin = report.origin
    assert nodes_near(db, origin, at(150, 50), 0.01) == 1 and nodes_near(db, origin, at(50, 50), 5) == 0
    flags = dict(db.execute(text("SELECT osm_way_id, bool_and(oneway) FROM street_edges WHERE origin = :o GROUP BY 1"),
                            {"o": origin}).all())
    assert flags == {11: True, 12: True, 13: False, 14: False, 15: True}
    # drawn west → east, the T line is stored east → west
    assert db.execute(text("SELECT bool_and(ST_X(ST_StartPoint(geom)) > ST_X(ST_EndPoint(geom))) FROM street_edges "
                           "WHERE origin = :o AND osm_way_id = 12"), {"o": origin}).scalar_one()
    assert route_m(db, "drive", at(10, 0), at(140, 0)) == pytest.approx(130, rel=0.01)
    assert route_m(db, "drive", at(140, 50), at(10, 50)) == pytest.approx(130, rel=0.01)
    for a, b in ((at(140, 0), at(10, 0)), (at(10, 50), at(140, 50))):
        with pytest.raises(InvalidInput, match="no route"):
            route_m(db, "drive", a, b)
        assert route_m(db, "walk", a, b) == pytest.approx(130, rel=0.01)  # walking ignores one-way rules
    assert route_m(db, "drive", at(140, 100), at(10, 100)) == pytest.approx(130, rel=0.01)
    no_car = db.execute(text("SELECT highway FROM street_edges WHERE origin = :o AND NOT car"), {"o": origin}).scalars()
    assert set(no_car) == {"footway"}


# -- real data ---------------------------------------------------------------------------------------------------
@pytest.fixture
def shatou(shared_data: Path) -> Path:
    return shared_data / "futian_shatou.gpkg"


@pytest.fixture
def shatou_lines(shatou: Path, tmp_path: Path) -> Path:
    """The Shatou OSM edges as a plain line layer: one line per street (the reverse twin of each two-way edge
    dropped), highway/oneway/bridge/tunnel/name kept, no u/v/key and no nodes layer."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        edges = pyogrio.read_dataframe(shatou, layer="streets")
    one = (edges.oneway == "True") | (edges.u < edges.v) | (edges.u == edges.v)
    lines = edges.loc[one, ["highway", "oneway", "bridge", "tunnel", "name", "geometry"]]
    path = tmp_path / "shatou_lines.gpkg"
    pyogrio.write_dataframe(lines, path, layer="roads")
    return path


def _main_points(db, n: int, seed: int = 7) -> list[tuple[float, float]]:
    """n street-node positions spread over Shatou, of the walking network's largest piece."""
    rows = db.execute(text("""
        WITH c AS (SELECT node, component FROM pgr_connectedComponents(
            'SELECT id, source, target, cost, reverse_cost FROM walk_edges'))
        SELECT ST_X(location), ST_Y(location) FROM street_nodes JOIN c ON c.node = id
        WHERE c.component = (SELECT component FROM c GROUP BY 1 ORDER BY count(*) DESC LIMIT 1) ORDER BY id""")).all()
    rng = np.random.default_rng(seed)
    return [tuple(rows[i]) for i in rng.choice(len(rows), n, replace=False)]


@pytest.mark.shared_data
def test_shatou_lines_route_like_the_osm_graph(db, shatou, shatou_lines):
    with db.begin_nested() as graph_import:
        graph = import_streets(db, shatou)
        points = _main_points(db, 16)
        pairs = list(zip(points[::2], points[1::2]))
        expected = {}
        for network in ("walk", "drive"):
            for a, b in pairs:
                try:
                    expected[network, a, b] = route_m(db, network, a, b)
                except InvalidInput:  # no drivable way (a one-way dead end, a lane inside a gated estate)
                    assert network == "drive"
        graph_import.rollback()
    assert graph.tallies["street_edges"].inserted > 2500 and len(expected) >= 12
    started = time.perf_counter()
    report = import_streets(db, shatou_lines)
    elapsed = time.perf_counter() - started
    print(f"\nShatou plain lines: {report.tallies['street_lines'].read} lines → "
          f"{report.tallies['street_edges'].inserted} edges, {report.tallies['street_nodes'].inserted} nodes "
          f"in {elapsed:.2f} s; {report.connectivity.summary()}")
    assert report.tallies["street_lines"].read == 2597 and not report.tallies["street_lines"].skipped
    assert 2500 < report.tallies["street_edges"].inserted < 2900
    assert report.connectivity.pieces <= 5 and report.connectivity.largest_share > 0.99
    assert report.connectivity.total_m == pytest.approx(db.execute(text(
        "SELECT sum(length_m) FROM street_edges WHERE origin = :o"), {"o": report.origin}).scalar_one())
    worst = 0.0
    for (network, a, b), want in expected.items():
        got = route_m(db, network, a, b)
        assert got == pytest.approx(want, rel=0.03, abs=20), (network, a, b)
        worst = max(worst, abs(got - want) / want)
    print(f"{len(expected)} routes; largest difference from the OSM graph's {100 * worst:.2f} %")
    assert elapsed < 30
    again = import_streets(db, shatou_lines)
    assert again.inserted == 0 and again.already_present == report.inserted


# -- coordinates -------------------------------------------------------------------------------------------------
def test_gcj02_lines(db, tmp_path):
    true = [line((0, 0), (200, 0)), line((100, -100), (100, 100))]
    shifted = [shapely.transform(g, lambda c: np.column_stack(wgs84_to_gcj02(c[:, 0], c[:, 1]))) for g in true]
    path = write(tmp_path / "amap.gpkg", shifted)
    report = import_streets(db, path, crs="GCJ-02")
    assert any("GCJ-02" in note for note in report.notes)
    assert nodes_near(db, report.origin, at(100, 0), 0.05) == 1      # the crossing where it really is
    assert route_m(db, "walk", at(0, 0), at(100, 100)) == pytest.approx(200, rel=0.01)
    plain = import_streets(db, path, origin="amap:as-declared")        # read as WGS 84: hundreds of metres off
    assert plain.tallies["street_nodes"].inserted == 5 and nodes_near(db, "amap:as-declared", at(100, 0), 100) == 0


def test_projected_input_and_snap_tolerance(db, tmp_path):
    """EPSG:4547 (CGCS2000 Gauss-Kruger, metres); snap_m is metres: 0.3 m gap joins at 0.5 m, not at 0.1 m."""
    import pyproj
    to_gk = pyproj.Transformer.from_crs(4326, 4547, always_xy=True)
    x0, y0 = to_gk.transform(LON0, LAT0)
    gk = [LineString([(x0, y0), (x0 + 200, y0)]), LineString([(x0 + 100, y0 + 100), (x0 + 100, y0 + 0.3)])]
    path = write(tmp_path / "gk.shp", gk, crs="EPSG:4547")
    joined = import_streets(db, path)
    assert joined.connectivity.pieces == 1 and joined.tallies["street_edges"].inserted == 3
    apart = import_streets(db, path, origin="gk:tight", snap_m=0.1)
    assert apart.connectivity.pieces == 2 and apart.tallies["street_edges"].inserted == 2
    assert apart.connectivity.total_m == pytest.approx(299.7, abs=0.2)
    with pytest.raises(InvalidInput, match="snap_m must be a number of metres from 0 to 10"):
        import_streets(db, path, snap_m=50)


# -- bad input ---------------------------------------------------------------------------------------------------
def test_lines_skipped_are_reported(db, tmp_path):
    path = tmp_path / "mixed.geojson"
    features = [(line((0, 0), (100, 0)).__geo_interface__, {"highway": "service"}),
                (Point(at(5, 5)).__geo_interface__, {"highway": "service"}),
                (None, {"highway": "service"}),
                ({"type": "LineString", "coordinates": [at(50, 50), at(50, 50)]}, {"highway": "service"}),
                (line((50, 0), (50, 100)).__geo_interface__, {"highway": "made-up"}),
                (MultiLineString([line((0, 20), (100, 20)), line((200, 20), (300, 20))]).__geo_interface__,
                 {"highway": "footway"})]
    path.write_text(json.dumps({"type": "FeatureCollection", "name": "roads", "features": [
        {"type": "Feature", "geometry": g, "properties": p} for g, p in features]}))
    report = import_streets(db, path)
    lines = report.tallies["street_lines"]
    assert lines.read == 6 and dict(lines.skipped) == {"not a line": 1, "empty geometry": 1, "no length": 1}
    # the vertical line's end cuts the first; it is cut by the first part of the MultiLineString, which is cut too
    assert report.tallies["street_edges"].inserted == 2 + 2 + 2 + 1
    assert nodes_near(db, report.origin, at(50, 20), 0.01) == 1
    assert "street_lines: 6 read, 3 skipped" in report.summary()
    assert any("feature 1" in f and "not a line (Point)" in r for f, r in report.issues)
    assert any("1 lines of an unrecognised 'highway' value" in note for note in report.notes), report.notes


@pytest.mark.shared_data
def test_points_layer_refused(db, shatou):
    with pytest.raises(InvalidInput, match=r"layer 'street_nodes' holds Point geometries, not lines; a street layer "
                                           "needs LineString or MultiLineString"):
        import_streets(db, shatou, layer="street_nodes")
    with pytest.raises(InvalidInput, match="holds Polygon geometries, not lines"):
        import_streets(db, shatou, layer="buildings")


def test_empty_and_geometryless_layers_refused(db, tmp_path):
    empty = write(tmp_path / "empty.gpkg", [], highway=[])
    with pytest.raises(InvalidInput, match="empty.gpkg, layer 'roads' has no features; a street layer needs"):
        import_streets(db, empty)
    bare = tmp_path / "bare.geojson"
    bare.write_text(json.dumps({"type": "FeatureCollection", "name": "roads", "features": [
        {"type": "Feature", "geometry": None, "properties": {"highway": "residential"}}] * 3}))
    with pytest.raises(InvalidInput, match="layer 'roads' has no geometry"):
        import_streets(db, bare)
    far = write(tmp_path / "far.gpkg", [LineString([(2.35, 48.85), (2.36, 48.86)])])
    with pytest.raises(InvalidInput, match="outside the service extent"):
        import_streets(db, far)


# -- command line ------------------------------------------------------------------------------------------------
@pytest.mark.shared_data
def test_command_line(fresh_db_url, tmp_path, shatou):
    from click.testing import CliRunner

    from gridgov.cli import main

    env = {"GRIDGOV_DATABASE_URL": fresh_db_url, "GRIDGOV_DATA_DIR": str(tmp_path)}
    path = write(tmp_path / "roads.gpkg", [line((0, 0), (200, 0)), line((100, -100), (100, 100))],
                 as_layer="centrelines", fclass=["primary", "footway"])
    done = CliRunner().invoke(main, ["import", "streets", str(path), "--layer", "centrelines", "--snap-m", "0.2"],
                              env=env)
    assert done.exit_code == 0, done.output
    assert "street_edges: 4 read, 4 inserted" in done.output and "network: 1 connected piece" in done.output
    refused = CliRunner().invoke(main, ["import", "streets", str(shatou), "--layer", "street_nodes"], env=env)
    assert refused.exit_code != 0 and "holds Point geometries, not lines" in refused.output
