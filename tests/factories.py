"""Small builders of valid rows for tests (one community with two grids side by side, buildings, users).

Coordinates are lon/lat (EPSG:4326) near Futian, Shenzhen; boxes are given in metres east/north of an origin.
"""

from __future__ import annotations

import numpy as np
import shapely
from geoalchemy2.shape import from_shape
from pyproj import Transformer
from shapely.geometry import MultiPolygon, box
from sqlalchemy.orm import Session

from spatial.store.engine import acting_as
from spatial.store.models import Building, Division, Grid, User

_TO_LONLAT = Transformer.from_crs(4547, 4326, always_xy=True)
ORIGIN_X, ORIGIN_Y = 507_400.0, 2_495_600.0  # EPSG:4547 metres, about lon 114.072, lat 22.565

DISTRICT, SUBDISTRICT, COMMUNITY = "440304000000", "440304099000", "440304099001"


def metres_box(x0: float, y0: float, x1: float, y1: float) -> MultiPolygon:
    """A box given in metres relative to the origin, as a lon/lat MultiPolygon."""
    polygon = shapely.transform(box(ORIGIN_X + x0, ORIGIN_Y + y0, ORIGIN_X + x1, ORIGIN_Y + y1), _lonlat)
    return MultiPolygon([polygon])


def db_box(x0: float, y0: float, x1: float, y1: float):
    """:func:`metres_box` as a value for a geometry column (EPSG:4326)."""
    return from_shape(metres_box(x0, y0, x1, y1), srid=4326)


def _lonlat(xy: np.ndarray) -> np.ndarray:
    lon, lat = _TO_LONLAT.transform(xy[:, 0], xy[:, 1])
    return np.column_stack([lon, lat])


def community(session: Session) -> Division:
    """District, subdistrict and a 400 m × 200 m community, all synthetic."""
    session.add_all([
        Division(code=DISTRICT, level="district", name="福田区", name_en="Futian District"),
        Division(code=SUBDISTRICT, level="subdistrict", name="测试街道", parent_code=DISTRICT, synthetic=True),
    ])
    session.flush()
    c = Division(code=COMMUNITY, level="community", name="测试社区", parent_code=SUBDISTRICT,
                 boundary=db_box(0, 0, 400, 200), synthetic=True)
    session.add(c)
    session.flush()
    return c


def two_grids(session: Session) -> tuple[Grid, Grid]:
    """The community split into a west and an east grid of 200 m × 200 m."""
    community(session)
    with acting_as(session, "tester", "test fixture"):
        west = Grid(code=COMMUNITY + "01", community_code=COMMUNITY, name="西网格", boundary=db_box(0, 0, 200, 200))
        east = Grid(code=COMMUNITY + "02", community_code=COMMUNITY, name="东网格", boundary=db_box(200, 0, 400, 200))
        session.add_all([west, east])
        session.flush()
    return west, east


def building(session: Session, grid: Grid | None, x: float, y: float, number: int | None = None, **fields) -> Building:
    """A 20 m × 15 m building whose south-west corner is at (x, y) metres."""
    b = Building(footprint=db_box(x, y, x + 20, y + 15), grid_id=grid.id if grid else None, number=number,
                 **fields)
    session.add(b)
    session.flush()
    session.refresh(b)
    return b


def users_with_grids(session: Session, specs, password_hash: str) -> dict[str, User]:
    """Users from ``(name, role, scope_code, grid_code or None)`` rows, all with one password hash (hash it once
    per module: Argon2 is slow on purpose), each assigned to its grid. Returns them by name."""
    from spatial.store import users

    made = {}
    for name, role, scope, grid in specs:
        user = User(username=name, password_hash=password_hash, role=role, scope_code=scope)
        session.add(user)
        session.flush()
        users.assign_grids(session, user, (grid,) if grid else ())
        made[name] = user
    return made
