"""Field staff (外勤): nearby households, screening campaigns (排查), visits, coverage, visit routes, the phone page.

Coordinates come in and go out in the caller's ``crs`` (GCJ-02 for phones and WeChat, EPSG:4326 for GPS and
browser geolocation); they are converted here, at the edge, and everything inside is EPSG:4326 (lon, lat).
Personal data is masked, scoped and audited by the store (:mod:`spatial.store.household_reads`).
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import shapely
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from api.deps import CrsDep, CurrentUser, RefusalsAudited, SessionDep, SettingsDep, in_transaction
from api.routers.pages import static_path
from api.geojson import CrsName, FastJSONResponse
from api.schemas import Label
from api.types import BigId, DivisionCode, GridCode, Id, Instant, OneOf, Position, SolverSeconds, Text
from spatial.errors import InvalidInput
from spatial.personal_keys import personal_keys
from spatial.geometry.crs import WGS84, CoordSys, parse_crs, transform_geom, transform_xy
from spatial.geometry.validate import position_from_xy
from spatial.store import campaigns, household_reads, visit_corrections, visit_routes
from spatial.store import grids as grid_store
from spatial.store.nearby import MAX_LIMIT as NEARBY_MAX_LIMIT, MAX_RADIUS_M, nearby_async, total_async
from spatial.store.tours import MAX_STOPS
from spatial.vocab import CAMPAIGN_STATUSES, HOUSEHOLD_TAGS, HOUSEHOLD_VISIT_STATUSES, VISIT_RESULTS, label

HERE = Path(__file__).resolve().parents[1]
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
api = APIRouter(prefix="/api/field", tags=["field · 外勤"])
pages = APIRouter(include_in_schema=False)


# -- schemas ------------------------------------------------------------------------------------------------------


class HouseholdPublic(BaseModel):
    id: int
    building_id: int
    building_code: str | None
    building_name: str | None
    grid_id: int | None
    unit: str
    floor: int | None
    room: str
    residents: int
    head_name: str | None = Field(description="masked: surname + *")
    head_id_number: str | None = Field(description="masked: first 6 + last 4")
    head_phone: str | None = Field(description="masked: first 3 + last 4")
    tags: list[Label]
    location: list[float] = Field(description="the building's point on surface, (x, y) = (lon, lat) in crs")
    distance_m: float | None = Field(None, description="straight-line metres to the building footprint")
    walk_m: float | None = Field(None, description="walking metres on the footpath network (mode=walk)")
    status: Label | None = None
    visit_result: Label | None = Field(None, description="the visit's current result (the latest correction's)")
    visited_at: datetime | None = None


class BuildingPublic(BaseModel):
    id: int
    code: str | None
    name: str | None
    location: list[float]
    distance_m: float | None
    walk_m: float | None
    households: int
    unvisited: int | None


class NearbyPublic(BaseModel):
    crs: str
    position: list[float]
    mode: str
    radius_m: float
    campaign_id: int | None
    count: int = Field(description="households in this answer (at most limit)")
    total: int = Field(ge=0, description="households (matching only_unvisited) within the radius in a straight line "
                                         "of which these are the nearest: count < total when the list was cut at "
                                         "limit (in walking mode it includes buildings not reached on foot)")
    households: list[HouseholdPublic]
    buildings: list[BuildingPublic]
    farther_on_foot: int = Field(0, description="buildings within the radius in a straight line but not on foot")


class RevealIn(BaseModel):
    reason: str = Field(description=f"why the full values are needed (audited): {household_reads.MIN_REASON}–500 characters",
                        examples=["电话联系户主核实情况"],  # stated only: the role is checked first (403)
                        json_schema_extra={"maxLength": 500,
                                           "pattern": rf"\S[\s\S]{{{household_reads.MIN_REASON - 2},}}\S"})
    fields: list[OneOf(household_reads.REVEALABLE)] = Field(default=list(household_reads.REVEALABLE), min_length=1)


class CampaignCreate(BaseModel):
    name: Text(200, blank=False)
    grid_codes: list[GridCode] = Field([], description="the grids to screen (or division_code)")
    division_code: DivisionCode | None = Field(None, description="a community or subdistrict code (instead of "
                                                                 "grid_codes)")
    flag_distance_m: float = Field(campaigns.DEFAULT_FLAG_DISTANCE_M, ge=1, le=5000,
                                   description="metres: visits recorded farther than this from the building are "
                                               "flagged")
    description: Text(2000) | None = None
    risk_zone_id: Id | None = Field(None, description="a risk zone: its households now (instead of grid_codes or "
                                                       "division_code)")


class CampaignPublic(BaseModel):
    id: int
    name: str
    description: str | None
    division_code: str | None
    status: Label
    flag_distance_m: float
    created_by: str
    created_at: datetime
    closed_at: datetime | None
    grid_ids: list[int] = Field(description="the campaign's grids in your scope")
    targeted: int = Field(description="households to screen in your scope")
    screened: int
    coverage: float
    persons_targeted: int = Field(ge=0, description="current residents (population ledger) of those households")
    persons_screened: int = Field(ge=0, description="current residents of the households visited (不漏一人)")
    risk_zone_id: int | None = Field(None, description="the risk zone whose households it targets")


class VisitCreate(BaseModel):
    household_id: BigId
    result: OneOf(VISIT_RESULTS) = Field(description="one of " + ", ".join(VISIT_RESULTS))
    lon: float = Field(description="the worker's position, x in crs")
    lat: float = Field(description="the worker's position, y in crs")
    crs: CrsName | None = None
    visited_at: Instant | None = Field(None, description="default now; not in the future, not before the campaign "
                                                         "opened")
    note: Text(1000) | None = None


class VisitPublic(BaseModel):
    id: int
    campaign_id: int
    household_id: int
    result: Label
    visited_at: datetime
    recorded_at: datetime
    note: str | None
    worker: str
    distance_m: float = Field(description="metres from the position to the building footprint (0 inside)")
    far_from_building: bool
    flag_distance_m: float


class CorrectionIn(BaseModel):
    result: OneOf(VISIT_RESULTS) = Field(description="the corrected result: one of " + ", ".join(VISIT_RESULTS))
    reason: str = Field(min_length=visit_corrections.MIN_REASON, max_length=visit_corrections.MAX_REASON,
                        pattern=r"\S[\s\S]*\S", examples=["误选结果，实为空置房"],
                        description="why the recorded result was wrong (audited): at least 2 characters other "
                                    f"than spaces, at most {visit_corrections.MAX_REASON}")
    note: Text(visit_corrections.MAX_NOTE) | None = Field(None, description="a new note (default: the earlier one stays)")


class CorrectionPublic(BaseModel):
    id: int
    result: Label
    note: str | None
    reason: str
    corrected_by: str
    corrected_at: datetime


class CorrectedVisitPublic(BaseModel):
    id: int
    campaign_id: int
    household_id: int
    result: Label = Field(description="the current result: the latest correction's")
    recorded_result: Label = Field(description="the result recorded at the visit")
    note: str | None
    visited_at: datetime
    worker: str
    corrections: list[CorrectionPublic] = Field(description="every correction, oldest first")


class CoverageRowPublic(BaseModel):
    level: str
    code: str | None
    name: str | None
    targeted: int
    screened: int
    coverage: float = Field(description="screened / targeted, 0–1")
    coverage_pct: float = Field(description="the same in percent, 2 decimals")
    flagged: int
    follow_up: int
    persons_targeted: int = Field(ge=0, description="current residents (population ledger) of the targeted households")
    persons_screened: int = Field(ge=0, description="current residents of the visited households")
    persons_coverage: float = Field(ge=0, le=1, description="persons_screened / persons_targeted, 0–1 (1 when none)")


class CoveragePublic(BaseModel):
    campaign_id: int
    total: CoverageRowPublic
    communities: list[CoverageRowPublic]
    grids: list[CoverageRowPublic]


class RouteIn(BaseModel):
    lon: float = Field(description="start, x in position_crs (default: crs)")
    lat: float = Field(description="start, y in position_crs (default: crs)")
    crs: CrsName | None = Field(None, description="coordinate system of the answer (and of the positions by default)")
    position_crs: CrsName | None = None
    campaign_id: Id | None = None
    grid_id: Id | None = None
    household_ids: list[BigId] | None = Field(None, max_length=5000,
                                              description="visit these instead of the campaign's unvisited")
    nearest: int | None = Field(None, ge=1, le=MAX_STOPS, description="only the N buildings nearest to the start")
    closed: bool = Field(False, description="come back to the start")
    end: Position | None = Field(None, description="finish at this [x, y] in crs")
    speed_mps: float = Field(1.2, ge=0.1, le=40, description="walking speed, m/s")
    time_limit_s: SolverSeconds = None


class RouteStopPublic(BaseModel):
    order: int
    building_id: int
    code: str | None
    name: str | None
    location: list[float]
    household_ids: list[int]
    arrival_m: float | None
    arrival_s: float | None
    here: bool = Field(False, description=f"the building you stand at (within {visit_routes.AT_BUILDING_M:g} m of its "
                                          "footprint), visited first")


class StepPublic(BaseModel):
    name: str | None
    length_m: float


class LegPublic(BaseModel):
    to_building_id: int | None
    length_m: float
    duration_s: float
    steps: list[StepPublic]


class RoutePublic(BaseModel):
    crs: str
    campaign_id: int | None
    length_m: float
    duration_s: float
    speed_mps: float
    solver: str
    optimal: bool
    stops: list[RouteStopPublic]
    unreachable: list[RouteStopPublic]
    legs: list[LegPublic]
    geometry: dict[str, Any] = Field(description="GeoJSON LineString in crs")


# -- coordinates at the edge --------------------------------------------------------------------------------------


def _wgs84(x: float, y: float, crs: CoordSys) -> tuple[float, float]:
    """(lon, lat) of a position sent in ``crs``; 422 unless finite, in range and inside the service extent."""
    return position_from_xy(x, y, crs)


def _out(points: list[tuple[float, float]], crs: CoordSys) -> list[list[float]]:
    """(lon, lat) points → [x, y] in ``crs``, rounded to ~1 cm (7 decimals of a degree, or cm of metres)."""
    if not points:
        return []
    xs, ys = transform_xy(np.array([p[0] for p in points]), np.array([p[1] for p in points]), WGS84, crs)
    digits = 7 if crs.is_geographic else 2
    return [[round(float(a), digits), round(float(b), digits)] for a, b in zip(np.atleast_1d(xs), np.atleast_1d(ys),
                                                                              strict=True)]


@functools.cache
def _label_dict(vocabulary_name: str, code: str) -> dict[str, str]:
    vocabulary = _VOCABULARIES[vocabulary_name]
    return {"code": code, "zh": label(vocabulary, code, "zh"), "en": label(vocabulary, code, "en")}


_VOCABULARIES = {"tags": HOUSEHOLD_TAGS, "status": HOUSEHOLD_VISIT_STATUSES, "results": VISIT_RESULTS,
                 "campaigns": CAMPAIGN_STATUSES}


def _label(vocabulary, code: str | None) -> Label | None:
    if code is None:
        return None
    return Label(code=code, zh=label(vocabulary, code, "zh"), en=label(vocabulary, code, "en"))


def _households(items, crs: CoordSys) -> list[dict[str, Any]]:
    """Households as JSON-ready dicts (the shape of :class:`HouseholdPublic`; built directly because this is the
    hot path of the phone page), locations converted once per building."""
    places = list(dict.fromkeys(h.location for h in items))  # households of a building share its point
    converted = dict(zip(places, _out(places, crs), strict=True))
    return [{
        "id": h.id, "building_id": h.building_id, "building_code": h.building_code, "building_name": h.building_name,
        "grid_id": h.grid_id, "unit": h.unit, "floor": h.floor, "room": h.room, "residents": h.residents,
        "head_name": h.head_name, "head_id_number": h.head_id_number, "head_phone": h.head_phone,
        "tags": [_label_dict("tags", t) for t in h.tags], "location": converted[h.location],
        "distance_m": h.distance_m, "walk_m": h.walk_m,
        "status": _label_dict("status", h.status) if h.status else None,
        "visit_result": _label_dict("results", h.visit_result) if h.visit_result else None,
        "visited_at": h.visited_at.isoformat() if h.visited_at else None} for h in items]


def _campaign(c: campaigns.Campaign) -> CampaignPublic:
    return CampaignPublic(id=c.id, name=c.name, description=c.description, division_code=c.division_code,
                          status=_label(CAMPAIGN_STATUSES, c.status), flag_distance_m=c.flag_distance_m,
                          created_by=c.created_by, created_at=c.created_at, closed_at=c.closed_at,
                          grid_ids=list(c.grid_ids), targeted=c.targeted, screened=c.screened,
                          coverage=c.screened / c.targeted if c.targeted else 1.0,
                          persons_targeted=c.persons_targeted, persons_screened=c.persons_screened,
                          risk_zone_id=c.risk_zone_id)


def _coverage_row(r: campaigns.ProgressRow) -> CoverageRowPublic:
    return CoverageRowPublic(level=r.level, code=r.code, name=r.name, targeted=r.targeted, screened=r.screened,
                             coverage=r.ratio, coverage_pct=round(100 * r.ratio, 2), flagged=r.flagged,
                             follow_up=r.follow_up, persons_targeted=r.persons_targeted,
                             persons_screened=r.persons_screened, persons_coverage=r.persons_ratio)


# -- endpoints ----------------------------------------------------------------------------------------------------

LonQ = Annotated[float, Query(description="x of the position in crs (longitude for geographic systems)")]
LatQ = Annotated[float, Query(description="y of the position in crs (latitude for geographic systems)")]


@api.get("/nearby", response_model=NearbyPublic, dependencies=[RefusalsAudited], summary="Households near me (附近住户)",
         description="Households of your grids (or your division's subtree) around a position, nearest first, with "
                     "masked heads of household, tags and campaign status. `mode=walk` measures on the footpath "
                     "network. Outside your area the list is empty. Every call is audited.")
async def nearby(request: Request, who: CurrentUser, settings: SettingsDep, lon: LonQ, lat: LatQ,
                 coords: CrsDep,
                 radius: Annotated[float, Query(ge=1, le=MAX_RADIUS_M,
                                                description=f"metres (1–{MAX_RADIUS_M:g})")] = 200.0,
                 limit: Annotated[int, Query(ge=1, le=NEARBY_MAX_LIMIT,
                                             description=f"households (1–{NEARBY_MAX_LIMIT})")] = 50,
                 mode: Annotated[Literal["straight", "walk"], Query(description="straight or walk")] = "straight",
                 campaign_id: Id | None = None, only_unvisited: bool = False,
                 purpose: Annotated[str | None, Query(description="why you look (written to the audit log)")] = None,
                 position_crs: Annotated[CrsName | None,
                                         Query(description="crs of lon/lat when it differs from crs")] = None,
                 ) -> FastJSONResponse:
    x, y = _wgs84(lon, lat, parse_crs(position_crs) if position_crs else coords)
    options = {"radius_m": radius, "limit": limit, "campaign_id": campaign_id, "only_unvisited": only_unvisited,
               "purpose": purpose}
    # straight-line: one statement on the event loop (the hot path); walking: in a transaction of its own
    found = await nearby_async(request.app.state.reads, who, x, y, mode=mode, metric_srid=settings.metric_srid,
                               in_session=functools.partial(in_transaction, request), **options)
    total = await total_async(request.app.state.reads, who, found, x, y, limit=limit, only_unvisited=only_unvisited)
    building_locations = _out([b.location for b in found.buildings], coords)
    households = _households(found.households, coords)
    return FastJSONResponse({
        "crs": coords.name, "position": _out([(x, y)], coords)[0], "mode": found.mode, "radius_m": found.radius_m,
        "campaign_id": found.campaign_id, "count": len(households), "total": total,
        "households": households,
        "buildings": [{"id": b.id, "code": b.code, "name": b.name, "location": loc, "distance_m": b.distance_m,
                       "walk_m": b.walk_m, "households": b.households, "unvisited": b.unvisited}
                      for b, loc in zip(found.buildings, building_locations, strict=True)],
        "farther_on_foot": found.farther_on_foot})


@api.get("/grids", summary="My grids as GeoJSON (我的网格)",
         description="The grids assigned to a grid worker (for other roles the grids of their area) with their "
                     "households (a count), no personal data.")
def my_grids(session: SessionDep, who: CurrentUser, coords: CrsDep) -> dict[str, Any]:
    features = [{"type": "Feature", "id": g.id,
                 "properties": {"id": g.id, "code": g.code, "name": g.name, "households": g.households},
                 "geometry": json.loads(shapely.to_geojson(transform_geom(g.boundary, WGS84, coords)))}
                for g in grid_store.my_grids(session, who)]
    return {"type": "FeatureCollection", "crs": coords.name, "features": features}


@api.post("/households/{household_id}/reveal", summary="Reveal unmasked values (查看完整信息, audited)",
          description="Grid workers of the household's grid (and admins) only, with a reason; planners, inspectors "
                      "and viewers cannot. Each reveal is written to the audit log.")
def reveal(household_id: BigId, body: RevealIn, session: SessionDep, who: CurrentUser,
           settings: SettingsDep) -> dict[str, Any]:
    return household_reads.reveal(session, who, household_id, body.reason, body.fields,
                                  per_hour=settings.reveal_max_per_hour, keys=lambda: personal_keys(settings))


@api.get("/campaigns", response_model=list[CampaignPublic], summary="Screening campaigns in my area (排查任务)")
def list_campaigns(session: SessionDep, who: CurrentUser,
                   status: Annotated[OneOf(CAMPAIGN_STATUSES) | None, Query(description="open or closed")] = None
                   ) -> list[CampaignPublic]:
    return [_campaign(c) for c in campaigns.list_campaigns(session, who, status=status)]


@api.post("/campaigns", response_model=CampaignPublic, status_code=201, summary="Open a campaign (发起排查)")
def open_campaign(body: CampaignCreate, session: SessionDep, who: CurrentUser) -> CampaignPublic:
    return _campaign(campaigns.open_campaign(session, who, body.name, grid_codes=body.grid_codes,
                                         division_code=body.division_code, flag_distance_m=body.flag_distance_m,
                                         description=body.description, risk_zone_id=body.risk_zone_id))


@api.get("/campaigns/{campaign_id}", response_model=CampaignPublic, summary="One campaign (排查任务详情)")
def get_campaign(campaign_id: Id, session: SessionDep, who: CurrentUser) -> CampaignPublic:
    return _campaign(campaigns.get_campaign(session, who, campaign_id))


@api.post("/campaigns/{campaign_id}/close", response_model=CampaignPublic, summary="Close a campaign (结束排查)")
def close_campaign(campaign_id: Id, session: SessionDep, who: CurrentUser) -> CampaignPublic:
    return _campaign(campaigns.close_campaign(session, who, campaign_id))


@api.post("/campaigns/{campaign_id}/visits", response_model=VisitPublic, status_code=201,
          summary="Record a visit (登记走访)",
          description="One visit per household per campaign: a second one is 409 and nothing is recorded. Visits "
                      "recorded farther than the campaign's flag_distance_m from the building are flagged.")
def record_visit(campaign_id: Id, body: VisitCreate, session: SessionDep, who: CurrentUser) -> VisitPublic:
    x, y = _wgs84(body.lon, body.lat, parse_crs(body.crs))
    v = campaigns.record_visit(session, who, campaign_id, body.household_id, result=body.result, lon=x, lat=y,
                           visited_at=body.visited_at, note=body.note)
    return VisitPublic(id=v.id, campaign_id=v.campaign_id, household_id=v.household_id,
                       result=_label(VISIT_RESULTS, v.result), visited_at=v.visited_at, recorded_at=v.recorded_at,
                       note=v.note, worker=v.worker, distance_m=round(v.distance_m, 1),
                       far_from_building=v.far_from_building, flag_distance_m=v.flag_distance_m)


@api.post("/campaigns/{campaign_id}/visits/{household_id}/corrections", response_model=CorrectedVisitPublic,
          status_code=201, summary="Correct a visit's result (更正走访结果)",
          description="A visit is never changed: the correction is kept beside it with its reason, who and when, "
                      "and the visit's result is the latest correction's from then on (list, map, coverage). The "
                      "worker who recorded the visit (within their grids), planners in their area and admins; "
                      "audited.")
def correct_visit(campaign_id: Id, household_id: BigId, body: CorrectionIn, session: SessionDep,
                  who: CurrentUser) -> CorrectedVisitPublic:
    v = visit_corrections.correct_visit(session, who, campaign_id, household_id, result=body.result,
                                        reason=body.reason, note=body.note)
    return CorrectedVisitPublic(
        id=v.id, campaign_id=v.campaign_id, household_id=v.household_id, result=_label(VISIT_RESULTS, v.result),
        recorded_result=_label(VISIT_RESULTS, v.recorded_result), note=v.note, visited_at=v.visited_at,
        worker=v.worker, corrections=[CorrectionPublic(id=c.id, result=_label(VISIT_RESULTS, c.result), note=c.note,
                                                       reason=c.reason, corrected_by=c.corrected_by,
                                                       corrected_at=c.corrected_at) for c in v.corrections])


@api.get("/campaigns/{campaign_id}/coverage", response_model=CoveragePublic, summary="Coverage (排查覆盖率)",
         description="Households screened / targeted per grid, community and in total, over your part of the campaign; "
                     "beside them the persons (不漏一人): current residents of the ledger in the targeted and in the "
                     "visited households.")
def coverage(campaign_id: Id, session: SessionDep, who: CurrentUser) -> CoveragePublic:
    rows = campaigns.progress(session, who, campaign_id)
    return CoveragePublic(campaign_id=campaign_id, total=_coverage_row(rows[-1]),
                          communities=[_coverage_row(r) for r in rows if r.level == "community"],
                          grids=[_coverage_row(r) for r in rows if r.level == "grid"])


@api.get("/campaigns/{campaign_id}/unvisited", summary="Households not yet visited, as GeoJSON (未走访住户)",
         description="A FeatureCollection of points (the building of each household) with masked properties; "
                     "audited.")
def unvisited(campaign_id: Id, session: SessionDep, who: CurrentUser, coords: CrsDep,
              grid_id: Id | None = None,
              limit: Annotated[int, Query(ge=1, le=campaigns.MAX_UNVISITED)] = campaigns.MAX_UNVISITED,
              purpose: str | None = None) -> dict[str, Any]:
    items = campaigns.unvisited(session, who, campaign_id, grid_id=grid_id, limit=limit, purpose=purpose)
    features = [{"type": "Feature", "id": h["id"], "geometry": {"type": "Point", "coordinates": h.pop("location")},
                 "properties": h} for h in _households(items, coords)]
    return {"type": "FeatureCollection", "crs": coords.name, "campaign_id": campaign_id,
            "numberReturned": len(features), "features": features}


@api.post("/route", response_model=RoutePublic, summary="Walking route to the households left (走访路线)",
          description="Order and route on the footpath network through the buildings of the unvisited households "
                      "of your grids (or the households you choose), from your position.")
def route(body: RouteIn, session: SessionDep, who: CurrentUser, settings: SettingsDep) -> RoutePublic:
    coords = parse_crs(body.crs)
    given = parse_crs(body.position_crs) if body.position_crs else coords
    x, y = _wgs84(body.lon, body.lat, given)
    end = _wgs84(*body.end, given) if body.end and len(body.end) == 2 else None
    if body.end is not None and end is None:
        raise InvalidInput("end must be [x, y]")
    plan = visit_routes.visit_route(session, who, x, y, campaign_id=body.campaign_id, household_ids=body.household_ids,
                             grid_id=body.grid_id, nearest=body.nearest, closed=body.closed, end=end,
                             speed_mps=body.speed_mps, time_limit_s=body.time_limit_s,
                             metric_srid=settings.metric_srid)
    tour = plan.tour
    stops = [RouteStopPublic(order=i + 1, building_id=s.building_id, code=s.code, name=s.name, location=loc,
                             household_ids=list(s.household_ids), arrival_m=round(m, 1),
                             arrival_s=round(m / tour.speed_mps, 1), here=s.building_id == plan.here)
             for i, (s, loc, m) in enumerate(zip(plan.stops, _out([s.location for s in plan.stops], coords),
                                                 tour.arrival_m, strict=True))]
    unreachable = [RouteStopPublic(order=0, building_id=s.building_id, code=s.code, name=s.name, location=loc,
                                   household_ids=list(s.household_ids), arrival_m=None, arrival_s=None)
                   for s, loc in zip(plan.unreachable, _out([s.location for s in plan.unreachable], coords),
                                     strict=True)]
    geometry = transform_geom(tour.geometry, WGS84, coords)
    return RoutePublic(
        crs=coords.name, campaign_id=plan.campaign_id, length_m=round(tour.length_m, 1),
        duration_s=round(tour.duration_s, 1), speed_mps=tour.speed_mps, solver=tour.solver, optimal=tour.optimal,
        stops=stops, unreachable=unreachable,
        legs=[LegPublic(to_building_id=leg.to_key if isinstance(leg.to_key, int) else None,
                        length_m=round(leg.length_m, 1), duration_s=round(leg.duration_s, 1),
                        steps=[StepPublic(name=s.name, length_m=round(s.length_m, 1)) for s in leg.steps])
                   for leg in tour.legs],
        geometry={"type": "LineString", "coordinates": shapely.get_coordinates(geometry).round(7).tolist()})


# -- the phone page -----------------------------------------------------------------------------------------------


@pages.get("/field", response_class=RedirectResponse)
def field_redirect() -> RedirectResponse:
    return RedirectResponse("/field/", status_code=307)


@pages.get("/field/", response_class=HTMLResponse)
def field_page(request: Request) -> HTMLResponse:
    """The grid worker's phone page (网格员外勤): nearby households, visits, campaign progress, route."""
    return TEMPLATES.TemplateResponse(request, "field.html", {"static": lambda p: static_path(request, p)})


@pages.get("/field/sw.js")
def service_worker() -> FileResponse:
    """The page's service worker, served under /field/ so that its scope covers the page."""
    return FileResponse(HERE / "static" / "sw.js", media_type="text/javascript",
                        headers={"Cache-Control": "no-cache"})


router = APIRouter()
router.include_router(api)
router.include_router(pages)
