"""Cases (事件 · 网格E通): report, act, read, list, track. The rules are :mod:`spatial.store.cases`.

Residents report without an account under ``/api/public/cases`` (rate-limited per client address and phone)
and follow their case by tracking code; everyone else signs in. Positions come in the caller's ``crs``
(GCJ-02 from phones) and go out in it. An action sends ``If-Match`` with the case's ETag (``"case-<id>.v<n>"``);
a stale one is 412, an action the workflow does not allow now is 409 listing the allowed ones.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Header, Path, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field, StrictBool

from api.deps import CrsDep, CurrentUser, ReadSessionDep, SessionDep, SettingsDep, client_address
from api.geojson import CrsName, FastJSONResponse, feature_collection
from api.types import BigId
from spatial import case_flow as flow
from spatial.errors import InvalidInput, StaleEdit
from spatial.geometry.crs import WGS84, CoordSys, parse_crs, transform_xy
from spatial.geometry.validate import position_from_xy
from spatial.io import photos as photo_io
from spatial.store import case_figures as figures_store
from spatial.store import case_followup, case_hotspots, case_photos
from spatial.store import cases as store
from spatial.worktime import UNITS

router = APIRouter(tags=["cases · 事件"])

Action = Literal[tuple([*flow.ACTIONS, *flow.EXTENSION_ACTIONS])]  # type: ignore[valid-type]
State = Literal[tuple(flow.STATES)]  # type: ignore[valid-type]
ReporterKind = Literal[store.REPORTER_KINDS]  # type: ignore[valid-type]
CategoryCode = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$",
                                    examples=["environment.garbage"])]
Phone = Annotated[str, Field(pattern=r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$", description="mobile or landline")]


class CaseReport(BaseModel):
    category: CategoryCode
    x: float = Field(description="longitude (or easting) in crs")
    y: float = Field(description="latitude (or northing) in crs")
    crs: CrsName | None = Field(None, description="CRS of x, y (GCJ-02 from phones); default EPSG:4326")
    description: str = Field(min_length=1, max_length=2000, pattern=r"\S")
    reporter_name: str | None = Field(None, max_length=40)
    reporter_phone: Phone | None = None


class StaffReport(CaseReport):
    reporter_kind: ReporterKind | None = Field(None, description="default: grid_worker for grid workers, else "
                                                                 "department")


class Extension(BaseModel):
    amount: int = Field(ge=1, le=10_000)
    unit: Literal[UNITS] = "work_days"  # type: ignore[valid-type]


class CaseAction(BaseModel):
    action: Action = Field(description="see GET /api/cases/workflow")
    note: str | None = Field(None, max_length=2000, description="the reason (required for return, reject, redo, "
                                                                "defer, reopen and extensions)")
    assignee: str | None = Field(None, min_length=1, max_length=64, description="dispatch: a user name or a "
                                                                                "department")
    extension: Extension | None = Field(None, description="request_extension: how much more time")
    into: BigId | None = Field(None, description="merge: the id of the open case of the same category that "
                                                 "carries on (see GET /api/cases/{id}/duplicates)")


class Rating(BaseModel):
    score: int = Field(ge=1, le=5, description="1 very dissatisfied … 5 very satisfied (满意度)")
    comment: str | None = Field(None, max_length=500)


class Supervision(BaseModel):
    note: str = Field(min_length=1, max_length=500, pattern=r"\S", description="what is to be done by when")


class MergeChoice(BaseModel):
    into: BigId = Field(description="the id of one of the duplicates offered with the report")


class Duplicate(BaseModel):
    id: int
    state: str
    state_label: str
    reported_at: datetime
    distance_m: float = Field(description="metres, in the deployment's metric CRS")


class PhotoPublic(BaseModel):
    id: int
    case_id: int
    stage: str = Field(description="the case's state when the photo was added")
    by: str = Field(description="'resident' or the user name")
    at: datetime
    width: int
    height: int
    size: int = Field(description="bytes of the stored JPEG")
    public: bool = Field(description="published as the Open311 media_url (staff photos only)")


class CalendarDay(BaseModel):
    workday: StrictBool = Field(description="true: a working day (调休); false: a day off")
    note: str | None = Field(None, max_length=200)


class CasePublic(BaseModel):
    id: int
    tracking_code: str
    category_code: str
    category: str
    department: str
    location: list[float] = Field(description="[x, y] in crs")
    grid_code: str | None
    community_code: str | None
    description: str
    reporter_kind: str
    reporter_name: str | None = Field(description="masked")
    reporter_phone: str | None = Field(description="masked")
    state: str
    state_label: str
    priority: str
    assignee: str | None
    clock_step: str | None
    deadline: datetime | None
    remaining_min: float | None = Field(description="working minutes to the deadline (natural minutes for a "
                                                     "natural-time limit); negative: overdue by that much")
    overdue: bool
    extension_requested: dict | None
    version: int
    reported_at: datetime
    closed_at: datetime | None
    allowed: list[str] = Field(description="actions the workflow allows now")
    duplicate_of: int | None = Field(None, description="merged: the case that carries on")
    supervised: dict[str, Any] | None = Field(None, description="flagged by a leader (督办): at, by, note")
    satisfaction: int | None = Field(None, description="the reporter's rating 1–5 after closure (回访)")
    duplicates: list[Duplicate] = Field(default_factory=list, description="open cases of the same category within "
                                                                          "case_duplicate_m metres (at report time)")
    department_grids: list[str] = Field(default_factory=list, description="the departments' grids where it lay when "
                                        "reported (一张网): \"department · grid\" names")


class EscalationCase(BaseModel):
    id: int
    category: str
    state: str
    state_label: str
    unit: str | None = Field(description="the unit one level below the caller's division it lies in")
    unit_name: str | None
    grid_code: str | None
    community_code: str | None
    holder: str = Field(description="who must act now: the assignee, or the step's role")
    deadline: datetime | None
    late_min: float | None = Field(description="working minutes past the deadline; null: flagged, not late")
    supervised: dict[str, Any] | None


class EscalationUnit(BaseModel):
    unit: str | None
    name: str | None
    cases: int
    late: int
    flagged: int


class EscalationList(BaseModel):
    level: str = Field(description="the caller's level: all, district, subdistrict or community")
    unit_level: str = Field(description="what a unit is: subdistrict, community or grid")
    total: int
    units: list[EscalationUnit]
    cases: list[EscalationCase]


class CasePage(BaseModel):
    total: int
    cases: list[CasePublic]


FigureGroup = Literal[tuple(figures_store.GROUPS)]  # type: ignore[valid-type]


class FigureColumn(BaseModel):
    key: str
    zh: str
    en: str


class FiguresPublic(BaseModel):
    by: str
    group: FigureColumn = Field(description="what a row is")
    date_from: date = Field(serialization_alias="from")
    date_to: date = Field(serialization_alias="to")
    columns: list[FigureColumn] = Field(description="the columns of a row with Chinese and English labels")
    rows: list[figures_store.FigureRow] = Field(description="one per group with cases due, ordered by key (null, "
                                                            "cases without one, last); rates are 0–1")


IfMatch = Annotated[str | None, Header(description='the case\'s ETag, e.g. "case-12.v3"')]


def _etag(case_id: int, version: int) -> str:
    return f'"case-{case_id}.v{version}"'


def _version(header: str | None, case_id: int) -> int | None:
    if not header:
        return None
    tag = header.strip().removeprefix("W/").strip('"')
    prefix = f"case-{case_id}.v"
    if not tag.startswith(prefix) or not tag[len(prefix):].isdigit():
        raise StaleEdit(f'If-Match {header[:40]!r} is not the ETag of this case (like "case-{case_id}.v3"): '
                        "reload the case and try again")
    return int(tag[len(prefix):])


def _public(view: store.CaseView, coords: CoordSys) -> CasePublic:
    return CasePublic(**_publics([view], coords)[0])


def _publics(views: list[store.CaseView], coords: CoordSys) -> list[dict[str, Any]]:
    """The views as answered (the fields of :class:`CasePublic`), their positions transformed to ``coords`` in
    one call for the whole page."""
    if not views:
        return []
    xs, ys = transform_xy([v.lon for v in views], [v.lat for v in views], WGS84, coords)
    digits = 7 if coords.is_geographic else 2
    answered = []
    for view, x, y in zip(views, xs.tolist(), ys.tolist(), strict=True):
        fields = dict(vars(view))
        del fields["lon"], fields["lat"]
        fields["location"] = [round(x, digits), round(y, digits)]
        answered.append(fields)
    return answered


def _answer(view: store.CaseView, coords: CoordSys, response: Response) -> CasePublic:
    response.headers["ETag"] = _etag(view.id, view.version)
    return _public(view, coords)


def _report(session, settings, who, body: CaseReport, request: Request, kind: str | None) -> store.CaseView:
    lon, lat = position_from_xy(body.x, body.y, parse_crs(body.crs))
    return store.report_case(session, who, category=body.category, lon=lon, lat=lat, description=body.description,
                             reporter_kind=kind, reporter_name=body.reporter_name, reporter_phone=body.reporter_phone,
                             client_addr=client_address(request), duplicate_within_m=settings.case_duplicate_m,
                             metric_srid=settings.metric_srid)


def _read_photo(photo: UploadFile) -> bytes:
    """The upload's bytes, read no further than one past the cap (PayloadTooLarge then, from clean_photo)."""
    return photo.file.read(photo_io.MAX_BYTES + 1)


def _jpeg(photo: case_photos.Photo, *, public: bool = False) -> Response:
    return Response(photo.data, media_type=photo.media_type, headers={
        "Cache-Control": "public, max-age=86400" if public else "private, max-age=300",
        "Content-Disposition": f'inline; filename="case-photo-{photo.info.id}.jpg"'})


def _photo_public(info: case_photos.PhotoInfo) -> PhotoPublic:
    return PhotoPublic(**vars(info))


PhotoFile = Annotated[UploadFile, File(description=f"a JPEG, PNG or WebP photo (by content), at most "
                                                   f"{photo_io.MAX_BYTES // 1_000_000} MB and "
                                                   f"{photo_io.MAX_PIXELS // 1_000_000} megapixels; stored "
                                                   "re-encoded, without EXIF/GPS")]
TrackingCode = Annotated[str, Path(min_length=10, max_length=10, pattern=r"^[0-9A-Za-z]{10}$")]


# -- residents, without an account ----------------------------------------------------------------------------------


@router.get("/api/cases/categories", summary="What can be reported (事件类别)")
def categories(session: SessionDep) -> list[dict[str, Any]]:
    return [{"code": c.code, "parent_code": c.parent_code, "name": c.name, "name_en": c.name_en,
             "department": c.department, "priority": c.priority,
             "limits": {step: {"amount": lim.amount, "unit": lim.unit, "label": lim.label()}
                        for step, lim in c.limits.items()}} for c in store.categories(session)]


@router.get("/api/cases/workflow", summary="States and actions of a case (办理流程)")
def workflow() -> dict[str, Any]:
    return {"states": {s: {"zh": zh, "en": en, "clock": flow.CLOCKS.get(s)} for s, (zh, en) in flow.STATES.items()},
            "actions": {name: {"from": sorted(a.sources), "to": a.target, "zh": a.label_zh, "en": a.label_en,
                               "needs_note": a.needs_note} for name, a in flow.ACTIONS.items()},
            "extension_actions": list(flow.EXTENSION_ACTIONS), "extension_states": sorted(flow.EXTENSION_STATES),
            "extension_labels": {name: {"zh": zh, "en": en} for name, (zh, en) in flow.EXTENSION_LABELS.items()}}


@router.post("/api/public/cases", status_code=201, summary="A resident reports a problem (居民上报)",
             description="No account needed. At most 10 reports an hour from one client address and 5 under one "
                         "phone number (429 beyond). Keep the tracking code to follow the case.")
def report_public(body: CaseReport, request: Request, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    store.require_report_allowance(session, address=client_address(request), phone=body.reporter_phone)
    view = _report(session, settings, None, body, request, "resident")
    return {"tracking_code": view.tracking_code, "state": view.state, "state_label": view.state_label,
            "category": view.category, "department": view.department, "deadline": view.deadline,
            "duplicates": [Duplicate(**d).model_dump() for d in view.duplicates]}


@router.get("/api/public/cases/{tracking_code}", summary="Follow a case by its tracking code (进度查询)")
def track(tracking_code: Annotated[str, Path(min_length=10, max_length=10)], session: SessionDep) -> dict[str, Any]:
    return store.track(session, tracking_code)


@router.post("/api/public/cases/{tracking_code}/photos", status_code=201, response_model=PhotoPublic,
             summary="The resident adds a photo to their report (随手拍照片)",
             description=f"Within an hour of reporting and before it is registered; at most "
                         f"{case_photos.MAX_PER_CASE} photos a case. 413 past the size, 422 for what is not a "
                         "JPEG/PNG/WebP image or has too many pixels, 409 too late or too many.")
def add_photo_public(tracking_code: TrackingCode, photo: PhotoFile, session: SessionDep) -> PhotoPublic:
    return _photo_public(case_photos.add_by_code(session, tracking_code, _read_photo(photo)))


@router.get("/api/public/cases/{tracking_code}/photos/{photo_id}", response_class=Response,
            summary="A photo of the resident's own case (JPEG)")
def photo_public(tracking_code: TrackingCode, photo_id: BigId, session: SessionDep) -> Response:
    return _jpeg(case_photos.photo_by_code(session, tracking_code, photo_id))


@router.post("/api/public/cases/{tracking_code}/rating", summary="Rate the closed case (回访满意度)",
             description="Once, after closure: 409 before it is closed and for a second rating.")
def rate_public(tracking_code: TrackingCode, body: Rating, session: SessionDep) -> dict[str, Any]:
    return case_followup.rate_by_code(session, tracking_code, body.score, body.comment)


@router.post("/api/public/cases/{tracking_code}/merge", summary="Join the report to an open case nearby (合并)",
             description="Right after reporting, while it is still only reported: into one of the duplicates "
                         "the report answer offered. Both reports are kept; this code then shows that case's "
                         "progress.")
def merge_public(tracking_code: TrackingCode, body: MergeChoice, session: SessionDep,
                 settings: SettingsDep) -> dict[str, Any]:
    return store.merge_reported(session, tracking_code, body.into, within_m=settings.case_duplicate_m,
                                metric_srid=settings.metric_srid)


@router.get("/api/public/media/{key}.jpg", response_class=Response,
            summary="A published photo of a case (Open311 media_url)",
            description="Only the photos staff took while handling a case; a resident's photo is never published.")
def media(key: Annotated[str, Path(min_length=16, max_length=16, pattern=r"^[A-Za-z0-9_-]{16}$")],
          session: SessionDep) -> Response:
    return _jpeg(case_photos.public_media(session, key), public=True)


# -- staff ----------------------------------------------------------------------------------------------------------


@router.post("/api/cases", status_code=201, response_model=CasePublic, summary="Report a case (上报事件)")
def report(body: StaffReport, request: Request, session: SessionDep, settings: SettingsDep, who: CurrentUser,
           response: Response) -> CasePublic:
    return _answer(_report(session, settings, who, body, request, body.reporter_kind), parse_crs(body.crs), response)


@router.get("/api/cases", response_model=CasePage, summary="Cases in your area, most urgent first (事件列表)")
def list_cases(session: SessionDep, who: CurrentUser, coords: CrsDep,
               state: Annotated[State | None, Query()] = None,
               overdue: Annotated[bool, Query(description="only open cases past their deadline (督办)")] = False,
               mine: Annotated[bool, Query(description="only cases assigned to you")] = False,
               grid: Annotated[str | None, Query(pattern=r"^\d{14}$")] = None,
               supervised: Annotated[bool, Query(description="only open cases flagged by a leader (督办)")] = False,
               open_only: Annotated[bool, Query(alias="open", description="only cases not finished")] = False,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> Response:
    total, page = store.list_cases(session, who, state=state, overdue=overdue, mine=mine, grid_code=grid,
                                   supervised=supervised, open_only=open_only, limit=limit, offset=offset)
    return FastJSONResponse({"total": total, "cases": _publics(page, coords)})  # a CasePage, without its models


@router.get("/api/cases/figures", response_model=FiguresPublic, response_model_by_alias=True,
            summary="Case figures of your area (结案率、按期结案率、返工率、延期率)",
            description="Cases due in the period (closed in it, or open with their current step's deadline in "
                        "it; Asia/Shanghai days, both ends included, at most 1,099 days), grouped by `by`. "
                        "结案率 closure_rate = closed / due; 按期结案率 on_time_rate = closed with no step late / due; "
                        "返工率 redo_rate = closed and redone / closed; 延期率 extension_rate = extended / due; "
                        "avg_step_minutes: mean working minutes of a step; avg_satisfaction 1–5. "
                        "Definitions: spatial.store.case_figures.")
def case_figures(session: ReadSessionDep, who: CurrentUser, by: Annotated[FigureGroup, Query()] = "grid",
                 date_from: Annotated[date | None, Query(alias="from", ge=figures_store.FIRST_DAY, le=figures_store.LAST_DAY,
                                                         description="first day (default: the first of the "
                                                                     "current month)")] = None,
                 date_to: Annotated[date | None, Query(alias="to", ge=figures_store.FIRST_DAY,
                                                       le=figures_store.LAST_DAY,
                                                       description="last day (default: today)")] = None
                 ) -> FiguresPublic:
    result = figures_store.case_figures(session, who, by=by, date_from=date_from, date_to=date_to)
    zh, en = figures_store.GROUP_LABELS[by]
    return FiguresPublic(by=by, group=FigureColumn(key=by, zh=zh, en=en), date_from=result.date_from,
                         date_to=result.date_to, rows=result.rows,
                         columns=[FigureColumn(key=k, zh=z, en=e) for k, (z, e) in figures_store.COLUMNS.items()])


@router.get("/api/cases/hotspots", summary="Hot spots: where the same category keeps coming back (高发点位)",
            description="GeoJSON polygons, one per DBSCAN cluster (in metres, the deployment's metric CRS) of "
                        "the cases of your area of one category (or each category apart) reported in the last "
                        "`days` days or not yet closed; method: spatial.store.case_hotspots.")
def hotspots(session: SessionDep, settings: SettingsDep, who: CurrentUser, out_crs: CrsDep,
             category: Annotated[CategoryCode | None, Query(description="a category code; its sub-categories "
                                                                        "are included")] = None,
             days: Annotated[int, Query(ge=1, le=3660)] = 90,
             eps_m: Annotated[float, Query(ge=5, le=1000, description="metres between neighbouring cases")] = 50.0,
             min_cases: Annotated[int, Query(ge=2, le=100, description="cases in a hot spot, at least")] = 3,
             ) -> dict[str, Any]:
    found = case_hotspots.hotspots(session, who, category=category, days=days, eps_m=eps_m, min_cases=min_cases,
                                   metric_srid=settings.metric_srid)
    return feature_collection(found, out_crs, numberReturned=len(found))


@router.get("/api/cases/escalations", response_model=EscalationList,
            summary="Late and flagged cases for the level above (督办)",
            description="Planners, inspectors and admins: the open cases of your area past their deadline or "
                        "flagged by a leader, per unit one level below your division (a subdistrict sees its "
                        "communities, a community its grids), with who holds each and how late it is in working "
                        "minutes.")
def escalations(session: SessionDep, who: CurrentUser, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> Response:
    found = case_followup.escalations(session, who, limit=limit, offset=offset)
    return FastJSONResponse({"level": found.level, "unit_level": found.unit_level, "total": found.total,  # an
                             "units": found.units, "cases": [vars(c) for c in found.cases]})  # EscalationList


@router.get("/api/cases/{case_id}", response_model=CasePublic, summary="One case (事件详情)")
def get_case(case_id: BigId, session: SessionDep, who: CurrentUser,
             response: Response, coords: CrsDep) -> CasePublic:
    return _answer(store.get_case(session, who, case_id), coords, response)


@router.get("/api/cases/{case_id}/history", summary="Every step of a case (办理过程)")
def history(case_id: BigId, session: SessionDep, who: CurrentUser
            ) -> list[dict[str, Any]]:
    return store.history(session, who, case_id)


@router.post("/api/cases/{case_id}/actions", response_model=CasePublic, summary="Act on a case (办理)")
def act(case_id: BigId, body: CaseAction, session: SessionDep,
        who: CurrentUser, response: Response, coords: CrsDep, if_match: IfMatch = None) -> CasePublic:
    extension = store.parse_limit(body.extension.amount, body.extension.unit) if body.extension else None
    view = store.act(session, who, case_id, body.action, version=_version(if_match, case_id), note=body.note,
                     assignee=body.assignee, extension=extension, into=body.into)
    return _answer(view, coords, response)


@router.get("/api/cases/{case_id}/duplicates", response_model=list[Duplicate],
            summary="Open cases of the same category nearby (疑似重复)",
            description="Within case_duplicate_m metres (default 50, in the deployment's metric CRS); merge one "
                        "with the action merge and into.")
def duplicates(case_id: BigId, session: SessionDep, settings: SettingsDep, who: CurrentUser) -> list[Duplicate]:
    return [Duplicate(**d) for d in store.case_duplicates(session, who, case_id, within_m=settings.case_duplicate_m,
                                                          metric_srid=settings.metric_srid)]


@router.post("/api/cases/{case_id}/photos", status_code=201, response_model=PhotoPublic,
             summary="Add a photo to a case (现场照片)",
             description="Grid workers, planners, inspectors, departments and admins who see the case, while it "
                         "is open. 413 past the size, 422 for what is not a JPEG/PNG/WebP image, 409 on a "
                         "finished case or past the number of photos.")
def add_photo(case_id: BigId, photo: PhotoFile, session: SessionDep, who: CurrentUser) -> PhotoPublic:
    return _photo_public(case_photos.add_photo(session, who, case_id, _read_photo(photo)))


@router.get("/api/cases/{case_id}/photos", response_model=list[PhotoPublic], summary="The photos of a case")
def photos(case_id: BigId, session: SessionDep, who: CurrentUser) -> list[PhotoPublic]:
    return [_photo_public(p) for p in case_photos.photos_of(session, who, case_id)]


@router.get("/api/cases/{case_id}/photos/{photo_id}", response_class=Response, summary="One photo of a case (JPEG)",
            description="A resident's photo read by staff is audited.")
def photo(case_id: BigId, photo_id: BigId, session: SessionDep, who: CurrentUser) -> Response:
    return _jpeg(case_photos.get_photo(session, who, case_id, photo_id))


@router.post("/api/cases/{case_id}/callback", response_model=CasePublic, summary="Record a phone call-back (电话回访)",
             description="The reporter's satisfaction 1–5 after closure, as said on the phone; once per case (409 "
                         "after any rating).")
def callback(case_id: BigId, body: Rating, session: SessionDep, who: CurrentUser, response: Response,
             coords: CrsDep) -> CasePublic:
    return _answer(case_followup.record_callback(session, who, case_id, body.score, body.comment), coords, response)


@router.post("/api/cases/{case_id}/supervise", response_model=CasePublic, summary="Flag a case for supervision (督办)",
             description="Planners, inspectors and admins of the case's area, on an open case.")
def supervise(case_id: BigId, body: Supervision, session: SessionDep, who: CurrentUser, response: Response,
              coords: CrsDep) -> CasePublic:
    return _answer(case_followup.supervise(session, who, case_id, body.note), coords, response)


@router.put("/api/cases/calendar/{day}", status_code=204, summary="Enter a working day or day off (工作日历)",
            description="Admins. Overrides the official calendar (chinese-calendar), e.g. for a year it does not "
                        "know yet.")
def calendar_day(day: Annotated[str, Path(pattern=r"^\d{4}-\d{2}-\d{2}$", examples=["2027-01-01"])],
                 body: CalendarDay, session: SessionDep, who: CurrentUser) -> Response:
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        raise InvalidInput(f"{day} is not a day of the calendar (YYYY-MM-DD)") from None
    store.enter_calendar_day(session, who, parsed, body.workday, body.note)
    return Response(status_code=204)
