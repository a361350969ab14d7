"""Trust: the service's database role cannot rewrite the audit log, refusals are audited, logins and reveals
are rate-limited, auditors can query the log, logging out ends a token at once, settings have no secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from fixtures.synthetic_city import load_city
from spatial.settings import Settings
from spatial.store import users
from spatial.store.checks import run_checks
from spatial.store.database import open_database
from spatial.store.engine import make_engine
from spatial.store.privileges import APP_ROLE
from tests.factories import users_with_grids

PASSWORD = "correct horse battery"
COMMUNITY = "440399001001"


# -- the database role ----------------------------------------------------------------------------------------

@pytest.fixture
def service_engine(fresh_db_url, tmp_path):
    engine = open_database(Settings(database_url=fresh_db_url, data_dir=tmp_path), service=True)
    yield engine
    engine.dispose()


def test_the_service_logs_in_as_its_own_role_and_cannot_become_the_owner(service_engine, fresh_db_url):
    """The test cluster trusts its local socket, as the embedded one does: the service logs in as gridgov_app,
    so no statement it runs can take the owner's rights back."""
    owner = make_url(fresh_db_url).username
    with service_engine.connect() as conn:
        assert conn.execute(text("SELECT session_user, current_user")).one() == (APP_ROLE, APP_ROLE)
        conn.execute(text("RESET ROLE"))
        assert conn.scalar(text("SELECT current_user")) == APP_ROLE
        with pytest.raises(DBAPIError, match="permission denied"):
            conn.execute(text(f'SET ROLE "{owner}"'))


def test_a_server_that_asks_the_service_role_for_a_password_gets_a_role_switch(fresh_db_url, monkeypatch):
    from spatial.store import privileges

    monkeypatch.setattr(privileges, "login_url", lambda url: None)
    engine = make_engine(fresh_db_url, pool_size=1)
    try:
        assert privileges.service_connection(engine, fresh_db_url) == (fresh_db_url, APP_ROLE)
    finally:
        engine.dispose()


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET result = 'forged'", "DELETE FROM audit_log",
                                       "TRUNCATE audit_log"])
def test_the_service_role_cannot_rewrite_the_audit_log(service_engine, statement):
    with service_engine.begin() as conn:
        conn.execute(text("INSERT INTO audit_log (action) VALUES ('test')"))
    with service_engine.connect() as conn, pytest.raises(DBAPIError, match="permission denied"):
        conn.execute(text(statement))
    with service_engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM audit_log WHERE action = 'test' AND result = 'ok'")) == 1


def test_the_service_role_still_reads_and_writes_the_other_tables(service_engine):
    with service_engine.begin() as conn:
        conn.execute(text("INSERT INTO divisions (code, level, name, boundary) VALUES ('440399001000', "
                          "'subdistrict', 't', ST_Multi(ST_MakeEnvelope(114, 22.5, 114.01, 22.51, 4326)))"))
        conn.execute(text("UPDATE divisions SET name = 'u' WHERE code = '440399001000'"))
        assert conn.scalar(text("SELECT name FROM divisions WHERE code = '440399001000'")) == "u"


def test_even_the_owner_cannot_truncate_the_audit_log(fresh_db_url):
    engine = make_engine(fresh_db_url, pool_size=1)
    try:
        with engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text("TRUNCATE audit_log"))
    finally:
        engine.dispose()


# -- the API ----------------------------------------------------------------------------------------------------

USERS = (("worker1", "grid_worker", None, f"{COMMUNITY}01"), ("planner1", "planner", "440399001000", None),
         ("viewer1", "viewer", "440399001000", None), ("auditor1", "auditor", None, None),
         ("admin1", "admin", None, None))


@pytest.fixture
def env(app_env):
    """The app on a small synthetic community, with one user per role (all with PASSWORD)."""
    client, sessions = app_env
    password_hash = users.hash_password(PASSWORD)
    with sessions.begin() as s:
        load_city(s, households=400, seed=5)
        users_with_grids(s, USERS, password_hash)
        household = s.scalar(text("SELECT h.id FROM households h JOIN buildings b ON b.id = h.building_id "
                                  "JOIN grids g ON g.id = b.grid_id WHERE g.code = :g ORDER BY h.id LIMIT 1"),
                             {"g": f"{COMMUNITY}01"})
    return client, sessions, household


def login(client, name, password=PASSWORD):
    return client.post("/api/auth/token", data={"username": name, "password": password})


def bearer(client, name):
    response = login(client, name)
    assert response.status_code == 200, response.text
    return {"Authorization": "Bearer " + response.json()["access_token"]}


def audit_rows(sessions, where: str, **params):
    with sessions.begin() as s:
        return s.execute(text(f"SELECT * FROM audit_log WHERE {where} ORDER BY id"), params).mappings().all()


def settings_of(client, **changes):
    client.app.state.settings = client.app.state.settings.model_copy(update=changes)


def test_failed_logins_are_audited_then_refused_with_429_even_with_the_right_password(env):
    client, sessions, _ = env
    settings_of(client, login_max_failures=3)
    for _ in range(3):
        assert login(client, "worker1", "wrong password!").status_code == 401
    refused = login(client, "worker1")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "too many failed logins" in refused.json()["detail"]
    rows = audit_rows(sessions, "action = 'login' AND object_id = 'worker1'")
    assert [r["result"][:11] for r in rows] == ["refused 401"] * 3 + ["refused 429"]
    assert all(r["client_addr"] for r in rows)
    assert login(client, "planner1").status_code == 200  # another name is not affected


def test_failed_logins_from_one_address_are_limited_across_names(env):
    client, _, _ = env
    settings_of(client, login_max_failures_per_address=4)
    for name in ("a1", "a2", "a3", "a4"):
        assert login(client, name, "wrong password!").status_code == 401
    assert login(client, "planner1").status_code == 429


def test_a_refusal_is_audited_in_its_own_transaction(env):
    client, sessions, household = env
    response = client.post(f"/api/field/households/{household}/reveal", headers=bearer(client, "planner1"),
                           json={"reason": "check the ledger"})
    assert response.status_code == 403
    rows = audit_rows(sessions, "action = 'refused' AND username = 'planner1'")
    assert len(rows) == 1
    assert rows[0]["object_id"] == "POST /api/field/households/{household_id}/reveal"
    assert rows[0]["result"].startswith("refused 403") and rows[0]["role"] == "planner"
    assert audit_rows(sessions, "action = 'reveal'") == []


def test_reveals_are_rate_limited_per_user(env):
    client, sessions, household = env
    settings_of(client, reveal_max_per_hour=2)
    worker = bearer(client, "worker1")
    statuses = [client.post(f"/api/field/households/{household}/reveal", headers=worker,
                            json={"reason": "visit follow-up"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert len(audit_rows(sessions, "action = 'reveal' AND username = 'worker1'")) == 2
    assert len(audit_rows(sessions, "action = 'refused' AND username = 'worker1' AND result LIKE 'refused 429%'")) == 1


def test_unmasked_exports_are_rate_limited_per_user(env):
    client, sessions, _ = env
    settings_of(client, reveal_exports_max_per_hour=1)
    admin = bearer(client, "admin1")
    statuses = [client.get(f"/api/export/communities/{COMMUNITY}", headers=admin,
                           params={"reveal": "true", "purpose": "疫情流调 epidemiological tracing"}).status_code
                for _ in range(2)]
    assert statuses == [200, 429]
    assert len(audit_rows(sessions, "action = 'export_reveal' AND username = 'admin1'")) == 1
    masked = client.get(f"/api/export/communities/{COMMUNITY}", headers=admin)
    assert masked.status_code == 200  # the limit is on unmasked exports only


def test_auditors_search_the_log_and_the_search_is_logged(env):
    client, sessions, household = env
    worker = bearer(client, "worker1")
    client.post(f"/api/field/households/{household}/reveal", headers=worker, json={"reason": "visit follow-up"})
    auditor = bearer(client, "auditor1")
    page = client.get("/api/audit", headers=auditor, params={"action": "reveal", "username": "worker1"})
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["total"] == 1 and body["entries"][0]["object_id"] == str(household)
    assert body["entries"][0]["purpose"] == "visit follow-up" and body["entries"][0]["fields"]
    logins = client.get("/api/audit", headers=auditor, params={"action": "login", "limit": 2}).json()
    assert logins["total"] == 2 and len(logins["entries"]) == 2  # worker1 and auditor1 logged in
    assert logins["entries"][0]["at"] >= logins["entries"][1]["at"]
    searches = audit_rows(sessions, "action = 'audit_search'")
    assert len(searches) == 2 and searches[0]["fields"] == ["username", "action"]


@pytest.mark.parametrize("name", ["viewer1", "planner1", "worker1"])
def test_only_auditors_and_admins_read_the_audit_log(env, name):
    client, _, _ = env
    assert client.get("/api/audit", headers=bearer(client, name)).status_code == 403
    assert client.get("/api/audit", headers=bearer(client, "admin1")).status_code == 200


def test_logout_ends_the_token_at_once_for_the_api_and_tiles(env):
    client, _, _ = env
    headers = bearer(client, "viewer1")
    assert client.get("/api/auth/me", headers=headers).status_code == 200
    assert client.get("/tiles/grids/14/13348/7130.mvt", headers=headers).status_code in (200, 204)
    assert client.post("/api/auth/logout", headers=headers).status_code == 204
    assert client.get("/api/auth/me", headers=headers).status_code == 401
    assert client.get("/tiles/grids/14/13348/7130.mvt", headers=headers).status_code == 401


def test_an_expired_token_is_refused(env):
    client, sessions, _ = env
    headers = bearer(client, "viewer1")
    with sessions.begin() as s:
        s.execute(text("UPDATE auth_tokens SET expires_at = now() - interval '1 second'"))
    client.app.state.principals = None  # as after PRINCIPAL_TTL_S
    response = client.get("/api/auth/me", headers=headers)
    assert response.status_code == 401 and "expired" in response.json()["detail"]


# -- settings -----------------------------------------------------------------------------------------------------

def test_no_setting_is_a_secret_with_a_default():
    for name, field in Settings.model_fields.items():
        if any(word in name for word in ("password", "secret", "key", "token")) and name != "token_ttl_s":
            empty = field.default_factory is not None and not field.default_factory()  # e.g. no basemap keys
            assert field.default is None or empty, name
    assert Settings.model_fields["database_url"].default is None


def test_token_lifetime_is_bounded():
    with pytest.raises(ValidationError):
        Settings(token_ttl_s=30 * 24 * 3600)


def test_api_answers_are_not_cached_and_carry_security_headers(env):
    client, _, household = env
    response = client.get("/api/auth/me", headers=bearer(client, "worker1"))
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff" and response.headers["x-frame-options"] == "DENY"
    assert client.get("/api/health").headers["cache-control"] == "no-store"
    assert "no-store" not in client.get("/static/common.js").headers.get("cache-control", "")


def test_gridgov_check_reports_whether_the_service_may_change_the_audit_log(fresh_db_url, pg_server):
    """The owner cannot open the log to the service (the audit belongs to gridgov_audit); a superuser can."""
    engine = make_engine(fresh_db_url, pool_size=1)
    admin = make_engine(pg_server.url(make_url(fresh_db_url).database), pool_size=1)
    try:
        with engine.connect() as conn, Session(bind=conn) as session:
            closed = {r.name: r for r in run_checks(session)}["audit log closed to the service"]
            session.execute(text(f"GRANT DELETE ON audit_log TO {APP_ROLE}"))  # no grant option: nothing granted
            still_closed = {r.name: r for r in run_checks(session)}["audit log closed to the service"]
            session.rollback()
        with admin.begin() as conn:
            conn.execute(text(f"GRANT DELETE ON audit_log TO {APP_ROLE}"))
        with engine.connect() as conn, Session(bind=conn) as session:
            opened = {r.name: r for r in run_checks(session)}["audit log closed to the service"]
    finally:
        engine.dispose()
        admin.dispose()
    assert still_closed.ok or pg_server.cluster is None
    assert closed.ok and "only read and append" in closed.detail
    assert not opened.ok


def test_an_audit_row_naming_thousands_of_households_is_stored(fresh_db_url):
    engine = make_engine(fresh_db_url, pool_size=1)
    try:
        with engine.begin() as conn, Session(bind=conn) as session:
            from spatial.store import audit

            audit.record(session, None, "read_masked", object_type="household",
                         object_id=",".join(str(i) for i in range(100_000, 120_000)))
            assert audit.count_recent(session, "read_masked", 60) == 1
    finally:
        engine.dispose()


def test_migrations_from_several_processes_at_once_do_not_collide(fresh_db_url):
    """Web server workers start together and each brings the schema up to date (and re-grants the service role)."""
    from concurrent.futures import ThreadPoolExecutor

    from spatial.store import migrate

    engines = [make_engine(fresh_db_url, pool_size=1) for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(migrate.upgrade, engines * 3))
    finally:
        for engine in engines:
            engine.dispose()


def test_a_read_audit_row_relaxes_only_its_own_transaction(fresh_db_url):
    from spatial.access import Principal
    from spatial.store import audit

    engine = make_engine(fresh_db_url, pool_size=1)
    try:
        with engine.connect() as conn, Session(bind=conn) as session:
            audit.record_read(session, Principal(1, "w", "grid_worker"), "read_masked", object_id="1,2")
            assert session.scalar(text("SHOW synchronous_commit")) == "off"
            session.commit()
            assert session.scalar(text("SHOW synchronous_commit")) == "on"
            assert session.scalar(text("SELECT object_id FROM audit_log WHERE username = 'w'")) == "1,2"
    finally:
        engine.dispose()


# -- the client address behind a proxy ---------------------------------------------------------------------------

def test_forwarded_for_from_a_loopback_client_is_ignored_unless_it_is_a_configured_proxy(env, live_server):
    # uvicorn's own proxy_headers believed X-Forwarded-For from any loopback peer: forged audit addresses, and a
    # new address per request reset the per-address login limit
    import httpx

    client, sessions, _ = env
    base, _ = live_server
    settings_of(client, login_max_failures_per_address=3)
    for n in range(3):
        response = httpx.post(f"{base}/api/auth/token", data={"username": f"nobody{n}", "password": "wrong password!"},
                              headers={"X-Forwarded-For": f"203.0.113.{n}"})
        assert response.status_code == 401
    rows = audit_rows(sessions, "action = 'login' AND object_id LIKE 'nobody%'")
    assert [r["client_addr"] for r in rows] == ["127.0.0.1"] * 3
    limited = httpx.post(f"{base}/api/auth/token", data={"username": "planner1", "password": PASSWORD},
                         headers={"X-Forwarded-For": "198.51.100.1"})
    assert limited.status_code == 429, limited.text  # the limit holds for the real address

    settings_of(client, trusted_proxies=Settings(trusted_proxies="127.0.0.0/8,10.0.0.1").trusted_proxies)
    response = httpx.post(f"{base}/api/auth/token", data={"username": "someone", "password": "wrong password!"},
                          headers={"X-Forwarded-For": "192.0.2.66, 198.51.100.7, 10.0.0.1"})
    assert response.status_code == 401
    # the right-most address no trusted proxy wrote: 192.0.2.66 was the client's own claim
    assert audit_rows(sessions, "object_id = 'someone'")[0]["client_addr"] == "198.51.100.7"
    response = httpx.post(f"{base}/api/auth/token", data={"username": "planner1", "password": PASSWORD},
                          headers={"X-Forwarded-For": "198.51.100.8"})
    assert response.status_code == 200  # another address behind the proxy is not limited


def test_health_tells_versions_only_to_admins(env):
    client, _, _ = env
    assert client.get("/api/health").json() == {"status": "ok", "database": "reachable"}
    assert client.get("/api/health", headers={"Authorization": "Bearer forged"}).json() == {
        "status": "ok", "database": "reachable"}
    assert set(client.get("/api/health", headers=bearer(client, "planner1")).json()) == {"status", "database"}
    admin = client.get("/api/health", headers=bearer(client, "admin1")).json()
    assert admin["postgis"] and admin["pgrouting"] and admin["schema_revision"]


def test_urls_handed_out_never_echo_the_host_header(env):
    # the Host header was reflected into TileJSON, the style and OGC links (cache poisoning, phishing links)
    client, _, _ = env
    headers = {**bearer(client, "planner1"), "Host": "evil.example"}
    paths = ["/tiles/tiles.json", "/tiles/style.json", "/tiles/buildings.json", "/ogc", "/ogc/collections",
             "/ogc/collections/grids/items?limit=1", "/api/layers", "/", "/planner", "/field"]
    for path in paths:
        response = client.get(path, headers=headers)
        assert response.status_code == 200 and "evil.example" not in response.text, path
    assert client.get("/tiles/buildings.json", headers=headers).json()["tiles"][0].startswith("http://127.0.0.1:8000/")
    settings_of(client, public_url="https://grid.example.cn/gridgov/")
    tiles = client.get("/tiles/buildings.json", headers=headers).json()["tiles"][0]
    assert tiles == "https://grid.example.cn/gridgov/tiles/buildings/{z}/{x}/{y}.mvt"
    links = client.get("/ogc/collections/buildings/items?limit=1", headers=headers).json()["links"]
    assert all(link["href"].startswith("https://grid.example.cn/gridgov/ogc") for link in links), links
    assert any(link["rel"] == "next" and "offset=1" in link["href"] for link in links), links
