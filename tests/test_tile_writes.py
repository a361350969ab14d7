"""A write says what it changed: for every tile layer, a write of its table — through the API, a store function,
plain SQL in a session, or another connection as ``psql`` or a second server process would — and the next tile
shows it. No test calls an invalidation: the database's triggers announce each change (migration 0011)."""

from __future__ import annotations

import time

import mapbox_vector_tile
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from spatial.store import cases, users
from spatial.store.engine import acting_as
from spatial.store.layers import LAYERS
from spatial.store.models import Enclosure, Household, MicroGrid, StreetEdge, StreetNode
from tests import factories
from tests.conftest import login
from tiles.grid import Tile, tile_range
from tiles.sql import tile_layers

PASSWORD = "correct horse battery"


def tile_at(z: int, x_m: float, y_m: float) -> Tile:
    point = factories.metres_box(x_m, y_m, x_m + 0.1, y_m + 0.1).centroid
    x0, y0, _, _ = tile_range((point.x, point.y, point.x, point.y), z)
    return Tile(z, x0, y0)


@pytest.fixture
def world(app_env):
    client, sessions = app_env
    with sessions.begin() as s:
        west, east = factories.two_grids(s)
        b1 = factories.building(s, west, 20, 20, number=1, households=120, residents=300, name="一号楼")
        s.add(Household(building_id=b1.id, room="101", residents=3, head_name="张三"))
        s.add(Enclosure(name="老围合", kind="estate", community_code=factories.COMMUNITY,
                        boundary=polygon(10, 10, 190, 190)))
        users.create_user(s, "admin1", PASSWORD, "admin")
        users.create_user(s, "planner1", PASSWORD, "planner", scope_code=factories.SUBDISTRICT)
        ids = {"west": west.id, "west_code": west.code, "b1": b1.id}
    return client, sessions, ids, login(client, "admin1", PASSWORD)


def fetch(client, headers, layer: str, tile: Tile) -> tuple[dict, str]:
    """(decoded tile, ETag); an empty tile is 204 and decodes to {}."""
    response = client.get(f"/tiles/{layer}/{tile.z}/{tile.x}/{tile.y}.mvt", headers=headers)
    assert response.status_code in (200, 204), response.text
    return mapbox_vector_tile.decode(response.content) if response.content else {}, response.headers.get("etag", "")


def features(decoded: dict, layer: str) -> list[dict]:
    return decoded.get(layer, {}).get("features", [])


def cached(client, headers, layer: str, tile: Tile) -> tuple[dict, str]:
    """The tile, fetched twice so that it is in the cache (the second answer a hit)."""
    fetch(client, headers, layer, tile)
    response = client.get(f"/tiles/{layer}/{tile.z}/{tile.x}/{tile.y}.mvt", headers=headers)
    assert response.headers["x-tile-cache"] == "hit"
    return (mapbox_vector_tile.decode(response.content) if response.content else {}), response.headers.get("etag", "")


def test_every_tile_layer_is_covered_by_this_file():
    """A new tile layer needs a trigger in a migration and a case below; this fails until it has both."""
    assert set(tile_layers()) == set(CASES) | {"households"}


def _divisions(s, ids):
    s.execute(text("UPDATE divisions SET name = '改名社区' WHERE code = :c"), {"c": factories.COMMUNITY})


def _grids(s, ids):
    with acting_as(s, "tester", "rename"):
        s.execute(text("UPDATE grids SET name = '新西网格' WHERE id = :g"), {"g": ids["west"]})


def _micro_grids(s, ids):
    s.add(MicroGrid(grid_id=ids["west"], seq=1, name="一号微网格", boundary=factories.db_box(0, 0, 100, 100)))


def _buildings(s, ids):
    factories.building(s, None, 120, 120, name="新楼")


def _streets(s, ids):
    a, b = (StreetNode(id=i, origin_ref=str(i), location=f"SRID=4326;{a_geom(x).wkt}") for i, x in ((1, 10), (2, 150)))
    s.add_all([a, b])
    s.flush()
    line = f"SRID=4326;LINESTRING({a_geom(10).x} {a_geom(10).y}, {a_geom(150).x} {a_geom(150).y})"
    s.add(StreetEdge(id=1, origin_ref="1-2", source=1, target=2, highway="footway", name="新路", length_m=140.0,
                     geom=line))


def a_geom(x: float, y: float = 100):
    """The point x, y metres from the factories' origin (lon/lat)."""
    return factories.metres_box(x, y, x + 0.1, y + 0.1).centroid


def polygon(x0: float, y0: float, x1: float, y1: float) -> str:
    return f"SRID=4326;{factories.metres_box(x0, y0, x1, y1).geoms[0].wkt}"


def _enclosures(s, ids):
    s.add(Enclosure(name="新围合", kind="estate", community_code=factories.COMMUNITY, boundary=polygon(20, 20, 120, 120)))


def _checkpoints(s, ids):
    s.execute(text("INSERT INTO checkpoints (name, location) VALUES ('北门', ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
              dict(zip("xy", a_geom(100).coords[0])))


def _cases(s, ids):
    lon, lat = a_geom(100).coords[0]
    cases.report_case(s, None, category="environment.garbage", lon=lon, lat=lat, description="垃圾堆放",
                      reporter_name="张三丰", reporter_phone="13812345678")


def _risk_zones(s, ids):
    from spatial.access import Principal
    from spatial.store import risk_zones

    risk_zones.designate(s, Principal(0, "admin1", "admin"), target_kind="grid", target_ref=ids["west_code"],
                         level="red", reason="确诊病例", name="新风险区")


def _places(s, ids):
    s.execute(text("INSERT INTO places (kind, name, grid_id, community_code, location, origin, origin_ref) "
                   "VALUES ('shop', '新小店', :g, :c, ST_SetSRID(ST_MakePoint(:x, :y), 4326), 'test', '1')"),
              {"g": ids["west"], "c": factories.COMMUNITY, **dict(zip("xy", a_geom(100).coords[0]))})


# layer -> (zoom, the write, how the tile shows it)
CASES = {
    "divisions": (14, _divisions, lambda fs: any(f["properties"].get("name") == "改名社区" for f in fs)),
    "grids": (15, _grids, lambda fs: any(f["properties"].get("name") == "新西网格" for f in fs)),
    "micro_grids": (15, _micro_grids, lambda fs: any(f["properties"].get("name") == "一号微网格" for f in fs)),
    "buildings": (16, _buildings, lambda fs: any(f["properties"].get("name") == "新楼" for f in fs)),
    "streets": (16, _streets, lambda fs: any(f["properties"].get("name") == "新路" for f in fs)),
    "enclosures": (15, _enclosures, lambda fs: any(f["properties"].get("name") == "新围合" for f in fs)),
    "checkpoints": (16, _checkpoints, lambda fs: any(f["properties"].get("name") == "北门" for f in fs)),
    "cases": (16, _cases, lambda fs: any(f["properties"].get("category") == "垃圾堆放" for f in fs)),
    "places": (16, _places, lambda fs: any(f["properties"].get("name") == "新小店"
                                           and f["properties"].get("kind_label") == "小商店" for f in fs)),
    "risk_zones": (15, _risk_zones, lambda fs: any(f["properties"].get("name") == "新风险区"
                                                   and f["properties"].get("colour") == "#d32f2f" for f in fs)),
}


@pytest.mark.parametrize("layer", sorted(CASES))
def test_a_write_to_a_layer_shows_on_its_next_tile(world, layer):
    client, sessions, ids, headers = world
    zoom, write, shows = CASES[layer]
    assert zoom >= LAYERS[layer].min_zoom
    tile = tile_at(zoom, 100, 100)
    before, etag = cached(client, headers, layer, tile)
    assert not shows(features(before, layer))
    with sessions.begin() as s:
        write(s, ids)
    after, new_etag = fetch(client, headers, layer, tile)
    assert shows(features(after, layer)) and new_etag != etag


def test_a_household_moving_in_changes_the_household_tile(world):
    client, sessions, ids, headers = world
    tile = tile_at(16, 100, 100)
    before, _ = cached(client, headers, "households", tile)
    [count] = [f["properties"]["households"] for f in features(before, "households")]
    with sessions.begin() as s:
        s.add(Household(building_id=ids["b1"], room="102", residents=2, head_name="李四"))
    after, _ = fetch(client, headers, "households", tile)
    assert [f["properties"]["households"] for f in features(after, "households")] == [count + 1]


def test_a_checkpoint_registered_through_the_api_shows_on_single_and_combined_tiles(world):
    """The issue's reproduction: POST a staffed checkpoint, then the cached tiles (alone and combined) show it."""
    client, _, _, headers = world
    planner = login(client, "planner1", PASSWORD)
    tile = tile_at(16, 100, 100)
    single, _ = cached(client, headers, "checkpoints", tile)
    combined_url = f"/tiles/{tile.z}/{tile.x}/{tile.y}.mvt?layers=checkpoints,enclosures"
    client.get(combined_url, headers=headers)
    assert client.get(combined_url, headers=headers).headers["x-tile-cache"] == "hit"
    lon, lat = factories.metres_box(10, 100, 10.1, 100.1).centroid.coords[0]  # on the old enclosure's west edge
    created = client.post("/api/inspection/checkpoints", headers=planner,
                          json={"lon": lon, "lat": lat, "name": "西门卡口", "staff_count": 2})
    assert created.status_code == 201, created.text
    after, _ = fetch(client, headers, "checkpoints", tile)
    assert len(features(after, "checkpoints")) == len(features(single, "checkpoints")) + 1
    combined = mapbox_vector_tile.decode(client.get(combined_url, headers=headers).content)
    assert any(f["properties"].get("name") == "西门卡口" for f in features(combined, "checkpoints"))


def test_a_rolled_back_write_keeps_the_cached_tile(world):
    client, sessions, ids, headers = world
    tile = tile_at(16, 100, 100)
    cached(client, headers, "buildings", tile)
    with sessions() as s:
        _buildings(s, ids)
        s.rollback()
    response = client.get(f"/tiles/buildings/{tile.z}/{tile.x}/{tile.y}.mvt", headers=headers)
    assert response.headers["x-tile-cache"] == "hit"


def test_a_write_from_another_connection_reaches_the_server_through_its_listener(world, fresh_db_url):
    """As psql, the command line or a second worker would write: not through this process's sessions."""
    client, _, _, headers = world
    tile = tile_at(16, 100, 100)
    cached(client, headers, "checkpoints", tile)
    x, y = a_geom(100).coords[0]
    with psycopg.connect(make_url(fresh_db_url).set(drivername="postgresql").render_as_string(hide_password=False),
                         autocommit=True) as conn:
        conn.execute("INSERT INTO checkpoints (name, location) VALUES ('南门', ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
                     (x, y))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        decoded, _ = fetch(client, headers, "checkpoints", tile)
        if any(f["properties"].get("name") == "南门" for f in features(decoded, "checkpoints")):
            return
        time.sleep(0.1)
    pytest.fail("the tile never showed the checkpoint written by another connection")


def test_a_long_transaction_collapses_its_changes_into_one_box(world):
    """Past 64 distinct changes in one transaction the pending list becomes one box over all, every layer."""
    _, sessions, _, _ = world
    with sessions.begin() as s:
        for i in range(70):
            x, y = a_geom(i * 2).coords[0]
            s.execute(text("INSERT INTO checkpoints (name, location) VALUES ('x', ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
                      {"x": x, "y": y})
        pending = s.execute(text("SELECT current_setting('gridgov.tile_changes', true)::jsonb")).scalar()
        assert len(pending) <= 64
        first = a_geom(0).coords[0]
        assert any(c["layers"] is None and c["boxes"][0][0] <= first[0] for c in pending)
