"""Open311 GeoReport v2 over cases: a real Open311 client (``georeport`` from PyPI) against a real uvicorn lists the
services, reads requests back in JSON and XML; posting follows the specification by hand (the client has no
call for it). Residents post without an account under the public rate limit; the public view carries no personal
data; errors are Open311's, in the format asked for, with the right status."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from xml.etree import ElementTree

import httpx
import pytest
import requests
from georeport import GeoReport
from sqlalchemy import text

from spatial.access import Principal
from spatial.store import cases as store
from tests import factories

ADMIN = Principal(user_id=0, username="admin", role="admin")
PHONE = "13812345678"


def position(x_m: float, y_m: float) -> tuple[float, float]:
    """(lon, lat) WGS 84 of a point ``x_m``, ``y_m`` metres into the test community (west grid below 200 m)."""
    lon, lat = factories.metres_box(x_m, y_m, x_m + 0.1, y_m + 0.1).centroid.coords[0]
    return lon, lat


def post(base: str, fmt: str = "json", **form) -> requests.Response:
    lon, lat = position(50, 50)
    data = {"service_code": "environment.garbage", "lat": lat, "long": lon, "description": "垃圾满了，没人清理",
            "first_name": "三", "last_name": "张", "phone": PHONE, **form}
    return requests.post(f"{base}/open311/v2/requests.{fmt}", data={k: v for k, v in data.items() if v is not None},
                         timeout=10)


@pytest.fixture
def town(live_server):
    base, sessions = live_server
    with sessions.begin() as s:
        factories.two_grids(s)
    return base, sessions


def test_an_open311_client_lists_services_posts_and_reads_back(town):
    base, sessions = town
    client = GeoReport(f"{base}/open311/v2")
    services = {s["service_code"]: s for s in client.get_service_list()}
    garbage = services["environment.garbage"]
    assert garbage["service_name"] == "垃圾堆放" and garbage["group"] == "市容环境"
    assert garbage["metadata"] is False and garbage["type"] == "realtime" and "Dumped rubbish" in garbage["keywords"]
    assert services["environment"]["group"] == "市容环境" and "epidemic" in services
    assert client.get_service_definition("environment.garbage") == {"service_code": "environment.garbage",
                                                                    "attributes": []}

    created = post(base, api_key="anything", email="zhang@example.cn")
    assert created.status_code == 201, created.text
    assert created.headers["content-type"] == "application/json"
    [answer] = created.json()
    code = answer["service_request_id"]
    assert answer["account_id"] is None and code in answer["service_notice"] and len(code) == 10

    request = client.get_service_request(code)
    assert request["service_request_id"] == code and request["status"] == "open"
    assert request["status_notes"] == "已上报" and request["agency_responsible"] == "城市管理和综合执法局"
    assert request["service_code"] == "environment.garbage" and request["service_name"] == "垃圾堆放"
    assert request["address"].endswith("西网格") and request["description"] is None
    lon, lat = position(50, 50)
    assert abs(request["lat"] - lat) < 1e-6 and abs(request["long"] - lon) < 1e-6
    requested = datetime.fromisoformat(request["requested_datetime"])
    expected = datetime.fromisoformat(request["expected_datetime"])
    assert request["requested_datetime"].endswith("+08:00") and request["expected_datetime"].endswith("+08:00")
    assert expected > requested and abs(requested - datetime.now(timezone.utc)) < timedelta(minutes=5)
    listed = client.get_service_requests()
    assert [r["service_request_id"] for r in listed] == [code]
    assert client.get_service_requests(status="closed") == []
    assert client.get_service_requests(service_code="epidemic,market") == []
    with sessions() as s:  # the staff see what the resident sent, masked; the public view never shows it
        row = s.execute(text("SELECT reporter_name, reporter_phone, reporter_kind FROM cases")).one()
    assert tuple(row) == ("张三", PHONE, "resident")
    for body in (requests.get(f"{base}/open311/v2/requests.json", timeout=10).text,
                 requests.get(f"{base}/open311/v2/requests/{code}.xml", timeout=10).text):
        assert "张三" not in body and "5678" not in body and "没人清理" not in body

    with sessions.begin() as s:  # the command centre refuses it: Open311 "closed", no deadline any more
        case_id = s.execute(text("SELECT id FROM cases WHERE tracking_code = :c"), {"c": code}).scalar_one()
        store.act(s, ADMIN, case_id, "reject", note="不属于本辖区")
    [closed] = client.get_service_requests(status="closed")
    assert closed["status"] == "closed" and closed["status_notes"] == "不予立案"
    assert closed["expected_datetime"] is None and closed["updated_datetime"] >= closed["requested_datetime"]
    assert client.get_service_requests(status="open") == []

    xml_client = GeoReport(f"{base}/open311/v2", output_format="xml")
    xml_services = xml_client.get_service_list()
    assert {s["service_code"] for s in xml_services} == set(services)
    assert xml_client.get_service_request(code)["status"] == "closed"


def test_xml_answers_parse_and_follow_the_specification(town):
    base, _ = town
    created = post(base, "xml")
    assert created.status_code == 201 and created.headers["content-type"] == "application/xml"
    root = ElementTree.fromstring(created.content)
    assert root.tag == "service_requests" and root.find("request/account_id").text is None
    code = root.find("request/service_request_id").text
    with httpx.Client(base_url=f"{base}/open311/v2", timeout=10) as http:
        services = ElementTree.fromstring(http.get("/services.xml").content)
        assert services.tag == "services"
        garbage = next(s for s in services.findall("service") if s.find("service_code").text == "environment.garbage")
        assert garbage.find("metadata").text == "false" and garbage.find("group").text == "市容环境"
        [request] = ElementTree.fromstring(http.get("/requests.xml").content).findall("request")
        assert request.find("service_request_id").text == code and request.find("status").text == "open"
        assert request.find("requested_datetime").text.endswith("+08:00") and request.find("media_url").text is None
        definition = ElementTree.fromstring(http.get("/services/environment.garbage.xml").content)
        assert definition.tag == "service_definition" and definition.find("attributes") is not None
        discovery = ElementTree.fromstring(http.get("/discovery.xml").content)
        assert discovery.find("endpoints/endpoint/url").text.endswith("/open311/v2")
        assert [f.text for f in discovery.findall("endpoints/endpoint/formats/format")] == ["application/json",
                                                                                         "application/xml"]
        missing = http.get("/requests/ZZZZZZZZZZ.xml")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/xml"
        error = ElementTree.fromstring(missing.content)
        assert error.tag == "errors" and error.find("error/code").text == "404"
        assert "no request has this id" in error.find("error/description").text


@pytest.mark.parametrize("form, status, says", [
    ({"lat": None, "long": None, "address_string": "福田区沙头街道1号"}, 400, "address_string alone cannot be placed"),
    ({"lat": None}, 400, "a location is required"),
    ({"service_code": "aliens"}, 404, "no service has the code 'aliens'"),
    ({"lat": 0.0, "long": 0.0}, 400, "not in any community"),
    ({"lat": 100.0}, 400, "lat"),
    ({"long": "east"}, 400, "long"),
    ({"phone": "555-0100"}, 400, "phone"),
    ({"service_code": None}, 400, "service_code"),
    ({"media_url": "javascript:alert(1)"}, 400, "media_url"),
    ({"lat": ""}, 400, "a location is required"),  # an empty form field is a missing one
])
def test_bad_requests_are_open311_errors_and_write_nothing(app_env, form, status, says):
    client, sessions = app_env
    with sessions.begin() as s:
        factories.two_grids(s)
    lon, lat = position(50, 50)
    data = {"service_code": "environment.garbage", "lat": lat, "long": lon, "description": "x", **form}
    response = client.post("/open311/v2/requests.json", data={k: v for k, v in data.items() if v is not None})
    assert response.status_code == status, response.text
    [error] = response.json()
    assert error["code"] == status and says in error["description"], error
    with sessions() as s:
        assert s.execute(text("SELECT count(*) FROM cases")).scalar() == 0


def test_reads_refuse_bad_input_as_open311_errors(app_env):
    client, _ = app_env
    for url, status in (("/open311/v2/requests.csv", 400), ("/open311/v2/requests.json?status=pending", 400),
                        ("/open311/v2/requests.json?start_date=yesterday", 400),
                        ("/open311/v2/requests.json?start_date=0.5", 400),  # not seconds since 1970
                        ("/open311/v2/requests.json?start_date=2026-12-01T00:00:00", 400),  # no time zone
                        ("/open311/v2/requests.json?start_date=2026-12-01T00:00:00Z&end_date=2026-11-01T00:00:00Z",
                         400), ("/open311/v2/services/aliens.json", 404), ("/open311/v2/requests/NOPE.json", 404)):
        response = client.get(url)
        assert response.status_code == status, (url, response.text)
        [error] = response.json()
        assert error["code"] == status and error["description"], url
    far = client.get("/open311/v2/requests.json", params={"start_date": "0001-01-01T00:00:00+14:00",
                                                          "end_date": "9999-12-31T23:59:59-14:00"})
    assert far.status_code == 200 and far.json() == []


def test_posting_shares_the_public_rate_limit(app_env):
    client, sessions = app_env
    with sessions.begin() as s:
        factories.two_grids(s)
    lon, lat = position(60, 60)
    page = {"category": "environment.garbage", "x": lon, "y": lat, "description": "又来了", "reporter_phone": PHONE}
    form = {"service_code": "environment.garbage", "lat": lat, "long": lon, "phone": "+86 " + PHONE}
    answers = [client.post("/api/public/cases", json=page).status_code for _ in range(3)]
    answers += [client.post("/open311/v2/requests.json", data=form).status_code for _ in range(3)]
    assert answers == [201] * 5 + [429]
    refused = client.post("/open311/v2/requests.xml", data=form)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert ElementTree.fromstring(refused.content).find("error/code").text == "429"
    with sessions() as s:
        assert s.execute(text("SELECT count(DISTINCT reporter_phone), count(*) FROM cases")).one() == (1, 5)


def test_the_list_defaults_to_90_days_and_ids_override_the_filters(app_env):
    client, sessions = app_env
    lon, lat = position(50, 50)
    with sessions.begin() as s:
        factories.two_grids(s)
        old = store.report_case(s, None, category="market", lon=lon, lat=lat, description="旧",
                                now=datetime.now(timezone.utc) - timedelta(days=100))
        new = store.report_case(s, None, category="environment.garbage", lon=lon, lat=lat, description="新")
    listed = client.get("/open311/v2/requests.json").json()
    assert [r["service_request_id"] for r in listed] == [new.tracking_code]
    both = client.get("/open311/v2/requests.json", params={
        "service_request_id": f"{old.tracking_code},{new.tracking_code.lower()}", "service_code": "epidemic"}).json()
    assert {r["service_request_id"] for r in both} == {old.tracking_code, new.tracking_code}
    ranged = client.get("/open311/v2/requests.json", params={
        "start_date": (datetime.now(timezone.utc) - timedelta(days=120)).isoformat(timespec="seconds"),
        "end_date": datetime.now(timezone.utc).isoformat()}).json()
    assert len(ranged) == 2 and ranged[0]["service_request_id"] == new.tracking_code
    assert client.get("/open311/v2/requests.json", params={"start_date": "2099-01-01T00:00:00+08:00"}).json() == []
