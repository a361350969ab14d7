"""The population ledger: importing residents' spreadsheets, placing rows, merging newer ledgers, sealing at rest."""

from __future__ import annotations

import random
import subprocess
from datetime import date
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from gridgov.cli import main
from spatial.access import Principal
from spatial.errors import InvalidInput
from spatial.geometry.codes import id_check_char
from spatial.geometry.crs import wgs84_to_gcj02
from spatial.io import residents
from spatial.io.residents import import_residents
from spatial.personal_keys import KeyUnavailable, PersonalKeys
from spatial.store import backup, household_reads, persons
from spatial.store.cluster import postgres_bindir
from spatial.store.engine import make_engine, make_sessionmaker
from tests import factories

KEYS = PersonalKeys.of(b"k" * 32)
HEADER = ["姓名", "身份证号", "联系电话", "与户主关系", "楼栋编码", "楼栋", "单元", "楼层", "房号", "人员类型", "标签",
          "隔离开始日期", "隔离结束日期", "迁入日期", "迁出日期", "经度", "纬度"]
ADMIN = Principal(user_id=0, username="tester", role="admin", client_addr="test")


def id_number(seq: int, area: str = "440304", born: str = "19800101") -> str:
    first17 = f"{area}{born}{seq % 1000:03d}"
    return first17 + id_check_char(first17)


def bad_check(seq: int) -> str:
    good = id_number(seq)
    return good[:17] + ("0" if good[17] != "0" else "1")


def person(name, number, *, phone=None, relation="户主", code=None, building=None, unit="1", floor=1, room="101",
           kind="户籍", tags="", iso=(None, None), moved=(None, None), lonlat=(None, None)) -> list:
    return [name, number, phone, relation, code, building, unit, floor, room, kind, tags, *iso, *moved, *lonlat]


def write_xlsx(path: Path, rows: list[list]) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


@pytest.fixture
def town(db):
    """Two grids; buildings: west 1 (code …0100001), west 2 named 幸福楼, east 1 named 和平楼."""
    west, east = factories.two_grids(db)
    b1 = factories.building(db, west, 10, 10, number=1)
    b2 = factories.building(db, west, 60, 10, number=2, name="幸福楼")
    b3 = factories.building(db, east, 250, 10, number=1, name="和平楼")
    return {"db": db, "b1": b1, "b2": b2, "b3": b3, "west": west, "east": east}


def run(db, path, **options):
    return import_residents(db, path, KEYS, as_of=options.pop("as_of", date(2026, 12, 1)), **options)


def count(db, sql, **params):
    return db.execute(text(sql), params).scalar_one()


def family(code: str, room: str, start: int, size: int = 3) -> list[list]:
    relations = ["户主", "配偶", "子女", "父母", "其他"]
    return [person(f"张{room}{i}", id_number(start + i), phone=f"1380000{start + i:04d}", relation=relations[i],
                   code=code, room=room) for i in range(size)]


def test_good_and_bad_rows_each_reported_with_line_and_column_and_nothing_written(town, tmp_path):
    db, b1 = town["db"], town["b1"]
    good = family(b1.code, "101", 1)
    bad = [
        person("李四", bad_check(10), code=b1.code, room="102"),                                 # line 5
        person("王五", id_number(11), phone="12345", code=b1.code, room="102"),                  # line 6
        person("赵六", id_number(12), code="4403040990010199999", room="103"),                  # line 7
        person("钱七", id_number(1), relation="子女", code=b1.code, room="104"),                 # line 8: also in 101
        person("孙八", id_number(13), code=b1.code, room="105", tags="独居老人、外星人"),          # line 9
        person("周九", id_number(14), building="不存在楼", room="106"),                          # line 10
        person("吴十", id_number(15), code=b1.code, room="101"),                                # line 11: 2nd head
        person("郑一", int(id_number(16)[:15]), code=b1.code, room="107"),                      # line 12: a number
        person("", id_number(17), code=b1.code, room="108"),                                    # line 13
        person("冯二", id_number(18), relation="邻居", code=b1.code, room="109"),                # line 14
    ]
    path = write_xlsx(tmp_path / "ledger.xlsx", good + bad)
    report = run(db, path)
    found = {(e.line, e.column): e.reason for e in report.rejected}
    assert set(found) == {
        (5, "身份证号"), (6, "联系电话"), (7, "楼栋编码"), (8, "身份证号"), (9, "标签"), (10, "楼栋"), (11, "与户主关系"),
        (12, "身份证号"), (13, "姓名"), (14, "与户主关系")}, found
    assert "check digit" in found[(5, "身份证号")] and bad_check(10) not in found[(5, "身份证号")]
    assert "mobile" in found[(6, "联系电话")]
    assert "unknown building code" in found[(7, "楼栋编码")]
    assert "two households" in found[(8, "身份证号")] and "line 2" in found[(8, "身份证号")]
    assert "外星人" in found[(9, "标签")]
    assert "unknown building" in found[(10, "楼栋")]
    assert "second head" in found[(11, "与户主关系")]
    assert "stored as a number" in found[(12, "身份证号")]
    assert [e.letter for e in report.rejected if e.line == 5] == ["B"]
    assert report.issue_count == 10 and not report.written
    assert count(db, "SELECT count(*) FROM persons") == 0
    assert count(db, "SELECT count(*) FROM households") == 0
    assert "line 5, column 身份证号 (B)" in report.summary()

    skipped = run(db, path, skip_errors=True)
    assert skipped.written and skipped.counts.inserted == 3
    assert count(db, "SELECT count(*) FROM persons WHERE moved_out IS NULL") == 3
    row = db.execute(text("SELECT residents, head_name, head_id_number, head_phone FROM households")).one()
    assert row.residents == 3 and row.head_name == "张1010"
    assert row.head_id_number == id_number(1)[:6] + "********" + id_number(1)[-4:]
    assert row.head_phone == "138****0001"


def test_rows_checked_by_worker_processes_give_the_same_report_and_rows(town, tmp_path, monkeypatch):
    """Past PARALLEL_FROM rows the checking moves to spawned workers: the rejected rows, their order, the kept ID
    hashes and what is written are those of the check in this process."""
    db, b1 = town["db"], town["b1"]
    rows = family(b1.code, "101", 1) + [
        person("李四", bad_check(10), code=b1.code, room="102"),
        person("王五", id_number(11), phone="12345", code=b1.code, room="102"),
        person("钱七", id_number(1), relation="子女", code=b1.code, room="104"),
        *family(b1.code, "103", 20, 4), person("", id_number(17), code=b1.code, room="108")]
    path = write_xlsx(tmp_path / "ledger.xlsx", rows)
    here = run(db, path, workers=1)
    monkeypatch.setattr(residents, "PARALLEL_FROM", 2)
    spread = run(db, path, workers=2, batch=2)
    assert [str(e) for e in spread.rejected] == [str(e) for e in here.rejected] and len(here.rejected) == 4
    written = run(db, path, workers=2, batch=2, skip_errors=True)
    assert written.counts.inserted == 7
    assert count(db, "SELECT count(*) FROM persons WHERE moved_out IS NULL") == 7


def test_reimport_changes_nothing_and_a_newer_ledger_moves_and_moves_out(town, tmp_path):
    db, b1 = town["db"], town["b1"]
    first = family(b1.code, "101", 1, 3) + family(b1.code, "102", 10, 2)
    path = write_xlsx(tmp_path / "v1.xlsx", first)
    report = run(db, path)
    assert report.ok and report.counts.inserted == 5 and report.counts.households_created == 2
    snapshot = db.execute(text("SELECT * FROM persons ORDER BY id")).all()
    households = db.execute(text("SELECT * FROM households ORDER BY id")).all()
    again = run(db, path)
    assert again.counts.changed == 0 and again.counts.unchanged == 5
    assert db.execute(text("SELECT * FROM persons ORDER BY id")).all() == snapshot
    assert db.execute(text("SELECT * FROM households ORDER BY id")).all() == households

    # newer ledger: 张1012 moves to 102 of 幸福楼 (by name), 张1021 is gone, 张1020 gets a new phone
    second = first[:2] + [first[3]]
    second[2] = [*second[2]]
    second[2][2] = "13912345678"
    moved = person("张1012", id_number(3), relation="户主", building="幸福楼", room="201", moved=("2026-11-15", None))
    path2 = write_xlsx(tmp_path / "v2.xlsx", second + [moved])
    newer = run(db, path2)
    c = newer.counts
    assert (c.moved, c.moved_out, c.inserted, c.updated) == (1, 1, 1, 1), c
    history = db.execute(text("""
        SELECT h.room, p.moved_out, p.moved_out_reason FROM persons p JOIN households h ON h.id = p.household_id
        WHERE p.id_number_hash = :h ORDER BY p.id"""), {"h": KEYS.digest("id_number", id_number(3))}).all()
    assert [tuple(r) for r in history] == [("101", date(2026, 11, 15), "moved"), ("201", None, None)]
    gone = persons.find_by_id_number(db, KEYS, id_number(11))
    assert [(g["moved_out"], g["moved_out_reason"]) for g in gone] == [(date(2026, 12, 1), "left")]
    assert count(db, "SELECT residents FROM households WHERE room = '101'") == 2
    assert count(db, "SELECT residents FROM households WHERE room = '102'") == 1
    assert count(db, "SELECT count(*) FROM persons") == 6  # nothing deleted
    assert run(db, path2).counts.changed == 0


def test_placement_by_code_name_and_gcj02_coordinates(town, tmp_path):
    db, b1, b2, b3 = town["db"], town["b1"], town["b2"], town["b3"]
    lon, lat = db.execute(text("SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(footprint) c FROM buildings "
                               "WHERE id = :b) x"), {"b": b3.id}).one()
    glon, glat = (float(v) for v in wgs84_to_gcj02(lon, lat))
    near_lon, near_lat = (float(v) for v in wgs84_to_gcj02(lon, lat - 0.0001))  # ~11 m south, outside the footprint
    rows = [person("甲", id_number(1), code=b1.code, room="1"),
            person("乙", id_number(2), building="幸福楼", room="1"),
            person("丙", id_number(3), lonlat=(glon, glat), room="1"),
            person("丁", id_number(4), lonlat=(near_lon, near_lat), room="2"),
            person("戊", id_number(5), lonlat=(glon + 0.01, glat), room="3")]  # about 1 km east: nothing near
    report = run(db, write_xlsx(tmp_path / "placed.xlsx", rows), crs="GCJ-02", skip_errors=True)
    assert [(e.line, e.column) for e in report.rejected] == [(6, "经度")]
    placed = dict(db.execute(text("SELECT p.name, h.building_id FROM persons p JOIN households h "
                                  "ON h.id = p.household_id")).all())
    assert placed == {"甲": b1.id, "乙": b2.id, "丙": b3.id, "丁": b3.id}
    # the same position read as WGS 84 is ~600 m off: not placed
    wrong = run(db, write_xlsx(tmp_path / "wgs.xlsx", [rows[2]]), crs="EPSG:4326")
    assert [e.column for e in wrong.rejected] == ["经度"]


def test_sealed_at_rest_hash_lookup_and_reveal_opens_and_audits(town, tmp_path):
    db, b1 = town["db"], town["b1"]
    run(db, write_xlsx(tmp_path / "l.xlsx", family(b1.code, "101", 1, 2)))
    raw = db.execute(text("SELECT id_number_sealed, phone_sealed, id_number_hash FROM persons ORDER BY id")).all()
    for (sealed, phone, digest), seq in zip(raw, (1, 2), strict=True):
        assert id_number(seq).encode() not in bytes(sealed) and f"{seq:04d}".encode() not in bytes(phone)[1 + 12:]
        assert KEYS.open("id_number", sealed) == id_number(seq)
        assert bytes(digest) == KEYS.digest("id_number", id_number(seq))
    with pytest.raises(KeyUnavailable):
        PersonalKeys.of(b"x" * 32).open("id_number", raw[0][0])
    with pytest.raises(KeyUnavailable):  # a sealed ID does not open as a phone number
        KEYS.open("phone", raw[0][0])
    [hit] = persons.find_by_id_number(db, KEYS, id_number(2))
    assert hit["name"] == "张1011" and hit["moved_out"] is None
    assert [p["name"] for p in persons.find_by_phone(db, KEYS, "13800000001")] == ["张1010"]
    household = count(db, "SELECT id FROM households")
    shown = household_reads.reveal(db, ADMIN, household, "核实户主身份", keys=lambda: KEYS)
    assert (shown["head_id_number"], shown["head_phone"]) == (id_number(1), "13800000001")
    assert count(db, "SELECT count(*) FROM audit_log WHERE action = 'reveal' AND :h = ANY(household_ids)",
                 h=household) == 1
    with pytest.raises(KeyUnavailable):
        household_reads.reveal(db, ADMIN, household, "核实户主身份", keys=None)


def test_key_file_created_0600_rotation_reseals(town, tmp_path):
    db, b1 = town["db"], town["b1"]
    path = tmp_path / "personal.key"
    keys = PersonalKeys.load_or_create(path, create=True)
    assert path.stat().st_mode & 0o777 == 0o600
    run_keys = lambda k, f: import_residents(db, f, k, as_of=date(2026, 12, 1))  # noqa: E731
    run_keys(keys, write_xlsx(tmp_path / "l.xlsx", family(b1.code, "101", 1, 2)))
    rotated = keys.with_new_key()
    with pytest.raises(InvalidInput, match="rotation is unfinished"):
        run_keys(PersonalKeys.load(path), tmp_path / "l.xlsx")
    assert persons.reseal(db, rotated) == 2
    final = rotated.only_current()
    assert len(PersonalKeys.load(path).secrets) == 1
    [hit] = persons.find_by_id_number(db, final, id_number(1))
    assert hit["name"] == "张1010"
    assert not persons.find_by_id_number(db, keys, id_number(1))  # the old key's hash no longer matches
    assert run_keys(final, tmp_path / "l.xlsx").counts.changed == 0


def test_csv_with_mapping_and_dry_run(town, tmp_path):
    db, b1 = town["db"], town["b1"]
    csv_path = tmp_path / "ledger.csv"
    csv_path.write_text("户主姓名,公民身份号码,手机,房屋编码,房间\n"
                        f"陈一,{id_number(1)},+86 139 1234 5678,{b1.code},0301\n", encoding="gb18030")
    mapping = tmp_path / "m.toml"
    mapping.write_text('[columns]\nname = "户主姓名"\nid_number = "公民身份号码"\nphone = "手机"\n'
                       'building_code = "房屋编码"\nroom = "房间"\n', encoding="utf-8")
    dry = run(db, csv_path, mapping=mapping, dry_run=True)
    assert dry.ok and dry.counts.inserted == 1 and not dry.written
    assert count(db, "SELECT count(*) FROM persons") == 0
    done = run(db, csv_path, mapping=mapping)
    assert done.written and count(db, "SELECT phone_masked FROM persons") == "139****5678"


def test_cli_import_and_the_dump_holds_no_plaintext(fresh_db_url, tmp_path, engine):
    sessions = make_sessionmaker(make_engine(fresh_db_url, pool_size=1))
    with sessions.begin() as s:
        west, _ = factories.two_grids(s)
        code = factories.building(s, west, 10, 10, number=1).code
    rng = random.Random(3)
    rows = [person(f"林{i}", id_number(i, born=f"19{rng.randint(50, 99)}0{rng.randint(1, 9)}1{rng.randint(0, 9)}"),
                   phone=f"13{rng.randint(3, 9)}{rng.randint(0, 99_999_999):08d}",
                   relation="户主" if i % 3 == 0 else "子女",
                   code=code, room=f"{i // 3 + 1:02d}01") for i in range(12)]
    path = write_xlsx(tmp_path / "ledger.xlsx", rows)
    env = {"GRIDGOV_DATABASE_URL": fresh_db_url, "GRIDGOV_DATA_DIR": str(tmp_path),
           "GRIDGOV_PERSONAL_KEY_FILE": str(tmp_path / "personal.key")}
    missing = CliRunner().invoke(main, ["import", "residents", str(path)], env=env)
    assert missing.exit_code == 2 and "personal-data key" in missing.output
    assert CliRunner().invoke(main, ["keys", "init"], env=env).exit_code == 0
    done = CliRunner().invoke(main, ["import", "residents", str(path)], env=env)
    assert done.exit_code == 0, done.output
    assert "12 new" in done.output
    again = CliRunner().invoke(main, ["import", "residents", str(path)], env=env)
    assert "0 new, 0 updated, 0 moved, 0 moved out" in again.output
    dump = tmp_path / "gridgov.backup"
    backup.backup_database(fresh_db_url, dump)
    plain = subprocess.run([str(postgres_bindir() / "pg_restore"), "-f", "-", str(dump)], capture_output=True,
                           check=True).stdout
    assert "林0".encode() in plain  # the dump is readable: it is the personal numbers that are not there
    for row in rows:
        assert row[1].encode() not in plain and row[2].encode() not in plain
    rotated = CliRunner().invoke(main, ["keys", "rotate"], env=env)
    assert rotated.exit_code == 0 and "re-sealed 12" in rotated.output
    keys = PersonalKeys.load(tmp_path / "personal.key")
    with sessions() as s:
        assert persons.find_by_id_number(s, keys, rows[5][1])[0]["name"] == "林5"


def test_cli_exit_status_says_whether_anything_was_written(fresh_db_url, tmp_path):
    """0: every row written; 1: rejected rows skipped, the rest written; 2: refused, nothing written. A dry run
    exits as the import would."""
    sessions = make_sessionmaker(make_engine(fresh_db_url, pool_size=1))
    with sessions.begin() as s:
        west, _ = factories.two_grids(s)
        code = factories.building(s, west, 10, 10, number=1).code
    good = write_xlsx(tmp_path / "good.xlsx", family(code, "101", 1))
    mixed = write_xlsx(tmp_path / "mixed.xlsx", family(code, "201", 10) + [
        person("坏校验", bad_check(20), code=code, room="301")])
    env = {"GRIDGOV_DATABASE_URL": fresh_db_url, "GRIDGOV_DATA_DIR": str(tmp_path)}
    assert CliRunner().invoke(main, ["keys", "init"], env=env).exit_code == 0

    def status(*args: str) -> int:
        return CliRunner().invoke(main, ["import", "residents", *args], env=env).exit_code

    def stored() -> int:
        with sessions() as s:
            return s.execute(text("SELECT count(*) FROM persons")).scalar_one()

    assert (status(str(good), "--dry-run"), stored()) == (0, 0)
    assert (status(str(good)), stored()) == (0, 3)
    assert (status(str(mixed), "--dry-run"), status(str(mixed)), stored()) == (2, 2, 3)
    assert (status(str(mixed), "--dry-run", "--skip-errors"), stored()) == (1, 3)
    assert (status(str(mixed), "--skip-errors"), stored()) == (1, 6)
    assert status(str(tmp_path / "absent.xlsx")) == 2  # click: no such file


def test_api_nearby_masks_and_reveal_opens_a_ledger_household_for_its_grid_worker(app_env, tmp_path):
    from spatial.store import users
    from tests.factories import users_with_grids

    client, sessions = app_env
    keys = PersonalKeys.create(tmp_path / "personal.key")  # where the app's settings look (data_dir)
    with sessions.begin() as s:
        west, east = factories.two_grids(s)
        code = factories.building(s, west, 10, 10, number=1).code
        made = users_with_grids(s, (("worker1", "grid_worker", None, west.code),
                                    ("worker2", "grid_worker", None, east.code)),
                                users.hash_password("a long enough password"))
        headers = {n: {"Authorization": "Bearer " + users.issue_token(s, u, 3600)[0]} for n, u in made.items()}
        path = write_xlsx(tmp_path / "l.xlsx", family(code, "101", 1, 2))
        assert import_residents(s, path, keys).written
        household, lon, lat = s.execute(text(
            "SELECT h.id, ST_X(ST_Centroid(b.footprint)), ST_Y(ST_Centroid(b.footprint)) FROM households h "
            "JOIN buildings b ON b.id = h.building_id")).one()
    near = client.get("/api/field/nearby", headers=headers["worker1"], params={"lon": lon, "lat": lat}).json()
    [shown] = [h for h in near["households"] if h["id"] == household]
    assert shown["head_id_number"] == id_number(1)[:6] + "********" + id_number(1)[-4:]
    assert shown["head_phone"] == "138****0001" and shown["residents"] == 2
    url = f"/api/field/households/{household}/reveal"
    assert client.post(url, headers=headers["worker2"], json={"reason": "核查需要"}).status_code == 404
    revealed = client.post(url, headers=headers["worker1"], json={"reason": "电话联系户主"})
    assert revealed.status_code == 200, revealed.text
    assert revealed.json()["head_id_number"] == id_number(1) and revealed.json()["head_phone"] == "13800000001"
    with sessions() as s:
        rows = s.execute(text("SELECT username, purpose FROM audit_log WHERE action = 'reveal' "
                              "AND :h = ANY(household_ids)"), {"h": household}).all()
    assert [tuple(r) for r in rows] == [("worker1", "电话联系户主")]


def test_area_decides_who_a_partial_ledger_marks_moved_out(town, tmp_path):
    db, b1, b2 = town["db"], town["b1"], town["b2"]
    run(db, write_xlsx(tmp_path / "all.xlsx", family(b1.code, "101", 1, 2) + family(b2.code, "201", 10, 2)))
    only_b1 = write_xlsx(tmp_path / "b1.xlsx", family(b1.code, "101", 1, 2))
    assert run(db, only_b1).counts.moved_out == 0  # area 'buildings': 幸福楼 is not in this ledger
    assert count(db, "SELECT count(*) FROM persons WHERE moved_out IS NULL") == 4
    assert run(db, only_b1, area="communities").counts.moved_out == 2
    assert count(db, "SELECT residents FROM households WHERE building_id = :b", b=b2.id) == 0
    with pytest.raises(InvalidInput):
        run(db, only_b1, area="city")


def test_an_unchanged_row_is_known_by_its_fingerprint_and_any_other_is_checked_again(town, tmp_path, monkeypatch):
    db, b1, east = town["db"], town["b1"], town["east"]
    checked = []
    row = residents._row
    monkeypatch.setattr(residents, "_row", lambda cells, line, ctx: (checked.append(line), row(cells, line, ctx))[1])
    rows = family(b1.code, "101", 1, 3)
    path = write_xlsx(tmp_path / "v1.xlsx", rows)
    assert run(db, path).counts.inserted == 3 and checked == [2, 3, 4]
    assert count(db, "SELECT count(DISTINCT ledger_row) FROM persons WHERE length(ledger_row) = 16") == 3
    version = count(db, "SELECT version FROM households WHERE room = '101'")

    checked.clear()
    again = run(db, path)
    assert checked == [] and again.counts.unchanged == 3 and again.counts.changed == 0
    assert count(db, "SELECT version FROM households WHERE room = '101'") == version

    # another writer changes a person: that row is checked again, and the ledger wins
    db.execute(text("UPDATE persons SET name = '张改' WHERE name = '张1011'"))
    assert count(db, "SELECT count(*) FROM persons WHERE ledger_row IS NULL") == 1
    version = count(db, "SELECT version FROM households WHERE room = '101'")
    checked.clear()
    back = run(db, path)
    assert checked == [3] and back.counts.updated == 1
    assert count(db, "SELECT count(*) FROM persons WHERE name = '张1011' AND ledger_row IS NOT NULL") == 1
    assert count(db, "SELECT version FROM households WHERE room = '101'") == version + 1

    # a row listed twice is caught although both copies are unchanged
    checked.clear()
    twice = run(db, write_xlsx(tmp_path / "twice.xlsx", rows + rows[:1]))
    assert checked == [] and [(e.line, e.column) for e in twice.rejected] == [(5, "身份证号"), (5, "与户主关系")]
    assert "listed twice" in twice.rejected[0].reason

    # outside the importer's area, or after the building was renumbered, the rows are checked in full
    checked.clear()
    elsewhere = run(db, path, scope=persons.Scope(grid_ids=frozenset({east.id})))
    assert checked == [2, 3, 4] and {e.column for e in elsewhere.rejected} == {"楼栋编码"}
    db.execute(text("UPDATE buildings SET number = 7 WHERE id = :b"), {"b": b1.id})
    checked.clear()
    renumbered = run(db, path)
    assert checked == [2, 3, 4] and "unknown building code" in renumbered.rejected[0].reason
    assert count(db, "SELECT count(*) FROM persons WHERE moved_out IS NULL") == 3  # nothing written
