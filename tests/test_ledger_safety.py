"""Residents' ledgers are vetted before a reader parses them (spatial.io.safe_files.vet_ledger): an .xlsx must be an
Office Open XML workbook with no links to other files, data connections or macros, bounded once unpacked (counted
while inflating, not as the zip declares); a .csv plain UTF-8 or GB18030 text. Through the upload endpoint a refused
ledger is a 422 naming the file, audited, nothing written."""

from __future__ import annotations

import zipfile

import openpyxl
import pytest

from spatial.errors import InvalidInput, PayloadTooLarge
from spatial.io.safe_files import vet_ledger


def workbook(path, extra: dict[str, bytes] | None = None, replace: dict[str, bytes] | None = None):
    """An openpyxl workbook at ``path``, with members added or replaced."""
    book = openpyxl.Workbook()
    book.active.append(["姓名", "身份证号", "楼栋编码", "房号"])
    plain = path.with_suffix(".plain.xlsx")
    book.save(plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            out.writestr(item.filename, (replace or {}).get(item.filename, src.read(item.filename)))
        for name, data in (extra or {}).items():
            out.writestr(name, data)
    return path


def test_a_plain_workbook_and_text_files_pass(tmp_path):
    assert vet_ledger(workbook(tmp_path / "l.xlsx"), max_unpacked_bytes=10_000_000) == ("xlsx", None)
    (tmp_path / "u.csv").write_text("姓名,房号\n张三,101\n", encoding="utf-8-sig")
    (tmp_path / "g.csv").write_bytes("姓名,房号\n张三,101\n".encode("gb18030"))
    assert vet_ledger(tmp_path / "u.csv") == ("csv", "utf-8-sig")
    assert vet_ledger(tmp_path / "g.csv") == ("csv", "gb18030")


@pytest.mark.parametrize("case, why", [
    ("text", "no zip archive"),
    ("no_types", "no Office Open XML document"),
    ("document", "no Excel workbook"),
    ("external_link", "links to other files"),
    ("external_rel", "links to other files"),
    ("macros", "macros"),
    ("path", "outside the workbook"),
])
def test_workbooks_that_are_not_plain_are_refused(tmp_path, case, why):
    path = tmp_path / "l.xlsx"
    if case == "text":
        path.write_text("姓名,房号\n", encoding="utf-8")
    elif case == "no_types":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("xl/workbook.xml", "<workbook/>")
    elif case == "document":
        types = b'<Types><Override ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.' \
                b'document.main+xml" PartName="/word/document.xml"/></Types>'
        workbook(path, replace={"[Content_Types].xml": types})
    elif case == "external_link":
        workbook(path, extra={"xl/externalLinks/externalLink1.xml": b"<externalLink/>"})
    elif case == "external_rel":
        rels = b'<Relationships><Relationship Id="rId9" Type="http://schemas.openxmlformats.org/officeDocument/2006/' \
               b'relationships/externalLink" Target="file:///etc/passwd" TargetMode="External"/></Relationships>'
        workbook(path, replace={"xl/_rels/workbook.xml.rels": rels})
    elif case == "macros":
        workbook(path, extra={"xl/vbaProject.bin": b"\x00" * 10})
    else:
        workbook(path, extra={"../evil.xml": b"<x/>"})
    with pytest.raises(InvalidInput, match=why):
        vet_ledger(path, name="台账.xlsx")


def test_a_workbook_unpacking_beyond_the_limit_is_413(tmp_path):
    path = workbook(tmp_path / "l.xlsx", extra={"xl/media/zeros.bin": b"\x00" * 2_000_000})
    assert path.stat().st_size < 100_000
    with pytest.raises(PayloadTooLarge):
        vet_ledger(path, max_unpacked_bytes=1_000_000)
    assert vet_ledger(path, max_unpacked_bytes=None) == ("xlsx", None)  # the command line: no cap


@pytest.mark.parametrize("content, why", [
    ("姓名,房号\n".encode("utf-16"), "NUL bytes|neither UTF-8"),
    (b"PK\x03\x04rest", "zip archive"),
    (b"\xff\xfe\xfa\xfb\x81\x30", "neither UTF-8 nor GB18030"),
])
def test_csv_that_is_not_text_is_refused(tmp_path, content, why):
    (tmp_path / "l.csv").write_bytes(content)
    with pytest.raises(InvalidInput, match=why):
        vet_ledger(tmp_path / "l.csv")


def test_an_upload_refused_by_content_is_a_422_audited_and_writes_nothing(app_env, tmp_path):
    from sqlalchemy import text

    from spatial.personal_keys import PersonalKeys
    from spatial.store import users
    from tests.conftest import login

    client, sessions = app_env
    with sessions.begin() as s:
        users.create_user(s, "admin1", "correct horse battery", "admin")
    PersonalKeys.load_or_create(client.app.state.settings.personal_key_path, create=True)
    headers = login(client, "admin1", "correct horse battery")
    path = workbook(tmp_path / "l.xlsx", extra={"xl/externalLinks/externalLink1.xml": b"<externalLink/>"})
    answer = client.post("/api/import/residents", headers=headers, files={"file": ("台账.xlsx", path.read_bytes())},
                         data={"reason": "测试", "dry_run": "true"})
    assert answer.status_code == 422 and "台账.xlsx" in answer.json()["detail"], answer.text
    other = client.post("/api/import/residents", headers=headers, files={"file": ("台账.xls", b"\xd0\xcf\x11\xe0")},
                        data={"reason": "测试", "dry_run": "true"})
    assert other.status_code == 422 and ".xlsx, .csv" in other.json()["detail"]
    with sessions() as s:
        refused = s.execute(text("SELECT count(*) FROM audit_log WHERE action = 'import' AND object_type = 'residents' "
                                 "AND result LIKE 'refused 422%'")).scalar_one()
        assert refused == 2 and s.execute(text("SELECT count(*) FROM persons")).scalar_one() == 0
