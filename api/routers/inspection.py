"""Inspectors (督查): enclosures and their openings, coverage reports, checkpoint siting, patrol routes.

Coordinates come in and go out in the caller's ``crs`` (default EPSG:4326, axis order lon, lat) and are converted
here, at the edge; the answers are built by :mod:`api.presenters.inspection`. Every answer that holds a distance
says whether it is a walking distance on the footpath network or a straight line (``distance``: ``walk`` |
``straight``), and patrols say which network they used.
The domain is :mod:`spatial.store.openings`, :mod:`spatial.store.coverage`, :mod:`spatial.store.enclosure_siting` and
:mod:`spatial.store.patrols`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from api.deps import CrsDep, CurrentUser, ReadSessionDep, SessionDep, SettingsDep
from api.geojson import CrsName
from api.presenters import inspection as present
from api.presenters.inspection import (CoverageReportPublic, EnclosureCreatedPublic, OpeningFeaturePublic,
                                       PatrolPublic, ScanPublic, SitingPublic, StreetPatrolPublic)
from api.types import (BigId, DivisionCode, GridCode, Id, Metres, Name, OneOf, PolygonOnlyGeoJSON, Position,
                       SolverSeconds, Text)
from spatial.analysis.siting import DEFAULT_TIME_LIMIT_S, MAX_TIME_LIMIT_S
from spatial.errors import InvalidInput
from spatial.geometry.crs import CoordSys, parse_crs
from spatial.geometry.validate import position_from_xy
from spatial.store import coverage, enclosure_siting, patrols, risk_zones
from spatial.store.opening_scan import MAX_FROM_PERIMETER_LIMIT_M, MIN_DISTANCE_M
from spatial.store.tours import MAX_STOPS
from spatial.store import openings as op
from spatial.vocab import BARRIER_KINDS, CHECKPOINT_KINDS, ENCLOSURE_KINDS, OPENING_STATUSES

router = APIRouter(prefix="/api/inspection", tags=["inspection · 督查"])

Threshold = Metres(coverage.MIN_THRESHOLD_M, coverage.MAX_THRESHOLD_M, description=(
    f"metres ({coverage.MIN_THRESHOLD_M:g}–{coverage.MAX_THRESHOLD_M:g}): households farther than this from the "
    "nearest staffed checkpoint are reported"))
ThresholdQ = Annotated[Threshold, Query()]
MaxFromPerimeter = Metres(MIN_DISTANCE_M, MAX_FROM_PERIMETER_LIMIT_M, description=(
    f"metres, straight line ({MIN_DISTANCE_M:g}–{MAX_FROM_PERIMETER_LIMIT_M:g})"))
Width = Metres(MIN_DISTANCE_M, op.MAX_WIDTH_M, description=(
    f"metres of perimeter a barrier would close ({MIN_DISTANCE_M:g}–{op.MAX_WIDTH_M:g})"))
DivisionQ = Annotated[DivisionCode | None, Query(description="a community or subdistrict code (12 digits)")]
ManyGridsQ = Annotated[int, Query(ge=1, le=100, description="a checkpoint serving this many grids or more is "
                                                          "reported")]
DistanceQ = Annotated[Literal["walk", "straight"], Query(description="walk: on the footpath network inside the "
                                                                     "enclosure (pgRouting); straight: straight line")]
LAYERS = ("enclosures", "openings", "unguarded", "barriers", "checkpoints", "households_beyond")


# -- coordinates at the edge --------------------------------------------------------------------------------------


def _wgs84(x: float, y: float, crs: CoordSys) -> tuple[float, float]:
    """(lon, lat) of a position sent in ``crs``; 422 unless finite, in range and inside the service extent."""
    return position_from_xy(x, y, crs)


# -- schemas ------------------------------------------------------------------------------------------------------


class EnclosureCreate(BaseModel):
    name: Name = Field(examples=["上沙村"])
    kind: OneOf(ENCLOSURE_KINDS) = Field("estate", description="one of " + ", ".join(ENCLOSURE_KINDS))
    community_code: DivisionCode | None = Field(None, description="12 digits; default: the community holding most "
                                                                  "of it")
    geometry: PolygonOnlyGeoJSON = Field(description="a GeoJSON Polygon (closed rings) in crs")
    crs: CrsName | None = None
    max_from_perimeter_m: MaxFromPerimeter = Field(op.DEFAULT_MAX_FROM_PERIMETER_M,
                                                   description="stored checkpoints within this of the perimeter are "
                                                               "linked")


class BoundaryIn(BaseModel):
    geometry: PolygonOnlyGeoJSON = Field(description="a GeoJSON Polygon (closed rings) in crs")
    crs: CrsName | None = None


class OpeningCreate(BaseModel):
    lon: float = Field(description="x in crs; the opening goes to the nearest point of the perimeter")
    lat: float = Field(description="y in crs")
    crs: CrsName | None = None
    street_name: Text(200) | None = None
    width_m: Width | None = Field(None, description="metres of perimeter a barrier would close (default 5)")
    note: Text(500) | None = None
    max_from_perimeter_m: MaxFromPerimeter = op.DEFAULT_MAX_FROM_PERIMETER_M


class CheckpointIn(BaseModel):
    id: Id | None = Field(None, description="an existing checkpoint to link (else one is created or updated)")
    name: Text(100) | None = None
    kind: OneOf(CHECKPOINT_KINDS) = Field("pedestrian", description="one of " + ", ".join(CHECKPOINT_KINDS))
    opening_hours: str = Field("24/7", description="OSM syntax: 24/7, off, Mo-Su 06:00-22:00, "
                                                   "Mo-Fr 07:00-19:00; Sa 08:00-12:00 …",
                               examples=["Mo-Su 06:00-22:00"])
    staff_count: int = Field(1, ge=0, le=200)


class OpeningUpdate(BaseModel):
    version: Id | None = Field(None, description="the version you edited; 412 if it changed meanwhile")
    status: OneOf(OPENING_STATUSES) | None = Field(None, description="open, sealed or checkpoint")
    barrier_kind: OneOf(BARRIER_KINDS) | None = Field(None, description="for sealed: " + ", ".join(BARRIER_KINDS))
    checkpoint: CheckpointIn | None = None
    width_m: Width | None = None
    note: Text(500) | None = None
    location: Position | None = Field(None, description="move to [x, y] in crs (planners)")
    crs: CrsName | None = None
    max_from_perimeter_m: MaxFromPerimeter = op.DEFAULT_MAX_FROM_PERIMETER_M


class CheckpointCreate(BaseModel):
    lon: float
    lat: float
    crs: CrsName | None = None
    name: Text(100) = Field(examples=["北门卡口"])
    kind: OneOf(CHECKPOINT_KINDS) = "pedestrian"
    opening_hours: str = "24/7"
    staff_count: int = Field(1, ge=0, le=200)
    enclosure_id: Id | None = None
    max_from_perimeter_m: MaxFromPerimeter = Field(op.DEFAULT_MAX_FROM_PERIMETER_M,
                                                   description="refused if farther than this from every perimeter")


class SitingIn(BaseModel):
    enclosure_id: Id | None = Field(None, description="the enclosure (or risk_zone_id)")
    risk_zone_id: Id | None = Field(None, description="a risk zone: its enclosure, or the smallest holding it")
    problem: Literal["set_cover", "max_cover"] = Field(
        "set_cover", description="set_cover: fewest checkpoints covering everyone; max_cover: p covering the most")
    p: int | None = Field(None, ge=1, le=10_000, description="checkpoints to staff (max_cover)")
    threshold_m: Threshold = coverage.DEFAULT_THRESHOLD_M
    distance: Literal["walk", "straight"] = "walk"
    candidates: Literal["all", "checkpoints"] = Field("all", description="all openings, or only today's checkpoints")
    keep_opening_ids: list[Id] = Field(default_factory=list, description="openings that must stay staffed")
    time_limit_s: float = Field(DEFAULT_TIME_LIMIT_S, gt=0, le=MAX_TIME_LIMIT_S)
    solver: Literal["cp-sat", "scip"] = "cp-sat"
    crs: CrsName | None = None


_UNIQUE = {"uniqueItems": True}  # stated; refused by spatial.store.patrols ("listed twice")


class PatrolIn(BaseModel):
    start: Position = Field(description="[x, y] in crs")
    end: Position | None = Field(None, description="[x, y] in crs; default: back to the start")
    closed: bool = Field(True, description="come back to the start (ignored with end)")
    network: Literal["walk", "drive"] = Field("walk", description="drive honours one-way streets")
    checkpoint_ids: list[Id] = Field(default_factory=list, max_length=MAX_STOPS, json_schema_extra=_UNIQUE)
    opening_ids: list[Id] = Field(default_factory=list, max_length=MAX_STOPS, json_schema_extra=_UNIQUE)
    building_ids: list[BigId] = Field(default_factory=list, max_length=MAX_STOPS, json_schema_extra=_UNIQUE)
    speed_mps: float | None = Field(None, ge=0.1, le=40, description="m/s, default 1.2 walking, 8.3 driving")
    time_limit_s: SolverSeconds = None
    crs: CrsName | None = None


class StreetPatrolIn(BaseModel):
    grid_id: Id | None = Field(None, description="the grid (or grid_code)")
    grid_code: GridCode | None = None
    start: Position | None = Field(None, description="[x, y] in crs; default: a lane node near the grid's centre")
    speed_mps: float = Field(1.2, ge=0.1, le=10, description="walking speed, m/s")
    crs: CrsName | None = None


# -- enclosures and openings --------------------------------------------------------------------------------------


@router.get("/enclosures", summary="Enclosures with their opening counts (围合)",
            description="A FeatureCollection of the enclosures in your area (of a division if given). Openings of "
                        "enclosures never scanned are detected on first use.")
def list_enclosures(session: SessionDep, who: CurrentUser, settings: SettingsDep, coords: CrsDep,
                    division: DivisionQ = None) -> dict[str, Any]:
    ids = op.visible_enclosure_ids(session, who, division=division)
    op.ensure_scanned(session, ids, metric_srid=settings.metric_srid)
    return present.enclosures(op.enclosure_features(session, ids, settings.metric_srid), op.openings_of(session, ids),
                              coords)


@router.post("/enclosures", status_code=201, response_model=EnclosureCreatedPublic,
             summary="Draw an enclosure (新建围合)",
             description="A closed, valid polygon (422 otherwise); its openings are detected where streets and "
                         "footpaths cross the perimeter. Planners.")
def create_enclosure(body: EnclosureCreate, session: SessionDep, who: CurrentUser,
                     settings: SettingsDep) -> EnclosureCreatedPublic:
    coords = parse_crs(body.crs)
    polygon = op.check_polygon(body.geometry, coords)
    new_id, scan = op.create_enclosure(session, who, body.name, polygon, kind=body.kind,
                                       community_code=body.community_code, metric_srid=settings.metric_srid,
                                       max_from_perimeter_m=body.max_from_perimeter_m)
    return EnclosureCreatedPublic(id=new_id, scan=present.scan(scan))


@router.put("/enclosures/{enclosure_id}/boundary", response_model=ScanPublic,
            summary="Redraw an enclosure (修改围合边界)",
            description="Replaces the boundary (closed, valid polygon) and detects the openings again. Planners.")
def redraw_enclosure(enclosure_id: Id, body: BoundaryIn, session: SessionDep, who: CurrentUser,
                     settings: SettingsDep) -> ScanPublic:
    polygon = op.check_polygon(body.geometry, parse_crs(body.crs))
    return present.scan(op.redraw_enclosure(session, who, enclosure_id, polygon, metric_srid=settings.metric_srid))


@router.post("/enclosures/{enclosure_id}/scan", response_model=ScanPublic,
             summary="Detect openings again (重新识别出入口)",
             description="After the street network or the boundary changed. Openings found again keep their state; "
                         "deleted ones stay deleted. Planners.")
def scan_enclosure(enclosure_id: Id, session: SessionDep, who: CurrentUser, settings: SettingsDep,
                   max_from_perimeter_m: Annotated[MaxFromPerimeter, Query()] = op.DEFAULT_MAX_FROM_PERIMETER_M
                   ) -> ScanPublic:
    return present.scan(op.rescan(session, who, enclosure_id, metric_srid=settings.metric_srid,
                                  max_from_perimeter_m=max_from_perimeter_m))


@router.post("/enclosures/{enclosure_id}/openings", status_code=201, response_model=OpeningFeaturePublic,
             summary="Add an opening by hand (添加出入口)",
             description="A gate the map does not know, on the perimeter (refused farther than "
                         "max_from_perimeter_m). Planners.")
def add_opening(enclosure_id: Id, body: OpeningCreate, session: SessionDep, who: CurrentUser,
                settings: SettingsDep) -> OpeningFeaturePublic:
    coords = parse_crs(body.crs)
    lon, lat = _wgs84(body.lon, body.lat, coords)
    opening = op.add_opening(session, who, enclosure_id, lon, lat, street_name=body.street_name, width_m=body.width_m,
                             note=body.note, max_from_perimeter_m=body.max_from_perimeter_m,
                             metric_srid=settings.metric_srid)
    return present.opening_feature(opening, coords)


@router.get("/openings/{opening_id}", response_model=OpeningFeaturePublic, summary="One opening (出入口)")
def get_opening(opening_id: Id, session: SessionDep, who: CurrentUser, coords: CrsDep) -> OpeningFeaturePublic:
    return present.opening_feature(op.get_opening(session, who, opening_id), coords)


@router.patch("/openings/{opening_id}", response_model=OpeningFeaturePublic,
              summary="Change an opening's state (修改出入口状态)",
              description="Seal it (barrier_kind), make it a checkpoint (checkpoint: hours, staff), or open it; "
                          "change its width or note (inspectors, planners); move it (planners). Send the version "
                          "you edited: a stale one is 412.")
def update_opening(opening_id: Id, body: OpeningUpdate, session: SessionDep, who: CurrentUser,
                   settings: SettingsDep) -> OpeningFeaturePublic:
    coords = parse_crs(body.crs)
    location = None
    if body.location is not None:
        if len(body.location) != 2:
            raise InvalidInput("location must be [x, y]")
        location = _wgs84(body.location[0], body.location[1], coords)
    spec = op.CheckpointSpec(**body.checkpoint.model_dump()) if body.checkpoint is not None else None
    opening = op.update_opening(session, who, opening_id, version=body.version, status=body.status,
                                barrier_kind=body.barrier_kind, width_m=body.width_m, checkpoint=spec,
                                location=location, note=body.note, max_from_perimeter_m=body.max_from_perimeter_m,
                                metric_srid=settings.metric_srid)
    return present.opening_feature(opening, coords)


@router.delete("/openings/{opening_id}", status_code=204, summary="Delete an opening (删除出入口)",
               description="It stays deleted when the perimeter is scanned again. Planners.")
def delete_opening(opening_id: Id, session: SessionDep, who: CurrentUser, version: Id | None = None) -> Response:
    op.delete_opening(session, who, opening_id, version=version)
    return Response(status_code=204)


@router.post("/checkpoints", status_code=201, response_model=OpeningFeaturePublic,
             summary="Register a checkpoint (登记卡口)",
             description="On an enclosure's perimeter: refused (422) when farther than max_from_perimeter_m "
                         "(default 30 m, straight line) from every perimeter in your area. Planners.")
def create_checkpoint(body: CheckpointCreate, session: SessionDep, who: CurrentUser,
                      settings: SettingsDep) -> OpeningFeaturePublic:
    coords = parse_crs(body.crs)
    lon, lat = _wgs84(body.lon, body.lat, coords)
    opening = op.create_checkpoint(session, who, lon, lat, body.name, kind=body.kind,
                                   opening_hours=body.opening_hours, staff_count=body.staff_count,
                                   enclosure_id=body.enclosure_id, max_from_perimeter_m=body.max_from_perimeter_m,
                                   metric_srid=settings.metric_srid)
    return present.opening_feature(opening, coords)


# -- coverage -----------------------------------------------------------------------------------------------------


def _report(session, who, settings, enclosure_id, division, threshold_m, distance, many_grids):
    if enclosure_id is None and division is None:
        raise InvalidInput("give enclosure_id or division (a community or subdistrict code)")
    return coverage.coverage_report(session, who, enclosure_id=enclosure_id, division=division,
                                    threshold_m=threshold_m, distance=distance, many_grids=many_grids,
                                    metric_srid=settings.metric_srid)


@router.get("/coverage", response_model=CoverageReportPublic, response_model_exclude_unset=True,
            summary="Coverage report (卡口覆盖报告)",
            description="Per enclosure and in total: unguarded openings, metres of barrier, sealed openings and "
                        "checkpoints, hours with no staffed checkpoint and with a single one, households beyond the "
                        "threshold from the nearest staffed checkpoint (walking on the footpath network by default), "
                        "grids with no checkpoint, checkpoints serving many grids. `households=true` adds the "
                        "household rows beyond the threshold, masked and audited.")
def coverage_report(session: ReadSessionDep, who: CurrentUser, settings: SettingsDep, coords: CrsDep,
                    enclosure_id: Id | None = None,
                    division: DivisionQ = None, threshold_m: ThresholdQ = coverage.DEFAULT_THRESHOLD_M,
                    distance: DistanceQ = "walk", many_grids: ManyGridsQ = coverage.DEFAULT_MANY_GRIDS,
                    households: bool = False) -> CoverageReportPublic:
    report = _report(session, who, settings, enclosure_id, division, threshold_m, distance, many_grids)
    out = present.coverage_report(report, coords)
    if households:
        out.household_rows = coverage.households_beyond(session, who, report)
    return out


@router.get("/coverage/report.html", response_class=HTMLResponse, summary="Printable coverage report (打印报告)",
            description="The coverage report as a printable HTML page (send the bearer token; the page "
                        "/inspector/report shows it below a map, with a print button).")
def coverage_report_html(request: Request, session: ReadSessionDep, who: CurrentUser, settings: SettingsDep,
                         enclosure_id: Id | None = None, division: DivisionQ = None,
                         threshold_m: ThresholdQ = coverage.DEFAULT_THRESHOLD_M, distance: DistanceQ = "walk",
                         many_grids: ManyGridsQ = coverage.DEFAULT_MANY_GRIDS) -> HTMLResponse:
    report = _report(session, who, settings, enclosure_id, division, threshold_m, distance, many_grids)
    return present.TEMPLATES.TemplateResponse(request, "coverage_report.html",
                                              present.coverage_page_context(report, who.username))


@router.get("/layers/{layer}", summary="Coverage layers as GeoJSON (覆盖图层)",
            description="enclosures, openings (coloured by status, with `totals`: the checkpoint figures every page "
                        "shows — openings, open, sealed, checkpoints, staffed_checkpoints, staff, unguarded; viewers may "
                        "read openings, unguarded and barriers), unguarded (the gaps), barriers (sealed stretches "
                        "of perimeter), checkpoints (staffed, with the households they serve), households_beyond "
                        "(buildings farther than the threshold from the nearest staffed checkpoint).")
def layer(layer: Literal["enclosures", "openings", "unguarded", "barriers", "checkpoints", "households_beyond"],
          session: ReadSessionDep, who: CurrentUser, settings: SettingsDep, coords: CrsDep,
          enclosure_id: Id | None = None,
          division: DivisionQ = None, threshold_m: ThresholdQ = coverage.DEFAULT_THRESHOLD_M,
          distance: DistanceQ = "walk") -> dict[str, Any]:
    if layer in ("openings", "unguarded", "barriers"):
        ids = op.visible_enclosure_ids(session, who, enclosure_id=enclosure_id, division=division,
                                       roles=op.MAP_ROLES)
        op.ensure_scanned(session, ids, metric_srid=settings.metric_srid)
        return present.opening_layer(layer, op.openings_of(session, ids), coords)
    if layer == "enclosures":
        return {**list_enclosures(session, who, settings, coords, division), "layer": layer}
    report = coverage.coverage_report(session, who, enclosure_id=enclosure_id, division=division,
                                      threshold_m=threshold_m, distance=distance, metric_srid=settings.metric_srid)
    return present.coverage_layer(layer, report, coords, distance, threshold_m)


# -- siting -------------------------------------------------------------------------------------------------------


@router.post("/siting", response_model=SitingPublic, summary="Which openings to staff (卡口选址)",
             description="Set covering (fewest checkpoints so every household is within the threshold) or maximal "
                         "covering (p checkpoints covering the most households), exact (OR-Tools), with proven "
                         "optimality, the households no opening can cover, and whether distances are walking or "
                         "straight-line. Writes nothing.")
def site_checkpoints(body: SitingIn, session: SessionDep, who: CurrentUser, settings: SettingsDep) -> SitingPublic:
    coords = parse_crs(body.crs)
    if (body.enclosure_id is None) == (body.risk_zone_id is None):
        raise InvalidInput("name either an enclosure_id or a risk_zone_id")
    enclosure_id = body.enclosure_id or risk_zones.enclosure_of(session, who, body.risk_zone_id)
    r = enclosure_siting.plan_siting(session, who, enclosure_id, problem=body.problem,
                                     threshold_m=body.threshold_m, distance=body.distance, p=body.p,
                                     candidates=body.candidates, keep_opening_ids=body.keep_opening_ids,
                                     time_limit_s=body.time_limit_s, solver=body.solver,
                                     metric_srid=settings.metric_srid)
    return present.siting(r, coords)


# -- patrols ------------------------------------------------------------------------------------------------------


def _point(value: list[float] | None, coords: CoordSys, what: str) -> tuple[float, float] | None:
    if value is None:
        return None
    if len(value) != 2:
        raise InvalidInput(f"{what} must be [x, y]")
    return _wgs84(value[0], value[1], coords)


@router.post("/patrols", response_model=PatrolPublic,
             summary="Patrol route through checkpoints or buildings (巡查路线)",
             description="Visiting order, route, length, time and street names from a start point and back (or to "
                         "an end point), walking or driving (one-way streets honoured). Stops the network cannot "
                         "reach are named in a 422.")
def plan_patrol(body: PatrolIn, session: SessionDep, who: CurrentUser, settings: SettingsDep) -> PatrolPublic:
    coords = parse_crs(body.crs)
    start = _point(body.start, coords, "start")
    end = _point(body.end, coords, "end")
    plan = patrols.plan_patrol(session, who, start, checkpoint_ids=body.checkpoint_ids, opening_ids=body.opening_ids,
                              building_ids=body.building_ids, end=end, closed=body.closed, network=body.network,
                              speed_mps=body.speed_mps, time_limit_s=body.time_limit_s,
                              metric_srid=settings.metric_srid)
    return present.patrol(plan, coords)


@router.post("/patrols/streets", response_model=StreetPatrolPublic,
             summary="Walk every lane of a grid (网格巡街路线)",
             description="The shortest closed walk covering every lane of the grid at least once (undirected "
                         "Chinese postman on the walking network): route, length, the metres walked twice, time and "
                         "street names.")
def street_patrol(body: StreetPatrolIn, session: SessionDep, who: CurrentUser, settings: SettingsDep
                  ) -> StreetPatrolPublic:
    coords = parse_crs(body.crs)
    if body.grid_id is None and not body.grid_code:
        raise InvalidInput("give grid_id or grid_code")
    r = patrols.plan_street_patrol(session, who, grid_id=body.grid_id, grid_code=body.grid_code,
                                  start=_point(body.start, coords, "start"), speed_mps=body.speed_mps,
                                  metric_srid=settings.metric_srid)
    return present.street_patrol(r, coords)
