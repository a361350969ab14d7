"""What the fault and concurrency drills share: a community of two grids whose shared boundary planners move,
a grid worker with households to visit in an open campaign, and small HTTP helpers.

Geometry is built in metres (EPSG:4547) east/north of :data:`tests.factories.ORIGIN_X`/``ORIGIN_Y`` and sent as
lon/lat: the west grid is the box x 0–``x`` m, y 0–200 m, the east grid the rest of the 400 m × 200 m community.
The households live in one building at x 20–40 m, inside the west grid whatever ``x`` (≥ 100) a planner picks.
"""

from __future__ import annotations

from dataclasses import dataclass

from shapely.geometry import mapping
from sqlalchemy import text

from spatial.access import Principal
from spatial.store import campaigns, users
from spatial.store.models import Household
from tests import factories

PASSWORD = "drill password 2026"
WEST, EAST = factories.COMMUNITY + "01", factories.COMMUNITY + "02"
HOUSEHOLDS = 40


@dataclass(frozen=True)
class Drill:
    campaign_id: int
    household_ids: list[int]
    position: tuple[float, float]  # lon, lat of the building (EPSG:4326)


def seed(sessions) -> Drill:
    """Two grids, a planner of the subdistrict, a grid worker of the west grid, a viewer, :data:`HOUSEHOLDS`
    households in one building of the west grid, and a campaign over the west grid."""
    with sessions.begin() as s:
        west, _ = factories.two_grids(s)
        building = factories.building(s, west, 20, 20, number=1, households=HOUSEHOLDS, residents=2 * HOUSEHOLDS)
        s.add_all([Household(building_id=building.id, room=f"{100 + n}", residents=2) for n in range(HOUSEHOLDS)])
        users.create_user(s, "planner1", PASSWORD, "planner", scope_code=factories.SUBDISTRICT)
        users.create_user(s, "planner2", PASSWORD, "planner", scope_code=factories.SUBDISTRICT)
        users.create_user(s, "worker1", PASSWORD, "grid_worker", grid_codes=(WEST,))
        users.create_user(s, "viewer1", PASSWORD, "viewer", scope_code=factories.SUBDISTRICT)
        admin = Principal(user_id=0, username="drill", role="admin", client_addr="test")
        campaign = campaigns.open_campaign(s, admin, "演练排查", grid_codes=[WEST])
        ids = list(s.execute(text("SELECT id FROM households WHERE building_id = :b ORDER BY id"),
                             {"b": building.id}).scalars())
        lon, lat = s.execute(text("SELECT ST_X(ST_PointOnSurface(footprint)), ST_Y(ST_PointOnSurface(footprint)) "
                                  "FROM buildings WHERE id = :b"), {"b": building.id}).one()
    return Drill(campaign.id, ids, (lon, lat))


def west_boundary(x_m: float) -> dict:
    """GeoJSON (lon/lat) of the west grid reaching ``x_m`` metres east."""
    return mapping(factories.metres_box(0, 0, x_m, 200).geoms[0])


def token(client, username: str) -> dict[str, str]:
    response = client.post("/api/auth/token", data={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": "Bearer " + response.json()["access_token"]}


def redraw(client, headers: dict[str, str], x_m: float, etag: str, reason: str = "drill"):
    """Save the west grid reaching ``x_m`` (neighbour follows), as the version ``etag`` names."""
    return client.put(f"/api/grids/{WEST}/boundary", headers={**headers, "If-Match": etag},
                      json={"geometry": west_boundary(x_m), "reason": reason, "move_shared_boundary": True})


def visit(client, headers: dict[str, str], drill: Drill, household_id: int):
    lon, lat = drill.position
    return client.post(f"/api/field/campaigns/{drill.campaign_id}/visits", headers=headers,
                       json={"household_id": household_id, "result": "normal", "lon": lon, "lat": lat})


def west_history(sessions) -> list[tuple[int, float]]:
    """(version, east edge in metres from the origin) of every stored version of the west grid, oldest first."""
    with sessions() as s:
        rows = s.execute(text(
            "SELECT v.version, ST_XMax(ST_Transform(v.boundary, 4547)) - :x0 FROM grid_versions v "
            "JOIN grids g ON g.id = v.grid_id WHERE g.code = :c ORDER BY v.version"),
            {"c": WEST, "x0": factories.ORIGIN_X}).all()
    return [(v, round(x, 2)) for v, x in rows]


def west_now(sessions) -> tuple[int, float, float]:
    """(version, east edge in metres, area in m²) of the west grid as stored now."""
    with sessions() as s:
        version, x, area = s.execute(text(
            "SELECT version, ST_XMax(ST_Transform(boundary, 4547)) - :x0, ST_Area(ST_Transform(boundary, 4547)) "
            "FROM grids WHERE code = :c"), {"c": WEST, "x0": factories.ORIGIN_X}).one()
    return version, round(x, 2), round(area)
