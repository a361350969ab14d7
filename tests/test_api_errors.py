"""The error contract of the whole API: every 4xx has the body ``{"error", "detail", ...}`` the OpenAPI document
declares for it, values PostgreSQL refuses are the client's fault (422), a NaN is never a 500, and only a real
outage is a 503. Regressions found by tests/test_fuzz_api.py (schemathesis)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from api.errors import is_outage
from spatial.store import users
from tests import factories
from tests.conftest import login

PASSWORD = "correct horse battery"


@pytest.fixture
def client(app_env):
    client, sessions = app_env
    with sessions.begin() as s:
        factories.two_grids(s)
        users.create_user(s, "planner1", PASSWORD, "planner", scope_code=factories.SUBDISTRICT)
    client.headers.update(login(client, "planner1", PASSWORD))
    return client


def assert_error(response, status: int, kind: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["error"], str) and isinstance(body["detail"], str) and body["detail"], body
    assert kind is None or body["error"] == kind, body
    return body


def test_every_operation_declares_the_error_body_and_none_the_validation_list(client):
    doc = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in doc.get("components", {}).get("schemas", {})
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            for status in ("4XX", "503"):
                schema = responses[status]["content"]["application/json"]["schema"]
                if path.startswith("/open311/"):  # Open311's own error list, as its clients expect
                    assert schema["items"]["required"] == ["code", "description"], (method, path, status)
                    continue
                assert schema["required"] == ["error", "code", "detail"], (method, path, status)
            assert "422" not in responses, (method, path)  # 422 is one of the 4XX, with the same body


def test_request_validation_is_a_sentence_and_a_list_never_an_echo_of_the_input(client):
    response = client.post("/api/grids", json={"community_code": "x", "name": "", "geometry": {}})
    body = assert_error(response, 422, "InvalidInput")
    assert "body.community_code" in body["detail"] and "body.name" in body["detail"]
    assert {tuple(e["loc"]) for e in body["errors"]} >= {("body", "community_code"), ("body", "name")}
    assert all("input" not in e for e in body["errors"])


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_nan_or_infinity_in_a_json_body_is_a_422_not_a_500(client, value):
    # Python's JSON parser accepts NaN and Infinity; FastAPI's own handler echoed them and failed to render.
    body = json.dumps({"start": [114.0, 22.5], "time_limit_s": value})  # NaN, Infinity: not JSON, yet parsed
    response = client.post("/api/inspection/patrols", content=body, headers={"Content-Type": "application/json"})
    assert_error(response, 422, "InvalidInput")


def test_starlette_errors_have_the_same_body(client):
    assert_error(client.get("/api/no-such-thing"), 404, "NotFound")
    assert_error(client.delete("/api/layers"), 405, "MethodNotAllowed")
    assert_error(client.get("/ogc/collections/grids/items", params={"bbox": "1,2"}), 400, "InvalidInput")


@pytest.mark.parametrize("path", ["/api/grids/%00", "/api/layers/grids?community_code=%00",
                                  "/ogc/collections/grids/items/%00"])
def test_a_nul_byte_postgresql_refuses_is_a_422(client, path):
    body = assert_error(client.get(path), 422, "InvalidInput")
    assert "NUL" in body["detail"]


@pytest.mark.parametrize("path", [f"/api/field/campaigns/{2**31}", f"/api/inspection/openings/{10**30}",
                                  "/api/layers/grids?offset=100000000000000000000"])
def test_numbers_beyond_postgresql_integers_are_a_422(client, path):
    assert_error(client.get(path), 422, "InvalidInput")


def test_geojson_features_are_declared_as_geojson(client):
    doc = client.get("/openapi.json").json()
    declared = doc["paths"]["/ogc/collections/{collectionId}/items"]["get"]["responses"]["200"]["content"]
    response = client.get("/ogc/collections/grids/items")
    assert response.status_code == 200 and response.headers["content-type"] in declared


class _PgError(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize("error, outage", [
    (OperationalError("SELECT 1", {}, _PgError(None)), True),        # the connection is gone
    (OperationalError("SELECT 1", {}, _PgError("57P01")), True),     # administrator shutdown
    (OperationalError("SELECT 1", {}, _PgError("08006")), True),     # connection failure
    (OperationalError("SELECT 1", {}, _PgError("53300")), True),     # too many connections
    (OperationalError("SELECT 1", {}, _PgError("54000")), False),    # program limit exceeded: a bug, not an outage
    (ProgrammingError("SELECT 1", {}, _PgError("42P01")), False),
    (DBAPIError("SELECT 1", {}, _PgError("XX000"), connection_invalidated=True), True),
])
def test_only_an_outage_is_a_503(error, outage):
    assert is_outage(error) is outage


LONG_CRS = "EPSG:" + "9" * 4301  # int() of it raises ValueError (Python's 4,300-digit limit): was a 500
DIGITS_CRS = "EPSG:" + "9" * 40  # within the declared length, so it reaches the parser


def _crs_operations(doc: dict) -> list[tuple[str, str]]:
    """(path with path parameters filled, query parameter) of every GET operation with a CRS query parameter."""
    filled = {"{code}": "G1", "{campaign_id}": "1", "{opening_id}": "1", "{layer}": "grids", "{name}": "grids",
              "{collectionId}": "grids", "{featureId}": "1"}
    found = []
    for path, item in doc["paths"].items():
        for parameter in item.get("get", {}).get("parameters", []):
            if parameter["in"] == "query" and parameter["name"].endswith("crs"):
                concrete = path
                for name, value in filled.items():
                    concrete = concrete.replace(name, value)
                found.append((concrete, parameter["name"]))
    return found


def test_every_crs_parameter_declares_a_maximum_length(client):
    doc = client.get("/openapi.json").json()
    schemas = [p["schema"] for item in doc["paths"].values() for op in item.values()
               for p in op.get("parameters", []) if p["name"].endswith("crs")]
    schemas += [field for schema in doc["components"]["schemas"].values()
                for name, field in schema.get("properties", {}).items()
                if name.endswith("crs") and not schema["title"].endswith("Public")]  # answers echo a parsed name
    assert len(schemas) > 30
    for schema in schemas:
        strings = [s for s in schema.get("anyOf", [schema]) if s.get("type") == "string"]
        assert strings and all(s.get("maxLength") for s in strings), schema


def test_a_crs_of_thousands_of_digits_is_a_4xx_on_every_endpoint_that_takes_one(client):
    operations = _crs_operations(client.get("/openapi.json").json())
    assert {"/api/field/nearby", "/ogc/collections/grids/items", "/api/layers/grids", "/api/grids/G1"} <= {
        path for path, _ in operations}
    for path, parameter in operations:
        for value in (LONG_CRS, DIGITS_CRS):
            params = {parameter: value, "lon": 114.05, "lat": 22.54}
            if parameter == "bbox-crs":
                params["bbox"] = "1,2,3,4"
            if parameter == "filter-crs":
                params["filter"] = "S_INTERSECTS(geometry, POINT(1 2))"
            response = client.get(path, params=params)
            assert 400 <= response.status_code < 500, (path, parameter, value[:12], response.text[:300])
            assert_error(response, response.status_code)


def test_a_crs_of_thousands_of_digits_in_a_body_is_a_4xx(client):
    response = client.post("/api/field/route", json={"lon": 114.05, "lat": 22.54, "crs": LONG_CRS})
    assert_error(response, 422, "InvalidInput")
    response = client.post("/api/field/route", json={"lon": 114.05, "lat": 22.54, "crs": DIGITS_CRS})
    assert 400 <= response.status_code < 500, response.text


def _route_running(client, path: str, *statements: str) -> str:
    """A POST route on the app that runs ``statements`` in the request's session: a real refusal by the real
    database, as a bug in a store function would meet one."""
    from sqlalchemy import text

    from api.deps import SessionDep

    def run(session) -> None:
        for statement in statements:
            session.execute(text(statement))

    run.__annotations__.update(session=SessionDep, **{"return": None})
    client.app.add_api_route(path, run, methods=["POST"])
    return path


def test_a_value_postgresql_refuses_is_answered_with_a_message_of_ours(client):
    # PostgreSQL's text named the type and echoed the value
    path = _route_running(client, "/api/test-out-of-range", "SELECT CAST('99999999999' AS integer)")
    body = assert_error(client.post(path), 422, "InvalidInput")
    assert "out of the range" in body["detail"] and body["sqlstate"] == "22003", body
    assert "integer" not in body["detail"] and "99999999999" not in body["detail"]
    body = assert_error(client.get("/api/grids/%00"), 422, "InvalidInput")
    assert "NUL" in body["detail"] and "PostgreSQL" not in body["detail"]


def test_a_duplicate_key_is_a_409_that_names_no_table_or_constraint(client):
    path = _route_running(client, "/api/test-duplicate",
                          "CREATE TEMP TABLE secret_table (code text CONSTRAINT secret_key PRIMARY KEY)",
                          "INSERT INTO secret_table VALUES ('440399001001'), ('440399001001')")
    body = assert_error(client.post(path), 409, "Conflict")
    assert "already exists" in body["detail"] and body["sqlstate"] == "23505"
    assert not any(word in json.dumps(body) for word in ("secret", "440399001001", "violates"))


def test_a_405_names_every_method_of_the_path_in_allow(client):
    # /api/grids/{code} has a route per method; Starlette's own 405 named only the first route's (GET)
    response = client.options(f"/api/grids/{factories.COMMUNITY}01")
    assert_error(response, 405, "MethodNotAllowed")
    assert response.headers["Allow"] == "GET, HEAD, PATCH"
    response = client.delete("/api/grids/merge")  # a concrete path before the templated /api/grids/{code}
    assert response.status_code == 405 and response.headers["Allow"] == "POST"


@pytest.mark.parametrize("since", ["0.5", "1700000000", "2026-11-23", "2026-11-23T10:00:00"])
def test_audit_times_are_instants_never_numbers_or_local_times(app_env, since):
    client, sessions = app_env
    with sessions.begin() as s:
        users.create_user(s, "auditor1", PASSWORD, "auditor")
    response = client.get("/api/audit", params={"since": since}, headers=login(client, "auditor1", PASSWORD))
    assert_error(response, 422, "InvalidInput")
    assert client.get("/api/audit", params={"since": "2026-11-23T10:00:00+08:00"},
                      headers=login(client, "auditor1", PASSWORD)).status_code == 200
