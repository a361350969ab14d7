"""Inspectors (督查): enclosures and their openings, coverage reports, checkpoint siting, patrol routes.

Coordinates come in and go out in the caller's ``crs`` (default EPSG:4326, axis order lon, lat) and are converted
here, at the edge. Every answer that holds a distance says whether it is a walking distance on the footpath
network or a straight line (``distance``: ``walk`` | ``straight``), and patrols say which network they used.
The domain is :mod:`spatial.store.openings`, :mod:`spatial.store.coverage`, :mod:`spatial.analysis.siting` and
:mod:`spatial.analysis.patrol`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import shapely
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.geojson import CrsName, CrsParam
from api.types import (BigId, DivisionCode, GridCode, Id, Metres, Name, OneOf, PolygonOnlyGeoJSON, Position,
                       SolverSeconds, Text)
from spatial.analysis import patrol, siting
from spatial.analysis.schedule import DAYS, DAYS_ZH, describe, format_week
from spatial.errors import InvalidInput
from spatial.geometry.crs import WGS84, CoordSys, parse_crs, transform_geom, transform_xy
from spatial.geometry.validate import position_from_xy
from spatial.analysis.routing import MAX_STOPS
from spatial.store import coverage
from spatial.store.opening_scan import MAX_FROM_PERIMETER_LIMIT_M, MIN_DISTANCE_M
from spatial.store import openings as op
from spatial.vocab import (BARRIER_KINDS, CHECKPOINT_KINDS, CHECKPOINT_STATUSES, DISTANCE_MODES, ENCLOSURE_KINDS,
                           OPENING_ORIGINS, OPENING_STATUSES, UNGUARDED_REASONS, label)

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parents[1] / "templates")
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


def _xy(point: tuple[float, float], crs: CoordSys) -> list[float]:
    x, y = transform_xy(point[0], point[1], WGS84, crs)
    digits = 7 if crs.is_geographic else 2
    return [round(float(x), digits), round(float(y), digits)]


def _geometry(geom, crs: CoordSys) -> dict:
    return json.loads(shapely.to_geojson(transform_geom(geom, WGS84, crs)))


def _label(vocabulary, code: str | None) -> dict | None:
    if code is None:
        return None
    return {"code": code, "zh": label(vocabulary, code, "zh"), "en": label(vocabulary, code, "en")}


def _distance(kind: str) -> dict:
    return {"kind": kind, "zh": label(DISTANCE_MODES, kind, "zh"), "en": label(DISTANCE_MODES, kind, "en")}


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
    enclosure_id: Id
    problem: Literal["set_cover", "max_cover"] = Field(
        "set_cover", description="set_cover: fewest checkpoints covering everyone; max_cover: p covering the most")
    p: int | None = Field(None, ge=1, le=10_000, description="checkpoints to staff (max_cover)")
    threshold_m: Threshold = coverage.DEFAULT_THRESHOLD_M
    distance: Literal["walk", "straight"] = "walk"
    candidates: Literal["all", "checkpoints"] = Field("all", description="all openings, or only today's checkpoints")
    keep_opening_ids: list[Id] = Field(default_factory=list, description="openings that must stay staffed")
    time_limit_s: float = Field(siting.DEFAULT_TIME_LIMIT_S, gt=0, le=siting.MAX_TIME_LIMIT_S)
    solver: Literal["cp-sat", "scip"] = "cp-sat"
    crs: CrsName | None = None


_UNIQUE = {"uniqueItems": True}  # stated; refused by spatial.analysis.patrol ("listed twice")


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


# -- presenting ---------------------------------------------------------------------------------------------------


def _checkpoint(c: op.CheckpointView | None) -> dict | None:
    if c is None:
        return None
    return {"id": c.id, "name": c.name, "kind": _label(CHECKPOINT_KINDS, c.kind),
            "status": _label(CHECKPOINT_STATUSES, c.status), "opening_hours": c.opening_hours,
            "hours_read_as": format_week(c.schedule) if c.schedule is not None else None,
            "staffed_hours_per_week": round(c.schedule.hours, 2) if c.schedule is not None else None,
            "staff_count": c.staff_count, "staffed": c.staffed}


def opening_properties(o: op.OpeningView) -> dict:
    return {"id": o.id, "enclosure_id": o.enclosure_id, "enclosure_name": o.enclosure_name,
            "status": _label(OPENING_STATUSES, o.status), "origin": _label(OPENING_ORIGINS, o.origin),
            "street_name": o.street_name, "highway": o.highway, "width_m": round(o.width_m, 2),
            "barrier_kind": _label(BARRIER_KINDS, o.barrier_kind),
            "barrier_m": None if o.barrier_m is None else round(o.barrier_m, 2),
            "unguarded": _label(UNGUARDED_REASONS, o.unguarded_reason), "checkpoint": _checkpoint(o.checkpoint),
            "perimeter_fraction": round(o.perimeter_fraction, 6), "note": o.note, "version": o.version,
            "updated_by": o.updated_by}


def _opening_feature(o: op.OpeningView, crs: CoordSys) -> dict:
    return {"type": "Feature", "id": o.id, "properties": opening_properties(o),
            "geometry": {"type": "Point", "coordinates": _xy(o.location, crs)}}


def _scan(result: op.ScanResult) -> dict:
    return {"enclosure_id": result.enclosure_id, "crossings": result.crossings, "added": result.added,
            "kept": result.kept, "removed": result.removed, "stale": result.stale, "moved": result.moved,
            "linked_checkpoints": result.linked_checkpoints, "openings_from_checkpoints": result.from_checkpoints,
            "far_checkpoints": [{"id": i, "name": n, "distance_m": d, "distance": "straight"}
                                for i, n, d in result.far_checkpoints]}


def _enclosure_json(e: coverage.EnclosureCoverage, crs: CoordSys) -> dict:
    f = e.enclosure
    return {
        "id": f["id"], "name": f["name"], "kind": _label(ENCLOSURE_KINDS, f["kind"]),
        "community_code": f["community_code"], "perimeter_m": round(f["perimeter_m"], 1),
        "area_m2": round(f["area_m2"]), "scanned_at": f["scanned_at"].isoformat() if f["scanned_at"] else None,
        "rescan_advised": f["rescan_advised"], "counts": e.counts(), "notes": e.notes,
        "unguarded": [{"opening_id": o.id, "location": _xy(o.location, crs), "street_name": o.street_name,
                       "highway": o.highway, "reason": _label(UNGUARDED_REASONS, o.unguarded_reason),
                       "checkpoint": o.checkpoint.name if o.checkpoint else None} for o in e.unguarded],
        "hours": {
            "without_staffed_checkpoint": describe(e.staffing.none),
            "hours_without_staffed_checkpoint": round(e.staffing.none.hours, 2),
            "sole_checkpoint": [{"opening_id": o.id, "checkpoint": o.checkpoint.name,
                                 "hours": round(e.staffing.sole[o.id].hours, 2),
                                 "periods": describe(e.staffing.sole[o.id])}
                                for o in e.staffed if not e.staffing.sole[o.id].is_empty],
            "staffed_per_hour": e.staffing.hourly,
            "hours_unknown": [o.id for o in e.openings if o.unguarded_reason == "hours_unknown"],
        },
        "distance": _distance(e.distance), "threshold_m": e.threshold_m,
        "households_beyond": [{"building_id": b.building_id, "code": b.code, "name": b.name, "grid_code": b.grid_code,
                               "location": _xy(b.location, crs), "households": b.households,
                               "distance_m": b.distance_m, "nearest_opening_id": b.nearest_opening_id}
                              for b in sorted(e.beyond, key=lambda b: -(b.distance_m or math.inf))],
        "checkpoint_loads": [{"opening_id": c.opening_id, "checkpoint_id": c.checkpoint_id, "name": c.name,
                              "households": c.households, "buildings": c.buildings, "grids": list(c.grid_codes),
                              "many_grids": c.many_grids} for c in e.checkpoint_loads],
        "grids_without_checkpoint": [g.__dict__ for g in e.grids_without_checkpoint],
    }


def report_json(report: coverage.CoverageReport, crs: CoordSys) -> dict:
    """The coverage report as JSON (also the data of the printable HTML page)."""
    return {"level": report.level, "code": report.code, "name": report.name, "crs": crs.name,
            "distance": _distance(report.distance), "threshold_m": report.threshold_m,
            "many_grids": report.many_grids, "totals": report.totals,
            "grids_without_checkpoint": [g.__dict__ for g in report.grids_without_checkpoint],
            "enclosures": [_enclosure_json(e, crs) for e in report.enclosures],
            "days": {"en": list(DAYS), "zh": list(DAYS_ZH)}}


# -- enclosures and openings --------------------------------------------------------------------------------------


@router.get("/enclosures", summary="Enclosures with their opening counts (围合)",
            description="A FeatureCollection of the enclosures in your area (of a division if given). Openings of "
                        "enclosures never scanned are detected on first use.")
def list_enclosures(session: SessionDep, who: CurrentUser, settings: SettingsDep, crs: CrsParam = None,
                    division: DivisionQ = None) -> dict[str, Any]:
    coords = parse_crs(crs)
    ids = op.visible_enclosure_ids(session, who, division=division)
    op.ensure_scanned(session, ids, metric_srid=settings.metric_srid)
    openings = op.openings_of(session, ids)
    features = []
    for f in op.enclosure_features(session, ids, settings.metric_srid):
        mine = [o for o in openings if o.enclosure_id == f["id"]]
        props = {k: f[k] for k in ("id", "name", "community_code", "rescan_advised")}
        props |= {"kind": _label(ENCLOSURE_KINDS, f["kind"]), "perimeter_m": round(f["perimeter_m"], 1),
                  "area_m2": round(f["area_m2"]), "openings": len(mine),
                  "sealed": sum(o.status == "sealed" for o in mine),
                  "checkpoints": sum(o.status == "checkpoint" for o in mine),
                  "unguarded": sum(bool(o.unguarded_reason) for o in mine),
                  "barrier_m": round(sum(o.barrier_m or 0 for o in mine), 1)}
        features.append({"type": "Feature", "id": f["id"], "properties": props,
                         "geometry": _geometry(f["boundary"], coords)})
    return {"type": "FeatureCollection", "crs": coords.name, "features": features}


@router.post("/enclosures", status_code=201, summary="Draw an enclosure (新建围合)",
             description="A closed, valid polygon (422 otherwise); its openings are detected where streets and "
                         "footpaths cross the perimeter. Planners.")
def create_enclosure(body: EnclosureCreate, session: SessionDep, who: CurrentUser,
                     settings: SettingsDep) -> dict[str, Any]:
    coords = parse_crs(body.crs)
    polygon = op.check_polygon(body.geometry, coords)
    new_id, scan = op.create_enclosure(session, who, body.name, polygon, kind=body.kind,
                                       community_code=body.community_code, metric_srid=settings.metric_srid,
                                       max_from_perimeter_m=body.max_from_perimeter_m)
    return {"id": new_id, "scan": _scan(scan)}


@router.put("/enclosures/{enclosure_id}/boundary", summary="Redraw an enclosure (修改围合边界)",
            description="Replaces the boundary (closed, valid polygon) and detects the openings again. Planners.")
def redraw_enclosure(enclosure_id: Id, body: BoundaryIn, session: SessionDep, who: CurrentUser,
                     settings: SettingsDep) -> dict[str, Any]:
    polygon = op.check_polygon(body.geometry, parse_crs(body.crs))
    return _scan(op.redraw_enclosure(session, who, enclosure_id, polygon, metric_srid=settings.metric_srid))


@router.post("/enclosures/{enclosure_id}/scan", summary="Detect openings again (重新识别出入口)",
             description="After the street network or the boundary changed. Openings found again keep their state; "
                         "deleted ones stay deleted. Planners.")
def scan_enclosure(enclosure_id: Id, session: SessionDep, who: CurrentUser, settings: SettingsDep,
                   max_from_perimeter_m: Annotated[MaxFromPerimeter, Query()] = op.DEFAULT_MAX_FROM_PERIMETER_M
                   ) -> dict[str, Any]:
    return _scan(op.rescan(session, who, enclosure_id, metric_srid=settings.metric_srid,
                           max_from_perimeter_m=max_from_perimeter_m))


@router.post("/enclosures/{enclosure_id}/openings", status_code=201, summary="Add an opening by hand (添加出入口)",
             description="A gate the map does not know, on the perimeter (refused farther than "
                         "max_from_perimeter_m). Planners.")
def add_opening(enclosure_id: Id, body: OpeningCreate, session: SessionDep, who: CurrentUser,
                settings: SettingsDep) -> dict[str, Any]:
    coords = parse_crs(body.crs)
    lon, lat = _wgs84(body.lon, body.lat, coords)
    opening = op.add_opening(session, who, enclosure_id, lon, lat, street_name=body.street_name, width_m=body.width_m,
                             note=body.note, max_from_perimeter_m=body.max_from_perimeter_m,
                             metric_srid=settings.metric_srid)
    return _opening_feature(opening, coords)


@router.get("/openings/{opening_id}", summary="One opening (出入口)")
def get_opening(opening_id: Id, session: SessionDep, who: CurrentUser, crs: CrsParam = None) -> dict[str, Any]:
    return _opening_feature(op.get_opening(session, who, opening_id), parse_crs(crs))


@router.patch("/openings/{opening_id}", summary="Change an opening's state (修改出入口状态)",
              description="Seal it (barrier_kind), make it a checkpoint (checkpoint: hours, staff), or open it; "
                          "change its width or note (inspectors, planners); move it (planners). Send the version "
                          "you edited: a stale one is 412.")
def update_opening(opening_id: Id, body: OpeningUpdate, session: SessionDep, who: CurrentUser,
                   settings: SettingsDep) -> dict[str, Any]:
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
    return _opening_feature(opening, coords)


@router.delete("/openings/{opening_id}", status_code=204, summary="Delete an opening (删除出入口)",
               description="It stays deleted when the perimeter is scanned again. Planners.")
def delete_opening(opening_id: Id, session: SessionDep, who: CurrentUser, version: Id | None = None) -> Response:
    op.delete_opening(session, who, opening_id, version=version)
    return Response(status_code=204)


@router.post("/checkpoints", status_code=201, summary="Register a checkpoint (登记卡口)",
             description="On an enclosure's perimeter: refused (422) when farther than max_from_perimeter_m "
                         "(default 30 m, straight line) from every perimeter in your area. Planners.")
def create_checkpoint(body: CheckpointCreate, session: SessionDep, who: CurrentUser,
                      settings: SettingsDep) -> dict[str, Any]:
    coords = parse_crs(body.crs)
    lon, lat = _wgs84(body.lon, body.lat, coords)
    opening = op.create_checkpoint(session, who, lon, lat, body.name, kind=body.kind,
                                   opening_hours=body.opening_hours, staff_count=body.staff_count,
                                   enclosure_id=body.enclosure_id, max_from_perimeter_m=body.max_from_perimeter_m,
                                   metric_srid=settings.metric_srid)
    return _opening_feature(opening, coords)


# -- coverage -----------------------------------------------------------------------------------------------------


def _report(session, who, settings, enclosure_id, division, threshold_m, distance, many_grids):
    if enclosure_id is None and division is None:
        raise InvalidInput("give enclosure_id or division (a community or subdistrict code)")
    return coverage.coverage_report(session, who, enclosure_id=enclosure_id, division=division,
                                    threshold_m=threshold_m, distance=distance, many_grids=many_grids,
                                    metric_srid=settings.metric_srid)


@router.get("/coverage", summary="Coverage report (卡口覆盖报告)",
            description="Per enclosure and in total: unguarded openings, metres of barrier, sealed openings and "
                        "checkpoints, hours with no staffed checkpoint and with a single one, households beyond the "
                        "threshold from the nearest staffed checkpoint (walking on the footpath network by default), "
                        "grids with no checkpoint, checkpoints serving many grids. `households=true` adds the "
                        "household rows beyond the threshold, masked and audited.")
def coverage_report(session: SessionDep, who: CurrentUser, settings: SettingsDep, enclosure_id: Id | None = None,
                    division: DivisionQ = None, threshold_m: ThresholdQ = coverage.DEFAULT_THRESHOLD_M,
                    distance: DistanceQ = "walk", many_grids: ManyGridsQ = coverage.DEFAULT_MANY_GRIDS,
                    households: bool = False, crs: CrsParam = None) -> dict[str, Any]:
    coords = parse_crs(crs)
    report = _report(session, who, settings, enclosure_id, division, threshold_m, distance, many_grids)
    out = report_json(report, coords)
    if households:
        out["household_rows"] = coverage.households_beyond(session, who, report)
    return out


@router.get("/coverage/report.html", response_class=HTMLResponse, summary="Printable coverage report (打印报告)",
            description="The coverage report as a printable HTML page (send the bearer token; the inspector page "
                        "opens it in a new window).")
def coverage_report_html(request: Request, session: SessionDep, who: CurrentUser, settings: SettingsDep,
                         enclosure_id: Id | None = None, division: DivisionQ = None,
                         threshold_m: ThresholdQ = coverage.DEFAULT_THRESHOLD_M, distance: DistanceQ = "walk",
                         many_grids: ManyGridsQ = coverage.DEFAULT_MANY_GRIDS) -> HTMLResponse:
    report = _report(session, who, settings, enclosure_id, division, threshold_m, distance, many_grids)
    return TEMPLATES.TemplateResponse(request, "coverage_report.html",
                                      {"r": report_json(report, WGS84), "who": who.username})


@router.get("/layers/{layer}", summary="Coverage layers as GeoJSON (覆盖图层)",
            description="enclosures, openings (coloured by status), unguarded (the gaps), barriers (sealed stretches "
                        "of perimeter), checkpoints (staffed, with the households they serve), households_beyond "
                        "(buildings farther than the threshold from the nearest staffed checkpoint).")
def layer(layer: Literal["enclosures", "openings", "unguarded", "barriers", "checkpoints", "households_beyond"],
          session: SessionDep, who: CurrentUser, settings: SettingsDep, enclosure_id: Id | None = None,
          division: DivisionQ = None, threshold_m: ThresholdQ = coverage.DEFAULT_THRESHOLD_M,
          distance: DistanceQ = "walk", crs: CrsParam = None) -> dict[str, Any]:
    coords = parse_crs(crs)
    if layer in ("openings", "unguarded", "barriers"):
        ids = op.visible_enclosure_ids(session, who, enclosure_id=enclosure_id, division=division)
        op.ensure_scanned(session, ids, metric_srid=settings.metric_srid)
        openings = op.openings_of(session, ids)
        if layer == "barriers":
            features = [{"type": "Feature", "id": o.id, "properties": opening_properties(o),
                         "geometry": _geometry(o.barrier, coords)} for o in openings if o.barrier is not None]
        else:
            features = [_opening_feature(o, coords) for o in openings if layer == "openings" or o.unguarded_reason]
        return {"type": "FeatureCollection", "crs": coords.name, "layer": layer, "features": features}
    if layer == "enclosures":
        return {**list_enclosures(session, who, settings, crs, division), "layer": layer}
    report = coverage.coverage_report(session, who, enclosure_id=enclosure_id, division=division,
                                      threshold_m=threshold_m, distance=distance, metric_srid=settings.metric_srid)
    features = []
    for e in report.enclosures:
        if layer == "checkpoints":
            loads = {c.opening_id: c for c in e.checkpoint_loads}
            features += [{"type": "Feature", "id": o.id, "geometry": {"type": "Point", "coordinates": _xy(o.location,
                                                                                                        coords)},
                          "properties": {**opening_properties(o), "households_nearest": loads[o.id].households,
                                         "grids": list(loads[o.id].grid_codes), "many_grids": loads[o.id].many_grids,
                                         "distance": e.distance}} for o in e.staffed]
        else:
            features += [{"type": "Feature", "id": b.building_id,
                          "geometry": {"type": "Point", "coordinates": _xy(b.location, coords)},
                          "properties": {"building_id": b.building_id, "code": b.code, "name": b.name,
                                         "grid_code": b.grid_code, "households": b.households,
                                         "distance_m": b.distance_m, "distance": e.distance,
                                         "threshold_m": e.threshold_m, "enclosure_id": e.enclosure["id"],
                                         "nearest_opening_id": b.nearest_opening_id}} for b in e.beyond]
    return {"type": "FeatureCollection", "crs": coords.name, "layer": layer, "distance": _distance(distance),
            "threshold_m": threshold_m, "features": features}


# -- siting -------------------------------------------------------------------------------------------------------


@router.post("/siting", summary="Which openings to staff (卡口选址)",
             description="Set covering (fewest checkpoints so every household is within the threshold) or maximal "
                         "covering (p checkpoints covering the most households), exact (OR-Tools), with proven "
                         "optimality, the households no opening can cover, and whether distances are walking or "
                         "straight-line. Writes nothing.")
def site_checkpoints(body: SitingIn, session: SessionDep, who: CurrentUser, settings: SettingsDep) -> dict[str, Any]:
    coords = parse_crs(body.crs)
    r = siting.plan_siting(session, who, body.enclosure_id, problem=body.problem, threshold_m=body.threshold_m,
                           distance=body.distance, p=body.p, candidates=body.candidates,
                           keep_opening_ids=body.keep_opening_ids, time_limit_s=body.time_limit_s, solver=body.solver,
                           metric_srid=settings.metric_srid)
    s = r.solution
    return {
        "enclosure_id": r.enclosure_id, "enclosure_name": r.enclosure_name, "problem": r.problem, "p": r.p,
        "distance": _distance(r.distance), "threshold_m": r.threshold_m, "crs": coords.name,
        "optimal": s.optimal, "status": s.status, "objective": s.objective, "bound": s.bound, "solver": s.solver,
        "solve_s": round(s.solve_s, 3), "candidates": len(r.candidates), "demand_buildings": s.demand_points,
        "demand_rows_after_merging": s.rows, "households": s.total_weight, "households_covered": s.covered_weight,
        "households_uncoverable": s.uncoverable_weight,
        "chosen": [{**opening_properties(o), "location": _xy(o.location, coords),
                    "households_nearest": r.households_nearest[o.id]} for o in r.chosen],
        "uncoverable": [{"building_id": d.building_id, "code": d.code, "name": d.name, "households": d.households,
                         "location": _xy(d.location, coords)} for d in r.uncoverable],
        "current": r.current, "notes": list(r.notes)}


# -- patrols ------------------------------------------------------------------------------------------------------


def _point(value: list[float] | None, coords: CoordSys, what: str) -> tuple[float, float] | None:
    if value is None:
        return None
    if len(value) != 2:
        raise InvalidInput(f"{what} must be [x, y]")
    return _wgs84(value[0], value[1], coords)


@router.post("/patrols", summary="Patrol route through checkpoints or buildings (巡查路线)",
             description="Visiting order, route, length, time and street names from a start point and back (or to "
                         "an end point), walking or driving (one-way streets honoured). Stops the network cannot "
                         "reach are named in a 422.")
def plan_patrol(body: PatrolIn, session: SessionDep, who: CurrentUser, settings: SettingsDep) -> dict[str, Any]:
    coords = parse_crs(body.crs)
    start = _point(body.start, coords, "start")
    end = _point(body.end, coords, "end")
    plan = patrol.plan_patrol(session, who, start, checkpoint_ids=body.checkpoint_ids, opening_ids=body.opening_ids,
                              building_ids=body.building_ids, end=end, closed=body.closed, network=body.network,
                              speed_mps=body.speed_mps, time_limit_s=body.time_limit_s,
                              metric_srid=settings.metric_srid)
    tour = plan.tour
    stops = [{"order": i + 1, "key": key, "kind": plan.stops[key].kind, "id": plan.stops[key].id,
              "name": plan.stops[key].name, "location": _xy((plan.stops[key].lon, plan.stops[key].lat), coords),
              "arrival_m": round(m, 1), "arrival_s": round(m / tour.speed_mps, 1)}
             for i, (key, m) in enumerate(zip(tour.order, tour.arrival_m, strict=True))]
    return {"crs": coords.name, "network": tour.network, "shape": tour.shape,
            "distance": {"kind": tour.network,
                         "zh": "沿路网距离（步行）" if tour.network == "walk" else "沿路网距离（车行，遵守单行）",
                         "en": f"along the {'walking' if tour.network == 'walk' else 'driving (one-way honoured)'} "
                               "network"},
            "length_m": round(tour.length_m, 1), "duration_s": round(tour.duration_s, 1), "speed_mps": tour.speed_mps,
            "solver": tour.solver, "optimal": tour.optimal, "stops": stops,
            "legs": [{"from": leg.from_key, "to": leg.to_key, "length_m": round(leg.length_m, 1),
                      "duration_s": round(leg.duration_s, 1),
                      "steps": [{"name": s.name, "length_m": round(s.length_m, 1)} for s in leg.steps]}
                     for leg in tour.legs],
            "geometry": _geometry(tour.geometry, coords)}


@router.post("/patrols/streets", summary="Walk every lane of a grid (网格巡街路线)",
             description="The shortest closed walk covering every lane of the grid at least once (undirected "
                         "Chinese postman on the walking network): route, length, the metres walked twice, time and "
                         "street names.")
def street_patrol(body: StreetPatrolIn, session: SessionDep, who: CurrentUser, settings: SettingsDep) -> dict[str, Any]:
    coords = parse_crs(body.crs)
    if body.grid_id is None and not body.grid_code:
        raise InvalidInput("give grid_id or grid_code")
    r = patrol.plan_street_patrol(session, who, grid_id=body.grid_id, grid_code=body.grid_code,
                                  start=_point(body.start, coords, "start"), speed_mps=body.speed_mps,
                                  metric_srid=settings.metric_srid)
    return {"crs": coords.name, "grid_id": r.grid_id, "grid_code": r.grid_code, "grid_name": r.grid_name,
            "distance": {"kind": "walk", "zh": "沿步行路网距离", "en": "along the walking network"},
            "length_m": round(r.length_m, 1), "lanes_m": round(r.lanes_m, 1), "extra_m": round(r.extra_m, 1),
            "duration_s": round(r.duration_s, 1), "speed_mps": r.speed_mps, "lanes": r.lanes,
            "repeated_edges": len(r.repeated_edges), "optimal": r.optimal, "method": r.method,
            "start": _xy(r.start, coords),
            "steps": [{"name": s.name, "length_m": round(s.length_m, 1)} for s in r.steps],
            "geometry": _geometry(r.geometry, coords)}
