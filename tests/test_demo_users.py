"""The demo's accounts (``gridgov demo``): one per kind of user, each with something to do in the demo."""

from __future__ import annotations

from sqlalchemy import text

from gridgov.cli import DEMO_DEPARTMENT, DEMO_USERS, _demo_users
from spatial.store.engine import make_engine, make_sessionmaker
from tests.conftest import login


def test_the_demo_department_sees_the_cases_dispatched_to_it(app_env, fresh_db_url, tmp_path):
    from fixtures.demo import load_demo

    client, _ = app_env
    owner = make_engine(fresh_db_url, pool_size=1)
    with make_sessionmaker(owner).begin() as session:
        load_demo(session)
        password = _demo_users(session, tmp_path / "demo-credentials.txt")
        lon, lat = session.execute(text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(boundary) AS p FROM grids ORDER BY code LIMIT 1) q"
        )).one()
    owner.dispose()
    assert {role for _, role, _ in DEMO_USERS} >= {"admin", "planner", "inspector", "grid_worker", "department"}
    worker, admin, department = (login(client, name, password) for name in ("worker", "admin", "department"))
    assert client.get("/api/cases", headers=department).json()["total"] == 0
    created = client.post("/api/cases", headers=worker, json={"category": "environment.garbage", "x": lon, "y": lat,
                                                              "crs": "EPSG:4326", "description": "垃圾堆放"})
    assert created.status_code == 201, created.text
    case = created.json()
    assert case["department"] == DEMO_DEPARTMENT  # the category's department is the demo department
    for action in ({"action": "register"}, {"action": "dispatch", "assignee": DEMO_DEPARTMENT}):
        done = client.post(f"/api/cases/{case['id']}/actions", headers=admin, json=action)
        assert done.status_code == 200, done.text
    mine = client.get("/api/cases?mine=true", headers=department).json()
    assert [c["id"] for c in mine["cases"]] == [case["id"]] and mine["cases"][0]["state"] == "dispatched"


def test_the_demo_building_head_reports_for_their_building(app_env, fresh_db_url, tmp_path):
    from fixtures.demo import load_demo

    client, _ = app_env
    owner = make_engine(fresh_db_url, pool_size=1)
    with make_sessionmaker(owner).begin() as session:
        load_demo(session)
        password = _demo_users(session, tmp_path / "demo-credentials.txt")
        first, other = session.execute(text(  # the head's building, and the last building of the last grid
            "(SELECT ST_X(ST_PointOnSurface(b.footprint)), ST_Y(ST_PointOnSurface(b.footprint)) FROM buildings b "
            " JOIN grids g ON g.id = b.grid_id ORDER BY g.code, b.code LIMIT 1) UNION ALL "
            "(SELECT ST_X(ST_PointOnSurface(b.footprint)), ST_Y(ST_PointOnSurface(b.footprint)) FROM buildings b "
            " JOIN grids g ON g.id = b.grid_id ORDER BY g.code DESC, b.code DESC LIMIT 1)")).all()
    owner.dispose()
    head = login(client, "head", password)
    case = {"category": "environment.garbage", "description": "楼道堆放杂物", "crs": "EPSG:4326"}
    here = client.post("/api/cases", headers=head, json={**case, "x": first[0], "y": first[1]})
    assert here.status_code == 201, here.text
    assert here.json()["reporter_kind"] == "building_head"
    there = client.post("/api/cases", headers=head, json={**case, "x": other[0], "y": other[1]})
    assert there.status_code == 403 and there.json()["code"] == "case.outside_buildings"
