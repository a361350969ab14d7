"""Divisions: a new subdistrict imports itself and its communities (checks, CRSs, idempotence, redraw reports),
and admins create, rename and redraw divisions through the API with history and If-Match, and from the CLI."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely
from click.testing import CliRunner
from sqlalchemy import func, select, text

from gridgov.cli import main
from spatial.geometry.crs import transform_geom, wgs84_to_gcj02
from spatial.io.division_files import import_division_file
from spatial.store import users
from spatial.store.engine import acting_as, make_engine, make_sessionmaker
from spatial.store.models import AuditEntry, Division, DivisionVersion, Grid
from tests import factories
from tests.conftest import login

SUB, C1, C2 = "440304097000", "440304097001", "440304097002"
PASSWORD = "correct horse battery"


def box(x0, y0, x1, y1) -> shapely.Polygon:
    return factories.metres_box(x0, y0, x1, y1).geoms[0]


def plan(**changes) -> list[tuple[shapely.Geometry, dict]]:
    """The subdistrict (400 m × 200 m) and its two communities side by side; ``changes`` replace a feature's
    geometry (by code) or, with a dict, its properties."""
    rows = {SUB: (box(0, 0, 400, 200), {"代码": SUB, "名称": "测试街道"}),
            C1: (box(0, 0, 200, 200), {"代码": C1, "名称": "西社区"}),
            C2: (box(200, 0, 400, 200), {"代码": C2, "名称": "东社区"})}
    for code, change in changes.items():
        geom, props = rows[code]
        rows[code] = (geom, {**props, **change}) if isinstance(change, dict) else (change, props)
    return list(rows.values())


def write(path, features, crs="EPSG:4326", layer="divisions"):
    frame = gpd.GeoDataFrame([p for _, p in features], geometry=[g for g, _ in features], crs="EPSG:4326")
    if crs != "EPSG:4326":
        frame = frame.to_crs(crs)
    frame.to_file(path, layer=layer) if path.suffix == ".gpkg" else frame.to_file(path, driver="GeoJSON")
    return path


def geojson(features) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": p, "geometry": json.loads(shapely.to_geojson(g))} for g, p in features]}
    ).encode()


def messages(report) -> list[str]:
    return [f"{severity}: {message}" for _, severity, message in report.findings]


def metric(geom):
    return transform_geom(geom, 4326, 4547)


# -- the import ------------------------------------------------------------------------------------------------
def test_a_new_subdistrict_imports_itself_and_its_communities_and_a_reimport_changes_nothing(db, tmp_path):
    path = write(tmp_path / "街道.gpkg", plan(), crs="EPSG:4547")  # CGCS2000 Gauss-Krüger metres
    report = import_division_file(db, path, actor="admin1", reason="新街道成立")
    assert report.errors == [] and report.written, report.summary()
    assert report.inserted == 4 and report.updated == 0  # the district row is created too (noted)
    assert any("district 440304000000 is not stored" in n for n in report.notes)
    rows = {d.code: d for d in db.scalars(select(Division))}
    assert (rows[SUB].level, rows[SUB].parent_code, rows[SUB].name) == ("subdistrict", "440304000000", "测试街道")
    assert (rows[C1].level, rows[C1].parent_code, rows[C2].name) == ("community", SUB, "东社区")
    history = db.scalars(select(DivisionVersion).where(DivisionVersion.code == C1)).all()
    assert [(v.version, v.author, v.reason) for v in history] == [(1, "admin1", "新街道成立")]
    area = db.scalar(select(func.ST_Area(func.ST_Transform(Division.boundary, 4547))).where(Division.code == C1))
    assert area == pytest.approx(200 * 200, rel=1e-4)
    audited = db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.object_type == "division"))
    assert audited == 4

    again = import_division_file(db, path, actor="admin1", reason="again")
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3), again.summary()
    assert "unchanged" in again.summary() and again.errors == []
    assert db.scalar(select(func.max(Division.version))) == 1
    assert db.scalar(select(func.count()).select_from(DivisionVersion)) == 4


def test_a_gcj02_copy_gives_the_same_geometry_within_a_metre(db, tmp_path):
    shifted = [(shapely.transform(g, lambda xy: np.column_stack(wgs84_to_gcj02(xy[:, 0], xy[:, 1]))),
                {"code": p["代码"], "name": p["名称"]}) for g, p in plan()]
    path = write(tmp_path / "amap.geojson", shifted)
    report = import_division_file(db, path, crs="GCJ-02", actor="t", reason="from Amap")
    assert report.errors == [] and any("GCJ-02" in n for n in report.notes), report.summary()
    stored = shapely.from_wkb(bytes(db.scalar(select(func.ST_AsBinary(Division.boundary)).where(Division.code == C2))))
    assert shapely.hausdorff_distance(metric(stored), metric(box(200, 0, 400, 200))) < 1.0
    raw = shapely.from_wkb(shapely.to_wkb(shifted[2][0]))
    assert shapely.hausdorff_distance(metric(raw), metric(box(200, 0, 400, 200))) > 100  # the shift was real


def test_fields_named_by_option_and_levels_in_chinese(db, tmp_path):
    features = [(g, {"QHDM": p["代码"], "QHMC": p["名称"], "JB": "街道" if p["代码"] == SUB else "社区"})
                for g, p in plan()]
    path = write(tmp_path / "mapped.geojson", features)
    with pytest.raises(Exception, match="no code field found"):
        import_division_file(db, path, dry_run=True)
    report = import_division_file(db, path, fields={"code": "qhdm", "name": "QHMC", "level": "JB"}, dry_run=True)
    assert report.errors == [] and report.divisions == ["440304000000", SUB, C1, C2]
    assert not report.written and db.scalar(select(func.count()).select_from(Division)) == 0
    assert report.inserted == 4  # what it would do: the district, the subdistrict and two communities


@pytest.mark.parametrize("changes, expected", [
    ({C1: {"代码": "44030409700"}}, "error: code '44030409700' is not 12 digits"),
    ({C1: {"代码": "440304098001"}}, "error: its subdistrict 440304098000 (the code's first 9 digits + 000) is "
                                     "neither in the file nor stored"),
    ({SUB: {"级别": "社区"}, C1: {"级别": "社区"}}, "error: code 440304097000 ends in 000: it is a subdistrict's code, "
                                                  "not a community's"),
    ({C1: {"名称": "  "}}, "error: community 440304097001 needs a name"),
    ({C2: {"代码": C1}}, "error: code 440304097001 appears twice"),
    ({C2: box(200, 0, 450, 200)}, "error: 10,000 m² lie outside its subdistrict 440304097000 (more than 1 m beyond"),
    ({C1: box(0, 0, 220, 200)}, "error: overlaps imported community 440304097002 by"),
    ({C2: box(200, 0, 350, 200)}, "warning: 10,000 m² of the subdistrict lie in no community"),
    ({C2: shapely.Polygon([(114.0745, 22.565), (114.0755, 22.566), (114.0755, 22.565), (114.0745, 22.566)])},
     "warning: invalid polygon (Self-intersection"),
    ({C2: shapely.Point(114.07, 22.56).buffer(0.001).exterior}, "error: not a polygon (LineString)"),
])
def test_each_check_reports_the_feature_and_a_bad_file_writes_nothing(db, tmp_path, changes, expected):
    path = write(tmp_path / "bad.geojson", plan(**changes))
    report = import_division_file(db, path, actor="t", reason="test")
    found = [m for m in messages(report) if m.startswith(expected)]
    assert found, report.summary()
    feature = next(f for f, s, m in report.findings if f"{s}: {m}".startswith(expected))
    assert feature.startswith("feature ")  # each finding names the feature (index, fid, code)
    if expected.startswith("error"):
        assert not report.written and db.scalar(select(func.count()).select_from(Division)) == 0


def test_slivers_within_the_tolerance_are_accepted(db, tmp_path):
    path = write(tmp_path / "slivers.geojson", plan(**{C2: box(199.6, 0, 400.5, 200)}))  # 0.4 m over, 0.5 m out
    report = import_division_file(db, path, actor="t", reason="test")
    assert report.errors == [] and report.written, report.summary()


def test_a_redrawn_community_reports_the_grids_and_buildings_it_leaves_out(db, tmp_path):
    assert import_division_file(db, write(tmp_path / "a.geojson", plan()), actor="t", reason="t").written
    with acting_as(db, "tester", "grids of the west community"):
        west = Grid(code=C1 + "01", community_code=C1, name="一", boundary=factories.db_box(0, 0, 100, 200))
        east = Grid(code=C1 + "02", community_code=C1, name="二", boundary=factories.db_box(100, 0, 200, 200))
        db.add_all([west, east])
        db.flush()
    factories.building(db, east, 150, 50, number=1)
    factories.building(db, west, 20, 50, number=1)
    redrawn = write(tmp_path / "b.geojson", plan(**{C1: box(0, 0, 100, 200), C2: box(100, 0, 400, 200)}))
    report = import_division_file(db, redrawn, actor="t", reason="west community shrinks")
    assert report.errors == [] and report.updated == 2, report.summary()
    assert report.left_out == {C1: {"grids": [C1 + "02"], "buildings": 1, "building_codes": [C1 + "0200001"]}}
    assert any(f"grid(s) {C1}02 reach outside it; 1 building(s)" in m for m in messages(report))
    assert db.scalar(select(Division.version).where(Division.code == C1)) == 2


def test_a_subdistrict_redrawn_without_a_stored_community_is_an_error(db, tmp_path):
    assert import_division_file(db, write(tmp_path / "a.geojson", plan()), actor="t", reason="t").written
    shrunk = write(tmp_path / "b.geojson", [plan(**{SUB: box(0, 0, 200, 200)})[0]])  # the subdistrict alone
    report = import_division_file(db, shrunk, actor="t", reason="shrink")
    assert messages(report) == [f"error: stored community {C2} would have 40,000 m² outside this boundary (more "
                                "than 1 m beyond its boundary): redraw it too"]
    assert not report.written and db.scalar(select(Division.version).where(Division.code == SUB)) == 1


# -- the API ----------------------------------------------------------------------------------------------------
@pytest.fixture
def api(app_env):
    client, sessions = app_env
    with sessions.begin() as s:
        users.create_user(s, "admin1", PASSWORD, "admin")
        s.add(Division(code="440304000000", level="district", name="福田区"))
        s.flush()
        users.create_user(s, "planner1", PASSWORD, "planner", scope_code="440304000000")
    return client, sessions, login(client, "admin1", PASSWORD)


def _geometry(geom) -> dict:
    return json.loads(shapely.to_geojson(geom))


def test_admins_create_rename_and_redraw_divisions_with_history_and_stale_edits_are_412(api):
    client, sessions, admin = api
    made = client.post("/api/divisions", headers=admin, json={
        "code": SUB, "name": "测试街道", "geometry": _geometry(box(0, 0, 400, 200)), "reason": "新街道成立"})
    assert made.status_code == 201, made.text
    assert made.headers["ETag"] == f'"{SUB}.v1"'
    community = client.post("/api/divisions", headers=admin, json={
        "code": C1, "name": "西社区", "geometry": _geometry(box(0, 0, 200, 200)), "reason": "新社区"})
    assert community.status_code == 201, community.text
    assert community.json()["uncovered_m2"] == {SUB: pytest.approx(40_000, rel=1e-3)}
    etag = client.get(f"/api/divisions/{C1}", headers=admin).headers["ETag"]
    renamed = client.patch(f"/api/divisions/{C1}", headers={**admin, "If-Match": etag},
                           json={"name": "沙嘴社区", "reason": "更名"})
    assert renamed.status_code == 200 and renamed.headers["ETag"] == f'"{C1}.v2"', renamed.text
    stale = client.patch(f"/api/divisions/{C1}", headers={**admin, "If-Match": etag},
                         json={"name": "别名", "reason": "based on v1"})
    assert stale.status_code == 412 and "version 2, not 1" in stale.json()["detail"]
    missing = client.patch(f"/api/divisions/{C1}", headers=admin, json={"name": "别名", "reason": "no etag"})
    assert missing.status_code == 428
    redrawn = client.put(f"/api/divisions/{C1}/boundary", headers={**admin, "If-Match": renamed.headers["ETag"]},
                         json={"geometry": _geometry(box(0, 0, 250, 200)), "reason": "扩大"})
    assert redrawn.status_code == 200 and redrawn.headers["ETag"] == f'"{C1}.v3"', redrawn.text
    with sessions.begin() as s, acting_as(s, "tester", "a grid reaching east"):
        s.add(Grid(code=C1 + "01", community_code=C1, name="一", boundary=factories.db_box(0, 0, 250, 200)))
    shrunk = client.put(f"/api/divisions/{C1}/boundary", headers={**admin, "If-Match": redrawn.headers["ETag"]},
                        json={"geometry": _geometry(box(0, 0, 200, 200)), "reason": "缩小"})
    assert shrunk.status_code == 200 and shrunk.json()["left_out"] == {
        C1: {"grids": [C1 + "01"], "buildings": 0, "building_codes": []}}, shrunk.text
    redrawn = shrunk
    outside = client.put(f"/api/divisions/{C1}/boundary", headers={**admin, "If-Match": redrawn.headers["ETag"]},
                         json={"geometry": _geometry(box(0, 0, 500, 200)), "reason": "too far"})
    assert outside.status_code == 409 and "outside its subdistrict" in outside.json()["detail"]
    history = client.get(f"/api/divisions/{C1}/versions", headers=admin).json()
    assert [(v["version"], v["name"], v["author"], v["reason"]) for v in history] == [
        (1, "西社区", "admin1", "新社区"), (2, "沙嘴社区", "admin1", "更名"), (3, "沙嘴社区", "admin1", "扩大"),
        (4, "沙嘴社区", "admin1", "缩小")]
    assert [round(v["area_m2"], -2) for v in history] == [40_000, 40_000, 50_000, 40_000]
    assert history[2]["valid_to"] is not None and history[3]["valid_to"] is None
    with sessions() as s:
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.object_type == "division",
                                                             AuditEntry.object_id == C1).order_by(AuditEntry.id)).all()
    assert actions == ["create", "rename", "redraw", "redraw"]


def test_bad_divisions_are_refused_with_a_message_a_planner_can_act_on(api):
    client, _, admin = api
    orphan = client.post("/api/divisions", headers=admin, json={
        "code": C1, "name": "西社区", "geometry": _geometry(box(0, 0, 200, 200)), "reason": "no subdistrict"})
    assert orphan.status_code == 422 and "create the subdistrict 440304097000 first" in orphan.json()["detail"]
    short = client.post("/api/divisions", headers=admin, json={
        "code": "4403040970", "name": "x", "geometry": _geometry(box(0, 0, 1, 1)), "reason": "bad code"})
    assert short.status_code == 422
    wrong = client.post("/api/divisions", headers=admin, json={
        "code": SUB, "level": "community", "name": "x", "geometry": _geometry(box(0, 0, 1, 1)), "reason": "level"})
    assert wrong.status_code == 422 and "subdistrict's code" in wrong.json()["detail"]
    assert client.get("/api/divisions/440304097999", headers=admin).status_code == 404
    district = client.post("/api/divisions", headers=admin, json={"code": "440305000000", "name": "南山区",
                                                                 "reason": "a district has no boundary here"})
    assert district.status_code == 201 and district.json()["division"]["geometry"] is None, district.text
    shapeless = client.post("/api/divisions", headers=admin, json={"code": "440305001000", "name": "街道",
                                                                  "reason": "no boundary"})
    assert shapeless.status_code == 422 and "a subdistrict needs a boundary" in shapeless.json()["detail"]
    taken = client.post("/api/divisions", headers=admin, json={"code": "440305000000", "name": "again",
                                                              "reason": "twice"})
    assert taken.status_code == 409 and "exists already" in taken.json()["detail"]
    spec = client.get("/openapi.json").json()["components"]["schemas"]["DivisionCreate"]["properties"]
    assert spec["code"]["pattern"] == "^[0-9]{12}$" and spec["name"]["maxLength"] == 100


def test_non_admins_may_not_change_divisions(api):
    client, _, admin = api
    planner = login(client, "planner1", PASSWORD)
    body = {"code": SUB, "name": "测试街道", "geometry": _geometry(box(0, 0, 400, 200)), "reason": "planner tries"}
    assert client.post("/api/divisions", headers=planner, json=body).status_code == 403
    assert client.post("/api/divisions", headers=admin, json=body).status_code == 201
    assert client.patch(f"/api/divisions/{SUB}", headers={**planner, "If-Match": f'"{SUB}.v1"'},
                        json={"name": "x", "reason": "planner tries"}).status_code == 403
    upload = client.post("/api/divisions/import", headers=planner, files={"file": ("d.geojson", geojson(plan()))},
                         data={"reason": "planner tries"})
    assert upload.status_code == 403
    assert client.get(f"/api/divisions/{SUB}", headers=planner).status_code == 200  # reading is in scope


def test_api_import_dry_run_then_commit_with_its_basis(api):
    client, sessions, admin = api
    files = {"file": ("街道.geojson", geojson(plan()))}
    dry = client.post("/api/divisions/import", headers=admin, files=files, data={"reason": "新街道", "dry_run": "true"})
    assert dry.status_code == 200 and dry.json()["written"] is False and dry.headers["ETag"] == dry.json()["basis"]
    done = client.post("/api/divisions/import", headers={**admin, "If-Match": dry.json()["basis"]},
                       files={"file": ("街道.geojson", geojson(plan()))}, data={"reason": "新街道"})
    assert done.status_code == 200 and done.json()["inserted"] == 3, done.text
    stale = client.post("/api/divisions/import", headers={**admin, "If-Match": dry.json()["basis"]},
                        files={"file": ("街道.geojson", geojson(plan()))}, data={"reason": "again"})
    assert stale.status_code == 412 and "changed after the dry run" in stale.json()["detail"]
    bad = client.post("/api/divisions/import", headers=admin, data={"reason": "bad"},
                      files={"file": ("bad.geojson", geojson(plan(**{C1: {"代码": "x"}, C2: box(200, 0, 450, 200)})))})
    assert bad.status_code == 422 and "nothing was written" in bad.json()["detail"]
    findings = {f["feature"]: (f["severity"], f["message"]) for f in bad.json()["report"]["findings"]}
    assert findings == {"feature 1 (fid 1, id x)": ("error", "code 'x' is not 12 digits (6 county + 3 subdistrict + 3 "
                                                      "community, e.g. 440304096001)"),
                        f"feature 2 (fid 2, id {C2})": ("error", f"10,000 m² lie outside its subdistrict {SUB} "
                                                          "(more than 1 m beyond its boundary)")}
    with sessions() as s:
        assert s.scalar(select(Division.version).where(Division.code == C1)) == 1
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "import")) >= 3


# -- the command line ---------------------------------------------------------------------------------------------
def test_cli_dry_run_prints_the_report_and_writes_nothing(fresh_db_url, tmp_path):
    env = {"GRIDGOV_DATABASE_URL": fresh_db_url, "GRIDGOV_DATA_DIR": str(tmp_path)}
    path = write(tmp_path / "街道.gpkg", plan(**{C2: box(200, 0, 350, 200)}), crs="EPSG:4547")
    dry = CliRunner().invoke(main, ["import", "divisions", str(path), "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "checked (dry run)" in dry.output and "10,000 m² of the subdistrict lie in no community" in dry.output
    sessions = make_sessionmaker(make_engine(fresh_db_url, pool_size=1))
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Division)) == 0
    done = CliRunner().invoke(main, ["import", "divisions", str(path), "--reason", "新街道",
                                     "--district-name", "福田区"], env=env)
    assert done.exit_code == 0 and "4 inserted" in done.output, done.output
    with sessions() as s:
        assert s.scalar(select(Division.name).where(Division.code == "440304000000")) == "福田区"
        assert s.execute(text("SELECT author, reason FROM division_versions WHERE code = :c"), {"c": C1}).one() == \
            ("cli", "新街道")
    bad = write(tmp_path / "bad.geojson", plan(**{C1: {"代码": "440304097"}}))
    failed = CliRunner().invoke(main, ["import", "divisions", str(bad)], env=env)
    assert failed.exit_code == 1 and "not 12 digits" in failed.output
