"""Correcting the population ledger on the spot (动态更新, issue 14 §2): a grid worker adds a resident, marks one
moved out, changes a phone, corrects a room, in their grids only; versions (412/428), audit rows, encryption at
rest, history kept, counts kept current; screening campaigns count persons beside households (不漏一人)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import text

from spatial.access import Principal
from spatial.errors import Conflict, Forbidden, InvalidInput, NotFound, OutOfScope, PreconditionRequired, StaleEdit
from spatial.io.residents import import_residents
from spatial.personal_keys import PersonalKeys
from spatial.store import campaigns, ledger_edits, persons
from tests import factories
from tests.factories import COMMUNITY
from tests.test_residents import KEYS, id_number, person, write_xlsx

TODAY = date(2026, 12, 3)
WEST, EAST = COMMUNITY + "01", COMMUNITY + "02"
PASSWORD = "a long enough password"


def count(db, sql, **params):
    return db.execute(text(sql), params).scalar_one()


def household_id(db, building, room):
    return count(db, "SELECT id FROM households WHERE building_id = :b AND room = :r", b=building.id, r=room)


def load_ledger(db, tmp_path, keys: PersonalKeys = KEYS) -> dict:
    """West grid: building 1 with households 101 (张一 head, 张二, 张三) and 102 (李四), building 2 empty but
    counted (8 households, 20 residents estimated); east grid: building 1 with household 101 (王五)."""
    west, east = factories.two_grids(db)
    b1 = factories.building(db, west, 10, 10, number=1)
    b2 = factories.building(db, west, 60, 10, number=2, name="幸福楼", households=8, residents=20)
    b3 = factories.building(db, east, 250, 10, number=1, name="和平楼")
    rows = [person("张一", id_number(1), phone="13800000001", code=b1.code, room="101"),
            person("张二", id_number(2), relation="配偶", code=b1.code, room="101"),
            person("张三", id_number(3), relation="子女", code=b1.code, room="101", tags="残疾"),
            person("李四", id_number(4), phone="13800000004", code=b1.code, room="102"),
            person("王五", id_number(5), code=b3.code, room="101")]
    assert import_residents(db, write_xlsx(tmp_path / "ledger.xlsx", rows), keys, as_of=date(2026, 12, 1)).written
    people = {name: pid for name, pid in db.execute(text("SELECT name, id FROM persons"))}
    return {"west": west, "east": east, "b1": b1, "b2": b2, "b3": b3, "people": people,
            "a": household_id(db, b1, "101"), "b": household_id(db, b1, "102"), "c": household_id(db, b3, "101"),
            "worker": Principal(11, "worker1", "grid_worker", grid_ids=frozenset({west.id}), client_addr="test"),
            "planner": Principal(12, "planner1", "planner", scope_code=COMMUNITY, client_addr="test"),
            "inspector": Principal(13, "inspector1", "inspector", scope_code=COMMUNITY, client_addr="test"),
            "viewer": Principal(14, "viewer1", "viewer", scope_code=COMMUNITY, client_addr="test"),
            "admin": Principal(15, "admin1", "admin", client_addr="test")}


@pytest.fixture
def town(db, tmp_path):
    return {"db": db, **load_ledger(db, tmp_path)}


def version(db, household):
    return count(db, "SELECT version FROM households WHERE id = :h", h=household)


def audit_rows(db, action):
    return db.execute(text("SELECT username, object_id, household_ids, fields FROM audit_log WHERE action = :a "
                           "ORDER BY id"), {"a": action}).all()


def test_a_sheet_is_masked_scoped_and_audited(town):
    db, worker = town["db"], town["worker"]
    sheet = ledger_edits.sheet(db, worker, town["a"], purpose="核实住户")
    assert [p.name for p in sheet.persons] == ["张*", "张*", "张*"]
    assert [p.relation for p in sheet.persons] == ["head", "spouse", "child"]
    assert sheet.persons[0].phone == "138****0001" and sheet.persons[0].id_number == id_number(1)[:6] + "********" \
        + id_number(1)[-4:]
    assert sheet.residents == 3 and sheet.tags == ("disabled",) and sheet.version >= 1
    assert audit_rows(db, "read_masked")[-1] == ("worker1", str(town["a"]), [town["a"]],
                                                 list(ledger_edits.SHEET_FIELDS))
    with pytest.raises(OutOfScope):
        ledger_edits.sheet(db, worker, town["c"])  # the east grid is not the worker's
    with pytest.raises(Forbidden):
        ledger_edits.sheet(db, town["viewer"], town["a"])
    assert ledger_edits.sheet(db, town["inspector"], town["c"]).residents == 1  # inspectors read (masked)


def test_adding_a_resident_seals_the_numbers_bumps_the_version_and_counts(town):
    db, worker, a = town["db"], town["worker"], town["a"]
    v = version(db, a)
    new = ledger_edits.NewPerson("赵六", id_number(6).lower(), phone="+86 139 0000 0006", relation="other",
                                 kind="floating", tags=("elderly_alone",), moved_in=date(2026, 11, 30))
    with pytest.raises(PreconditionRequired):
        ledger_edits.add_person(db, worker, a, None, new, KEYS, today=TODAY)
    with pytest.raises(StaleEdit) as stale:
        ledger_edits.add_person(db, worker, a, v - 1 if v > 1 else v + 1, new, KEYS, today=TODAY)
    assert stale.value.code == "ledger.stale" and stale.value.detail["version"] == v
    sheet = ledger_edits.add_person(db, worker, a, v, new, KEYS, today=TODAY, note="新入住")
    assert sheet.version > v and sheet.residents == 4 == len(sheet.persons)
    assert sheet.tags == ("disabled", "elderly_alone")
    added = db.execute(text("SELECT * FROM persons WHERE name = '赵六'")).mappings().one()
    assert added["gender"] == "female" and added["kind"] == "floating" and added["origin"] == "field"
    assert added["phone_masked"] == "139****0006" and added["id_number_masked"].startswith(id_number(6)[:6])
    # at rest: ciphertext and keyed hashes only; the key opens them
    for column in ("id_number_sealed", "phone_sealed", "id_number_hash", "phone_hash"):
        stored = bytes(added[column])
        assert b"13900000006" not in stored and id_number(6).encode() not in stored
    assert KEYS.open(persons.PHONE_FIELD, added["phone_sealed"]) == "13900000006"
    assert KEYS.open(persons.ID_FIELD, added["id_number_sealed"]) == id_number(6)
    assert [r["name"] for r in persons.find_by_phone(db, KEYS, "13900000006")] == ["赵六"]
    assert count(db, "SELECT count(*) FROM persons WHERE phone_masked = '13900000006' OR id_number_masked = :n",
                 n=id_number(6)) == 0
    assert audit_rows(db, "ledger_add_person") == [("worker1", str(a), [a],
                                                    ["name", "id_number", "relation", "kind", "phone", "tags"])]
    # refusals: a bad check digit, the same person twice, a second head, a household outside the worker's grids
    bad = ledger_edits.NewPerson("钱七", id_number(7)[:17] + ("0" if id_number(7)[17] != "0" else "1"))
    with pytest.raises(InvalidInput, match="bad check digit"):
        ledger_edits.add_person(db, worker, a, sheet.version, bad, KEYS, today=TODAY)
    with pytest.raises(Conflict) as again:
        ledger_edits.add_person(db, worker, a, sheet.version, new, KEYS, today=TODAY)
    assert again.value.code == "ledger.lives_here"
    with pytest.raises(Conflict) as head:
        ledger_edits.add_person(db, worker, a, sheet.version,
                                ledger_edits.NewPerson("钱七", id_number(7), relation="head"), KEYS, today=TODAY)
    assert head.value.code == "ledger.second_head" and head.value.detail["head"] == "张*"
    with pytest.raises(Conflict) as outside:  # 王五 lives in the east grid: the worker learns nothing of it
        ledger_edits.add_person(db, worker, a, sheet.version, ledger_edits.NewPerson("王五", id_number(5)), KEYS,
                                today=TODAY)
    assert outside.value.code == "ledger.lives_elsewhere" and "household" not in str(outside.value.detail)
    with pytest.raises(OutOfScope):
        ledger_edits.add_person(db, worker, town["c"], version(db, town["c"]), bad, KEYS, today=TODAY)
    with pytest.raises(InvalidInput, match="must lie between"):
        ledger_edits.add_person(db, worker, a, sheet.version,
                                ledger_edits.NewPerson("钱七", id_number(7), moved_in=date(2027, 1, 1)), KEYS,
                                today=TODAY)


def test_a_resident_of_another_household_in_scope_moves_and_keeps_history(town):
    db, planner, a, b = town["db"], town["planner"], town["a"], town["b"]
    sheet = ledger_edits.add_person(db, planner, a, version(db, a), ledger_edits.NewPerson(
        "李四", id_number(4), relation="other", moved_in=date(2026, 12, 2)), KEYS, today=TODAY)
    assert sheet.residents == 4
    rows = db.execute(text("SELECT household_id, moved_out, moved_out_reason FROM persons WHERE id_number_hash = :h "
                           "ORDER BY id"), {"h": KEYS.digest(persons.ID_FIELD, id_number(4))}).all()
    assert rows == [(b, date(2026, 12, 2), "moved"), (a, None, None)]
    assert count(db, "SELECT residents FROM households WHERE id = :h", h=b) == 0
    assert count(db, "SELECT head_name FROM households WHERE id = :h", h=b) is None
    assert audit_rows(db, "ledger_add_person")[-1][2] == [a, b]


def test_moving_out_closes_the_row_and_keeps_it(town):
    db, worker, a = town["db"], town["worker"], town["a"]
    head = town["people"]["张一"]
    total = count(db, "SELECT count(*) FROM persons")
    with pytest.raises(InvalidInput, match="must lie between"):
        ledger_edits.move_out(db, worker, a, head, version(db, a), today=TODAY, moved_out=date(1899, 1, 1))
    sheet = ledger_edits.move_out(db, worker, a, head, version(db, a), today=TODAY, moved_out=date(2026, 12, 2),
                                  note="搬往外地")
    assert count(db, "SELECT count(*) FROM persons") == total  # nothing deleted
    assert [p.id for p in sheet.history] == [head] and sheet.history[0].moved_out == date(2026, 12, 2)
    assert sheet.history[0].moved_out_reason == "left" and head not in [p.id for p in sheet.persons]
    assert sheet.residents == 2
    household = db.execute(text("SELECT residents, head_name, head_phone FROM households WHERE id = :h"),
                           {"h": a}).one()
    assert tuple(household) == (2, None, None)  # no head left: the head's fields are cleared
    with pytest.raises(Conflict) as again:
        ledger_edits.move_out(db, worker, a, head, sheet.version, today=TODAY)
    assert again.value.code == "ledger.moved_out_already"
    with pytest.raises(NotFound):
        ledger_edits.move_out(db, worker, a, town["people"]["王五"], sheet.version, today=TODAY)
    assert [r[0] for r in audit_rows(db, "ledger_move_out")] == ["worker1"]
    assert ledger_edits.sheet(db, worker, a).history == ()  # the plain read: current residents only
    assert len(ledger_edits.sheet(db, worker, a, history=True).history) == 1


def test_changing_a_phone_reseals_it_and_the_head_follows(town):
    db, worker, a = town["db"], town["worker"], town["a"]
    head = town["people"]["张一"]
    before = db.execute(text("SELECT phone_sealed, phone_hash FROM persons WHERE id = :p"), {"p": head}).one()
    with pytest.raises(InvalidInput, match="nothing to change"):
        ledger_edits.change_person(db, worker, a, head, version(db, a), KEYS)
    with pytest.raises(InvalidInput, match="not a mobile"):
        ledger_edits.change_person(db, worker, a, head, version(db, a), KEYS, phone="12345")
    sheet = ledger_edits.change_person(db, worker, a, head, version(db, a), KEYS, phone="13712345678")
    assert sheet.persons[0].phone == "137****5678"
    after = db.execute(text("SELECT phone_sealed, phone_hash, phone_masked FROM persons WHERE id = :p"),
                       {"p": head}).one()
    assert bytes(after.phone_sealed) != bytes(before.phone_sealed) and b"13712345678" not in bytes(after.phone_sealed)
    assert KEYS.open(persons.PHONE_FIELD, after.phone_sealed) == "13712345678"
    assert persons.find_by_phone(db, KEYS, "13800000001") == []
    assert count(db, "SELECT head_phone FROM households WHERE id = :h", h=a) == "137****5678"
    same = ledger_edits.change_person(db, worker, a, head, sheet.version, KEYS, phone="137 1234 5678")
    assert same.version == sheet.version  # nothing differs: nothing written
    cleared = ledger_edits.change_person(db, worker, a, head, sheet.version, KEYS, phone=None, tags=["elderly"])
    assert cleared.persons[0].phone is None and cleared.persons[0].tags == ("elderly",)
    assert audit_rows(db, "ledger_change_person")[-1][3] == ["phone", "tags"]
    with pytest.raises(Conflict):  # 张二 as a second head
        ledger_edits.change_person(db, worker, a, town["people"]["张二"], cleared.version, KEYS, relation="head")


def test_correcting_a_household_moves_it_within_scope_and_counts_follow(town):
    db, worker, a, b1, b2 = town["db"], town["worker"], town["a"], town["b1"], town["b2"]
    with pytest.raises(Forbidden):
        ledger_edits.correct_household(db, town["inspector"], a, version(db, a), room="201")
    with pytest.raises(Forbidden):
        ledger_edits.correct_household(db, town["viewer"], a, version(db, a), room="201")
    with pytest.raises(Conflict) as taken:
        ledger_edits.correct_household(db, worker, a, version(db, a), room="102")
    assert taken.value.code == "ledger.room_taken"
    with pytest.raises(OutOfScope):
        ledger_edits.correct_household(db, worker, a, version(db, a), building_id=town["b3"].id)
    sheet = ledger_edits.correct_household(db, worker, a, version(db, a), unit="2", floor=3, room="301",
                                           building_id=b2.id, note="房号登记错误")
    assert (sheet.building_id, sheet.unit, sheet.floor, sheet.room) == (b2.id, "2", 3, "301")
    counts = dict(db.execute(text("SELECT id, households FROM buildings")).all())
    residents = dict(db.execute(text("SELECT id, residents FROM buildings")).all())
    assert counts[b2.id] == 9 and residents[b2.id] == 23  # 8 + 1 households, 20 + 3 residents
    assert counts[b1.id] == 1 and residents[b1.id] == 1  # was unknown (NULL): now what its rows hold
    assert audit_rows(db, "ledger_correct_household")[-1][3] == ["building_id", "floor", "room", "unit"]
    with pytest.raises(StaleEdit):
        ledger_edits.correct_household(db, worker, a, sheet.version - 1, room="302")


def test_an_import_makes_an_open_sheet_stale(town, tmp_path):
    db, worker, a = town["db"], town["worker"], town["a"]
    seen = ledger_edits.sheet(db, worker, a).version
    rows = [person("张一", id_number(1), phone="13800000099", code=town["b1"].code, room="101"),
            person("张二", id_number(2), relation="配偶", code=town["b1"].code, room="101"),
            person("张三", id_number(3), relation="子女", code=town["b1"].code, room="101", tags="残疾"),
            person("李四", id_number(4), phone="13800000004", code=town["b1"].code, room="102")]
    assert import_residents(db, write_xlsx(tmp_path / "newer.xlsx", rows), KEYS, as_of=TODAY).written
    assert version(db, a) > seen
    assert version(db, town["b"]) == ledger_edits.sheet(db, worker, town["b"]).version
    with pytest.raises(StaleEdit):
        ledger_edits.change_person(db, worker, a, town["people"]["张一"], seen, KEYS, phone="13700000000")


def test_campaign_progress_counts_persons_exactly(town):
    db, worker, planner, a = town["db"], town["worker"], town["planner"], town["a"]
    campaign = campaigns.open_campaign(db, planner, "冬季排查", grid_codes=[WEST, EAST])
    assert (campaign.targeted, campaign.persons_targeted, campaign.persons_screened) == (3, 5, 0)
    campaigns.record_visit(db, worker, campaign.id, a, result="normal", lon=113.9, lat=22.5)
    rows = {(r.level, r.code): r for r in campaigns.progress(db, planner, campaign.id)}
    total = rows[("campaign", None)]
    assert (total.targeted, total.screened, total.persons_targeted, total.persons_screened) == (3, 1, 5, 3)
    assert total.persons_ratio == pytest.approx(0.6)
    assert (rows[("grid", WEST)].persons_targeted, rows[("grid", WEST)].persons_screened) == (4, 3)
    assert (rows[("grid", EAST)].persons_targeted, rows[("grid", EAST)].persons_screened) == (1, 0)
    assert rows[("community", COMMUNITY)].persons_targeted == 5
    ledger_edits.add_person(db, worker, a, version(db, a), ledger_edits.NewPerson("赵六", id_number(6)), KEYS,
                            today=TODAY)
    mine = campaigns.get_campaign(db, worker, campaign.id)  # the worker's part: the west grid
    assert (mine.targeted, mine.screened, mine.persons_targeted, mine.persons_screened) == (2, 1, 5, 4)


# -- the API ------------------------------------------------------------------------------------------------------


@pytest.fixture
def api(app_env, tmp_path):
    from spatial.store import users

    client, sessions = app_env
    keys = PersonalKeys.create(tmp_path / "personal.key")  # where the app's settings look (data_dir)
    with sessions.begin() as s:
        town = load_ledger(s, tmp_path, keys)
        made = factories.users_with_grids(s, (("worker1", "grid_worker", None, WEST),
                                              ("worker2", "grid_worker", None, EAST),
                                              ("planner1", "planner", COMMUNITY, None),
                                              ("viewer1", "viewer", COMMUNITY, None)),
                                          users.hash_password(PASSWORD))
        auth = {n: {"Authorization": "Bearer " + users.issue_token(s, u, 3600)[0]} for n, u in made.items()}
    return client, sessions, keys, town, auth


def test_api_sheet_has_an_etag_and_edits_need_it(api):
    client, sessions, keys, town, auth = api
    a, head = town["a"], town["people"]["张一"]
    url = f"/api/field/households/{a}"
    got = client.get(url, headers=auth["worker1"], params={"purpose": "上门核实"})
    assert got.status_code == 200, got.text
    body = got.json()
    etag = got.headers["ETag"]
    assert etag == body["etag"] == f'"household-{a}.v{body["version"]}"'
    assert [p["name"] for p in body["persons"]] == ["张*", "张*", "张*"]
    assert body["persons"][0]["relation"] == {"code": "head", "zh": "户主", "en": "Head of household"}
    assert body["persons"][0]["phone"] == "138****0001"
    assert client.get(url, headers=auth["viewer1"]).status_code == 403
    assert client.get(url, headers=auth["worker2"]).status_code == 404
    patch = f"{url}/persons/{head}"
    missing = client.patch(patch, headers=auth["worker1"], json={"phone": "13712345678"})
    assert missing.status_code == 428 and missing.json()["code"] == "ledger.version_missing"
    stale = client.patch(patch, headers={**auth["worker1"], "If-Match": f'"household-{a}.v{body["version"] - 1}"'},
                         json={"phone": "13712345678"})
    assert stale.status_code == 412 and stale.json()["code"] == "ledger.stale"
    other = client.patch(patch, headers={**auth["worker1"], "If-Match": f'"household-{town["b"]}.v1"'},
                         json={"phone": "13712345678"})
    assert other.status_code == 412
    done = client.patch(patch, headers={**auth["worker1"], "If-Match": etag}, json={"phone": "13712345678"})
    assert done.status_code == 200, done.text
    assert done.json()["persons"][0]["phone"] == "137****5678"
    assert done.headers["ETag"] != etag and done.headers["ETag"] == done.json()["etag"]
    again = client.patch(patch, headers={**auth["worker1"], "If-Match": etag}, json={"phone": "13700000000"})
    assert again.status_code == 412  # the second edit on the old version
    assert client.patch(patch, headers={**auth["worker2"], "If-Match": done.headers["ETag"]},
                        json={"phone": "13700000000"}).status_code == 404
    assert client.patch(patch, headers={**auth["viewer1"], "If-Match": done.headers["ETag"]},
                        json={"phone": "13700000000"}).status_code == 403
    assert client.patch(patch, headers={**auth["worker1"], "If-Match": done.headers["ETag"]},
                        json={"phone": "1234"}).status_code == 422
    with sessions() as s:
        sealed = s.execute(text("SELECT phone_sealed FROM persons WHERE id = :p"), {"p": head}).scalar_one()
        assert keys.open(persons.PHONE_FIELD, sealed) == "13712345678" and b"13712345678" not in bytes(sealed)
        rows = s.execute(text("SELECT username, action, household_ids, result FROM audit_log "
                              "WHERE household_ids @> ARRAY[CAST(:a AS bigint)] ORDER BY id"), {"a": a}).all()
        refused = s.scalar(text("SELECT count(*) FROM audit_log WHERE username = 'worker2' "
                                "AND result LIKE 'refused 404%'"))
    actions = [(r.username, r.action) for r in rows]
    assert ("worker1", "read_masked") in actions and ("worker1", "ledger_change_person") in actions
    assert refused == 2  # the sheet and the edit outside the worker's grid, both audited


def test_api_add_move_out_and_correct_a_room(api):
    client, sessions, keys, town, auth = api
    a = town["a"]
    url = f"/api/field/households/{a}"
    etag = client.get(url, headers=auth["planner1"]).headers["ETag"]
    added = client.post(f"{url}/persons", headers={**auth["planner1"], "If-Match": etag},
                        json={"name": "赵六", "id_number": id_number(6), "phone": "13900000006", "kind": "floating",
                              "tags": ["elderly_alone"], "note": "新入住"})
    assert added.status_code == 201, added.text
    sheet = added.json()
    assert sheet["residents"] == 4 and {t["code"] for t in sheet["tags"]} == {"disabled", "elderly_alone"}
    zhao = next(p for p in sheet["persons"] if p["kind"]["code"] == "floating")
    bad = client.post(f"{url}/persons", headers={**auth["planner1"], "If-Match": added.headers["ETag"]},
                      json={"name": "钱七", "id_number": id_number(7)[:17] + "X" if id_number(7)[17] != "X"
                            else id_number(7)[:17] + "0"})
    assert bad.status_code == 422 and bad.json()["code"] == "ledger.bad_value"
    moved = client.post(f"{url}/persons/{zhao['id']}/move-out", headers={**auth["worker1"],
                                                                          "If-Match": added.headers["ETag"]},
                        json={})  # today: the day they moved in (before it is refused)
    assert moved.status_code == 200, moved.text
    assert moved.json()["residents"] == 3 and moved.json()["history"][0]["moved_out_reason"]["code"] == "left"
    room = client.patch(url, headers={**auth["worker1"], "If-Match": moved.headers["ETag"]},
                        json={"room": "102"})
    assert room.status_code == 409 and room.json()["code"] == "ledger.room_taken"
    room = client.patch(url, headers={**auth["worker1"], "If-Match": moved.headers["ETag"]},
                        json={"room": "103", "floor": None})
    assert room.status_code == 200 and (room.json()["room"], room.json()["floor"]) == ("103", None)
    campaign = client.post("/api/field/campaigns", headers=auth["planner1"],
                           json={"name": "冬季排查", "grid_codes": [WEST, EAST]}).json()
    assert (campaign["persons_targeted"], campaign["persons_screened"]) == (5, 0)
    coverage = client.get(f"/api/field/campaigns/{campaign['id']}/coverage", headers=auth["planner1"]).json()
    assert coverage["total"]["persons_targeted"] == 5 and coverage["total"]["persons_coverage"] == 0
    with sessions() as s:
        assert s.scalar(text("SELECT count(*) FROM persons WHERE name = '赵六' AND moved_out IS NOT NULL")) == 1
        actions = s.execute(text("SELECT action FROM audit_log WHERE action LIKE 'ledger_%' ORDER BY id")).scalars()
        assert list(actions) == ["ledger_add_person", "ledger_move_out", "ledger_correct_household"]


def test_a_household_outside_the_ledger_enters_it_with_its_head(db, tmp_path):
    from spatial.store.models import Household

    town = load_ledger(db, tmp_path)
    legacy = Household(building_id=town["b2"].id, unit="1", room="501", residents=3, head_name="周大",
                       head_phone="13600000000")
    db.add(legacy)
    db.flush()
    worker = town["worker"]
    with pytest.raises(Conflict) as first:
        ledger_edits.add_person(db, worker, legacy.id, version(db, legacy.id),
                                ledger_edits.NewPerson("周小", id_number(8), relation="child"), KEYS, today=TODAY)
    assert first.value.code == "ledger.head_first"
    assert count(db, "SELECT head_name FROM households WHERE id = :h", h=legacy.id) == "周大"
    sheet = ledger_edits.add_person(db, worker, legacy.id, version(db, legacy.id), ledger_edits.NewPerson(
        "周大", id_number(9), phone="13600000000", relation="head"), KEYS, today=TODAY)
    assert sheet.residents == 1 and sheet.persons[0].phone == "136****0000"
    assert tuple(db.execute(text("SELECT head_name, head_phone FROM households WHERE id = :h"),
                            {"h": legacy.id}).one()) == ("周大", "136****0000")
