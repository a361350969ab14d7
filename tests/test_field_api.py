"""The field endpoints over HTTP: positions in GCJ-02 and WGS 84, clear 4xx for bad input, nothing recorded twice,
nothing leaked outside the caller's grids, reveals only for grid workers, GeoJSON of what is left, routes."""

from __future__ import annotations

import json

import pytest
from pyproj import Transformer
from sqlalchemy import select, text

from fixtures.synthetic_city import load_city
from spatial.geometry.crs import wgs84_to_gcj02
from spatial.store import nearby, users
from spatial.store.models import User
from tests.factories import users_with_grids

PASSWORD = "correct horse battery"
COMMUNITY = "440399001001"
TO_M = Transformer.from_crs(4326, 4547, always_xy=True)
TO_LONLAT = Transformer.from_crs(4547, 4326, always_xy=True)


USERS = (("worker1", "grid_worker", None, f"{COMMUNITY}01"), ("worker2", "grid_worker", None, f"{COMMUNITY}03"),
         ("planner1", "planner", "440399001000", None), ("inspector1", "inspector", COMMUNITY, None),
         ("viewer1", "viewer", "440399001000", None))


@pytest.fixture(scope="module")
def password_hash() -> str:
    return users.hash_password(PASSWORD)  # Argon2 takes ~0.3 s: once per module


@pytest.fixture
def env(app_env, password_hash):
    """The app on a synthetic community of 2,000 households, with a token per user (issued directly: the
    login endpoint itself is tested in test_api_foundation)."""
    client, sessions = app_env
    headers = {}
    with sessions.begin() as s:
        load_city(s, households=2000, seed=3)
        for name, user in users_with_grids(s, USERS, password_hash).items():
            headers[name] = {"Authorization": "Bearer " + users.issue_token(s, user, 3600)[0]}
        centre = s.execute(text("SELECT ST_X(ST_Centroid(boundary)), ST_Y(ST_Centroid(boundary)) FROM grids "
                                "WHERE code = :c"), {"c": f"{COMMUNITY}01"}).one()
    return client, sessions, headers, (float(centre[0]), float(centre[1]))


def open_campaign(client, headers, **body):
    response = client.post("/api/field/campaigns", headers=headers["planner1"],
                           json={"name": "冬季排查", "division_code": COMMUNITY, **body})
    assert response.status_code == 201, response.text
    return response.json()


def test_nearby_in_gcj02_equals_nearby_in_wgs84(env):
    client, _, headers, (lon, lat) = env
    wgs = client.get("/api/field/nearby", headers=headers["worker1"],
                     params={"lon": lon, "lat": lat, "radius": 80, "limit": 30}).json()
    glon, glat = wgs84_to_gcj02(lon, lat)
    gcj = client.get("/api/field/nearby", headers=headers["worker1"],
                     params={"lon": float(glon), "lat": float(glat), "crs": "GCJ-02", "radius": 80, "limit": 30}).json()
    assert wgs["count"] == 30 and [h["id"] for h in gcj["households"]] == [h["id"] for h in wgs["households"]]
    assert gcj["crs"] == "GCJ-02"
    # locations come back in the caller's crs: GCJ-02 is ~300-600 m off WGS 84 in this area
    (x0, y0), (x1, y1) = (TO_M.transform(*wgs["households"][0]["location"]),
                          TO_M.transform(*gcj["households"][0]["location"]))
    assert 100 < ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5 < 1000
    first = wgs["households"][0]
    assert first["head_name"].endswith("*") and "********" in first["head_id_number"]
    assert {"code", "zh", "en"} <= set(first["status"] or {"code": 1, "zh": 1, "en": 1})


BAD_NEARBY = [
    ({"crs": "EPSG:999999"}, 400), ({"crs": "mars"}, 400),
    ({"radius": -10}, 422), ({"radius": 100000}, 422), ({"limit": 0}, 422), ({"mode": "fly"}, 422),
    ({"lon": 116.39, "lat": 39.91}, 422), ({"lon": "nan"}, 422), ({"lon": "east"}, 422),
]


def test_bad_nearby_requests_get_a_clear_4xx(env):
    client, sessions, headers, (lon, lat) = env
    for params, status in BAD_NEARBY:
        response = client.get("/api/field/nearby", headers=headers["worker1"],
                              params={"lon": lon, "lat": lat, **params})
        assert response.status_code == status, (params, response.text)
        assert "detail" in response.json()
    with sessions() as s:
        assert s.execute(text("SELECT count(*) FROM audit_log WHERE action = 'read_masked'")).scalar() == 0


def test_outside_my_grids_i_get_an_empty_list_and_no_hint(env):
    client, _, headers, (lon, lat) = env
    mine = client.get("/api/field/nearby", headers=headers["worker1"], params={"lon": lon, "lat": lat, "radius": 50})
    other = client.get("/api/field/nearby", headers=headers["worker2"], params={"lon": lon, "lat": lat, "radius": 50})
    assert mine.status_code == other.status_code == 200
    assert mine.json()["count"] > 0 and other.json()["count"] == 0 and other.json()["households"] == []
    assert client.get("/api/field/nearby", headers=headers["viewer1"], params={"lon": lon, "lat": lat}).status_code == 403
    assert client.get("/api/field/nearby", params={"lon": lon, "lat": lat}).status_code == 401


def test_the_api_answers_as_the_domain_function_and_audits_exactly_what_it_returned(env):
    """The endpoint runs its straight-line answer on the async path (spatial.store.aio), the domain function on a
    session: the same households, statuses and distances, and one audit row naming exactly those returned."""
    client, sessions, headers, (lon, lat) = env
    campaign = open_campaign(client, headers)
    visited = client.get("/api/field/nearby", headers=headers["worker1"],
                         params={"lon": lon, "lat": lat, "radius": 60, "limit": 3}).json()["households"]
    for h in visited:
        assert client.post(f"/api/field/campaigns/{campaign['id']}/visits", headers=headers["worker1"], json={
            "household_id": h["id"], "result": "normal", "lon": lon, "lat": lat}).status_code == 201
    with sessions() as s:
        who = users.principal_for_user(s, s.scalars(select(User).where(User.username == "worker1")).one())
    for options in ({"radius": 150, "limit": 11}, {"radius": 150, "limit": 51}, {"radius": 90, "limit": 500},
                    {"radius": 150, "limit": 40, "only_unvisited": True},
                    {"radius": 150, "limit": 20, "campaign_id": campaign["id"], "purpose": "复核"}):
        answer = client.get("/api/field/nearby", headers=headers["worker1"], params={"lon": lon, "lat": lat, **options})
        assert answer.status_code == 200, answer.text
        got = answer.json()["households"]
        with sessions() as s:
            logged = s.execute(text("SELECT object_id, purpose FROM audit_log WHERE action = 'read_masked' "
                                    "ORDER BY id DESC LIMIT 1")).one()
            expected = nearby.nearby(s, who, lon, lat, radius_m=options["radius"], limit=options["limit"],
                                    only_unvisited=options.get("only_unvisited", False),
                                    campaign_id=options.get("campaign_id")).households
            s.rollback()
        assert 0 < len(got) <= options["limit"]
        assert [(h["id"], h["distance_m"], h["status"]["code"]) for h in got] == \
            [(h.id, h.distance_m, h.status) for h in expected], options
        assert logged.object_id == ",".join(str(h["id"]) for h in got)
        assert logged.purpose == options.get("purpose", "nearby households (field visit)")
    unvisited = client.get("/api/field/nearby", headers=headers["worker1"],
                           params={"lon": lon, "lat": lat, "radius": 60, "only_unvisited": True}).json()
    assert not {h["id"] for h in visited} & {h["id"] for h in unvisited["households"]}


def test_a_refused_nearby_is_audited_and_reads_nothing(env):
    client, sessions, headers, (lon, lat) = env
    assert client.get("/api/field/nearby", headers=headers["viewer1"], params={"lon": lon, "lat": lat}).status_code == 403
    missing = client.get("/api/field/nearby", headers=headers["worker1"],
                         params={"lon": lon, "lat": lat, "campaign_id": 999})
    assert missing.status_code == 404 and missing.json()["detail"] == "no campaign 999 in your area"
    alone = client.get("/api/field/nearby", headers=headers["worker1"],
                       params={"lon": lon, "lat": lat, "only_unvisited": True})
    assert alone.status_code == 422 and "needs a campaign" in alone.json()["detail"]
    with sessions() as s:
        rows = s.execute(text("SELECT username, action, object_id, result FROM audit_log ORDER BY id")).all()
    # the 404 of a campaign outside the worker's area is a refusal too (issue 12 item 5); nothing was read
    assert [(r.username, r.action, r.object_id) for r in rows] == [("viewer1", "refused", "GET /api/field/nearby"),
                                                                   ("worker1", "refused", "GET /api/field/nearby")]
    assert rows[0].result.startswith("refused 403")
    assert rows[1].result == "refused 404: no campaign 999 in your area"


def test_visit_flow_duplicate_and_outside_grid(env):
    client, sessions, headers, (lon, lat) = env
    campaign = open_campaign(client, headers)
    assert campaign["status"]["zh"] == "进行中" and campaign["targeted"] == 2000
    near = client.get("/api/field/nearby", headers=headers["worker1"], params={"lon": lon, "lat": lat}).json()
    assert near["campaign_id"] == campaign["id"]
    household = near["households"][0]
    assert household["status"]["code"] == "unvisited"
    glon, glat = wgs84_to_gcj02(lon, lat)
    body = {"household_id": household["id"], "result": "normal", "lon": float(glon), "lat": float(glat),
            "crs": "GCJ-02", "note": "户主在家"}
    url = f"/api/field/campaigns/{campaign['id']}/visits"
    created = client.post(url, headers=headers["worker1"], json=body)
    assert created.status_code == 201, created.text
    assert created.json()["result"]["zh"] == "已排查·正常" and created.json()["distance_m"] < 100
    assert not created.json()["far_from_building"]
    duplicate = client.post(url, headers=headers["worker1"], json={**body, "result": "refused"})
    assert duplicate.status_code == 409 and "already visited" in duplicate.json()["detail"]
    stranger = client.post(url, headers=headers["worker2"], json=body)
    assert stranger.status_code == 404 and "worker1" not in stranger.text and "户主" not in stranger.text
    for bad, status in (({"result": "perhaps"}, 422), ({"crs": "nowhere"}, 400), ({"lon": "x"}, 422)):
        assert client.post(url, headers=headers["worker1"], json={**body, **bad}).status_code == status
    assert client.post(url, headers=headers["planner1"], json=body).status_code == 403
    with sessions() as s:
        assert s.execute(text("SELECT count(*) FROM campaign_visits")).scalar() == 1
    coverage = client.get(f"/api/field/campaigns/{campaign['id']}/coverage", headers=headers["worker1"]).json()
    assert coverage["total"]["screened"] == 1 and len(coverage["grids"]) == 1
    assert coverage["total"]["coverage_pct"] == round(100 / coverage["total"]["targeted"], 2)
    assert client.get(f"/api/field/campaigns/{campaign['id']}/coverage",
                      headers=headers["planner1"]).json()["total"]["targeted"] == 2000


def test_a_visit_is_corrected_with_a_reason_and_the_list_shows_the_new_result(env):
    client, sessions, headers, (lon, lat) = env
    campaign = open_campaign(client, headers)
    near = client.get("/api/field/nearby", headers=headers["worker1"], params={"lon": lon, "lat": lat}).json()
    household = near["households"][0]["id"]
    visit = {"household_id": household, "result": "normal", "lon": lon, "lat": lat, "crs": "EPSG:4326"}
    assert client.post(f"/api/field/campaigns/{campaign['id']}/visits", headers=headers["worker1"],
                       json=visit).status_code == 201
    url = f"/api/field/campaigns/{campaign['id']}/visits/{household}/corrections"
    for bad in ({"result": "vacant"}, {"result": "vacant", "reason": " 。 "}, {"result": "maybe", "reason": "核实"},
                {"result": "vacant", "reason": "x" * 501}):
        assert client.post(url, headers=headers["worker1"], json=bad).status_code == 422, bad
    answer = client.post(url, headers=headers["worker1"], json={"result": "vacant", "reason": "误选，实为空置房"})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["result"]["zh"], body["recorded_result"]["code"]) == ("空置房", "normal")
    assert [(c["result"]["code"], c["reason"], c["corrected_by"]) for c in body["corrections"]] == \
        [("vacant", "误选，实为空置房", "worker1")]
    shown = client.get("/api/field/nearby", headers=headers["worker1"], params={"lon": lon, "lat": lat}).json()
    assert next(h for h in shown["households"] if h["id"] == household)["visit_result"]["code"] == "vacant"
    stranger = client.post(url, headers=headers["worker2"], json={"result": "normal", "reason": "核实正常"})
    assert stranger.status_code == 404
    unvisited = near["households"][1]["id"]
    left = client.post(f"/api/field/campaigns/{campaign['id']}/visits/{unvisited}/corrections",
                       headers=headers["planner1"], json={"result": "normal", "reason": "核实正常"})
    assert left.status_code == 409 and left.json()["code"] == "visits.not_visited"


def test_campaign_requests_outside_scope_or_malformed(env):
    client, _, headers, _ = env
    assert client.post("/api/field/campaigns", headers=headers["worker1"],
                       json={"name": "x", "division_code": COMMUNITY}).status_code == 403
    assert client.post("/api/field/campaigns", headers=headers["planner1"],
                       json={"name": "x", "division_code": "440399002001"}).status_code == 404
    assert client.post("/api/field/campaigns", headers=headers["planner1"],
                       json={"name": "", "division_code": COMMUNITY}).status_code == 422
    assert client.post("/api/field/campaigns", headers=headers["planner1"],
                       json={"name": "x", "division_code": "12345"}).status_code == 422
    campaign = open_campaign(client, headers)
    assert client.get(f"/api/field/campaigns/{campaign['id']}", headers=headers["worker2"]).status_code == 200
    assert client.get("/api/field/campaigns/99999", headers=headers["worker2"]).status_code == 404
    assert client.post(f"/api/field/campaigns/{campaign['id']}/close", headers=headers["planner1"]).status_code == 200
    assert client.post(f"/api/field/campaigns/{campaign['id']}/close", headers=headers["planner1"]).status_code == 409
    assert client.get("/api/field/campaigns", headers=headers["worker1"], params={"status": "open"}).json() == []


def test_reveal_needs_a_reason_and_a_grid_worker_of_the_household(env):
    client, sessions, headers, (lon, lat) = env
    household = client.get("/api/field/nearby", headers=headers["worker1"],
                           params={"lon": lon, "lat": lat}).json()["households"][0]["id"]
    url = f"/api/field/households/{household}/reveal"
    assert client.post(url, headers=headers["planner1"], json={"reason": "想看看"}).status_code == 403
    assert client.post(url, headers=headers["inspector1"], json={"reason": "核查需要"}).status_code == 403
    assert client.post(url, headers=headers["worker2"], json={"reason": "核查需要"}).status_code == 404
    assert client.post(url, headers=headers["worker1"], json={"reason": ""}).status_code == 422
    assert client.post(url, headers=headers["worker1"], json={"reason": "核查需要", "fields": ["tags"]}).status_code == 422
    shown = client.post(url, headers=headers["worker1"], json={"reason": "电话联系户主"})
    assert shown.status_code == 200
    with sessions() as s:
        raw = s.execute(text("SELECT head_id_number FROM households WHERE id = :h"), {"h": household}).scalar()
        rows = s.execute(text("SELECT username, purpose, client_addr FROM audit_log WHERE action = 'reveal'")).all()
    assert shown.json()["head_id_number"] == raw
    assert [(r.username, r.purpose) for r in rows] == [("worker1", "电话联系户主")] and rows[0].client_addr


def test_unvisited_geojson_and_route_in_the_callers_crs(env):
    client, _, headers, (lon, lat) = env
    campaign = open_campaign(client, headers)
    left = client.get(f"/api/field/campaigns/{campaign['id']}/unvisited", headers=headers["worker1"],
                      params={"crs": "GCJ-02"}).json()
    assert left["type"] == "FeatureCollection" and left["crs"] == "GCJ-02"
    feature = left["features"][0]
    assert feature["geometry"]["type"] == "Point" and feature["properties"]["head_name"].endswith("*")
    mine = client.get(f"/api/field/campaigns/{campaign['id']}", headers=headers["worker1"]).json()
    assert left["numberReturned"] == mine["targeted"]
    glon, glat = wgs84_to_gcj02(lon, lat)
    route = client.post("/api/field/route", headers=headers["worker1"],
                        json={"lon": float(glon), "lat": float(glat), "crs": "GCJ-02", "nearest": 6})
    assert route.status_code == 200, route.text
    plan = route.json()
    assert len(plan["stops"]) == 6 and plan["optimal"] and plan["geometry"]["type"] == "LineString"
    assert plan["geometry"]["coordinates"][0] == pytest.approx([float(glon), float(glat)], abs=1e-6)
    assert plan["duration_s"] == pytest.approx(plan["length_m"] / 1.2, abs=0.2)
    assert [s["arrival_m"] for s in plan["stops"]] == sorted(s["arrival_m"] for s in plan["stops"])
    bad = client.post("/api/field/route", headers=headers["worker1"], json={"lon": lon, "lat": lat, "nearest": 0})
    assert bad.status_code == 422
    foreign = client.post("/api/field/route", headers=headers["worker2"],
                          json={"lon": lon, "lat": lat, "household_ids": [feature["id"]]})
    assert foreign.status_code == 404


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), 1e308, 3600.0, 0.0])
def test_a_route_solver_time_that_is_not_a_few_seconds_is_refused(env, seconds):
    """Found by tests/test_fuzz_api.py: NaN, Infinity or 1e308 were a 500, and a finite hour would keep guided
    local search busy for that hour."""
    client, _, headers, (lon, lat) = env
    open_campaign(client, headers)
    body = json.dumps({"lon": lon, "lat": lat, "nearest": 20, "time_limit_s": seconds})  # NaN: not JSON, yet parsed
    response = client.post("/api/field/route", headers={**headers["worker1"], "Content-Type": "application/json"},
                           content=body)
    assert response.status_code == 422 and response.json()["error"] == "InvalidInput", response.text


def test_nearby_tells_the_total_within_the_radius_beside_the_households_listed(env):
    """issue 19 item 11: "100 户" was the list's limit, not how many live within the radius."""
    client, _, headers, (lon, lat) = env
    campaign = open_campaign(client, headers)
    ask = lambda **p: client.get("/api/field/nearby", headers=headers["worker1"],  # noqa: E731
                                 params={"lon": lon, "lat": lat, "radius": 150, **p}).json()
    everyone = ask(limit=500)
    assert everyone["count"] == everyone["total"] < 500
    cut = ask(limit=10)
    assert (cut["count"], cut["total"]) == (10, everyone["total"])
    first = cut["households"][0]
    assert client.post(f"/api/field/campaigns/{campaign['id']}/visits", headers=headers["worker1"], json={
        "household_id": first["id"], "result": "normal", "lon": lon, "lat": lat}).status_code == 201
    assert ask(limit=10, only_unvisited=True)["total"] == everyone["total"] - 1
    assert ask(limit=10, mode="walk")["total"] == everyone["total"]  # straight-line radius, on foot or not
    other = client.get("/api/field/nearby", headers=headers["worker2"],
                       params={"lon": lon, "lat": lat, "radius": 150, "limit": 10}).json()
    assert other["total"] < everyone["total"]  # counted in the caller's scope only


def test_my_grids_carry_their_households_for_the_maps_label(env):
    """issue 19 item 4: the field map labels a grid "01 · 403户", the figure of the grids layer."""
    client, sessions, headers, _ = env
    grids = client.get("/api/field/grids", headers=headers["worker1"]).json()["features"]
    with sessions() as s:
        expected = s.execute(text("SELECT sum(b.households) FROM buildings b JOIN grids g ON g.id = b.grid_id "
                                  "WHERE g.code = :c"), {"c": f"{COMMUNITY}01"}).scalar()
    assert [(f["properties"]["code"], f["properties"]["households"]) for f in grids] == [(f"{COMMUNITY}01", expected)]
