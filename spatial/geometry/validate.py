"""Turning a GeoJSON geometry sent by a person into a valid (Multi)Polygon in EPSG:4326, or a clear error.

Checks, in order, each with a message a planner can act on: the GeoJSON shape (type, nesting, numbers),
vertex count (refused early, before any position is looked at, above ``max_vertices``), closed rings,
coordinates inside the CRS's range and inside the service extent, conversion to EPSG:4326 (lon, lat), then
geometric validity (``shapely.is_valid_reason``: self-intersections, ring self-touch, ...) and a non-zero area.

Positions are read as (x, y): a third (or further) element is dropped, so a Z sent by a GPS or a CAD tool never
reaches a 2D column. Booleans, strings, NaN, ±Infinity and integers too large for a float are refused.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely
from shapely.geometry import LineString, MultiPolygon, Polygon

from spatial.errors import InvalidInput, PayloadTooLarge
from spatial.geometry.crs import WGS84, CoordSys, to_wgs84, transform_xy

SERVICE_EXTENT = (73.0, 3.0, 136.0, 54.0)
"""(lon min, lat min, lon max, lat max): a box around China and its islands. Catches swapped axes,
projected metres sent as degrees and (0, 0) placeholders while accepting any Chinese city."""
MAX_VERTICES = 50_000


def is_number(value: Any) -> bool:
    """A finite JSON number that fits a float (not a bool, not NaN/±Infinity, not a 400-digit integer).

    >>> [is_number(v) for v in (1, 2.5, True, float("nan"), 10**400, "1")]
    [True, True, False, False, False, False]
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def is_position(value: Any) -> bool:
    """A GeoJSON position: a list of at least two numbers, the first two finite (see :func:`is_number`)."""
    return isinstance(value, list | tuple) and len(value) >= 2 and is_number(value[0]) and is_number(value[1])


def _unwrap(geometry: Any) -> Any:
    if isinstance(geometry, dict) and geometry.get("type") == "Feature":
        return geometry.get("geometry")
    return geometry


def _polygons(geometry: dict[str, Any]) -> list[list]:
    """The polygons of a (Multi)Polygon as lists of rings (each ring a list, not yet checked)."""
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    if kind not in ("Polygon", "MultiPolygon"):
        raise InvalidInput(f"expected a GeoJSON Polygon or MultiPolygon, got {str(kind)[:40]!r}")
    if not isinstance(coords, list | tuple) or not coords:
        raise InvalidInput(f"the {kind} has no coordinates")
    polygons = [coords] if kind == "Polygon" else coords
    for i, polygon in enumerate(polygons):
        if not isinstance(polygon, list | tuple) or not polygon:
            raise InvalidInput(f"polygon {i} of the {kind} has no rings: coordinates must be nested lists of "
                               "[x, y] positions")
        if any(not isinstance(r, list | tuple) for r in polygon):
            raise InvalidInput(f"malformed {kind}: coordinates must be nested lists of [x, y] positions")
    return polygons


def _check_ring(ring: list, index: int) -> list[tuple[float, float]]:
    """The ring's (x, y) positions, or InvalidInput naming ring ``index``."""
    if len(ring) < 4:
        raise InvalidInput(f"ring {index} has {len(ring)} positions; a closed ring needs at least 4")
    for position in ring:
        if not is_position(position):
            raise InvalidInput(f"ring {index} has a position that is not two finite numbers: {position!r}"[:200])
    xy = [(float(p[0]), float(p[1])) for p in ring]
    if xy[0] != xy[-1]:
        raise InvalidInput(f"ring {index} is not closed: it starts at {list(xy[0])} and ends at {list(xy[-1])}")
    return xy


def _check_vertices(count: int, max_vertices: int, what: str = "geometry") -> None:
    if count > max_vertices:
        raise PayloadTooLarge(f"the {what} has {count:,} vertices; at most {max_vertices:,} are accepted "
                              "(simplify it first)", vertices=count, max_vertices=max_vertices)


def polygon_from_geojson(geometry: Any, crs: CoordSys, *, max_vertices: int = MAX_VERTICES,
                         extent: tuple[float, float, float, float] | None = SERVICE_EXTENT) -> MultiPolygon:
    """A valid, non-empty MultiPolygon in EPSG:4326 from a GeoJSON (Multi)Polygon (or a Feature holding one)
    whose coordinates are in ``crs``. Raises InvalidInput or PayloadTooLarge, saying what is wrong and where."""
    geometry = _unwrap(geometry)
    if not isinstance(geometry, dict):
        raise InvalidInput("expected a GeoJSON geometry object")
    polygons = _polygons(geometry)
    _check_vertices(sum(len(ring) for polygon in polygons for ring in polygon), max_vertices)
    parts, first = [], 0  # rings are numbered across the parts, as in the messages of _check_ring
    for polygon in polygons:
        rings = [_check_ring(ring, first + i) for i, ring in enumerate(polygon)]
        first += len(rings)
        parts.append(Polygon(rings[0], rings[1:]))
    shape = MultiPolygon(parts)
    if crs.is_geographic:
        _check_range(shape.bounds, crs)
    shape = to_wgs84(shape, crs)
    _check_converted(shape, extent)
    reason = shapely.is_valid_reason(shape)
    if reason != "Valid Geometry":
        raise InvalidInput(f"the polygon is not valid: {reason} — remove the crossing or repeated vertices "
                           "and draw the ring without touching itself", reason=reason)
    if shape.is_empty or shape.area == 0:
        raise InvalidInput("the polygon is empty or has no area")
    return shape


def _check_converted(shape, extent) -> None:
    """After conversion to EPSG:4326: every coordinate finite (a projected CRS can send a point PROJ cannot
    convert) and, unless ``extent`` is None, inside the service extent."""
    _check_lonlat(bool(np.isfinite(shapely.get_coordinates(shape)).all()), shape.bounds, extent)


def _check_lonlat(finite: bool, bounds: tuple[float, float, float, float], extent) -> None:
    if not finite:
        raise InvalidInput("some coordinates cannot be converted to longitude/latitude: check the crs parameter "
                           "and the coordinates' units")
    if extent is not None:
        _check_extent(bounds, extent)


def _check_range(bounds: tuple[float, float, float, float], crs: CoordSys) -> None:
    x0, y0, x1, y1 = bounds
    if x0 < -180 or x1 > 180 or y0 < -90 or y1 > 90:
        raise InvalidInput(f"coordinates out of range for {crs.name}: longitude must be within ±180 and latitude "
                           f"within ±90 (got x {x0:g}…{x1:g}, y {y0:g}…{y1:g}); are the axes swapped?")


def extent_problem(bounds: tuple[float, float, float, float],
                   extent: tuple[float, float, float, float] = SERVICE_EXTENT) -> str | None:
    """Why lon/lat ``bounds`` (x0, y0, x1, y1) are not inside ``extent`` (NaN and infinite bounds are not), or
    None when they are.

    >>> extent_problem((114.0, 22.5, 114.1, 22.6)) is None
    True
    """
    x0, y0, x1, y1 = bounds
    if all(math.isfinite(v) for v in bounds) and extent[0] <= x0 and extent[1] <= y0 and x1 <= extent[2] \
            and y1 <= extent[3]:
        return None
    return (f"the geometry lies outside the service area (lon {extent[0]}…{extent[2]}, lat {extent[1]}…{extent[3]}): "
            f"got lon {x0:.5f}…{x1:.5f}, lat {y0:.5f}…{y1:.5f}; check the crs and the axis order (longitude first)")


def _check_extent(bounds: tuple[float, float, float, float], extent: tuple[float, float, float, float]) -> None:
    problem = extent_problem(bounds, extent)
    if problem:
        x0, y0, x1, y1 = (round(v, 5) if math.isfinite(v) else str(v) for v in bounds)
        raise InvalidInput(problem, code="geometry.outside_service_area", x0=x0, y0=y0, x1=x1, y1=y1)


def line_from_geojson(geometry: Any, crs: CoordSys, *, max_vertices: int = MAX_VERTICES,
                      extent: tuple[float, float, float, float] | None = SERVICE_EXTENT) -> LineString:
    """A LineString in EPSG:4326 from a GeoJSON LineString in ``crs`` (e.g. a line splitting a grid)."""
    geometry = _unwrap(geometry)
    if not isinstance(geometry, dict) or geometry.get("type") != "LineString":
        raise InvalidInput("expected a GeoJSON LineString")
    coords = geometry.get("coordinates")
    if not isinstance(coords, list | tuple) or len(coords) < 2:
        raise InvalidInput("a line needs at least two positions")
    _check_vertices(len(coords), max_vertices, "line")
    for position in coords:
        if not is_position(position):
            raise InvalidInput(f"the line has a position that is not two finite numbers: {position!r}"[:200])
    line = LineString([(float(p[0]), float(p[1])) for p in coords])
    if crs.is_geographic:
        _check_range(line.bounds, crs)
    line = to_wgs84(line, crs)
    _check_converted(line, extent)
    if line.length == 0:
        raise InvalidInput("the line has zero length")
    return line


def position_from_xy(x: Any, y: Any, crs: CoordSys, *,
                     extent: tuple[float, float, float, float] | None = SERVICE_EXTENT) -> tuple[float, float]:
    """(lon, lat) in EPSG:4326 of a position (x, y) sent in ``crs`` (a phone's GPS fix, a clicked point).

    InvalidInput unless x and y are finite numbers (:func:`is_number`), within ±180/±90 for a geographic ``crs``,
    convertible, and (unless ``extent`` is None) inside the service extent: a (0, 0) placeholder, swapped axes
    or a position in another country is refused rather than stored or searched around."""
    if not (is_number(x) and is_number(y)):
        raise InvalidInput(f"a position is two finite numbers [x, y], got [{x!r}, {y!r}]"[:200])
    x, y = float(x), float(y)
    if crs.is_geographic:
        _check_range((x, y, x, y), crs)
    lon, lat = (float(v) for v in transform_xy(x, y, crs, WGS84))  # scalars: no geometry built (a hot path)
    _check_lonlat(math.isfinite(lon) and math.isfinite(lat), (lon, lat, lon, lat), extent)
    return lon, lat
