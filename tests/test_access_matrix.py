"""Every operation of the API, read from its own OpenAPI document: without a token it answers 401 (except a
short list of public ones that carry no data about people); a viewer never changes anything; roles without
an area never see a household; viewers and auditors never see household data even with an area (no household
row, personal field, tag or per-building count in any 2xx answer); every refusal is in the audit log."""

from __future__ import annotations

import io
import json
import re
import zipfile

import mapbox_vector_tile
import pyogrio
import pytest
from sqlalchemy import text

from fixtures.synthetic_city import load_city
from spatial.access import Principal
from spatial.personal_keys import PersonalKeys
from spatial.store import campaigns, users
from spatial.store.models import User
from spatial.vocab import HOUSEHOLD_TAGS
from tiles.grid import tile_range

PASSWORD = "correct horse battery"
COMMUNITY = "440399001001"
GRID = f"{COMMUNITY}01"

PUBLIC = {  # what anyone may read: how to log in, the service's health and vocabularies, map styles
    ("POST", "/api/auth/token"), ("GET", "/api/health"), ("GET", "/api/vocab"), ("GET", "/ogc"),
    ("GET", "/ogc/conformance"), ("GET", "/ogc/api"), ("GET", "/api/messages"), ("GET", "/tiles/style.json"), ("GET", "/tiles/tiles.json"),
    ("GET", "/tiles/{layer}.json"),
}
RESIDENTS = {  # residents report problems without an account (rate-limited) and follow them by tracking code
    ("GET", "/api/cases/categories"), ("GET", "/api/cases/workflow"), ("POST", "/api/public/cases"),
    ("GET", "/api/public/cases/{tracking_code}"),
    # by tracking code: the reporter's photos (added within an hour), their rating after closure (once), joining
    # a duplicate nearby; and the photos staff took, which Open311 publishes as media_url
    ("POST", "/api/public/cases/{tracking_code}/photos"), ("GET", "/api/public/cases/{tracking_code}/photos/{photo_id}"),
    ("POST", "/api/public/cases/{tracking_code}/rating"), ("POST", "/api/public/cases/{tracking_code}/merge"),
    ("GET", "/api/public/media/{key}.jpg"),
    # Open311 GeoReport v2 (the same cases for Open311 clients; no personal data in its public view)
    ("GET", "/open311/v2/discovery.{format}"), ("GET", "/open311/v2/services.{format}"),
    ("GET", "/open311/v2/services/{service_code}.{format}"), ("POST", "/open311/v2/requests.{format}"),
    ("GET", "/open311/v2/requests.{format}"), ("GET", "/open311/v2/requests/{service_request_id}.{format}"),
}
PATH_VALUES = {"code": GRID, "layer": "grids", "name": "grids", "collectionId": "grids", "featureId": "1",
               "z": "14", "x": "13348", "y": "7130", "kind": "grids"}


def _path(template: str) -> str:
    if template == "/api/export/communities/{code}":
        return f"/api/export/communities/{COMMUNITY}"
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "1"), template)


TEAM_USERS = (("police1", "police"), ("medic1", "medical"), ("expert1", "specialist"), ("head1", "building_head"),
              ("unit1", "unit_head"), ("vol1", "volunteer"))  # the grid team (issue 17 §1)


def _assign_team(s) -> None:
    """police1, medic1, expert1 and vol1 on grid GRID; head1 on its first building, unit1 on that building's unit
    of its first household."""
    s.execute(text("""
        INSERT INTO team_assignments (user_id, duty, grid_id, building_id, unit, created_by)
        SELECT u.id, u.role, CASE WHEN u.role IN ('building_head', 'unit_head') THEN NULL ELSE g.id END,
               CASE WHEN u.role IN ('building_head', 'unit_head') THEN b.id END,
               CASE WHEN u.role = 'unit_head' THEN (SELECT h.unit FROM households h WHERE h.building_id = b.id
                                                    ORDER BY h.id LIMIT 1) END, 'test'
        FROM users u, grids g, LATERAL (SELECT b.id FROM buildings b WHERE b.grid_id = g.id
            AND EXISTS (SELECT 1 FROM households h WHERE h.building_id = b.id) ORDER BY b.code LIMIT 1) b
        WHERE g.code = :g AND u.username = ANY(:names)"""), {"g": GRID, "names": [n for n, _ in TEAM_USERS]})


@pytest.fixture(scope="module")
def operations():
    from api.app import create_app
    from spatial.settings import Settings

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
                                  ("auditor1", "auditor", None), ("viewer2", "viewer", COMMUNITY),
                                  ("auditor2", "auditor", "440399001000"), ("dept1", "department", "440399001000"),
                                  *((name, role, None) for name, role in TEAM_USERS)):
            user = User(username=name, password_hash=password_hash, role=role, scope_code=scope,
                        department="城市管理和综合执法局" if role == "department" else None)
            s.add(user)
            s.flush()
            tokens[name] = {"Authorization": "Bearer " + users.issue_token(s, user, 3600)[0]}
        _assign_team(s)
        # campaign 1, over the community: its unvisited households are what a scoped viewer once read
        admin = Principal(user_id=0, username="admin", role="admin")
        assert campaigns.open_campaign(s, admin, "冬季排查", division_code=COMMUNITY).id == 1
    return client, sessions, tokens


def test_the_public_list_is_short_and_every_listed_operation_exists(operations):
    assert PUBLIC <= set(operations) and RESIDENTS <= set(operations)
    assert all(p.startswith(("/api/public/", "/api/cases/categories", "/api/cases/workflow", "/open311/v2/"))
               for _, p in RESIDENTS)
    assert len(operations) > 50 and len(PUBLIC) <= 10


def test_every_other_operation_needs_a_token(env, operations):
    client, _, _ = env
    unguarded = []
    for method, path in operations:
        if (method, path) in PUBLIC | RESIDENTS:
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


@pytest.mark.parametrize("name", ["nobody", "auditor1", "vol1"])
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


PERSONAL = {"head_name", "head_id_number", "head_phone"}
BUILDING_KEYS = {"levels", "building_id", "building_code", "urban_village"}


def _json_household_data(value, where: str = "") -> list[str]:
    """Where a JSON value carries household data: personal fields, household tags, household ids, per-building
    household or resident counts (a dict with a count and a building's keys)."""
    found = []
    if isinstance(value, dict):
        if PERSONAL & set(value):
            found.append(f"{where}: personal fields {sorted(PERSONAL & set(value))}")
        tags = value.get("tags")
        if isinstance(tags, list) and any((t.get("code") if isinstance(t, dict) else t) in HOUSEHOLD_TAGS
                                          for t in tags):
            found.append(f"{where}: household tags")
        if value.get("household_ids") or value.get("household_rows"):
            found.append(f"{where}: households")
        if BUILDING_KEYS & set(value) and any(isinstance(value.get(k), int | float) for k in ("households", "residents")):
            found.append(f"{where}: per-building counts")
        for key, item in value.items():
            found += _json_household_data(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value[:20000]):
            found += _json_household_data(item, f"{where}[{i}]")
    return found


def _file_household_data(path) -> list[str]:
    found = []
    for name, _ in pyogrio.list_layers(path):
        frame = pyogrio.read_dataframe(path, layer=name)
        if name == "households" or PERSONAL & set(frame.columns):
            found.append(f"layer {name}: households")
        elif "levels" in frame.columns and "households" in frame.columns and frame["households"].notna().any():
            found.append(f"layer {name}: per-building counts")
    return found


def household_data(response, tmp_path) -> list[str]:
    """What household data the body of a 2xx answer carries (JSON, vector tile, GeoPackage, zip of files)."""
    kind = response.headers.get("content-type", "")
    if not response.content:
        return []
    if "json" in kind:
        return _json_household_data(json.loads(response.content))
    if "vector-tile" in kind:
        layers = mapbox_vector_tile.decode(response.content)
        return ([f"tile layer {name}" for name in layers if name == "households"]
                + [f"tile {name}: per-building counts" for name, layer in layers.items() if name == "buildings"
                   and any("households" in f["properties"] for f in layer["features"])])
    if "geopackage" in kind:
        path = tmp_path / "answer.gpkg"
        path.write_bytes(response.content)
        return _file_household_data(path)
    if "zip" in kind:
        found = []
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            archive.extractall(tmp_path / "zip")
        for member in (tmp_path / "zip").iterdir():
            if member.suffix in (".shp", ".geojson"):
                found += _file_household_data(member)
        return found
    return []


# Path values naming the layers that carry per-building counts or households, for a second pass over the reads.
HOUSEHOLD_LAYERS = {"layer": "buildings", "name": "buildings", "collectionId": "buildings", "kind": "buildings"}


@pytest.mark.parametrize("name", ["viewer1", "viewer2", "auditor2", "dept1", "medic1"])  # dept1: a department (责任部门)
def test_viewers_and_auditors_with_an_area_get_no_household_data_from_any_operation(env, operations, name,
                                                                                     tmp_path):
    client, sessions, tokens = env
    with sessions.begin() as s:
        lon, lat = s.execute(text("SELECT ST_X(ST_Centroid(boundary)), ST_Y(ST_Centroid(boundary)) FROM grids "
                                  "WHERE code = :c"), {"c": GRID}).one()
    body = {"lon": lon, "lat": lat, "campaign_id": 1, "enclosure_id": 1}
    x, y, _, _ = tile_range((lon, lat, lon, lat), 16)  # a detail tile, where buildings carry their counts
    values = {**PATH_VALUES, **HOUSEHOLD_LAYERS, "z": "16", "x": str(x), "y": str(y)}
    leaks, answered = [], 0
    calls = [(m, _path(p)) for m, p in operations if not p.startswith("/api/auth/")]
    calls += [(m, re.sub(r"\{(\w+)\}", lambda g: values.get(g.group(1), "1"), p))
              for m, p in operations if m == "GET" and re.search(r"\{(layer|name|collectionId|kind|z)\}", p)]
    calls.append(("GET", f"/tiles/households/16/{x}/{y}.mvt"))
    for method, url in calls:
        params = {"lon": lon, "lat": lat, "radius": 300} if url.endswith("/nearby") else {}
        response = client.request(method, url, headers=tokens[name], json=body, params=params)
        if response.status_code < 300:
            answered += 1
            leaks += [f"{method} {url}: {leak}" for leak in household_data(response, tmp_path)]
    assert leaks == []
    assert answered > 20  # the walk did read something
    for url in ("/api/field/campaigns/1/unvisited", "/api/field/nearby", f"/api/export/communities/{COMMUNITY}"):
        assert client.get(url, headers=tokens[name], params={"lon": lon, "lat": lat}).status_code == 403, url


# -- the population ledger corrected on the spot (issue 14 §2): who may read a household sheet and edit it --------

LEDGER_WRITES = ("add_person", "correct_household", "change_person", "move_out")
LEDGER_ROWS = [  # (user, role, scope code, grid, expected GET, expected writes)
    ("viewer1", None, None, None, 403, 403),               # viewers: never household data
    ("auditor2", None, None, None, 403, 403),
    ("worker_own", "grid_worker", None, GRID, 200, 200),  # a grid worker in their own grid
    ("worker_other", "grid_worker", None, "other", 404, 404),  # ... and not in another one
    ("inspector1", "inspector", COMMUNITY, None, 200, 403),  # inspectors read, do not edit
    ("planner1", "planner", COMMUNITY, None, 200, 200),     # planners in their area
    ("planner_far", "planner", "far", None, 404, 404),      # ... and not in another community
    ("admin1", "admin", None, None, 200, 200),
]


@pytest.mark.parametrize("user, role, scope, grid, read, write", LEDGER_ROWS, ids=[r[0] for r in LEDGER_ROWS])
def test_ledger_sheet_and_edits_follow_role_and_scope(env, tmp_path, user, role, scope, grid, read, write):
    from spatial.personal_keys import PersonalKeys
    from tests import factories
    from tests.test_residents import id_number

    client, sessions, tokens = env
    PersonalKeys.create(tmp_path / "personal.key")  # where the app's settings look (data_dir)
    with sessions.begin() as s:
        other = s.scalar(text("SELECT code FROM grids WHERE community_code = :c AND code <> :g ORDER BY code LIMIT 1"),
                         {"c": COMMUNITY, "g": GRID})
        if scope == "far":
            scope = factories.community(s).code  # a community of another district
        specs = [("admin1", "admin", None, None)] + ([(user, role, scope, other if grid == "other" else grid)]
                                                      if role and user != "admin1" else [])
        made = factories.users_with_grids(s, specs, users.hash_password(PASSWORD))
        tokens = {**tokens, **{n: {"Authorization": "Bearer " + users.issue_token(s, u, 3600)[0]}
                               for n, u in made.items()}}
        household = s.scalar(text("SELECT h.id FROM households h JOIN buildings b ON b.id = h.building_id "
                                  "JOIN grids g ON g.id = b.grid_id WHERE g.code = :g ORDER BY h.id LIMIT 1"),
                             {"g": GRID})
    url = f"/api/field/households/{household}"
    admin = tokens["admin1"]

    def fresh() -> dict:
        return {**tokens[user], "If-Match": client.get(url, headers=admin).headers["ETag"]}

    first = client.post(f"{url}/persons", headers={**admin, "If-Match": client.get(url, headers=admin).headers["ETag"]},
                        json={"name": "孙一", "id_number": id_number(901), "relation": "head"})
    assert first.status_code == 201, first.text
    resident = next(p["id"] for p in first.json()["persons"] if p["name"] == "孙*")
    assert client.get(url, headers=tokens[user]).status_code == read
    added = client.post(f"{url}/persons", headers=fresh(), json={"name": "孙二", "id_number": id_number(902)})
    answers = {"add_person": added.status_code,
               "correct_household": client.patch(url, headers=fresh(), json={"floor": 7}).status_code,
               "change_person": client.patch(f"{url}/persons/{resident}", headers=fresh(),
                                             json={"phone": "13711112222"}).status_code}
    target = next((p["id"] for p in added.json()["persons"] if p["name"] == "孙*" and p["id"] != resident), resident) \
        if added.status_code == 201 else resident
    answers["move_out"] = client.post(f"{url}/persons/{target}/move-out", headers=fresh(), json={}).status_code
    expected = {w: (201 if w == "add_person" and write == 200 else write) for w in LEDGER_WRITES}
    assert answers == expected
    with sessions.begin() as s:
        current = s.scalar(text("SELECT count(*) FROM persons WHERE household_id = :h AND moved_out IS NULL"),
                           {"h": household})
        refused = s.scalar(text("SELECT count(*) FROM audit_log WHERE username = :u AND result LIKE 'refused%'"),
                           {"u": user})
    assert current == 1  # the admin's resident; one added by the caller moved out again
    assert (refused > 0) == (write != 200)


# Correcting a visit (issue 19 item 11): the worker who recorded it within their grids, planners in their area and
# admins; another worker of the same grid is refused (403), one of another grid or a far planner finds nothing
# (404), roles that do not correct visits are refused (403); every refusal is audited.
VISIT_CORRECTION_ROWS = [  # (user, role, scope code, grid, expected)
    ("viewer1", None, None, None, 403),
    ("auditor2", None, None, None, 403),
    ("inspector1", "inspector", COMMUNITY, None, 403),
    ("worker_own", "grid_worker", None, GRID, 201),    # recorded the visit
    ("worker_peer", "grid_worker", None, GRID, 403),   # same grid, not theirs
    ("worker_other", "grid_worker", None, "other", 404),
    ("planner1", "planner", COMMUNITY, None, 201),
    ("planner_far", "planner", "far", None, 404),
    ("admin1", "admin", None, None, 201),
]


def test_visit_corrections_follow_role_and_scope(env):
    from tests import factories

    client, sessions, tokens = env
    with sessions.begin() as s:
        other = s.scalar(text("SELECT code FROM grids WHERE community_code = :c AND code <> :g ORDER BY code LIMIT 1"),
                         {"c": COMMUNITY, "g": GRID})
        far = factories.community(s).code
        specs = [(u, r, far if sc == "far" else sc, other if g == "other" else g)
                 for u, r, sc, g, _ in VISIT_CORRECTION_ROWS if r]
        made = factories.users_with_grids(s, specs, users.hash_password(PASSWORD))
        tokens = {**tokens, **{n: {"Authorization": "Bearer " + users.issue_token(s, u, 3600)[0]}
                               for n, u in made.items()}}
        household, grid_id, lon, lat = s.execute(text(
            "SELECT h.id, g.id, ST_X(ST_PointOnSurface(b.footprint)), ST_Y(ST_PointOnSurface(b.footprint)) "
            "FROM households h JOIN buildings b ON b.id = h.building_id JOIN grids g ON g.id = b.grid_id "
            "WHERE g.code = :g ORDER BY h.id LIMIT 1"), {"g": GRID}).one()
        worker = Principal(made["worker_own"].id, "worker_own", "grid_worker", grid_ids=frozenset({grid_id}))
        campaigns.record_visit(s, worker, 1, household, result="normal", lon=lon, lat=lat)
    url = f"/api/field/campaigns/1/visits/{household}/corrections"
    answers = {u: client.post(url, headers=tokens[u], json={"result": "vacant", "reason": f"{u} 核实为空置"}).status_code
               for u, *_ in VISIT_CORRECTION_ROWS}
    assert answers == {u: expected for u, *_, expected in VISIT_CORRECTION_ROWS}
    with sessions.begin() as s:
        kept = s.scalar(text("SELECT count(*) FROM campaign_visit_corrections"))
        refused = s.scalar(text("SELECT count(DISTINCT username) FROM audit_log WHERE result LIKE 'refused%' "
                                "AND username = ANY(:u)"), {"u": [u for u, *_, e in VISIT_CORRECTION_ROWS if e >= 400]})
    assert kept == 3 and refused == 6


# Who may run the onboarding imports (api/routers/imports.py): admins only; everyone else is refused (403) and the
# refusal is audited. A file is sent, so the refusal is the role's, not a missing form field's.
ONBOARDING_IMPORTS = {
    ("POST", "/api/import/buildings"): ("b.geojson", b'{"type": "FeatureCollection", "features": []}'),
    ("POST", "/api/import/streets"): ("s.geojson", b'{"type": "FeatureCollection", "features": []}'),
    ("POST", "/api/import/residents"): ("r.csv", "姓名,身份证号,楼栋编码,房号\n".encode()),
    ("POST", "/api/buildings/estimate"): None,
}


def test_the_onboarding_imports_are_listed_and_exist(operations):
    assert set(ONBOARDING_IMPORTS) <= set(operations)


@pytest.mark.parametrize("operation", sorted(ONBOARDING_IMPORTS))
def test_only_admins_run_the_onboarding_imports(env, operation):
    client, sessions, tokens = env
    method, path = operation
    upload = ONBOARDING_IMPORTS[operation]
    with sessions.begin() as s:
        for name, role, scope in (("planner1", "planner", "440399001000"), ("worker1", "grid_worker", None),
                                  ("admin1", "admin", None)):
            user = User(username=name, password_hash=users.hash_password(PASSWORD), role=role, scope_code=scope)
            s.add(user)
            s.flush()
            tokens[name] = {"Authorization": "Bearer " + users.issue_token(s, user, 3600)[0]}

    def call(name: str, dry_run: str = "true"):
        files = {"file": upload} if upload else None
        data = {"reason": "access matrix", "dry_run": dry_run} if upload else None
        return client.request(method, path, headers=tokens[name], files=files, data=data)

    for name in ("viewer1", "auditor1", "nobody", "planner1", "worker1"):
        assert call(name).status_code == 403, (name, path)
    with sessions.begin() as s:
        refused = s.scalar(text("SELECT count(*) FROM audit_log WHERE action IN ('import', 'estimate') "
                                "AND result LIKE 'refused 403%'"))
    assert refused == 5
    PersonalKeys.load_or_create(client.app.state.settings.personal_key_path, create=True)
    answer = call("admin1")
    assert answer.status_code in (200, 422), answer.text  # an empty layer or ledger: checked, or refused as empty
    if upload:
        assert call("admin1", dry_run="false").status_code == 428  # the import needs the check's basis


# The one network (issue 16 §2, api/routers/one_network.py): a department's layer and the places are imported by admins
# and by planners whose area holds what the file touches; the crosswalk is read by admins, planners and inspectors in
# scope; who handles a point answers every logged-in role (people's names and phones masked).
ONE_NETWORK = [  # (user, role, scope: 'here' the city's subdistrict, 'far' another one, import, crosswalk)
    ("viewer_on", "viewer", "here", 403, 403),
    ("auditor_on", "auditor", "here", 403, 403),
    ("worker_on", "grid_worker", None, 403, 403),
    ("dept_on", "department", "here", 403, 403),
    ("inspector_on", "inspector", "here", 403, 200),
    ("planner_none", "planner", None, 403, 403),
    ("planner_far", "planner", "far", 403, 403),
    ("planner_on", "planner", "here", 200, 200),
    ("admin_on", "admin", None, 200, 200),
]


def test_the_one_network_operations_are_listed_and_exist(operations):
    listed = {("POST", "/api/one-network/departments/{credit_code}/grids"), ("GET", "/api/one-network/layers"),
              ("GET", "/api/one-network/crosswalk"), ("GET", "/api/one-network/who-handles"),
              ("GET", "/api/one-network/cases/{case_id}/departments"), ("POST", "/api/one-network/places/import"),
              ("GET", "/api/one-network/places")}
    assert listed == {op for op in operations if op[1].startswith("/api/one-network/")}


def test_one_network_follows_role_and_scope(env):
    from spatial.geometry.codes import credit_check_char
    from tests import factories

    client, sessions, tokens = env
    department = "91440399MA5F00001" + credit_check_char("91440399MA5F00001")
    with sessions.begin() as s:
        far = factories.community(s).parent_code
        grid_json, lon, lat = s.execute(text(
            "SELECT ST_AsGeoJSON(boundary), ST_X(ST_PointOnSurface(boundary)), ST_Y(ST_PointOnSurface(boundary)) "
            "FROM grids WHERE code = :c"), {"c": GRID}).one()
        password_hash = users.hash_password(PASSWORD)
        for name, role, scope, _, _ in ONE_NETWORK:
            user = User(username=name, password_hash=password_hash, role=role,
                        scope_code={"here": "440399001000", "far": far}.get(scope),
                        department="市场监督管理局" if role == "department" else None)
            s.add(user)
            s.flush()
            users.assign_grids(s, user, (GRID,) if role == "grid_worker" else ())
            tokens[name] = {"Authorization": "Bearer " + users.issue_token(s, user, 3600)[0]}
    layer = json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": "M1"}, "geometry": json.loads(grid_json)}]}).encode()
    sheet = f"名称,类型,经度,纬度\n小店,小商店,{lon},{lat}\n".encode()
    for user, role, scope, may_import, may_read in ONE_NETWORK:
        headers = tokens[user]
        grids = client.post(f"/api/one-network/departments/{department}/grids", headers=headers,
                            files={"file": ("m.geojson", layer)},
                            data={"department_name": "市场监督管理局", "layer_name": "市场监管网格", "reason": "矩阵",
                                  "dry_run": "true"})
        assert grids.status_code == may_import, (user, grids.text)
        places = client.post("/api/one-network/places/import", headers=headers, files={"file": ("p.csv", sheet)},
                             data={"reason": "矩阵", "dry_run": "true"})
        assert places.status_code == (200 if may_import == 200 else 403 if role != "planner" else 422), (user, places.text)
        crosswalk = client.get("/api/one-network/crosswalk", headers=headers, params={"subdistrict": "440399001000"})
        assert crosswalk.status_code == may_read, (user, crosswalk.text)
        handles = client.get("/api/one-network/who-handles", headers=headers, params={"x": lon, "y": lat})
        assert handles.status_code == 200 and handles.json()["grid"]["code"] == GRID, (user, handles.text)
    with sessions.begin() as s:
        refused = s.scalar(text("SELECT count(*) FROM audit_log WHERE action = 'import' AND object_type IN "
                                "('department_grids', 'places') AND result LIKE 'refused%'"))
        written = s.scalar(text("SELECT count(*) FROM department_grids")) + s.scalar(text("SELECT count(*) FROM places"))
    assert refused >= 2 * 7 - 2 and written == 0  # dry runs only
# -- patrol records (issue 17 §2): a worker's track is seen by the worker, their grid's leader and admins ----------

PATROL_ROWS = [  # (user, role, scope code, duty in the grid, expected reads, expected write of fixes)
    ("worker_own", "grid_worker", None, "worker", 200, 200),  # the worker who walked it
    ("worker_other", "grid_worker", None, "worker", 404, 404),  # another worker of the same grid
    ("leader1", "grid_worker", None, "leader", 200, 404),     # the grid's leader reads, never writes
    ("planner1", "planner", COMMUNITY, None, 404, 403),       # planners of the area: not their personal data
    ("viewer1", None, None, None, 404, 403),
    ("admin1", "admin", None, None, 200, 404),                # admins read; only the worker adds fixes
]


@pytest.mark.parametrize("user, role, scope, duty, read, write", PATROL_ROWS, ids=[r[0] for r in PATROL_ROWS])
def test_patrol_tracks_follow_the_worker_their_leader_and_admins(env, user, role, scope, duty, read, write):
    from tests import factories

    client, sessions, tokens = env
    with sessions.begin() as s:
        grid = s.execute(text("SELECT id, code FROM grids WHERE code = :g"), {"g": GRID}).one()
        specs = [("worker_own", "grid_worker", None, GRID)]
        if role and user != "worker_own":
            specs.append((user, role, scope, GRID if duty else None))
        made = factories.users_with_grids(s, specs, users.hash_password(PASSWORD))
        if duty == "leader":
            s.execute(text("UPDATE grid_assignments SET duty = 'leader' WHERE user_id = :u"), {"u": made[user].id})
        tokens = {**tokens, **{n: {"Authorization": "Bearer " + users.issue_token(s, u, 3600)[0]}
                               for n, u in made.items()}}
        lon, lat = s.execute(text("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(boundary) AS p FROM grids "
                                  "WHERE id = :g) q"), {"g": grid.id}).one()
    started = client.post("/api/patrols", headers=tokens["worker_own"], json={"grid_id": grid.id})
    assert started.status_code == 201, started.text
    url = f"/api/patrols/{started.json()['id']}"
    fix = {"fixes": [{"at": "2026-12-03T10:00:00+08:00", "lon": lon, "lat": lat}]}
    assert client.post(f"{url}/fixes", headers=tokens["worker_own"], json=fix).status_code == 200
    answers = (client.get(url, headers=tokens[user]).status_code,
               client.get(f"{url}/track", headers=tokens[user]).status_code)
    assert answers == (read, read)
    later = {"fixes": [{"at": "2026-12-03T10:00:05+08:00", "lon": lon, "lat": lat}]}
    assert client.post(f"{url}/fixes", headers=tokens[user], json=later).status_code == write
    with sessions.begin() as s:
        audited = s.scalar(text("SELECT count(*) FROM audit_log WHERE username = :u AND action = 'read' "
                                "AND object_type IN ('patrol_record', 'patrol_track')"), {"u": user})
    assert audited == (2 if read == 200 else 0)
# -- the grid team (issue 17 §1, decision 0020): what each team role may read and do ----------------------------------
# (own: a household of their building / grid; other: of another building of the grid; a police officer outside their
# grid: tests/test_team.py). 'report' a case at their building and at that other building. Columns: sheet own, sheet other, edit own, reveal own, export, team page, team
# checks, assign, hand out a task, list tasks, nearby (households seen), report here, report elsewhere.
TEAM_ROWS = {
    "police1": (200, 200, 403, 403, 403, 200, 200, 403, 403, 200, "grid", 201, 201),
    "medic1": (403, 403, 403, 403, 403, 403, 403, 403, 403, 200, 403, 201, 201),
    "expert1": (403, 403, 403, 403, 403, 403, 403, 403, 403, 200, 403, 201, 201),
    "head1": (200, 404, 403, 403, 403, 403, 403, 403, 403, 200, "building", 201, 403),
    "unit1": (200, 404, 403, 403, 403, 403, 403, 403, 403, 200, "building", 201, 403),
    "vol1": (403, 403, 403, 403, 403, 403, 403, 403, 403, 200, 403, 201, 201),
}


def test_every_team_role_has_a_row():
    from spatial.access import TEAM_ROLES

    assert {role for name, role in TEAM_USERS if name in TEAM_ROWS} == set(TEAM_ROLES)


def test_team_roles_read_and_do_only_what_their_job_needs(env):
    client, sessions, tokens = env
    with sessions.begin() as s:
        own_building, own = s.execute(text(
            "SELECT a.building_id, (SELECT min(h.id) FROM households h WHERE h.building_id = a.building_id) "
            "FROM team_assignments a JOIN users u ON u.id = a.user_id WHERE u.username = 'head1'")).one()
        other, far_building = s.execute(text(  # the city's households are all in GRID: another building of it
            "SELECT min(h.id), h.building_id FROM households h WHERE h.building_id <> :b GROUP BY h.building_id "
            "ORDER BY h.building_id LIMIT 1"), {"b": own_building}).one()
        here, elsewhere = (s.execute(text("SELECT ST_X(ST_PointOnSurface(footprint)), ST_Y(ST_PointOnSurface(footprint)) "
                                          "FROM buildings WHERE id = :b"), {"b": b}).one()
                           for b in (own_building, far_building))
        grid_households = set(s.scalars(text("SELECT h.id FROM households h JOIN buildings b ON b.id = h.building_id "
                                             "JOIN grids g ON g.id = b.grid_id WHERE g.code = :g"), {"g": GRID}))
        building_households = set(s.scalars(text("SELECT id FROM households WHERE building_id = :b"),
                                            {"b": own_building}))
    sheet = f"/api/field/households/{own}"
    etag = client.get(sheet, headers=tokens["police1"]).headers["ETag"]
    case = {"category": "environment.garbage", "description": "楼道堆放杂物"}
    found = {}
    for name, expected in TEAM_ROWS.items():
        who = tokens[name]
        nearby = client.get("/api/field/nearby", headers=who, params={"lon": here[0], "lat": here[1], "radius": 1000})
        seen = ({h["id"] for h in nearby.json()["households"]} if nearby.status_code == 200 else nearby.status_code)
        found[name] = (
            client.get(sheet, headers=who).status_code,
            client.get(f"/api/field/households/{other}", headers=who).status_code,
            client.patch(sheet, headers={**who, "If-Match": etag}, json={"floor": 7}).status_code,
            client.post(f"{sheet}/reveal", headers=who, json={"reason": "核对信息", "fields": ["head_phone"]}).status_code,
            client.get(f"/api/export/communities/{COMMUNITY}", headers=who).status_code,
            client.get(f"/api/team/grids/{GRID}", headers=who).status_code,
            client.get("/api/team/checks", headers=who).status_code,
            client.post("/api/team/assignments", headers=who,
                        json={"username": name, "duty": "volunteer", "grid_code": GRID}).status_code,
            client.post("/api/tasks", headers=who, json={"kind": "care_visit", "assignee": name,
                                                         "due": "2030-01-01", "household_id": own}).status_code,
            client.get("/api/tasks", headers=who).status_code,
            "grid" if seen and seen != 403 and seen <= grid_households and not seen <= building_households
            else "building" if seen == building_households else seen,
            client.post("/api/cases", headers=who, json={**case, "x": here[0], "y": here[1]}).status_code,
            client.post("/api/cases", headers=who, json={**case, "x": elsewhere[0], "y": elsewhere[1]}).status_code)
    assert found == TEAM_ROWS
    with sessions.begin() as s:
        refused = dict(s.execute(text("SELECT username, count(*) FROM audit_log WHERE result LIKE 'refused%' "
                                      "AND username = ANY(:n) GROUP BY username"), {"n": list(TEAM_ROWS)}).all())
    assert set(refused) == set(TEAM_ROWS)  # every team role was refused something, and it is in the audit log


# -- scorecards (issue 17 §3, decision 0024): planners, inspectors and admins see their area's workers; a grid worker
# their own card; a planner far away nothing (403 naming another's division); every other role 403 ----------------

SCORECARD_ROWS = [  # (user, role, scope code, grid, GET, workers seen, export, GET ?division=COMMUNITY)
    ("admin1", "admin", None, None, 200, {"worker_a", "worker_b"}, 200, 200),
    ("planner1", "planner", COMMUNITY, None, 200, {"worker_a", "worker_b"}, 200, 200),
    ("inspector1", "inspector", COMMUNITY, None, 200, {"worker_a", "worker_b"}, 200, 200),
    ("worker_a", "grid_worker", None, GRID, 200, {"worker_a"}, 200, 200),
    ("planner_far", "planner", "440398000000", None, 200, set(), 200, 403),
    ("viewer1", None, None, None, 403, None, 403, 403),
    ("police1", None, None, None, 403, None, 403, 403),
    ("dept1", None, None, None, 403, None, 403, 403),
]


@pytest.mark.parametrize("user, role, scope, grid, read, seen, export, named", SCORECARD_ROWS,
                         ids=[r[0] for r in SCORECARD_ROWS])
def test_scorecards_follow_the_area_and_a_worker_sees_their_own(env, user, role, scope, grid, read, seen, export,
                                                                named):
    from spatial.store.models import Division
    from tests import factories

    client, sessions, tokens = env
    with sessions.begin() as s:
        s.add(Division(code="440398000000", level="district", name="远区"))
        s.flush()
        specs = [("worker_a", "grid_worker", None, GRID), ("worker_b", "grid_worker", None, GRID)]
        if role and user not in ("worker_a", "worker_b"):
            specs.append((user, role, scope, grid))
        made = factories.users_with_grids(s, specs, users.hash_password(PASSWORD))
        tokens = {**tokens, **{n: {"Authorization": "Bearer " + users.issue_token(s, u, 3600)[0]}
                               for n, u in made.items()}}
    q = {"from": "2026-11-01", "to": "2026-11-30"}
    answer = client.get("/api/scorecards", headers=tokens[user], params=q)
    assert answer.status_code == read, answer.text
    if read == 200:
        assert {c["key"] for c in answer.json()["workers"]} == seen
    assert client.get("/api/scorecards/export", headers=tokens[user], params=q).status_code == export
    assert client.get("/api/scorecards", headers=tokens[user], params={**q, "division": COMMUNITY}).status_code == named
    with sessions.begin() as s:
        audited = s.scalar(text("SELECT count(*) FROM audit_log WHERE username = :u AND action = 'read_scorecards'"),
                           {"u": user})
    assert audited == (2 + (named == 200) if read == 200 else 0)
