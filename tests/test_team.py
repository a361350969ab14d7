"""The grid team (issue 17 §1): team assignments, the checks, tasks, and what each team role sees.

One small community (tests/factories.py): a west grid with three buildings (two of them in micro-grid 1, the third
in micro-grid 2) and an east grid with one; two households per building.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import text

from spatial.store import users
from tests import factories
from tests.factories import COMMUNITY

PASSWORD = "correct horse battery"
WEST, EAST = f"{COMMUNITY}01", f"{COMMUNITY}02"
USERS = (("admin1", "admin", None, None), ("planner1", "planner", COMMUNITY, None),
         ("worker_w1", "grid_worker", None, WEST), ("worker_w2", "grid_worker", None, WEST),
         ("worker_e", "grid_worker", None, EAST), ("police1", "police", None, None),
         ("medic1", "medical", None, None), ("head1", "building_head", None, None),
         ("unit1", "unit_head", None, None), ("vol1", "volunteer", None, None), ("viewer1", "viewer", COMMUNITY, None))


@pytest.fixture(scope="module")
def password_hash() -> str:
    return users.hash_password(PASSWORD)


def build(sessions, password_hash: str) -> tuple[dict, dict]:
    """The community, its buildings, micro-grids and households, and :data:`USERS`: (bearer headers by user
    name, ids: ``mg1``, ``mg2``, ``h0``…``h3`` (household ids per building), ``codes`` and ``buildings``)."""
    headers, ids = {}, {}
    with sessions.begin() as s:
        west, east = factories.two_grids(s)
        buildings = [factories.building(s, west, 20, 20, 1), factories.building(s, west, 60, 20, 2),
                     factories.building(s, west, 20, 120, 3), factories.building(s, east, 260, 20, 1)]
        for seq, members in ((1, buildings[:2]), (2, buildings[2:3])):
            mg = s.scalar(text("INSERT INTO micro_grids (grid_id, seq, boundary) VALUES (:g, :seq, "
                               "ST_Multi(ST_Envelope(ST_Collect(ARRAY(SELECT footprint FROM buildings "
                               "WHERE id = ANY(:b)))))) RETURNING id"), {"g": west.id, "seq": seq,
                                                                        "b": [b.id for b in members]})
            s.execute(text("UPDATE buildings SET micro_grid_id = :m WHERE id = ANY(:b)"),
                      {"m": mg, "b": [b.id for b in members]})
            ids[f"mg{seq}"] = mg
        for i, b in enumerate(buildings):
            for room in ("0101", "0201"):
                ids.setdefault(f"h{i}", []).append(s.scalar(text(
                    "INSERT INTO households (building_id, unit, floor, room, head_name, head_phone) "
                    "VALUES (:b, '1', :f, :r, '张三丰', '13812345678') RETURNING id"),
                    {"b": b.id, "f": int(room[:2]), "r": room}))
        s.flush()
        ids["codes"] = [s.scalar(text("SELECT code FROM buildings WHERE id = :i"), {"i": b.id}) for b in buildings]
        ids["buildings"] = [b.id for b in buildings]
        for name, user in factories.users_with_grids(s, USERS, password_hash).items():
            headers[name] = {"Authorization": "Bearer " + users.issue_token(s, user, 3600)[0]}
    return headers, ids


@pytest.fixture
def env(app_env, password_hash):
    client, sessions = app_env
    return client, sessions, *build(sessions, password_hash)


def _assign(client, headers, **body):
    return client.post("/api/team/assignments", headers=headers["planner1"], json=body)


def test_the_vocabularies_and_the_migration_agree():
    import importlib.util
    from pathlib import Path

    from spatial import access, vocab

    path = Path(access.__file__).parent / "store" / "migrations" / "versions" / "0026_grid_team.py"
    spec = importlib.util.spec_from_file_location("grid_team_migration", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert set(vocab.ROLES) == set(migration.ROLES_BEFORE + migration.TEAM_ROLES)
    assert set(migration.TEAM_ROLES) == set(access.TEAM_ROLES) == set(vocab.TEAM_DUTIES) - {"leader", "worker"}
    assert set(migration.TASK_KINDS) == set(vocab.TASK_KINDS)
    assert set(access.ROLE_RANK) == set(vocab.ROLES)


def make_team(client, headers, ids):
    """police1 on the west grid, medic1 and vol1 on it too, head1 on building 1, unit1 on unit 1 of building 3."""
    for body in ({"username": "worker_w1", "duty": "leader", "grid_code": WEST, "contact": "13900000001"},
                 {"username": "police1", "duty": "police", "grid_code": WEST, "contact": "13900000002"},
                 {"username": "medic1", "duty": "medical", "grid_code": WEST},
                 {"username": "vol1", "duty": "volunteer", "grid_code": WEST},
                 {"username": "head1", "duty": "building_head", "building_code": ids["codes"][0]},
                 {"username": "unit1", "duty": "unit_head", "building_code": ids["codes"][2], "unit": "1"}):
        answer = _assign(client, headers, **body)
        assert answer.status_code == 201, (body, answer.text)


def test_assignments_the_team_page_and_the_checks(env):
    client, sessions, headers, ids = env
    before = client.get("/api/team/checks", headers=headers["planner1"]).json()
    assert [(g["code"], g["workers"]) for g in before["grids"]] == [(WEST, 2), (EAST, 1)]
    assert before["short_of_workers"] == [{"grid_code": EAST, "workers": 1}]
    assert before["without_leader"] == [WEST, EAST] and before["without_police"] == [WEST, EAST]
    assert [m["seq"] for m in before["micro_grids_without_head"]] == [1, 2]

    make_team(client, headers, ids)
    after = client.get("/api/team/checks", headers=headers["planner1"]).json()
    assert after["without_leader"] == [EAST] and after["without_police"] == [EAST]
    assert after["micro_grids_without_head"] == [{"grid_code": WEST, "id": ids["mg2"], "seq": 2}]  # unit heads do not count

    page = client.get(f"/api/team/grids/{WEST}", headers=headers["worker_w2"])
    assert page.status_code == 200, page.text
    members = [(m["username"], m["duty"], m["target_kind"]) for m in page.json()["members"]]
    assert members[0] == ("worker_w1", "leader", "grid")
    assert set(members) == {("worker_w1", "leader", "grid"), ("worker_w2", "worker", "grid"),
                            ("police1", "police", "grid"), ("medic1", "medical", "grid"),
                            ("vol1", "volunteer", "grid"), ("head1", "building_head", "building"),
                            ("unit1", "unit_head", "building")}
    assert {m["username"]: m["contact"] for m in page.json()["members"]}["police1"] == "13900000002"
    assert [(g["seq"], g["buildings"], g["heads"]) for g in page.json()["micro_grids"]] == [(1, 2, ["head1"]), (2, 1, [])]

    # refusals: the duty must be the role's, fit the target, be new; planners only; the team page for colleagues
    assert _assign(client, headers, username="vol1", duty="police", grid_code=WEST).json()["code"] == "team.duty_role"
    assert _assign(client, headers, username="police1", duty="police",
                   building_code=ids["codes"][0]).json()["code"] == "team.target"
    assert _assign(client, headers, username="police1", duty="police", grid_code=WEST).status_code == 409
    assert _assign(client, headers, username="police1", duty="police").json()["code"] == "team.one_target"
    assert client.post("/api/team/assignments", headers=headers["worker_w1"],
                       json={"username": "vol1", "duty": "volunteer", "grid_code": EAST}).status_code == 403
    for name in ("viewer1", "vol1", "head1", "medic1"):
        assert client.get(f"/api/team/grids/{WEST}", headers=headers[name]).status_code == 403, name
    assert client.get(f"/api/team/grids/{EAST}", headers=headers["police1"]).status_code == 404  # not their grid

    # an assignment from tomorrow: answered, not yet on the team
    later = _assign(client, headers, username="vol1", duty="volunteer", building_code=ids["codes"][3],
                    valid_from=(date.today() + timedelta(days=1)).isoformat() + "T08:00:00+08:00")
    assert later.status_code == 201 and later.json()["target"] == ids["codes"][3], later.text
    assert "vol1" not in {m["username"] for m in client.get(f"/api/team/grids/{EAST}", headers=headers["planner1"]).json()["members"]}

    # ending an assignment: it leaves the team and the police check flags the grid again
    police = next(m for m in page.json()["members"] if m["username"] == "police1")
    ended = client.delete(f"/api/team/assignments/{police['assignment_id']}", headers=headers["planner1"])
    assert ended.status_code == 200 and ended.json()["valid_to"] is not None
    assert client.delete(f"/api/team/assignments/{police['assignment_id']}", headers=headers["planner1"]).status_code == 409
    assert WEST in client.get("/api/team/checks", headers=headers["planner1"]).json()["without_police"]
    assert client.get(f"/api/team/grids/{WEST}", headers=headers["police1"]).status_code == 404  # area gone
    with sessions() as s:
        actions = s.execute(text("SELECT action, count(*) FROM audit_log WHERE username = 'planner1' "
                                 "AND action IN ('team_assign', 'team_end', 'assign') GROUP BY action")).all()
        reads = s.scalar(text("SELECT count(*) FROM audit_log WHERE username = 'worker_w2' AND action = 'read_team'"))
    assert dict(actions) == {"assign": 1, "team_assign": 6, "team_end": 1}
    assert reads == 1  # the team page's contacts: every read audited


def _centre_of(sessions, building_id: int, dx_m: float = 0.0) -> tuple[float, float]:
    with sessions() as s:
        return tuple(s.execute(text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(ST_Translate(ST_Transform(ST_Centroid(footprint), "
            "4547), :dx, 0), 4326) AS p FROM buildings WHERE id = :b) q"), {"b": building_id, "dx": dx_m}).one())


def test_what_building_heads_police_and_volunteers_see(env):
    client, sessions, headers, ids = env
    make_team(client, headers, ids)
    own, other, east = ids["h0"][0], ids["h1"][0], ids["h3"][0]
    # a building head: their building's households, masked; no other; no edit, no reveal
    sheet = client.get(f"/api/field/households/{own}", headers=headers["head1"])
    assert sheet.status_code == 200, sheet.text
    assert sheet.json()["room"] == "0101" and "13812345678" not in sheet.text and "张三丰" not in sheet.text
    assert client.get(f"/api/field/households/{other}", headers=headers["head1"]).status_code == 404
    lon, lat = _centre_of(sessions, ids["buildings"][0])
    near = client.get("/api/field/nearby", headers=headers["head1"], params={"lon": lon, "lat": lat, "radius": 500})
    assert near.status_code == 200, near.text
    assert sorted(h["id"] for h in near.json()["households"]) == sorted(ids["h0"])
    assert all(h["head_phone"] in (None, "138****5678") for h in near.json()["households"])
    assert client.post(f"/api/field/households/{own}/reveal", headers=headers["head1"],
                       json={"reason": "送物资核对", "fields": ["head_phone"]}).status_code == 403
    assert client.patch(f"/api/field/households/{own}", headers={**headers["head1"], "If-Match": sheet.headers["ETag"]},
                        json={"floor": 3}).status_code == 403
    # ... and reports a case at their building, not elsewhere
    case = {"category": "environment.garbage", "description": "楼道堆放杂物"}
    here = client.post("/api/cases", headers=headers["head1"], json={**case, "x": lon, "y": lat})
    assert here.status_code == 201, here.text
    assert here.json()["reporter_kind"] == "building_head"
    elon, elat = _centre_of(sessions, ids["buildings"][3])
    there = client.post("/api/cases", headers=headers["head1"], json={**case, "x": elon, "y": elat})
    assert there.status_code == 403 and there.json()["code"] == "case.outside_buildings"
    # a police officer: the households of their grid, masked; not the east grid's
    assert client.get(f"/api/field/households/{other}", headers=headers["police1"]).status_code == 200
    assert client.get(f"/api/field/households/{east}", headers=headers["police1"]).status_code == 404
    # medical staff, volunteers: no household outside their tasks
    for name in ("medic1", "vol1"):
        assert client.get(f"/api/field/households/{own}", headers=headers[name]).status_code == 403, name
        assert client.get("/api/tasks", headers=headers[name]).json() == []


def test_tasks_lifecycle_and_who_sees_them(env):
    client, sessions, headers, ids = env
    make_team(client, headers, ids)
    due = (date.today() + timedelta(days=2)).isoformat()
    household = ids["h2"][1]
    made = client.post("/api/tasks", headers=headers["worker_w1"],
                       json={"kind": "isolation_delivery", "assignee": "vol1", "due": due,
                             "household_id": household, "note": "每日 18 点前送达"})
    assert made.status_code == 201, made.text
    task = made.json()
    assert (task["assignee"], task["done_at"], task["head_name"], task["room"], task["overdue"]) == \
        ("vol1", None, "张*", "0201", False)
    assert "13812345678" not in made.text
    care = client.post("/api/tasks", headers=headers["planner1"],
                       json={"kind": "care_visit", "assignee": "head1", "due": due, "household_id": ids["h0"][0]})
    assert care.status_code == 201, care.text
    # refusals: someone off the place's team, a place outside the caller's grids, a volunteer handing out
    off = client.post("/api/tasks", headers=headers["worker_w1"], json={"kind": "care_visit", "assignee": "worker_e",
                                                                         "due": due, "household_id": household})
    assert off.status_code == 422 and off.json()["code"] == "task.assignee"
    assert client.post("/api/tasks", headers=headers["worker_w1"],
                       json={"kind": "care_visit", "assignee": "worker_e", "due": due,
                             "household_id": ids["h3"][0]}).status_code == 404
    assert client.post("/api/tasks", headers=headers["vol1"],
                       json={"kind": "care_visit", "assignee": "vol1", "due": due,
                             "household_id": household}).status_code == 403
    head_only = client.post("/api/tasks", headers=headers["worker_w1"],
                            json={"kind": "care_visit", "assignee": "head1", "due": due, "household_id": household})
    assert head_only.json()["code"] == "task.assignee"  # a building head serves their own building only
    # who sees what: the volunteer their task; the building head theirs; the grid workers both; the east worker none
    assert [t["id"] for t in client.get("/api/tasks", headers=headers["vol1"]).json()] == [task["id"]]
    assert [t["id"] for t in client.get("/api/tasks", headers=headers["head1"]).json()] == [care.json()["id"]]
    assert {t["id"] for t in client.get("/api/tasks", headers=headers["worker_w2"]).json()} == \
        {task["id"], care.json()["id"]}
    assert client.get("/api/tasks", headers=headers["worker_e"]).json() == []
    assert client.get(f"/api/tasks/{task['id']}", headers=headers["head1"]).status_code == 404
    assert client.patch(f"/api/tasks/{task['id']}", headers=headers["medic1"], json={"done": True}).status_code == 404
    # done, undone, done
    done = client.patch(f"/api/tasks/{task['id']}", headers=headers["vol1"], json={"done": True, "note": "已送达"})
    assert done.status_code == 200 and done.json()["done_by"] == "vol1" and done.json()["note"] == "已送达"
    assert client.get("/api/tasks", headers=headers["vol1"], params={"open": True}).json() == []
    undone = client.patch(f"/api/tasks/{task['id']}", headers=headers["vol1"], json={"done": False})
    assert undone.json()["done_at"] is None
    with sessions() as s:
        audited = s.execute(text("SELECT action FROM audit_log WHERE username = 'vol1' ORDER BY id")).scalars().all()
    assert {"read_masked", "task_done", "task_undone"} <= set(audited)
