"""One entry, many forms (表格抗疫): the shipped templates on a ledger made here, exact rows; scope; masking and
audit; an admin's template over HTTP, a bad one refused; one change shows in every form."""

from __future__ import annotations

import csv
import io
from datetime import date

import openpyxl
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from gridgov.cli import main
from spatial.access import Principal
from spatial.errors import Forbidden, InvalidInput, TooManyRequests
from spatial.io.forms import write_form
from spatial.io.residents import import_residents
from spatial.personal_keys import PersonalKeys
from spatial.store import campaigns, forms
from spatial.store.engine import make_engine, make_sessionmaker
from tests import factories
from tests.factories import COMMUNITY, SUBDISTRICT
from tests.test_residents import KEYS, id_number, person, write_xlsx

ADMIN = Principal(user_id=0, username="admin1", role="admin", client_addr="test")
WEST, EAST = COMMUNITY + "01", COMMUNITY + "02"


def masked_id(seq: int) -> str:
    return id_number(seq)[:6] + "********" + id_number(seq)[-4:]


def ledger(b1, b2, b3, *, li_phone="13800000002") -> list[list]:
    return [person("王大爷", id_number(1), phone="13800000001", code=b1.code, room="101", tags="独居老人"),
            person("周某", id_number(6), code=b1.code, room="102"),
            person("李奶奶", id_number(2), phone=li_phone, code=b2.code, room="201", tags="独居老人", kind="流动"),
            person("赵婆婆", id_number(3), code=b3.code, room="301", tags="独居老人"),
            person("陈工", id_number(4), phone="13900000004", code=b3.code, room="302", kind="流动"),
            person("陈妻", id_number(5), relation="配偶", code=b3.code, room="302", kind="流动")]


def load(session, tmp_path, **kwargs):
    west, east = factories.two_grids(session)
    b1 = factories.building(session, west, 10, 10, number=1)
    b2 = factories.building(session, west, 60, 10, number=2, name="幸福楼")
    b3 = factories.building(session, east, 250, 10, number=1, name="和平楼")
    path = write_xlsx(tmp_path / "ledger.xlsx", ledger(b1, b2, b3, **kwargs))
    assert import_residents(session, path, KEYS, as_of=date(2026, 12, 1)).written
    return {"west": west, "east": east, "b1": b1, "b2": b2, "b3": b3, "path": path}


@pytest.fixture
def town(db, tmp_path):
    return {"db": db, **load(db, tmp_path)}


def run(db, who, name, division=COMMUNITY, **options):
    return forms.run_form(db, who, forms.get_template(db, name), division, keys=lambda: KEYS, **options)


def audit_rows(db, action):
    return db.execute(text("SELECT username, object_id, household_ids, fields, purpose, result FROM audit_log "
                           "WHERE action = :a ORDER BY id"), {"a": action}).all()


def test_elderly_alone_per_grid_for_civil_affairs(town, tmp_path):
    db, b1 = town["db"], town["b1"]
    form = run(db, ADMIN, "elderly_alone")
    assert form.headers == ["网格编码", "网格", "楼栋", "单元", "房号", "姓名", "性别", "身份证号", "联系电话", "人员标签"]
    assert form.rows == [
        [WEST, "西网格", b1.code, "1", "101", "王*", "男", masked_id(1), "138****0001", "独居老人"],
        [WEST, "西网格", "幸福楼", "1", "201", "李*", "女", masked_id(2), "138****0002", "独居老人"],
        [EAST, "东网格", "和平楼", "1", "301", "赵*", "男", masked_id(3), None, "独居老人"]]
    assert form.groups == [(WEST, "西网格", 2), (EAST, "东网格", 1)] and not form.revealed
    book = openpyxl.load_workbook(write_form(form, tmp_path / "民政.xlsx"))
    sheet = book["独居老人花名册"]
    assert [c.value for c in sheet[1]] == form.headers and sheet.max_row == 4
    assert [c.value for c in sheet[3]] == form.rows[1]
    assert [[c.value for c in r] for r in book["汇总"].iter_rows()] == [
        ["网格编码", "网格", "行数"], [WEST, "西网格", 2], [EAST, "东网格", 1], ["合计", None, 3]]


def test_floating_population_per_building_for_the_police(town):
    db = town["db"]
    form = run(db, ADMIN, "floating_population", SUBDISTRICT)
    assert form.headers == ["楼栋编码", "楼栋", "单元", "楼层", "房号", "姓名", "性别", "身份证号", "联系电话",
                            "与户主关系", "迁入日期"]
    b2, b3 = town["b2"].code, town["b3"].code
    assert form.rows == [
        [b2, "幸福楼", "1", 1, "201", "李*", "女", masked_id(2), "138****0002", "户主", None],
        [b3, "和平楼", "1", 1, "302", "陈*", "女", masked_id(4), "139****0004", "户主", None],
        [b3, "和平楼", "1", 1, "302", "陈*", "男", masked_id(5), None, "配偶", None]]
    assert form.groups == [(b2, "幸福楼", 1), (b3, "和平楼", 2)]
    assert run(db, ADMIN, "floating_population", EAST).rows == form.rows[1:]  # a grid code narrows it
    assert run(db, ADMIN, "floating_population", "440399001000").rows == []  # another subdistrict


def test_screening_progress_per_community_for_health(town):
    db = town["db"]
    assert run(db, ADMIN, "screening_progress").rows == []  # no campaign open
    campaign = campaigns.open_campaign(db, ADMIN, "冬季排查", division_code=COMMUNITY)
    done = db.execute(text("""SELECT h.id, ST_X(ST_Centroid(b.footprint)), ST_Y(ST_Centroid(b.footprint))
                              FROM households h JOIN buildings b ON b.id = h.building_id
                              WHERE h.room IN ('101', '301') ORDER BY h.room""")).all()
    for household, lon, lat in done:
        campaigns.record_visit(db, ADMIN, campaign.id, household, result="normal", lon=lon, lat=lat)
    form = run(db, ADMIN, "screening_progress", SUBDISTRICT)
    assert form.headers == ["社区编码", "社区", "应排查户数", "已排查户数", "未排查户数", "排查率(%)", "需跟进户数"]
    assert form.rows == [[COMMUNITY, "测试社区", 5, 2, 3, 40.0, 0]]
    worker = Principal(user_id=9, username="w1", role="grid_worker", grid_ids=frozenset({town["west"].id}))
    assert run(db, worker, "screening_progress").rows == [[COMMUNITY, "测试社区", 3, 1, 2, 33.33, 0]]


def test_a_grid_worker_gets_only_their_grids_and_a_viewer_nothing(town):
    db = town["db"]
    worker = Principal(user_id=9, username="w1", role="grid_worker", grid_ids=frozenset({town["east"].id}))
    rows = run(db, worker, "elderly_alone", SUBDISTRICT).rows
    assert [r[5] for r in rows] == ["赵*"]
    assert [r[5] for r in run(db, worker, "floating_population").rows] == ["陈*", "陈*"]
    assert run(db, worker, "elderly_alone", WEST).rows == []
    viewer = Principal(user_id=8, username="v1", role="viewer", scope_code=COMMUNITY)
    with pytest.raises(Forbidden):
        run(db, viewer, "elderly_alone")


def test_full_values_only_for_an_admin_with_a_reason_and_audited(town):
    db = town["db"]
    worker = Principal(user_id=9, username="w1", role="grid_worker", grid_ids=frozenset({town["west"].id}))
    with pytest.raises(Forbidden):
        run(db, worker, "elderly_alone", reveal=True, reason="上门慰问")
    with pytest.raises(InvalidInput, match="reason"):
        run(db, ADMIN, "elderly_alone", reveal=True)
    assert audit_rows(db, "form_reveal") == []
    masked = run(db, ADMIN, "elderly_alone")
    [row] = audit_rows(db, "form_export")
    households = db.execute(text("SELECT id FROM households WHERE room IN ('101', '201', '301') ORDER BY id")).scalars()
    assert (row.username, row.object_id, row.household_ids) == ("admin1", "elderly_alone", list(households))
    assert row.fields == ["name", "id_number", "phone", "tags"] and row.result == "3 rows of 440304099001 (masked)"
    assert all(id_number(s) not in str(masked.rows) for s in (1, 2, 3))
    full = run(db, ADMIN, "elderly_alone", reveal=True, reason="冬季慰问名单报民政")
    assert [r[5:9] for r in full.rows] == [["王大爷", "男", id_number(1), "13800000001"],
                                          ["李奶奶", "女", id_number(2), "13800000002"],
                                          ["赵婆婆", "男", id_number(3), None]]
    [revealed] = audit_rows(db, "form_reveal")
    assert revealed.purpose == "冬季慰问名单报民政" and len(revealed.household_ids) == 3 and full.revealed
    with pytest.raises(TooManyRequests):
        run(db, ADMIN, "elderly_alone", reveal=True, reason="再导一次", per_hour=1)


def test_one_phone_change_shows_in_two_forms(town, tmp_path):
    db, b1, b2, b3 = town["db"], town["b1"], town["b2"], town["b3"]
    phone_of_li = lambda name: [r for r in run(db, ADMIN, name).rows if r[5] == "李*"][0][8]  # noqa: E731
    assert phone_of_li("elderly_alone") == phone_of_li("floating_population") == "138****0002"
    newer = write_xlsx(tmp_path / "newer.xlsx", ledger(b1, b2, b3, li_phone="13712345678"))
    assert import_residents(db, newer, KEYS, as_of=date(2026, 12, 2)).counts.updated == 1
    assert phone_of_li("elderly_alone") == phone_of_li("floating_population") == "137****5678"


def test_bad_templates_are_refused_with_every_problem_named(db):
    good = {"title": "残疾人名册", "source": "persons", "columns": ["name", "phone"],
            "filters": [{"filter": "tag", "value": "disabled"}]}
    assert forms.check_definition("disabled", good).group_by == "grid"
    with pytest.raises(InvalidInput) as bad:
        forms.check_definition("disabled", {**good, "columns": ["name", "salary"],
                                            "filters": [{"filter": "income_above", "value": 1}]})
    assert "unknown columns salary" in bad.value.message and "unknown filter 'income_above'" in bad.value.message
    with pytest.raises(InvalidInput, match="value 'martian' must be one of"):
        forms.check_definition("x1", {**good, "filters": [{"filter": "kind", "value": "martian"}]})
    with pytest.raises(InvalidInput, match="group_by must be one of grid, community for source campaign_progress"):
        forms.check_definition("x2", {"title": "t", "source": "campaign_progress", "columns": ["targeted"],
                                      "group_by": "building"})
    with pytest.raises(InvalidInput, match="unknown keys sql"):
        forms.check_definition("x3", {**good, "sql": "SELECT * FROM persons"})
    with pytest.raises(InvalidInput, match="source must be one of"):
        forms.check_definition("x4", {**good, "source": "users"})
    with pytest.raises(InvalidInput, match="value None must be one of true"):  # a vocabulary of booleans (was a 500)
        forms.check_definition("x5", {"title": "t", "source": "campaign_progress", "columns": ["targeted"],
                                      "filters": [{"filter": "unscreened", "value": None}]})


def test_an_admin_adds_a_form_over_http_and_it_runs_without_code(app_env, tmp_path):
    from spatial.store import users
    from tests.factories import users_with_grids

    client, sessions = app_env
    keys = PersonalKeys.create(tmp_path / "personal.key")  # where the app's settings look (data_dir)
    with sessions.begin() as s:
        west, _ = factories.two_grids(s)
        b1 = factories.building(s, west, 10, 10, number=1)
        rows = [person("孙一", id_number(11), phone="13600000011", code=b1.code, room="101"),
                person("孙二", id_number(12), relation="子女", code=b1.code, room="101", tags="残疾"),
                person("钱三", id_number(13), phone="13600000013", code=b1.code, room="102", tags="残疾")]
        assert import_residents(s, write_xlsx(tmp_path / "l.xlsx", rows), keys).written
        made = users_with_grids(s, (("boss", "admin", None, None), ("worker", "grid_worker", None, WEST),
                                    ("viewer", "viewer", COMMUNITY, None)),
                                users.hash_password("a long enough password"))
        auth = {n: {"Authorization": "Bearer " + users.issue_token(s, u, 3600)[0]} for n, u in made.items()}
    listed = client.get("/api/forms", headers=auth["worker"])
    assert listed.status_code == 200
    assert {f["name"] for f in listed.json()} == {"elderly_alone", "floating_population", "screening_progress"}
    columns = client.get("/api/forms/catalogue", headers=auth["worker"]).json()["sources"]["persons"]["columns"]
    assert {"name": "phone", "header": "联系电话", "personal": True} in columns
    definition = {"name": "disabled_persons", "title": "残疾人名册", "department": "残联", "source": "persons",
                  "group_by": "community", "columns": ["room", "name", "phone", "relation"],
                  "filters": [{"filter": "tag", "value": "disabled"}]}
    assert client.post("/api/forms", headers=auth["worker"], json=definition).status_code == 403
    bad = client.post("/api/forms", headers=auth["boss"], json={**definition, "columns": ["name", "password_hash"]})
    assert bad.status_code == 422 and "body.columns.1" in bad.json()["detail"]  # the schema lists the columns
    bad = client.post("/api/forms", headers=auth["boss"], json={**definition, "columns": ["name", "targeted"]})
    assert bad.status_code == 422 and "unknown columns targeted for source persons" in bad.json()["detail"]
    bad = client.post("/api/forms", headers=auth["boss"],
                      json={**definition, "filters": [{"filter": "sql", "value": "1=1"}]})
    assert bad.status_code == 422 and "body.filters.0.filter" in bad.json()["detail"]
    bad = client.post("/api/forms", headers=auth["boss"],
                      json={**definition, "filters": [{"filter": "coverage_below", "value": 50}]})
    assert bad.status_code == 422 and "unknown filter 'coverage_below' for source persons" in bad.json()["detail"]
    added = client.post("/api/forms", headers=auth["boss"], json=definition)
    assert added.status_code == 201, added.text
    assert client.post("/api/forms", headers=auth["boss"], json=definition).status_code == 409
    got = client.get("/api/forms/disabled_persons/run", headers=auth["worker"],
                     params={"division": COMMUNITY, "format": "csv"})
    assert got.status_code == 200, got.text
    assert got.content.startswith(b"\xef\xbb\xbf") and got.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert table == [["社区编码", "社区", "房号", "姓名", "联系电话", "与户主关系"],
                     [COMMUNITY, "测试社区", "101", "孙*", "", "子女"],
                     [COMMUNITY, "测试社区", "102", "钱*", "136****0013", "户主"]]
    changed = client.put("/api/forms/disabled_persons", headers=auth["boss"],
                         json={**{k: v for k, v in definition.items() if k != "name"}, "columns": ["name"]})
    assert changed.status_code == 200 and changed.json()["columns"] == ["name"]
    xlsx = client.get("/api/forms/disabled_persons/run", headers=auth["boss"],
                      params={"division": COMMUNITY, "reveal": "true", "reason": "年度残疾人核查"})
    assert xlsx.status_code == 200, xlsx.text
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    assert [[c.value for c in r] for r in sheet.iter_rows()] == [
        ["社区编码", "社区", "姓名"], [COMMUNITY, "测试社区", "孙二"], [COMMUNITY, "测试社区", "钱三"]]
    assert client.get("/api/forms/disabled_persons/run", headers=auth["viewer"],
                      params={"division": COMMUNITY}).status_code == 403
    assert client.get("/api/forms/nope/run", headers=auth["boss"], params={"division": COMMUNITY}).status_code == 404
    assert client.get("/api/forms/disabled_persons/run", headers=auth["boss"],
                      params={"division": "12"}).status_code == 422
    with sessions() as s:
        actions = [r[0] for r in s.execute(text("SELECT action FROM audit_log WHERE object_id = 'disabled_persons' "
                                                "ORDER BY id"))]
    assert actions == ["form_template_create", "form_export", "form_template_update", "form_reveal"]


def test_cli_lists_and_writes_a_form(fresh_db_url, tmp_path):
    sessions = make_sessionmaker(make_engine(fresh_db_url, pool_size=1))
    keys = PersonalKeys.create(tmp_path / "personal.key")
    with sessions.begin() as s:
        west, _ = factories.two_grids(s)
        b1 = factories.building(s, west, 10, 10, number=1)
        rows = [person("吴老", id_number(21), phone="13500000021", code=b1.code, room="101", tags="独居老人")]
        assert import_residents(s, write_xlsx(tmp_path / "l.xlsx", rows), keys).written
    env = {"GRIDGOV_DATABASE_URL": fresh_db_url, "GRIDGOV_DATA_DIR": str(tmp_path),
           "GRIDGOV_PERSONAL_KEY_FILE": str(tmp_path / "personal.key")}
    listed = CliRunner().invoke(main, ["form", "list"], env=env)
    assert listed.exit_code == 0 and "elderly_alone\tpersons\tper grid\t独居老人花名册\t民政" in listed.output
    out = tmp_path / "民政.xlsx"
    done = CliRunner().invoke(main, ["form", "run", "elderly_alone", "--division", COMMUNITY, "--out", str(out)],
                              env=env)
    assert done.exit_code == 0, done.output
    assert "wrote 1 rows" in done.output and "(masked)" in done.output
    sheet = openpyxl.load_workbook(out).active
    assert [c.value for c in sheet[2]][5:9] == ["吴*", "男", masked_id(21), "135****0021"]
    wrong = CliRunner().invoke(main, ["form", "run", "elderly_alone", "--division", "99", "--out", str(out)], env=env)
    assert wrong.exit_code == 2 and "12-digit division code" in wrong.output
