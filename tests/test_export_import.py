"""Export (layers and community bundles, masked by default) and import of grids and enclosures drawn elsewhere
(validation report, history author and reason, tiles invalidated), through the API and the command line."""

from __future__ import annotations

import io
import json
import zipfile

import geopandas as gpd
import pyogrio
import pytest
import shapely
from click.testing import CliRunner
from sqlalchemy import func, select, text

from gridgov.cli import main
from spatial.store import users
from spatial.store.engine import make_engine, make_sessionmaker
from spatial.store.models import AuditEntry, Division, Grid, GridVersion, Household
from tests import factories
from tests.conftest import login

PASSWORD = "correct horse battery"
NAME, ID_NUMBER, PHONE = "张三丰", "44030419800101123X", "13812345678"


def _seed(sessions) -> dict:
    with sessions.begin() as s:
        west, east = factories.two_grids(s)
        b1 = factories.building(s, west, 20, 20, number=1, households=2)
        factories.building(s, east, 220, 20, number=1)
        s.add(Household(building_id=b1.id, room="101", residents=3, head_name=NAME, head_id_number=ID_NUMBER,
                        head_phone=PHONE, tags=["elderly_alone"]))
        users.create_user(s, "planner1", PASSWORD, "planner", scope_code=factories.SUBDISTRICT)
        users.create_user(s, "viewer1", PASSWORD, "viewer", scope_code=factories.SUBDISTRICT)
        users.create_user(s, "admin1", PASSWORD, "admin")
        s.add(Division(code="440305000000", level="district", name="南山区"))
        s.flush()
        users.create_user(s, "outsider", PASSWORD, "planner", scope_code="440305000000")
        return {"west": west.id, "east": east.id, "west_code": west.code, "east_code": east.code}


@pytest.fixture
def seeded(app_env):
    client, sessions = app_env
    ids = _seed(sessions)
    return client, sessions, ids


def _geojson(features: list[tuple[shapely.Geometry, dict]]) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": props, "geometry": json.loads(shapely.to_geojson(geom))}
        for geom, props in features]}).encode()


def _upload(client, headers, kind: str, payload: bytes, name="plan.geojson", **form):
    return client.post(f"/api/import/{kind}", headers=headers, files={"file": (name, payload)},
                       data={"reason": "redrawn in QGIS", **form})


# -- export ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["gpkg", "geojson", "shp"])
def test_a_layer_downloads_in_each_format(seeded, tmp_path, fmt):
    client, sessions, ids = seeded
    headers = login(client, "viewer1", PASSWORD)
    response = client.get(f"/api/export/layers/grids?format={fmt}", headers=headers)
    assert response.status_code == 200, response.text
    path = tmp_path / ("grids.zip" if fmt == "shp" else f"grids.{fmt}")
    path.write_bytes(response.content)
    if fmt == "shp":
        assert {"grids.shp", "grids.dbf", "grids.prj"} <= set(zipfile.ZipFile(path).namelist())
    frame = gpd.read_file(path)
    assert sorted(frame["code"]) == [ids["west_code"], ids["east_code"]]
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "export")) == 1


def test_community_bundle_is_masked_by_default_and_audited(seeded, tmp_path):
    client, sessions, ids = seeded
    headers = login(client, "planner1", PASSWORD)
    response = client.get(f"/api/export/communities/{factories.COMMUNITY}", headers=headers)
    assert response.status_code == 200, response.text
    path = tmp_path / "bundle.gpkg"
    path.write_bytes(response.content)
    layers = {name for name, _ in pyogrio.list_layers(path)}
    assert {"divisions", "grids", "buildings", "households"} <= layers
    people = pyogrio.read_dataframe(path, layer="households")
    assert list(people["head_name"]) == ["张*"] and list(people["head_id_number"]) == ["440304********123X"]
    assert list(people["head_phone"]) == ["138****5678"] and "tags" not in people.columns
    raw = response.content
    assert NAME.encode() not in raw and ID_NUMBER.encode() not in raw and b"elderly_alone" not in raw
    assert len(pyogrio.read_dataframe(path, layer="buildings")) == 2
    with sessions() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "export_masked")).one()
        assert entry.username == "planner1" and entry.object_id == factories.COMMUNITY


def test_revealing_needs_a_purpose_and_an_admin_and_is_audited(seeded, tmp_path):
    client, sessions, _ = seeded
    url = f"/api/export/communities/{factories.COMMUNITY}?format=geojson&reveal=true"
    admin = login(client, "admin1", PASSWORD)
    no_purpose = client.get(url, headers=admin)
    assert no_purpose.status_code == 422 and "purpose" in no_purpose.json()["detail"]
    purpose = "&purpose=home visits to elderly residents"
    assert client.get(url + purpose, headers=login(client, "planner1", PASSWORD)).status_code == 403
    assert client.get(url + purpose, headers=login(client, "viewer1", PASSWORD)).status_code == 403
    assert client.get(f"/api/export/communities/{factories.COMMUNITY}",
                      headers=login(client, "outsider", PASSWORD)).status_code == 403
    revealed = client.get(url + purpose, headers=admin)
    assert revealed.status_code == 200, revealed.text
    archive = zipfile.ZipFile(io.BytesIO(revealed.content))
    people = json.loads(archive.read("households.geojson"))["features"][0]["properties"]
    assert people["head_name"] == NAME and people["head_id_number"] == ID_NUMBER and people["tags"] == "elderly_alone"
    with sessions() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "export_reveal")).one()
        assert entry.purpose == "home visits to elderly residents" and "head_id_number" in entry.fields


def test_cli_exports_a_community_bundle_and_a_layer_cut_to_a_community(fresh_db_url, tmp_path):
    env = {"GRIDGOV_DATABASE_URL": fresh_db_url, "GRIDGOV_DATA_DIR": str(tmp_path)}
    _seed(make_sessionmaker(make_engine(fresh_db_url, pool_size=1)))
    runner = CliRunner()
    bundle = tmp_path / "bundle.zip"
    result = runner.invoke(main, ["export", "community", str(bundle), "--community", factories.COMMUNITY,
                                  "--format", "shp"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    names = set(zipfile.ZipFile(bundle).namelist())
    assert {"grids.shp", "buildings.shp", "households.dbf"} <= names
    only = tmp_path / "buildings.geojson"
    result = runner.invoke(main, ["export", "buildings", str(only), "--community", factories.COMMUNITY],
                           env=env, catch_exceptions=False)
    assert result.exit_code == 0 and "wrote 2 features" in result.output
    missing = runner.invoke(main, ["export", "community", str(tmp_path / "x.gpkg")], env=env)
    assert missing.exit_code != 0 and "--community" in missing.output


# -- import ------------------------------------------------------------------------------------------------
def test_importing_a_redrawn_plan_updates_grids_with_history_and_invalidates_tiles(seeded):
    client, sessions, ids = seeded
    headers = login(client, "planner1", PASSWORD)
    from tiles.grid import tile_range
    point = factories.metres_box(170, 100, 171, 101).centroid
    x, y, _, _ = tile_range((point.x, point.y, point.x, point.y), 18)
    tile_url = f"/tiles/grids/18/{x}/{y}.mvt"
    client.get(tile_url, headers=headers)
    assert client.get(tile_url, headers=headers).headers["x-tile-cache"] == "hit"
    plan = _geojson([(factories.metres_box(0, 0, 150, 200), {"code": ids["west_code"], "name": "西网格"}),
                     (factories.metres_box(150, 0, 400, 200), {"code": ids["east_code"], "name": "东网格（扩）"})])
    dry = _upload(client, headers, "grids", plan, dry_run="true")
    assert dry.status_code == 200 and dry.json()["written"] is False
    response = _upload(client, headers, "grids", plan)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["updated"] == 2 and report["written"] and report["errors"] == 0
    assert report["communities"] == [factories.COMMUNITY]
    with sessions() as s:
        east = s.get(Grid, ids["east"])
        assert east.version == 2 and east.name == "东网格（扩）"
        latest = s.scalars(select(GridVersion).where(GridVersion.grid_id == ids["east"], GridVersion.version == 2)).one()
        assert latest.author == "planner1" and latest.reason == "redrawn in QGIS"
    assert client.get(tile_url, headers=headers).headers["x-tile-cache"] == "miss"


def test_an_import_over_grids_changed_since_its_dry_run_is_refused_and_writes_nothing(seeded):
    client, sessions, ids = seeded
    headers = login(client, "planner1", PASSWORD)
    mine = _geojson([(factories.metres_box(0, 0, 150, 200), {"code": ids["west_code"]}),
                     (factories.metres_box(150, 0, 400, 200), {"code": ids["east_code"]})])
    theirs = _geojson([(factories.metres_box(0, 0, 250, 200), {"code": ids["west_code"]}),
                       (factories.metres_box(250, 0, 400, 200), {"code": ids["east_code"]})])
    dry = _upload(client, headers, "grids", mine, dry_run="true")
    assert dry.status_code == 200 and dry.headers["ETag"] == dry.json()["basis"]
    assert _upload(client, headers, "grids", theirs).status_code == 200  # a colleague's import meanwhile
    with sessions() as s:
        before = s.execute(select(Grid.code, Grid.version, func.ST_AsBinary(Grid.boundary)).order_by(Grid.code)).all()
    stale = client.post("/api/import/grids", headers={**headers, "If-Match": dry.json()["basis"]},
                        files={"file": ("plan.geojson", mine)}, data={"reason": "redrawn in QGIS"})
    assert stale.status_code == 412, stale.text
    assert "changed after the dry run" in stale.json()["detail"]
    with sessions() as s:
        assert s.execute(select(Grid.code, Grid.version, func.ST_AsBinary(Grid.boundary))
                         .order_by(Grid.code)).all() == before
    again = _upload(client, headers, "grids", mine, dry_run="true")
    done = client.post("/api/import/grids", headers={**headers, "If-Match": again.headers["ETag"]},
                       files={"file": ("plan.geojson", mine)}, data={"reason": "redrawn in QGIS"})
    assert done.status_code == 200 and done.json()["updated"] == 2
    assert done.headers["ETag"] not in (again.headers["ETag"], dry.headers["ETag"])


def test_an_import_with_errors_writes_nothing_and_reports_each_feature(seeded):
    client, sessions, ids = seeded
    headers = login(client, "planner1", PASSWORD)
    bowtie = shapely.Polygon([(114.0725, 22.566), (114.0735, 22.567), (114.0735, 22.566), (114.0725, 22.567)])
    plan = _geojson([
        (factories.metres_box(100, 50, 300, 150), {"name": "新网格", "community_code": factories.COMMUNITY}),
        (bowtie, {"name": "蝴蝶"}),
        (factories.metres_box(350, 150, 500, 300), {"code": ids["east_code"]}),
        (factories.metres_box(0, 0, 10, 10), {"code": factories.COMMUNITY + "07", "kind": "special"}),
    ])
    response = _upload(client, headers, "grids", plan)
    assert response.status_code == 422, response.text
    body = response.json()
    assert "nothing was written" in body["detail"]
    messages = {f["feature"]: f["message"] for f in body["report"]["findings"]}
    assert any("overlaps stored grid" in m for m in messages.values())
    assert any("invalid polygon" in m for m in messages.values())
    assert any("outside community" in m for m in messages.values())
    assert any("kind 'special'" in m for m in messages.values())
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Grid)) == 2
        assert s.get(Grid, ids["east"]).version == 1


def test_imported_grids_overlapping_each_other_are_errors(seeded):
    client, sessions, ids = seeded
    headers = login(client, "planner1", PASSWORD)
    plan = _geojson([(factories.metres_box(0, 0, 150, 200), {"code": ids["west_code"]}),
                     (factories.metres_box(140, 0, 400, 200), {"code": ids["east_code"]})])
    response = _upload(client, headers, "grids", plan)
    assert response.status_code == 422, response.text
    findings = response.json()["report"]["findings"]
    assert [f["severity"] for f in findings] == ["error"]
    assert findings[0]["message"] == "overlaps imported feature 1 by 2,000 m²"  # 10 m × 200 m
    with sessions() as s:
        assert s.get(Grid, ids["west"]).version == s.get(Grid, ids["east"]).version == 1


def test_cut_buildings_and_gaps_are_warnings(seeded):
    client, sessions, ids = seeded
    headers = login(client, "planner1", PASSWORD)
    plan = _geojson([(factories.metres_box(0, 0, 30, 200), {"code": ids["west_code"]})])
    response = _upload(client, headers, "grids", plan, dry_run="true")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["warnings"] == 1 and "cuts 1 building" in report["findings"][0]["message"]
    assert report["uncovered_m2"][factories.COMMUNITY] == pytest.approx(170 * 200, rel=0.01)


def test_import_refuses_viewers_outsiders_and_unknown_files(seeded):
    client, _, ids = seeded
    plan = _geojson([(factories.metres_box(0, 0, 150, 200), {"code": ids["west_code"]})])
    assert _upload(client, login(client, "viewer1", PASSWORD), "grids", plan).status_code == 403
    assert _upload(client, login(client, "outsider", PASSWORD), "grids", plan).status_code == 403
    planner = login(client, "planner1", PASSWORD)
    assert _upload(client, planner, "grids", b"not a file", name="plan.xlsx").status_code == 422
    broken = _upload(client, planner, "grids", b"{ truncated", name="plan.geojson")
    assert broken.status_code == 422 and "cannot read" in broken.json()["detail"]
    assert _upload(client, planner, "roads", plan).status_code == 422


def test_cli_imports_enclosures_then_updates_them_by_name(fresh_db_url, tmp_path):
    env = {"GRIDGOV_DATABASE_URL": fresh_db_url, "GRIDGOV_DATA_DIR": str(tmp_path)}
    sessions = make_sessionmaker(make_engine(fresh_db_url, pool_size=1))
    _seed(sessions)
    path = tmp_path / "enclosures.gpkg"
    frame = gpd.GeoDataFrame({"name": ["一号小区", "二号小区"], "kind": ["estate", "urban_village"]},
                             geometry=[factories.metres_box(10, 10, 100, 100).geoms[0],
                                       factories.metres_box(210, 10, 300, 100).geoms[0]], crs="EPSG:4326")
    frame.to_crs(4547).to_file(path, layer="enclosures")  # drawn in CGCS2000 Gauss-Krüger metres
    result = CliRunner().invoke(main, ["import", "enclosures", str(path)], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "2 inserted" in result.output
    frame.geometry = [factories.metres_box(10, 10, 120, 120).geoms[0], factories.metres_box(210, 10, 300, 100).geoms[0]]
    frame.to_crs(4547).to_file(path, layer="enclosures")
    again = CliRunner().invoke(main, ["import", "enclosures", str(path)], env=env, catch_exceptions=False)
    assert "0 inserted, 2 updated" in again.output, again.output
    with sessions() as s:
        rows = s.execute(text("SELECT name, community_code, round(ST_Area(ST_Transform(boundary, 4547))) "
                              "FROM enclosures ORDER BY name")).all()
    assert [(r[0], r[1]) for r in rows] == [("一号小区", factories.COMMUNITY), ("二号小区", factories.COMMUNITY)]
    assert rows[0][2] == pytest.approx(110 * 110, rel=0.01)


def test_cli_grid_import_with_errors_exits_1(fresh_db_url, tmp_path):
    env = {"GRIDGOV_DATABASE_URL": fresh_db_url, "GRIDGOV_DATA_DIR": str(tmp_path)}
    _seed(make_sessionmaker(make_engine(fresh_db_url, pool_size=1)))
    path = tmp_path / "grids.geojson"
    path.write_bytes(_geojson([(factories.metres_box(50, 50, 250, 150), {"name": "跨界网格"})]))
    result = CliRunner().invoke(main, ["import", "grids", str(path), "--dry-run"], env=env, catch_exceptions=False)
    assert result.exit_code == 1 and "overlaps stored grid" in result.output


def test_buildings_follow_imported_grid_boundaries(seeded):
    """A building the imported boundary puts in another grid moves there, with the next number of that grid."""
    client, sessions, ids = seeded
    with sessions.begin() as s:
        west = s.get(Grid, ids["west"])
        moving = factories.building(s, west, 170, 20, number=2, households=4).id
    plan = _geojson([(factories.metres_box(0, 0, 150, 200), {"code": ids["west_code"]}),
                     (factories.metres_box(150, 0, 400, 200), {"code": ids["east_code"]})])
    headers = login(client, "planner1", PASSWORD)
    dry = _upload(client, headers, "grids", plan, dry_run="true").json()  # the dry run tells what will move
    assert dry["buildings_moved"] == 1 and not dry["written"]
    workload = {w["grid"]: w for w in dry["workload"]}
    assert set(workload) == {ids["west_code"], ids["east_code"]}
    assert (workload[ids["west_code"]]["households"], workload[ids["east_code"]]["households"]) == (2, 4)
    response = _upload(client, headers, "grids", plan)
    assert response.status_code == 200, response.text
    assert response.json()["buildings_moved"] == 1
    with sessions() as s:
        grid_id, code = s.execute(text("SELECT grid_id, code FROM buildings WHERE id = :id"), {"id": moving}).one()
    assert grid_id == ids["east"] and code == ids["east_code"] + "00002"
