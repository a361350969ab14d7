"""The audit answers "who saw household X": every path that reads, reveals or exports household data (and a
refusal of a household's endpoint) names its households in ``audit_log.household_ids``, and the auditor searches
by one household (GET /api/audit?household=)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from fixtures.synthetic_city import load_city
from spatial.store import audit, migrate, users
from spatial.store.engine import make_engine
from tests.factories import users_with_grids

PASSWORD = "correct horse battery"
COMMUNITY = "440399001001"
GRID = f"{COMMUNITY}01"
USERS = (("worker1", "grid_worker", None, GRID), ("planner1", "planner", "440399001000", None),
         ("auditor1", "auditor", None, None), ("admin1", "admin", None, None))


@pytest.fixture
def env(app_env):
    """The app on a synthetic community, a bearer token per user, a household of worker1's grid (``mine``) with
    the position of its building, and a household of another grid of the community (``other``)."""
    client, sessions = app_env
    password_hash = users.hash_password(PASSWORD)
    headers = {}
    with sessions.begin() as s:
        load_city(s, households=900, seed=5)
        for name, user in users_with_grids(s, USERS, password_hash).items():
            headers[name] = {"Authorization": "Bearer " + users.issue_token(s, user, 3600)[0]}
        pick = """SELECT h.id, ST_X(ST_PointOnSurface(b.footprint)) AS x, ST_Y(ST_PointOnSurface(b.footprint)) AS y
                  FROM households h JOIN buildings b ON b.id = h.building_id JOIN grids g ON g.id = b.grid_id
                  WHERE g.code {op} :g ORDER BY h.id LIMIT 1"""
        mine = s.execute(text(pick.format(op="=")), {"g": GRID}).one()
        other = s.execute(text(pick.format(op="<>")), {"g": GRID}).one()
    return client, sessions, headers, mine, other


def found(client, headers, household: int) -> list[dict]:
    page = client.get("/api/audit", headers=headers["auditor1"], params={"household": household})
    assert page.status_code == 200, page.text
    assert page.json()["total"] == len(page.json()["entries"])
    entries = page.json()["entries"]
    assert all(household in e["household_ids"] for e in entries)  # the auditor sees which households, and who wrote
    assert all(e["db_user"] for e in entries)
    return entries


def test_every_household_path_makes_the_household_findable_and_no_other(env):
    client, sessions, headers, mine, other = env
    worker = headers["worker1"]
    near = client.get("/api/field/nearby", headers=worker, params={"lon": mine.x, "lat": mine.y, "radius": 30})
    assert near.status_code == 200 and mine.id in {h["id"] for h in near.json()["households"]}
    walk = client.get("/api/field/nearby", headers=worker,
                      params={"lon": mine.x, "lat": mine.y, "radius": 60, "mode": "walk", "purpose": "on foot"})
    assert walk.status_code == 200 and mine.id in {h["id"] for h in walk.json()["households"]}
    campaign = client.post("/api/field/campaigns", headers=headers["planner1"],
                           json={"name": "冬季排查", "division_code": COMMUNITY}).json()["id"]
    left = client.get(f"/api/field/campaigns/{campaign}/unvisited", headers=worker)
    assert left.status_code == 200 and mine.id in {f["id"] for f in left.json()["features"]}
    assert client.post(f"/api/field/households/{mine.id}/reveal", headers=worker,
                       json={"reason": "visit follow-up"}).status_code == 200
    assert client.get(f"/api/export/communities/{COMMUNITY}", headers=headers["admin1"]).status_code == 200
    assert client.post(f"/api/field/households/{mine.id}/reveal", headers=headers["planner1"],
                       json={"reason": "curious"}).status_code == 403  # a refused look is found too

    entries = found(client, headers, mine.id)
    assert sorted((e["username"], e["action"], e["purpose"]) for e in entries) == [
        ("admin1", "export_masked", None), ("planner1", "refused", None),
        ("worker1", "read_masked", "nearby households (field visit)"),
        ("worker1", "read_masked", "on foot"),
        ("worker1", "read_masked", f"unvisited households of campaign {campaign}"),
        ("worker1", "reveal", "visit follow-up")]
    # the other grid's household was in the community export only, not in what the worker read
    assert [e["action"] for e in found(client, headers, other.id)] == ["export_masked"]
    assert found(client, headers, 10**12) == []
    with sessions() as s:  # the search is itself audited, naming what was asked
        assert s.scalar(text("SELECT fields FROM audit_log WHERE action = 'audit_search' ORDER BY id LIMIT 1")) \
            == ["household"]


def test_a_household_search_uses_the_index(db):
    db.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(db.execute(text(
        "EXPLAIN SELECT id FROM audit_log WHERE household_ids @> ARRAY[CAST(42 AS bigint)]")).scalars())
    assert "audit_log_households_idx" in plan


def test_rows_name_households_however_the_caller_gives_them(db):
    """A household row's object_id (an id, a list, a comma-joined text) gives its households; other rows name
    households only when told; a client's text in object_id is cut, a list of ids is kept whole."""
    for object_id in (7, [7, 8], "7,8", "7"):
        audit.record(db, None, "t", object_type="household", object_id=object_id)
    audit.record(db, None, "t", object_type="community_households", object_id=COMMUNITY, households=[8, 9])
    audit.record(db, None, "t", object_type="layer", object_id="9" * 2000)
    audit.record(db, None, "t", object_type="household", object_id=list(range(1, 3001)))
    rows = db.execute(text("SELECT object_id, household_ids FROM audit_log WHERE action = 't' ORDER BY id")).all()
    assert [r.household_ids for r in rows[:6]] == [[7], [7, 8], [7, 8], [7], [8, 9], []]
    assert rows[1].object_id == "7,8" and len(rows[5].object_id) == audit.MAX_TEXT
    assert len(rows[6].object_id.split(",")) == len(rows[6].household_ids) == 3000
    total, _ = audit.search(db, audit.AuditFilter(action="t", household=8))
    assert total == 4


def test_the_migration_copies_the_ids_of_earlier_rows(fresh_db_url, pg_server):
    engine = make_engine(fresh_db_url, pool_size=1)
    try:
        with pg_server.migration_window(fresh_db_url):  # the owner may change the audit tables only while migrating
            migrate.downgrade(engine, "0008")
            with engine.begin() as conn:
                conn.execute(text("""INSERT INTO audit_log (action, object_type, object_id) VALUES
                    ('read_masked', 'household', '11,12,13'), ('reveal', 'household', '12'),
                    ('export_masked', 'community_households', '440399001001'), ('login', 'user', '12'),
                    ('refused', 'household', 'GET /api/x')"""))
            migrate.upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT action, household_ids FROM audit_log ORDER BY id")).all()
            assert [r.household_ids for r in rows] == [[11, 12, 13], [12], [], [], []]
            with pytest.raises(Exception, match="append-only"):  # the trigger is back
                conn.execute(text("UPDATE audit_log SET household_ids = '{}'"))
    finally:
        engine.dispose()
