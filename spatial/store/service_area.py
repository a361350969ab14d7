"""The service area: the positions this server answers about (field staff's nearby lists, visit routes).

A position is inside it when it lies in a division or grid this server manages, or within
:data:`SERVICE_MARGIN_M` metres of one (geography, sphere). Positions are EPSG:4326 (lon, lat); the API converts
GCJ-02 / BD-09 / EPSG inputs at the edge. The check says nothing about the caller's scope (:mod:`spatial.store.scope`).
"""

from __future__ import annotations

import math

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.errors import InvalidInput

SERVICE_MARGIN_M = 2000.0         # a position this far outside every division/grid is outside the service area

# Inside a division or grid (point in polygon, cheap), else within the margin of one (geography, metres); the
# bounding-box prefilter of 0.05 degree (over 2.7 km below latitude 60) only lets the GiST indexes help.
IN_SERVICE_AREA = """(
    EXISTS (SELECT 1 FROM divisions d WHERE d.boundary && ST_SetSRID(ST_Point(:lon, :lat), 4326)
              AND ST_Intersects(d.boundary, ST_SetSRID(ST_Point(:lon, :lat), 4326)))
 OR EXISTS (SELECT 1 FROM divisions d WHERE d.boundary && ST_Expand(ST_SetSRID(ST_Point(:lon, :lat), 4326), 0.05)
              AND ST_DWithin(d.boundary::geography, ST_SetSRID(ST_Point(:lon, :lat), 4326)::geography, :margin, false))
 OR EXISTS (SELECT 1 FROM grids g WHERE g.boundary && ST_Expand(ST_SetSRID(ST_Point(:lon, :lat), 4326), 0.05)
              AND ST_DWithin(g.boundary::geography, ST_SetSRID(ST_Point(:lon, :lat), 4326)::geography, :margin, false)))"""


def check_lonlat(lon: float, lat: float) -> None:
    """InvalidInput unless (lon, lat) is a finite WGS 84 longitude/latitude."""
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput(f"position ({lon}, {lat}) is not a longitude/latitude", lon=lon, lat=lat)


def outside(lon: float, lat: float) -> InvalidInput:
    """The error for a position outside the service area (raised by the caller)."""
    return InvalidInput("the position is outside the service area (no community or grid within "
                        f"{SERVICE_MARGIN_M:g} m); check the coordinates and their crs (GCJ-02 for phones "
                        "and WeChat, EPSG:4326 for GPS)", code="position.outside_service_area", lon=lon, lat=lat,
                        margin_m=SERVICE_MARGIN_M)


def check_position(session: Session, lon: float, lat: float) -> None:
    """InvalidInput unless (lon, lat) is a finite WGS 84 position inside, or within :data:`SERVICE_MARGIN_M`
    metres of, a division or grid this server manages (the service area). Says nothing about the caller's scope."""
    check_lonlat(lon, lat)
    inside = session.execute(text(f"SELECT {IN_SERVICE_AREA}"),
                             {"lon": lon, "lat": lat, "margin": SERVICE_MARGIN_M}).scalar_one()
    if not inside:
        raise outside(lon, lat)
