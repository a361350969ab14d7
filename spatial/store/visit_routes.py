"""Visit routes: the order and walking route from a worker's position through the buildings left to visit.

The stops are buildings (their point on surface, EPSG:4326 lon, lat) of the households still to visit in a
campaign (:mod:`spatial.store.campaigns`) or of households the worker chose, in the caller's household scope
(:mod:`spatial.store.scope`); the tour is :func:`spatial.store.tours.plan_tour` on the walking network (metres,
seconds). No personal data is returned (household ids only), so nothing is audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.access import Principal
from spatial.errors import InvalidInput, OutOfScope
from spatial.store import tours
from spatial.store.campaigns import current_campaign_id, visible_campaign
from spatial.store.scope import building_scope, grid_scope
from spatial.store.service_area import check_position


@dataclass(frozen=True)
class RouteStop:
    building_id: int
    code: str | None
    name: str | None
    location: tuple[float, float]
    household_ids: tuple[int, ...]


@dataclass(frozen=True)
class VisitRoute:
    campaign_id: int | None
    tour: tours.Tour
    stops: tuple[RouteStop, ...]              # in visiting order
    unreachable: tuple[RouteStop, ...] = field(default=())
    here: int | None = None                   # the building the worker stands at, visited first


AT_BUILDING_M = 20.0  # metres (straight line, to the footprint; 0 inside): a worker this near stands at it


def visit_route(session: Session, who: Principal, lon: float, lat: float, *, campaign_id: int | None = None,
                household_ids: Sequence[int] | None = None, grid_id: int | None = None, nearest: int | None = None,
                closed: bool = False, end: tuple[float, float] | None = None, speed_mps: float | None = None,
                time_limit_s: float | None = None, metric_srid: int = 4547) -> VisitRoute:
    """Order and walking route from (lon, lat) through the buildings of the households still to visit.

    The households are ``household_ids`` (all in the caller's scope, else OutOfScope) or the unvisited households
    of the campaign (default: the newest open one) in the caller's scope, optionally of one grid; ``nearest``
    keeps that many buildings nearest to the position (straight line). Each building is one stop (its point on
    surface). Buildings the footpath network does not reach are listed in ``unreachable``. No personal data is
    returned (household ids only), so nothing is audited.
    """
    who.require_household_read()
    check_position(session, lon, lat)
    if nearest is not None and not 1 <= nearest <= tours.MAX_STOPS:
        raise InvalidInput(f"nearest must be between 1 and {tours.MAX_STOPS}")
    campaign = None
    if household_ids:
        stops = _chosen_stops(session, who, household_ids)
    else:
        campaign = visible_campaign(session, who, campaign_id) if campaign_id is not None \
            else current_campaign_id(session, who)
        if campaign is None:
            raise InvalidInput("there is no open campaign in your area: choose households to visit")
        stops = _unvisited_stops(session, who, campaign, grid_id, lon, lat)
    if not stops:
        raise InvalidInput("nothing left to visit here")
    stops = stops[:nearest] if nearest else stops
    if len(stops) > tours.MAX_STOPS:
        raise InvalidInput(f"{len(stops)} buildings to visit; ask for the nearest {tours.MAX_STOPS} or fewer")
    by_id = {s.building_id: s for s in stops}
    here = None if closed else _building_at(session, list(by_id), lon, lat)
    tour = tours.plan_tour(session, (lon, lat), [tours.Stop(s.building_id, *s.location) for s in stops],
                           end=end, closed=closed, network="walk", speed_mps=speed_mps,
                           time_limit_s=time_limit_s, skip_unreachable=True, metric_srid=metric_srid, first=here)
    here = here if tour.order and tour.order[0] == here else None
    return VisitRoute(campaign, tour, tuple(by_id[k] for k in tour.order), tuple(by_id[k] for k in tour.unreachable),
                      here)


def _building_at(session: Session, building_ids: list[int], lon: float, lat: float) -> int | None:
    """The building of ``building_ids`` nearest to (lon, lat) (EPSG:4326) if within :data:`AT_BUILDING_M` metres
    of its footprint (the worker stands at it: the route starts with it, issue 19 item 11), else None."""
    return session.execute(text("""
        SELECT b.id FROM buildings b
        WHERE b.id = ANY(:ids)
          AND ST_DWithin(b.footprint::geography, ST_SetSRID(ST_Point(:lon, :lat), 4326)::geography, :at, false)
        ORDER BY b.footprint::geography <-> ST_SetSRID(ST_Point(:lon, :lat), 4326)::geography, b.id
        LIMIT 1"""), {"ids": building_ids, "lon": lon, "lat": lat, "at": AT_BUILDING_M}).scalar()


_STOP_COLUMNS = """b.id, b.code, b.name, ST_X(ST_PointOnSurface(b.footprint)) AS x,
       ST_Y(ST_PointOnSurface(b.footprint)) AS y, array_agg(h.id ORDER BY h.id) AS ids"""


def _unvisited_stops(session: Session, who: Principal, campaign: int, grid_id: int | None, lon: float,
                     lat: float) -> list[RouteStop]:
    """Buildings holding unvisited households of the campaign in scope, nearest first (straight line)."""
    scope, params = grid_scope(who.household_scope)
    rows = session.execute(text(f"""
        SELECT {_STOP_COLUMNS}
        FROM campaign_targets t JOIN grids g ON g.id = t.grid_id
        JOIN households h ON h.id = t.household_id JOIN buildings b ON b.id = h.building_id
        WHERE t.campaign_id = :c AND {scope} AND (CAST(:grid AS integer) IS NULL OR t.grid_id = :grid)
          AND NOT EXISTS (SELECT 1 FROM campaign_visits v WHERE v.campaign_id = t.campaign_id
                          AND v.household_id = t.household_id)
        GROUP BY b.id
        ORDER BY b.footprint::geography <-> ST_SetSRID(ST_Point(:lon, :lat), 4326)::geography, b.id"""),
        {**params, "c": campaign, "grid": grid_id, "lon": lon, "lat": lat}).all()
    return [RouteStop(r.id, r.code, r.name, (r.x, r.y), tuple(r.ids)) for r in rows]


def _chosen_stops(session: Session, who: Principal, household_ids: Sequence[int]) -> list[RouteStop]:
    if len(household_ids) > 5000:
        raise InvalidInput("at most 5000 households per route")
    scope, params = building_scope(who.household_scope)
    rows = session.execute(text(f"""
        SELECT {_STOP_COLUMNS}
        FROM households h JOIN buildings b ON b.id = h.building_id
        WHERE h.id = ANY(CAST(:ids AS bigint[])) AND {scope}
        GROUP BY b.id ORDER BY b.id"""), {**params, "ids": list(household_ids)}).all()
    found = {i for r in rows for i in r.ids}
    missing = sorted(set(household_ids) - found)
    if missing:
        raise OutOfScope(f"{len(missing)} of the chosen households are not in your area",
                         household_ids=missing[:50])
    return [RouteStop(r.id, r.code, r.name, (r.x, r.y), tuple(r.ids)) for r in rows]
