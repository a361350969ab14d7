"""Automatic plans over HTTP on the demo neighbourhood: propose (nothing written), adopt (new versions),
regenerate micro-grids; only planners of the area."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from fixtures.demo import load_demo
from spatial.store import users
from tests.conftest import login

PASSWORD = "correct horse battery"
VILLAGE = "440304096001"


@pytest.fixture
def planner(app_env):
    client, sessions = app_env
    with sessions.begin() as s:
        load_demo(s)
        users.create_user(s, "planner1", PASSWORD, "planner", scope_code="440304096000")
        users.create_user(s, "viewer1", PASSWORD, "viewer", scope_code="440304096000")
    return client, sessions, login(client, "planner1", PASSWORD)


def active_grids(sessions):
    with sessions() as s:
        return s.execute(text("SELECT count(*) FROM grids WHERE community_code = :c AND retired_at IS NULL"),
                         {"c": VILLAGE}).scalar()


def test_propose_writes_nothing_and_adopt_writes_versions(planner):
    client, sessions, headers = planner
    before = active_grids(sessions)
    proposal = client.post("/api/plans/propose", json={"community_code": VILLAGE, "crs": "GCJ-02"}, headers=headers)
    assert proposal.status_code == 200, proposal.text
    body = proposal.json()
    assert body["grids"]["crs"] == "GCJ-02" and body["grids"]["features"]
    assert body["stats"]["share_in_range"] >= 0.9
    assert active_grids(sessions) == before
    assert proposal.headers["ETag"] == body["basis"] and body["basis"].startswith(f'"{VILLAGE}.p')
    adopted = client.post("/api/plans/adopt", headers={**headers, "If-Match": body["basis"]},
                          json={"community_code": VILLAGE, "reason": "rebalance the village"})
    assert adopted.status_code == 200, adopted.text
    assert len(adopted.json()["created"]) == len(body["grids"]["features"]) == active_grids(sessions)
    with sessions() as s:
        reasons = s.execute(text("SELECT DISTINCT reason FROM grid_versions WHERE community_code = :c AND version = 1 "
                                 "AND grid_id IN (SELECT id FROM grids WHERE retired_at IS NULL)"), {"c": VILLAGE}).scalars().all()
    assert reasons == ["rebalance the village"]


def test_grid_workers_follow_their_land_into_the_adopted_grids(planner):
    client, sessions, headers = planner
    old = VILLAGE + "01"
    with sessions.begin() as s:
        users.create_user(s, "zhang.wei", PASSWORD, "grid_worker", grid_codes=(old,))
    basis = client.post("/api/plans/propose", json={"community_code": VILLAGE}, headers=headers).json()["basis"]
    adopted = client.post("/api/plans/adopt", headers={**headers, "If-Match": basis},
                          json={"community_code": VILLAGE, "reason": "rebalance the village"}).json()
    mine = [a for a in adopted["assignments"] if a["username"] == "zhang.wei"]
    assert len(mine) == 1 and mine[0]["from_grid"] == old and adopted["assignments_left_on_retired"] == 0
    with sessions() as s:
        heir = s.execute(text("""
            SELECT g.code FROM grids g, grids r WHERE r.code = :old AND g.community_code = r.community_code
              AND g.retired_at IS NULL ORDER BY ST_Area(ST_Intersection(g.boundary, r.boundary)) DESC LIMIT 1"""),
            {"old": old}).scalar_one()
        assigned = s.execute(text("SELECT g.code FROM grid_assignments a JOIN grids g ON g.id = a.grid_id "
                                  "JOIN users u ON u.id = a.user_id WHERE u.username = 'zhang.wei'")).scalars().all()
    assert assigned == [heir] == [mine[0]["to_grid"]]


def test_adopting_a_plan_made_on_grids_changed_since_is_refused(planner):
    client, sessions, headers = planner
    basis = client.post("/api/plans/propose", json={"community_code": VILLAGE}, headers=headers).json()["basis"]
    body = {"community_code": VILLAGE, "reason": "rebalance the village"}
    assert client.post("/api/plans/adopt", headers=headers, json=body).status_code == 428
    renamed = client.get(f"/api/grids/{VILLAGE}01", headers=headers)
    assert client.patch(f"/api/grids/{VILLAGE}01", json={"name": "新名字", "reason": "rename"},
                        headers={**headers, "If-Match": renamed.headers["ETag"]}).status_code == 200
    before = active_grids(sessions)
    stale = client.post("/api/plans/adopt", headers={**headers, "If-Match": basis}, json=body)
    assert stale.status_code == 412 and "changed after this plan was proposed" in stale.json()["detail"]
    assert active_grids(sessions) == before


def test_micro_grids_of_a_grid_and_roles(planner):
    client, sessions, headers = planner
    code = VILLAGE + "01"
    viewer = client.post(f"/api/grids/{code}/micro-grids", headers=login(client, "viewer1", PASSWORD))
    assert viewer.status_code == 403
    made = client.post(f"/api/grids/{code}/micro-grids", headers=headers)
    assert made.status_code == 200, made.text
    report = made.json()
    assert report["micro_grids"] > 0 and report["gap_m2"] < 1 and report["overlap_m2"] < 1
    assert set(map(int, report["sizes"])) <= {4, 5, 6}
