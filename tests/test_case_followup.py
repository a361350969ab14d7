"""Cases after and above the handling (issue 15): photos checked by content and stripped of metadata, duplicates
merged keeping both reports, satisfaction once after closure, supervision and the escalation list for the level
above, departments that see only what was dispatched to them."""

from __future__ import annotations

import io
import struct
import zlib
from datetime import date, datetime, timedelta

import pytest
from PIL import Image
from sqlalchemy import text

from spatial.access import Principal
from spatial.errors import Conflict, Forbidden, InvalidInput, NotFound, OutOfScope, PayloadTooLarge
from spatial.io import photos as photo_io
from spatial.store import case_figures, case_followup, case_photos, cases
from spatial.worktime import LOCAL
from tests import factories
from tests.test_cases_store import point

TUESDAY_10 = datetime(2026, 12, 1, 10, 0, tzinfo=LOCAL)


def jpeg_with_gps(width: int = 64, height: int = 48) -> bytes:
    """A JPEG whose EXIF holds a GPS position (IFD 0x8825) and a camera make."""
    image = Image.new("RGB", (width, height), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (22.0, 33.0, 54.0), 3: "E", 4: (114.0, 4.0, 19.0)}
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def png(width: int = 40, height: int = 30) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (0, 120, 0)).save(out, "PNG")
    return out.getvalue()


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A few hundred bytes declaring a 10-gigapixel PNG (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
            + chunk(b"IEND", b""))


@pytest.fixture
def town(db):
    west, east = factories.two_grids(db)
    people = {
        "admin": Principal(1, "admin1", "admin"),
        "centre": Principal(2, "centre1", "planner", scope_code=factories.SUBDISTRICT),
        "community": Principal(7, "community1", "planner", scope_code=factories.COMMUNITY),
        "inspector": Principal(8, "inspector1", "inspector", scope_code=factories.SUBDISTRICT),
        "worker": Principal(3, "worker1", "grid_worker", grid_ids=frozenset({west.id})),
        "verifier": Principal(5, "worker3", "grid_worker", grid_ids=frozenset({west.id})),
        "viewer": Principal(9, "viewer1", "viewer", scope_code=factories.SUBDISTRICT),
        "dept": Principal(10, "cgj1", "department", scope_code=factories.DISTRICT, department="城市管理和综合执法局"),
        "other_dept": Principal(11, "police1", "department", department="公安派出所"),
    }
    return db, west, east, people


def report(db, x=50, y=50, category="environment.garbage", now=TUESDAY_10, who=None):
    lon, lat = point(x, y)
    return cases.report_case(db, who, category=category, lon=lon, lat=lat, description="楼下垃圾堆了三天",
                             reporter_phone="13812345678", now=now)


def close(db, people, case_id, assignee="worker1", now=TUESDAY_10):
    steps = [("centre", "register", {}), ("centre", "dispatch", {"assignee": assignee}),
             ("handler", "accept", {}), ("handler", "report_back", {}), ("verifier", "verify", {}),
             ("centre", "close", {})]
    handler = people["dept"] if assignee == people["dept"].department else people["worker"]
    for i, (who, action, kw) in enumerate(steps):
        actor = handler if who == "handler" else people[who]
        view = cases.act(db, actor, case_id, action, now=now + timedelta(minutes=i + 1), **kw)
    return view


# -- photos -----------------------------------------------------------------------------------------------------


def test_a_photo_is_checked_by_content_and_stored_without_its_gps():
    original = jpeg_with_gps()
    assert b"PhoneMaker" in original and Image.open(io.BytesIO(original)).getexif().get(0x8825)
    clean = photo_io.clean_photo(original)
    stored = Image.open(io.BytesIO(clean.data))
    assert (stored.format, stored.size) == ("JPEG", (64, 48))
    assert not stored.getexif() and b"PhoneMaker" not in clean.data and b"Exif" not in clean.data
    assert photo_io.clean_photo(png()).source_format == "PNG"
    webp = io.BytesIO()
    Image.new("RGB", (32, 32)).save(webp, "WEBP")
    assert photo_io.clean_photo(webp.getvalue()).source_format == "WEBP"
    big = io.BytesIO()
    Image.new("RGB", (4000, 3000)).save(big, "JPEG")
    assert max(photo_io.clean_photo(big.getvalue()).width, photo_io.clean_photo(big.getvalue()).height) == 2048


@pytest.mark.parametrize("data, error, code", [
    (b"GIF89a" + b"\0" * 100, InvalidInput, "case.photo_type"),
    (b"<html><script>alert(1)</script></html>", InvalidInput, "case.photo_type"),
    (png_bomb(), InvalidInput, "case.photo_bomb"),
    (png_bomb(7000, 7000), InvalidInput, "case.photo_pixels"),
    (png(8, 8), InvalidInput, "case.photo_pixels"),
    (jpeg_with_gps()[:200], InvalidInput, "case.photo_broken"),
    (b"\xff\xd8\xff" + b"\0" * (photo_io.MAX_BYTES + 1), PayloadTooLarge, "case.photo_size"),
])
def test_what_is_no_photo_or_too_big_is_refused(data, error, code):
    with pytest.raises(error) as refused:
        photo_io.clean_photo(data)
    assert refused.value.code == code


def test_the_resident_adds_photos_with_the_report_and_staff_reads_are_audited(town):
    db, west, east, people = town
    case = report(db)
    photo = case_photos.add_by_code(db, case.tracking_code, jpeg_with_gps(), now=TUESDAY_10 + timedelta(minutes=1))
    assert (photo.stage, photo.by, photo.public) == ("reported", "resident", False)
    shown = case_photos.get_photo(db, people["centre"], case.id, photo.id)
    assert shown.data.startswith(b"\xff\xd8") and b"PhoneMaker" not in shown.data
    assert db.execute(text("SELECT count(*) FROM audit_log WHERE action = 'case_photo.read' "
                           "AND username = 'centre1'")).scalar() == 1
    assert case_photos.photo_by_code(db, case.tracking_code, photo.id).info.id == photo.id
    with pytest.raises(OutOfScope):
        case_photos.get_photo(db, Principal(20, "far", "planner", scope_code="440305001000"), case.id, photo.id)
    with pytest.raises(Conflict, match="within an hour"):
        case_photos.add_by_code(db, case.tracking_code, png(), now=TUESDAY_10 + timedelta(hours=2))
    cases.act(db, people["centre"], case.id, "register", now=TUESDAY_10 + timedelta(minutes=2))
    with pytest.raises(Conflict):
        case_photos.add_by_code(db, case.tracking_code, png(), now=TUESDAY_10 + timedelta(minutes=3))


def test_staff_photos_are_published_capped_and_not_by_viewers(town):
    db, west, east, people = town
    case = report(db)
    with pytest.raises(Forbidden):
        case_photos.add_photo(db, people["viewer"], case.id, png())
    staff = case_photos.add_photo(db, people["worker"], case.id, png())
    assert staff.public and staff.by == "worker1"
    [listed] = cases.public_cases(db, tracking_codes=[case.tracking_code])
    assert case_photos.public_media(db, listed.media_key).info.id == staff.id
    for _ in range(case_photos.MAX_PER_CASE - 1):
        case_photos.add_photo(db, people["worker"], case.id, png())
    with pytest.raises(Conflict) as refused:
        case_photos.add_photo(db, people["worker"], case.id, png())
    assert refused.value.code == "case.photo_count"
    with pytest.raises(InvalidInput):  # a bad photo writes nothing
        case_photos.add_photo(db, people["admin"], report(db, x=150).id, b"not an image")
    assert db.execute(text("SELECT count(*) FROM case_photos")).scalar() == case_photos.MAX_PER_CASE


# -- duplicates and merging ----------------------------------------------------------------------------------------


def test_a_duplicate_is_offered_in_metres_and_the_resident_merges_keeping_both_reports(town):
    db, west, east, people = town
    first = report(db)
    second = report(db, x=90)  # 40 m east
    assert [d["id"] for d in second.duplicates] == [first.id]
    assert 39.5 < second.duplicates[0]["distance_m"] < 40.5 and "tracking_code" not in second.duplicates[0]
    assert report(db, x=150).duplicates == []  # 60 m and 100 m from the others
    assert [d["id"] for d in cases.duplicates_near(db, "environment.garbage", *point(70, 50), within_m=25)] == [
        first.id, second.id]  # 20 m each; ties by id
    with pytest.raises(InvalidInput):
        cases.merge_reported(db, second.tracking_code, 999_999)
    tracked = cases.merge_reported(db, second.tracking_code, first.id, now=TUESDAY_10 + timedelta(minutes=1))
    assert tracked["merged"] and tracked["state"] == "reported"
    merged = cases.get_case(db, people["centre"], second.id)
    assert (merged.state, merged.duplicate_of, merged.deadline) == ("merged", first.id, None)
    assert cases.track(db, first.tracking_code)["merged_reports"] == 1
    assert [h["action"] for h in cases.history(db, people["centre"], first.id)] == ["report", "merged_in"]
    close(db, people, first.id, now=TUESDAY_10 + timedelta(minutes=5))
    followed = cases.track(db, second.tracking_code)
    assert followed["state"] == "closed" and followed["may_rate"] and followed["merged"]
    with pytest.raises(Conflict):
        cases.merge_reported(db, second.tracking_code, first.id)


def test_the_dispatcher_merges_a_registered_duplicate_with_an_action(town):
    db, west, east, people = town
    first, second = report(db), report(db, x=60)
    assert [d["id"] for d in cases.case_duplicates(db, people["centre"], second.id)] == [first.id]
    cases.act(db, people["centre"], second.id, "register")
    with pytest.raises(Forbidden):
        cases.act(db, people["worker"], second.id, "merge", into=first.id)
    with pytest.raises(InvalidInput):
        cases.act(db, people["centre"], second.id, "merge", into=report(db, category="market").id)
    view = cases.act(db, people["centre"], second.id, "merge", into=first.id)
    assert (view.state, view.duplicate_of, view.allowed) == ("merged", first.id, [])
    total, _ = cases.list_cases(db, people["centre"], open_only=True)
    assert total == 2  # first and the market case


# -- satisfaction ------------------------------------------------------------------------------------------------


def test_the_reporter_rates_once_after_closure_and_staff_record_a_call_back(town):
    db, west, east, people = town
    case = report(db)
    with pytest.raises(Conflict) as early:
        case_followup.rate_by_code(db, case.tracking_code, 5)
    assert early.value.code == "case.rating_early"
    close(db, people, case.id)
    with pytest.raises(InvalidInput):
        case_followup.rate_by_code(db, case.tracking_code, 6)
    rated = case_followup.rate_by_code(db, case.tracking_code, 4, "处理及时")
    assert rated["rating"] == 4 and not rated["may_rate"]
    with pytest.raises(Conflict) as again:
        case_followup.rate_by_code(db, case.tracking_code, 1)
    assert again.value.code == "case.rated"
    with pytest.raises(Conflict):
        case_followup.record_callback(db, people["worker"], case.id, 3)
    other = report(db, x=150)
    close(db, people, other.id)
    with pytest.raises(Forbidden):
        case_followup.record_callback(db, people["viewer"], other.id, 3)
    assert case_followup.record_callback(db, people["worker"], other.id, 2, "电话回访").satisfaction == 2
    row = db.execute(text("SELECT satisfaction_channel, satisfaction_by FROM cases WHERE id = :id"),
                     {"id": other.id}).one()
    assert tuple(row) == ("phone", "worker1")
    assert [h["action"] for h in cases.history(db, people["centre"], other.id)][-1] == "rate"
    # both ratings in the figures, whichever way they came: (4 + 2) / 2, per grid and per worker
    for by, key in (("grid", west.code), ("worker", "worker1"), ("month", "2026-12")):
        [row] = case_figures.case_figures(db, people["centre"], by=by, date_from=date(2026, 12, 1),
                                          date_to=date(2026, 12, 31)).rows
        assert (row.key, row.closed, row.rated, row.avg_satisfaction) == (key, 2, 2, 3.0), by


# -- supervision and escalation -----------------------------------------------------------------------------------


def test_the_level_above_lists_late_and_flagged_cases_with_holder_and_lateness(town):
    db, west, east, people = town
    late = report(db, now=TUESDAY_10 - timedelta(days=7))  # register limit 30 working minutes, long past
    cases.act(db, people["centre"], late.id, "register", now=TUESDAY_10 - timedelta(days=7) + timedelta(minutes=5))
    cases.act(db, people["centre"], late.id, "dispatch", assignee="worker1",
              now=TUESDAY_10 - timedelta(days=7) + timedelta(minutes=6))
    on_time = report(db, x=250, category="market", now=TUESDAY_10)
    with pytest.raises(Forbidden):
        case_followup.supervise(db, people["worker"], on_time.id, "今天处理")
    flagged = case_followup.supervise(db, people["inspector"], on_time.id, "周五前处理完毕",
                                      now=TUESDAY_10 + timedelta(minutes=1))
    assert flagged.supervised["by"] == "inspector1"
    now = TUESDAY_10 + timedelta(minutes=5)
    above = case_followup.escalations(db, people["centre"], now=now)
    assert (above.level, above.unit_level, above.total) == ("subdistrict", "community", 2)
    assert above.units == [{"unit": factories.COMMUNITY, "name": "测试社区", "cases": 2, "late": 1, "flagged": 1}]
    first, second = above.cases
    assert (first.id, first.holder, first.unit) == (late.id, "worker1", factories.COMMUNITY)
    # handle: 2 working days from Tuesday 24 Nov 10:06 → Thursday 26 Nov 10:06; late since then: Thu 10:06–18:00
    # minus lunch, Fri, Mon full days and Tue 1 Dec 09:00–10:05 → checked against the calendar itself
    calendar = cases.work_calendar(db)
    assert first.late_min == round(-calendar.remaining(now, first.deadline), 1) and first.late_min > 0
    assert (second.id, second.late_min, second.supervised["note"]) == (on_time.id, None, "周五前处理完毕")
    # one at a time: the late one, then (a page past every late case) the flagged one on time, then nothing
    pages = [[c.id for c in case_followup.escalations(db, people["centre"], now=now, limit=1, offset=k).cases]
             for k in range(3)]
    assert pages == [[late.id], [on_time.id], []]
    grids = case_followup.escalations(db, people["community"], now=now)
    assert grids.unit_level == "grid" and [u["unit"] for u in grids.units] == [west.code, east.code]
    assert cases.list_cases(db, people["worker"], supervised=True)[0] == 0  # east's case is not the west worker's
    assert cases.list_cases(db, people["centre"], supervised=True)[0] == 1


# -- departments ---------------------------------------------------------------------------------------------------


def test_a_department_sees_and_handles_only_what_was_dispatched_to_it(town):
    db, west, east, people = town
    mine, theirs = report(db), report(db, x=150, category="public_order")
    with pytest.raises(OutOfScope):
        cases.get_case(db, people["dept"], mine.id)
    cases.act(db, people["centre"], mine.id, "register")
    cases.act(db, people["centre"], mine.id, "dispatch", assignee="城市管理和综合执法局")
    cases.act(db, people["centre"], theirs.id, "register")
    cases.act(db, people["centre"], theirs.id, "dispatch", assignee="公安派出所")
    total, listed = cases.list_cases(db, people["dept"])
    assert (total, [c.id for c in listed]) == (1, [mine.id])
    assert cases.list_cases(db, people["dept"], mine=True)[0] == 1
    assert cases.act(db, people["dept"], mine.id, "accept").state == "handling"
    with pytest.raises(OutOfScope):
        cases.act(db, people["dept"], theirs.id, "accept")
    with pytest.raises(Forbidden):
        cases.act(db, people["other_dept"], theirs.id, "register")
    cases.act(db, people["dept"], mine.id, "return", note="不属于本部门")
    assert cases.get_case(db, people["dept"], mine.id).state == "registered"  # still seen: it was dispatched here
    with pytest.raises(NotFound):
        cases.track(db, "ZZZZZZZZZZ")
