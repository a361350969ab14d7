"""Every operation of the API, read from its own OpenAPI document: without a token it answers 401 (except a
short list of public ones that carry no data about people); a viewer never changes anything; roles without
an area never see a household; every refusal is in the audit log."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from fixtures.synthetic_city import load_city
from spatial.store import users
from spatial.store.models import User

PASSWORD = "correct horse battery"
COMMUNITY = "440399001001"
GRID = f"{COMMUNITY}01"

PUBLIC = {  # what anyone may read: how to log in, the service's health and vocabularies, map styles
    ("POST", "/api/auth/token"), ("GET", "/api/health"), ("GET", "/api/vocab"), ("GET", "/ogc"),
    ("GET", "/ogc/conformance"), ("GET", "/ogc/api"), ("GET", "/tiles/style.json"), ("GET", "/tiles/tiles.json"),
    ("GET", "/tiles/{layer}.json"),
}
PATH_VALUES = {"code": GRID, "layer": "grids", "name": "grids", "collectionId": "grids", "featureId": "1",
               "z": "14", "x": "13348", "y": "7130", "kind": "grids"}


def _path(template: str) -> str:
    if template == "/api/export/communities/{code}":
        return f"/api/export/communities/{COMMUNITY}"
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "1"), template)


@pytest.fixture(scope="module")
def operations():
    from api.app import create_app
    from gridgov.settings import Settings

    paths = create_app(Settings(database_url="postgresql://unused/unused")).openapi()["paths"]
    return sorted((method.upper(), path) for path, ops in paths.items() for method in ops)


@pytest.fixture
def env(app_env):
    client, sessions = app_env
    password_hash = users.hash_password(PASSWORD)
    tokens = {}
    with sessions.begin() as s:
        load_city(s, households=300, seed=7)
        for name, role, scope in (("viewer1", "viewer", "440399001000"), ("nobody", "planner", None),
                                  ("auditor1", "auditor", None)):
            user = User(username=name, password_hash=password_hash, role=role, scope_code=scope)
            s.add(user)
            s.flush()
            tokens[name] = {"Authorization": "Bearer " + users.issue_token(s, user, 3600)[0]}
    return client, sessions, tokens


def test_the_public_list_is_short_and_every_listed_operation_exists(operations):
    assert PUBLIC <= set(operations)
    assert len(operations) > 50 and len(PUBLIC) < 10


def test_every_other_operation_needs_a_token(env, operations):
    client, _, _ = env
    unguarded = []
    for method, path in operations:
        if (method, path) in PUBLIC:
            continue
        response = client.request(method, _path(path), json={})
        if response.status_code != 401:
            unguarded.append((method, path, response.status_code))
    assert unguarded == []


def test_a_viewer_changes_nothing_and_each_refusal_is_audited(env, operations):
    client, sessions, tokens = env
    writes = [(m, p) for m, p in operations if m != "GET" and not p.startswith("/api/auth/")]
    assert len(writes) > 20
    with sessions.begin() as s:
        before = s.execute(text("SELECT (SELECT max(version) FROM grids), (SELECT count(*) FROM grids), "
                                "(SELECT count(*) FROM campaigns), (SELECT count(*) FROM enclosures)")).one()
    accepted = []
    for method, path in writes:
        response = client.request(method, _path(path), headers=tokens["viewer1"], json={})
        if response.status_code < 300 and not path.endswith(("/propose", "/siting", "/patrols", "/patrols/streets",
                                                               "/route")):
            accepted.append((method, path, response.status_code))
    assert accepted == []
    with sessions.begin() as s:
        after = s.execute(text("SELECT (SELECT max(version) FROM grids), (SELECT count(*) FROM grids), "
                               "(SELECT count(*) FROM campaigns), (SELECT count(*) FROM enclosures)")).one()
        refused = s.scalar(text("SELECT count(*) FROM audit_log WHERE action = 'refused' AND username = 'viewer1' "
                                "AND result LIKE 'refused 403%'"))
    assert after == before
    assert refused > 0


@pytest.mark.parametrize("name", ["nobody", "auditor1"])
def test_roles_without_an_area_see_no_household(env, name):
    client, sessions, tokens = env
    with sessions.begin() as s:
        lon, lat = s.execute(text("SELECT ST_X(ST_Centroid(boundary)), ST_Y(ST_Centroid(boundary)) FROM grids "
                                  "WHERE code = :c"), {"c": GRID}).one()
    nearby = client.get("/api/field/nearby", headers=tokens[name], params={"lon": lon, "lat": lat, "radius": 300})
    assert nearby.status_code in (200, 403)
    if nearby.status_code == 200:
        assert nearby.json()["households"] == []
    bundle = client.get(f"/api/export/communities/{COMMUNITY}", headers=tokens[name])
    assert bundle.status_code == 403
