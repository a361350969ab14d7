"""Screening campaigns (排查): opening and closing them, visits of households, progress and what is left to visit.

* A campaign is opened over grids (or every current grid of a community or subdistrict) by a planner; its
  targets are the households of those grids when it opened (the grid they were in is kept), so progress =
  households with a visit / households targeted does not move when grids are redrawn. Campaign scope is decided
  on the target's grid: campaigns and grids follow ``who.area`` (:func:`spatial.store.scope.campaign_scope`),
  households ``who.household_scope``; a campaign id outside it is :class:`~spatial.errors.OutOfScope` (404).
* A campaign is changed (closed) only by someone whose area holds all of its grids; reads of a campaign seen in
  part (counts, progress, unvisited) cover the part in the caller's scope.
* A visit is recorded by a grid worker from their position (EPSG:4326 lon, lat); its distance to the building
  footprint (metres, geography) is kept and the visit flagged beyond the campaign's ``flag_distance_m``.
* A visit is never changed; its result is corrected beside it (:mod:`spatial.store.visit_corrections`), and reads
  that show a result (progress's ``follow_up``) read the view ``campaign_visits_current``.
* Household lists are masked and audited (:mod:`spatial.store.household_reads`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial import privacy
from spatial.access import Principal
from spatial.errors import Conflict, Forbidden, InvalidInput, NotFound, OutOfScope
from spatial.geometry.codes import division_level, scope_prefix
from spatial.store import audit, risk_zones
from spatial.store.engine import cached_text
from spatial.store.household_reads import HouseholdView, audit_read
from spatial.store.scope import campaign_scope, grid_scope, prefix_bounds, prefix_range
from spatial.vocab import VISIT_RESULTS

DEFAULT_FLAG_DISTANCE_M = 100.0
MAX_UNVISITED = 20_000
CAMPAIGN_ROLES = ("planner",)
VISIT_ROLES = ("grid_worker",)
FUTURE_SLACK = timedelta(minutes=5)


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
    persons_targeted: int = 0
    persons_screened: int = 0
    risk_zone_id: int | None = None


_CAMPAIGN_COLUMNS = ("c.id, c.name, c.description, c.division_code, c.status, c.flag_distance_m, c.created_by, "
                     "c.created_at, c.closed_at, "
                     "(SELECT rc.zone_id FROM risk_zone_campaigns rc WHERE rc.campaign_id = c.id) AS risk_zone_id")


def campaign_sql(who: Principal, *, chosen: bool) -> str:
    """Scalar SQL: the campaign ``:campaign_id`` if ``chosen`` and the caller sees one of its grids, else the
    newest open campaign the caller sees; NULL if there is none (parameters: those of
    :func:`~spatial.store.scope.campaign_scope` for ``who.area``)."""
    visible, _ = campaign_scope(who.area)
    if chosen:
        return f"(SELECT c.id FROM campaigns c WHERE c.id = :campaign_id AND {visible})"
    return (f"(SELECT c.id FROM campaigns c WHERE c.status = 'open' AND {visible} "
            "ORDER BY c.created_at DESC, c.id DESC LIMIT 1)")


def visible_campaign(session: Session, who: Principal, campaign_id: int) -> int:
    """``campaign_id`` if the caller sees at least one of its grids; OutOfScope otherwise."""
    _, params = campaign_scope(who.area)
    found = session.execute(cached_text(f"SELECT {campaign_sql(who, chosen=True)}"),
                            {**params, "campaign_id": campaign_id}).scalar_one()
    if found is None:
        raise OutOfScope(f"no campaign {campaign_id} in your area")
    return found


def _whole_campaign(session: Session, who: Principal, campaign_id: int) -> int:
    """``campaign_id`` if every grid of it lies in the caller's area (to change it as a whole); OutOfScope if the
    caller sees none of it, Forbidden if only a part."""
    visible_campaign(session, who, campaign_id)
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
    _, params = campaign_scope(who.area)
    return session.execute(cached_text(f"SELECT {campaign_sql(who, chosen=False)}"), params).scalar_one()


def open_campaign(session: Session, who: Principal, name: str, *, grid_codes: Sequence[str] = (),
                  division_code: str | None = None, flag_distance_m: float = DEFAULT_FLAG_DISTANCE_M,
                  description: str | None = None, risk_zone_id: int | None = None) -> Campaign:
    """Open a screening campaign over ``grid_codes`` or every current grid of ``division_code`` (a community or
    subdistrict), targeting every household in their buildings now; or over the risk zone ``risk_zone_id``,
    targeting the households in the zone now (:func:`spatial.store.risk_zones.zone_household_grids`; a household
    whose building has no grid cannot be targeted and is left out) in the grids holding them, each of which must lie
    in the caller's area. Planners (within their scope) and admins.

    ``flag_distance_m`` (metres, 1–5000): visits recorded farther than this from the building are flagged.
    """
    who.require_role(*CAMPAIGN_ROLES)
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise InvalidInput("a campaign needs a name of 1–200 characters")
    if sum(map(bool, (grid_codes, division_code, risk_zone_id))) != 1:
        raise InvalidInput("open a campaign over either a list of grid codes, one division code or one risk zone")
    if not (math.isfinite(flag_distance_m) and 1 <= flag_distance_m <= 5000):
        raise InvalidInput(f"flag_distance_m must be between 1 and 5000 m, got {flag_distance_m}")
    if description is not None and len(description) > 2000:
        raise InvalidInput("the description is limited to 2000 characters")
    zone_targets = _zone_targets(session, who, risk_zone_id) if risk_zone_id is not None else None
    grid_ids = (sorted({g for _, g in zone_targets}) if zone_targets is not None
                else _campaign_grids(session, who, tuple(grid_codes), division_code))
    campaign_id = session.execute(text("""
        INSERT INTO campaigns (name, description, division_code, flag_distance_m, created_by)
        VALUES (:name, :description, :division, :flag, :by) RETURNING id"""),
        {"name": name, "description": description, "division": division_code, "flag": flag_distance_m,
         "by": who.username}).scalar_one()
    if risk_zone_id is not None:
        session.execute(text("INSERT INTO risk_zone_campaigns (campaign_id, zone_id) VALUES (:c, :z)"),
                        {"c": campaign_id, "z": risk_zone_id})
    session.execute(text("INSERT INTO campaign_grids (campaign_id, grid_id) SELECT :c, unnest(CAST(:g AS integer[]))"),
                    {"c": campaign_id, "g": grid_ids})
    if zone_targets is not None:
        targeted = session.execute(text("""
            INSERT INTO campaign_targets (campaign_id, household_id, grid_id)
            SELECT :c, t.h, t.g FROM unnest(CAST(:h AS bigint[]), CAST(:g AS integer[])) AS t(h, g)"""),
            {"c": campaign_id, "h": [h for h, _ in zone_targets], "g": [g for _, g in zone_targets]}).rowcount
    else:
        targeted = session.execute(text("""
            INSERT INTO campaign_targets (campaign_id, household_id, grid_id)
            SELECT :c, h.id, b.grid_id FROM households h JOIN buildings b ON b.id = h.building_id
            WHERE b.grid_id = ANY(CAST(:g AS integer[]))"""), {"c": campaign_id, "g": grid_ids}).rowcount
    if targeted == 0:
        raise InvalidInput("there are no households in these grids to screen")
    audit.record(session, who, "open_campaign", object_type="campaign", object_id=campaign_id,
                 purpose=f"{name}: {len(grid_ids)} grids, {targeted} households")
    return get_campaign(session, who, campaign_id)


def _zone_targets(session: Session, who: Principal, zone_id: int) -> list[tuple[int, int]]:
    """(household id, grid id) of the households in the risk zone now, each grid in the caller's area."""
    risk_zones.get_zone(session, who, zone_id)
    now = session.execute(text("SELECT now()")).scalar_one()
    pairs = [(h, g) for h, g in risk_zones.zone_household_grids(session, zone_id, now) if g is not None]
    if not pairs:
        raise InvalidInput(f"risk zone {zone_id} holds no household now", code="risk_zones.empty", zone=zone_id)
    scope, params = grid_scope(who.area)
    outside = session.execute(text(f"SELECT g.code FROM grids g WHERE g.id = ANY(:ids) AND NOT ({scope}) "
                                   "ORDER BY g.code"), {**params, "ids": sorted({g for _, g in pairs})}).scalars().all()
    if outside:
        raise Forbidden(f"risk zone {zone_id} has households in grids {', '.join(outside[:10])} outside your area",
                        code="scope.outside_area", what=", ".join(outside[:10]), area=who.scope_code or "")
    return pairs


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
        ids = session.execute(text("SELECT id FROM grids WHERE retired_at IS NULL AND "
                                   + prefix_range("community_code") + " ORDER BY id"),
                              prefix_bounds(scope_prefix(division_code))).scalars().all()
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


# The current residents (population ledger) of a campaign target ``t``: households without ledger rows count none.
_PERSONS = """LEFT JOIN LATERAL (SELECT count(*) AS n FROM persons p
                               WHERE p.household_id = t.household_id AND p.moved_out IS NULL) pc ON true"""


def list_campaigns(session: Session, who: Principal, *, status: str | None = None,
                   campaign_id: int | None = None) -> list[Campaign]:
    """Campaigns with a grid in the caller's scope, newest first, with targeted/screened counts of that part:
    households, and persons (不漏一人: the current residents of the population ledger living in the targeted
    households now, and in those visited; households not in the ledger count no person)."""
    if status is not None and status not in ("open", "closed"):
        raise InvalidInput("status must be 'open' or 'closed'")
    visible, params = campaign_scope(who.area)
    scope, _ = grid_scope(who.area)
    rows = session.execute(text(f"""
        SELECT {_CAMPAIGN_COLUMNS},
               (SELECT array_agg(cg.grid_id ORDER BY cg.grid_id) FROM campaign_grids cg JOIN grids g ON g.id = cg.grid_id
                 WHERE cg.campaign_id = c.id AND {scope}) AS grid_ids,
               s.targeted, s.screened, s.persons_targeted, s.persons_screened
        FROM campaigns c
        CROSS JOIN LATERAL (
            SELECT count(*) AS targeted, count(v.household_id) AS screened,
                   CAST(coalesce(sum(pc.n), 0) AS bigint) AS persons_targeted,
                   CAST(coalesce(sum(pc.n) FILTER (WHERE v.household_id IS NOT NULL), 0) AS bigint) AS persons_screened
            FROM campaign_targets t JOIN grids g ON g.id = t.grid_id
            LEFT JOIN campaign_visits v ON v.campaign_id = t.campaign_id AND v.household_id = t.household_id
            {_PERSONS}
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


# -- progress -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProgressRow:
    """Households screened (with a visit) / targeted for one grid, community or the whole (visible) campaign.

    ``ratio`` is screened / targeted (0–1; 1 when nothing is targeted; the API calls it the campaign's
    coverage), ``flagged`` visits recorded far from the building, ``follow_up`` visits whose result needs more
    work (follow_up, refused). ``persons_targeted`` / ``persons_screened``: the current residents (population
    ledger) of the targeted / the visited households (不漏一人), counted now (a resident added or moved out since
    the visit counts as the ledger says today).
    """

    level: str
    code: str | None
    name: str | None
    targeted: int
    screened: int
    flagged: int
    follow_up: int
    persons_targeted: int = 0
    persons_screened: int = 0

    @property
    def ratio(self) -> float:
        return self.screened / self.targeted if self.targeted else 1.0

    @property
    def persons_ratio(self) -> float:
        """persons_screened / persons_targeted (0–1; 1 when no one is targeted)."""
        return self.persons_screened / self.persons_targeted if self.persons_targeted else 1.0


def progress(session: Session, who: Principal, campaign_id: int) -> list[ProgressRow]:
    """Progress of a campaign (households screened / targeted, and their persons: :class:`ProgressRow`) per grid
    (by code), per community, and in total, over the caller's part of it.

    One SQL query (GROUPING SETS over targets left-joined to visits); the total comes last.
    """
    visible_campaign(session, who, campaign_id)
    scope, params = grid_scope(who.area)
    rows = session.execute(text(f"""
        SELECT GROUPING(g.code) AS g_grid, GROUPING(g.community_code) AS g_comm,
               g.code, max(g.name) AS grid_name, g.community_code, max(d.name) AS community_name,
               count(*) AS targeted, count(v.household_id) AS screened,
               count(*) FILTER (WHERE v.far_from_building) AS flagged,
               count(*) FILTER (WHERE v.result IN ('follow_up', 'refused')) AS follow_up,
               coalesce(sum(pc.n), 0) AS persons_targeted,
               coalesce(sum(pc.n) FILTER (WHERE v.household_id IS NOT NULL), 0) AS persons_screened
        FROM campaign_targets t
        JOIN grids g ON g.id = t.grid_id
        LEFT JOIN divisions d ON d.code = g.community_code
        LEFT JOIN campaign_visits_current v ON v.campaign_id = t.campaign_id AND v.household_id = t.household_id
        {_PERSONS}
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
        out.append(ProgressRow(level, code, name, r.targeted, r.screened, r.flagged, r.follow_up,
                               int(r.persons_targeted), int(r.persons_screened)))
    if not out:
        out.append(ProgressRow("campaign", None, None, 0, 0, 0, 0))
    return out


def unvisited(session: Session, who: Principal, campaign_id: int, *, grid_id: int | None = None,
              limit: int = MAX_UNVISITED, purpose: str | None = None) -> list[HouseholdView]:
    """Households of the campaign (in the caller's scope, optionally one grid) with no visit yet, by grid,
    building, unit, floor and room; masked and audited (one row for the request). Forbidden for roles that read
    no household data (viewers, auditors)."""
    household_scope = who.require_household_read()
    visible_campaign(session, who, campaign_id)
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
    audit_read(session, who, out, purpose or f"unvisited households of campaign {campaign_id}")
    return out
