"""The HTTP surface of the foundation: login, tokens, layers in several CRS, clear 4xx for bad input."""

from __future__ import annotations

import pytest
import shapely
from shapely.geometry import shape
from sqlalchemy import func, select

from spatial.geometry.crs import parse_crs, to_wgs84
from spatial.store import users
from spatial.store.models import AuditEntry
from tests import factories
from tests.conftest import login

PASSWORD = "correct horse battery"


@pytest.fixture
def seeded(app_env):
    client, sessions = app_env
    with sessions.begin() as s:
        west, east = factories.two_grids(s)
        factories.building(s, west, 20, 20, number=1, households=120, residents=300)
        factories.building(s, east, 220, 20, number=1, households=80, residents=200)
        users.create_user(s, "planner1", PASSWORD, "planner", scope_code=factories.SUBDISTRICT)
        users.create_user(s, "worker1", PASSWORD, "grid_worker", grid_codes=(west.code,))
    return client, sessions


def test_login_issues_a_token_that_identifies_the_user(seeded):
    client, sessions = seeded
    headers = login(client, "worker1", PASSWORD)
    me = client.get("/api/auth/me", headers=headers).json()
    assert me["username"] == "worker1" and me["role"] == "grid_worker" and me["role_zh"] == "网格员"
    assert len(me["grid_ids"]) == 1
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "login")) == 1


@pytest.mark.parametrize("username, password", [("worker1", "wrong password!"), ("nobody", PASSWORD)])
def test_wrong_credentials_get_401_with_the_same_message(seeded, username, password):
    client, _ = seeded
    response = client.post("/api/auth/token", data={"username": username, "password": password})
    assert response.status_code == 401
    assert response.json()["detail"] == "wrong user name or password"


def test_data_needs_a_valid_token_and_logout_revokes_it(seeded):
    client, _ = seeded
    assert client.get("/api/layers/grids").status_code == 401
    assert client.get("/api/layers/grids", headers={"Authorization": "Bearer forged"}).status_code == 401
    headers = login(client, "planner1", PASSWORD)
    assert client.get("/api/layers/grids", headers=headers).status_code == 200
    assert client.post("/api/auth/logout", headers=headers).status_code == 204
    assert client.get("/api/layers/grids", headers=headers).status_code == 401


def test_grids_layer_reports_households_and_area_in_metres(seeded):
    client, _ = seeded
    body = client.get("/api/layers/grids", headers=login(client, "planner1", PASSWORD)).json()
    by_code = {f["properties"]["code"]: f["properties"] for f in body["features"]}
    west = by_code[factories.COMMUNITY + "01"]
    assert west["households"] == 120 and west["residents"] == 300 and west["buildings"] == 1
    assert west["area_m2"] == pytest.approx(40_000, rel=1e-3)  # 200 m × 200 m in EPSG:4547


def test_layers_in_gcj02_are_shifted_and_convert_back(seeded):
    client, _ = seeded
    headers = login(client, "planner1", PASSWORD)
    wgs = client.get("/api/layers/buildings", headers=headers).json()
    gcj = client.get("/api/layers/buildings", params={"crs": "GCJ-02"}, headers=headers).json()
    assert gcj["crs"] == "GCJ-02"
    a, b = shape(wgs["features"][0]["geometry"]), shape(gcj["features"][0]["geometry"])
    assert 0.004 < shapely.distance(a.centroid, b.centroid) < 0.008  # ~600 m in degrees near Shenzhen
    back = to_wgs84(b, parse_crs("GCJ-02"))
    assert shapely.hausdorff_distance(a, back) < 1e-7  # ~1 cm


def test_bbox_in_another_crs_selects_the_same_features(seeded):
    client, _ = seeded
    headers = login(client, "planner1", PASSWORD)
    east = factories.metres_box(200, 0, 400, 200)
    x0, y0, x1, y1 = east.bounds
    plain = client.get("/api/layers/buildings", params={"bbox": f"{x0},{y0},{x1},{y1}"}, headers=headers).json()
    assert [f["properties"]["code"] for f in plain["features"]] == [factories.COMMUNITY + "0200001"]
    from spatial.geometry.crs import from_wgs84

    gx0, gy0, gx1, gy1 = from_wgs84(east, parse_crs("GCJ-02")).bounds
    shifted = client.get("/api/layers/buildings", headers=headers,
                         params={"bbox": f"{gx0},{gy0},{gx1},{gy1}", "bbox-crs": "GCJ-02"}).json()
    assert [f["id"] for f in shifted["features"]] == [f["id"] for f in plain["features"]]


@pytest.mark.parametrize("params, status, words", [
    ({"crs": "EPSG:999999"}, 400, "EPSG:999999"),
    ({"bbox": "1,2,3"}, 422, "4 (or 6) comma-separated numbers"),
    ({"bbox": "114.1,22.6,114.0,22.5"}, 422, "reversed"),
    ({"bbox": "114,22,200,23"}, 422, "outside"),
    ({"limit": "1000000"}, 422, "limit"),
])
def test_bad_parameters_get_a_clear_4xx(seeded, params, status, words):
    client, _ = seeded
    response = client.get("/api/layers/buildings", params=params, headers=login(client, "planner1", PASSWORD))
    assert response.status_code == status
    assert words in response.text


def test_unknown_layer_is_404_naming_the_layers(seeded):
    client, _ = seeded
    response = client.get("/api/layers/households", headers=login(client, "planner1", PASSWORD))
    assert response.status_code == 404 and "buildings" in response.json()["detail"]


def test_grid_plan_as_of_a_past_time(seeded):
    client, sessions = seeded
    headers = login(client, "planner1", PASSWORD)
    before = client.get("/api/layers/grids", headers=headers).json()
    from datetime import UTC, datetime

    moment = datetime.now(UTC).isoformat()
    from sqlalchemy import text

    from spatial.store.engine import acting_as

    with sessions.begin() as s, acting_as(s, "planner1", "rename"):
        s.execute(text("UPDATE grids SET name = '新名字' WHERE code = :c"), {"c": factories.COMMUNITY + "01"})
    then = client.get("/api/layers/grids", params={"as_of": moment}, headers=headers).json()
    now = client.get("/api/layers/grids", params={"as_of": datetime.now(UTC).isoformat()}, headers=headers).json()
    names = lambda fc: sorted(f["properties"]["name"] for f in fc["features"])  # noqa: E731
    assert names(then) == names(before) == ["东网格", "西网格"]
    assert names(now) == ["东网格", "新名字"]


def test_health_and_openapi(seeded):
    client, sessions = seeded
    with sessions.begin() as s:
        users.create_user(s, "admin1", PASSWORD, "admin")
    health = client.get("/api/health", headers=login(client, "admin1", PASSWORD)).json()  # versions: admins only
    assert health["status"] == "ok" and health["postgis"].startswith("3") and health["schema_revision"]
    assert "/api/layers/{name}" in client.get("/openapi.json").json()["paths"]


def test_oversized_body_is_refused_before_parsing(seeded):
    client, _ = seeded
    response = client.post("/api/auth/token", content=b"x" * 6_000_000,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413 and "larger than" in response.json()["detail"]
