"""Planners edit grids over HTTP: previews, topology kept, no building cut, history, ETags, clear refusals.

The community is 400 m × 200 m: grid 01 west (x < 200 m), grid 02 east; coordinates are built in metres
(EPSG:4547) and sent as lon/lat, or as GCJ-02 where a test says so.
"""

from __future__ import annotations

import pytest
from shapely.geometry import mapping
from sqlalchemy import text

from spatial.geometry.crs import from_wgs84, parse_crs
from spatial.store import users
from spatial.store.models import Division
from tests import factories
from tests.conftest import login

PASSWORD = "correct horse battery"
WEST, EAST = factories.COMMUNITY + "01", factories.COMMUNITY + "02"


def polygon(x0, y0, x1, y1, crs="EPSG:4326") -> dict:
    return mapping(from_wgs84(factories.metres_box(x0, y0, x1, y1).geoms[0], parse_crs(crs)))


@pytest.fixture
def planner(app_env):
    client, sessions = app_env
    with sessions.begin() as s:
        west, east = factories.two_grids(s)
        factories.building(s, west, 20, 20, number=1, households=200, residents=500)
        factories.building(s, east, 215, 100, number=1, households=150, residents=400)  # x 215–235
        users.create_user(s, "planner1", PASSWORD, "planner", scope_code=factories.SUBDISTRICT)
        users.create_user(s, "viewer1", PASSWORD, "viewer", scope_code=factories.SUBDISTRICT)
        s.add(Division(code="440304098000", level="subdistrict", name="别的街道", parent_code=factories.DISTRICT))
        s.flush()
        users.create_user(s, "elsewhere", PASSWORD, "planner", scope_code="440304098000")
    return client, sessions, login(client, "planner1", PASSWORD)


def etag_of(client, headers, code):
    response = client.get(f"/api/grids/{code}", headers=headers)
    assert response.status_code == 200
    return response.headers["ETag"]


def state(sessions):
    with sessions() as s:
        return s.execute(text("SELECT code, version, round(ST_Area(ST_Transform(boundary, 4547))) AS area "
                              "FROM grids WHERE retired_at IS NULL ORDER BY code")).all()


def test_preview_reports_the_overlap_and_writes_nothing(planner):
    client, sessions, headers = planner
    before = state(sessions)
    response = client.put(f"/api/grids/{WEST}/boundary", headers=headers,
                          json={"geometry": polygon(0, 0, 250, 200), "preview": True})
    assert response.status_code == 200
    report = response.json()["report"]
    assert not report["ok"] and report["overlaps"][0]["grids"] == [WEST, EAST]
    assert report["overlaps"][0]["area_m2"] == pytest.approx(50 * 200, rel=1e-3)
    assert report["moved_buildings"] == []  # the building at x 215–235 lies in both: it stays where it is
    assert state(sessions) == before


def test_saving_needs_if_match_and_refuses_a_stale_one(planner):
    client, sessions, headers = planner
    body = {"geometry": polygon(0, 0, 150, 200), "reason": "shrink", "move_shared_boundary": True}
    assert client.put(f"/api/grids/{WEST}/boundary", headers=headers, json=body).status_code == 428
    stale = client.put(f"/api/grids/{WEST}/boundary", json=body, headers={**headers, "If-Match": f'"{WEST}.v9"'})
    assert stale.status_code == 412 and "version 1" in stale.json()["detail"]
    assert [r.version for r in state(sessions)] == [1, 1]


def test_overlap_is_refused_with_409_and_the_report_unless_the_shared_boundary_moves(planner):
    client, sessions, headers = planner
    tag = etag_of(client, headers, WEST)
    body = {"geometry": polygon(0, 0, 250, 200), "reason": "take the market street"}
    refused = client.put(f"/api/grids/{WEST}/boundary", json=body, headers={**headers, "If-Match": tag})
    assert refused.status_code == 409 and refused.json()["report"]["overlaps"]
    # the page says it in the planner's language: a code of the catalogue, with how many problems the report lists
    assert refused.json()["code"] == "plan.not_saved" and refused.json()["count"] >= 1
    assert [r.version for r in state(sessions)] == [1, 1]
    saved = client.put(f"/api/grids/{WEST}/boundary", headers={**headers, "If-Match": tag},
                       json={**body, "move_shared_boundary": True})
    assert saved.status_code == 200, saved.text
    assert saved.json()["report"]["ok"] and not saved.json()["report"]["gaps"]["pieces"]
    [moved] = saved.json()["report"]["moved_buildings"]
    assert (moved["old_code"], moved["new_code"]) == (EAST + "00001", WEST + "00002")
    after = state(sessions)
    assert [(r.version, r.area) for r in after] == [(2, 50_000), (2, 30_000)]
    with sessions() as s:
        code = s.execute(text("SELECT code FROM buildings WHERE households = 150")).scalar_one()
    assert code == WEST + "00002"  # moved west, numbered after the west grid's building 00001


def test_redraw_snaps_around_a_building_instead_of_cutting_it(planner):
    client, sessions, headers = planner
    tag = etag_of(client, headers, WEST)
    saved = client.put(f"/api/grids/{WEST}/boundary", headers={**headers, "If-Match": tag},
                       json={"geometry": polygon(0, 0, 220, 200), "reason": "cuts the east building at x 220",
                             "move_shared_boundary": True})
    assert saved.status_code == 200, saved.text
    assert saved.json()["report"]["cut_buildings"] == []
    with sessions() as s:
        assert s.execute(text("SELECT count(*) FROM buildings b JOIN grids g ON g.id = b.grid_id "
                              "WHERE NOT ST_CoveredBy(b.footprint, ST_Buffer(g.boundary, 1e-9))")).scalar() == 0
        assert s.execute(text("SELECT g.code FROM buildings b JOIN grids g ON g.id = b.grid_id "
                              "WHERE b.households = 150")).scalar() == EAST  # 15 of 20 m stayed east


def test_geometry_in_gcj02_is_converted_at_the_edge(planner):
    client, sessions, headers = planner
    response = client.put(f"/api/grids/{WEST}/boundary", headers=headers,
                          json={"geometry": polygon(0, 0, 200, 200, "GCJ-02"), "crs": "GCJ-02", "preview": True})
    report = response.json()["report"]
    assert report["ok"] and not report["gaps"]["pieces"] and not report["moved_buildings"]


@pytest.mark.parametrize("geometry, words", [
    ({"type": "Polygon", "coordinates": [[[114.07, 22.56], [114.08, 22.57], [114.08, 22.56], [114.07, 22.57],
                                          [114.07, 22.56]]]}, "Self-intersection"),
    ({"type": "Polygon", "coordinates": [[[114.07, 22.56], [114.08, 22.56], [114.08, 22.57], [114.07, 22.57]]]},
     "not closed"),
    ({"type": "Polygon", "coordinates": [[[22.56, 114.07], [22.57, 114.07], [22.57, 114.08], [22.56, 114.07]]]},
     "out of range"),
    ({"type": "Polygon", "coordinates": [[[2.35, 48.85], [2.36, 48.85], [2.36, 48.86], [2.35, 48.85]]]},
     "outside the service area"),
    ({"type": "Point", "coordinates": [114.07, 22.56]}, "Polygon or MultiPolygon"),
    ({"type": "Polygon", "coordinates": []}, "no coordinates"),
])
def test_bad_geometry_is_refused_with_a_reason_and_nothing_changes(planner, geometry, words):
    client, sessions, headers = planner
    before = state(sessions)
    response = client.put(f"/api/grids/{WEST}/boundary", json={"geometry": geometry, "reason": "x"},
                          headers={**headers, "If-Match": etag_of(client, headers, WEST)})
    assert response.status_code == 422 and words in response.json()["detail"]
    assert state(sessions) == before


def test_split_and_merge_keep_exact_cover(planner):
    client, sessions, headers = planner
    split = client.post(f"/api/grids/{WEST}/split", headers={**headers, "If-Match": etag_of(client, headers, WEST)},
                        json={"line": _vertical_line(80), "new_name": "西二网格", "reason": "too many households"})
    assert split.status_code == 200, split.text
    assert split.json()["report"]["ok"] and not split.json()["report"]["gaps"]["pieces"]
    assert [(r.code, r.area) for r in state(sessions)] == [(WEST, 24_000), (EAST, 40_000),
                                                           (factories.COMMUNITY + "03", 16_000)]  # x 0–80 is new
    tags = ", ".join(etag_of(client, headers, c) for c in (EAST, factories.COMMUNITY + "03"))
    far = client.post("/api/grids/merge", headers={**headers, "If-Match": tags},
                      json={"codes": [EAST, factories.COMMUNITY + "03"], "reason": "x"})
    assert far.status_code == 422 and "share no border" in far.json()["detail"]
    tags = ", ".join(etag_of(client, headers, c) for c in (WEST, factories.COMMUNITY + "03"))
    merged = client.post("/api/grids/merge", headers={**headers, "If-Match": tags},
                         json={"codes": [WEST, factories.COMMUNITY + "03"], "reason": "undo the split"})
    assert merged.status_code == 200, merged.text
    assert [(r.code, r.area) for r in state(sessions)] == [(WEST, 40_000), (EAST, 40_000)]


def _vertical_line(x: float) -> dict:
    top = factories.metres_box(x - 1, -20, x, 220).geoms[0].exterior.coords  # starts (maxx, miny), (maxx, maxy)
    (x0, y0), (x1, y1) = top[0], top[1]
    return {"type": "LineString", "coordinates": [[x0, y0], [x1, y1]]}


def test_split_by_a_line_that_misses_the_grid_is_refused(planner):
    client, _, headers = planner
    response = client.post(f"/api/grids/{WEST}/split", headers={**headers, "If-Match": etag_of(client, headers, WEST)},
                           json={"line": _vertical_line(300), "new_name": "x", "reason": "x"})
    assert response.status_code == 422 and "exactly two parts" in response.json()["detail"]
    assert response.json()["code"] == "split.parts" and response.json()["grid"] == WEST


def test_history_diff_and_revert(planner):
    client, sessions, headers = planner
    client.put(f"/api/grids/{WEST}/boundary", headers={**headers, "If-Match": etag_of(client, headers, WEST)},
               json={"geometry": polygon(0, 0, 150, 200), "reason": "give the lane to the east",
                     "move_shared_boundary": True})
    versions = client.get(f"/api/grids/{WEST}/versions", headers=headers).json()
    assert [(v["version"], v["author"], v["reason"]) for v in versions] == [
        (1, "tester", "test fixture"), (2, "planner1", "give the lane to the east")]
    diff = client.get(f"/api/grids/{WEST}/diff", params={"from": 1, "to": 2}, headers=headers).json()
    assert diff["removed_m2"] == pytest.approx(10_000, rel=1e-3) and diff["added_m2"] == 0
    reverted = client.post(f"/api/grids/{WEST}/revert", headers={**headers, "If-Match": etag_of(client, headers, WEST)},
                           json={"version": 1, "reason": "back", "move_shared_boundary": True})
    assert reverted.status_code == 200, reverted.text
    assert [(r.version, r.area) for r in state(sessions)] == [(3, 40_000), (3, 40_000)]


def test_only_planners_in_their_area_may_edit(planner):
    client, _, _ = planner
    body = {"geometry": polygon(0, 0, 200, 200), "preview": True}
    for user, status in (("viewer1", 403), ("elsewhere", 403)):
        response = client.put(f"/api/grids/{WEST}/boundary", json=body, headers=login(client, user, PASSWORD))
        assert response.status_code == status, (user, response.text)


def test_two_planners_one_wins_the_other_gets_412_and_history_has_no_gap(planner):
    client, sessions, headers = planner
    tag = etag_of(client, headers, WEST)
    other = login(client, "planner1", PASSWORD)
    first = client.put(f"/api/grids/{WEST}/boundary", headers={**headers, "If-Match": tag},
                       json={"geometry": polygon(0, 0, 180, 200), "reason": "a", "move_shared_boundary": True})
    second = client.put(f"/api/grids/{WEST}/boundary", headers={**other, "If-Match": tag},
                        json={"geometry": polygon(0, 0, 220, 200), "reason": "b", "move_shared_boundary": True})
    assert (first.status_code, second.status_code) == (200, 412)
    assert first.headers["ETag"] == f'"{WEST}.v2"'
    with sessions() as s:
        assert s.execute(text("SELECT array_agg(version ORDER BY version) FROM grid_versions WHERE code = :c"),
                         {"c": WEST}).scalar() == [1, 2]


def test_create_and_rename_a_grid(planner):
    client, sessions, headers = planner
    tag = etag_of(client, headers, EAST)
    shrink = client.put(f"/api/grids/{EAST}/boundary", headers={**headers, "If-Match": tag},
                        json={"geometry": polygon(200, 0, 400, 100), "reason": "make room"})
    assert shrink.status_code == 200 and shrink.json()["report"]["gaps"]["area_m2"] == pytest.approx(20_000, rel=1e-3)
    created = client.post("/api/grids", headers=headers, json={
        "community_code": factories.COMMUNITY, "name": "东北网格", "geometry": polygon(200, 100, 400, 200),
        "reason": "fill the gap"})
    assert created.status_code == 201, created.text
    assert created.json()["grids"]["features"][0]["properties"]["code"] == factories.COMMUNITY + "03"
    assert not created.json()["report"]["gaps"]["pieces"]
    renamed = client.patch(f"/api/grids/{EAST}", json={"name": "东南网格", "reason": "clearer name"},
                           headers={**headers, "If-Match": etag_of(client, headers, EAST)})
    assert renamed.status_code == 200, renamed.text
    assert renamed.headers["ETag"] == f'"{EAST}.v3"'
    assert client.get(f"/api/grids/{EAST}", headers=headers).json()["properties"]["name"] == "东南网格"


def test_a_saved_edit_refreshes_cached_tiles_of_the_area(planner):
    import mapbox_vector_tile

    from tiles.grid import tile_range

    client, _, headers = planner
    x, y, _, _ = tile_range(factories.metres_box(0, 0, 400, 200).bounds, 16)
    url = f"/tiles/grids/16/{x}/{y}.mvt"

    def names():
        response = client.get(url, headers={**headers, "Accept-Encoding": "identity"})
        assert response.status_code == 200
        return sorted(f["properties"]["name"] for f in mapbox_vector_tile.decode(response.content)["grids"]["features"])

    assert names() == ["东网格", "西网格"]
    assert names() == ["东网格", "西网格"]  # now served from the cache
    renamed = client.patch(f"/api/grids/{WEST}", json={"name": "新西网格", "reason": "rename"},
                           headers={**headers, "If-Match": etag_of(client, headers, WEST)})
    assert renamed.status_code == 200
    assert names() == ["东网格", "新西网格"]
