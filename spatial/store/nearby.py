"""Households near a position for field staff: nearest first, straight-line or on foot, with campaign status.

* Positions are EPSG:4326 (lon, lat) inside the service area (:mod:`spatial.store.service_area`). Distances are
  metres: straight-line ones (``mode`` 'straight') on geography (sphere; the expression index
  ``buildings_footprint_geog_gix`` serves both the ``ST_DWithin`` filter and the KNN ``<->`` order), walking ones
  (``mode`` 'walk') on the footpath network (pgRouting, :mod:`spatial.store.network`) from the position to each
  building's point on surface. The mode is decided here only (:data:`MODES`): :func:`nearby` runs either with a
  Session, :func:`nearby_async` either from the event loop (straight-line as one statement on the async pool).
* Household rows follow ``who.household_scope``, the campaign ``who.area`` (:mod:`spatial.store.scope`): outside
  one's scope nothing is returned, so the answer does not tell whether anybody lives there. Personal fields leave
  masked and every request that returns households writes one audit row (:mod:`spatial.store.household_reads`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from spatial import privacy
from spatial.access import Principal
from spatial.errors import InvalidInput, OutOfScope
from spatial.store import aio, audit
from spatial.store import network as net
from spatial.store.campaigns import campaign_sql
from spatial.store.engine import cached_text
from spatial.store.household_reads import PERSONAL_FIELDS, HouseholdView, audit_read
from spatial.store.scope import building_scope, campaign_scope
from spatial.store.service_area import IN_SERVICE_AREA, SERVICE_MARGIN_M, check_lonlat, outside

STRAIGHT, WALK = "straight", "walk"
MODES = (STRAIGHT, WALK)
MAX_RADIUS_M = 2000.0
MAX_LIMIT = 500
WALK_CANDIDATES = 400             # buildings considered for walking distance (nearest by straight line)


def _position_and_campaign(session: Session, who: Principal, lon: float, lat: float,
                           campaign_id: int | None = None) -> int | None:
    """:func:`~spatial.store.service_area.check_position` and the campaign (``campaign_id`` if the caller sees it,
    else the newest open one the caller sees; None if none) in one round trip."""
    check_lonlat(lon, lat)
    _, params = campaign_scope(who.area)
    inside, campaign = session.execute(cached_text(_place_sql(who, chosen=campaign_id is not None)), {
        **params, "lon": lon, "lat": lat, "margin": SERVICE_MARGIN_M, "campaign_id": campaign_id}).one()
    if not inside:
        raise outside(lon, lat)
    return campaign


def _place_sql(who: Principal, *, chosen: bool) -> str:
    """One row: ``inside`` the service area (:data:`~spatial.store.service_area.IN_SERVICE_AREA`) and the
    ``campaign`` (:func:`~spatial.store.campaigns.campaign_sql`)."""
    return f"SELECT {IN_SERVICE_AREA} AS inside, {campaign_sql(who, chosen=chosen)} AS campaign"


def _check_radius_limit(radius_m: float, limit: int) -> None:
    if not (math.isfinite(radius_m) and 1 <= radius_m <= MAX_RADIUS_M):
        raise InvalidInput(f"radius must be between 1 and {MAX_RADIUS_M:g} m, got {radius_m}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")


@dataclass(frozen=True)
class BuildingView:
    id: int
    code: str | None
    name: str | None
    location: tuple[float, float]
    distance_m: float
    walk_m: float | None
    households: int
    unvisited: int | None


@dataclass(frozen=True)
class Nearby:
    mode: str
    radius_m: float
    campaign_id: int | None
    households: tuple[HouseholdView, ...]
    buildings: tuple[BuildingView, ...]
    farther_on_foot: int = 0


# Whether household {h} is one to list: any, or (:only_unvisited) a target of the campaign not yet visited. The
# subqueries run only when :only_unvisited is true (OR stops at its first true operand), so listing everyone
# costs no campaign lookups.
_MATCHING = """(NOT :only_unvisited
    OR (EXISTS (SELECT 1 FROM campaign_targets t WHERE t.campaign_id = {campaign} AND t.household_id = {h}.id)
        AND NOT EXISTS (SELECT 1 FROM campaign_visits v WHERE v.campaign_id = {campaign} AND v.household_id = {h}.id)))"""

# Households of the buildings in ``near`` (building_id, ord, distance_m, walk_m, x, y), in building order then unit,
# floor, room, with their campaign status. The lateral subquery is ordered and limited per building so that,
# when the planner knows ``near`` is ordered ({order} is its sort key), an incremental sort stops once a page of
# households is found instead of reading every candidate building; the campaign is looked up for that page only.
# {campaign} is the SQL of the campaign id (NULL or 0: none); {page} the page size (:func:`_page_size`), a
# constant in the text so that a cached generic plan still stops early; the page is then cut to :limit.
_HOUSEHOLD_ROWS = """
SELECT h.*, t.household_id IS NOT NULL AS targeted, v.result, v.visited_at
FROM (SELECT n.building_id, n.ord, n.distance_m, n.walk_m, n.x, n.y, b.code AS building_code,
             b.name AS building_name, b.grid_id, h.*
      FROM near n
      JOIN buildings b ON b.id = n.building_id
      CROSS JOIN LATERAL (
          SELECT h.id, h.unit, h.floor, h.room, h.residents, h.head_name, h.head_id_number, h.head_phone, h.tags
          FROM households h
          WHERE h.building_id = n.building_id AND {matching}
          ORDER BY h.unit, h.floor NULLS LAST, h.room, h.id
          LIMIT {page}) h
      ORDER BY {order}, h.unit, h.floor NULLS LAST, h.room, h.id
      LIMIT {page}) h
LEFT JOIN campaign_targets t ON t.campaign_id = {campaign} AND t.household_id = h.id
LEFT JOIN campaign_visits_current v ON v.campaign_id = {campaign} AND v.household_id = h.id
ORDER BY {outer_order}, h.unit, h.floor NULLS LAST, h.room, h.id
LIMIT :limit"""


def _household_rows(order: tuple[str, ...], campaign: str, page: int) -> str:
    """:data:`_HOUSEHOLD_ROWS` for ``near`` ordered by its columns ``order``."""
    return _HOUSEHOLD_ROWS.format(order=", ".join(f"n.{c}" for c in order),
                                  outer_order=", ".join(f"h.{c}" for c in order), campaign=campaign, page=page,
                                  matching=_MATCHING.format(campaign=campaign, h="h"))


PAGE_SIZES = (10, 50, 100, 200, MAX_LIMIT)


def _page_size(limit: int) -> int:
    """The smallest of :data:`PAGE_SIZES` that holds ``limit`` rows. Statements read a page and keep ``limit``
    rows of it: with the page size written in the SQL (a handful of texts, each prepared once per connection),
    PostgreSQL's cached plan knows how few rows are wanted and stops reading early; with ``LIMIT $n`` it
    plans for an unknown count and reads every candidate building (3× the work, measured)."""
    return next(size for size in PAGE_SIZES if size >= limit)


def _near_buildings_sql(scope: str, blimit: int, campaign: str = ":campaign", gate: str = "TRUE") -> str:
    """The ``blimit`` buildings with (matching) households within :radius metres of the position nearest to it
    (KNN), if ``gate`` (an SQL condition evaluated once) holds."""
    return f"""
    SELECT b.id AS building_id, ST_Distance(b.footprint::geography, p.g, false) AS distance_m,
           ST_X(s.p) AS x, ST_Y(s.p) AS y
    FROM buildings b CROSS JOIN (SELECT ST_SetSRID(ST_Point(:lon, :lat), 4326)::geography AS g) p
    CROSS JOIN LATERAL (SELECT ST_PointOnSurface(b.footprint) AS p) s
    WHERE {gate} AND ST_DWithin(b.footprint::geography, p.g, :radius, false) AND {scope}
      AND EXISTS (SELECT 1 FROM households hh WHERE hh.building_id = b.id
                  AND {_MATCHING.format(campaign=campaign, h="hh")})
    ORDER BY b.footprint::geography <-> p.g, b.id
    LIMIT {blimit}"""


def straight_sql(who: Principal, *, campaign_chosen: bool, page: int) -> str:
    """The whole straight-line nearby request as one statement: the service-area check, the campaign (the one
    chosen, if visible, else the newest open one the caller sees), the households in scope nearest first and the
    audit row listing them (written only if there are any). Rows: ``inside``, ``campaign`` and one household
    each, or one row without household (``id`` NULL) when there is none; households are read only if the
    position is inside the service area and a campaign that is needed (``:needs_campaign``) is found."""
    return _straight_sql(building_scope(who.household_scope)[0], _place_sql(who, chosen=campaign_chosen), page)


@functools.lru_cache(maxsize=64)
def _straight_sql(scope: str, place: str, page: int) -> str:
    """:func:`straight_sql` assembled once per form (scope kind, campaign chosen or not, page size)."""
    pos = "SELECT inside, campaign, inside AND (campaign IS NOT NULL OR NOT :needs_campaign) AS go FROM place"
    campaign = "(SELECT campaign FROM pos)"
    near = ("SELECT building_id, 0 AS ord, distance_m, NULL::float8 AS walk_m, x, y FROM ("
            f"{_near_buildings_sql(scope, page, campaign, gate='(SELECT go FROM pos)')}) k "
            "ORDER BY distance_m, building_id")
    rows = _household_rows(("distance_m", "building_id"), campaign, page)
    logged = audit.read_entry_sql(source="found", object_id="string_agg(found.id::text, ',' ORDER BY found.n)",
                                  household_ids="array_agg(found.id ORDER BY found.n)")
    return f"""WITH place AS MATERIALIZED ({place}), pos AS MATERIALIZED ({pos}), near AS ({near}),
    found AS MATERIALIZED (SELECT r.*, row_number() OVER () AS n FROM ({rows}) r),
    logged AS ({logged})
    SELECT pos.inside, pos.campaign AS chosen, found.* FROM pos LEFT JOIN found ON TRUE ORDER BY found.n"""


def _nearby_request(who: Principal, lon: float, lat: float, *, radius_m: float, limit: int, mode: str,
                    campaign_id: int | None, only_unvisited: bool, purpose: str | None) -> dict[str, Any]:
    """The checked parameters of a nearby request (role, mode, radius, limit, position) and its audit row."""
    who.require_household_read()
    if mode not in MODES:
        raise InvalidInput(f"mode must be 'straight' or 'walk', got {mode!r}")
    _check_radius_limit(radius_m, limit)
    check_lonlat(lon, lat)
    _, params = building_scope(who.household_scope)
    visible_params = campaign_scope(who.area)[1]
    return {**params, **visible_params, **audit.read_entry_params(
                who, "read_masked", object_type="household", fields=PERSONAL_FIELDS,
                purpose=(purpose or "nearby households (field visit)")[:500]),
            "lon": lon, "lat": lat, "margin": SERVICE_MARGIN_M, "radius": radius_m, "limit": limit,
            "campaign_id": campaign_id, "only_unvisited": only_unvisited,
            "needs_campaign": campaign_id is not None or only_unvisited}


def nearby_statement(who: Principal, lon: float, lat: float, *, radius_m: float = 200.0, limit: int = 50,
                     campaign_id: int | None = None, only_unvisited: bool = False,
                     purpose: str | None = None) -> tuple[str, dict[str, Any]]:
    """The SQL of a straight-line nearby request (:func:`straight_sql`) and its parameters, checked."""
    params = _nearby_request(who, lon, lat, radius_m=radius_m, limit=limit, mode=STRAIGHT, campaign_id=campaign_id,
                             only_unvisited=only_unvisited, purpose=purpose)
    return straight_sql(who, campaign_chosen=campaign_id is not None, page=_page_size(limit)), params


def _straight_answer(rows: Sequence, params: dict[str, Any]) -> Nearby:
    """The :class:`Nearby` of the rows of :func:`straight_sql`, or the error its header row tells."""
    head = rows[0]
    if not head.inside:
        raise outside(params["lon"], params["lat"])
    _require_campaign(head.chosen, params)
    households = tuple(_household(r, head.chosen) for r in rows if r.id is not None)
    return Nearby(STRAIGHT, params["radius"], head.chosen, households, _buildings(households))


def _require_campaign(campaign: int | None, params: dict[str, Any]) -> None:
    if campaign is not None:
        return
    if params["campaign_id"] is not None:
        raise OutOfScope(f"no campaign {params['campaign_id']} in your area")
    if params["only_unvisited"]:
        raise InvalidInput("only_unvisited needs a campaign, and there is no open campaign in your area")


def nearby(session: Session, who: Principal, lon: float, lat: float, *, radius_m: float = 200.0, limit: int = 50,
           mode: str = "straight", campaign_id: int | None = None, only_unvisited: bool = False,
           purpose: str | None = None, metric_srid: int = 4547) -> Nearby:
    """Households around (lon, lat) (EPSG:4326) within ``radius_m`` metres, nearest first, at most ``limit``.

    ``mode`` 'straight': distance from the position to the building footprint (0 inside it); 'walk': distance
    on the footpath network to the building's point on surface (buildings the network does not reach within
    the radius are left out and counted in ``farther_on_foot``). Households of one building follow each
    other by unit, floor, room. ``campaign_id`` (default: the newest open campaign the caller sees) gives each
    household its visit status; ``only_unvisited`` keeps the campaign's households not yet visited.
    Outside the caller's scope nothing is returned. One audit row lists the households returned.
    """
    options = {"radius_m": radius_m, "limit": limit, "campaign_id": campaign_id, "only_unvisited": only_unvisited,
               "purpose": purpose}
    if mode == STRAIGHT:
        sql, params = nearby_statement(who, lon, lat, **options)
        return _straight_answer(session.execute(cached_text(sql), params).all(), params)
    params = _nearby_request(who, lon, lat, mode=mode, **options)
    campaign = _position_and_campaign(session, who, lon, lat, campaign_id)
    _require_campaign(campaign, params)
    scope, _ = building_scope(who.household_scope)
    rows, farther = _walk_rows(session, scope, {**params, "campaign": campaign or 0}, metric_srid)
    households = tuple(_household(r, campaign) for r in rows)
    audit_read(session, who, households, params["purpose"])
    return Nearby(mode, radius_m, campaign, households, _buildings(households), farther)


async def nearby_async(pool: aio.AsyncPool, who: Principal, lon: float, lat: float, *, mode: str = "straight",
                       in_session: Callable[..., Awaitable[Nearby]], radius_m: float = 200.0,
                       limit: int = 50, campaign_id: int | None = None, only_unvisited: bool = False,
                       purpose: str | None = None, metric_srid: int = 4547) -> Nearby:
    """:func:`nearby` from the event loop, in any ``mode``: straight-line as one statement on ``pool`` (the phone
    page's hot path, :func:`straight_sql`); walking needs a Session for pgRouting, so it runs :func:`nearby` through
    ``in_session(nearby, who, lon, lat, **options)`` (a callable that calls ``nearby(session, ...)`` in a worker
    thread and transaction of its own, e.g. ``api.deps.in_transaction`` bound to the request)."""
    options = {"radius_m": radius_m, "limit": limit, "campaign_id": campaign_id, "only_unvisited": only_unvisited,
               "purpose": purpose}
    if mode != STRAIGHT:
        return await in_session(nearby, who, lon, lat, mode=mode, metric_srid=metric_srid, **options)
    sql, params = nearby_statement(who, lon, lat, **options)
    return _straight_answer(await aio.fetch_all(pool, sql, params), params)


def _walk_rows(session: Session, scope: str, params: dict[str, Any], metric_srid: int) -> tuple[list, int]:
    """Household rows ordered by walking distance on the footpath network, and how many candidate buildings
    (within the straight-line radius) the network does not reach within it."""
    candidates = session.execute(cached_text(_near_buildings_sql(scope, WALK_CANDIDATES)), params).all()
    if not candidates:
        return [], 0
    points = [(params["lon"], params["lat"])] + [(c.x, c.y) for c in candidates]
    graph = net.build_graph(session, "walk", points, margin_m=params["radius"], metric_srid=metric_srid)
    walk = net.reach(session, graph, 0, params["radius"])[1:]
    reached = sorted((w, c.distance_m, c.building_id, c.x, c.y) for w, c in zip(walk, candidates, strict=True)
                     if math.isfinite(w))
    if not reached:
        return [], len(candidates)
    near = """SELECT u.building_id, u.ord, u.distance_m, u.walk_m, u.x, u.y
              FROM unnest(CAST(:ids AS bigint[]), CAST(:dist AS float8[]), CAST(:walk AS float8[]),
                          CAST(:xs AS float8[]), CAST(:ys AS float8[]))
                   WITH ORDINALITY AS u (building_id, distance_m, walk_m, x, y, ord)"""
    walk_m, dist, ids, xs, ys = (list(column) for column in zip(*reached, strict=True))
    page = _page_size(params["limit"])
    rows = session.execute(cached_text(f"WITH near AS ({near}) {_household_rows(('ord',), ':campaign', page)}"), {
        **params, "ids": ids, "dist": dist, "walk": walk_m, "xs": xs, "ys": ys}).all()
    return rows, len(candidates) - len(reached)


def _household(r, campaign: int | None) -> HouseholdView:
    status = None
    if campaign is not None:
        status = "not_targeted" if not r.targeted else "visited" if r.result else "unvisited"
    return HouseholdView(
        r.id, r.building_id, r.building_code, r.building_name, r.grid_id, r.unit, r.floor, r.room, r.residents,
        privacy.mask_name(r.head_name), privacy.mask_id_number(r.head_id_number), privacy.mask_phone(r.head_phone),
        tuple(r.tags or ()), (r.x, r.y), _round(r.distance_m), _round(r.walk_m), status, r.result, r.visited_at)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def _buildings(households: Sequence[HouseholdView]) -> tuple[BuildingView, ...]:
    """The buildings of ``households`` in order of first appearance, with counts of households returned."""
    out: dict[int, BuildingView] = {}
    for h in households:
        b = out.get(h.building_id)
        unvisited = (1 if h.status == "unvisited" else 0) if h.status is not None else None
        if b is None:
            out[h.building_id] = BuildingView(h.building_id, h.building_code, h.building_name, h.location,
                                              h.distance_m, h.walk_m, 1, unvisited)
        else:
            out[h.building_id] = BuildingView(b.id, b.code, b.name, b.location, b.distance_m, b.walk_m,
                                              b.households + 1, None if unvisited is None else b.unvisited + unvisited)
    return tuple(out.values())


def _total_sql(scope: str) -> str:
    """The number of (matching) households in scope within :radius metres (straight line) of the position."""
    return f"""
    SELECT count(*) AS total
    FROM buildings b JOIN households h ON h.building_id = b.id
    CROSS JOIN (SELECT ST_SetSRID(ST_Point(:lon, :lat), 4326)::geography AS g) p
    WHERE ST_DWithin(b.footprint::geography, p.g, :radius, false) AND {scope}
      AND {_MATCHING.format(campaign=":campaign", h="h")}"""


def total_statement(who: Principal, found: Nearby, lon: float, lat: float, *,
                    only_unvisited: bool = False) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters counting the households an answer ``found`` of :func:`nearby` was cut from: those
    in the caller's household scope (matching ``only_unvisited`` in ``found``'s campaign) whose building is
    within ``found.radius_m`` metres in a straight line of (lon, lat) (EPSG:4326), so that a page can tell "the
    nearest 100 of 412". Counts no personal field, so it is not audited (the list it goes with is)."""
    scope, params = building_scope(who.household_scope)
    return _total_sql(scope), {**params, "lon": lon, "lat": lat, "radius": found.radius_m,
                               "campaign": found.campaign_id or 0, "only_unvisited": only_unvisited}


async def total_async(pool: aio.AsyncPool, who: Principal, found: Nearby, lon: float, lat: float, *, limit: int,
                      only_unvisited: bool = False) -> int:
    """How many households ``found`` (an answer of :func:`nearby` asked with ``limit``) is the nearest of
    (:func:`total_statement`): its own length when a straight-line answer holds fewer than ``limit``, else one
    count on ``pool``. In walking mode the count is of the straight-line radius, so it includes the buildings the
    footpaths do not reach within it (``found.farther_on_foot``)."""
    if found.mode == STRAIGHT and len(found.households) < limit:
        return len(found.households)
    sql, params = total_statement(who, found, lon, lat, only_unvisited=only_unvisited)
    return int((await aio.fetch_all(pool, sql, params))[0].total)
