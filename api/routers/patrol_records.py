"""Patrol records (巡查记录): a grid worker records a patrol from the field page; scores for them, their leader, admins.

Thin: parse, call :mod:`spatial.store.patrol_records`, shape. Fixes are sent in the datum the client states
(``EPSG:4326`` from browser geolocation, ``GCJ-02`` from WeChat / Amap / Tencent); the server converts, detects a
wrong declaration and answers positions in EPSG:4326. Times are ISO 8601 with a zone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.types import BigId, Id, Instant, Text
from spatial.store import patrol_records as store

router = APIRouter(prefix="/api/patrols", tags=["patrol records · 巡查记录"])

Datum = Literal["EPSG:4326", "GCJ-02"]
Lon = Annotated[float, Field(ge=-180, le=180, description="longitude, degrees, in the datum")]
Lat = Annotated[float, Field(ge=-90, le=90, description="latitude, degrees, in the datum")]


class PatrolStart(BaseModel):
    grid_id: Id = Field(description="one of your grids")
    datum: Datum = Field("EPSG:4326", description="datum of the fixes: EPSG:4326 (GPS, browser) or GCJ-02")
    started_at: Instant | None = Field(None, description="default: now; at most 5 minutes ahead of the server")
    client_ref: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$",
                                   description="the phone's id of this patrol: a start sent twice makes one patrol")


class Fix(BaseModel):
    at: Instant
    lon: Lon
    lat: Lat
    accuracy_m: float | None = Field(None, ge=0, le=100_000, description="the phone's stated accuracy, metres")


class FixBatch(BaseModel):
    fixes: list[Fix] = Field(max_length=store.MAX_FIXES, description=f"at most {store.MAX_FIXES} per batch, any "
                                                                      "order; an instant already stored is skipped")


class FixReportPublic(BaseModel):
    accepted: int
    duplicates: int = Field(description="instants already stored (a batch sent again)")
    future: int = Field(description="refused: more than 5 minutes ahead of the server's clock")
    before_start: int = Field(description="refused: more than a minute before the patrol started")


class CheckInIn(BaseModel):
    kind: Literal["building", "checkpoint"]
    target_id: BigId
    lon: Lon
    lat: Lat
    datum: Datum | None = Field(None, description="default: the patrol's")
    at: Instant | None = None


class CheckInPublic(BaseModel):
    id: int
    kind: str
    target_id: int
    name: str | None = None
    at: datetime
    distance_m: float
    new: bool = Field(description="false: this target was already checked in on this patrol (counted once)")


class ProblemIn(BaseModel):
    category: Text(100, blank=False) = Field(description="a case category code (GET /api/cases/categories)")
    description: Text(2000, blank=False)
    lon: Lon
    lat: Lat
    datum: Datum | None = Field(None, description="default: the patrol's")


class ProblemPublic(BaseModel):
    case_id: int
    tracking_code: str


class EndIn(BaseModel):
    ended_at: Instant | None = Field(None, description="default: now")


class PatrolPublic(BaseModel):
    id: int
    worker: str
    grid_id: int
    grid_code: str
    status: str = Field(description="open, ended, or abandoned (never ended; closed by retention)")
    datum: str = Field(description="declared by the client")
    datum_used: str | None = Field(description="the datum the fixes were scored in")
    datum_suspect: bool = Field(description="the fixes fit the other datum: probably GCJ-02 sent as WGS 84")
    started_at: datetime
    ended_at: datetime | None
    scores: dict[str, Any] | None = Field(description="lanes, buildings, duration_s, tracked_s, distance_m, gaps, "
                                                      "fixes, checkins, cases, datum, matcher")
    reduced_at: datetime | None = Field(description="when the track was deleted after the retention period")
    checkins: list[dict[str, Any]] = []
    case_ids: list[int] = []


class TrackPublic(BaseModel):
    id: int
    datum: str
    reduced_at: datetime | None
    fixes: list[dict[str, Any]] = Field(description="at, lon, lat (EPSG:4326), accuracy_m")
    route: dict[str, Any] | None = Field(description="the matched route, GeoJSON MultiLineString (EPSG:4326)")
    checkins: list[dict[str, Any]]


def _public(record: store.Record) -> PatrolPublic:
    return PatrolPublic(**vars(record))


@router.post("", status_code=201, response_model=PatrolPublic, summary="Start a patrol (开始巡查)")
def start(body: PatrolStart, session: SessionDep, who: CurrentUser, settings: SettingsDep) -> PatrolPublic:
    return _public(store.start(session, who, grid_id=body.grid_id, datum=body.datum, started_at=body.started_at,
                               client_ref=body.client_ref, open_hours=settings.patrol_open_hours,
                               metric_srid=settings.metric_srid))


@router.get("", response_model=list[PatrolPublic], summary="Patrol records you may see: yours, your grids' if you "
                                                             "lead them (巡查记录)")
def list_records(session: SessionDep, who: CurrentUser,
                 worker: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.-]{3,64}$")] = None,
                 grid_id: Annotated[Id | None, Query()] = None,
                 limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[PatrolPublic]:
    return [_public(r) for r in store.list_records(session, who, worker=worker, grid_id=grid_id, limit=limit)]


@router.get("/{patrol_id}", response_model=PatrolPublic, summary="A patrol record and its scores")
def get(patrol_id: BigId, session: SessionDep, who: CurrentUser) -> PatrolPublic:
    return _public(store.get(session, who, patrol_id))


@router.get("/{patrol_id}/track", response_model=TrackPublic, summary="A patrol's track (personal data; audited)")
def track(patrol_id: BigId, session: SessionDep, who: CurrentUser) -> TrackPublic:
    return TrackPublic(**store.track(session, who, patrol_id))


@router.post("/{patrol_id}/fixes", response_model=FixReportPublic, summary="Add GPS fixes to your open patrol")
def add_fixes(patrol_id: BigId, body: FixBatch, session: SessionDep, who: CurrentUser) -> FixReportPublic:
    report = store.add_fixes(session, who, patrol_id, [(f.at, f.lon, f.lat, f.accuracy_m) for f in body.fixes])
    return FixReportPublic(**vars(report))


@router.post("/{patrol_id}/checkins", response_model=CheckInPublic, summary="Check in at a building or checkpoint",
             responses={201: {"model": CheckInPublic, "description": "checked in (200: already checked in at this "
                                                                     "target on this patrol, counted once)"}})
def check_in(patrol_id: BigId, body: CheckInIn, session: SessionDep, who: CurrentUser, settings: SettingsDep,
             response: Response) -> CheckInPublic:
    out, new = store.check_in(session, who, patrol_id, kind=body.kind, target_id=body.target_id, lon=body.lon,
                              lat=body.lat, datum=body.datum, at=body.at, max_m=settings.patrol_checkin_m)
    response.status_code = 201 if new else 200
    return CheckInPublic(**out, new=new)


@router.post("/{patrol_id}/cases", status_code=201, response_model=ProblemPublic,
             summary="Report a problem found on the patrol as a case")
def report_problem(patrol_id: BigId, body: ProblemIn, session: SessionDep, who: CurrentUser,
                   settings: SettingsDep) -> ProblemPublic:
    view = store.report_problem(session, who, patrol_id, category=body.category, description=body.description,
                                lon=body.lon, lat=body.lat, datum=body.datum,
                                duplicate_within_m=settings.case_duplicate_m, metric_srid=settings.metric_srid)
    return ProblemPublic(case_id=view.id, tracking_code=view.tracking_code)


@router.post("/{patrol_id}/end", response_model=PatrolPublic, summary="End your patrol: match and score it")
def end(patrol_id: BigId, body: EndIn, session: SessionDep, who: CurrentUser, settings: SettingsDep) -> PatrolPublic:
    return _public(store.end(session, who, patrol_id, ended_at=body.ended_at, metric_srid=settings.metric_srid,
                             pass_m=settings.patrol_pass_m))
