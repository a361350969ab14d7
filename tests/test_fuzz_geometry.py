"""Hostile geometries into every endpoint that takes one, and payload limits (issue 7, "Hostile input").

Each endpoint is driven by hypothesis (:mod:`tests.geometry_strategies`) through the real app and a real PostGIS
holding the demo neighbourhood (seeded once per module). For every example:

* the status is below 500;
* a 2xx stored only valid geometry: every Polygon/MultiPolygon of SRID 4326, valid, non-empty and inside the
  service extent, every point inside it (checked over the whole tables, not only the row written);
* a 4xx (and a preview or a dry run) changed nothing: a digest of every table a geometry write touches is the
  same before and after; and its body names the problem (``detail`` non-empty).

Examples are derandomised (the same every run, so CI is reproducible); ``GRIDGOV_FUZZ_SCALE=10`` draws ten times
as many, at random.
"""

from __future__ import annotations

import io
import json
import math
import os
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import shapely
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from shapely.geometry import shape
from sqlalchemy import text

from tests import geometry_strategies as gs
from tests.conftest import TEMPLATE, login

PASSWORD = "correct horse battery"
SCALE = int(os.environ.get("GRIDGOV_FUZZ_SCALE", "1"))


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples * SCALE, deadline=None, derandomize=SCALE == 1, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example])


TABLES = ("grids", "grid_versions", "micro_grids", "buildings", "enclosures", "enclosure_scans", "openings",
          "checkpoints", "checkpoint_schedules", "campaign_visits")
"""Every table a geometry write may touch (buildings: their grid and micro-grid links)."""

AREAS = {"grids": "boundary", "grid_versions": "boundary", "micro_grids": "boundary", "enclosures": "boundary",
         "enclosure_scans": "boundary"}
POINTS = {"openings": "location", "checkpoints": "location", "campaign_visits": "worker_position"}
EXTENT = "ST_MakeEnvelope(73, 3, 136, 54, 4326)"


@dataclass
class Site:
    client: Any
    sessions: Any
    engine: Any
    headers: dict[str, dict[str, str]]
    grid: str
    enclosure_id: int
    redrawn_enclosure_id: int
    campaign_id: int
    households: list[int]
    perimeter_box: tuple[float, float, float, float]
    grid_box: tuple[float, float, float, float]
    community_box: tuple[float, float, float, float]

    @property
    def community(self) -> str:
        return self.grid[:12]


def _box_around(x: float, y: float, half: float) -> tuple[float, float, float, float]:
    return (x - half, y - half, x + half, y + half)


@pytest.fixture(scope="module")
def site(pg_server, template_url, tmp_path_factory):
    """The app on a database of its own holding the demo, with an admin, a planner and an inspector of the
    subdistrict, a grid worker of one grid, and an open campaign over that grid."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from fixtures.demo import SUBDISTRICT, load_demo
    from spatial.settings import Settings
    from spatial.store import users
    from spatial.store.engine import make_engine, make_sessionmaker

    name = "gridgov_fuzz_" + uuid.uuid4().hex[:8]
    url = pg_server.create(name, template=TEMPLATE)
    engine = make_engine(url, pool_size=4)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as s:
        load_demo(s)
        grid = s.scalar(text("SELECT code FROM grids WHERE retired_at IS NULL ORDER BY code LIMIT 1"))
        for user, role, scope in (("admin", "admin", None), ("planner", "planner", SUBDISTRICT[0]),
                                  ("inspector", "inspector", SUBDISTRICT[0]), ("worker", "grid_worker", None)):
            users.create_user(s, user, PASSWORD, role, scope_code=scope,
                              grid_codes=(grid,) if role == "grid_worker" else ())
        enclosure_id, redrawn_enclosure_id = s.execute(text("SELECT min(id), max(id) FROM enclosures")).one()
        corner = s.execute(text("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointN(ST_ExteriorRing(boundary), 1) p "
                                "FROM enclosures WHERE id = :e) q"), {"e": enclosure_id}).one()
        grid_box = s.execute(text("SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM "
                                  "(SELECT boundary::box2d b FROM grids WHERE code = :g) q"), {"g": grid}).one()
        inside = s.execute(text("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(boundary) p "
                                "FROM divisions WHERE code = :c) q"), {"c": grid[:12]}).one()
    try:
        settings_ = Settings(database_url=url, data_dir=tmp_path_factory.mktemp("fuzz"))
        with TestClient(create_app(settings_, engine=engine)) as client:
            headers = {u: login(client, u, PASSWORD) for u in ("admin", "planner", "inspector", "worker")}
            made = client.post("/api/field/campaigns", headers=headers["planner"],
                               json={"name": "fuzz", "grid_codes": [grid]})
            assert made.status_code == 201, made.text
            campaign_id = made.json()["id"]
            with sessions() as s:
                households = list(s.scalars(text("SELECT household_id FROM campaign_targets WHERE campaign_id = :c "
                                                 "ORDER BY household_id"), {"c": campaign_id}))
            yield Site(client, sessions, engine, headers, grid, enclosure_id, redrawn_enclosure_id, campaign_id, households,
                       _box_around(*corner, 0.0002), tuple(grid_box), _box_around(*inside, 0.0008))
    finally:
        engine.dispose()
        pg_server.drop(name)


# -- the checks ---------------------------------------------------------------------------------------------------


def digest(site: Site) -> dict[str, str]:
    """md5 of every row (geometry as EWKB hex, version, timestamps ...) of each table in :data:`TABLES`."""
    with site.sessions() as s:
        return {t: s.scalar(text(f"SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {t} x"))
                for t in TABLES}


def bad_geometries(site: Site) -> list[str]:
    """Rows anywhere whose geometry is not a valid, non-empty (Multi)Polygon / Point of SRID 4326 in range."""
    checks = [f"""SELECT '{t}: ' || ST_AsText(ST_Envelope({c})) || ' ' || coalesce(ST_IsValidReason({c}), '')
                  FROM {t} WHERE {c} IS NOT NULL AND NOT (ST_SRID({c}) = 4326 AND ST_IsValid({c})
                  AND NOT ST_IsEmpty({c}) AND GeometryType({c}) IN ('POLYGON', 'MULTIPOLYGON')
                  AND ST_NDims({c}) = 2 AND {c} @ {EXTENT} AND ST_Area({c}) > 0)""" for t, c in AREAS.items()]
    checks += [f"""SELECT '{t}: ' || ST_AsText({c}) FROM {t} WHERE NOT (ST_SRID({c}) = 4326
                   AND GeometryType({c}) = 'POINT' AND ST_NDims({c}) = 2 AND {c} @ {EXTENT})"""
               for t, c in POINTS.items()]
    with site.sessions() as s:
        return list(s.scalars(text(" UNION ALL ".join(checks))))


def send(site: Site, method: str, url: str, user: str, body: Any, **headers: str):
    """The request with ``body`` as JSON that may hold NaN/Infinity (as a sloppy client writes it)."""
    return site.client.request(method, url, content=gs.dumps(body), headers={
        **site.headers[user], "Content-Type": "application/json", **headers})


def check(site: Site, response, before: dict[str, str], *, writes: bool = True) -> None:
    """The invariants of the module docstring; ``writes=False`` for a request that must never write
    (a preview, a dry run, a read)."""
    note(f"{response.status_code} {response.text[:600]}")
    event(f"HTTP {response.status_code}")
    assert response.status_code < 500, response.text
    after = digest(site)
    if 200 <= response.status_code < 300 and writes:
        assert bad_geometries(site) == []
        return
    if response.status_code >= 400:
        detail = response.json().get("detail")
        assert detail, response.text
    changed = [t for t in TABLES if before[t] != after[t]]
    assert changed == [], f"{response.status_code} changed {changed}"


def active_grids(site: Site) -> list[str]:
    with site.sessions() as s:
        return list(s.scalars(text("SELECT code FROM grids WHERE retired_at IS NULL AND community_code = :c "
                                   "ORDER BY code"), {"c": site.community}))


def pick(draw, items: list, label: str):
    """One of ``items``, drawn as an index so that the draw does not depend on how many there are now (the
    list changes as examples write; hypothesis replays need the same draws)."""
    return items[draw(st.integers(0, 999), label=label) % len(items)]


def grid_now(site: Site, code: str) -> tuple[str, Any]:
    """(ETag, boundary as a Shapely geometry) of a grid, through the API."""
    r = site.client.get(f"/api/grids/{code}", headers=site.headers["planner"])
    assert r.status_code == 200, r.text
    return r.headers["ETag"], shape(r.json()["geometry"])


CRS = st.one_of(st.none(), st.none(), gs.crs_names())


@st.composite
def around(draw, boundary) -> dict:
    """A valid polygon close to ``boundary``: it scaled by 0.7–1.15 about its centroid (so that some redraws
    are accepted, and some take land from neighbours)."""
    factor = draw(st.floats(0.7, 1.15))
    geom = shapely.affinity.scale(shapely.get_parts(boundary)[0], factor, factor, origin="centroid")
    return json.loads(shapely.to_geojson(shapely.set_precision(geom, 1e-9)))


def if_match(draw, etag: str) -> dict[str, str]:
    """Mostly the right ETag; sometimes none (428), a stale one (412) or garbage."""
    choice = draw(st.sampled_from(["ok"] * 6 + ["none", "stale", "garbage"]))
    if choice == "none":
        return {}
    if choice == "stale":
        return {"If-Match": etag.replace(".v", ".v9")}
    return {"If-Match": etag if choice == "ok" else '"x.vNaN", *'}


# -- grids ----------------------------------------------------------------------------------------------------------


@fuzz(60)
@given(data=st.data(), drawn=gs.hostile_polygons(), crs=CRS, move=st.booleans(), preview=st.booleans())
def test_create_grid(site, data, drawn, crs, move, preview):
    kind, geometry = drawn
    event(kind)
    before = digest(site)
    body = {"community_code": site.community, "name": "模糊测试", "kind": "comprehensive", "geometry": geometry,
            "crs": crs, "move_shared_boundary": move, "preview": preview, "reason": "fuzz"}
    response = send(site, "POST", "/api/grids", "planner", body)
    check(site, response, before, writes=not preview)


@fuzz(60)
@given(data=st.data(), drawn=gs.hostile_polygons(), crs=CRS, move=st.booleans(), preview=st.booleans())
def test_redraw_grid(site, data, drawn, crs, move, preview):
    code = pick(data.draw, active_grids(site), "grid")
    etag, boundary = grid_now(site, code)
    if data.draw(st.booleans(), label="near the current boundary"):
        drawn, crs = ("around", data.draw(around(boundary))), None
    kind, geometry = drawn
    event(kind)
    before = digest(site)
    body = {"geometry": geometry, "crs": crs, "move_shared_boundary": move, "preview": preview, "reason": "fuzz"}
    response = send(site, "PUT", f"/api/grids/{code}/boundary", "planner", body, **if_match(data.draw, etag))
    check(site, response, before, writes=not preview)


@st.composite
def crossing_lines(draw, boundary) -> dict:
    """A straight line across ``boundary``'s bounding box, west to east at a drawn latitude (some split)."""
    x0, y0, x1, y1 = boundary.bounds
    y = y0 + (y1 - y0) * draw(st.floats(0, 1))
    return {"type": "LineString", "coordinates": [[x0 - 1e-4, y], [x1 + 1e-4, y + draw(st.floats(-1e-3, 1e-3))]]}


@fuzz(40)
@given(data=st.data(), drawn=gs.hostile_lines(), crs=CRS, preview=st.booleans())
def test_split_grid(site, data, drawn, crs, preview):
    code = pick(data.draw, active_grids(site), "grid")
    etag, boundary = grid_now(site, code)
    if data.draw(st.booleans(), label="across the grid"):
        drawn, crs = ("across", data.draw(crossing_lines(boundary))), None
    kind, line = drawn
    event(kind)
    before = digest(site)
    body = {"line": line, "crs": crs, "new_name": "拆分", "preview": preview, "reason": "fuzz"}
    response = send(site, "POST", f"/api/grids/{code}/split", "planner", body, **if_match(data.draw, etag))
    check(site, response, before, writes=not preview)


# -- enclosures -------------------------------------------------------------------------------------------------------


@fuzz(40)
@given(drawn=gs.hostile_polygons(large=False), crs=CRS)
def test_create_enclosure(site, drawn, crs):
    kind, geometry = drawn
    event(kind)
    before = digest(site)
    body = {"name": "模糊围合", "kind": "estate", "geometry": geometry, "crs": crs}
    check(site, send(site, "POST", "/api/inspection/enclosures", "planner", body), before)


@fuzz(30)
@given(drawn=gs.hostile_polygons(large=False), crs=CRS)
def test_redraw_enclosure(site, drawn, crs):
    kind, geometry = drawn
    event(kind)
    before = digest(site)
    url = f"/api/inspection/enclosures/{site.redrawn_enclosure_id}/boundary"
    check(site, send(site, "PUT", url, "planner", {"geometry": geometry, "crs": crs}), before)


# -- positions ------------------------------------------------------------------------------------------------------


def _opening(site: Site) -> dict:
    with site.sessions() as s:
        row = s.execute(text("SELECT id, version FROM openings WHERE deleted_at IS NULL AND enclosure_id = :e "
                             "ORDER BY id LIMIT 1"), {"e": site.enclosure_id}).one()
    return {"id": row.id, "version": row.version}


@dataclass(frozen=True)
class PositionEndpoint:
    """An endpoint taking a position: where valid positions are drawn (a :class:`Site` box), who calls it,
    whether it may write, and its request for a drawn (x, y, crs)."""

    box: str
    user: str
    writes: bool
    request: Any  # (site, draw, x, y, crs) -> (method, url, body)


POSITION_ENDPOINTS = {
    "add_opening": PositionEndpoint("perimeter_box", "planner", True, lambda site, draw, x, y, crs: (
        "POST", f"/api/inspection/enclosures/{site.enclosure_id}/openings", {"lon": x, "lat": y, "crs": crs})),
    "create_checkpoint": PositionEndpoint("perimeter_box", "planner", True, lambda site, draw, x, y, crs: (
        "POST", "/api/inspection/checkpoints", {"lon": x, "lat": y, "crs": crs, "name": "模糊卡口"})),
    "move_opening": PositionEndpoint("perimeter_box", "planner", True, lambda site, draw, x, y, crs: (
        "PATCH", f"/api/inspection/openings/{_opening(site)['id']}",
        {"location": [x, y], "crs": crs, "version": _opening(site)["version"]})),
    "record_visit": PositionEndpoint("grid_box", "worker", True, lambda site, draw, x, y, crs: (
        "POST", f"/api/field/campaigns/{site.campaign_id}/visits",
        {"household_id": draw(st.sampled_from(site.households)), "result": "normal", "lon": x, "lat": y,
         "crs": crs})),
    "walking_route": PositionEndpoint("grid_box", "worker", False, lambda site, draw, x, y, crs: (
        "POST", "/api/field/route", {"lon": x, "lat": y, "crs": crs, "campaign_id": site.campaign_id, "nearest": 3})),
    "patrol": PositionEndpoint("perimeter_box", "inspector", False, lambda site, draw, x, y, crs: (
        "POST", "/api/inspection/patrols", {"start": [x, y], "crs": crs, "opening_ids": [_opening(site)["id"]]})),
    "street_patrol": PositionEndpoint("grid_box", "inspector", False, lambda site, draw, x, y, crs: (
        "POST", "/api/inspection/patrols/streets", {"grid_code": site.grid, "start": [x, y], "crs": crs})),
}


@pytest.mark.parametrize("name", sorted(POSITION_ENDPOINTS))
@fuzz(15)
@given(data=st.data(), crs=CRS)
def test_positions(site, name, data, crs):
    endpoint = POSITION_ENDPOINTS[name]
    kind, x, y = data.draw(gs.hostile_positions(getattr(site, endpoint.box)), label="position")
    event(kind)
    before = digest(site)
    method, url, body = endpoint.request(site, data.draw, x, y, crs)
    check(site, send(site, method, url, endpoint.user, body), before, writes=endpoint.writes)


@fuzz(15)
@given(data=st.data(), crs=CRS)
def test_nearby(site, data, crs):
    kind, x, y = data.draw(gs.hostile_positions(site.grid_box), label="position")
    event(kind)
    before = digest(site)
    params = {"lon": str(x), "lat": str(y), **({"crs": str(crs)} if crs is not None else {})}
    response = site.client.get("/api/field/nearby", params=params, headers=site.headers["worker"])
    check(site, response, before, writes=False)


# -- file imports ---------------------------------------------------------------------------------------------------


@fuzz(40)
@given(data=st.data(), kind=st.sampled_from(["grids", "enclosures"]), dry_run=st.booleans(),
       suffix=st.sampled_from([".geojson", ".json"]))
def test_import_geojson(site, data, kind, dry_run, suffix):
    properties = {"name": "导入", "kind": "comprehensive" if kind == "grids" else "estate",
                  "community_code": site.community}
    if kind == "grids" and data.draw(st.booleans(), label="an existing grid, redrawn"):
        code = pick(data.draw, active_grids(site), "grid")
        family, geometry = "around", data.draw(around(grid_now(site, code)[1]))
        properties["code"] = code
    else:
        family, geometry = data.draw(gs.hostile_polygons(site.community_box, large=False), label="geometry")
    event(family)
    collection = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": properties,
                                                             "geometry": geometry}]}
    before = digest(site)
    response = site.client.post(f"/api/import/{kind}", headers=site.headers["planner"],
                                files={"file": ("plan" + suffix, io.BytesIO(gs.dumps(collection)))},
                                data={"reason": "fuzz import", "dry_run": str(dry_run).lower()})
    check(site, response, before, writes=not dry_run)


# -- the validator alone (fast, many examples) ----------------------------------------------------------------------


@fuzz(300)
@given(drawn=gs.hostile_polygons(), crs=CRS)
def test_polygon_validator_returns_valid_or_refuses(drawn, crs):
    from spatial.errors import GridgovError
    from spatial.geometry.crs import parse_crs
    from spatial.geometry.validate import SERVICE_EXTENT, polygon_from_geojson

    kind, geometry = drawn
    event(kind)
    try:
        result = polygon_from_geojson(geometry, parse_crs(crs))
    except GridgovError as exc:
        assert exc.message
        return
    assert result.geom_type == "MultiPolygon" and result.is_valid and not result.has_z and result.area > 0
    x0, y0, x1, y1 = result.bounds
    assert SERVICE_EXTENT[0] <= x0 <= x1 <= SERVICE_EXTENT[2] and SERVICE_EXTENT[1] <= y0 <= y1 <= SERVICE_EXTENT[3]


@fuzz(200)
@given(drawn=gs.hostile_lines(), crs=CRS)
def test_line_validator_returns_a_line_or_refuses(drawn, crs):
    from spatial.errors import GridgovError
    from spatial.geometry.crs import parse_crs
    from spatial.geometry.validate import line_from_geojson

    kind, geometry = drawn
    event(kind)
    try:
        line = line_from_geojson(geometry, parse_crs(crs))
    except GridgovError as exc:
        assert exc.message
        return
    assert line.geom_type == "LineString" and not line.has_z and line.length > 0
    assert all(math.isfinite(v) for v in line.bounds)


# -- payload limits -------------------------------------------------------------------------------------------------


def test_body_limit_refuses_before_reading_past_the_limit():
    """At the ASGI level: a declared Content-Length over the limit never reaches the app; a chunked body is read
    only until the chunk that crosses the limit, whatever the app does with the failed read."""
    import asyncio

    from api.limits import BodyLimit

    pulled, called, sent = [], [], []

    async def receive():
        pulled.append(1)
        return {"type": "http.request", "body": b"x" * 1000, "more_body": True}

    async def greedy_app(scope, receive, send):
        called.append(1)
        try:
            while True:
                await receive()
        except Exception:  # noqa: BLE001 (as FastAPI does: turn any failed read into its own 400)
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b"bad body"})

    async def send(message):
        sent.append(message)

    limit = BodyLimit(greedy_app, max_bytes=4096)
    asyncio.run(limit({"type": "http", "headers": [(b"content-length", b"999999")]}, receive, send))
    assert (called, pulled, sent[0]["status"]) == ([], [], 413)
    sent.clear()
    asyncio.run(limit({"type": "http", "headers": []}, receive, send))
    assert called == [1] and len(pulled) == 5 and [m.get("status") for m in sent] == [413, None]
    assert json.loads(sent[1]["body"])["error"] == "PayloadTooLarge"


def test_oversized_bodies_are_413_with_and_without_content_length(site):
    limit = site.client.app.state.settings.max_body_bytes
    before = digest(site)
    headers = {**site.headers["planner"], "Content-Type": "application/json"}
    declared = site.client.post("/api/grids", content=b" " * (limit + 1), headers=headers)

    def chunks():
        yield b'{"geometry": {"type": "Polygon", "coordinates": [['
        for _ in range(limit // 65536 + 2):
            yield b"[114.07, 22.56], " * 3855

    chunked = site.client.post("/api/grids", content=chunks(), headers=headers)
    upload = site.client.post("/api/import/grids", headers=site.headers["planner"], data={"reason": "too big"},
                              files={"file": ("big.geojson", b"[" * (limit + 1))})
    for response in (declared, chunked, upload):
        assert response.status_code == 413, response.text
        assert "bytes" in response.json()["detail"]
    assert digest(site) == before


def _ring_json(n: int) -> str:
    return "[" + "[114.07,22.56]," * (n - 1) + "[114.07,22.56]]"


MILLION = 1_000_001
HUGE_GEOMETRIES = {
    "Polygon": '{"type":"Polygon","coordinates":[' + _ring_json(MILLION) + "]}",
    "MultiPolygon": '{"type":"MultiPolygon","coordinates":[' + ",".join(["[" + _ring_json(4) + "]"] * (MILLION // 4 + 1))
                    + "]}",
    "LineString": '{"type":"LineString","coordinates":' + _ring_json(MILLION) + "}",
}


@pytest.fixture
def roomy(site, monkeypatch):
    """A client of the same database whose body limit (100 MB) lets a million vertices through, with Shapely's
    constructors and the import's checks replaced by tripwires: a 413 must come before any of them."""
    from fastapi.testclient import TestClient

    import spatial.io.grid_files
    from api.app import create_app
    from spatial.geometry import validate

    def tripwire(*args, **kwargs):
        raise AssertionError("a huge geometry reached Shapely or the database")

    for name in ("Polygon", "MultiPolygon", "LineString", "to_wgs84"):
        monkeypatch.setattr(validate, name, tripwire)
    monkeypatch.setattr(spatial.io.grid_files, "_polygon_problem", tripwire)
    settings_ = site.client.app.state.settings.model_copy(update={"max_body_bytes": 100_000_000})
    with TestClient(create_app(settings_, engine=site.engine)) as client:
        yield client


@pytest.mark.parametrize("endpoint", ["create_grid", "redraw_grid", "split_grid", "create_enclosure",
                                      "redraw_enclosure", "import"])
def test_a_million_vertices_are_refused_by_the_vertex_limit(site, roomy, endpoint):
    code = active_grids(site)[0]
    etag, _ = grid_now(site, code)
    polygon = HUGE_GEOMETRIES["MultiPolygon" if endpoint == "redraw_grid" else "Polygon"]
    requests = {
        "create_grid": ("POST", "/api/grids", (f'{{"community_code":"{site.community}","name":"x","reason":"r",'
                                               f'"geometry":{polygon}}}')),
        "redraw_grid": ("PUT", f"/api/grids/{code}/boundary", f'{{"reason":"r","geometry":{polygon}}}'),
        "split_grid": ("POST", f"/api/grids/{code}/split",
                       f'{{"reason":"r","new_name":"x","line":{HUGE_GEOMETRIES["LineString"]}}}'),
        "create_enclosure": ("POST", "/api/inspection/enclosures", f'{{"name":"x","geometry":{polygon}}}'),
        "redraw_enclosure": ("PUT", f"/api/inspection/enclosures/{site.redrawn_enclosure_id}/boundary",
                             f'{{"geometry":{polygon}}}'),
    }
    before = digest(site)
    if endpoint == "import":
        collection = '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":' \
                     + polygon + "}]}"
        response = roomy.post("/api/import/grids", headers=site.headers["planner"], data={"reason": "huge"},
                              files={"file": ("huge.geojson", collection.encode())})
    else:
        method, url, body = requests[endpoint]
        response = roomy.request(method, url, content=body.encode(), headers={
            **site.headers["planner"], "Content-Type": "application/json", "If-Match": etag})
    assert response.status_code == 413, response.text[:300]
    assert "vertices" in response.json()["detail"]
    assert digest(site) == before


def test_absurd_nesting_is_refused_with_a_reason(site):
    before = digest(site)
    for depth in (800, 100_000):
        nested = "[" * depth + "]" * depth
        body = f'{{"community_code":"{site.community}","name":"x","reason":"r","geometry":' \
               f'{{"type":"Polygon","coordinates":{nested}}}}}'
        response = site.client.post("/api/grids", content=body.encode(), headers={
            **site.headers["planner"], "Content-Type": "application/json"})
        assert 400 <= response.status_code < 500 and response.json()["detail"], response.text[:300]
    assert digest(site) == before


def test_a_zip_that_unpacks_to_gigabytes_is_refused_unread(site, tmp_path):
    import zipfile

    archive = tmp_path / "bomb.zip"
    with (zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z,
          z.open("plan.shp", "w", force_zip64=True) as member):
        block = b"\0" * 1_048_576
        for _ in range(200):  # 200 MB of zeros: about 200 kB zipped
            member.write(block)
    before = digest(site)
    response = site.client.post("/api/import/grids", headers=site.headers["planner"], data={"reason": "bomb"},
                                files={"file": ("bomb.zip", archive.read_bytes())})
    assert response.status_code == 413, response.text[:300]
    assert "unpacks" in response.json()["detail"]
    assert digest(site) == before
