"""Issue 15 over HTTP: photos uploaded by the resident and by staff (bad ones a clear 4xx, nothing stored),
served to those who see the case and published by Open311 as media_url; a duplicate offered and merged; the
rating once after closure; the escalation list; a department's account."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from spatial.io import photos as photo_io
from spatial.store import users
from tests import factories
from tests.conftest import login
from tests.test_case_followup import jpeg_with_gps, png, png_bomb
from tests.test_cases_api import PASSWORD, phone_position


@pytest.fixture
def town(app_env):
    client, sessions = app_env
    with sessions.begin() as s:
        west, _ = factories.two_grids(s)
        users.create_user(s, "centre1", PASSWORD, "planner", scope_code=factories.SUBDISTRICT)
        users.create_user(s, "worker1", PASSWORD, "grid_worker", grid_codes=(west.code,))
        users.create_user(s, "worker3", PASSWORD, "grid_worker", grid_codes=(west.code,))
        users.create_user(s, "viewer1", PASSWORD, "viewer", scope_code=factories.SUBDISTRICT)
        users.create_user(s, "cgj1", PASSWORD, "department", department="城市管理和综合执法局")
    return client, sessions


def report(client, x=50, y=50, category="environment.garbage", phone="13812345678"):
    gx, gy = phone_position(x, y)
    answer = client.post("/api/public/cases", json={"category": category, "x": gx, "y": gy, "crs": "GCJ-02",
                                                    "description": "垃圾满了", "reporter_phone": phone})
    assert answer.status_code == 201, answer.text
    return answer.json()


def case_id(sessions, code: str) -> int:
    with sessions() as s:
        return s.execute(text("SELECT id FROM cases WHERE tracking_code = :c"), {"c": code}).scalar_one()


def photo_count(sessions) -> int:
    with sessions() as s:
        return s.execute(text("SELECT count(*) FROM case_photos")).scalar_one()


@pytest.mark.parametrize("name, data, status, code", [
    ("evil.jpg", b"<svg onload=alert(1)>", 422, "case.photo_type"),
    ("bomb.png", png_bomb(), 422, "case.photo_bomb"),
    ("cut.jpg", jpeg_with_gps()[:300], 422, "case.photo_broken"),
    ("huge.jpg", b"\xff\xd8\xff" + b"\0" * photo_io.MAX_BYTES, 413, None),
])
def test_bad_photos_are_a_clear_4xx_and_store_nothing(town, name, data, status, code):
    client, sessions = town
    created = report(client)
    answer = client.post(f"/api/public/cases/{created['tracking_code']}/photos",
                         files={"photo": (name, data, "image/jpeg")})
    assert answer.status_code == status, answer.text
    if code:
        assert answer.json()["code"] == code
    assert photo_count(sessions) == 0


def test_photos_of_the_resident_and_of_staff_and_who_sees_them(town):
    client, sessions = town
    created = report(client)
    code = created["tracking_code"]
    added = client.post(f"/api/public/cases/{code}/photos", files={"photo": ("a.jpg", jpeg_with_gps(), "image/jpeg")})
    assert added.status_code == 201 and added.json()["stage"] == "reported" and not added.json()["public"]
    photo_id = added.json()["id"]
    own = client.get(f"/api/public/cases/{code}/photos/{photo_id}")
    assert own.status_code == 200 and own.headers["content-type"] == "image/jpeg" and b"Exif" not in own.content
    assert client.get(f"/api/public/cases/{code}").json()["photos"] == [photo_id]
    centre = login(client, "centre1", PASSWORD)
    worker = login(client, "worker1", PASSWORD)
    viewer = login(client, "viewer1", PASSWORD)
    cid = case_id(sessions, code)
    assert client.get(f"/api/cases/{cid}/photos/{photo_id}", headers=centre).status_code == 200
    assert client.post(f"/api/cases/{cid}/photos", headers=viewer,
                       files={"photo": ("b.png", png(), "image/png")}).status_code == 403
    staff = client.post(f"/api/cases/{cid}/photos", headers=worker, files={"photo": ("b.png", png(), "image/png")})
    assert staff.status_code == 201 and staff.json()["public"]
    assert [p["by"] for p in client.get(f"/api/cases/{cid}/photos", headers=centre).json()] == ["resident", "worker1"]
    [request] = client.get(f"/open311/v2/requests/{code}.json").json()
    assert request["media_url"].startswith("http") and "/api/public/media/" in request["media_url"]
    media = client.get(urlsplit(request["media_url"]).path)
    assert media.status_code == 200 and media.content.startswith(b"\xff\xd8")
    with sessions() as s:
        audited = s.execute(text("SELECT count(*) FROM audit_log WHERE action = 'case_photo.read'")).scalar()
    assert audited == 1  # the centre's look at the resident's photo; the worker's own is not personal


def test_a_duplicate_is_offered_and_joined_and_the_rating_is_once_after_closure(town):
    client, sessions = town
    first = report(client)
    second = report(client, x=80, phone="13900000001")
    [offered] = second["duplicates"]
    assert offered["id"] == case_id(sessions, first["tracking_code"]) and 29 < offered["distance_m"] < 31
    joined = client.post(f"/api/public/cases/{second['tracking_code']}/merge", json={"into": offered["id"]})
    assert joined.status_code == 200 and joined.json()["merged"]
    assert client.post(f"/api/public/cases/{second['tracking_code']}/merge",
                       json={"into": offered["id"]}).status_code == 409
    code = first["tracking_code"]
    assert client.post(f"/api/public/cases/{code}/rating", json={"score": 5}).status_code == 409
    centre = login(client, "centre1", PASSWORD)
    worker = login(client, "worker1", PASSWORD)
    verifier = login(client, "worker3", PASSWORD)
    cid = offered["id"]
    for who, body in ((centre, {"action": "register"}), (centre, {"action": "dispatch", "assignee": "worker1"}),
                      (worker, {"action": "accept"}), (worker, {"action": "report_back"}),
                      (verifier, {"action": "verify"}), (centre, {"action": "close"})):
        assert client.post(f"/api/cases/{cid}/actions", headers=who, json=body).status_code == 200
    assert client.post(f"/api/public/cases/{code}/rating", json={"score": 9}).status_code == 422
    rated = client.post(f"/api/public/cases/{code}/rating", json={"score": 4, "comment": "很快"})
    assert rated.status_code == 200 and rated.json()["rating"] == 4
    again = client.post(f"/api/public/cases/{code}/rating", json={"score": 1})
    assert again.status_code == 409 and again.json()["code"] == "case.rated"
    assert client.post(f"/api/cases/{cid}/callback", headers=worker, json={"score": 3}).status_code == 409
    other = client.post(f"/api/public/cases/{second['tracking_code']}/rating", json={"score": 5})
    assert other.status_code == 200  # the merged report's reporter rates too, once the kept case is closed


def test_escalations_supervision_and_a_departments_view(town):
    client, sessions = town
    centre = login(client, "centre1", PASSWORD)
    worker = login(client, "worker1", PASSWORD)
    dept = login(client, "cgj1", PASSWORD)
    cid = case_id(sessions, report(client)["tracking_code"])
    assert client.get("/api/cases/escalations", headers=worker).status_code == 403
    flagged = client.post(f"/api/cases/{cid}/supervise", headers=centre, json={"note": "今日内立案"})
    assert flagged.status_code == 200 and flagged.json()["supervised"]["note"] == "今日内立案"
    listed = client.get("/api/cases/escalations", headers=centre).json()
    assert listed["unit_level"] == "community" and [c["id"] for c in listed["cases"]] == [cid]
    assert client.get("/api/cases", headers=centre, params={"supervised": "true"}).json()["total"] == 1
    assert client.get(f"/api/cases/{cid}", headers=dept).status_code == 404
    client.post(f"/api/cases/{cid}/actions", headers=centre, json={"action": "register"})
    client.post(f"/api/cases/{cid}/actions", headers=centre, json={"action": "dispatch",
                                                                 "assignee": "城市管理和综合执法局"})
    assert client.get("/api/cases", headers=dept, params={"mine": "true"}).json()["total"] == 1
    assert client.post(f"/api/cases/{cid}/actions", headers=dept, json={"action": "accept"}).status_code == 200
    assert client.get("/api/cases/escalations", headers=dept).status_code == 403
