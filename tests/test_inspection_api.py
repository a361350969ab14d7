"""The inspection API over HTTP on the small town of tests/test_inspection_store.py: roles, every 4xx of bad input
(with nothing changed), the coverage JSON, GeoJSON layers and printable report, siting and patrols."""

from __future__ import annotations

import pytest
from shapely.geometry import LineString, Point, mapping
from sqlalchemy import text

from spatial.store import bulk, users
from tests import factories
from tests.conftest import login
from tests.test_inspection_store import ll, polygon, town

PASSWORD = "correct horse battery"


@pytest.fixture
def site(app_env):
    client, sessions = app_env
    with sessions.begin() as s:
        t = town(s)
        island = factories.building(s, None, 2000, 2000, community_code=factories.COMMUNITY, households=4)
        bulk.load_street_network(s, "island", [{"origin_ref": "P", "location": Point(ll(1990, 1990))},
                                               {"origin_ref": "Q", "location": Point(ll(2100, 1990))}],
                                 [{"origin_ref": "PQ", "source_ref": "P", "target_ref": "Q", "name": "孤岛路",
                                   "oneway": False, "foot": True, "car": True, "highway": "residential",
                                   "length_m": 110.0, "geom": LineString([ll(1990, 1990), ll(2100, 1990)])}])
        s.execute(text("INSERT INTO divisions (code, level, name, parent_code) VALUES "
                       "('440305000000', 'district', '南山区', NULL), ('440305001000', 'subdistrict', '南头街道', "
                       "'440305000000')"))
        for name, role, scope in [("insp1", "inspector", factories.SUBDISTRICT),
                                  ("plan1", "planner", factories.SUBDISTRICT),
                                  ("view1", "viewer", factories.SUBDISTRICT), ("far1", "inspector", "440305001000")]:
            users.create_user(s, name, PASSWORD, role, scope_code=scope)
        t.buildings["island"] = island.id
    headers = {name: login(client, name, PASSWORD) for name in ("insp1", "plan1", "view1", "far1")}
    return client, sessions, t, headers


def openings(client, headers, enclosure_id):
    fc = client.get(f"/api/inspection/layers/openings?enclosure_id={enclosure_id}", headers=headers).json()
    return {f["properties"]["street_name"] + "@" + ("N" if f["geometry"]["coordinates"][1] > ll(0, 100)[1] else "S"):
            f for f in fc["features"]}


def test_coverage_json_says_walking_and_lists_the_gap(site):
    client, _, t, h = site
    r = client.get(f"/api/inspection/coverage?enclosure_id={t.enclosure_id}&threshold_m=100", headers=h["insp1"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["distance"]["kind"] == "walk" and "步行" in body["distance"]["zh"]
    (e,) = body["enclosures"]
    assert e["distance"]["kind"] == "walk" and e["threshold_m"] == 100
    assert [u["street_name"] for u in e["unguarded"]] == ["东巷"] and e["unguarded"][0]["reason"]["code"] == "open"
    assert body["totals"]["households_beyond"] == 9 and body["totals"]["unguarded"] == 1
    assert [b["distance_m"] for b in e["households_beyond"]] == [pytest.approx(132.5, abs=0.5),
                                                                 pytest.approx(112.5, abs=0.5)]
    assert e["hours"]["hours_without_staffed_checkpoint"] == 0
    assert {s["checkpoint"]: s["hours"] for s in e["hours"]["sole_checkpoint"]} == {"南门": 56}
    straight = client.get(f"/api/inspection/coverage?enclosure_id={t.enclosure_id}&threshold_m=100&distance=straight",
                          headers=h["insp1"]).json()
    assert straight["distance"]["kind"] == "straight" and straight["totals"]["households_beyond"] == 0


def test_household_rows_are_masked_and_audited(site):
    client, sessions, t, h = site
    r = client.get(f"/api/inspection/coverage?enclosure_id={t.enclosure_id}&threshold_m=100&households=true",
                   headers=h["insp1"])
    assert [row["head_name"] for row in r.json()["household_rows"]] == ["张*", "李*", "王*"]
    with sessions() as s:
        assert s.scalar(text("SELECT count(*) FROM audit_log WHERE action = 'read_masked' AND username = 'insp1'")) == 1


def test_layers_and_printable_report(site):
    client, _, t, h = site
    q = f"enclosure_id={t.enclosure_id}&threshold_m=100"
    layers = {name: client.get(f"/api/inspection/layers/{name}?{q}", headers=h["insp1"]).json()
              for name in ("enclosures", "openings", "unguarded", "barriers", "checkpoints", "households_beyond")}
    assert len(layers["openings"]["features"]) == 4 and len(layers["unguarded"]["features"]) == 1
    assert layers["barriers"]["features"][0]["geometry"]["type"] == "LineString"
    assert {f["properties"]["checkpoint"]["name"] for f in layers["checkpoints"]["features"]} == {"南门", "北门"}
    beyond = layers["households_beyond"]["features"]
    assert {f["properties"]["building_id"] for f in beyond} == {t.buildings["north"], t.buildings["east"]}
    assert all(f["properties"]["distance"] == "walk" for f in beyond)
    assert layers["enclosures"]["features"][0]["properties"]["unguarded"] == 1
    gcj = client.get(f"/api/inspection/layers/openings?{q}&crs=GCJ-02", headers=h["insp1"]).json()
    assert gcj["crs"] == "GCJ-02" and gcj["features"][0]["geometry"]["coordinates"] != \
        layers["openings"]["features"][0]["geometry"]["coordinates"]
    html = client.get(f"/api/inspection/coverage/report.html?{q}", headers=h["insp1"])
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "测试小区" in html.text and "东巷" in html.text and "步行距离" in html.text
    assert client.get(f"/api/inspection/coverage/report.html?{q}").status_code == 401
    assert client.get("/inspector").status_code == 200


def test_who_may_do_what(site):
    client, _, t, h = site
    q = f"/api/inspection/coverage?enclosure_id={t.enclosure_id}"
    assert client.get(q).status_code == 401
    assert client.get(q, headers=h["view1"]).status_code == 403
    assert client.get(q, headers=h["far1"]).status_code == 404
    gap = openings(client, h["insp1"], t.enclosure_id)["东巷@S"]
    assert client.patch(f"/api/inspection/openings/{gap['id']}", json={"location": list(ll(310, 50))},
                        headers=h["insp1"]).status_code == 403
    assert client.delete(f"/api/inspection/openings/{gap['id']}", headers=h["insp1"]).status_code == 403
    assert client.patch(f"/api/inspection/openings/{gap['id']}", json={"status": "sealed"},
                        headers=h["far1"]).status_code == 404
    body = {"name": "新围合", "geometry": mapping(polygon(20, 40, 180, 160))}
    assert client.post("/api/inspection/enclosures", json=body, headers=h["insp1"]).status_code == 403


def test_editing_an_opening_with_versions(site):
    client, _, t, h = site
    gap = openings(client, h["insp1"], t.enclosure_id)["东巷@S"]
    version = gap["properties"]["version"]
    url = f"/api/inspection/openings/{gap['id']}"
    r = client.patch(url, json={"version": version, "status": "checkpoint",
                                "checkpoint": {"name": "东南门", "opening_hours": "Mo-Su 07:00-19:00",
                                               "staff_count": 2}},
                     headers=h["insp1"])
    assert r.status_code == 200, r.text
    props = r.json()["properties"]
    assert props["status"]["code"] == "checkpoint" and props["checkpoint"]["staffed_hours_per_week"] == 84
    assert props["unguarded"] is None and props["version"] == version + 1
    stale = client.patch(url, json={"version": version, "status": "open"}, headers=h["insp1"])
    assert stale.status_code == 412 and stale.json()["version"] == version + 1
    assert client.get(url, headers=h["insp1"]).json()["properties"]["status"]["code"] == "checkpoint"
    r = client.patch(url, json={"version": version + 1, "status": "sealed", "barrier_kind": "water_barrier",
                                "width_m": 8}, headers=h["plan1"])
    assert r.status_code == 200 and r.json()["properties"]["barrier_m"] == pytest.approx(8, abs=0.05)
    assert client.delete(f"{url}?version={version + 2}", headers=h["plan1"]).status_code == 204
    assert client.get(url, headers=h["insp1"]).status_code == 404


@pytest.mark.parametrize("body", [
    {"status": "closed"}, {"status": "sealed", "barrier_kind": "sandbags"}, {"width_m": -1},
    {"status": "checkpoint", "checkpoint": {"opening_hours": "whenever"}},
    {"status": "checkpoint", "checkpoint": {"staff_count": -2}}, {"location": [1, 2, 3]}, {"location": ["a", 1]},
])
def test_bad_edits_are_4xx_and_change_nothing(site, body):
    client, sessions, t, h = site
    gap = openings(client, h["plan1"], t.enclosure_id)["东巷@S"]
    r = client.patch(f"/api/inspection/openings/{gap['id']}", json={**body, "note": "x"}, headers=h["plan1"])
    assert 400 <= r.status_code < 500 and r.status_code != 404, r.text
    assert "detail" in r.json()
    after = client.get(f"/api/inspection/openings/{gap['id']}", headers=h["plan1"]).json()["properties"]
    assert after["version"] == gap["properties"]["version"] and after["note"] is None
    with sessions() as s:
        assert s.scalar(text("SELECT count(*) FROM checkpoints")) == 4


def test_enclosures_must_be_closed_valid_polygons(site):
    client, sessions, t, h = site
    with sessions() as s:
        before = s.scalar(text("SELECT count(*) FROM enclosures"))
    ring = [list(c) for c in polygon(20, 40, 180, 160).exterior.coords]
    bad = [{"type": "Polygon", "coordinates": [ring[:-1]]},                                     # not closed
           {"type": "Polygon", "coordinates": [[ring[0], ring[2], ring[1], ring[3], ring[0]]]},  # bow tie
           {"type": "LineString", "coordinates": ring}]
    for geometry in bad:
        r = client.post("/api/inspection/enclosures", json={"name": "坏", "geometry": geometry}, headers=h["plan1"])
        assert r.status_code == 422, r.text
    tiny = {"type": "Polygon", "coordinates": [[list(c) for c in polygon(20, 40, 22, 42).exterior.coords]]}
    assert client.post("/api/inspection/enclosures", json={"name": "小", "geometry": tiny},
                       headers=h["plan1"]).status_code == 422
    with sessions() as s:
        assert s.scalar(text("SELECT count(*) FROM enclosures")) == before
    r = client.post("/api/inspection/enclosures", json={"name": "西区", "geometry": {"type": "Polygon",
                                                                                      "coordinates": [ring]}},
                    headers=h["plan1"])
    assert r.status_code == 201 and r.json()["scan"]["crossings"] == 3
    redraw = client.put(f"/api/inspection/enclosures/{r.json()['id']}/boundary",
                        json={"geometry": {"type": "Polygon", "coordinates": [ring[:-1]]}}, headers=h["plan1"])
    assert redraw.status_code == 422


def test_checkpoints_far_from_any_perimeter_are_refused(site):
    client, sessions, t, h = site
    far = client.post("/api/inspection/checkpoints", json={"lon": ll(200, 100)[0], "lat": ll(200, 100)[1],
                                                           "name": "院中岗"}, headers=h["plan1"])
    assert far.status_code == 422 and far.json()["distance_m"] == pytest.approx(50, abs=0.5)
    assert "30" in far.json()["detail"]
    with sessions() as s:
        assert s.scalar(text("SELECT count(*) FROM checkpoints")) == 4
        assert s.scalar(text("SELECT count(*) FROM openings WHERE origin = 'manual'")) == 0
    near = client.post("/api/inspection/checkpoints", json={"lon": ll(350, 100)[0], "lat": ll(350, 100)[1],
                                                            "name": "东门", "opening_hours": "Mo-Fr 08:00-18:00"},
                       headers=h["plan1"])
    assert near.status_code == 201 and near.json()["properties"]["checkpoint"]["staffed_hours_per_week"] == 50


@pytest.mark.parametrize("threshold", [0, -10, 5, 1e7])
def test_absurd_thresholds_are_refused(site, threshold):
    client, _, t, h = site
    assert client.get(f"/api/inspection/coverage?enclosure_id={t.enclosure_id}&threshold_m={threshold}",
                      headers=h["insp1"]).status_code == 422
    assert client.post("/api/inspection/siting", json={"enclosure_id": t.enclosure_id, "threshold_m": threshold},
                       headers=h["insp1"]).status_code == 422


def test_siting_over_http(site):
    client, _, t, h = site
    r = client.post("/api/inspection/siting", json={"enclosure_id": t.enclosure_id, "threshold_m": 60},
                    headers=h["insp1"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["optimal"] and body["objective"] == 2 and body["distance"]["kind"] == "walk"
    assert [u["building_id"] for u in body["uncoverable"]] == [t.buildings["north"]]
    assert any("set covering was solved" in n for n in body["notes"])
    assert client.post("/api/inspection/siting", json={"enclosure_id": t.enclosure_id, "problem": "max_cover"},
                       headers=h["insp1"]).status_code == 422
    assert client.post("/api/inspection/siting", json={"enclosure_id": t.enclosure_id, "problem": "max_cover",
                                                       "p": 99}, headers=h["insp1"]).status_code == 422


def test_patrols_over_http(site):
    client, _, t, h = site
    start = list(ll(0, 20))
    body = {"start": start, "checkpoint_ids": [t.checkpoints["南门"], t.checkpoints["北门"]],
            "building_ids": [t.buildings["east"]]}
    r = client.post("/api/inspection/patrols", json=body, headers=h["insp1"])
    assert r.status_code == 200, r.text
    tour = r.json()
    assert tour["network"] == "walk" and tour["optimal"] and tour["shape"] == "closed"
    assert {s["key"] for s in tour["stops"]} == {f"checkpoint:{t.checkpoints['南门']}",
                                                 f"checkpoint:{t.checkpoints['北门']}",
                                                 f"building:{t.buildings['east']}"}
    assert tour["geometry"]["type"] == "LineString" and tour["length_m"] > 0
    assert any(s["name"] == "南街" for leg in tour["legs"] for s in leg["steps"])
    drive = client.post("/api/inspection/patrols", json={**body, "end": list(ll(400, 20)), "network": "drive"},
                        headers=h["insp1"])    # 北街 is not connected to 南街 for cars (the lanes are footways)
    assert drive.status_code == 422 and drive.json()["unreachable"] == [f"checkpoint:{t.checkpoints['北门']}"]
    assert "北门" in drive.json()["detail"]
    body["checkpoint_ids"] = [t.checkpoints["南门"]]
    end = client.post("/api/inspection/patrols", json={**body, "end": list(ll(400, 20)), "network": "drive"},
                      headers=h["insp1"])
    assert end.status_code == 200 and end.json()["shape"] == "to_end" and end.json()["network"] == "drive"
    empty = client.post("/api/inspection/patrols", json={"start": start}, headers=h["insp1"])
    assert empty.status_code == 422
    island = client.post("/api/inspection/patrols", json={"start": start, "building_ids": [t.buildings["island"]]},
                         headers=h["insp1"])
    assert island.status_code == 422 and island.json()["unreachable"] == [f"building:{t.buildings['island']}"]
    assert "cannot be reached" in island.json()["detail"]
    missing = client.post("/api/inspection/patrols", json={"start": start, "checkpoint_ids": [999999]},
                          headers=h["insp1"])
    assert missing.status_code == 404 and missing.json()["stops"] == ["checkpoint:999999"]
    streets = client.post("/api/inspection/patrols/streets", json={"grid_id": t.grids["west"]}, headers=h["insp1"])
    assert streets.status_code == 200 and streets.json()["optimal"]
    assert streets.json()["length_m"] == pytest.approx(1180, abs=1)
    assert client.post("/api/inspection/patrols/streets", json={}, headers=h["insp1"]).status_code == 422
