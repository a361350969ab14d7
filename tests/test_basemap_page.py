"""Basemaps on the pages, in headless Chromium, with a local tile server (tests/tile_server.py): off by default, the
switcher fetches tiles through gridgov's proxy and draws them, and under a GCJ-02 basemap a grid vertex is drawn
where the basemap has the GCJ-02 position of it (compared with the Python transform and the tiles' own place on the
page, not with the page's own arithmetic); clicks come back in WGS 84. The JavaScript GCJ-02 port is compared with
spatial.geometry.crs."""

from __future__ import annotations

import math

import httpx
import pytest
from sqlalchemy import text

from spatial.geometry.crs import gcj02_to_wgs84, wgs84_to_gcj02
from spatial.store import users
from tests import factories
from tests.conftest import login, open_logged_in
from tests.tile_server import colour, tile_server

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"
ZOOM = 17


@pytest.fixture
def site(app_env, live_server):
    client, _ = app_env
    base, sessions = live_server
    with sessions.begin() as s:
        west, east = factories.two_grids(s)
        factories.building(s, west, 20, 20, number=1, households=150, residents=380)
        users.create_user(s, "planner1", PASSWORD, "planner", scope_code=factories.SUBDISTRICT)
        users.create_user(s, "admin1", PASSWORD, "admin")
        vertex = s.execute(text("SELECT ST_X(p.geom), ST_Y(p.geom) FROM grids, ST_DumpPoints(boundary) p "
                                "WHERE code = :c ORDER BY p.path LIMIT 1"), {"c": west.code}).one()
    with tile_server() as tiles:
        client.app.state.settings = client.app.state.settings.model_copy(update={"basemaps": [
            {"name": "wgs", "name_zh": "本地影像", "name_en": "Local imagery", "datum": "wgs84",
             "url_template": tiles.url + "/wgs/{z}/{x}/{y}.png", "attribution": "© 本地影像 <b>x</b>"}]})
        with httpx.Client(base_url=base) as http:  # one more, as an admin adds it, in the database
            added = http.post("/api/basemaps", headers=login(http, "admin1", PASSWORD), json={
                "name": "gcj", "name_zh": "本地街图", "name_en": "Local streets", "datum": "gcj02",
                "url_template": tiles.url + "/gcj/{z}/{x}/{y}.png", "attribution": "© 本地街图", "max_zoom": 18})
            assert added.status_code == 201, added.text
        yield base, tiles, tuple(vertex)


def _choose(page, tiles, name: str) -> None:
    before = len(tiles.requests)
    page.select_option("#basemap", name)
    page.wait_for_function(f"() => document.body.dataset.basemap === '{name}' && "
                           "document.querySelectorAll('canvas.leaflet-tile').length > 0 && "
                           "[...document.querySelectorAll('canvas.leaflet-tile')].every("
                           "(t) => t.classList.contains('leaflet-tile-loaded'))", timeout=15_000)
    assert any(p.startswith(f"/{name}/") for p in tiles.requests[before:]), tiles.requests[before:]


def _mercator_px(lon: float, lat: float, z: int) -> tuple[float, float]:
    """Global Web Mercator pixel (256 px tiles, y down) of (lon, lat) at zoom z."""
    n = 256 * 2 ** z
    return (lon + 180) / 360 * n, (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n


def _where(page, lon: float, lat: float, layer: str) -> dict:
    """Where the page draws (lon, lat) (through its map's CRS, and the nearest vertex of ``layer``'s drawn rings),
    and where each loaded tile is on the map container."""
    return page.evaluate("""([lon, lat, layer]) => {
      const box = map.getContainer().getBoundingClientRect();
      const tiles = [...document.querySelectorAll("canvas.leaflet-tile-loaded")].map((t) => {
        const r = t.getBoundingClientRect();
        const [z, x, y] = t.dataset.tile.split("/").map(Number);
        return { z, x, y, left: r.left - box.left, top: r.top - box.top, scale: r.width / 256,
                 rgb: [...t.getContext("2d").getImageData(128, 128, 1, 1).data.slice(0, 3)] };
      });
      const p = map.latLngToContainerPoint([lat, lon]), lp = map.latLngToLayerPoint([lat, lon]);
      let nearest = Infinity;
      eval(layer).eachLayer((l) => (l._rings || []).flat().forEach((q) => { nearest = Math.min(nearest, q.distanceTo(lp)); }));
      const back = map.containerPointToLatLng(p), exact = map.unproject(map.project([lat, lon]));
      return { point: [p.x, p.y], nearest, tiles, back: [back.lng, back.lat], exact: [exact.lng, exact.lat] };
    }""", [lon, lat, layer])


def _on_basemap(where: dict, lon: float, lat: float) -> tuple[float, float]:
    """The container position of (lon, lat) in the basemap's own pixels, from the loaded tiles' places (they
    must agree with each other)."""
    spots = []
    for t in where["tiles"]:
        gx, gy = _mercator_px(lon, lat, t["z"])
        spots.append((t["left"] + (gx - 256 * t["x"]) * t["scale"], t["top"] + (gy - 256 * t["y"]) * t["scale"]))
    xs, ys = [s[0] for s in spots], [s[1] for s in spots]
    assert max(xs) - min(xs) < 1 and max(ys) - min(ys) < 1, spots
    return xs[0], ys[0]


def _check_drawn_at(where: dict, expected: tuple[float, float], lon: float, lat: float) -> None:
    assert math.dist(where["point"], expected) < 2, (where["point"], expected)
    assert where["nearest"] < 1.5  # the grid's drawn ring has a vertex there
    assert where["exact"] == pytest.approx([lon, lat], abs=1e-9)  # the map's CRS round trip (unshifting included)
    assert where["back"] == pytest.approx([lon, lat], abs=1e-5)  # a click there is the vertex, to a pixel (~1 m)


def test_map_page_basemaps_off_by_default_then_drawn_and_shifted_for_gcj02(site, browser):
    base, tiles, (lon, lat) = site
    context, page, errors = open_logged_in(browser, base + "/", "planner1", PASSWORD,
                                           viewport={"width": 1200, "height": 800}, locale="zh-CN")
    assert page.locator("#basemap").input_value() == ""
    assert page.locator("#basemap option").all_inner_texts() == ["无底图", "本地影像", "本地街图 (GCJ-02)"]
    assert tiles.requests == [] and page.locator("canvas.leaflet-tile").count() == 0
    page.evaluate(f"map.setView(map.getCenter(), {ZOOM}, {{ animate: false }})")

    _choose(page, tiles, "wgs")
    assert tiles.tiles() and {z for z, _, _ in tiles.tiles()} == {ZOOM}
    where = _where(page, lon, lat, "layers.grids")
    assert len(where["tiles"]) >= 4
    assert all(tuple(t["rgb"]) == colour(t["z"], t["x"], t["y"]) for t in where["tiles"])  # each tile drawn
    _check_drawn_at(where, _on_basemap(where, lon, lat), lon, lat)
    attribution = page.locator(".leaflet-control-attribution").inner_text()
    assert "© 本地影像 <b>x</b>" in attribution  # the admin's text, shown as text

    _choose(page, tiles, "gcj")
    where = _where(page, lon, lat, "layers.grids")
    assert all(tuple(t["rgb"]) == colour(t["z"], t["x"], t["y"]) for t in where["tiles"])
    glon, glat = (float(v) for v in wgs84_to_gcj02(lon, lat))
    shifted = _on_basemap(where, glon, glat)
    _check_drawn_at(where, shifted, lon, lat)
    assert math.dist(_on_basemap(where, lon, lat), shifted) > 100  # ~600 m in Shenzhen: the shift is real
    assert page.locator("body").get_attribute("data-buildings") == "1"  # data still loads in view (bbox in WGS 84)

    page.click("#lang")  # rebuilt in English, the choice kept
    page.wait_for_function("() => document.querySelector('#basemap option[value=gcj]').textContent.startsWith('Local')")
    assert page.locator("#basemap").input_value() == "gcj" and "Basemap" in page.locator(".basemap-control").inner_text()

    page.select_option("#basemap", "")  # off again: unshifted, no tiles
    page.wait_for_function("() => document.body.dataset.basemap === ''")
    assert page.locator("canvas.leaflet-tile").count() == 0
    assert page.evaluate(f"map.options.crs === L.CRS.EPSG3857")
    context.close()
    assert not errors, errors


POINTS = [(114.072, 22.565), (116.391, 39.907), (87.6, 43.8), (121.47, 31.23), (109.5, 18.25),
          (114.158, 22.282), (113.55, 22.19), (121.5, 25.04), (139.7, 35.7), (-0.1, 51.5)]


def test_the_javascript_gcj02_port_agrees_with_python(site, browser):
    base, _, _ = site
    context, page, errors = open_logged_in(browser, base + "/", "planner1", PASSWORD)
    js = page.evaluate("""(points) => points.map(([lon, lat]) => {
        const g = gcj02.fromWgs84(lon, lat); return [g, gcj02.toWgs84(g[0], g[1])]; })""", POINTS)
    for (lon, lat), (forward, back) in zip(POINTS, js, strict=True):
        expected = [float(v) for v in wgs84_to_gcj02(lon, lat)]
        assert forward == pytest.approx(expected, abs=1e-10), (lon, lat)
        assert back == pytest.approx([float(v) for v in gcj02_to_wgs84(*expected)], abs=1e-9)
        assert back == pytest.approx([lon, lat], abs=1e-8)
    unshifted = [p for p, (f, _) in zip(POINTS, js, strict=True) if f == list(p)]
    assert unshifted == POINTS[5:]  # Hong Kong, Macau, Taipei, Tokyo, London: not in the mainland
    context.close()
    assert not errors, errors


def test_planner_and_inspector_have_the_switcher_and_the_planner_draws_shifted(site, browser):
    base, tiles, (lon, lat) = site
    context, page, errors = open_logged_in(browser, base + "/planner", "planner1", PASSWORD,
                                           viewport={"width": 1200, "height": 800})
    assert page.locator("#basemap").input_value() == ""
    page.evaluate(f"map.setView(map.getCenter(), {ZOOM}, {{ animate: false }})")
    _choose(page, tiles, "gcj")
    where = _where(page, lon, lat, "gridsLayer")
    glon, glat = (float(v) for v in wgs84_to_gcj02(lon, lat))
    _check_drawn_at(where, _on_basemap(where, glon, glat), lon, lat)
    # what an edit sends is the layer's own WGS 84 geometry (6 decimals, Leaflet's toGeoJSON), not shifted
    sent = page.evaluate("gridsLayer.toGeoJSON().features.flatMap((f) => f.geometry.coordinates.flat(3))")
    assert any(abs(sent[i] - lon) < 1e-6 and abs(sent[i + 1] - lat) < 1e-6 for i in range(0, len(sent), 2))

    context.close()
    assert not errors, errors

    context, inspector, errors = open_logged_in(browser, base + "/inspector", "planner1", PASSWORD)
    assert inspector.locator("#basemap").input_value() == ""
    _choose(inspector, tiles, "wgs")
    context.close()
    assert not errors, errors
