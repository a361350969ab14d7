"""Tile arithmetic for the XYZ scheme on Web Mercator (EPSG:3857), with no database.

A tile is ``(z, x, y)``: ``x`` counts west → east and ``y`` north → south, both from 0 to ``2**z - 1``.
Bounds are given in EPSG:4326 degrees as (west, south, east, north) = (lon min, lat min, lon max, lat max);
Web Mercator covers latitudes within ±85.0511°. Tiles carry ``EXTENT`` units per side plus a ``BUFFER`` of
units around them (so lines and outlines do not show seams), which invalidation must take into account.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spatial.errors import NotFound

MAX_ZOOM = 22
EXTENT = 4096
BUFFER = 64
MAX_LAT = 85.0511287798066
EARTH_CIRCUMFERENCE_M = 2 * math.pi * 6378137.0


@dataclass(frozen=True, order=True)
class Tile:
    z: int
    x: int
    y: int

    @classmethod
    def checked(cls, z: int, x: int, y: int, max_zoom: int = MAX_ZOOM) -> Tile:
        """The tile, or :class:`NotFound` naming the valid range when it does not exist.

        >>> Tile.checked(1, 1, 0)
        Tile(z=1, x=1, y=0)
        >>> Tile.checked(1, 2, 0)
        Traceback (most recent call last):
        ...
        spatial.errors.NotFound: tile 1/2/0 does not exist: at zoom 1, x and y run from 0 to 1
        """
        if not 0 <= z <= max_zoom:
            raise NotFound(f"tile {z}/{x}/{y} does not exist: zoom runs from 0 to {max_zoom}", z=z)
        last = 2 ** z - 1
        if not (0 <= x <= last and 0 <= y <= last):
            raise NotFound(f"tile {z}/{x}/{y} does not exist: at zoom {z}, x and y run from 0 to {last}",
                           z=z, x=x, y=y)
        return cls(z, x, y)

    def bounds(self, buffer_units: int = 0) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees, widened by ``buffer_units`` tile units on every side.

        >>> Tile(0, 0, 0).bounds()[0], round(Tile(0, 0, 0).bounds()[3], 4)
        (-180.0, 85.0511)
        """
        n = 2 ** self.z
        pad = buffer_units / EXTENT
        west = (self.x - pad) / n * 360.0 - 180.0
        east = (self.x + 1 + pad) / n * 360.0 - 180.0
        return west, _lat((self.y + 1 + pad) / n), east, _lat((self.y - pad) / n)

    def unit_m(self) -> float:
        """Size of one tile unit in Web Mercator metres (at the equator; shrinks with cos(lat) on the ground)."""
        return EARTH_CIRCUMFERENCE_M / (EXTENT * 2 ** self.z)


def _lat(fraction: float) -> float:
    """Latitude in degrees of the horizontal line ``fraction`` of the way down the Mercator square."""
    fraction = min(max(fraction, 0.0), 1.0)
    return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * fraction))))


def tile_range(bounds: tuple[float, float, float, float], z: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), inclusive, of the tiles at zoom ``z`` that a lon/lat box touches.

    >>> tile_range((114.0, 22.5, 114.1, 22.6), 10)
    (836, 445, 836, 446)
    """
    west, south, east, north = bounds
    n = 2 ** z

    def column(lon: float) -> int:
        return min(max(int(math.floor((lon + 180.0) / 360.0 * n)), 0), n - 1)

    def row(lat: float) -> int:
        lat = min(max(lat, -MAX_LAT), MAX_LAT)
        fraction = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2
        return min(max(int(math.floor(fraction * n)), 0), n - 1)

    return column(west), row(north), column(east), row(south)


def boxes_touch(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    """Whether two (west, south, east, north) boxes intersect (touching edges count)."""
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]
