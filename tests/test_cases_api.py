"""Cases over HTTP: a resident reports without an account (GCJ-02 from a phone) and tracks the case; staff act
with If-Match; bad input is a 4xx and changes nothing; floods from one client are refused."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from spatial.geometry.crs import GCJ02, WGS84, transform_xy
from spatial.store import users
from tests import factories
from tests.conftest import login

PASSWORD = "correct horse battery"


@pytest.fixture
def town(app_env):
    client, sessions = app_env
    with sessions.begin() as s:
        west, _ = factories.two_grids(s)
        users.create_user(s, "centre1", PASSWORD, "planner", scope_code=factories.SUBDISTRICT)
        users.create_user(s, "worker1", PASSWORD, "grid_worker", grid_codes=(west.code,))
        users.create_user(s, "viewer1", PASSWORD, "viewer", scope_code=factories.SUBDISTRICT)
        west_code = west.code
    return client, sessions, west_code


def phone_position(x_m: float, y_m: float) -> tuple[float, float]:
    lon, lat = factories.metres_box(x_m, y_m, x_m + 0.1, y_m + 0.1).centroid.coords[0]
    gx, gy = transform_xy(lon, lat, WGS84, GCJ02)
    return float(gx), float(gy)


def test_a_resident_reports_from_a_phone_and_follows_the_case(town):
    client, _, west_code = town
    x, y = phone_position(50, 50)
    created = client.post("/api/public/cases", json={"category": "environment.garbage", "x": x, "y": y,
                                                      "crs": "GCJ-02", "description": "垃圾满了",
                                                      "reporter_phone": "13812345678"})
    assert created.status_code == 201, created.text
    code = created.json()["tracking_code"]
    tracked = client.get(f"/api/public/cases/{code}")
    assert tracked.status_code == 200 and tracked.json()["state"] == "reported"
    assert "138" not in tracked.text
    centre = login(client, "centre1", PASSWORD)
    [case] = client.get("/api/cases", headers=centre).json()["cases"]
    assert case["grid_code"] == west_code and case["reporter_phone"] == "138****5678"


def test_staff_act_with_if_match_and_the_workflow_refuses_what_is_not_next(town):
    client, _, _ = town
    centre = login(client, "centre1", PASSWORD)
    worker = login(client, "worker1", PASSWORD)
    x, y = phone_position(60, 60)
    created = client.post("/api/cases", headers=worker, json={"category": "facilities.streetlight", "x": x, "y": y,
                                                                "crs": "GCJ-02", "description": "路灯不亮"})
    assert created.status_code == 201, created.text
    case_id, etag = created.json()["id"], created.headers["etag"]
    wrong = client.post(f"/api/cases/{case_id}/actions", headers=centre, json={"action": "close"})
    assert wrong.status_code == 409 and "register, reject" in wrong.json()["detail"]
    ok = client.post(f"/api/cases/{case_id}/actions", headers={**centre, "If-Match": etag},
                     json={"action": "register"})
    assert ok.status_code == 200 and ok.json()["state"] == "registered"
    stale = client.post(f"/api/cases/{case_id}/actions", headers={**centre, "If-Match": etag},
                        json={"action": "dispatch", "assignee": "worker1"})
    assert stale.status_code == 412
    forbidden = client.post(f"/api/cases/{case_id}/actions", headers=worker,
                            json={"action": "dispatch", "assignee": "worker1"})
    assert forbidden.status_code == 403
    history = client.get(f"/api/cases/{case_id}/history", headers=centre).json()
    assert [h["action"] for h in history] == ["report", "register"]


@pytest.mark.parametrize("body, status", [
    ({"category": "aliens", "x": 114.0, "y": 22.5, "description": "x"}, 422),
    ({"category": "environment.garbage", "x": 0, "y": 0, "description": "x"}, 422),
    ({"category": "environment.garbage", "x": 114.0, "y": 22.5, "description": ""}, 422),
    ({"category": "environment.garbage", "x": 114.0, "y": 22.5, "description": "x", "reporter_phone": "123"}, 422),
])
def test_bad_reports_are_4xx_and_write_nothing(town, body, status):
    client, sessions, _ = town
    response = client.post("/api/public/cases", json=body)
    assert response.status_code == status, response.text
    with sessions() as s:
        assert s.execute(text("SELECT count(*) FROM cases")).scalar() == 0


def test_a_flood_from_one_phone_is_refused(town):
    client, _, _ = town
    x, y = phone_position(50, 50)
    body = {"category": "environment.garbage", "x": x, "y": y, "crs": "GCJ-02", "description": "又来了",
            "reporter_phone": "13900000000"}
    answers = [client.post("/api/public/cases", json=body).status_code for _ in range(6)]
    assert answers == [201] * 5 + [429]


def test_viewers_see_no_case_outside_and_workflow_is_public(town):
    client, _, _ = town
    assert client.get("/api/cases/workflow").json()["actions"]["verify_fail"]["to"] == "handling"
    assert any(c["code"] == "epidemic" for c in client.get("/api/cases/categories").json())
    assert client.get("/api/cases").status_code == 401
