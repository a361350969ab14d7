"""Inspection (督查) answers: enclosures, openings, coverage reports, checkpoint siting and patrol routes as JSON,
and the printable coverage report (also written by ``gridgov inspect report --html``).

Positions and geometries go out in the caller's ``crs`` (converted here from EPSG:4326; 7 decimals for
geographic systems, 2 — centimetres — for projected ones). Every distance says whether it is walked on the
footpath network or a straight line (``distance``: ``walk`` | ``straight``). Vocabulary codes go out as
:class:`~api.schemas.Label` (code, zh, en).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import shapely
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from api.schemas import Label
from spatial.store.patrols import Patrol, StreetPatrol
from spatial.analysis.schedule import DAYS, DAYS_ZH, describe, format_week
from spatial.store.enclosure_siting import SitingResult
from spatial.geometry.crs import WGS84, CoordSys, transform_geom, transform_xy
from spatial.store import coverage
from spatial.store import openings as op
from spatial.vocab import (BARRIER_KINDS, CHECKPOINT_KINDS, CHECKPOINT_STATUSES, DISTANCE_MODES, ENCLOSURE_KINDS,
                           OPENING_ORIGINS, OPENING_STATUSES, UNGUARDED_REASONS, label)

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parents[1] / "templates")
Number = int | float
"""A count or a measure: kept as the domain computed it (an int stays an int in the JSON)."""


# -- coordinates and labels ---------------------------------------------------------------------------------------


def xy(point: tuple[float, float], crs: CoordSys) -> list[float]:
    """``[x, y]`` in ``crs`` of a (lon, lat) in EPSG:4326, rounded to 7 decimals (geographic) or 2 (metres)."""
    x, y = transform_xy(point[0], point[1], WGS84, crs)
    digits = 7 if crs.is_geographic else 2
    return [round(float(x), digits), round(float(y), digits)]


def geometry(geom: shapely.Geometry, crs: CoordSys) -> dict[str, Any]:
    """A GeoJSON geometry in ``crs`` of a Shapely geometry in EPSG:4326."""
    return json.loads(shapely.to_geojson(transform_geom(geom, WGS84, crs)))


def point(location: tuple[float, float], crs: CoordSys) -> dict[str, Any]:
    return {"type": "Point", "coordinates": xy(location, crs)}


def _label(vocabulary, code: str | None) -> Label | None:
    if code is None:
        return None
    return Label(code=code, zh=label(vocabulary, code, "zh"), en=label(vocabulary, code, "en"))


def _plain(model: BaseModel | None) -> dict[str, Any] | None:
    return None if model is None else model.model_dump()


# -- schemas ------------------------------------------------------------------------------------------------------


class DistancePublic(BaseModel):
    kind: str = Field(description="walk: on the footpath (or street) network; straight: straight line; "
                                  "drive: on the street network, one-way streets honoured")
    zh: str
    en: str


def distance(kind: str) -> DistancePublic:
    return DistancePublic(kind=kind, zh=label(DISTANCE_MODES, kind, "zh"), en=label(DISTANCE_MODES, kind, "en"))


class CheckpointPublic(BaseModel):
    id: int
    name: str | None
    kind: Label | None
    status: Label | None
    opening_hours: str | None
    hours_read_as: str | None = Field(description="the opening hours as understood; null outside the syntax")
    staffed_hours_per_week: float | None
    staff_count: int
    staffed: bool


class OpeningPublic(BaseModel):
    """An opening's properties (the same in every answer that holds openings)."""

    id: int
    enclosure_id: int
    enclosure_name: str | None
    status: Label | None
    origin: Label | None
    street_name: str | None
    highway: str | None
    width_m: float = Field(description="metres of perimeter a barrier closes")
    barrier_kind: Label | None
    barrier_m: float | None
    unguarded: Label | None = Field(description="why it is a gap; null when guarded")
    checkpoint: CheckpointPublic | None
    perimeter_fraction: float = Field(description="position along the perimeter, 0–1")
    note: str | None
    version: int = Field(description="send it back when you change the opening (412 if it changed meanwhile)")
    updated_by: str | None


class OpeningFeaturePublic(BaseModel):
    """An opening as a GeoJSON Feature (a Point in crs)."""

    type: str
    id: int
    properties: OpeningPublic
    geometry: dict[str, Any]


class FarCheckpointPublic(BaseModel):
    id: int
    name: str | None
    distance_m: Number
    distance: str


class ScanPublic(BaseModel):
    """What a scan of an enclosure's perimeter found and changed (opening ids)."""

    enclosure_id: int
    crossings: int
    added: list[int]
    kept: list[int]
    removed: list[int]
    stale: list[int]
    moved: list[int]
    linked_checkpoints: list[int]
    openings_from_checkpoints: list[int]
    far_checkpoints: list[FarCheckpointPublic] = Field(description="checkpoints farther from the perimeter than "
                                                                   "max_from_perimeter_m (straight line)")


class EnclosureCreatedPublic(BaseModel):
    id: int
    scan: ScanPublic


class UnguardedPublic(BaseModel):
    opening_id: int
    location: list[float]
    street_name: str | None
    highway: str | None
    reason: Label | None
    checkpoint: str | None


class SoleCheckpointPublic(BaseModel):
    opening_id: int
    checkpoint: str | None
    hours: float
    periods: list[dict[str, Any]]


class HoursPublic(BaseModel):
    without_staffed_checkpoint: list[dict[str, Any]] = Field(description="periods of the week (day, from, to)")
    hours_without_staffed_checkpoint: float
    sole_checkpoint: list[SoleCheckpointPublic]
    staffed_per_hour: list[list[int]] = Field(description="7 × 24: the fewest staffed checkpoints in each hour")
    hours_unknown: list[int] = Field(description="openings whose hours are outside the supported syntax")


class BeyondPublic(BaseModel):
    building_id: int
    code: str | None
    name: str | None
    grid_code: str | None
    location: list[float]
    households: int
    distance_m: float | None
    nearest_opening_id: int | None


class CheckpointLoadPublic(BaseModel):
    opening_id: int
    checkpoint_id: int
    name: str | None
    households: int
    buildings: int
    grids: list[str]
    many_grids: bool


class GridWithoutPublic(BaseModel):
    grid_id: int
    code: str | None
    name: str | None
    households: int


class EnclosureCoveragePublic(BaseModel):
    id: int
    name: str | None
    kind: Label | None
    community_code: str | None
    perimeter_m: float
    area_m2: int
    scanned_at: str | None = Field(description="ISO 8601")
    rescan_advised: bool = Field(description="the boundary changed since the last scan")
    counts: dict[str, Number]
    notes: list[str]
    unguarded: list[UnguardedPublic]
    hours: HoursPublic
    distance: DistancePublic
    threshold_m: float
    households_beyond: list[BeyondPublic] = Field(description="farthest first")
    checkpoint_loads: list[CheckpointLoadPublic]
    grids_without_checkpoint: list[GridWithoutPublic]


class DaysPublic(BaseModel):
    en: list[str]
    zh: list[str]


class CoverageReportPublic(BaseModel):
    level: str
    code: str | None
    name: str | None
    crs: str
    distance: DistancePublic
    threshold_m: float
    many_grids: int
    totals: dict[str, Number]
    grids_without_checkpoint: list[GridWithoutPublic]
    enclosures: list[EnclosureCoveragePublic]
    days: DaysPublic
    household_rows: list[dict[str, Any]] | None = Field(
        None, description="with households=true only: the masked household rows beyond the threshold (audited)")


class ChosenOpeningPublic(OpeningPublic):
    location: list[float]
    households_nearest: int


class UncoverablePublic(BaseModel):
    building_id: int
    code: str | None
    name: str | None
    households: int
    location: list[float]


class SitingPublic(BaseModel):
    enclosure_id: int
    enclosure_name: str | None
    problem: str
    p: int | None
    distance: DistancePublic
    threshold_m: float
    crs: str
    optimal: bool = Field(description="proven optimal")
    status: str
    objective: Number
    bound: Number
    solver: str
    solve_s: float
    candidates: int
    demand_buildings: int
    demand_rows_after_merging: int
    households: int
    households_covered: int
    households_uncoverable: int
    chosen: list[ChosenOpeningPublic]
    uncoverable: list[UncoverablePublic] = Field(description="buildings no candidate opening can cover")
    current: dict[str, Any] = Field(description="the same figures for today's staffed checkpoints")
    notes: list[str]


class StepPublic(BaseModel):
    name: str | None
    length_m: float


class PatrolStopPublic(BaseModel):
    order: int
    key: str = Field(description="<kind>:<id>")
    kind: str
    id: int
    name: str | None
    location: list[float]
    arrival_m: float
    arrival_s: float


class PatrolLegPublic(BaseModel):
    from_: str | int = Field(alias="from", description="a stop's key, or start / end")
    to: str | int
    length_m: float
    duration_s: float
    steps: list[StepPublic]


class PatrolPublic(BaseModel):
    crs: str
    network: str
    shape: str
    distance: DistancePublic
    length_m: float
    duration_s: float
    speed_mps: float
    solver: str
    optimal: bool
    stops: list[PatrolStopPublic]
    legs: list[PatrolLegPublic]
    geometry: dict[str, Any]


class StreetPatrolPublic(BaseModel):
    crs: str
    grid_id: int
    grid_code: str | None
    grid_name: str | None
    distance: DistancePublic
    length_m: float
    lanes_m: float
    extra_m: float = Field(description="metres walked twice")
    duration_s: float
    speed_mps: float
    lanes: int
    repeated_edges: int
    optimal: bool
    method: str
    start: list[float]
    steps: list[StepPublic]
    geometry: dict[str, Any]


# -- presenting ---------------------------------------------------------------------------------------------------


def checkpoint(c: op.CheckpointView | None) -> CheckpointPublic | None:
    if c is None:
        return None
    return CheckpointPublic(
        id=c.id, name=c.name, kind=_label(CHECKPOINT_KINDS, c.kind), status=_label(CHECKPOINT_STATUSES, c.status),
        opening_hours=c.opening_hours, hours_read_as=format_week(c.schedule) if c.schedule is not None else None,
        staffed_hours_per_week=round(c.schedule.hours, 2) if c.schedule is not None else None,
        staff_count=c.staff_count, staffed=c.staffed)


def _opening_fields(o: op.OpeningView) -> dict[str, Any]:
    return {"id": o.id, "enclosure_id": o.enclosure_id, "enclosure_name": o.enclosure_name,
            "status": _label(OPENING_STATUSES, o.status), "origin": _label(OPENING_ORIGINS, o.origin),
            "street_name": o.street_name, "highway": o.highway, "width_m": round(o.width_m, 2),
            "barrier_kind": _label(BARRIER_KINDS, o.barrier_kind),
            "barrier_m": None if o.barrier_m is None else round(o.barrier_m, 2),
            "unguarded": _label(UNGUARDED_REASONS, o.unguarded_reason), "checkpoint": checkpoint(o.checkpoint),
            "perimeter_fraction": round(o.perimeter_fraction, 6), "note": o.note, "version": o.version,
            "updated_by": o.updated_by}


def opening(o: op.OpeningView) -> OpeningPublic:
    return OpeningPublic(**_opening_fields(o))


def opening_properties(o: op.OpeningView) -> dict[str, Any]:
    """:func:`opening` as a dict, for GeoJSON layers that add properties of their own."""
    return opening(o).model_dump()


def opening_feature(o: op.OpeningView, crs: CoordSys) -> OpeningFeaturePublic:
    return OpeningFeaturePublic(type="Feature", id=o.id, properties=opening(o), geometry=point(o.location, crs))


def scan(result: op.ScanResult) -> ScanPublic:
    return ScanPublic(
        enclosure_id=result.enclosure_id, crossings=result.crossings, added=result.added, kept=result.kept,
        removed=result.removed, stale=result.stale, moved=result.moved,
        linked_checkpoints=result.linked_checkpoints, openings_from_checkpoints=result.from_checkpoints,
        far_checkpoints=[FarCheckpointPublic(id=i, name=n, distance_m=d, distance="straight")
                         for i, n, d in result.far_checkpoints])


def _grids_without(grids: list[coverage.GridWithout]) -> list[GridWithoutPublic]:
    return [GridWithoutPublic(**g.__dict__) for g in grids]


def _enclosure_coverage(e: coverage.EnclosureCoverage, crs: CoordSys) -> EnclosureCoveragePublic:
    f = e.enclosure
    return EnclosureCoveragePublic(
        id=f["id"], name=f["name"], kind=_label(ENCLOSURE_KINDS, f["kind"]), community_code=f["community_code"],
        perimeter_m=round(f["perimeter_m"], 1), area_m2=round(f["area_m2"]),
        scanned_at=f["scanned_at"].isoformat() if f["scanned_at"] else None, rescan_advised=f["rescan_advised"],
        counts=e.counts(), notes=e.notes,
        unguarded=[UnguardedPublic(opening_id=o.id, location=xy(o.location, crs), street_name=o.street_name,
                                   highway=o.highway, reason=_label(UNGUARDED_REASONS, o.unguarded_reason),
                                   checkpoint=o.checkpoint.name if o.checkpoint else None) for o in e.unguarded],
        hours=HoursPublic(
            without_staffed_checkpoint=describe(e.staffing.none),
            hours_without_staffed_checkpoint=round(e.staffing.none.hours, 2),
            sole_checkpoint=[SoleCheckpointPublic(opening_id=o.id, checkpoint=o.checkpoint.name,
                                                  hours=round(e.staffing.sole[o.id].hours, 2),
                                                  periods=describe(e.staffing.sole[o.id]))
                             for o in e.staffed if not e.staffing.sole[o.id].is_empty],
            staffed_per_hour=e.staffing.hourly,
            hours_unknown=[o.id for o in e.openings if o.unguarded_reason == "hours_unknown"]),
        distance=distance(e.distance), threshold_m=e.threshold_m,
        households_beyond=[BeyondPublic(building_id=b.building_id, code=b.code, name=b.name, grid_code=b.grid_code,
                                        location=xy(b.location, crs), households=b.households,
                                        distance_m=b.distance_m, nearest_opening_id=b.nearest_opening_id)
                           for b in sorted(e.beyond, key=lambda b: -(b.distance_m or math.inf))],
        checkpoint_loads=[CheckpointLoadPublic(opening_id=c.opening_id, checkpoint_id=c.checkpoint_id, name=c.name,
                                               households=c.households, buildings=c.buildings,
                                               grids=list(c.grid_codes), many_grids=c.many_grids)
                          for c in e.checkpoint_loads],
        grids_without_checkpoint=_grids_without(e.grids_without_checkpoint))


def coverage_report(report: coverage.CoverageReport, crs: CoordSys) -> CoverageReportPublic:
    """The coverage report (also the data of the printable HTML page); ``household_rows`` unset."""
    return CoverageReportPublic(
        level=report.level, code=report.code, name=report.name, crs=crs.name, distance=distance(report.distance),
        threshold_m=report.threshold_m, many_grids=report.many_grids, totals=report.totals,
        grids_without_checkpoint=_grids_without(report.grids_without_checkpoint),
        enclosures=[_enclosure_coverage(e, crs) for e in report.enclosures],
        days=DaysPublic(en=list(DAYS), zh=list(DAYS_ZH)))


def coverage_page_context(report: coverage.CoverageReport, who: str) -> dict[str, Any]:
    """What ``coverage_report.html`` is rendered with: the report in EPSG:4326 and who printed it."""
    return {"r": coverage_report(report, WGS84).model_dump(exclude_unset=True), "who": who}


def coverage_page(report: coverage.CoverageReport, who: str) -> str:
    """The printable coverage report as an HTML page."""
    return TEMPLATES.get_template("coverage_report.html").render(**coverage_page_context(report, who))


def enclosures(found: list[dict], openings: list[op.OpeningView], crs: CoordSys) -> dict[str, Any]:
    """Enclosures (:func:`spatial.store.openings.enclosure_features`) with their openings counted, as a GeoJSON
    FeatureCollection in ``crs``."""
    features = []
    for f in found:
        mine = [o for o in openings if o.enclosure_id == f["id"]]
        props = {k: f[k] for k in ("id", "name", "community_code", "rescan_advised")}
        props |= {"kind": _plain(_label(ENCLOSURE_KINDS, f["kind"])), "perimeter_m": round(f["perimeter_m"], 1),
                  "area_m2": round(f["area_m2"]), "openings": len(mine),
                  "sealed": sum(o.status == "sealed" for o in mine),
                  "checkpoints": sum(o.status == "checkpoint" for o in mine),
                  "unguarded": sum(bool(o.unguarded_reason) for o in mine),
                  "barrier_m": round(sum(o.barrier_m or 0 for o in mine), 1)}
        features.append({"type": "Feature", "id": f["id"], "properties": props,
                         "geometry": geometry(f["boundary"], crs)})
    return {"type": "FeatureCollection", "crs": crs.name, "features": features}


def opening_layer(layer: str, openings: list[op.OpeningView], crs: CoordSys) -> dict[str, Any]:
    """The openings, unguarded (the gaps) or barriers (sealed stretches of perimeter) layer."""
    if layer == "barriers":
        features = [{"type": "Feature", "id": o.id, "properties": opening_properties(o),
                     "geometry": geometry(o.barrier, crs)} for o in openings if o.barrier is not None]
    else:
        features = [opening_feature(o, crs).model_dump() for o in openings
                    if layer == "openings" or o.unguarded_reason]
    return {"type": "FeatureCollection", "crs": crs.name, "layer": layer, "features": features,
            "totals": op.opening_counts(openings)}


def coverage_layer(layer: str, report: coverage.CoverageReport, crs: CoordSys, distance_kind: str,
                   threshold_m: float) -> dict[str, Any]:
    """The checkpoints (staffed, with the households they serve) or households_beyond layer of a report."""
    features = []
    for e in report.enclosures:
        if layer == "checkpoints":
            loads = {c.opening_id: c for c in e.checkpoint_loads}
            features += [{"type": "Feature", "id": o.id, "geometry": point(o.location, crs),
                          "properties": {**opening_properties(o), "households_nearest": loads[o.id].households,
                                         "grids": list(loads[o.id].grid_codes), "many_grids": loads[o.id].many_grids,
                                         "distance": e.distance}} for o in e.staffed]
        else:
            features += [{"type": "Feature", "id": b.building_id, "geometry": point(b.location, crs),
                          "properties": {"building_id": b.building_id, "code": b.code, "name": b.name,
                                         "grid_code": b.grid_code, "households": b.households,
                                         "distance_m": b.distance_m, "distance": e.distance,
                                         "threshold_m": e.threshold_m, "enclosure_id": e.enclosure["id"],
                                         "nearest_opening_id": b.nearest_opening_id}} for b in e.beyond]
    return {"type": "FeatureCollection", "crs": crs.name, "layer": layer,
            "distance": distance(distance_kind).model_dump(), "threshold_m": threshold_m, "features": features}


def siting(r: SitingResult, crs: CoordSys) -> SitingPublic:
    s = r.solution
    return SitingPublic(
        enclosure_id=r.enclosure_id, enclosure_name=r.enclosure_name, problem=r.problem, p=r.p,
        distance=distance(r.distance), threshold_m=r.threshold_m, crs=crs.name, optimal=s.optimal, status=s.status,
        objective=s.objective, bound=s.bound, solver=s.solver, solve_s=round(s.solve_s, 3),
        candidates=len(r.candidates), demand_buildings=s.demand_points, demand_rows_after_merging=s.rows,
        households=s.total_weight, households_covered=s.covered_weight, households_uncoverable=s.uncoverable_weight,
        chosen=[ChosenOpeningPublic(**_opening_fields(o), location=xy(o.location, crs),
                                    households_nearest=r.households_nearest[o.id]) for o in r.chosen],
        uncoverable=[UncoverablePublic(building_id=d.building_id, code=d.code, name=d.name, households=d.households,
                                       location=xy(d.location, crs)) for d in r.uncoverable],
        current=r.current, notes=list(r.notes))


def _steps(steps) -> list[StepPublic]:
    return [StepPublic(name=s.name, length_m=round(s.length_m, 1)) for s in steps]


def patrol(plan: Patrol, crs: CoordSys) -> PatrolPublic:
    tour = plan.tour
    stops = [PatrolStopPublic(order=i + 1, key=key, kind=plan.stops[key].kind, id=plan.stops[key].id,
                              name=plan.stops[key].name, location=xy((plan.stops[key].lon, plan.stops[key].lat), crs),
                              arrival_m=round(m, 1), arrival_s=round(m / tour.speed_mps, 1))
             for i, (key, m) in enumerate(zip(tour.order, tour.arrival_m, strict=True))]
    walking = tour.network == "walk"
    return PatrolPublic(
        crs=crs.name, network=tour.network, shape=tour.shape,
        distance=DistancePublic(kind=tour.network, zh="沿路网距离（步行）" if walking else "沿路网距离（车行，遵守单行）",
                                en=f"along the {'walking' if walking else 'driving (one-way honoured)'} network"),
        length_m=round(tour.length_m, 1), duration_s=round(tour.duration_s, 1), speed_mps=tour.speed_mps,
        solver=tour.solver, optimal=tour.optimal, stops=stops,
        legs=[PatrolLegPublic(**{"from": leg.from_key}, to=leg.to_key, length_m=round(leg.length_m, 1),
                              duration_s=round(leg.duration_s, 1), steps=_steps(leg.steps)) for leg in tour.legs],
        geometry=geometry(tour.geometry, crs))


def street_patrol(r: StreetPatrol, crs: CoordSys) -> StreetPatrolPublic:
    return StreetPatrolPublic(
        crs=crs.name, grid_id=r.grid_id, grid_code=r.grid_code, grid_name=r.grid_name,
        distance=DistancePublic(kind="walk", zh="沿步行路网距离", en="along the walking network"),
        length_m=round(r.length_m, 1), lanes_m=round(r.lanes_m, 1), extra_m=round(r.extra_m, 1),
        duration_s=round(r.duration_s, 1), speed_mps=r.speed_mps, lanes=r.lanes,
        repeated_edges=len(r.repeated_edges), optimal=r.optimal, method=r.method, start=xy(r.start, crs),
        steps=_steps(r.steps), geometry=geometry(r.geometry, crs))
