"""Vector tiles: decoded with mapbox-vector-tile, checked for ids, attributes, scope and the absence of
personal data; the cache and its invalidation by area; TileJSON and the MapLibre style; bad input → 4xx."""

from __future__ import annotations

import mapbox_vector_tile
import pytest
import shapely
from geoalchemy2.shape import from_shape
from sqlalchemy import text

from spatial.access import Principal
from spatial.errors import InvalidInput
from spatial.store import users
from spatial.store.engine import acting_as
from spatial.store.layers import LAYERS
from spatial.store.models import Building, Grid, Household
from tests import factories
from tests.conftest import login
from tiles import TileCache, TileService, invalidate
from tiles.grid import Tile, tile_range
from tiles.sql import layer_sql, render, tile_layers

PASSWORD = "correct horse battery"
PERSONAL = ("head_name", "head_id_number", "head_phone", "tags")
NAME, ID_NUMBER, PHONE = "张三丰", "44030419800101123X", "13812345678"


def tile_at(z: int, x_m: float, y_m: float) -> Tile:
    """The tile at zoom z containing the point x_m, y_m metres from the factories' origin."""
    point = factories.metres_box(x_m, y_m, x_m + 0.1, y_m + 0.1).centroid
    x0, y0, _, _ = tile_range((point.x, point.y, point.x, point.y), z)
    return Tile(z, x0, y0)


def decode(response) -> dict:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    return mapbox_vector_tile.decode(response.content)


@pytest.fixture
def seeded(app_env):
    client, sessions = app_env
    with sessions.begin() as s:
        west, east = factories.two_grids(s)
        b1 = factories.building(s, west, 20, 20, number=1, households=120, residents=300, name="一号楼")
        b2 = factories.building(s, east, 220, 20, number=1, households=80, residents=200)
        s.add_all([Household(building_id=b1.id, room="101", residents=3, head_name=NAME, head_id_number=ID_NUMBER,
                             head_phone=PHONE, tags=["elderly_alone"]),
                   Household(building_id=b1.id, room="102", residents=2, head_name="李四"),
                   Household(building_id=b2.id, room="201", residents=4, head_name="王五")])
        users.create_user(s, "admin1", PASSWORD, "admin")
        users.create_user(s, "worker1", PASSWORD, "grid_worker", grid_codes=(west.code,))
        users.create_user(s, "planner1", PASSWORD, "planner", scope_code=factories.SUBDISTRICT)
        users.create_user(s, "stranger", PASSWORD, "viewer", scope_code=factories.SUBDISTRICT)
        users.create_user(s, "lost", PASSWORD, "inspector")
        ids = {"west": west.id, "east": east.id, "west_code": west.code, "b1": b1.id, "b2": b2.id}
    return client, sessions, ids


def test_building_tile_carries_ids_and_attributes_and_no_personal_field(seeded):
    client, _, ids = seeded
    headers = login(client, "planner1", PASSWORD)
    t = tile_at(16, 100, 100)
    layer = decode(client.get(f"/tiles/buildings/{t.z}/{t.x}/{t.y}.mvt", headers=headers))["buildings"]
    by_id = {f["id"]: f["properties"] for f in layer["features"]}
    assert set(by_id) == {ids["b1"], ids["b2"]}
    assert by_id[ids["b1"]]["code"] == ids["west_code"] + "00001"
    assert by_id[ids["b1"]]["households"] == 120 and by_id[ids["b1"]]["name"] == "一号楼"
    assert all(not set(props) & set(PERSONAL) for props in by_id.values())


def test_overview_zooms_carry_fewer_attributes_and_drop_invisible_buildings(seeded):
    client, sessions, ids = seeded
    headers = login(client, "planner1", PASSWORD)
    t = tile_at(14, 100, 100)
    layer = decode(client.get(f"/tiles/buildings/{t.z}/{t.x}/{t.y}.mvt", headers=headers))["buildings"]
    assert {f["id"] for f in layer["features"]} == {ids["b1"], ids["b2"]}
    assert all(set(f["properties"]) <= {"use", "levels"} for f in layer["features"])
    with sessions.begin() as s:  # a 5 m kiosk: under a pixel (18 m) at zoom 12, drawn at zoom 16
        kiosk = Building(footprint=factories.db_box(100, 100, 105, 105))
        s.add(kiosk)
        s.flush()
        kiosk_id = kiosk.id
    t12, t16 = tile_at(12, 100, 100), tile_at(16, 100, 100)
    z12 = decode(client.get(f"/tiles/buildings/12/{t12.x}/{t12.y}.mvt", headers=headers))["buildings"]
    z16 = decode(client.get(f"/tiles/buildings/16/{t16.x}/{t16.y}.mvt", headers=headers))["buildings"]
    assert {f["id"] for f in z12["features"]} == {ids["b1"], ids["b2"]}
    assert kiosk_id in {f["id"] for f in z16["features"]}


def test_grid_tile_ids_are_the_grid_codes(seeded):
    client, _, ids = seeded
    headers = login(client, "planner1", PASSWORD)
    t = tile_at(15, 200, 100)
    layer = decode(client.get(f"/tiles/grids/{t.z}/{t.x}/{t.y}.mvt", headers=headers))["grids"]
    assert {f["id"] for f in layer["features"]} == {int(ids["west_code"]), int(ids["west_code"]) + 1}
    west = next(f for f in layer["features"] if f["id"] == int(ids["west_code"]))
    assert west["properties"]["households"] == 120 and west["properties"]["name"] == "西网格"


def test_household_counts_follow_the_callers_scope_and_hold_no_personal_data(seeded):
    client, _, ids = seeded
    t = tile_at(16, 100, 100)
    url = f"/tiles/households/{t.z}/{t.x}/{t.y}.mvt"
    raw = client.get(url, headers=login(client, "admin1", PASSWORD))
    for value in (NAME, ID_NUMBER, PHONE, "elderly_alone", "李四"):  # httpx has un-gzipped the body
        assert value.encode() not in raw.content
    admin = {f["id"]: f["properties"] for f in decode(raw)["households"]["features"]}
    assert admin == {ids["b1"]: {"building_code": ids["west_code"] + "00001", "households": 2, "residents": 5},
                     ids["b2"]: {"building_code": ids["west_code"][:-1] + "200001", "households": 1, "residents": 4}}
    worker = decode(client.get(url, headers=login(client, "worker1", PASSWORD)))["households"]["features"]
    assert [f["id"] for f in worker] == [ids["b1"]]
    planner = decode(client.get(url, headers=login(client, "planner1", PASSWORD)))["households"]["features"]
    assert len(planner) == 2
    refused = client.get(url, headers=login(client, "stranger", PASSWORD))
    assert refused.status_code == 403 and "viewers" in refused.json()["detail"]
    unscoped = client.get(url, headers=login(client, "lost", PASSWORD))
    assert unscoped.status_code == 403 and "scope" in unscoped.json()["detail"]


def test_case_tiles_carry_no_personal_data_and_their_overdue_flag_follows_the_clock(seeded, monkeypatch):
    """Cases are drawn with what, where and how urgent only; ``overdue`` is computed when the tile is rendered,
    and a cached case tile is at most one minute old (``Layer.tile_window_s``)."""
    import tiles.sql
    from spatial.store import cases

    client, sessions, ids = seeded
    headers = login(client, "planner1", PASSWORD)
    lon, lat = factories.metres_box(50, 50, 50.1, 50.1).centroid.coords[0]
    with sessions.begin() as s:
        case = cases.report_case(s, None, category="environment.garbage", lon=lon, lat=lat, description="楼下垃圾三天没清",
                                 reporter_name=NAME, reporter_phone=PHONE, client_addr="10.1.2.3")
        # 4 s: the first tile is rendered before it passes even on a loaded machine (1 s was not enough)
        deadline = s.execute(text("UPDATE cases SET deadline = clock_timestamp() + interval '4 seconds' WHERE id = :id "
                                  "RETURNING deadline"), {"id": case.id}).scalar_one()
    t = tile_at(16, 50, 50)
    url = f"/tiles/cases/{t.z}/{t.x}/{t.y}.mvt"
    first = client.get(url, headers=headers)
    for value in (NAME, "张", PHONE, "楼下垃圾", case.tracking_code, "10.1.2.3"):
        assert value.encode() not in first.content
    [feature] = decode(first)["cases"]["features"]
    assert feature["id"] == case.id
    assert feature["properties"] == {"category_code": "environment.garbage", "category": "垃圾堆放",
                                     "state": "reported", "state_label": "已上报", "priority": "normal",
                                     "open": True, "overdue": False, "grid_code": ids["west_code"]}
    import time as clock

    clock.sleep(max(0.0, deadline.timestamp() - clock.time()) + 0.2)
    again = client.get(url, headers=headers)
    if again.headers["x-tile-cache"] == "hit":  # the same minute: the cached tile, not yet overdue
        assert decode(again)["cases"]["features"][0]["properties"]["overdue"] is False
    later = clock.time() + 61
    monkeypatch.setattr(tiles.sql.time, "time", lambda: later)
    fresh = client.get(url, headers=headers)
    assert fresh.headers["x-tile-cache"] == "miss"
    assert decode(fresh)["cases"]["features"][0]["properties"]["overdue"] is True
    overview = decode(client.get(f"/tiles/cases/13/{t.x >> 3}/{t.y >> 3}.mvt", headers=headers))
    assert set(overview["cases"]["features"][0]["properties"]) == {"category_code", "state", "overdue"}


def test_combined_tile_holds_the_layers_the_caller_may_see(seeded):
    client, _, _ = seeded
    t = tile_at(16, 100, 100)
    stranger = decode(client.get(f"/tiles/{t.z}/{t.x}/{t.y}.mvt", headers=login(client, "stranger", PASSWORD)))
    assert {"grids", "buildings", "divisions"} <= set(stranger) and "households" not in stranger
    admin = client.get(f"/tiles/{t.z}/{t.x}/{t.y}.mvt?layers=buildings,households",
                       headers=login(client, "admin1", PASSWORD))
    assert set(decode(admin)) == {"buildings", "households"}


def test_cache_serves_repeats_and_honours_if_none_match(seeded):
    client, _, _ = seeded
    headers = login(client, "planner1", PASSWORD)
    t = tile_at(16, 100, 100)
    url = f"/tiles/buildings/{t.z}/{t.x}/{t.y}.mvt"
    first = client.get(url, headers=headers)
    second = client.get(url, headers=headers)
    assert first.headers["x-tile-cache"] == "miss" and second.headers["x-tile-cache"] == "hit"
    assert first.content == second.content and first.headers["content-encoding"] == "gzip"
    assert client.get(url, headers={**headers, "If-None-Match": first.headers["etag"]}).status_code == 304
    plain = client.get(url, headers={**headers, "Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and mapbox_vector_tile.decode(plain.content)["buildings"]


def test_a_grid_edit_invalidates_only_the_tiles_it_touches(seeded):
    client, sessions, ids = seeded
    headers = login(client, "planner1", PASSWORD)
    near, far = tile_at(19, 195, 100), tile_at(19, 385, 100)  # tiles ~70 m wide; the edit spans 0–200 m
    assert near != far
    urls = [f"/tiles/grids/{t.z}/{t.x}/{t.y}.mvt" for t in (near, far)]
    for url in urls:
        client.get(url, headers=headers)
    with sessions.begin() as s, acting_as(s, "planner1", "move the boundary east"):
        west = s.get(Grid, ids["west"])
        after = factories.metres_box(0, 0, 190, 200)
        west.boundary = from_shape(after, srid=4326)  # no call to invalidate: the database announces it
        s.flush()
        assert client.get(urls[0], headers=headers).headers["x-tile-cache"] == "hit"  # not yet committed
    near_again, far_again = (client.get(url, headers=headers) for url in urls)
    assert near_again.headers["x-tile-cache"] == "miss" and far_again.headers["x-tile-cache"] == "hit"
    feature = next(f for f in decode(near_again)["grids"]["features"] if f["id"] == int(ids["west_code"]))
    assert feature["properties"]["version"] == 2


def test_a_rolled_back_edit_invalidates_nothing_and_a_stale_render_is_not_stored(seeded):
    client, sessions, _ = seeded
    headers = login(client, "planner1", PASSWORD)
    t = tile_at(16, 100, 100)
    client.get(f"/tiles/grids/{t.z}/{t.x}/{t.y}.mvt", headers=headers)
    cache = client.app.state.tile_service.cache
    size = len(cache)
    with sessions() as s:
        s.execute(text("UPDATE grids SET name = 'rolled back'"))
        s.rollback()
    assert len(cache) == size
    key = ("grids", t.z, t.x, t.y, "")
    entry = cache.get(key)
    generation = cache.generation
    assert invalidate(factories.metres_box(0, 0, 400, 200)) >= 1
    assert cache.put(key, entry, generation) is False  # rendered before the edit: refused
    assert cache.put(key, entry, cache.generation) is True


def test_cache_invalidation_is_exact_at_every_zoom():
    cache = TileCache()
    box = (114.07, 22.56, 114.071, 22.561)
    entry = type("E", (), {"data": b"x", "etag": '"1"'})()
    keys = []
    for z in (10, 14, 18):
        x0, y0, x1, y1 = tile_range(box, z)
        for x in range(x0 - 2, x1 + 3):
            for y in range(y0 - 2, y1 + 3):
                keys.append(("grids", z, x, y, ""))
                cache.put(keys[-1], entry, cache.generation)
    dropped = cache.invalidate([box], ["grids"])
    touching = [k for k in keys if shapely.box(*Tile(*k[1:4]).bounds(64)).intersects(shapely.box(*box))]
    assert dropped == len(touching) and len(cache) == len(keys) - len(touching)
    assert cache.invalidate([box], ["buildings"]) == 0


@pytest.mark.parametrize("url, status, words", [
    ("/tiles/buildings/30/0/0.mvt", 404, "zoom runs from 0 to 22"),
    ("/tiles/buildings/3/8/0.mvt", 404, "x and y run from 0 to 7"),
    ("/tiles/buildings/3/-1/0.mvt", 404, "does not exist"),
    ("/tiles/nothing/3/1/1.mvt", 404, "no tile layer 'nothing'"),
    ("/tiles/nothing.json", 404, "no tile layer"),
    ("/tiles/buildings/a/1/1.mvt", 422, ""),
    ("/tiles/3/1/1.mvt?layers=", 422, "at least one layer"),
    ("/tiles/3/1/1.mvt?layers=grids,nothing", 404, "no tile layer 'nothing'"),
])
def test_bad_tile_requests_are_4xx_with_a_message(seeded, url, status, words):
    client, _, _ = seeded
    response = client.get(url, headers=login(client, "planner1", PASSWORD))
    assert response.status_code == status, response.text
    assert words in response.text


def test_tiles_need_a_token(seeded):
    client, _, _ = seeded
    assert client.get("/tiles/grids/10/836/445.mvt").status_code == 401
    assert client.get("/tiles/grids/10/836/445.mvt", headers={"Authorization": "Bearer forged"}).status_code == 401


def test_tilejson_and_style_name_the_tile_layers(seeded):
    client, _, _ = seeded
    doc = client.get("/tiles/buildings.json").json()
    assert doc["tilejson"] == "3.0.0" and doc["tiles"][0].endswith("/tiles/buildings/{z}/{x}/{y}.mvt")
    assert doc["minzoom"] == LAYERS["buildings"].min_zoom and doc["vector_layers"][0]["id"] == "buildings"
    style = client.get("/tiles/style.json").json()
    assert style["version"] == 8 and style["sources"]["gridgov"]["url"].endswith("/tiles/tiles.json")
    source_layers = {layer["source-layer"] for layer in style["layers"] if "source-layer" in layer}
    combined = client.get("/tiles/tiles.json").json()
    assert source_layers == {v["id"] for v in combined["vector_layers"]} == set(tile_layers())
    points = {name for name, layer in tile_layers().items() if layer.geometry_type == "Point"}
    assert {"cases", "checkpoints"} <= points
    assert {layer["type"] for layer in style["layers"] if layer.get("source-layer") in points} == {"circle"}
    cases_layer = next(v for v in combined["vector_layers"] if v["id"] == "cases")
    assert cases_layer["fields"]["overdue"] == "Boolean" and not {"reporter_name", "reporter_phone",
                                                                   "description"} & set(cases_layer["fields"])


def test_tile_queries_filter_on_the_stored_geometry_so_the_index_is_used(db):
    factories.two_grids(db)
    db.execute(text("SET LOCAL enable_seqscan = off"))
    t = tile_at(16, 100, 100)
    for name, index in (("buildings", "buildings_footprint_gix"), ("grids", "grids_boundary_gix")):
        for z in (t.z, 12):
            sql = layer_sql(name, LAYERS[name], z)
            # buildings draw their stored EPSG:3857 copy; every layer selects on its indexed EPSG:4326 geometry
            assert ("ST_AsMVTGeom(t.footprint_3857" in sql) == (name == "buildings")
            assert f"t.{LAYERS[name].geom} && ST_MakeEnvelope" in sql
            tile = Tile(z, *tile_range(Tile(t.z, t.x, t.y).bounds(), z)[:2])
            from tiles.sql import _box_params  # the same parameters as render()
            params = {**_box_params(tile), "srid": 4547, "tol": 1.0, "min_deg": 1e-6}
            plan = "\n".join(db.execute(text("EXPLAIN " + sql), params).scalars())
            assert index in plan, plan
    assert render(db, "buildings", t) == b""  # no buildings here: empty, not an error


@pytest.mark.parametrize("layer", ["buildings", "grids", "households"])
def test_the_event_loop_render_gives_the_bytes_of_the_synchronous_one(seeded, layer):
    """Single-layer tiles are rendered on spatial.store.aio by the API, and in a worker's session by
    TileService.tile (CLI, combined tiles): the same statement, so the same tile (its ETag hashes the bytes)."""
    client, sessions, _ = seeded
    headers = login(client, "admin1", PASSWORD)
    t = tile_at(16, 100, 100)
    served = client.get(f"/tiles/{layer}/{t.z}/{t.x}/{t.y}.mvt", headers=headers)
    assert served.status_code == 200 and served.headers["x-tile-cache"] == "miss"
    admin = Principal(user_id=0, username="admin1", role="admin")
    rendered = TileService(sessions).tile(layer, t.z, t.x, t.y, admin)  # a cache of its own: it renders
    assert not rendered.cached and rendered.etag == served.headers["etag"]
    assert decode(served)[layer]["features"]


def test_a_combined_tile_names_each_layer_once_and_repeats_share_its_cache_entry(seeded):
    client, sessions, _ = seeded
    headers = login(client, "planner1", PASSWORD)
    t = tile_at(16, 100, 100)
    first = client.get(f"/tiles/{t.z}/{t.x}/{t.y}.mvt?layers=buildings,grids", headers=headers)
    again = client.get(f"/tiles/{t.z}/{t.x}/{t.y}.mvt?layers=buildings,grids,buildings,,grids", headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["X-Tile-Cache"] == "hit" and again.headers["ETag"] == first.headers["ETag"]
    assert again.content == first.content and list(decode(again)) == ["buildings", "grids"]
    other_order = client.get(f"/tiles/{t.z}/{t.x}/{t.y}.mvt?layers=grids,buildings", headers=headers)
    assert list(decode(other_order)) == ["grids", "buildings"]  # order is kept: it is the drawing order


def test_a_layer_list_repeated_a_thousand_times_is_refused(seeded):
    client, sessions, _ = seeded
    headers = login(client, "planner1", PASSWORD)
    response = client.get("/tiles/16/0/0.mvt?layers=" + ",".join(["grids"] * 1000), headers=headers)
    assert response.status_code == 422 and "layers" in response.json()["detail"], response.text
    declared = [p for p in client.get("/openapi.json").json()["paths"]["/tiles/{z}/{x}/{y}.mvt"]["get"]["parameters"]
                if p["name"] == "layers"][0]["schema"]
    assert any(s.get("maxLength") for s in declared["anyOf"])
    service = TileService(sessions)  # the service itself, for callers other than the router
    too_many = ["grids"] * (len(tile_layers()) + 1)
    with pytest.raises(InvalidInput, match="at most once"):
        service.combined(too_many, 16, 0, 0, Principal(user_id=0, username="admin1", role="admin"))
