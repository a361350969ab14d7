"""Field work: households near a position, screening campaigns (排查), visits, coverage and visit routes.

Conventions:

* Positions are EPSG:4326 (lon, lat); the API converts GCJ-02 / BD-09 / EPSG inputs at the edge. Distances are
  metres: straight-line ones on geography (sphere; the expression index ``buildings_footprint_geog_gix`` serves
  both the ``ST_DWithin`` filter and the KNN ``<->`` order), walking ones on the footpath network (pgRouting,
  :mod:`spatial.store.network`) from the position to each building's point on surface.
* Scope (:class:`spatial.access.Principal`): household rows follow ``who.household_scope`` (admin everything;
  a grid worker the households of the grids assigned to them; planners and inspectors the subtree of their
  ``scope_code``; anyone else nothing); campaigns and grids follow ``who.area``. Asking about a place outside
  one's scope returns nothing rather than an error, so the answer does not tell whether anybody lives there; an
  id outside it (campaign, household) is :class:`~spatial.errors.OutOfScope` (404, audited). Viewers and
  auditors get 403 on every household read (:meth:`~spatial.access.Principal.require_household_read`).
* A campaign is changed (closed) only by someone whose area holds all of its grids; reads of a campaign seen in
  part (counts, coverage, unvisited) cover the part in the caller's scope.
* Personal data (head of household name, ID number, phone; tags) leaves masked (:mod:`spatial.privacy`). Every
  read that returns households writes one audit row listing their ids, the fields and the purpose, in the same
  transaction. An unmasked value needs :func:`reveal`: a reason, a grid worker of the household's grid (or an
  admin), and its own audit row; planners, inspectors and viewers cannot reveal.
* Campaign targets are the households of the campaign's grids when it opened (the grid they were in is kept), so
  coverage = households with a visit / households targeted does not move when grids are redrawn. Campaign
  scope is decided on the target's grid.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial import privacy
from spatial.access import Principal
from spatial.analysis import routing
from spatial.errors import Conflict, Forbidden, InvalidInput, NotFound, OutOfScope
from spatial.geometry.codes import division_level, scope_prefix
from spatial.personal_keys import PersonalKeys
from spatial.store import aio, audit, persons
from spatial.store import network as net
from spatial.store.engine import cached_text
from spatial.store.scope import building_scope, grid_scope  # noqa: F401 (patrols, coverage)
from spatial.vocab import VISIT_RESULTS

MAX_RADIUS_M = 2000.0
MAX_LIMIT = 500
WALK_CANDIDATES = 400             # buildings considered for walking distance (nearest by straight line)
SERVICE_MARGIN_M = 2000.0         # a position this far outside every division/grid is outside the service area
DEFAULT_FLAG_DISTANCE_M = 100.0
MAX_UNVISITED = 20_000
PERSONAL_FIELDS = ("head_name", "head_id_number", "head_phone", "tags")
REVEALABLE = ("head_name", "head_id_number", "head_phone")
REVEAL_ROLES = ("grid_worker",)
CAMPAIGN_ROLES = ("planner",)
VISIT_ROLES = ("grid_worker",)
MIN_REASON = 4
FUTURE_SLACK = timedelta(minutes=5)


# -- positions ----------------------------------------------------------------------------------------------------


# Inside a division or grid (point in polygon, cheap), else within the margin of one (geography, metres); the
# bounding-box prefilter of 0.05 degree (over 2.7 km below latitude 60) only lets the GiST indexes help.
_IN_SERVICE_AREA = """(
    EXISTS (SELECT 1 FROM divisions d WHERE d.boundary && ST_SetSRID(ST_Point(:lon, :lat), 4326)
              AND ST_Intersects(d.boundary, ST_SetSRID(ST_Point(:lon, :lat), 4326)))
 OR EXISTS (SELECT 1 FROM divisions d WHERE d.boundary && ST_Expand(ST_SetSRID(ST_Point(:lon, :lat), 4326), 0.05)
              AND ST_DWithin(d.boundary::geography, ST_SetSRID(ST_Point(:lon, :lat), 4326)::geography, :margin, false))
 OR EXISTS (SELECT 1 FROM grids g WHERE g.boundary && ST_Expand(ST_SetSRID(ST_Point(:lon, :lat), 4326), 0.05)
              AND ST_DWithin(g.boundary::geography, ST_SetSRID(ST_Point(:lon, :lat), 4326)::geography, :margin, false)))"""


def _check_lonlat(lon: float, lat: float) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput(f"position ({lon}, {lat}) is not a longitude/latitude", lon=lon, lat=lat)


def _outside(lon: float, lat: float) -> InvalidInput:
    return InvalidInput("the position is outside the service area (no community or grid within "
                        f"{SERVICE_MARGIN_M:g} m); check the coordinates and their crs (GCJ-02 for phones "
                        "and WeChat, EPSG:4326 for GPS)", lon=lon, lat=lat)


def check_position(session: Session, lon: float, lat: float) -> None:
    """InvalidInput unless (lon, lat) is a finite WGS 84 position inside, or within :data:`SERVICE_MARGIN_M`
    metres of, a division or grid this server manages (the service area). Says nothing about the caller's scope."""
    _check_lonlat(lon, lat)
    inside = session.execute(text(f"SELECT {_IN_SERVICE_AREA}"),
                             {"lon": lon, "lat": lat, "margin": SERVICE_MARGIN_M}).scalar_one()
    if not inside:
        raise _outside(lon, lat)


def _position_and_campaign(session: Session, who: Principal, lon: float, lat: float,
                           campaign_id: int | None = None) -> int | None:
    """:func:`check_position` and the campaign (``campaign_id`` if the caller sees it, else the newest open one the
    caller sees; None if none) in one round trip."""
    _check_lonlat(lon, lat)
    _, params = _visible_sql(who)
    inside, campaign = session.execute(cached_text(_place_sql(who, chosen=campaign_id is not None)), {
        **params, "lon": lon, "lat": lat, "margin": SERVICE_MARGIN_M, "campaign_id": campaign_id}).one()
    if not inside:
        raise _outside(lon, lat)
    return campaign


def _place_sql(who: Principal, *, chosen: bool) -> str:
    """One row: ``inside`` the service area (:data:`_IN_SERVICE_AREA`) and the ``campaign`` (:func:`_campaign_sql`)."""
    return f"SELECT {_IN_SERVICE_AREA} AS inside, {_campaign_sql(who, chosen=chosen)} AS campaign"


def _check_radius_limit(radius_m: float, limit: int) -> None:
    if not (math.isfinite(radius_m) and 1 <= radius_m <= MAX_RADIUS_M):
        raise InvalidInput(f"radius must be between 1 and {MAX_RADIUS_M:g} m, got {radius_m}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")


# -- results ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HouseholdView:
    """One household as field staff see it: personal fields already masked; ``location`` is its building's
    point on surface (lon, lat, EPSG:4326); distances in metres (``walk_m`` None unless walking mode);
    ``status`` 'visited' | 'unvisited' | 'not_targeted' for the campaign, None without one."""

    id: int
    building_id: int
    building_code: str | None
    building_name: str | None
    grid_id: int | None
    unit: str
    floor: int | None
    room: str
    residents: int
    head_name: str | None
    head_id_number: str | None
    head_phone: str | None
    tags: tuple[str, ...]
    location: tuple[float, float]
    distance_m: float | None = None
    walk_m: float | None = None
    status: str | None = None
    visit_result: str | None = None
    visited_at: datetime | None = None


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
LEFT JOIN campaign_visits v ON v.campaign_id = {campaign} AND v.household_id = h.id
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
    if mode not in ("straight", "walk"):
        raise InvalidInput(f"mode must be 'straight' or 'walk', got {mode!r}")
    _check_radius_limit(radius_m, limit)
    _check_lonlat(lon, lat)
    _, params = building_scope(who.household_scope)
    visible_params = _visible_sql(who)[1]
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
    params = _nearby_request(who, lon, lat, radius_m=radius_m, limit=limit, mode="straight", campaign_id=campaign_id,
                             only_unvisited=only_unvisited, purpose=purpose)
    return straight_sql(who, campaign_chosen=campaign_id is not None, page=_page_size(limit)), params


def _straight_answer(rows: Sequence, params: dict[str, Any]) -> Nearby:
    """The :class:`Nearby` of the rows of :func:`straight_sql`, or the error its header row tells."""
    head = rows[0]
    if not head.inside:
        raise _outside(params["lon"], params["lat"])
    _require_campaign(head.chosen, params)
    households = tuple(_household(r, head.chosen) for r in rows if r.id is not None)
    return Nearby("straight", params["radius"], head.chosen, households, _buildings(households))


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
    if mode == "straight":
        sql, params = nearby_statement(who, lon, lat, **options)
        return _straight_answer(session.execute(cached_text(sql), params).all(), params)
    params = _nearby_request(who, lon, lat, mode=mode, **options)
    campaign = _position_and_campaign(session, who, lon, lat, campaign_id)
    _require_campaign(campaign, params)
    scope, _ = building_scope(who.household_scope)
    rows, farther = _walk_rows(session, scope, {**params, "campaign": campaign or 0}, metric_srid)
    households = tuple(_household(r, campaign) for r in rows)
    _audit_read(session, who, households, params["purpose"])
    return Nearby(mode, radius_m, campaign, households, _buildings(households), farther)


async def nearby_async(pool: aio.AsyncPool, who: Principal, lon: float, lat: float, *, radius_m: float = 200.0,
                       limit: int = 50, campaign_id: int | None = None, only_unvisited: bool = False,
                       purpose: str | None = None) -> Nearby:
    """:func:`nearby` in straight-line mode as one statement on the event loop (the phone page's hot path)."""
    sql, params = nearby_statement(who, lon, lat, radius_m=radius_m, limit=limit, campaign_id=campaign_id,
                                   only_unvisited=only_unvisited, purpose=purpose)
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


def _audit_read(session: Session, who: Principal, households: Sequence[HouseholdView], purpose: str) -> None:
    """One audit row per request that returned households: their ids, the (masked) fields, the purpose."""
    if households:
        audit.record_read(session, who, "read_masked", object_type="household",
                          object_id=[h.id for h in households], fields=PERSONAL_FIELDS,
                          purpose=purpose[:500])


# -- reveal -------------------------------------------------------------------------------------------------------


def reveal(session: Session, who: Principal, household_id: int, reason: str,
           fields: Sequence[str] = REVEALABLE, *, per_hour: int = 30,
           keys: Callable[[], PersonalKeys] | None = None) -> dict[str, Any]:
    """The unmasked ``fields`` of one household, for a stated ``reason`` (at least 4 characters), audited.

    Only a grid worker of the household's grid (or an admin) may reveal; other roles get Forbidden, and a
    household outside the worker's grids is OutOfScope (404, the same answer as one that does not exist). At most
    ``per_hour`` reveals per user in any hour (TooManyRequests beyond). A household of the population ledger
    (a current head in ``persons``) has its head's ID and phone numbers opened with ``keys()`` (the personal-data
    keys, :mod:`spatial.personal_keys`; KeyUnavailable, 503, when they are not configured).
    """
    who.require_role(*REVEAL_ROLES)
    audit.require_below_rate(session, who, "reveal", per_hour)
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON or len(reason) > 500:
        raise InvalidInput(f"say why you need the full values (a reason of {MIN_REASON}–500 characters)")
    unknown = set(fields) - set(REVEALABLE)
    if unknown or not fields:
        raise InvalidInput(f"fields to reveal must be among {', '.join(REVEALABLE)}")
    scope, params = building_scope(who.household_scope)
    row = session.execute(text(f"""
        SELECT h.id, h.head_name, h.head_id_number, h.head_phone FROM households h JOIN buildings b ON b.id = h.building_id
        WHERE h.id = :id AND {scope}"""), {**params, "id": household_id}).mappings().one_or_none()
    if row is None:
        raise OutOfScope(f"no household {household_id} in your area")
    values = persons.open_heads(session, [row], keys)[0] if {"head_id_number", "head_phone"} & set(fields) else row
    audit.record(session, who, "reveal", object_type="household", object_id=household_id, fields=list(fields),
                 purpose=reason)
    return {"id": row["id"], **{f: values[f] for f in fields}}


# -- campaigns ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Campaign:
    id: int
    name: str
    description: str | None
    division_code: str | None
    status: str
    flag_distance_m: float
    created_by: str
    created_at: datetime
    closed_at: datetime | None
    grid_ids: tuple[int, ...] = ()
    targeted: int = 0
    screened: int = 0


_CAMPAIGN_COLUMNS = ("c.id, c.name, c.description, c.division_code, c.status, c.flag_distance_m, c.created_by, "
                     "c.created_at, c.closed_at")


def _visible_sql(who: Principal) -> tuple[str, dict[str, Any]]:
    """SQL condition on a ``campaigns`` alias ``c``: one of its grids is in the caller's area."""
    scope, params = grid_scope(who.area)
    return (f"EXISTS (SELECT 1 FROM campaign_grids cg JOIN grids g ON g.id = cg.grid_id "
            f"WHERE cg.campaign_id = c.id AND {scope})"), params


def _campaign_sql(who: Principal, *, chosen: bool) -> str:
    """Scalar SQL: the campaign ``:campaign_id`` if ``chosen`` and the caller sees one of its grids, else the
    newest open campaign the caller sees; NULL if there is none (parameters of :func:`_visible_sql`)."""
    visible, _ = _visible_sql(who)
    if chosen:
        return f"(SELECT c.id FROM campaigns c WHERE c.id = :campaign_id AND {visible})"
    return (f"(SELECT c.id FROM campaigns c WHERE c.status = 'open' AND {visible} "
            "ORDER BY c.created_at DESC, c.id DESC LIMIT 1)")


def _visible_campaign(session: Session, who: Principal, campaign_id: int) -> int:
    """``campaign_id`` if the caller sees at least one of its grids; OutOfScope otherwise."""
    _, params = _visible_sql(who)
    found = session.execute(cached_text(f"SELECT {_campaign_sql(who, chosen=True)}"),
                            {**params, "campaign_id": campaign_id}).scalar_one()
    if found is None:
        raise OutOfScope(f"no campaign {campaign_id} in your area")
    return found


def _whole_campaign(session: Session, who: Principal, campaign_id: int) -> int:
    """``campaign_id`` if every grid of it lies in the caller's area (to change it as a whole); OutOfScope if the
    caller sees none of it, Forbidden if only a part."""
    _visible_campaign(session, who, campaign_id)
    scope, params = grid_scope(who.area)
    total, outside = session.execute(text(f"""
        SELECT count(*), count(*) FILTER (WHERE NOT ({scope}))
        FROM campaign_grids cg JOIN grids g ON g.id = cg.grid_id WHERE cg.campaign_id = :c"""),
        {**params, "c": campaign_id}).one()
    if outside:
        raise Forbidden(f"campaign {campaign_id} also covers {outside} of its {total} grids outside your area; "
                        "ask someone whose area holds all of it (a planner of the wider division, or an admin)")
    return campaign_id


def current_campaign_id(session: Session, who: Principal) -> int | None:
    """The newest open campaign the caller sees, or None."""
    _, params = _visible_sql(who)
    return session.execute(cached_text(f"SELECT {_campaign_sql(who, chosen=False)}"), params).scalar_one()


def open_campaign(session: Session, who: Principal, name: str, *, grid_codes: Sequence[str] = (),
                  division_code: str | None = None, flag_distance_m: float = DEFAULT_FLAG_DISTANCE_M,
                  description: str | None = None) -> Campaign:
    """Open a screening campaign over ``grid_codes`` or every current grid of ``division_code`` (a community or
    subdistrict), targeting every household in their buildings now. Planners (within their scope) and admins.

    ``flag_distance_m`` (metres, 1–5000): visits recorded farther than this from the building are flagged.
    """
    who.require_role(*CAMPAIGN_ROLES)
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise InvalidInput("a campaign needs a name of 1–200 characters")
    if bool(grid_codes) == bool(division_code):
        raise InvalidInput("open a campaign over either a list of grid codes or one division code")
    if not (math.isfinite(flag_distance_m) and 1 <= flag_distance_m <= 5000):
        raise InvalidInput(f"flag_distance_m must be between 1 and 5000 m, got {flag_distance_m}")
    if description is not None and len(description) > 2000:
        raise InvalidInput("the description is limited to 2000 characters")
    grid_ids = _campaign_grids(session, who, tuple(grid_codes), division_code)
    campaign_id = session.execute(text("""
        INSERT INTO campaigns (name, description, division_code, flag_distance_m, created_by)
        VALUES (:name, :description, :division, :flag, :by) RETURNING id"""),
        {"name": name, "description": description, "division": division_code, "flag": flag_distance_m,
         "by": who.username}).scalar_one()
    session.execute(text("INSERT INTO campaign_grids (campaign_id, grid_id) SELECT :c, unnest(CAST(:g AS integer[]))"),
                    {"c": campaign_id, "g": grid_ids})
    targeted = session.execute(text("""
        INSERT INTO campaign_targets (campaign_id, household_id, grid_id)
        SELECT :c, h.id, b.grid_id FROM households h JOIN buildings b ON b.id = h.building_id
        WHERE b.grid_id = ANY(CAST(:g AS integer[]))"""), {"c": campaign_id, "g": grid_ids}).rowcount
    if targeted == 0:
        raise InvalidInput("there are no households in these grids to screen")
    audit.record(session, who, "open_campaign", object_type="campaign", object_id=campaign_id,
                 purpose=f"{name}: {len(grid_ids)} grids, {targeted} households")
    return get_campaign(session, who, campaign_id)


def _campaign_grids(session: Session, who: Principal, grid_codes: tuple[str, ...],
                    division_code: str | None) -> list[int]:
    if division_code is not None:
        try:
            level = division_level(division_code)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        if level == "district" and who.role != "admin":
            raise InvalidInput("open campaigns over a community or subdistrict, or a list of grids")
        if not who.may_see_code(division_code):
            raise OutOfScope(f"no division {division_code} in your area")
        ids = session.execute(text("SELECT id FROM grids WHERE retired_at IS NULL AND community_code LIKE :p "
                                   "ORDER BY id"), {"p": scope_prefix(division_code) + "%"}).scalars().all()
        if not ids:
            raise NotFound(f"no grids in division {division_code}")
        return list(ids)
    rows = session.execute(text("SELECT id, code FROM grids WHERE retired_at IS NULL AND code = ANY(:codes)"),
                           {"codes": list(grid_codes)}).all()
    found = {r.code: r.id for r in rows if who.may_see_code(r.code)}
    missing = sorted(set(grid_codes) - set(found))
    if missing:
        raise OutOfScope(f"no current grid {', '.join(missing[:10])} in your area", grid_codes=missing)
    return sorted(set(found.values()))


def get_campaign(session: Session, who: Principal, campaign_id: int) -> Campaign:
    """The campaign with counts over the caller's part of it (targeted, screened); OutOfScope outside scope."""
    found = list_campaigns(session, who, campaign_id=campaign_id)
    if not found:
        raise OutOfScope(f"no campaign {campaign_id} in your area")
    return found[0]


def list_campaigns(session: Session, who: Principal, *, status: str | None = None,
                   campaign_id: int | None = None) -> list[Campaign]:
    """Campaigns with a grid in the caller's scope, newest first, with targeted/screened counts of that part."""
    if status is not None and status not in ("open", "closed"):
        raise InvalidInput("status must be 'open' or 'closed'")
    visible, params = _visible_sql(who)
    scope, _ = grid_scope(who.area)
    rows = session.execute(text(f"""
        SELECT {_CAMPAIGN_COLUMNS},
               (SELECT array_agg(cg.grid_id ORDER BY cg.grid_id) FROM campaign_grids cg JOIN grids g ON g.id = cg.grid_id
                 WHERE cg.campaign_id = c.id AND {scope}) AS grid_ids,
               s.targeted, s.screened
        FROM campaigns c
        CROSS JOIN LATERAL (
            SELECT count(*) AS targeted, count(v.household_id) AS screened
            FROM campaign_targets t JOIN grids g ON g.id = t.grid_id
            LEFT JOIN campaign_visits v ON v.campaign_id = t.campaign_id AND v.household_id = t.household_id
            WHERE t.campaign_id = c.id AND {scope}) s
        WHERE {visible} AND (CAST(:status AS text) IS NULL OR c.status = :status)
          AND (CAST(:cid AS integer) IS NULL OR c.id = :cid)
        ORDER BY c.created_at DESC, c.id DESC"""), {**params, "status": status, "cid": campaign_id}).mappings().all()
    return [Campaign(**{**r, "grid_ids": tuple(r["grid_ids"] or ())}) for r in rows]


def close_campaign(session: Session, who: Principal, campaign_id: int) -> Campaign:
    """Close an open campaign (no more visits). Planners whose area holds every grid of it, and admins
    (:func:`_whole_campaign`); Conflict if already closed."""
    who.require_role(*CAMPAIGN_ROLES)
    _whole_campaign(session, who, campaign_id)
    closed = session.execute(text("UPDATE campaigns SET status = 'closed', closed_at = now() "
                                  "WHERE id = :id AND status = 'open' RETURNING id"), {"id": campaign_id}).scalar()
    if closed is None:
        raise Conflict(f"campaign {campaign_id} is already closed")
    audit.record(session, who, "close_campaign", object_type="campaign", object_id=campaign_id)
    return get_campaign(session, who, campaign_id)


# -- visits -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Visit:
    id: int
    campaign_id: int
    household_id: int
    result: str
    visited_at: datetime
    recorded_at: datetime
    note: str | None
    worker: str
    position: tuple[float, float]
    distance_m: float
    far_from_building: bool
    flag_distance_m: float


_INSERT_VISIT = """
WITH c AS (SELECT id, flag_distance_m FROM campaigns WHERE id = :campaign),
     d AS (SELECT ST_Distance(b.footprint::geography, ST_SetSRID(ST_Point(:lon, :lat), 4326)::geography) AS m
           FROM households h JOIN buildings b ON b.id = h.building_id WHERE h.id = :household)
INSERT INTO campaign_visits (campaign_id, household_id, result, visited_at, note, worker, worker_position,
                             distance_m, far_from_building)
SELECT c.id, :household, :result, :visited_at, :note, :worker, ST_SetSRID(ST_Point(:lon, :lat), 4326),
       d.m, d.m > c.flag_distance_m
FROM c, d
ON CONFLICT ON CONSTRAINT campaign_visits_once DO NOTHING
RETURNING id, campaign_id, household_id, result, visited_at, recorded_at, note, worker, distance_m, far_from_building"""


def record_visit(session: Session, who: Principal, campaign_id: int, household_id: int, *, result: str,
                 lon: float, lat: float, visited_at: datetime | None = None, note: str | None = None) -> Visit:
    """Record the visit of a household in a campaign, from the worker's position (lon, lat, EPSG:4326).

    Grid workers (for the households of their grids in the campaign) and admins. ``visited_at`` defaults to
    now; it may not lie in the future or before the campaign opened. The distance from the position to the
    building footprint (metres, 0 inside) is stored, and the visit flagged when it exceeds the campaign's
    ``flag_distance_m``. A second visit of the same household is Conflict (409) and stores nothing.
    """
    who.require_role(*VISIT_ROLES)
    if result not in VISIT_RESULTS:
        raise InvalidInput(f"result must be one of {', '.join(VISIT_RESULTS)}, got {result!r}")
    if note is not None and len(note) > 1000:
        raise InvalidInput("a note is limited to 1000 characters")
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput(f"position ({lon}, {lat}) is not a longitude/latitude")
    campaign = get_campaign(session, who, campaign_id)
    if campaign.status != "open":
        raise Conflict(f"campaign {campaign_id} is closed; no more visits can be recorded")
    when = _visit_time(visited_at, campaign.created_at)
    scope, params = grid_scope(who.household_scope)
    target = session.execute(text(f"""
        SELECT 1 FROM campaign_targets t JOIN grids g ON g.id = t.grid_id
        WHERE t.campaign_id = :c AND t.household_id = :h AND {scope}"""),
        {**params, "c": campaign_id, "h": household_id}).scalar()
    if target is None:
        raise OutOfScope(f"household {household_id} is not on your list for campaign {campaign_id}")
    row = session.execute(text(_INSERT_VISIT), {
        "campaign": campaign_id, "household": household_id, "result": result, "visited_at": when, "note": note,
        "worker": who.username, "lon": lon, "lat": lat}).mappings().one_or_none()
    if row is None:
        earlier = session.execute(text("SELECT worker, visited_at FROM campaign_visits "
                                       "WHERE campaign_id = :c AND household_id = :h"),
                                  {"c": campaign_id, "h": household_id}).one()
        raise Conflict(f"household {household_id} was already visited in campaign {campaign_id} "
                       f"(by {earlier.worker} at {earlier.visited_at:%Y-%m-%d %H:%M} UTC); nothing was recorded",
                       visited_by=earlier.worker, visited_at=earlier.visited_at.isoformat())
    audit.record(session, who, "visit", object_type="household", object_id=household_id,
                 purpose=f"campaign {campaign_id}: {result}")
    return Visit(**row, position=(lon, lat), flag_distance_m=campaign.flag_distance_m)


def _visit_time(visited_at: datetime | None, opened: datetime) -> datetime:
    now = datetime.now(UTC)
    if visited_at is None:
        return now
    if visited_at.tzinfo is None:
        raise InvalidInput("visited_at needs a time zone (e.g. 2026-11-23T10:00:00+08:00)")
    if visited_at > now + FUTURE_SLACK:
        raise InvalidInput("visited_at lies in the future")
    if visited_at < opened - FUTURE_SLACK:
        raise InvalidInput("visited_at lies before the campaign opened")
    return visited_at


# -- coverage -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoverageRow:
    """Households screened (with a visit) / targeted for one grid, community or the whole (visible) campaign.

    ``coverage`` is the ratio (0–1; 1 when nothing is targeted), ``flagged`` visits recorded far from the
    building, ``follow_up`` visits whose result needs more work (follow_up, refused).
    """

    level: str
    code: str | None
    name: str | None
    targeted: int
    screened: int
    flagged: int
    follow_up: int

    @property
    def coverage(self) -> float:
        return self.screened / self.targeted if self.targeted else 1.0


def coverage(session: Session, who: Principal, campaign_id: int) -> list[CoverageRow]:
    """Coverage of a campaign per grid (by code), per community, and in total, over the caller's part of it.

    One SQL query (GROUPING SETS over targets left-joined to visits); the total comes last.
    """
    _visible_campaign(session, who, campaign_id)
    scope, params = grid_scope(who.area)
    rows = session.execute(text(f"""
        SELECT GROUPING(g.code) AS g_grid, GROUPING(g.community_code) AS g_comm,
               g.code, max(g.name) AS grid_name, g.community_code, max(d.name) AS community_name,
               count(*) AS targeted, count(v.household_id) AS screened,
               count(*) FILTER (WHERE v.far_from_building) AS flagged,
               count(*) FILTER (WHERE v.result IN ('follow_up', 'refused')) AS follow_up
        FROM campaign_targets t
        JOIN grids g ON g.id = t.grid_id
        LEFT JOIN divisions d ON d.code = g.community_code
        LEFT JOIN campaign_visits v ON v.campaign_id = t.campaign_id AND v.household_id = t.household_id
        WHERE t.campaign_id = :c AND {scope}
        GROUP BY GROUPING SETS ((g.community_code, g.code), (g.community_code), ())
        ORDER BY GROUPING(g.community_code), GROUPING(g.code), g.community_code, g.code"""),
        {**params, "c": campaign_id}).all()
    out = []
    for r in rows:
        if not r.g_comm and not r.g_grid:
            level, code, name = "grid", r.code, r.grid_name
        elif not r.g_comm:
            level, code, name = "community", r.community_code, r.community_name
        else:
            level, code, name = "campaign", None, None
        out.append(CoverageRow(level, code, name, r.targeted, r.screened, r.flagged, r.follow_up))
    if not out:
        out.append(CoverageRow("campaign", None, None, 0, 0, 0, 0))
    return out


def unvisited(session: Session, who: Principal, campaign_id: int, *, grid_id: int | None = None,
              limit: int = MAX_UNVISITED, purpose: str | None = None) -> list[HouseholdView]:
    """Households of the campaign (in the caller's scope, optionally one grid) with no visit yet, by grid,
    building, unit, floor and room; masked and audited (one row for the request). Forbidden for roles that read
    no household data (viewers, auditors)."""
    household_scope = who.require_household_read()
    _visible_campaign(session, who, campaign_id)
    if not 1 <= limit <= MAX_UNVISITED:
        raise InvalidInput(f"limit must be between 1 and {MAX_UNVISITED}")
    scope, params = grid_scope(household_scope)
    rows = session.execute(text(f"""
        SELECT h.id, h.building_id, b.code AS building_code, b.name AS building_name, t.grid_id, h.unit, h.floor,
               h.room, h.residents, h.head_name, h.head_id_number, h.head_phone, h.tags,
               ST_X(ST_PointOnSurface(b.footprint)) AS x, ST_Y(ST_PointOnSurface(b.footprint)) AS y
        FROM campaign_targets t
        JOIN grids g ON g.id = t.grid_id
        JOIN households h ON h.id = t.household_id
        JOIN buildings b ON b.id = h.building_id
        WHERE t.campaign_id = :c AND {scope} AND (CAST(:grid AS integer) IS NULL OR t.grid_id = :grid)
          AND NOT EXISTS (SELECT 1 FROM campaign_visits v WHERE v.campaign_id = t.campaign_id
                          AND v.household_id = t.household_id)
        ORDER BY g.code, b.code, b.id, h.unit, h.floor NULLS LAST, h.room, h.id
        LIMIT :limit"""), {**params, "c": campaign_id, "grid": grid_id, "limit": limit}).all()
    out = []
    for r in rows:
        masked = privacy.mask_record({"head_name": r.head_name, "head_id_number": r.head_id_number,
                                      "head_phone": r.head_phone})
        out.append(HouseholdView(id=r.id, building_id=r.building_id, building_code=r.building_code,
                                 building_name=r.building_name, grid_id=r.grid_id, unit=r.unit, floor=r.floor,
                                 room=r.room, residents=r.residents, tags=tuple(r.tags or ()), location=(r.x, r.y),
                                 status="unvisited", **masked))
    _audit_read(session, who, out, purpose or f"unvisited households of campaign {campaign_id}")
    return out


# -- grids ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridView:
    id: int
    code: str
    name: str
    boundary: Any  # shapely MultiPolygon, EPSG:4326


def my_grids(session: Session, who: Principal, limit: int = 1000) -> list[GridView]:
    """The current grids in the caller's scope (a grid worker's assigned grids), by code, at most ``limit``."""
    scope, params = grid_scope(who.area)
    rows = session.execute(text(f"""SELECT g.id, g.code, g.name, ST_AsBinary(g.boundary) AS wkb FROM grids g
                                    WHERE g.retired_at IS NULL AND {scope} ORDER BY g.code LIMIT :limit"""),
                           {**params, "limit": limit}).all()
    return [GridView(r.id, r.code, r.name, shapely.from_wkb(bytes(r.wkb))) for r in rows]


# -- visit routes -------------------------------------------------------------------------------------------------


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
    tour: routing.Tour
    stops: tuple[RouteStop, ...]              # in visiting order
    unreachable: tuple[RouteStop, ...] = field(default=())


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
    if nearest is not None and not 1 <= nearest <= routing.MAX_STOPS:
        raise InvalidInput(f"nearest must be between 1 and {routing.MAX_STOPS}")
    campaign = None
    if household_ids:
        stops = _chosen_stops(session, who, household_ids)
    else:
        campaign = _visible_campaign(session, who, campaign_id) if campaign_id is not None \
            else current_campaign_id(session, who)
        if campaign is None:
            raise InvalidInput("there is no open campaign in your area: choose households to visit")
        stops = _unvisited_stops(session, who, campaign, grid_id, lon, lat)
    if not stops:
        raise InvalidInput("nothing left to visit here")
    stops = stops[:nearest] if nearest else stops
    if len(stops) > routing.MAX_STOPS:
        raise InvalidInput(f"{len(stops)} buildings to visit; ask for the nearest {routing.MAX_STOPS} or fewer")
    by_id = {s.building_id: s for s in stops}
    tour = routing.plan_tour(session, (lon, lat), [routing.Stop(s.building_id, *s.location) for s in stops],
                             end=end, closed=closed, network="walk", speed_mps=speed_mps,
                             time_limit_s=time_limit_s, skip_unreachable=True, metric_srid=metric_srid)
    return VisitRoute(campaign, tour, tuple(by_id[k] for k in tour.order), tuple(by_id[k] for k in tour.unreachable))


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
