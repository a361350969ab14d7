"""Personal access tokens (decision 0011): made, listed and revoked (store, API, command line; audited); accepted
as the password of HTTP Basic on the read endpoints of /ogc, /tiles and the exports only, with the owner's role
and area; never a login password; refused once revoked, expired or the owner deactivated; Basic failures count
in the login throttle."""

from __future__ import annotations

import base64
import time
from datetime import timedelta

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import text

from gridgov.cli import main
from spatial.access import Principal
from spatial.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated, NotFound
from spatial.store import tokens, users
from spatial.store.engine import make_engine, make_sessionmaker
from tests import factories
from tests.conftest import login

PASSWORD = "correct horse battery"


def basic(name: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{secret}".encode()).decode()}


# -- store -----------------------------------------------------------------------------------------------
def test_a_token_is_stored_as_a_hash_shown_once_and_checked_with_its_owner(db):
    users.create_user(db, "li.na", PASSWORD, "planner", scope_code=None)
    info, secret = tokens.create_token(db, "li.na", "  QGIS office PC ", days=30, actor="cli:test")
    assert secret.startswith("ggpat_") and len(secret) == tokens.SECRET_LENGTH
    assert info.name == "QGIS office PC" and info.scopes == ("read",) and info.state == "active"
    assert info.hint == secret[:10] and secret[10:] not in repr(info)
    assert timedelta(days=30) == info.expires_at - info.created_at
    stored = db.execute(text("SELECT secret_hash, hint FROM access_tokens WHERE id = :i"), {"i": info.id}).one()
    assert stored.secret_hash == tokens.secret_digest(secret) and stored.hint == info.hint
    assert db.scalar(text("SELECT count(*) FROM access_tokens WHERE position(:s in secret_hash::text) > 0 "
                          "OR position(:s in hint) > 0"), {"s": secret}) == 0
    who = tokens.principal_for_secret(db, "li.na", secret, "10.0.0.9")
    assert (who.username, who.role, who.token_id, who.client_addr) == ("li.na", "planner", info.id, "10.0.0.9")
    for name, wrong in (("li.na", PASSWORD), ("li.na", secret[:-1] + "x"), ("other", secret), ("li.na", "")):
        with pytest.raises(NotAuthenticated, match="never your login password"):
            tokens.principal_for_secret(db, name, wrong)
    rows = db.execute(text("SELECT action, username, object_id, result FROM audit_log "
                           "WHERE object_type = 'access_token' ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("token_create", "cli:test", str(info.id), "li.na: 'QGIS office PC', read, "
                                         "30 days"), ("token_use", "li.na", str(info.id), "ok")]
    tokens.principal_for_secret(db, "li.na", secret)  # within a minute: no second use row
    assert db.scalar(text("SELECT count(*) FROM audit_log WHERE action = 'token_use'")) == 1
    assert db.scalar(text("SELECT last_used_at IS NOT NULL FROM access_tokens WHERE id = :i"), {"i": info.id})


def test_names_lifetimes_scopes_and_the_number_of_tokens_are_bounded(db):
    users.create_user(db, "li.na", PASSWORD, "viewer")
    for kwargs, message in (({"name": " "}, "1 to 64"), ({"name": "x" * 65}, "1 to 64"),
                            ({"days": 0}, "1 to 365 days"), ({"days": 366}, "1 to 365 days"),
                            ({"scopes": ("write",)}, "read-only"), ({"scopes": ()}, "read-only")):
        with pytest.raises(InvalidInput, match=message):
            tokens.create_token(db, "li.na", **{"name": "QGIS", **kwargs})
    with pytest.raises(NotFound, match="no user nobody"):
        tokens.create_token(db, "nobody", "QGIS")
    made = [tokens.create_token(db, "li.na", f"t{i}", days=365)[0] for i in range(tokens.MAX_ACTIVE)]
    with pytest.raises(Conflict, match="revoke one first"):
        tokens.create_token(db, "li.na", "one more")
    tokens.revoke_token(db, made[0].id, owner="li.na")
    tokens.create_token(db, "li.na", "one more")
    users.change_user(db, "li.na", active=False)
    with pytest.raises(Forbidden, match="deactivated"):
        tokens.create_token(db, "li.na", "after leaving")
    listed = tokens.list_tokens(db, "li.na")
    assert len(listed) == tokens.MAX_ACTIVE + 1 and listed[0].name == "one more"
    assert [t.state for t in listed].count("revoked") == 1


def test_revoked_expired_and_deactivated_tokens_are_refused(db):
    users.create_user(db, "li.na", PASSWORD, "viewer")
    users.create_user(db, "wang.fang", PASSWORD, "viewer")
    revoked, expired, kept = (tokens.create_token(db, "li.na", name) for name in ("a", "b", "c"))
    with pytest.raises(NotFound):  # not hers: as if it did not exist
        tokens.revoke_token(db, revoked[0].id, owner="wang.fang")
    tokens.revoke_token(db, revoked[0].id, owner="li.na")
    tokens.revoke_token(db, revoked[0].id, owner="li.na")  # again: nothing more
    assert db.scalar(text("SELECT count(*) FROM audit_log WHERE action = 'token_revoke'")) == 1
    db.execute(text("UPDATE access_tokens SET created_at = now() - interval '2 days', "
                    "expires_at = now() - interval '1 second' WHERE id = :i"), {"i": expired[0].id})
    for _, secret in (revoked, expired):
        with pytest.raises(NotAuthenticated):
            tokens.principal_for_secret(db, "li.na", secret)
    tokens.principal_for_secret(db, "li.na", kept[1])
    users.change_user(db, "li.na", active=False)
    with pytest.raises(NotAuthenticated):
        tokens.principal_for_secret(db, "li.na", kept[1])
    users.change_user(db, "li.na", active=True)  # back before it expired: it works again
    assert tokens.principal_for_secret(db, "li.na", kept[1]).username == "li.na"
    with pytest.raises(Forbidden, match="needs a login"):
        tokens.refuse_token(Principal(1, "li.na", "admin", token_id=kept[0].id), "revealing households")
    tokens.refuse_token(Principal(1, "li.na", "admin"), "revealing households")


# -- HTTP ------------------------------------------------------------------------------------------------
@pytest.fixture
def env(app_env):
    """The app with two grids and buildings, a worker of the west grid, a viewer, an admin; a worker's token."""
    client, sessions = app_env
    with sessions.begin() as s:
        west, east = factories.two_grids(s)
        factories.building(s, west, 20, 20, number=1, households=150, residents=380)
        factories.building(s, east, 240, 60, number=1, households=90, residents=200)
        users.create_user(s, "worker", PASSWORD, "grid_worker", grid_codes=(west.code,))
        users.create_user(s, "viewer1", PASSWORD, "viewer", scope_code=factories.SUBDISTRICT)
        users.create_user(s, "admin1", PASSWORD, "admin")
    bearer = login(client, "worker", PASSWORD)
    made = client.post("/api/tokens", json={"name": "QGIS office PC", "days": 30}, headers=bearer)
    assert made.status_code == 201, made.text
    return client, sessions, bearer, made.json()


def test_the_api_makes_lists_and_revokes_own_tokens_and_admins_anyones(env):
    client, sessions, bearer, made = env
    assert made["username"] == "worker" and made["scopes"] == ["read"] and made["state"] == "active"
    assert made["secret"].startswith(made["hint"])
    listed = client.get("/api/tokens", headers=bearer).json()
    assert [(t["id"], t["name"]) for t in listed] == [(made["id"], "QGIS office PC")] and "secret" not in listed[0]
    for body, where in (({"name": ""}, "name"), ({"name": "x", "days": 366}, "days"),
                        ({"name": "x", "scopes": ["write"]}, "scopes")):
        refused = client.post("/api/tokens", json=body, headers=bearer)
        assert refused.status_code == 422 and where in refused.json()["detail"], refused.text
    viewer = login(client, "viewer1", PASSWORD)
    assert client.get("/api/tokens", params={"user": "worker"}, headers=viewer).status_code == 403
    assert client.get("/api/tokens", params={"all": "true"}, headers=viewer).status_code == 403
    assert client.get("/api/tokens", headers=viewer).json() == []
    assert client.delete(f"/api/tokens/{made['id']}", headers=viewer).status_code == 404  # not the viewer's
    admin = login(client, "admin1", PASSWORD)
    assert [t["username"] for t in client.get("/api/tokens", params={"all": "true"}, headers=admin).json()] == [
        "worker"]
    assert client.get("/api/tokens", params={"user": "worker"}, headers=admin).json()[0]["id"] == made["id"]
    second = client.post("/api/tokens", json={"name": "laptop"}, headers=bearer).json()
    assert client.delete(f"/api/tokens/{second['id']}", headers=bearer).status_code == 204
    assert client.delete(f"/api/tokens/{made['id']}", headers=admin).status_code == 204
    assert {t["state"] for t in client.get("/api/tokens", headers=bearer).json()} == {"revoked"}
    assert client.post("/api/tokens", json={"name": "x"}, headers=basic("worker", made["secret"])).status_code == 401
    with sessions() as s:
        rows = s.execute(text("SELECT action, username, object_id FROM audit_log WHERE object_type = 'access_token' "
                              "ORDER BY id")).all()
        refused = s.scalar(text("SELECT count(*) FROM audit_log WHERE action = 'refused' AND username = 'viewer1'"))
    assert [tuple(r) for r in rows] == [("token_create", "worker", str(made["id"])),
                                        ("token_create", "worker", str(second["id"])),
                                        ("token_revoke", "worker", str(second["id"])),
                                        ("token_revoke", "admin1", str(made["id"]))]
    assert refused == 3  # two admin-only lists, one probe at another's token


def test_basic_with_a_token_reads_ogc_tiles_and_exports_with_the_owners_scope(env):
    client, sessions, _, made = env
    auth = basic("worker", made["secret"])
    collections = client.get("/ogc/collections", headers=auth)
    assert collections.status_code == 200 and len(collections.json()["collections"]) >= 3
    buildings = client.get("/ogc/collections/buildings/items", headers=auth).json()["features"]
    counts = sorted((f["properties"].get("households") for f in buildings), key=str)
    assert counts == [150, None]  # both buildings; household counts only in the worker's grid
    grids = client.get("/ogc/collections/grids/items", headers=auth).json()
    assert grids["numberMatched"] == 2
    tile = client.get("/tiles/grids/14/13348/7130.mvt", headers=auth)
    assert tile.status_code in (200, 204) and tile.headers["vary"].startswith("Authorization")
    export = client.get("/api/export/layers/grids", params={"format": "geojson"}, headers=auth)
    assert export.status_code == 200 and len(export.json()["features"]) == 2
    reveal = client.get(f"/api/export/communities/{factories.COMMUNITY}", headers=auth,
                        params={"reveal": "true", "purpose": "a check"})
    assert reveal.status_code == 403 and "not an access token" in reveal.json()["detail"]
    with sessions() as s:
        assert s.scalar(text("SELECT count(*) FROM audit_log WHERE action = 'token_use'")) == 1
        assert s.scalar(text("SELECT username FROM audit_log WHERE action = 'export' AND object_id = 'grids'")) \
            == "worker"


def test_without_credentials_or_with_a_password_the_read_endpoints_challenge_with_basic(env):
    client, _, _, made = env
    for path in ("/ogc/collections", "/ogc/collections/grids/items", "/tiles/14/13348/7130.mvt",
                 "/api/export/layers/grids"):
        bare = client.get(path)
        assert bare.status_code == 401 and bare.headers["www-authenticate"] == 'Basic realm="gridgov"', path
        assert "personal access token" in bare.json()["detail"]
        password = client.get(path, headers=basic("worker", PASSWORD))
        assert password.status_code == 401 and "never your login password" in password.json()["detail"], path
        assert password.headers["www-authenticate"] == 'Basic realm="gridgov"'
    garbled = client.get("/ogc/collections", headers={"Authorization": "Basic %%%"})
    assert garbled.status_code == 401 and "malformed" in garbled.json()["detail"]
    assert client.get("/api/auth/me").headers["www-authenticate"] == "Bearer"
    assert client.get("/ogc/collections", headers=basic("worker", made["secret"])).status_code == 200


def test_write_and_other_endpoints_refuse_tokens(env):
    client, _, _, made = env
    auth = basic("worker", made["secret"])
    for method, path in (("GET", "/api/auth/me"), ("GET", "/api/layers"), ("GET", "/api/tokens"),
                         ("POST", "/api/auth/logout"), ("POST", "/api/import/grids"),
                         ("POST", "/api/tokens"), ("DELETE", f"/api/tokens/{made['id']}")):
        refused = client.request(method, path, headers=auth)
        assert refused.status_code == 401, (method, path, refused.text)
        assert "accepted only on the read endpoints" in refused.json()["detail"], path
    bearer_shaped = client.get("/ogc/collections", headers={"Authorization": "Bearer " + made["secret"]})
    assert bearer_shaped.status_code == 401  # a token's secret is no login token


def wait_until_refused(client, path, headers, timeout_s=3.0) -> float:
    """Seconds until ``path`` answers 401 (the other processes hear of a change by NOTIFY)."""
    start = time.monotonic()
    while client.get(path, headers=headers).status_code != 401:
        assert time.monotonic() - start < timeout_s, "still accepted"
        time.sleep(0.05)
    return time.monotonic() - start


def test_revoking_or_deactivating_stops_a_remembered_token_at_once(env):
    client, sessions, bearer, made = env
    auth = basic("worker", made["secret"])
    assert client.get("/ogc/collections", headers=auth).status_code == 200  # now remembered
    assert client.delete(f"/api/tokens/{made['id']}", headers=bearer).status_code == 204
    assert client.get("/ogc/collections", headers=auth).status_code == 401  # this process forgot it itself
    other = client.post("/api/tokens", json={"name": "second"}, headers=bearer).json()
    auth = basic("worker", other["secret"])
    assert client.get("/tiles/14/13348/7130.mvt", headers=auth).status_code in (200, 204)
    with sessions.begin() as s:
        users.change_user(s, "worker", active=False, actor="cli:test", reason="left")
    assert wait_until_refused(client, "/tiles/14/13348/7130.mvt", auth) < 3
    third = client.post("/api/tokens", json={"name": "third"}, headers=login(client, "admin1", PASSWORD))
    assert third.status_code == 201 and third.json()["username"] == "admin1"
    with sessions.begin() as s:  # revoked from elsewhere (the command line): heard by NOTIFY
        auth = basic("admin1", third.json()["secret"])
        assert client.get("/ogc/collections", headers=auth).status_code == 200
        tokens.revoke_token(s, third.json()["id"], actor="cli:test")
    assert wait_until_refused(client, "/ogc/collections", auth) < 3


def test_basic_failures_count_in_the_login_throttle(env):
    client, sessions, _, made = env
    from_a, from_b = (TestClient(client.app, client=(host, 50000)) for host in ("10.0.0.1", "10.0.0.2"))
    for _ in range(5):
        assert from_a.get("/ogc/collections", headers=basic("worker", PASSWORD)).status_code == 401
    locked = from_a.get("/ogc/collections", headers=basic("worker", made["secret"]))
    assert locked.status_code == 429 and locked.headers["retry-after"]
    assert from_a.post("/api/auth/token", data={"username": "worker", "password": PASSWORD}).status_code == 429
    assert from_b.get("/ogc/collections", headers=basic("worker", made["secret"])).status_code == 200
    with sessions() as s:
        rows = s.execute(text("SELECT client_addr, left(result, 11) AS r, fields, count(*) AS n FROM audit_log "
                              "WHERE action = 'login' AND object_id = 'worker' AND username IS NULL "
                              "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")).all()
    assert [tuple(r) for r in rows] == [("10.0.0.1", "refused 401", ["access_token"], 5),
                                        ("10.0.0.1", "refused 429", [], 1),
                                        ("10.0.0.1", "refused 429", ["access_token"], 1)]


def test_the_command_line_makes_lists_and_revokes_tokens(fresh_db_url, tmp_path):
    env = {"GRIDGOV_DATABASE_URL": fresh_db_url, "GRIDGOV_DATA_DIR": str(tmp_path)}
    engine = make_engine(fresh_db_url, pool_size=1)
    with make_sessionmaker(engine).begin() as s:
        users.create_user(s, "li.na", PASSWORD, "viewer")

    def run(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(main, ["token", *args], env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    out = run("create", "QGIS office PC", "--user", "li.na", "--days", "7").splitlines()
    token_id, secret = int(out[0].split()[1]), out[-1]
    assert secret.startswith("ggpat_") and "read-only" in out[0]
    listed = run("list", "--user", "li.na")
    assert f"{token_id}\tli.na\tQGIS office PC\t{secret[:10]}…\tactive" in listed and secret not in listed
    assert "1<=x<=365" in run("create", "x", "--user", "li.na", "--days", "400", code=2)
    assert "no user nobody" in run("create", "x", "--user", "nobody", code=2)
    assert "revoked token" in run("revoke", str(token_id))
    assert "\trevoked\t" in run("list")
    assert "no token 999" in run("revoke", "999", code=2)
    with make_sessionmaker(engine)() as s:
        with pytest.raises(NotAuthenticated):
            tokens.principal_for_secret(s, "li.na", secret)
        actors = s.execute(text("SELECT action, username FROM audit_log WHERE object_type = 'access_token' "
                                "ORDER BY id")).all()
    engine.dispose()
    assert [a for a, _ in actors] == ["token_create", "token_revoke"]
    assert all(name.startswith("cli") for _, name in actors)


def test_the_openapi_document_states_the_constraints_and_the_basic_scheme():
    from api.app import create_app
    from spatial.settings import Settings

    doc = create_app(Settings(database_url="postgresql://unused/unused")).openapi()
    body = doc["components"]["schemas"]["AccessTokenCreate"]["properties"]
    assert (body["name"]["minLength"], body["name"]["maxLength"]) == (1, tokens.MAX_NAME_LENGTH)
    assert (body["days"]["minimum"], body["days"]["maximum"], body["days"]["default"]) == (
        tokens.MIN_DAYS, tokens.MAX_DAYS, tokens.DEFAULT_DAYS)
    assert doc["components"]["securitySchemes"]["TokenBasic"]["scheme"] == "basic"
    for path in ("/ogc/collections", "/tiles/{z}/{x}/{y}.mvt", "/api/export/layers/{layer}"):
        assert {"TokenBasic": []} in doc["paths"][path]["get"]["security"], path
    for path, method in (("/api/tokens", "post"), ("/api/auth/me", "get"), ("/api/import/{kind}", "post")):
        assert doc["paths"][path][method]["security"] == [{"HTTPBearer": []}], path


def test_a_token_acts_with_its_owners_role_as_it_is_now(env):
    client, sessions, _, made = env
    auth = basic("worker", made["secret"])

    def counts() -> list:
        features = client.get("/ogc/collections/buildings/items", headers=auth).json()["features"]
        return sorted((f["properties"].get("households") for f in features), key=str)

    assert counts() == [150, None]
    with sessions.begin() as s:
        users.change_user(s, "worker", role="viewer", scope_code=factories.SUBDISTRICT, actor="cli:test", reason="t")
    deadline = time.monotonic() + 3
    while counts() != [None, None]:  # viewers read no household counts; heard by NOTIFY
        assert time.monotonic() < deadline, counts()
        time.sleep(0.05)
