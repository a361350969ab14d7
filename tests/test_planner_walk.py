"""A first-time planner's walk through the planner page on the demo neighbourhood, in headless Chromium at
1440×900 (issue 19): a split line drawn with both clicks inside the grid, every vertex handle of grid 14
grabbed, the panel reset on a community switch and after a save, the site icon, and a console without warnings."""

from __future__ import annotations

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from shapely.geometry import LineString, Point, Polygon

from fixtures.demo import SUBDISTRICT, load_demo
from spatial.store import users
from tests.conftest import open_logged_in

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"
VILLAGE, SHAWEI = "440304096001", "440304096002"
GRID14 = VILLAGE + "14"
TO_SCREEN = """lls => { const r = planner.map.getContainer().getBoundingClientRect();
  return lls.map(([lat, lng]) => { const p = planner.map.latLngToContainerPoint([lat, lng]); return [r.left + p.x, r.top + p.y]; }); }"""
RING = """code => { let ring = planner.layerOf(code).getLatLngs();  // the outer ring, of a Polygon or MultiPolygon
  while (!(ring[0] instanceof L.LatLng)) ring = ring[0];
  return ring.map(p => [p.lat, p.lng]); }"""
HANDLES = "() => [...document.querySelectorAll('.marker-icon:not(.marker-icon-middle)')].length"
# a point of handle i (vertex handles in document order) where a click reaches that handle, or null
VISIBLE_POINT = """([i, middle]) => {
  const el = [...document.querySelectorAll(middle ? '.marker-icon-middle' : '.marker-icon:not(.marker-icon-middle)')][i];
  const r = el.getBoundingClientRect(), c = [r.left + r.width / 2, r.top + r.height / 2];
  for (let d = 0; d <= r.width / 2; d += 1)
    for (const [dx, dy] of [[0, 0], [d, 0], [-d, 0], [0, d], [0, -d], [d, d], [-d, -d], [d, -d], [-d, d]])
      if (document.elementFromPoint(c[0] + dx, c[1] + dy) === el) return [c[0] + dx, c[1] + dy];
  return null; }"""

NEAREST_MIDDLE = """([x, y]) => { const all = [...document.querySelectorAll('.marker-icon-middle')].map(el => {
  const r = el.getBoundingClientRect(); return Math.hypot(r.left + r.width / 2 - x, r.top + r.height / 2 - y); });
  return all.indexOf(Math.min(...all)); }"""


@pytest.fixture
def demo_site(live_server):
    base, sessions = live_server
    with sessions.begin() as s:
        load_demo(s)
        users.create_user(s, "planner1", PASSWORD, "planner", scope_code=SUBDISTRICT[0])
    return base


@pytest.fixture
def walk(demo_site, browser, tmp_path):
    """(base URL, page, problems): the planner page logged in at 1440×900; every console warning or error, uncaught
    exception and failed request is a problem, and the test fails on any."""
    context, page, errors = open_logged_in(browser, demo_site + "/planner", "planner1", PASSWORD,
                                           viewport={"width": 1440, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("warning", "error") else None)
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.reload()  # watched from the first request on (favicon included)
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)
    yield demo_site, page, problems
    page.screenshot(path=str(tmp_path / "last.png"))
    context.close()
    assert not problems and not errors, (problems, errors)


def choose_grid(page, code: str) -> None:
    page.select_option("#grid", code)
    page.wait_for_function(f"() => document.getElementById('grid-info').textContent.includes('{code}')")
    page.wait_for_function("() => document.getElementById('history').children.length > 0")


def screen_ring(page, code: str) -> list[tuple[float, float]]:
    return [tuple(p) for p in page.evaluate(TO_SCREEN, page.evaluate(RING, code))]


def count(page, name: str) -> int:
    return int(page.locator("body").get_attribute(f"data-{name}") or 0)


def drag(page, start, end) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=6)
    page.mouse.up()


def outward(shape: Polygon, p, v, n) -> tuple[float, float]:
    """The unit vector at vertex v (between p and n) pointing out of ``shape``, between the two edges' normals."""
    def normal(a, b):
        dx, dy = b[1] - a[1], -(b[0] - a[0])
        length = (dx * dx + dy * dy) ** 0.5 or 1
        return dx / length, dy / length
    (ax, ay), (bx, by) = normal(p, v), normal(v, n)
    dx, dy = ax + bx, ay + by
    length = (dx * dx + dy * dy) ** 0.5 or 1
    dx, dy = dx / length, dy / length
    return (-dx, -dy) if shape.contains(Point(v[0] + 3 * dx, v[1] + 3 * dy)) else (dx, dy)


def drag_and_wait(page, start, end) -> bool:
    """Drag from start to end; whether the page then handled a boundary edit (within 10 s)."""
    edits = count(page, "edits")
    drag(page, start, end)
    try:
        page.wait_for_function(f"() => Number(document.body.dataset.edits || 0) > {edits}", timeout=10_000)
    except PlaywrightTimeout:
        return False
    return True


def test_a_split_line_drawn_inside_the_grid_previews_two_parts_and_saves(walk, tmp_path):
    _, page, _ = walk
    choose_grid(page, GRID14)
    assert page.locator("#new-name").input_value() == "上沙村第19网格"  # the next free number (18 grids)
    page.click("#split")
    ring = Polygon(screen_ring(page, GRID14))                         # zoomed to the grid by now
    middle = ring.centroid.y
    across = ring.intersection(LineString([(ring.bounds[0] - 5, middle), (ring.bounds[2] + 5, middle)]))
    piece = max(getattr(across, "geoms", [across]), key=lambda g: g.length)
    (x0, _), (x1, _) = sorted(piece.coords)
    a, b = (x0 + 0.2 * (x1 - x0), middle), (x1 - 0.2 * (x1 - x0), middle)
    assert ring.contains(Point(a)) and ring.contains(Point(b)) and x1 - x0 > 200
    page.mouse.move(*a)
    assert "拆分线的起点" in page.locator(".leaflet-tooltip").inner_text()  # Geoman's hint, in Chinese
    page.mouse.click(*a)                                              # inside the grid: a point, not a selection
    page.mouse.click(*b)
    page.wait_for_timeout(600)
    before = count(page, "preview")
    page.mouse.click(*b)                                              # the last point again ends the line
    page.wait_for_function(f"() => Number(document.body.dataset.preview || 0) > {before}")
    assert page.locator("#grid").input_value() == GRID14
    assert page.locator("body").get_attribute("data-proposed") == "2"
    assert page.locator("#report table tr").count() == 1 + 2         # the workload of grid 14 and the new one
    page.screenshot(path=str(tmp_path / "split-preview.png"))

    page.fill("#reason", "沿中间巷道拆分")
    page.click("#save")
    page.wait_for_function("() => document.getElementById('message').textContent.includes('已保存')")
    assert page.locator("#reason").input_value() == ""                # the reason of the saved change is gone
    assert page.locator("#grid option").count() == 1 + 19
    assert page.locator("#new-name").input_value() == "上沙村第20网格"
    before = count(page, "preview")
    page.evaluate("() => planner.boundaryEdit(planner.layerOf(planner.state.grid).toGeoJSON().geometry)")
    page.wait_for_function(f"() => Number(document.body.dataset.preview || 0) > {before}")
    assert "已保存" not in page.locator("#message").inner_text()     # the old message went with the new preview


def test_every_vertex_handle_of_grid_14_can_be_dragged(walk, tmp_path):
    _, page, _ = walk
    choose_grid(page, GRID14)
    raw = len(page.evaluate(RING, GRID14))
    page.click("#edit")
    page.wait_for_selector(".marker-icon")
    handles = page.evaluate(HANDLES)
    assert raw == 41 and 35 <= handles < raw          # near-duplicate vertices (< 0.5 m) are one handle now
    assert len(page.evaluate(RING, GRID14)) == handles
    page.screenshot(path=str(tmp_path / "handles.png"))

    responded = []
    for i in range(handles):
        ring_before = page.evaluate(RING, GRID14)
        screen = screen_ring(page, GRID14)
        shape = Polygon(screen)
        point = page.evaluate(VISIBLE_POINT, [i, False])
        assert point is not None, f"handle {i} is covered"
        # 30 px (more than the 15 px snapping distance) outward, along the bisector of the two edges' normals
        dx, dy = outward(shape, screen[i - 1], screen[i], screen[(i + 1) % handles])
        target = (point[0] + 30 * dx, point[1] + 30 * dy)
        if not drag_and_wait(page, point, target):
            continue
        ring_after = page.evaluate(RING, GRID14)
        moved = [j for j, (p, q) in enumerate(zip(ring_before, ring_after)) if p != q]
        if len(ring_after) == len(ring_before) and moved == [i]:
            responded.append(i)
            assert page.locator("#message").inner_text() != "未改变边界"
            now = page.evaluate(TO_SCREEN, [ring_after[i]])[0]
            assert drag_and_wait(page, now, point)     # back where it was (snaps onto the neighbour's vertex)
    assert responded == list(range(handles)), f"{len(responded)} of {handles} handles respond"

    # an "insert vertex" handle dropped onto its vertex adds nothing: the page says so and previews nothing
    page.click("#cancel")
    page.click("#edit")
    page.wait_for_selector(".marker-icon")
    screen = screen_ring(page, GRID14)
    longest = max(range(handles), key=lambda j: Point(screen[j]).distance(Point(screen[(j + 1) % handles])))
    (ax, ay), (bx, by) = screen[longest], screen[(longest + 1) % handles]
    middle = page.evaluate(NEAREST_MIDDLE, [(ax + bx) / 2, (ay + by) / 2])
    start = page.evaluate(VISIBLE_POINT, [middle, True])
    previews = count(page, "preview")
    assert drag_and_wait(page, start, screen[longest])
    assert page.locator("#message").inner_text() == "未改变边界"
    assert count(page, "preview") == previews and page.locator("#save").is_disabled()
    assert len(page.evaluate(RING, GRID14)) == handles + 1           # Geoman added a vertex, on the edge


def test_switching_community_clears_the_panel_and_the_page_speaks_the_chosen_language(walk, tmp_path):
    base, page, _ = walk
    choose_grid(page, GRID14)
    page.fill("#reason", "试一试")
    page.click("#split")
    page.wait_for_function("() => planner.map.pm.globalDrawModeEnabled()")
    page.select_option("#community", SHAWEI)
    page.wait_for_function("() => document.getElementById('grid').options.length === 1 + 5")
    assert page.locator("#grid").input_value() == ""
    for selector in ("#grid-info", "#history", "#report", "#message"):
        assert page.locator(selector).inner_text() == "", selector
    assert page.locator("#reason").input_value() == "" and page.locator("#new-name").input_value() == ""
    assert not page.evaluate("() => planner.map.pm.globalDrawModeEnabled()")
    assert page.evaluate("() => planner.state.grid") is None
    page.screenshot(path=str(tmp_path / "switched.png"))

    choose_grid(page, SHAWEI + "05")                    # 沙尾小学专属网格: no number in the name
    assert page.locator("#new-name").input_value() == "沙尾小学专属网格（拆分）"
    page.click("#lang")
    page.wait_for_function("() => document.documentElement.lang === 'en'")
    page.wait_for_function("() => document.getElementById('grid-info').textContent.includes('Version')")
    page.click("#split")
    box = page.locator("#map").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert "Click to place first vertex" in page.locator(".leaflet-tooltip").inner_text()

    icon = page.request.get(base + "/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in icon.text()
    linked = page.evaluate("() => document.querySelector('link[rel=icon]').href")
    assert page.request.get(linked).status == 200


def test_a_balanced_plan_beside_the_grids_adopted_with_a_reason_then_micro_grids(walk, tmp_path):
    _, page, problems = walk
    page.select_option("#community", SHAWEI)
    page.wait_for_function("() => document.getElementById('grid').options.length === 1 + 5")
    assert page.locator("#adopt").is_disabled()
    page.fill("#plan-low", "150")   # 沙尾's five grids hold too few households for 300–500 (the figures say so)
    page.fill("#plan-high", "450")
    page.click("#propose")
    page.wait_for_function("() => Number(document.body.dataset.proposals || 0) > 0", timeout=60_000)
    figures = {row.get_attribute("data-figure"): row.locator("td").all_inner_texts()[1:]
               for row in page.locator("#plan-figures tr[data-figure]").all()}
    now, planned = zip(*figures.values())
    assert figures["grid_count"][0] == "5"
    proposed = int(figures["grid_count"][1])
    assert page.locator(".plan-label").count() == proposed > 0     # drawn beside the current grids
    assert int(figures["in_range"][1].rstrip("%")) >= int(figures["in_range"][0].rstrip("%"))
    page.screenshot(path=str(tmp_path / "proposal.png"))

    page.click("#adopt")
    assert page.locator("#auto-message").inner_text() == "请填写采用原因"
    page.fill("#adopt-reason", "按150–450户均衡沙尾社区")
    page.click("#adopt")
    page.wait_for_function("() => document.getElementById('auto-message').textContent.startsWith('已采用')")
    assert page.locator("#auto-message").inner_text().startswith(f"已采用：{proposed} 新网格 · 5 撤销网格")
    page.wait_for_function(f"() => document.getElementById('grid').options.length === 1 + {proposed}")
    page.wait_for_function("() => !document.querySelector('.plan-label')")   # labels fade out (200 ms)
    assert page.locator("#adopt").is_disabled()

    first = page.locator("#grid option").nth(1).get_attribute("value")
    choose_grid(page, first)
    page.click("#regenerate")
    page.wait_for_function("() => document.getElementById('micro-report').textContent.includes('微网格')")
    made = int(page.locator("#micro-report").inner_text().split()[1])
    page.wait_for_function(f"() => document.querySelectorAll('.micro-label').length === {made}")
    assert made > 0 and page.locator("#show-micro").is_checked()
    page.uncheck("#show-micro")
    page.wait_for_function("() => !document.querySelector('.micro-label')")
    page.screenshot(path=str(tmp_path / "micro-grids.png"))
    assert not problems, problems
