"""Property-based fuzzing of the whole OpenAPI surface with schemathesis (issue 7, "hostile input").

The real app on a real PostGIS with the demo neighbourhood committed, called in-process (ASGI) with a
bearer token: once as ``admin`` (every operation) and once, with fewer generated cases, as the demo ``worker`` (a grid_worker of one grid) so that the scoped paths (403, 404 outside
the caller's area, filtered lists) are exercised too. For each operation schemathesis sends the examples
of the OpenAPI document and cases generated from the declared parameters and body, valid (positive) and
schema-breaking (negative) ones, NUL bytes and huge numbers included. Half of the path parameters that name a
stored object are replaced by a real one (a demo grid code, campaign, enclosure, opening...) so that cases
reach past "404 not found"; grid edits then sometimes carry a plausible ``If-Match``.

Every response must pass: no 5xx (``not_a_server_error``), a declared status code (``status_code_conformance``),
the declared content type (``content_type_conformance``), a body matching the declared schema
(``response_schema_conformance``) and declared headers (``response_headers_conformance``).

The default run is deterministic (derandomized), so it is a regression test, and must send at least
:data:`MINIMUM_REQUESTS`. ``GRIDGOV_FUZZ_SCALE=10`` draws ten times as many generated cases, at random (new ones
on each run: run it after changing a router, a schema or a store function); ``GRIDGOV_FUZZ_VERBOSE=1`` prints the
statuses seen per operation. Why each excluded operation is excluded is said in :data:`EXCLUDED`; see
docs/decisions/0009-trust.md, "Fuzzing the API".
"""

from __future__ import annotations

import os
import uuid
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
# What schemathesis' own pytest plugin builds each operation's test with: examples, coverage cases and generated
# cases in one hypothesis test (the public ``operation.as_strategy()`` has no coverage cases).
from schemathesis.generation.hypothesis.builder import HypothesisTestConfig, HypothesisTestMode, create_test
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select, text

from tests.conftest import TEMPLATE, login

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]

EXCLUDED = {
    # Revokes the bearer token the whole run authenticates with: every later case would be a 401.
    ("POST", "/api/auth/logout"),
    # Generated user names and passwords only ever get 401/422, each after an argon2 hash that is slow on
    # purpose, and failed logins may lock the account out; real logins happen in the fixture and in
    # test_api_foundation.
    ("POST", "/api/auth/token"),
    # Fetches from whatever host a generated basemap names (the internet, from a test); the proxy is tested against
    # a local tile server in test_basemaps_api and test_basemap_page.
    ("GET", "/api/basemaps/{name}/tiles/{z}/{x}/{y}"),
}

# Operations that end an object's life; run after all the others (see _fuzz).
ENDINGS = {("POST", "/api/field/campaigns/{campaign_id}/close"), ("DELETE", "/api/inspection/openings/{opening_id}"),
           ("POST", "/api/grids/{code}/retire"), ("POST", "/api/grids/merge"),
           ("POST", "/api/risk-zones/{zone_id}/lift")}

SCALE = float(os.environ.get("GRIDGOV_FUZZ_SCALE", "1"))
RANDOM = SCALE != 1
VERBOSE = os.environ.get("GRIDGOV_FUZZ_VERBOSE") == "1"

# Generated cases per operation, on top of the examples; the grid worker's run has fewer (the coverage cases are
# tests.test_api_contract's). The run must send at least MINIMUM_REQUESTS.
ADMIN_EXAMPLES = 15
WORKER_EXAMPLES = 6
MINIMUM_REQUESTS = 1800

# Grid edits that may be sent with the grid's first versions as If-Match, so that some reach the edit
# itself. Retire and merge are left out: a run that retired the demo grids would make later cases moot.
VERSIONED_EDITS = {("PATCH", "/api/grids/{code}"), ("PUT", "/api/grids/{code}/boundary"),
                   ("POST", "/api/grids/{code}/split"), ("POST", "/api/grids/{code}/revert")}


@dataclass
class FuzzEnv:
    app: Any
    headers: dict[str, dict[str, str]]
    known: dict[str, list[Any]]
    requests: Counter = field(default_factory=Counter)
    statuses: dict[tuple[str, str], Counter] = field(default_factory=lambda: defaultdict(Counter))


@pytest.fixture(scope="module")
def fuzz_env(pg_server, template_url, tmp_path_factory) -> Iterator[FuzzEnv]:
    """The app on a fresh database with the demo neighbourhood and the demo users committed (connecting as
    the service does), logged in as admin and as the demo grid worker."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from fixtures.demo import load_demo
    from gridgov.cli import _demo_users
    from spatial.settings import Settings
    from spatial.store import models
    from spatial.store.engine import make_engine, make_sessionmaker
    from spatial.store.privileges import APP_ROLE

    name = "gridgov_fuzz_" + uuid.uuid4().hex[:8]
    url = pg_server.create(name, template=TEMPLATE)
    owner = make_engine(url, pool_size=1)
    engine = make_engine(url, pool_size=4, role=APP_ROLE)
    data_dir = tmp_path_factory.mktemp("fuzz")
    try:
        with make_sessionmaker(owner).begin() as session:
            load_demo(session)
            password = _demo_users(session, data_dir / "demo-credentials.txt")
            subdistrict = session.scalar(select(models.Division.code).where(models.Division.level == "subdistrict"))
            building = session.scalar(text("SELECT min(id) FROM buildings WHERE community_code IS NOT NULL"))
        app = create_app(Settings(database_url=url, data_dir=data_dir), engine=engine)
        with TestClient(app) as client:
            headers = {user: login(client, user, password) for user in ("admin", "worker")}
            # What the demo has not: a screening campaign, and the openings found by scanning the enclosures.
            campaign = client.post("/api/field/campaigns", headers=headers["admin"],
                                   json={"name": "fuzz", "division_code": subdistrict})
            assert campaign.status_code == 201, campaign.text
            assert client.get("/api/inspection/enclosures", headers=headers["admin"]).status_code == 200
            # and risk zones: one over the subdistrict, one on a building (with a history)
            for target in ({"target_kind": "division", "target_ref": subdistrict, "level": "blue"},
                           {"target_kind": "building", "target_ref": str(building), "level": "red"}):
                zone = client.post("/api/risk-zones", headers=headers["admin"], json={**target, "reason": "fuzz"})
                assert zone.status_code == 201, zone.text
            with make_sessionmaker(owner)() as session:
                known = _known_ids(session)
            yield FuzzEnv(app, headers, known)
    finally:
        engine.dispose()
        owner.dispose()
        pg_server.drop(name)


def _known_ids(session) -> dict[str, list[Any]]:
    """Stored objects and demo positions, by the name of the path parameter, query parameter or body member
    that takes them."""
    from spatial.store.layers import LAYERS

    def first(sql: str) -> list[Any]:
        return list(session.scalars(text(sql)))

    grids = first("SELECT code FROM grids WHERE retired_at IS NULL ORDER BY code LIMIT 6")
    divisions = first("SELECT min(code) FROM divisions WHERE level IN ('community', 'subdistrict') "
                      "GROUP BY level ORDER BY level")
    points = [list(p) for p in session.execute(text(
        "(SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(footprint) AS p FROM buildings ORDER BY id "
        "LIMIT 3) b) UNION ALL (SELECT ST_X(location), ST_Y(location) FROM openings ORDER BY id LIMIT 3)"))]
    ids = {
        "campaign_id": first("SELECT id FROM campaigns ORDER BY id"),
        "enclosure_id": first("SELECT id FROM enclosures ORDER BY id LIMIT 4"),
        "opening_id": first("SELECT id FROM openings ORDER BY id LIMIT 12"),
        "household_id": first("SELECT id FROM households ORDER BY id LIMIT 4"),
        "zone_id": first("SELECT id FROM risk_zones ORDER BY id"),
        "building_id": first("SELECT id FROM buildings ORDER BY id LIMIT 2"),
        "risk_zone_id": first("SELECT id FROM risk_zones ORDER BY id"),
    }
    return {
        **ids, "code": grids + divisions,
        "name": list(LAYERS), "collectionId": list(LAYERS),
        "layer": [*LAYERS, "enclosures", "openings", "checkpoints", "grids.geojson"],
        "featureId": [*grids[:2], *map(str, first("SELECT id FROM buildings ORDER BY id LIMIT 2"))],
        "kind": ["buildings", "streets"],
        # query and body members
        "lon": [x for x, _ in points], "lat": [y for _, y in points], "start": points, "end": points,
        "location": points, "grid_code": grids, "community_code": divisions[:1], "division_code": divisions,
        "division": divisions, "grid_codes": [grids[:2]], "codes": [grids[:2]],
        "household_ids": [ids["household_id"]], "opening_ids": [ids["opening_id"][:3]],
        "keep_opening_ids": [ids["opening_id"][:1]],
    }


def _operations(schema) -> list:
    ops = [result.ok() for result in schema.get_all_operations()]
    return [op for op in ops if (op.method.upper(), op.path) not in EXCLUDED]


def _label(op) -> str:
    return f"{op.method.upper()} {op.path}"


def _pick(value: Any, values: list[Any]) -> tuple[bool, Any]:
    """Whether to replace ``value`` (about half of the time) and by which of ``values``: decided by the value
    itself, so that a replay while shrinking sends the same request."""
    pick = zlib.crc32(repr(value).encode())
    return pick % 2 == 0, values[(pick // 2) % len(values)]


def _steer(case, known: dict[str, list[Any]], versioned: bool,
           accept: Callable[[str, str, Any], bool] | None = None) -> None:
    """Make about half of the cases name stored objects and positions in the demo neighbourhood (path
    parameters, query parameters and members of a JSON body), and give a versioned grid edit on a real grid
    an If-Match with one of its first versions. ``accept(location, name, value)`` may refuse a replacement
    (a stored value the operation's schema does not allow, e.g. another router's layer name)."""
    def allowed(location: str, name: str, value: Any) -> bool:
        return accept is None or accept(location, name, value)

    for name in [p.name for p in case.operation.path_parameters]:
        replace, value = _pick(case.path_parameters.get(name), known.get(name) or [None])
        if replace and value is not None and allowed("path", name, value):
            case.path_parameters[name] = value
            if versioned and name == "code":
                case.headers["If-Match"] = f'"{value}.v{1 + zlib.crc32(repr(case.body).encode()) % 3}"'
    for location, members in (("query", case.query), ("body", case.body)):
        if isinstance(members, dict):
            for name in members.keys() & known.keys():
                replace, value = _pick(members[name], known[name])
                if replace and allowed(location, name, value):
                    members[name] = value


def _fuzz_operation(env: FuzzEnv, schema, op, user: str, examples: int, modes: list[HypothesisTestMode]
                    ) -> str | None:
    """Send ``op`` the cases of ``modes`` (``examples`` generated ones) as ``user``; the failure found (shrunk
    to a small case, with a curl command to reproduce it) or None."""
    known = {name: values for name, values in env.known.items() if values}
    versioned = (op.method.upper(), op.path) in VERSIONED_EDITS
    headers = env.headers[user]

    def call(case) -> None:
        _steer(case, known, versioned)
        env.requests[user] += 1
        response = case.call(headers=headers)
        env.statuses[user, _label(op)][response.status_code] += 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    config = HypothesisTestConfig(
        project=schema.config, modes=modes,
        settings=settings(max_examples=examples, deadline=None, database=None, derandomize=not RANDOM,
                          suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate,
                                                                           Phase.shrink]))
    try:
        create_test(operation=op, test_func=call, config=config)()
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every operation's failure is reported
        return f"{_label(op)} as {user}: {exc}"
    return None


RUNS = [("admin", ADMIN_EXAMPLES, [HypothesisTestMode.EXAMPLES, HypothesisTestMode.FUZZING]),
        ("worker", WORKER_EXAMPLES, [HypothesisTestMode.EXAMPLES, HypothesisTestMode.FUZZING])]
"""Who fuzzes, with how many generated cases per operation, and which kinds of cases. Neither run sends
schemathesis' coverage cases: :mod:`tests.test_api_contract` sends them all as admin, with every check of this
module and more, and they do not depend on who asks."""


def _fuzz(env: FuzzEnv) -> list[str]:
    """Every operation as every user of :data:`RUNS`; the operations that end an object's life (close,
    delete, retire, merge) after all the others, so that those meet the objects still alive."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", env.app)
    failures = []
    for endings in (False, True):
        for user, examples, modes in RUNS:
            for op in _operations(schema):
                if ((op.method.upper(), op.path) in ENDINGS) != endings:
                    continue
                failure = _fuzz_operation(env, schema, op, user, max(1, round(examples * SCALE)), modes)
                failures += [failure] if failure else []
                if VERBOSE:
                    print(f"{_label(op)} as {user}: {dict(env.statuses[user, _label(op)])}", flush=True)
    return failures


def test_fuzzing_the_whole_api_finds_no_server_error_and_no_broken_schema(fuzz_env):
    failures = _fuzz(fuzz_env)
    statuses = sum(fuzz_env.statuses.values(), Counter())
    print(f"\nfuzzing: {dict(fuzz_env.requests)} requests, statuses {dict(sorted(statuses.items()))}")
    assert not failures, f"{len(failures)} operations failed:\n\n" + "\n\n".join(failures)
    assert fuzz_env.requests.total() >= MINIMUM_REQUESTS, fuzz_env.requests
    served = sum(n for status, n in statuses.items() if status < 300)
    assert served > 0.05 * statuses.total(), "hardly any case got past validation"
