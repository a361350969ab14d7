"""OGC API – Features: documents, paging, CRS (CRS84, EPSG:4326 lat/lon, CGCS2000), datetime on grids,
queryables and CQL2 filters; bad input → 4xx; and real clients: GDAL's OAPIF driver (ogrinfo, ogr2ogr)
against a live server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
import shapely
from geoalchemy2.shape import from_shape
from shapely.geometry import shape
from sqlalchemy import text

from spatial import cql2
from spatial.store import cases, users
from spatial.store.cql2_sql import compile_filter
from spatial.store.engine import acting_as
from spatial.store.models import Checkpoint, Enclosure, Grid, Household
from tests import factories
from tests.conftest import login

PASSWORD = "correct horse battery"
CGCS2000 = "http://www.opengis.net/def/crs/EPSG/0/4490"
EPSG4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
BUILDINGS = 12


def _seed(sessions) -> dict:
    with sessions.begin() as s:
        west, east = factories.two_grids(s)
        for i in range(BUILDINGS):
            grid = west if i % 2 == 0 else east
            x = (i // 2) * 30 + (0 if grid is west else 200) + 5
            factories.building(s, grid, x, 20 + (i % 3) * 40, number=i + 1, households=10 * (i + 1),
                               residents=25 * (i + 1), use="residential" if i % 3 else "commercial",
                               name=None if i % 4 == 0 else f"{i + 1}号楼")
        b = factories.building(s, west, 100, 150, number=99, households=7)
        s.add(Household(building_id=b.id, room="101", head_name="张三丰", head_id_number="44030419800101123X",
                        head_phone="13812345678"))
        enclosure = Enclosure(name="测试小区", community_code=factories.COMMUNITY,
                              boundary=from_shape(factories.metres_box(0, 0, 150, 150).geoms[0], srid=4326))
        s.add(enclosure)
        s.flush()
        s.add(Checkpoint(enclosure_id=enclosure.id, name="东门", status="staffed", staff_count=2,
                         location=from_shape(factories.metres_box(150, 70, 150.1, 70.1).centroid, srid=4326)))
        lon, lat = factories.metres_box(60, 60, 60.1, 60.1).centroid.coords[0]
        for late in (True, False):
            case = cases.report_case(s, None, category="environment.garbage", lon=lon + (0.001 if late else 0),
                                     lat=lat, description="楼下垃圾三天没清", reporter_name="张三丰",
                                     reporter_phone="13812345678")
            s.execute(text("UPDATE cases SET deadline = now() + CAST(:delta AS interval) WHERE id = :id"),
                      {"delta": "-1 hour" if late else "1 day", "id": case.id})
        users.create_user(s, "planner1", PASSWORD, "planner", scope_code=factories.SUBDISTRICT)
        return {"west": west.id, "west_code": west.code, "east_code": east.code}


@pytest.fixture
def seeded(app_env):
    client, sessions = app_env
    ids = _seed(sessions)
    return client, sessions, ids, login(client, "planner1", PASSWORD)


def test_landing_conformance_and_api_describe_the_service(seeded):
    client, _, _, _ = seeded
    landing = client.get("/ogc").json()
    rels = {link["rel"]: link for link in landing["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= set(rels)
    conformance = client.get("/ogc/conformance").json()["conformsTo"]
    for needed in ("ogcapi-features-1/1.0/conf/core", "ogcapi-features-2/1.0/conf/crs",
                   "ogcapi-features-3/1.0/conf/features-filter", "cql2/1.0/conf/cql2-text",
                   "cql2/1.0/conf/basic-cql2", "cql2/1.0/conf/basic-spatial-functions",
                   "cql2/1.0/conf/advanced-comparison-operators"):
        assert any(uri.endswith(needed) for uri in conformance), needed
    api = client.get("/ogc/api")
    assert api.headers["content-type"].startswith("application/vnd.oai.openapi+json")
    params = api.json()["paths"]["/collections/{collectionId}/items"]["get"]["parameters"]
    filter_lang = next(p for p in params if p["name"] == "filter-lang")
    assert set(filter_lang["schema"]["enum"]) == {"cql2-text", "cql-text"}
    assert api.json()["servers"][0]["url"].endswith("/ogc")


def test_collections_list_every_layer_with_crs_and_extent_and_no_personal_collection(seeded):
    client, _, _, headers = seeded
    assert client.get("/ogc/collections").status_code == 401
    doc = client.get("/ogc/collections", headers=headers).json()
    names = [c["id"] for c in doc["collections"]]
    assert {"grids", "buildings", "enclosures", "checkpoints", "streets", "divisions", "micro_grids",
            "cases", "risk_zones", "places"} == set(names)
    grids = next(c for c in doc["collections"] if c["id"] == "grids")
    assert CGCS2000 in grids["crs"] and CRS84 in grids["crs"] and grids["storageCrs"] == CRS84
    west, south, east, north = grids["extent"]["spatial"]["bbox"][0]
    assert 114.0 < west < east < 114.2 and 22.5 < south < north < 22.6
    assert grids["extent"]["temporal"]["interval"][0][0] is not None
    text = json.dumps(doc, ensure_ascii=False)
    assert "head_name" not in text and "households" not in names


def test_items_page_with_next_links_until_every_feature_was_seen(seeded):
    client, _, _, headers = seeded
    url, seen, pages = "/ogc/collections/buildings/items?limit=5", [], 0
    while url:
        response = client.get(url, headers=headers)
        assert response.headers["content-type"] == "application/geo+json"
        body = response.json()
        assert body["numberMatched"] == BUILDINGS + 1 and body["numberReturned"] == len(body["features"])
        seen += [f["id"] for f in body["features"]]
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
        pages += 1
    assert pages == 3 and len(seen) == len(set(seen)) == BUILDINGS + 1
    for feature in client.get("/ogc/collections/buildings/items?limit=100", headers=headers).json()["features"]:
        assert not {"head_name", "head_id_number", "head_phone", "tags"} & set(feature["properties"])


def test_cases_carry_no_personal_data_and_filter_on_the_overdue_flag(seeded):
    client, _, ids, headers = seeded
    answer = client.get("/ogc/collections/cases/items", headers=headers)
    assert answer.status_code == 200, answer.text
    features = answer.json()["features"]
    assert len(features) == 2 and features[0]["geometry"]["type"] == "Point"
    assert set(features[0]["properties"]) == {"id", "category_code", "category", "state", "state_label", "priority",
                                              "open", "overdue", "grid_code", "community_code", "reported_at"}
    for value in ("张", "138", "楼下垃圾", "reporter", "tracking_code", "assignee"):
        assert value not in answer.text
    assert [f["properties"]["overdue"] for f in features] == [True, False]
    assert {f["properties"]["grid_code"] for f in features} == {ids["west_code"]}
    late = client.get("/ogc/collections/cases/items", params={"filter": "overdue = true AND open = true"},
                      headers=headers).json()
    assert [f["id"] for f in late["features"]] == [features[0]["id"]]
    props = client.get("/ogc/collections/cases/queryables", headers=headers).json()["properties"]
    assert props["overdue"]["type"] == "boolean" and props["reported_at"]["format"] == "date-time"
    layer = client.get("/api/layers/cases?open=true", headers=headers)
    assert layer.status_code == 200 and len(layer.json()["features"]) == 2 and "张" not in layer.text


def test_bbox_and_crs_follow_the_axis_order_of_each_crs(seeded):
    client, _, ids, headers = seeded
    west_box = factories.metres_box(0, 0, 190, 200)
    x0, y0, x1, y1 = west_box.bounds
    crs84 = client.get(f"/ogc/collections/grids/items?bbox={x0},{y0},{x1},{y1}", headers=headers).json()
    assert [f["id"] for f in crs84["features"]] == [ids["west_code"]]
    latlon = client.get(f"/ogc/collections/grids/items?bbox={y0},{x0},{y1},{x1}&bbox-crs={EPSG4326}&crs={CGCS2000}",
                        headers=headers)
    assert latlon.headers["content-crs"] == f"<{CGCS2000}>"
    feature = latlon.json()["features"][0]
    assert feature["id"] == ids["west_code"]
    lat, lon = feature["geometry"]["coordinates"][0][0][0]
    assert 22.5 < lat < 22.6 and 114.0 < lon < 114.1
    metres = client.get(f"/ogc/collections/grids/items/{ids['west_code']}?crs=http://www.opengis.net/def/crs/EPSG/0/4547",
                        headers=headers).json()
    ring = metres["geometry"]["coordinates"][0][0]
    northing, easting = min(c[0] for c in ring), min(c[1] for c in ring)  # south-west corner, northing first
    assert abs(easting - factories.ORIGIN_X) < 1 and abs(northing - factories.ORIGIN_Y) < 1


def test_single_items_and_404s(seeded):
    client, _, ids, headers = seeded
    item = client.get(f"/ogc/collections/grids/items/{ids['west_code']}", headers=headers)
    assert item.status_code == 200 and item.json()["properties"]["name"] == "西网格"
    assert client.get("/ogc/collections/grids/items/44030409900177", headers=headers).status_code == 404
    assert client.get("/ogc/collections/buildings/items/not-a-number", headers=headers).status_code == 404
    assert client.get("/ogc/collections/nothing/items", headers=headers).status_code == 404


def test_datetime_reads_the_grid_plan_as_of_an_instant(seeded):
    client, sessions, ids, headers = seeded
    before = datetime.now(UTC)
    with sessions.begin() as s, acting_as(s, "planner1", "shrink the west grid"):
        west = s.get(Grid, ids["west"])
        west.boundary = from_shape(factories.metres_box(0, 0, 150, 200), srid=4326)
    now = client.get(f"/ogc/collections/grids/items/{ids['west_code']}", headers=headers).json()
    then = client.get(f"/ogc/collections/grids/items/{ids['west_code']}",
                      params={"datetime": before.isoformat()}, headers=headers).json()
    assert now["properties"]["version"] == 2 and then["properties"]["version"] == 1
    assert shape(then["geometry"]).area > shape(now["geometry"]).area
    old = client.get("/ogc/collections/grids/items", params={"datetime": "2000-01-01"}, headers=headers).json()
    assert old["numberMatched"] == 0


@pytest.mark.parametrize("expression, expected", [
    ("households > 60", {7, 8, 9, 10, 11, 12}),
    ("households >= 60 AND use = 'commercial'", {7, 10}),
    ("use = 'commercial' OR households = 20", {1, 2, 4, 7, 10}),
    ("NOT (households <= 100)", {11, 12}),
    ("name LIKE '1%'", {10, 11, 12}),
    ("name IS NULL", {1, 5, 9}),
    ("households BETWEEN 30 AND 50", {3, 4, 5}),
    ("households NOT IN (10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110)", {12}),
    ('"use" <> \'residential\' AND name IS NOT NULL', {4, 7, 10}),
    ("households > 60 AND S_INTERSECTS(geometry, BBOX({west}))", {7, 9, 11}),
    ("S_DISJOINT(geometry, BBOX({west})) AND households < 50", {2, 4}),
])
def test_cql2_filters_select_what_they_say(seeded, expression, expected):
    client, _, _, headers = seeded
    west = ", ".join(str(v) for v in factories.metres_box(0, 0, 195, 200).bounds)
    expression = expression.replace("{west}", west)
    body = client.get("/ogc/collections/buildings/items", params={"filter": expression, "limit": 100},
                      headers=headers).json()
    numbers = {int(f["properties"]["code"][-5:]) for f in body["features"]} - {99}
    assert numbers == expected, body


def test_spatial_filters_take_polygons_and_a_filter_crs(seeded):
    client, _, ids, headers = seeded
    polygon = factories.metres_box(0, 0, 100, 200).geoms[0]
    wkt = shapely.to_wkt(polygon, rounding_precision=9)
    inside = client.get("/ogc/collections/grids/items", params={"filter": f"S_INTERSECTS(geometry, {wkt})"},
                        headers=headers).json()
    assert [f["id"] for f in inside["features"]] == [ids["west_code"]]
    swapped = shapely.transform(polygon, lambda xy: xy[:, ::-1])
    latlon = client.get("/ogc/collections/grids/items", headers=headers, params={
        "filter": f"S_WITHIN(geometry, {shapely.to_wkt(swapped, rounding_precision=9)})", "filter-crs": EPSG4326})
    assert latlon.json()["numberMatched"] == 0
    cql_text = client.get("/ogc/collections/grids/items", headers=headers,
                          params={"filter": f"code = '{ids['east_code']}'", "filter-lang": "cql-text"}).json()
    assert [f["id"] for f in cql_text["features"]] == [ids["east_code"]]


def test_queryables_list_the_columns_with_types(seeded):
    client, _, _, headers = seeded
    doc = client.get("/ogc/collections/buildings/queryables", headers={**headers, "Accept": "application/schema+json"})
    assert doc.headers["content-type"] == "application/schema+json"
    props = doc.json()["properties"]
    assert props["households"]["type"] == "integer" and props["name"]["type"] == "string"
    assert props["urban_village"]["type"] == "boolean" and "geometry" in props
    assert not {"head_name", "head_phone"} & set(props)
    schema = client.get("/ogc/collections/grids/schema", headers=headers).json()
    assert schema["properties"]["properties"]["properties"]["area_m2"]["type"] == "number"


@pytest.mark.parametrize("params, words", [
    ({"bbox": "1,2,3"}, "bbox must be 4"),
    ({"bbox": "a,b,c,d"}, "bbox must be 4"),
    ({"bbox": "114.1,22.5,114.0,22.6"}, "reversed"),
    ({"bbox": "22.5,114.0,22.6,114.1"}, "outside longitude"),
    ({"bbox": "114.0,22.5,114.1,22.6", "bbox-crs": EPSG4326}, "latitude first"),
    ({"filter": "households >"}, "not valid CQL2"),
    ({"filter": "households > 'many'"}, "does not fit"),
    ({"filter": "head_name = 'x'"}, "not a queryable"),
    ({"filter": "households = 1; DROP TABLE buildings"}, "unexpected character"),
    ({"filter": "S_INTERSECTS(geometry, POLYGON((0 0, 1 1)))"}, "POLYGON"),
    ({"filter": "households = 99999999999999999999999"}, "does not fit"),
    ({"filter": "(" * 200 + "households = 1" + ")" * 200}, "deeper"),
    ({"filter-lang": "cql2-json", "filter": "{}"}, ""),
    ({"filter": "households = name"}, "compares a integer with a string"),
    ({"filter": "1 = 'one'"}, "does not fit"),
    ({"filter": "households IN (1, name)"}, "compares"),
    ({"filter": "households BETWEEN 1 AND 'z'"}, "does not fit"),
    ({"offset": "100000000000000000000000"}, ""),
    ({"datetime": "2026-01-01"}, "has no history"),
])
def test_bad_parameters_are_400_with_a_message(seeded, params, words):
    client, _, _, headers = seeded
    response = client.get("/ogc/collections/buildings/items", params=params, headers=headers)
    assert response.status_code in (400, 422), response.text
    assert words in response.text


@pytest.mark.parametrize("url, status", [
    ("/ogc/collections/buildings/items?limit=1000000", 422),
    ("/ogc/collections/buildings/items?limit=0", 422),
    ("/ogc/collections/buildings/items?crs=EPSG:999999", 400),
    ("/ogc/collections/grids/items?datetime=2026-01-01/2026-02-01", 400),
    ("/ogc/collections/grids/items?datetime=yesterday", 400),
])
def test_out_of_range_values_are_4xx(seeded, url, status):
    client, _, _, headers = seeded
    response = client.get(url, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["detail"]


def test_filters_compile_to_bound_parameters_only():
    node = cql2.parse("name = 'x'' OR 1=1 --' AND households IN (1, 2)")
    sql, params = compile_filter(node, {"name": ("t.name", "string"), "households": ("t.households", "integer")},
                                 "t.footprint")
    assert "x'" not in sql and "OR 1=1" not in sql
    assert params == {"cql0": "x' OR 1=1 --", "cql1": 1, "cql2": 2}


# -- real clients ----------------------------------------------------------------------------------------
needs_gdal = pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="gdal-bin is not installed")


def _gdal(*args: str, token: str, debug: bool = False) -> subprocess.CompletedProcess:
    """Run a GDAL utility sending the token as GDAL does for any server (GDAL_HTTP_HEADERS); with ``debug``
    stderr lists every URL fetched."""
    env = {**os.environ, "GDAL_HTTP_HEADERS": f"Authorization: Bearer {token}", "CPL_DEBUG": "ON" if debug else "OFF",
           "GDAL_HTTP_TIMEOUT": "30"}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)


@needs_gdal
def test_gdal_lists_and_pages_through_every_collection_and_filters(live_server, tmp_path):
    import httpx

    base, sessions = live_server
    _seed(sessions)
    token = httpx.post(f"{base}/api/auth/token", data={"username": "planner1", "password": PASSWORD}).json()
    token = token["access_token"]
    listing = _gdal("ogrinfo", "-ro", "-q", f"OAPIF:{base}/ogc", token=token)
    assert listing.returncode == 0, listing.stderr
    for name in ("grids", "buildings", "enclosures", "checkpoints", "streets", "divisions", "micro_grids", "cases"):
        assert name in listing.stdout
    refused = _gdal("ogrinfo", "-ro", "-q", f"OAPIF:{base}/ogc", token="forged")
    assert refused.returncode != 0

    out = tmp_path / "all.gpkg"
    copied = _gdal("ogr2ogr", "-f", "GPKG", str(out), f"OAPIF:{base}/ogc", "-oo", "PAGE_SIZE=4", token=token)
    assert copied.returncode == 0, copied.stderr
    import pyogrio
    counts = {name: pyogrio.read_info(out, layer=name)["features"] for name, _ in pyogrio.list_layers(out)}
    assert counts["buildings"] == BUILDINGS + 1 and counts["grids"] == 2 and counts["checkpoints"] == 1
    assert counts["enclosures"] == 1 and counts["cases"] == 2

    filtered = _gdal("ogrinfo", "-ro", "-al", "-q", f"OAPIF:{base}/ogc", "buildings",
                     "-where", "households > 100", token=token, debug=True)
    assert filtered.returncode == 0, filtered.stderr
    assert "filter=households%20%3E%20100" in filtered.stderr  # sent to the server as CQL, not filtered locally
    assert filtered.stdout.count("OGRFeature(buildings)") == 2
    box = factories.metres_box(0, 0, 100, 200).bounds
    spatial = _gdal("ogrinfo", "-ro", "-al", "-q", f"OAPIF:{base}/ogc", "grids",
                    "-spat", *(str(v) for v in box), token=token)
    assert spatial.returncode == 0, spatial.stderr
    assert spatial.stdout.count("OGRFeature(grids)") == 1
    direct = _gdal("ogrinfo", "-ro", "-al", "-q",
                   f"OAPIF:{base}/ogc/collections/buildings?filter=use%3D%27commercial%27%20AND%20households%3E60",
                   token=token)
    assert direct.returncode == 0, direct.stderr
    assert direct.stdout.count("OGRFeature(buildings)") == 2
