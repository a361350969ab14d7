"""One network (一张网, issue 16 §2): a department's grids imported as its layer (checks, report, nothing written on
an error); the crosswalk's shares against Shapely computed independently (each sums to 1); cut buildings,
multi-community grids and the proposal; who handles a point in WGS 84 and GCJ-02; a case records its department
grids; places imported from a spreadsheet with a report per row."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from sqlalchemy import text

from spatial.access import Principal
from spatial.errors import Forbidden, InvalidInput
from spatial.geometry.codes import credit_check_char, credit_code_problem
from spatial.geometry.crs import wgs84_to_gcj02
from spatial.io.department_grids import import_department_grids
from spatial.io.places import import_places
from spatial.store import cases, one_network, users
from spatial.store.engine import acting_as
from spatial.store.models import Division, Grid
from tests import factories
from tests.conftest import login

PASSWORD = "correct horse battery"
ADMIN = Principal(1, "admin1", "admin")
PLANNER = Principal(2, "planner1", "planner", scope_code=factories.SUBDISTRICT)
FAR_PLANNER = Principal(3, "planner2", "planner", scope_code="440305099000")
SECOND = "440304099002"
TO_METRIC = Transformer.from_crs(4326, 4547, always_xy=True)


def credit(first17: str) -> str:
    return first17 + credit_check_char(first17)


MARKET = credit("91440304MA5F00001")  # 市场监管
FIRE = credit("11440304MB2C00002")    # 消防


def feature(code: str, box: tuple[float, float, float, float], **props) -> dict:
    return {"type": "Feature", "properties": {"code": code, **props},
            "geometry": shapely.geometry.mapping(factories.metres_box(*box))}


def write_geojson(path, features) -> str:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return str(path)


def town(session):
    """Two grids of the factories' community (west 0–200 m, east 200–400 m) and a second community east of it
    (400–800 m, one grid); buildings: one in the west, one astride x = 250 m (east grid), one in the far east."""
    west, east = factories.two_grids(session)
    session.add(Division(code=SECOND, level="community", name="第二社区", parent_code=factories.SUBDISTRICT,
                         boundary=factories.db_box(400, 0, 800, 200), synthetic=True))
    session.flush()
    with acting_as(session, "tester", "fixture"):
        far = Grid(code=SECOND + "01", community_code=SECOND, name="远网格", boundary=factories.db_box(400, 0, 800, 200))
        session.add(far)
        session.flush()
    b_west = factories.building(session, west, 20, 20, number=1)
    b_cut = factories.building(session, east, 240, 100, number=1)
    b_far = factories.building(session, far, 420, 120, number=1)
    user = users.create_user(session, "worker1", PASSWORD, "grid_worker", display_name="张三丰",
                             grid_codes=(west.code,))
    return {"west": west, "east": east, "far": far, "b_west": b_west, "b_cut": b_cut, "b_far": b_far, "user": user}


def load_layers(session, tmp_path) -> None:
    market = write_geojson(tmp_path / "market.geojson", [
        feature("A", (0, 0, 250, 200), name="市场一片", contact="李四光", phone="13812345678"),
        feature("B", (250, 0, 400, 200), name="市场二片")])
    fire = write_geojson(tmp_path / "fire.geojson", [feature("X", (100, 50, 450, 150), name="消防责任区")])
    for path, code, name, layer in ((market, MARKET, "市场监督管理局", "市场监管网格"),
                                    (fire, FIRE, "消防救援大队", "消防网格")):
        report = import_department_grids(session, path, PLANNER, credit_code=code, department_name=name,
                                         layer_name=layer, office_phone="0755-83070000", reason="一张网")
        assert report.written and not report.errors, report.findings


@pytest.fixture
def world(db, tmp_path):
    t = town(db)
    load_layers(db, tmp_path)
    return db, t


def test_the_credit_code_check_character_is_gb_32100():
    assert credit_code_problem("914403001922038216") is None  # a published code
    assert "check character" in credit_code_problem("914403001922038217")
    assert "18 characters" in credit_code_problem("9144030019220382")
    assert credit_code_problem("9144030019220382I6") is not None  # I is not in the alphabet
    with pytest.raises(InvalidInput) as bad:
        one_network.credit_code("914403001922038217")
    assert bad.value.code == "one_network.credit_code"


def _metric(wkb: bytes):
    """A stored geometry (WKB, EPSG:4326) in EPSG:4547 metres, by pyproj (not PostGIS)."""
    return shapely.transform(shapely.from_wkb(wkb), lambda xy: np.column_stack(TO_METRIC.transform(xy[:, 0],
                                                                                                xy[:, 1])))


def test_shares_sum_to_one_and_match_shapely(world):
    db, t = world
    cw = one_network.crosswalk(db, PLANNER, factories.SUBDISTRICT)
    assert {g["code"] for g in cw.grids.values()} == {"A", "B", "X"}
    grids = {r.id: _metric(bytes(r.wkb)) for r in db.execute(text(
        "SELECT id, ST_AsBinary(boundary) AS wkb FROM grids WHERE retired_at IS NULL"))}
    footprints = {r.id: (_metric(bytes(r.wkb)), r.grid_id) for r in db.execute(text(
        "SELECT id, grid_id, ST_AsBinary(footprint) AS wkb FROM buildings"))}
    for dg_id, info in cw.grids.items():
        pieces = [p for p in cw.pieces if p.department_grid == dg_id]
        assert abs(sum(p.land_share for p in pieces) - 1) < 1e-6
        shared = [p.building_share for p in pieces if p.building_share is not None]
        assert not shared or abs(sum(shared) - 1) < 1e-6
        dg = _metric(bytes(db.scalar(text("SELECT ST_AsBinary(boundary) FROM department_grids WHERE id = :i"),
                                     {"i": dg_id})))
        floors = {g: 0.0 for g in grids}
        for f, g in footprints.values():
            floors[g] += shapely.intersection(f, dg).area
        for p in pieces:
            expected = (shapely.intersection(dg, grids[p.grid_id]).area if p.grid_id is not None else
                        dg.area - sum(shapely.intersection(dg, g).area for g in grids.values()))
            assert abs(p.land_share - expected / dg.area) < 1e-6, (info["code"], p)
            if p.building_share is not None:
                assert abs(p.building_share - floors.get(p.grid_id, 0.0) / sum(floors.values())) < 1e-6
    a = next(i for i, g in cw.grids.items() if g["code"] == "A")
    shares = {p.grid_code: round(p.land_share, 4) for p in cw.pieces if p.department_grid == a}
    assert shares == {t["west"].code: 0.8, t["east"].code: 0.2}


def test_cut_buildings_multi_community_grids_and_the_proposal(world):
    db, t = world
    cw = one_network.crosswalk(db, PLANNER, factories.SUBDISTRICT)
    code = {i: g["code"] for i, g in cw.grids.items()}
    cut = {(code[c["department_grid"]], c["building_id"]) for c in cw.cut}
    assert cut == {("A", t["b_cut"].id), ("B", t["b_cut"].id)}  # astride x = 250 m; X's edge y=150 misses it
    assert [code[m["department_grid"]] for m in cw.multi_community] == ["X"]
    moves = {(code[a.department_grid], a.grid_code): (a.action, code[a.to_department_grid]) for a in cw.proposal}
    assert moves[("A", t["west"].code)] == ("keep", "A")
    assert moves[("A", t["east"].code)] == ("move", "B")  # B holds 30,000 m² of the east grid, A 10,000
    assert moves[("B", t["east"].code)] == ("keep", "B")
    assert {v for k, v in moves.items() if k[0] == "X"} == {("keep", "X")}
    with pytest.raises(Forbidden):
        one_network.crosswalk(db, FAR_PLANNER, factories.SUBDISTRICT)


def test_a_replacing_import_keeps_history_and_a_bad_file_writes_nothing(world, tmp_path):
    db, t = world
    before = db.scalar(text("SELECT count(*) FROM department_grids"))
    bad = write_geojson(tmp_path / "bad.geojson", [
        feature("A", (0, 0, 250, 200)), feature("A2", (200, 0, 300, 200)), feature("bad code!", (0, 0, 10, 10)),
        feature("Z", (5000, 5000, 5100, 5100))])
    report = import_department_grids(db, bad, PLANNER, credit_code=MARKET, department_name="市场监督管理局",
                                     layer_name="市场监管网格", reason="重划")
    messages = [m for _, _, m in report.errors]
    assert not report.written and len(messages) == 3, report.findings
    assert any("overlaps feature 1" in m for m in messages) and any("lies in no community" in m for m in messages)
    assert db.scalar(text("SELECT count(*) FROM department_grids")) == before
    with pytest.raises(Forbidden):
        import_department_grids(db, bad, FAR_PLANNER, credit_code=MARKET, department_name="市场监督管理局",
                                layer_name="市场监管网格", reason="重划")
    good = write_geojson(tmp_path / "good.geojson", [feature("M1", (0, 0, 400, 200))])
    report = import_department_grids(db, good, ADMIN, credit_code=MARKET, department_name="市场监督管理局",
                                     layer_name="市场监管网格", reason="合并")
    assert report.written
    current = db.execute(text("SELECT code FROM department_grids WHERE department_code = :d AND valid_to IS NULL"),
                         {"d": MARKET}).scalars().all()
    ended = db.scalar(text("SELECT count(*) FROM department_grids WHERE department_code = :d AND valid_to IS NOT "
                           "NULL"), {"d": MARKET})
    assert current == ["M1"] and ended == 2


def test_who_handles_a_point_and_a_case_records_its_department_grids(world):
    db, t = world
    point = factories.metres_box(50, 100, 50.1, 100.1).centroid
    found = one_network.who_handles(db, point.x, point.y)
    assert found.grid["code"] == t["west"].code
    assert found.workers == [{"name": "张*", "duty": "worker"}]
    assert [(d["code"], d["contact_name"], d["contact_phone"], d["office_phone"]) for d in found.departments] == [
        ("A", "李*", "138****5678", "075583070000")]
    east = factories.metres_box(300, 100, 300.1, 100.1).centroid
    assert {d["code"] for d in one_network.who_handles(db, east.x, east.y).departments} == {"B", "X"}
    case = cases.report_case(db, None, category="environment.garbage", lon=east.x, lat=east.y,
                             description="占道经营", reporter_name="王五", reporter_phone="13900001111")
    assert {d["code"] for d in one_network.case_departments(db, ADMIN, case.id)} == {"B", "X"}
    assert set(cases.get_case(db, ADMIN, case.id).department_grids) == {"市场监督管理局 · 市场二片", "消防救援大队 · 消防责任区"}


def test_the_api_answers_who_handles_in_gcj02_and_imports_layers(app_env, tmp_path):
    client, sessions = app_env
    with sessions.begin() as s:
        t = town(s)
        load_layers(s, tmp_path)
        users.create_user(s, "viewer1", PASSWORD, "viewer", scope_code=factories.SUBDISTRICT)
        users.create_user(s, "planner1", PASSWORD, "planner", scope_code=factories.SUBDISTRICT)
        west_code = t["west"].code
    viewer, planner = login(client, "viewer1", PASSWORD), login(client, "planner1", PASSWORD)
    point = factories.metres_box(50, 100, 50.1, 100.1).centroid
    gx, gy = wgs84_to_gcj02(point.x, point.y)
    for params in ({"x": point.x, "y": point.y}, {"x": float(gx), "y": float(gy), "crs": "GCJ-02"}):
        answer = client.get("/api/one-network/who-handles", params=params, headers=viewer)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["grid"]["code"] == west_code and [d["code"] for d in body["departments"]] == ["A"]
        assert body["workers"][0]["name"] == "张*" and body["departments"][0]["contact_phone"] == "138****5678"
    assert abs(body["position"][0] - float(gx)) < 1e-6
    cw = client.get("/api/one-network/crosswalk", params={"subdistrict": factories.SUBDISTRICT}, headers=planner)
    assert cw.status_code == 200, cw.text
    assert client.get("/api/one-network/crosswalk", params={"subdistrict": factories.SUBDISTRICT},
                      headers=viewer).status_code == 403
    bad = write_geojson(tmp_path / "overlap.geojson", [feature("A", (0, 0, 250, 200)), feature("B", (200, 0, 400, 200))])
    with open(bad, "rb") as f:
        refused = client.post(f"/api/one-network/departments/{MARKET}/grids", headers=planner,
                              files={"file": ("overlap.geojson", f.read())},
                              data={"department_name": "市场监督管理局", "layer_name": "市场监管网格", "reason": "重划"})
    assert refused.status_code == 422 and refused.json()["code"] == "one_network.rejected", refused.text
    with open(bad, "rb") as f:
        wrong = client.post(f"/api/one-network/departments/{MARKET[:-1]}X/grids", headers=planner,
                            files={"file": ("overlap.geojson", f.read())},
                            data={"department_name": "市场监督管理局", "layer_name": "市场监管网格", "reason": "重划"})
    assert wrong.status_code in (400, 422) and wrong.json()["code"] == "one_network.credit_code"
    layers = client.get("/api/one-network/layers", headers=viewer).json()
    assert {(x["layer"], x["grids"]) for x in layers} == {("市场监管网格", 2), ("消防网格", 1)}


def _sheet(tmp_path, rows: list[str]) -> str:
    path = tmp_path / "places.csv"
    path.write_text("\n".join(["名称,类型,统一社会信用代码,复工复产,地址,楼栋编码,经度,纬度", *rows]) + "\n",
                    encoding="utf-8")
    return str(path)


def test_places_import_reports_bad_rows_and_writes_nothing_then_the_good_ones(world, tmp_path):
    db, t = world
    inside = factories.metres_box(30, 25, 30.1, 25.1).centroid    # in the west building
    open_air = factories.metres_box(300, 50, 300.1, 50.1).centroid  # east grid, no building near
    far = factories.metres_box(9000, 9000, 9000.1, 9000.1).centroid
    enterprise = credit("91440304MA5F00003")
    rows = [f"好又多便利店,小商店,,,福田路1号,,{inside.x},{inside.y}",
            f"某某科技有限公司,企业,{enterprise},是,,,{open_air.x},{open_air.y}",
            f"无代码公司,企业,,否,,,{open_air.x},{open_air.y}",                     # line 4: no credit code
            f"错码公司,企业,{enterprise[:-1]}0,否,,,{open_air.x},{open_air.y}",       # line 5: check character
            f"小面馆,面馆,,,,,{open_air.x},{open_air.y}",                             # line 6: unknown kind
            f"平安旅馆,小旅馆,,是,,,{open_air.x},{open_air.y}",                       # line 7: reopened for a hotel
            f"远方诊所,诊所,,,,,{far.x},{far.y}",                                     # line 8: in no grid
            f"好又多便利店,小商店,,,福田路1号,,{inside.x},{inside.y}",                 # line 9: twice
            "实验学校,学校,,,,4403040990019900001,,"]                                 # line 10: no such building
    report = import_places(db, _sheet(tmp_path, rows), PLANNER)
    assert [(e.line, e.column) for e in report.rejected] == [
        (4, "统一社会信用代码"), (5, "统一社会信用代码"), (6, "类型"), (7, "复工复产"), (8, "经度"), (9, "名称"),
        (10, "楼栋编码")]
    assert not report.written and db.scalar(text("SELECT count(*) FROM places")) == 0
    report = import_places(db, _sheet(tmp_path, rows), PLANNER, skip_errors=True)
    assert report.written and report.inserted == 2
    placed = dict(db.execute(text("SELECT name, building_id FROM places")).all())
    assert placed == {"好又多便利店": t["b_west"].id, "某某科技有限公司": None}
    assert db.scalar(text("SELECT reopened FROM places WHERE kind = 'enterprise'")) is True
    again = import_places(db, _sheet(tmp_path, rows), PLANNER, skip_errors=True)
    assert (again.inserted, again.updated) == (0, 2)
    outsider = import_places(db, _sheet(tmp_path, rows[:2]), FAR_PLANNER)
    assert {e.reason for e in outsider.rejected} == {"outside your area"}


@pytest.mark.browser
def test_a_click_on_the_overview_map_says_who_handles_it(live_server, browser, tmp_path):
    from tests.conftest import open_logged_in

    base, sessions = live_server
    with sessions.begin() as s:
        town(s)
        load_layers(s, tmp_path)
        users.create_user(s, "viewer1", PASSWORD, "viewer", scope_code=factories.SUBDISTRICT)
    context, page, errors = open_logged_in(browser, base + "/", "viewer1", PASSWORD,
                                           viewport={"width": 1200, "height": 800}, locale="zh-CN")
    east = factories.metres_box(300, 100, 300.1, 100.1).centroid
    x, y = page.evaluate(f"(() => {{ const p = map.latLngToContainerPoint([{east.y}, {east.x}]); return [p.x, p.y]; }})()")
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)
    page.wait_for_selector("body[data-who-handles]", state="attached", timeout=10_000)
    text_shown = page.locator("#who-handles").inner_text()
    assert "谁来管" in text_shown and "市场监督管理局" in text_shown and "消防救援大队" in text_shown
    assert page.locator("#who-departments li").count() == 2
    context.close()
    assert not errors, errors


def test_the_database_takes_every_place_kind_of_the_vocabulary_and_no_other(db):
    import sqlalchemy.exc

    from spatial.vocab import PLACE_KINDS

    insert = text("INSERT INTO places (kind, name, credit_code, location, origin, origin_ref) VALUES "
                  "(:k, '场所', :c, ST_SetSRID(ST_MakePoint(114.07, 22.56), 4326), 'test', :k)")
    for kind in PLACE_KINDS:
        db.execute(insert, {"k": kind, "c": MARKET if kind == "enterprise" else None})
    with pytest.raises(sqlalchemy.exc.IntegrityError), db.begin_nested():
        db.execute(insert, {"k": "bar", "c": None})
