"""Who reads household data (issue 12, items 2, 5, 8, 9), on a synthetic subdistrict of two communities.

* viewers and auditors read no household data whatever their scope (unvisited, nearby, route, exports, tiles);
* per-building household and resident counts follow the household scope on every path (layers, OGC items and
  CQL2 filters, tiles, layer exports); per-grid totals are shown to everyone;
* a 404 for an object outside one's scope (campaign, household) answers exactly like a missing one and is audited;
* a campaign is closed only by someone whose area holds all of it; reads of a partly visible campaign show the part.
"""

from __future__ import annotations

import json

import mapbox_vector_tile
import pytest
from sqlalchemy import text

from fixtures.synthetic_city import load_city
from spatial.store import users
from tests.factories import users_with_grids
from tiles.grid import Tile, tile_range

PASSWORD = "correct horse battery"
SUBDISTRICT, ONE, TWO = "440399001000", "440399001001", "440399001002"
USERS = (("admin1", "admin", None, None), ("viewer1", "viewer", SUBDISTRICT, None),
         ("viewer2", "viewer", ONE, None), ("auditor1", "auditor", SUBDISTRICT, None),
         ("planner_sub", "planner", SUBDISTRICT, None), ("planner_one", "planner", ONE, None),
         ("worker_one", "grid_worker", None, f"{ONE}01"), ("worker_two", "grid_worker", None, f"{TWO}01"))


@pytest.fixture(scope="module")
def password_hash() -> str:
    return users.hash_password(PASSWORD)


@pytest.fixture
def env(app_env, password_hash):
    """Two communities (25 + a few grids), a campaign over both opened by the subdistrict's planner."""
    client, sessions = app_env
    headers = {}
    with sessions.begin() as s:
        load_city(s, households=12_000, seed=5)
        assert s.scalar(text("SELECT count(*) FROM divisions WHERE code IN (:a, :b)"), {"a": ONE, "b": TWO}) == 2
        for name, user in users_with_grids(s, USERS, password_hash).items():
            headers[name] = {"Authorization": "Bearer " + users.issue_token(s, user, 3600)[0]}
    campaign = client.post("/api/field/campaigns", headers=headers["planner_sub"],
                           json={"name": "全街道排查", "division_code": SUBDISTRICT})
    assert campaign.status_code == 201, campaign.text
    return client, sessions, headers, campaign.json()["id"]


def _audit(sessions, username: str) -> list:
    with sessions() as s:
        return s.execute(text("SELECT action, object_id, result FROM audit_log WHERE username = :u ORDER BY id"),
                         {"u": username}).all()


def _centre(sessions, grid_code: str) -> tuple[float, float]:
    with sessions() as s:
        return tuple(s.execute(text("SELECT ST_X(ST_Centroid(boundary)), ST_Y(ST_Centroid(boundary)) FROM grids "
                                    "WHERE code = :c"), {"c": grid_code}).one())


# -- item 2: viewers and auditors read no household data, whatever their scope ----------------------------------


@pytest.mark.parametrize("name", ["viewer1", "auditor1"])
def test_a_scoped_viewer_or_auditor_gets_no_unvisited_households_and_the_refusal_is_audited(env, name):
    client, sessions, headers, campaign = env
    lon, lat = _centre(sessions, f"{ONE}01")
    assert client.get(f"/api/field/campaigns/{campaign}", headers=headers[name]).status_code == 200  # sees it
    for method, url, options in (
            ("GET", f"/api/field/campaigns/{campaign}/unvisited", {}),
            ("GET", "/api/field/nearby", {"params": {"lon": lon, "lat": lat}}),
            ("GET", "/api/field/nearby", {"params": {"lon": lon, "lat": lat, "mode": "walk"}}),
            ("POST", "/api/field/route", {"json": {"lon": lon, "lat": lat, "campaign_id": campaign}}),
            ("GET", f"/api/export/communities/{ONE}", {}),
            ("GET", "/tiles/households/16/0/0.mvt", {})):
        response = client.request(method, url, headers=headers[name], **options)
        assert response.status_code == 403, (url, response.status_code, response.text[:300])
    refused = [r for r in _audit(sessions, name) if r.action == "refused"]
    assert len(refused) == 6 and all(r.result.startswith("refused 403") for r in refused)
    assert refused[-1].object_id == "GET /tiles/{layer}/{z}/{x}/{y}.mvt"
    assert f"refused 403: {name[:-1]}s see no household data" in refused[0].result
    assert not [r for r in _audit(sessions, name) if r.action.startswith(("read", "export"))]


def test_planners_and_workers_still_read_the_unvisited_households_of_their_part(env):
    client, _, headers, campaign = env
    one = client.get(f"/api/field/campaigns/{campaign}/unvisited", headers=headers["planner_one"]).json()
    everyone = client.get(f"/api/field/campaigns/{campaign}/unvisited", headers=headers["planner_sub"]).json()
    worker = client.get(f"/api/field/campaigns/{campaign}/unvisited", headers=headers["worker_one"]).json()
    assert 0 < worker["numberReturned"] < one["numberReturned"] < everyone["numberReturned"]
    assert {f["properties"]["building_code"][:12] for f in one["features"]} == {ONE}


# -- item 5: a 404 for what scope hides is audited, and answers like a missing object ---------------------------


def test_an_out_of_scope_campaign_or_household_is_a_404_like_a_missing_one_and_is_audited(env):
    client, sessions, headers, _ = env
    other = client.post("/api/field/campaigns", headers=headers["planner_sub"],
                        json={"name": "二社区排查", "division_code": TWO}).json()["id"]
    hidden = client.get(f"/api/field/campaigns/{other}", headers=headers["planner_one"])
    missing = client.get("/api/field/campaigns/99999", headers=headers["planner_one"])
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == {"error": "NotFound", "code": "NotFound", "detail": f"no campaign {other} in your area"}
    assert missing.json() == {"error": "NotFound", "code": "NotFound", "detail": "no campaign 99999 in your area"}
    assert client.get(f"/api/field/campaigns/{other}/coverage", headers=headers["planner_one"]).status_code == 404
    with sessions() as s:
        household = s.scalar(text("SELECT h.id FROM households h JOIN buildings b ON b.id = h.building_id "
                                  "JOIN grids g ON g.id = b.grid_id WHERE g.code = :g LIMIT 1"), {"g": f"{TWO}01"})
    reveal = client.post(f"/api/field/households/{household}/reveal", headers=headers["worker_one"],
                         json={"reason": "电话核实情况"})
    assert reveal.status_code == 404 and reveal.json()["error"] == "NotFound"
    planner = [(r.object_id, r.result) for r in _audit(sessions, "planner_one") if r.action == "refused"]
    assert planner == [("GET /api/field/campaigns/{campaign_id}", f"refused 404: no campaign {other} in your area"),
                       ("GET /api/field/campaigns/{campaign_id}", "refused 404: no campaign 99999 in your area"),
                       ("GET /api/field/campaigns/{campaign_id}/coverage",
                        f"refused 404: no campaign {other} in your area")]
    worker = [(r.object_id, r.result) for r in _audit(sessions, "worker_one") if r.action == "refused"]
    assert worker == [("POST /api/field/households/{household_id}/reveal",
                       f"refused 404: no household {household} in your area")]


# -- item 9: whole campaigns ----------------------------------------------------------------------------------------


def test_a_community_planner_cannot_close_a_campaign_over_two_communities(env):
    client, sessions, headers, campaign = env
    refused = client.post(f"/api/field/campaigns/{campaign}/close", headers=headers["planner_one"])
    assert refused.status_code == 403 and "outside your area" in refused.json()["detail"]
    assert client.get(f"/api/field/campaigns/{campaign}", headers=headers["planner_sub"]).json()["status"]["code"] \
        == "open"
    assert [r.result[:11] for r in _audit(sessions, "planner_one") if r.action == "refused"] == ["refused 403"]
    closed = client.post(f"/api/field/campaigns/{campaign}/close", headers=headers["planner_sub"])
    assert closed.status_code == 200 and closed.json()["status"]["code"] == "closed"


def test_reads_of_a_partly_visible_campaign_show_the_visible_part(env):
    client, _, headers, campaign = env
    whole = client.get(f"/api/field/campaigns/{campaign}/coverage", headers=headers["planner_sub"]).json()
    part = client.get(f"/api/field/campaigns/{campaign}/coverage", headers=headers["planner_one"]).json()
    assert [c["code"] for c in whole["communities"]] == [ONE, TWO]
    assert [c["code"] for c in part["communities"]] == [ONE]
    assert {g["code"][:12] for g in part["grids"]} == {ONE}
    assert part["total"]["targeted"] == whole["communities"][0]["targeted"] < whole["total"]["targeted"]
    one = client.get(f"/api/field/campaigns/{campaign}", headers=headers["planner_one"]).json()
    assert one["targeted"] == part["total"]["targeted"] and len(one["grid_ids"]) == len(part["grids"])


# -- item 8: per-building counts follow the household scope everywhere -------------------------------------------


def _counted(features) -> dict[str, int]:
    """Buildings with a household count, per community."""
    out: dict[str, int] = {}
    for f in features:
        p = f["properties"]
        assert (p["households"] is None) == (p["residents"] is None)
        if p["households"] is not None:
            out[p["community_code"]] = out.get(p["community_code"], 0) + 1
    return out


def _bbox(sessions) -> str:
    """A box from grid 01 of one community to grid 01 of the other (buildings of both)."""
    with sessions() as s:
        box = s.execute(text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(boundary) "
                             "AS e FROM grids WHERE code IN (:a, :b)) x"), {"a": f"{ONE}01", "b": f"{TWO}01"}).one()
    return ",".join(str(v) for v in box)


def test_building_counts_in_layers_and_ogc_follow_the_household_scope(env):
    client, sessions, headers, _ = env
    box = _bbox(sessions)
    layer = {name: client.get("/api/layers/buildings", headers=headers[name], params={"bbox": box, "limit": 10000})
             for name in ("admin1", "planner_one", "viewer1", "viewer2", "auditor1", "worker_one")}
    for response in layer.values():
        assert response.status_code == 200
    every = _counted(layer["admin1"].json()["features"])
    assert set(every) == {ONE, TWO}
    assert _counted(layer["planner_one"].json()["features"]) == {ONE: every[ONE]}
    assert _counted(layer["viewer1"].json()["features"]) == _counted(layer["viewer2"].json()["features"]) == {}
    assert _counted(layer["auditor1"].json()["features"]) == {}
    worker = {f["properties"]["grid_id"] for f in layer["worker_one"].json()["features"]
              if f["properties"]["households"] is not None}
    assert [_grid_code(sessions, g) for g in worker] == [f"{ONE}01"]
    ogc = "/ogc/collections/buildings/items"
    for name, expected in (("admin1", every), ("planner_one", {ONE: every[ONE]}), ("viewer1", {})):
        items = client.get(ogc, headers=headers[name], params={"bbox": box, "limit": 10000}).json()
        assert _counted(items["features"]) == expected, name
        # a filter sees the same: no bisection of a count outside one's scope
        filtered = client.get(ogc, headers=headers[name], params={"bbox": box, "limit": 10000,
                                                                   "filter": "households >= 0"}).json()
        assert filtered["numberMatched"] == sum(expected.values()), name
    some = next(f for f in layer["admin1"].json()["features"] if f["properties"]["households"])
    one = client.get(f"/ogc/collections/buildings/items/{some['id']}", headers=headers["viewer1"]).json()
    assert one["properties"]["households"] is None and one["properties"]["residents"] is None
    queryables = client.get("/ogc/collections/buildings/queryables", headers=headers["viewer1"]).json()
    assert "household scope" in queryables["properties"]["households"]["description"]


def _grid_code(sessions, grid_id: int) -> str:
    with sessions() as s:
        return s.scalar(text("SELECT code FROM grids WHERE id = :i"), {"i": grid_id})


def test_grid_totals_are_shown_to_everyone(env):
    client, _, headers, _ = env
    for name in ("viewer1", "auditor1", "planner_one"):
        grids = client.get("/api/layers/grids", headers=headers[name], params={"community_code": TWO}).json()
        assert grids["features"] and all(f["properties"]["households"] > 0 for f in grids["features"]), name


def test_building_tiles_carry_counts_only_in_the_household_scope(env):
    client, sessions, headers, _ = env
    lon, lat = _centre(sessions, f"{ONE}01")
    x, y, _, _ = tile_range((lon, lat, lon, lat), 16)
    url = f"/tiles/buildings/16/{x}/{y}.mvt"

    def features(name):
        response = client.get(url, headers=headers[name])
        assert response.status_code == 200
        return mapbox_vector_tile.decode(response.content)["buildings"]["features"]

    admin = features("admin1")
    assert admin and all("households" in f["properties"] for f in admin)
    assert all("households" in f["properties"] for f in features("planner_one"))
    for name in ("viewer1", "auditor1", "worker_two"):
        got = features(name)
        assert len(got) == len(admin) and not any("households" in f["properties"] or "residents" in f["properties"]
                                                  for f in got), name
    # the combined tile too; overview tiles (no counts) stay shared between callers
    combined = client.get(f"/tiles/16/{x}/{y}.mvt?layers=buildings", headers=headers["viewer1"])
    assert not any("households" in f["properties"]
                   for f in mapbox_vector_tile.decode(combined.content)["buildings"]["features"])
    overview = Tile(13, *tile_range((lon, lat, lon, lat), 13)[:2])
    first = client.get(f"/tiles/buildings/{overview.z}/{overview.x}/{overview.y}.mvt", headers=headers["admin1"])
    second = client.get(f"/tiles/buildings/{overview.z}/{overview.x}/{overview.y}.mvt", headers=headers["viewer1"])
    assert first.headers["X-Tile-Cache"] == "miss" and second.headers["X-Tile-Cache"] == "hit"


def test_layer_exports_carry_counts_only_in_the_household_scope(env, tmp_path):
    client, _, headers, _ = env
    counted = {}
    for name in ("admin1", "planner_one", "viewer1"):
        response = client.get("/api/export/layers/buildings", headers=headers[name],
                              params={"format": "geojson", "community": TWO})
        assert response.status_code == 200, response.text
        counted[name] = _counted(json.loads(response.content)["features"])
    assert set(counted["admin1"]) == {TWO} and counted["planner_one"] == counted["viewer1"] == {}
