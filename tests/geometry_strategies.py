"""Hypothesis strategies for hostile GeoJSON: what a careless client, a broken CAD export or an attacker sends.

Every strategy draws a ``(kind, value)`` pair: ``kind`` names the family (for ``hypothesis.event`` and failure
messages), ``value`` is what goes into the request body (usually a GeoJSON geometry dict, sometimes not a dict at
all). Numbers include NaN and ±Infinity, so bodies must be serialised with :func:`dumps` (``allow_nan``), not
httpx's ``json=`` (which refuses them).

Coordinates are (lon, lat) in EPSG:4326 unless the family is about a wrong CRS. :data:`DEMO` is the demo
neighbourhood's box, where valid polygons are drawn so that some writes succeed.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import strategies as st

DEMO = (114.06, 22.555, 114.08, 22.575)
"""(lon min, lat min, lon max, lat max) of the demo neighbourhood (Futian, Shenzhen), EPSG:4326."""

Position = list[float]


def dumps(value: Any) -> bytes:
    """JSON bytes that may hold NaN and Infinity (as Python's json writes them: NaN, Infinity, -Infinity)."""
    return json.dumps(value, allow_nan=True).encode()


def polygon(*rings: list[Position]) -> dict:
    return {"type": "Polygon", "coordinates": [list(r) for r in rings]}


def closed(points: list[Position]) -> list[Position]:
    return [*points, points[0]]


def circle(cx: float, cy: float, r: float, n: int) -> list[Position]:
    """A closed ring of ``n`` + 1 positions on a circle of radius ``r`` degrees (a valid, simple ring)."""
    return closed([[round(cx + r * math.cos(2 * math.pi * i / n), 9), round(cy + r * math.sin(2 * math.pi * i / n), 9)]
                   for i in range(n)])


# -- building blocks ----------------------------------------------------------------------------------------------

def lonlat_in(box: tuple[float, float, float, float] = DEMO) -> st.SearchStrategy[Position]:
    """A position inside ``box``, rounded to 7 decimals (~1 cm)."""
    return st.tuples(st.floats(box[0], box[2]), st.floats(box[1], box[3])).map(
        lambda p: [round(p[0], 7), round(p[1], 7)])


@st.composite
def star_rings(draw, box: tuple[float, float, float, float] = DEMO, min_vertices: int = 3,
               max_vertices: int = 40, max_radius: float = 0.004) -> list[Position]:
    """A simple (valid) closed ring: vertices at strictly increasing angles around a centre in ``box``, at radii
    between 1/3 and 1 of a drawn radius (degrees, at most ``max_radius`` and half the box). Star-shaped, so it
    never crosses itself."""
    cx, cy = draw(lonlat_in(box))
    largest = min(max_radius, (box[2] - box[0]) / 2, (box[3] - box[1]) / 2)
    radius = draw(st.floats(min(0.0003, largest / 2), largest))
    n = draw(st.integers(min_vertices, max_vertices))
    slots = sorted(draw(st.lists(st.integers(0, 4 * n - 1), min_size=n, max_size=n, unique=True)))
    ring = []
    for slot in slots:
        angle = 2 * math.pi * slot / (4 * n)
        r = radius * draw(st.floats(1 / 3, 1))
        ring.append([round(cx + r * math.cos(angle), 9), round(cy + r * math.sin(angle), 9)])
    return closed(ring)


def valid_polygons(box: tuple[float, float, float, float] = DEMO) -> st.SearchStrategy[dict]:
    """Valid GeoJSON Polygons near ``box`` (some with a hole, some as a one-part MultiPolygon or a Feature)."""
    def with_hole(ring: list[Position]) -> dict:
        xs, ys = [p[0] for p in ring], [p[1] for p in ring]
        cx, cy = sum(xs[:-1]) / (len(xs) - 1), sum(ys[:-1]) / (len(ys) - 1)
        r = min(math.dist((cx, cy), p) for p in ring) / 4   # inside the star's kernel: a hole that fits
        return polygon(ring, list(reversed(circle(cx, cy, r, 6))))

    rings = star_rings(box)
    return st.one_of(
        rings.map(polygon),
        rings.map(with_hole),
        rings.map(lambda r: {"type": "MultiPolygon", "coordinates": [[r]]}),
        rings.map(lambda r: {"type": "Feature", "properties": {}, "geometry": polygon(r)}),
    )


# -- the hostile families -----------------------------------------------------------------------------------------

@st.composite
def bowties(draw, box=DEMO) -> dict:
    """A ring whose two edges cross (a figure eight)."""
    (x0, y0), (x1, y1) = draw(lonlat_in(box)), draw(lonlat_in(box))
    return polygon([[x0, y0], [x1, y1], [x1, y0], [x0, y1], [x0, y0]])


@st.composite
def spikes(draw, box=DEMO) -> dict:
    """A valid ring with one vertex pulled far out and straight back (zero width), or nearly back (a thin,
    valid spike that may reach outside the community, the city or China)."""
    ring = draw(star_rings(box, min_vertices=4))
    i = draw(st.integers(1, len(ring) - 2))
    far = [ring[i][0] + draw(st.sampled_from([0.01, 0.5, 30.0, -60.0])), ring[i][1] + draw(st.sampled_from(
        [0.0, 0.01, 1.0, 40.0]))]
    back = ring[i] if draw(st.booleans()) else [ring[i][0] + 1e-7, ring[i][1] + 1e-7]
    return polygon([*ring[:i + 1], far, back, *ring[i + 1:]])


@st.composite
def zero_area(draw, box=DEMO) -> dict:
    """Collinear rings and rings of one repeated point: no area."""
    (x0, y0), (x1, y1) = draw(lonlat_in(box)), draw(lonlat_in(box))
    mid = [(x0 + x1) / 2, (y0 + y1) / 2]
    return draw(st.sampled_from([polygon([[x0, y0], mid, [x1, y1], [x0, y0]]),
                                 polygon([[x0, y0]] * 4),
                                 polygon([[x0, y0], [x1, y1], [x0, y0], [x1, y1], [x0, y0]])]))


@st.composite
def repeated_vertices(draw, box=DEMO) -> dict:
    """A valid ring with some vertices repeated in place (still valid: a repeated point is no crossing)."""
    ring = draw(star_rings(box))
    i = draw(st.integers(0, len(ring) - 2))
    return polygon([*ring[:i + 1], *[ring[i]] * draw(st.integers(1, 5)), *ring[i + 1:]])


@st.composite
def unclosed_rings(draw, box=DEMO) -> dict:
    ring = draw(star_rings(box, min_vertices=4))
    return polygon(ring[:-1])


@st.composite
def short_rings(draw, box=DEMO) -> dict:
    """Rings of 0–3 positions."""
    points = draw(st.lists(lonlat_in(box), max_size=3))
    return polygon(points)


@st.composite
def holes_outside(draw, box=DEMO) -> dict:
    """A hole outside its shell, or crossing it."""
    ring = draw(star_rings(box, max_radius=0.002))
    cx, cy = ring[0]
    offset = draw(st.sampled_from([0.0, 0.001, 0.01]))
    return polygon(ring, circle(cx + offset, cy, 0.0005, 8))


@st.composite
def overlapping_multipolygons(draw, box=DEMO) -> dict:
    """A MultiPolygon whose parts overlap (or are the same ring twice)."""
    first = draw(star_rings(box))
    second = first if draw(st.booleans()) else [[x + 0.0002, y + 0.0001] for x, y in first]
    return {"type": "MultiPolygon", "coordinates": [[first], [second]]}


BAD_NUMBERS = [math.nan, math.inf, -math.inf, "114.07", None, True, [114.07], {"lon": 114.07}, 10 ** 400, "",
               [[114.07, 22.56]]]


@st.composite
def bad_numbers(draw, box=DEMO) -> dict:
    """A valid ring with one coordinate replaced by NaN, ±Infinity, a string, None, a bool, a list, a dict or
    an integer too large for a float; or positions of the wrong length or dimension."""
    ring = draw(star_rings(box, max_vertices=12))
    i, axis = draw(st.integers(0, len(ring) - 1)), draw(st.integers(0, 1))
    how = draw(st.sampled_from(["number", "short", "long", "z-string", "flat", "deep"]))
    ring = [list(p) for p in ring]
    if how == "number":
        ring[i][axis] = draw(st.sampled_from(BAD_NUMBERS))
    elif how == "short":
        ring[i] = ring[i][:1]
    elif how == "long":
        ring = [[*p, 0.0, 1.0] for p in ring]
    elif how == "z-string":
        ring[i] = [*ring[i], "z"]
    elif how == "flat":
        return {"type": "Polygon", "coordinates": [c for p in ring for c in p]}
    else:
        return {"type": "Polygon", "coordinates": [[ring]]}
    return polygon(ring)


RANGE_BREAKERS = [181.0, -181.0, 91.0, -91.0, 1e308, -1e308, 360.0, 1e20]


@st.composite
def out_of_range(draw, box=DEMO) -> dict:
    """A valid ring with one or every longitude/latitude beyond ±180/±90 (or 1e308)."""
    ring = draw(star_rings(box, max_vertices=12))
    value, axis = draw(st.sampled_from(RANGE_BREAKERS)), draw(st.integers(0, 1))
    if draw(st.booleans()):
        ring = [[value, p[1]] if axis == 0 else [p[0], value] for p in ring]
    else:
        i = draw(st.integers(1, len(ring) - 2))
        ring[i] = [value, ring[i][1]] if axis == 0 else [ring[i][0], value]
    return polygon(ring)


OUTSIDE_CHINA = [(0.0, 0.0), (-74.0, 40.7), (2.35, 48.85), (151.2, -33.9), (22.56, 114.07)]
"""(lon, lat) boxes' corners far from China, including the demo point with its axes swapped."""


@st.composite
def outside_china(draw) -> dict:
    x, y = draw(st.sampled_from(OUTSIDE_CHINA))
    return polygon(draw(star_rings((x, y, x + 0.01, y + 0.01))))


@st.composite
def wrong_types(draw, box=DEMO) -> Any:
    """Points, lines, collections, Features without geometry, bare lists and scalars where a Polygon is due."""
    p, q = draw(lonlat_in(box)), draw(lonlat_in(box))
    ring = draw(star_rings(box, max_vertices=8))
    return draw(st.sampled_from([
        {"type": "Point", "coordinates": p},
        {"type": "LineString", "coordinates": [p, q]},
        {"type": "MultiPoint", "coordinates": ring},
        {"type": "GeometryCollection", "geometries": [polygon(ring)]},
        {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": polygon(ring)}]},
        {"type": "Feature", "geometry": None},
        {"type": "Polygon"},
        {"type": "Polygon", "coordinates": []},
        {"type": "Polygon", "coordinates": {"ring": ring}},
        {"type": "MultiPolygon", "coordinates": [[]]},
        {"type": "MultiPolygon", "coordinates": [ring]},
        {"type": "polygon", "coordinates": [ring]},
        {"type": None, "coordinates": [ring]},
        {"coordinates": [ring]},
        {},
        [ring],
        "POLYGON ((114.07 22.56, 114.08 22.56, 114.08 22.57, 114.07 22.56))",
        None,
        0,
    ]))


CRS_NAMES = [None, "", "EPSG:4326", "EPSG:4490", "GCJ-02", "BD-09", "EPSG:4547", "EPSG:3857", "EPSG:2154",
             "EPSG:99999", "EPSG:0", "EPSG:-4326", "EPSG:4326x", "nonsense", "urn:ogc:def:crs:EPSG::4326",
             "CRS84", "EPSG:" + "9" * 40, "EPSG:4978", "EPSG:5773", 4326, True, 4.5, ["EPSG:4326"]]
"""Good, wrong and absurd CRS names (geocentric 4978 and vertical 5773 are real EPSG codes, but not 2D CRSs)."""


def crs_names() -> st.SearchStrategy[Any]:
    return st.sampled_from(CRS_NAMES)


@st.composite
def large_polygons(draw, box=DEMO) -> dict:
    """A valid circle of many vertices: below, at and above the 50,000-vertex limit (tens of thousands)."""
    n = draw(st.sampled_from([1_000, 10_000, 49_999, 50_000, 60_000]))
    cx, cy = draw(lonlat_in(box))
    return polygon(circle(cx, cy, 0.002, n))


FAMILIES = {
    "valid": valid_polygons, "bowtie": bowties, "spike": spikes, "zero_area": zero_area,
    "repeated_vertices": repeated_vertices, "unclosed": unclosed_rings, "short_ring": short_rings,
    "hole_outside": holes_outside, "overlapping_parts": overlapping_multipolygons, "bad_numbers": bad_numbers,
    "out_of_range": out_of_range, "wrong_type": wrong_types,
}
"""Families drawn in ``box`` (``outside_china`` and ``large_polygons`` are added by :func:`hostile_polygons`)."""


def hostile_polygons(box: tuple[float, float, float, float] = DEMO, *, large: bool = True
                     ) -> st.SearchStrategy[tuple[str, Any]]:
    """``(kind, geometry)`` from every family; valid polygons are drawn about as often as all hostile ones
    together, so that writes that succeed are exercised too. ``large`` adds polygons of 1,000–60,000
    vertices (slow: leave it out where examples are expensive)."""
    families = [strategy(box).map(lambda g, k=kind: (k, g)) for kind, strategy in FAMILIES.items()]
    families.append(outside_china().map(lambda g: ("outside_china", g)))
    if large:
        families.append(large_polygons(box).map(lambda g: ("large", g)))
    return st.one_of(valid_polygons(box).map(lambda g: ("valid", g)), st.one_of(families))


# -- lines and positions ------------------------------------------------------------------------------------------

@st.composite
def valid_lines(draw, box=DEMO) -> dict:
    points = draw(st.lists(lonlat_in(box), min_size=2, max_size=8, unique_by=tuple))
    return {"type": "LineString", "coordinates": points}


@st.composite
def hostile_lines(draw, box=DEMO) -> tuple[str, Any]:
    """``(kind, geometry)`` of a line: valid, zero-length, one position, bad numbers, out of range, self-crossing,
    a Polygon, a MultiLineString, or too many vertices."""
    line = draw(valid_lines(box))
    coords = line["coordinates"]
    kind = draw(st.sampled_from(["valid", "valid", "zero_length", "one_position", "bad_numbers", "out_of_range",
                                 "self_crossing", "polygon", "multi", "huge", "z"]))
    if kind == "zero_length":
        coords = [coords[0]] * draw(st.integers(2, 4))
    elif kind == "one_position":
        coords = coords[:1]
    elif kind == "bad_numbers":
        coords = [list(p) for p in coords]
        coords[draw(st.integers(0, len(coords) - 1))][draw(st.integers(0, 1))] = draw(st.sampled_from(BAD_NUMBERS))
    elif kind == "out_of_range":
        coords = [[draw(st.sampled_from(RANGE_BREAKERS)), p[1]] for p in coords]
    elif kind == "self_crossing":
        (x0, y0), (x1, y1) = coords[0], coords[1]
        coords = [[x0, y0], [x1, y1], [x1, y0], [x0, y1]]
    elif kind == "polygon":
        return kind, polygon(draw(star_rings(box)))
    elif kind == "multi":
        return kind, {"type": "MultiLineString", "coordinates": [coords]}
    elif kind == "huge":
        coords = [[round(DEMO[0] + 0.02 * i / 60_000, 9), 22.565] for i in range(60_001)]
    elif kind == "z":
        coords = [[*p, 10.0] for p in coords]
    return kind, {"type": "LineString", "coordinates": coords}


@st.composite
def hostile_positions(draw, box=DEMO) -> tuple[str, Any, Any]:
    """``(kind, x, y)``: a position in ``box`` (valid), NaN/Infinity/strings/None, out of range, outside China,
    or the axes swapped."""
    x, y = draw(lonlat_in(box))
    kind = draw(st.sampled_from(["valid", "valid", "valid", "bad_number", "out_of_range", "outside_china",
                                 "swapped"]))
    if kind == "bad_number":
        bad = draw(st.sampled_from(BAD_NUMBERS))
        x, y = (bad, y) if draw(st.booleans()) else (x, bad)
    elif kind == "out_of_range":
        value = draw(st.sampled_from(RANGE_BREAKERS))
        x, y = (value, y) if draw(st.booleans()) else (x, value)
    elif kind == "outside_china":
        x, y = draw(st.sampled_from(OUTSIDE_CHINA))
    elif kind == "swapped":
        x, y = y, x
    return kind, x, y
