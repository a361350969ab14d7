"""Basemaps through the API: the template rules as clear 422s, admins only for changes, settings basemaps read-only,
keys never leaving the server, and the tile proxy against a local tile server (tests/tile_server.py)."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from spatial.settings import Settings
from spatial import basemaps
from spatial.errors import InvalidInput
from spatial.store import users
from tests.conftest import login
from tests.tile_server import colour, png, tile_server

PASSWORD = "correct horse battery"
SECRET = "k3y-that-must-stay-on-the-server"


def body(**overrides):
    return {"name": "local", "name_zh": "本地底图", "name_en": "Local basemap", "datum": "wgs84",
            "url_template": "https://tiles.example.cn/{z}/{x}/{y}.png", "attribution": "© 测试", **overrides}


@pytest.fixture
def env(app_env):
    client, sessions = app_env
    with sessions.begin() as s:
        users.create_user(s, "admin1", PASSWORD, "admin")
        users.create_user(s, "viewer1", PASSWORD, "viewer")
    with tile_server() as tiles:
        settings = client.app.state.settings.model_copy(update={
            "basemaps": {"office": {"name_zh": "办公网底图", "name_en": "Office basemap", "datum": "wgs84",
                                    "url_template": tiles.url + "/office/{z}/{x}/{y}.png?tk={key}",
                                    "attribution": "© 本地", "key": "office", "max_zoom": 19}},
            "basemap_keys": {"office": SecretStr(SECRET)}})
        client.app.state.settings = settings
        yield client, sessions, tiles, login(client, "admin1", PASSWORD), login(client, "viewer1", PASSWORD)


@pytest.mark.parametrize(("overrides", "says"), [
    ({"url_template": "file:///var/tiles/{z}/{x}/{y}.png"}, "must start with https:// or http:// (not file:)"),
    ({"url_template": "ftp://tiles.example.cn/{z}/{x}/{y}.png"}, "not ftp:"),
    ({"url_template": "https://tiles.example.cn/{z}/{x}.png"}, "missing: {y}"),
    ({"url_template": "https://tiles.example.cn/tile?x={x}&y={y}"}, "missing: {z}"),
    ({"url_template": "https://tiles.example.cn/{z}/{x}/{y}.png?ak={ak}"}, "unknown: {ak}"),
    ({"url_template": "https://t{s}.example.cn/{z}/{x}/{y}.png"}, "give the subdomains"),
    ({"subdomains": ["1", "2"]}, "no {s} to put them in"),
    ({"url_template": "https://user:pw@tiles.example.cn/{z}/{x}/{y}.png"}, "user name or password"),
    ({"url_template": "https://tiles.example.cn/{z}/{x}/{y}.png?tk={key}"}, "name the secret in key"),
    ({"url_template": "https://tiles.example.cn/{z}/{x}/{y}.png?tk={key}", "key": "amap"},
     "no secret named 'amap' is configured"),
    ({"name": "天地图"}, "name must be 1 to 40 lower-case letters"),
    ({"url_template": "https://tiles.example.cn/{z}/{x}/{y}.png#top"}, "#fragment"),
])
def test_bad_basemaps_are_refused_with_a_message_saying_what_to_change(env, overrides, says):
    client, sessions, _, admin, _ = env
    response = client.post("/api/basemaps", headers=admin, json=body(**overrides))
    assert response.status_code == 422, response.text
    assert says in response.json()["detail"]
    with sessions.begin() as s:
        assert s.scalar(text("SELECT count(*) FROM basemaps")) == 0


def test_pydantic_bounds_are_422_too(env):
    client, _, _, admin, _ = env
    assert client.post("/api/basemaps", headers=admin, json=body(datum="bd09")).status_code == 422
    assert client.post("/api/basemaps", headers=admin, json=body(max_zoom=30)).status_code == 422
    assert client.post("/api/basemaps", headers=admin, json=body(url_template="https://a/" + "x" * 1000
                                                                   + "/{z}/{x}/{y}")).status_code == 422


def test_admins_add_change_and_delete_others_only_list(env):
    client, sessions, _, admin, viewer = env
    assert client.post("/api/basemaps", headers=viewer, json=body()).status_code == 403
    amap = body(name="amap", datum="gcj02", subdomains=["1", "2", "3", "4"],
                url_template="https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8"
                             "&x={x}&y={y}&z={z}", name_zh="高德地图", name_en="Amap", attribution="© 高德")
    created = client.post("/api/basemaps", headers=admin, json=amap)
    assert created.status_code == 201, created.text
    assert created.json()["tiles"] == "/api/basemaps/amap/tiles/{z}/{x}/{y}"
    assert client.post("/api/basemaps", headers=admin, json=amap).status_code == 409
    assert client.post("/api/basemaps", headers=admin, json=body(name="office")).status_code == 409

    listed = client.get("/api/basemaps", headers=viewer)
    assert listed.status_code == 200
    names = [(b["name"], b["source"], b["datum"]) for b in listed.json()["basemaps"]]
    assert names == [("office", "settings", "wgs84"), ("amap", "database", "gcj02")]
    assert "url_template" not in listed.json()["basemaps"][1]  # the upstream URL is the admins' business
    assert listed.json()["mainland"]["type"] == "MultiPolygon"  # a gcj02 basemap: the pages need the polygon
    assert SECRET not in client.get("/api/basemaps", headers=admin).text
    office = client.get("/api/basemaps/office", headers=admin).json()
    assert office["key"] == "office" and office["key_configured"] is True and "{key}" in office["url_template"]

    changed = client.put("/api/basemaps/amap", headers=admin, json={**amap, "max_zoom": 17, "name": "ignored"})
    assert changed.status_code == 200 and changed.json()["max_zoom"] == 17
    assert client.put("/api/basemaps/amap", headers=viewer, json=amap).status_code == 403
    assert client.put("/api/basemaps/office", headers=admin, json=body()).status_code == 409
    assert client.delete("/api/basemaps/office", headers=admin).status_code == 409
    assert client.delete("/api/basemaps/amap", headers=viewer).status_code == 403
    assert client.delete("/api/basemaps/amap", headers=admin).status_code == 204
    assert client.delete("/api/basemaps/amap", headers=admin).status_code == 404
    assert "mainland" not in client.get("/api/basemaps", headers=viewer).json()
    with sessions.begin() as s:
        actions = s.scalars(text("SELECT action FROM audit_log WHERE object_type = 'basemap' ORDER BY id")).all()
    assert actions == ["basemap_add", "basemap_change", "basemap_delete"]


def test_the_tile_proxy_fills_the_key_on_the_server(env):
    client, _, tiles, _, viewer = env
    assert client.get("/api/basemaps/office/tiles/16/53421/28510").status_code == 401
    response = client.get("/api/basemaps/office/tiles/16/53421/28510", headers=viewer)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.content == png(colour(16, 53421, 28510))
    assert response.headers["cache-control"] == "private, max-age=86400"
    assert tiles.requests == [f"/office/16/53421/28510.png?tk={SECRET}"]
    assert client.get("/api/basemaps/office/tiles/20/0/0", headers=viewer).status_code == 404  # above max_zoom
    assert client.get("/api/basemaps/office/tiles/2/4/0", headers=viewer).status_code == 404  # x beyond 2^z - 1
    assert client.get("/api/basemaps/nothing/tiles/2/1/1", headers=viewer).status_code == 404
    assert len(tiles.requests) == 1


@pytest.mark.parametrize(("path", "status", "says"), [
    ("/fail/{z}/{x}/{y}.png", 502, "answered 500"), ("/text/{z}/{x}/{y}.png", 502, "not a PNG, JPEG or WebP"),
    ("/redirect/{z}/{x}/{y}.png", 502, "answered 302"), ("/nothing/{z}/{x}/{y}", 404, "has no tile here")])
def test_a_failing_tile_server_is_a_clear_gateway_error(env, path, status, says):
    client, _, tiles, admin, viewer = env
    assert client.post("/api/basemaps", headers=admin, json=body(url_template=tiles.url + path)).status_code == 201
    response = client.get("/api/basemaps/local/tiles/3/1/2", headers=viewer)
    assert response.status_code == status, response.text
    assert says in response.json()["detail"] and "127.0.0.1" in response.json()["detail"]


def test_unreachable_tile_server_is_502(env):
    client, _, _, admin, viewer = env
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert client.post("/api/basemaps", headers=admin,
                       json=body(url_template=f"http://127.0.0.1:{port}/{{z}}/{{x}}/{{y}}.png")).status_code == 201
    response = client.get("/api/basemaps/local/tiles/3/1/2", headers=viewer)
    assert response.status_code == 502 and "could not be reached" in response.json()["detail"]


def test_settings_read_basemaps_from_the_environment_and_refuse_bad_ones(monkeypatch, tmp_path):
    from api.app import create_app

    monkeypatch.chdir(tmp_path)
    entries = [{"name": "tdt-img", "name_zh": "天地图影像", "name_en": "Tianditu imagery", "datum": "wgs84",
                "url_template": "https://t{s}.tianditu.gov.cn/img_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
                                "&LAYER=img&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}"
                                "&TILECOL={x}&tk={key}", "subdomains": "01234567", "key": "tianditu",
                "attribution": "© 天地图"}]
    monkeypatch.setenv("GRIDGOV_BASEMAPS", json.dumps(entries))
    monkeypatch.setenv("GRIDGOV_BASEMAP_KEYS", json.dumps({"tianditu": SECRET}))
    settings = Settings()
    (tdt,) = basemaps.from_settings(settings.basemaps, settings.basemap_keys)
    assert tdt.subdomains == tuple("01234567") and tdt.source == "settings"
    url = basemaps.tile_url(tdt, 16, 53421, 28510, settings.basemap_keys["tianditu"].get_secret_value())
    assert url.startswith("https://t3.tianditu.gov.cn/") and url.endswith(f"TILEROW=28510&TILECOL=53421&tk={SECRET}")
    assert SECRET not in repr(settings)

    (tmp_path / "gridgov.toml").write_text('[basemaps.osm]\nname_zh = "开放街图"\nname_en = "OpenStreetMap"\n'
                                           'datum = "wgs84"\nurl_template = "http://127.0.0.1:9/{z}/{x}/{-y}.png"\n'
                                           'attribution = "© OpenStreetMap"\n', encoding="utf-8")
    monkeypatch.delenv("GRIDGOV_BASEMAPS")
    (osm,) = basemaps.from_settings(Settings().basemaps, ())
    assert osm.name == "osm" and basemaps.tile_url(osm, 2, 1, 0).endswith("/2/1/3.png")  # TMS rows from the bottom

    monkeypatch.setenv("GRIDGOV_BASEMAPS", json.dumps([{**entries[0], "key": "amap"}]))
    with pytest.raises(InvalidInput, match="entry 'tdt-img': no secret named 'amap'"):
        create_app(Settings(database_url="postgresql://unused/unused"))
