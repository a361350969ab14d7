"""Turning a GeoJSON geometry sent by a person into a valid (Multi)Polygon in EPSG:4326, or a clear error.

Checks, in order, each with a message a planner can act on: the GeoJSON shape (type, nesting, numbers),
closed rings, vertex count (refused early above ``max_vertices``), coordinates inside the CRS's range and
inside the service extent, conversion to EPSG:4326 (lon, lat), then geometric validity
(``shapely.is_valid_reason``: self-intersections, ring self-touch, ...) and a non-zero area.
"""

from __future__ import annotations

import math
from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Polygon

from spatial.errors import InvalidInput, PayloadTooLarge
from spatial.geometry.crs import CoordSys, to_wgs84

SERVICE_EXTENT = (73.0, 3.0, 136.0, 54.0)
"""(lon min, lat min, lon max, lat max): a box around China and its islands. Catches swapped axes,
projected metres sent as degrees and (0, 0) placeholders while accepting any Chinese city."""
MAX_VERTICES = 50_000


def _rings(geometry: dict[str, Any]) -> list[list]:
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    if kind not in ("Polygon", "MultiPolygon"):
        raise InvalidInput(f"expected a GeoJSON Polygon or MultiPolygon, got {kind!r}")
    if not isinstance(coords, list | tuple) or not coords:
        raise InvalidInput(f"the {kind} has no coordinates")
    polygons = [coords] if kind == "Polygon" else coords
    rings = [ring for polygon in polygons for ring in (polygon if isinstance(polygon, list | tuple) else [None])]
    if any(not isinstance(r, list | tuple) for r in rings):
        raise InvalidInput(f"malformed {kind}: coordinates must be nested lists of [x, y] positions")
    return rings


def _check_ring(ring: list, index: int) -> None:
    if len(ring) < 4:
        raise InvalidInput(f"ring {index} has {len(ring)} positions; a closed ring needs at least 4")
    for position in ring:
        if (not isinstance(position, list | tuple) or len(position) < 2
                or not all(isinstance(v, int | float) and math.isfinite(v) for v in position[:2])):
            raise InvalidInput(f"ring {index} has a position that is not two finite numbers: {position!r}"[:200])
    if list(ring[0][:2]) != list(ring[-1][:2]):
        raise InvalidInput(f"ring {index} is not closed: it starts at {ring[0][:2]} and ends at {ring[-1][:2]}")


def polygon_from_geojson(geometry: Any, crs: CoordSys, *, max_vertices: int = MAX_VERTICES,
                         extent: tuple[float, float, float, float] | None = SERVICE_EXTENT) -> MultiPolygon:
    """A valid, non-empty MultiPolygon in EPSG:4326 from a GeoJSON (Multi)Polygon (or a Feature holding one)
    whose coordinates are in ``crs``. Raises InvalidInput or PayloadTooLarge, saying what is wrong and where."""
    if isinstance(geometry, dict) and geometry.get("type") == "Feature":
        geometry = geometry.get("geometry")
    if not isinstance(geometry, dict):
        raise InvalidInput("expected a GeoJSON geometry object")
    rings = _rings(geometry)
    vertices = sum(len(r) for r in rings)
    if vertices > max_vertices:
        raise PayloadTooLarge(f"the geometry has {vertices:,} vertices; at most {max_vertices:,} are accepted "
                              "(simplify it first)")
    for i, ring in enumerate(rings):
        _check_ring(ring, i)
    shape = shapely.geometry.shape(geometry)
    if crs.is_geographic:
        _check_range(shape.bounds, crs)
    shape = to_wgs84(shape, crs)
    if extent is not None:
        _check_extent(shape.bounds, extent)
    reason = shapely.is_valid_reason(shape)
    if reason != "Valid Geometry":
        raise InvalidInput(f"the polygon is not valid: {reason} — remove the crossing or repeated vertices "
                           "and draw the ring without touching itself", reason=reason)
    if shape.is_empty or shape.area == 0:
        raise InvalidInput("the polygon is empty or has no area")
    return shape if isinstance(shape, MultiPolygon) else MultiPolygon([shape]) if isinstance(shape, Polygon) else shape


def _check_range(bounds: tuple[float, float, float, float], crs: CoordSys) -> None:
    x0, y0, x1, y1 = bounds
    if x0 < -180 or x1 > 180 or y0 < -90 or y1 > 90:
        raise InvalidInput(f"coordinates out of range for {crs.name}: longitude must be within ±180 and latitude "
                           f"within ±90 (got x {x0:g}…{x1:g}, y {y0:g}…{y1:g}); are the axes swapped?")


def _check_extent(bounds: tuple[float, float, float, float], extent: tuple[float, float, float, float]) -> None:
    x0, y0, x1, y1 = bounds
    if x0 < extent[0] or y0 < extent[1] or x1 > extent[2] or y1 > extent[3]:
        raise InvalidInput(f"the geometry lies outside the service area (lon {extent[0]}…{extent[2]}, "
                           f"lat {extent[1]}…{extent[3]}): got lon {x0:.5f}…{x1:.5f}, lat {y0:.5f}…{y1:.5f}; "
                           "check the crs parameter and the axis order (longitude first)")


def line_from_geojson(geometry: Any, crs: CoordSys, *, max_vertices: int = MAX_VERTICES,
                      extent: tuple[float, float, float, float] | None = SERVICE_EXTENT) -> shapely.LineString:
    """A LineString in EPSG:4326 from a GeoJSON LineString in ``crs`` (e.g. a line splitting a grid)."""
    if isinstance(geometry, dict) and geometry.get("type") == "Feature":
        geometry = geometry.get("geometry")
    if not isinstance(geometry, dict) or geometry.get("type") != "LineString":
        raise InvalidInput("expected a GeoJSON LineString")
    coords = geometry.get("coordinates")
    if not isinstance(coords, list | tuple) or len(coords) < 2:
        raise InvalidInput("a line needs at least two positions")
    if len(coords) > max_vertices:
        raise PayloadTooLarge(f"the line has {len(coords):,} vertices; at most {max_vertices:,} are accepted")
    for position in coords:
        if (not isinstance(position, list | tuple) or len(position) < 2
                or not all(isinstance(v, int | float) and math.isfinite(v) for v in position[:2])):
            raise InvalidInput(f"the line has a position that is not two finite numbers: {position!r}"[:200])
    line = shapely.LineString([p[:2] for p in coords])
    if crs.is_geographic:
        _check_range(line.bounds, crs)
    line = to_wgs84(line, crs)
    if extent is not None:
        _check_extent(line.bounds, extent)
    if line.length == 0:
        raise InvalidInput("the line has zero length")
    return line
