"""CRS as OGC API – Features Part 2 names them, with the axis order that goes with each URI.

OGC URIs follow the authority's axis order: ``http://www.opengis.net/def/crs/EPSG/0/4326`` (and 4490,
CGCS2000; and 4547, whose first axis is northing) is (lat, lon) / (northing, easting), while
``http://www.opengis.net/def/crs/OGC/1.3/CRS84`` — the default — is (lon, lat). Everything inside gridgov is
(lon, lat), so coordinates are swapped here, at the edge, for the CRSs whose first axis points north.
GCJ-02 and BD-09 (no URI) are accepted by name and are (lon, lat).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pyproj
import shapely

from api.geojson import parse_bbox
from spatial.geometry.crs import CoordSys, from_wgs84, parse_crs, to_wgs84

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{}"
SUPPORTED = (CRS84, EPSG_URI.format(4326), EPSG_URI.format(4490), EPSG_URI.format(4547), EPSG_URI.format(3857))
_CRS84_NAMES = {"crs84", "ogc:crs84", "urn:ogc:def:crs:ogc:1.3:crs84", "urn:ogc:def:crs:ogc::crs84",
                "http://www.opengis.net/def/crs/ogc/1.3/crs84", "https://www.opengis.net/def/crs/ogc/1.3/crs84",
                "[ogc:crs84]"}


@dataclass(frozen=True)
class OgcCrs:
    uri: str
    coordsys: CoordSys
    swap: bool  # first axis is north: (lat, lon) or (northing, easting)

    def to_wgs84(self, geom: shapely.Geometry) -> shapely.Geometry:
        """A geometry given in this CRS (in its axis order) as lon/lat."""
        return to_wgs84(_swapped(geom) if self.swap else geom, self.coordsys)

    def from_wgs84(self, geom: shapely.Geometry) -> shapely.Geometry:
        out = from_wgs84(geom, self.coordsys)
        return _swapped(out) if self.swap else out

    def bbox(self, value: str) -> tuple[float, float, float, float]:
        """``minx,miny,maxx,maxy`` (or 6 numbers with heights) in this CRS and axis order → lon/lat box."""
        return parse_bbox(value, self.coordsys, convert=self.to_wgs84,
                          crs_label=self.uri + (" (this CRS takes latitude first)" if self.swap else ""))


def _swapped(geom: shapely.Geometry) -> shapely.Geometry:
    return shapely.transform(geom, lambda xy: xy[:, ::-1])


@functools.lru_cache(maxsize=64)
def ogc_crs(value: str | None) -> OgcCrs:
    """The CRS a ``crs``/``bbox-crs``/``filter-crs`` parameter names; CRS84 when absent. UnknownCRS (400)
    for names gridgov does not know."""
    if value is None or value.strip().lower() in _CRS84_NAMES or not value.strip():
        return OgcCrs(CRS84, parse_crs(None), False)
    coordsys = parse_crs(value.strip().strip("[]"))
    if coordsys.epsg is None:
        return OgcCrs(coordsys.name, coordsys, False)
    north_first = pyproj.CRS.from_epsg(coordsys.epsg).axis_info[0].direction in ("north", "south")
    return OgcCrs(EPSG_URI.format(coordsys.epsg), coordsys, north_first)
