"""Risk zones (风险区域 · 五色图): designate, change, lift, history; the level of a building, household or person at
any time; households and persons per level; a zone's households; suggestions a person confirms.

Writes need a role of the ``risk_zone_roles`` setting (default planner; admin always) in the zone's area, a
reason, and (changes and lifts) ``If-Match`` with the zone's ETag (412 if stale, 428 if missing). Geometries in
and out are in ``crs`` (default EPSG:4326). Times are ISO 8601 with a time zone; ``at`` defaults to now. The rules
of :mod:`spatial.store.risk_zones` decide who belongs to a zone and which level wins (the highest).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, Field
from shapely.geometry import Point, mapping

from api.deps import CrsDep, CurrentUser, ReadSessionDep, SessionDep, SettingsDep
from api.geojson import CrsName
from api.routers.field import HouseholdPublic, _households
from api.types import BigId, DivisionCode, Id, Instant, PolygonGeoJSON, Text
from spatial.analysis import risk_levels as rl
from spatial.errors import InvalidInput, PreconditionRequired
from spatial.geometry.crs import CoordSys, from_wgs84, parse_crs
from spatial.geometry.validate import polygon_from_geojson
from spatial.store import risk_zones as store

router = APIRouter(prefix="/api/risk-zones", tags=["risk zones · 风险区域"])

SchemeName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,39}$", description="a level scheme "
                                  "(five_colour 五色图, control 封控/管控/防范)")]
LevelName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="a level of the scheme")]
At = Annotated[Instant | None, Query(description="ISO 8601 time with a time zone; default now")]
IfMatch = Annotated[str | None, Header(description='the zone\'s ETag, e.g. "rz12.v3"')]


class LevelPublic(BaseModel):
    scheme: str
    level: str
    severity: int = Field(ge=1, le=9, description="on the scale shared by all schemes: higher wins")
    colour: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")
    label_zh: str
    label_en: str


class SchemePublic(BaseModel):
    name: str
    label_zh: str
    label_en: str
    default: bool = Field(description="the scheme zones use unless one is named (setting risk_scheme)")
    levels: list[LevelPublic] = Field(description="highest first")


class ZonePublic(BaseModel):
    id: int
    etag: str
    name: str
    target_kind: Literal[store.TARGETS]  # type: ignore[valid-type]
    target_ref: str | None = Field(description="division or grid code, enclosure or building id; null for a polygon")
    building_id: int | None
    unit: str | None
    community_code: str | None
    scope_code: str = Field(description="the division whose area the zone belongs to (who may change it)")
    version: int = Field(ge=1)
    level: LevelPublic
    valid_from: datetime = Field(description="the zone's first period's start")
    valid_to: datetime | None = Field(description="the latest version's end (a lift: when it was lifted); null: "
                                                  "until lifted")
    change: Literal["designate", "change", "lift"]
    author: str
    reason: str
    basis: Any = Field(None, description="what the latest version rests on (a confirmed suggestion)")
    in_force: bool = Field(description="in force now")
    geometry: dict[str, Any] = Field(description="GeoJSON MultiPolygon in crs")


class ReasonIn(BaseModel):
    indicator: Literal[tuple(rl.INDICATORS)]  # type: ignore[valid-type]
    value: int | None = Field(None, ge=0, le=100_000_000)
    at_least: int = Field(ge=1, le=100_000_000)
    level: LevelName
    fired: bool
    categories: list[Text(64)] = Field([], max_length=10)


class BasisIn(BaseModel):
    """The suggestion a designation confirms (from POST /api/risk-zones/suggestions), kept with the version."""

    area: Text(14, blank=False)
    window_days: int = Field(ge=1, le=store.MAX_WINDOW_DAYS)
    reasons: list[ReasonIn] = Field(max_length=20)


class ZoneCreate(BaseModel):
    target_kind: Literal[store.TARGETS]  # type: ignore[valid-type]
    target_ref: str | None = Field(None, pattern=r"^[0-9]{1,19}$", description="division or grid code; enclosure or "
                                   "building id (building and unit zones); omitted for a polygon")
    unit: Text(20, blank=False) | None = Field(None, description="the unit (单元) of a unit zone")
    geometry: PolygonGeoJSON | None = Field(None, description="the drawn polygon (target_kind polygon)")
    crs: CrsName | None = None
    scheme: SchemeName | None = Field(None, description="default: the risk_scheme setting")
    level: LevelName
    name: Text(200) | None = None
    valid_from: Instant | None = Field(None, description="default now")
    valid_to: Instant | None = Field(None, description="default: until lifted")
    reason: Text(1000, blank=False)
    basis: BasisIn | None = None


class ZoneChange(BaseModel):
    level: LevelName | None = None
    scheme: SchemeName | None = None
    valid_to: Instant | None = Field(None, description="a new planned end; send null to make it open-ended, omit to "
                                                       "keep it")
    geometry: PolygonGeoJSON | None = Field(None, description="a new boundary (drawn polygons only)")
    crs: CrsName | None = None
    at: Instant | None = Field(None, description="when the change takes effect (default now; not before the "
                                                 "running version's start)")
    reason: Text(1000, blank=False)
    basis: BasisIn | None = None


class ZoneLift(BaseModel):
    at: Instant | None = Field(None, description="when the zone ends (default now)")
    reason: Text(1000, blank=False)


class VersionPublic(BaseModel):
    version: int
    change: str
    scheme: str
    level: str
    severity: int
    valid_from: datetime
    valid_to: datetime | None
    author: str
    reason: str
    basis: Any = None
    recorded_at: datetime


class ZoneRef(BaseModel):
    zone_id: int
    version: int
    name: str
    target_kind: str
    unit: str | None
    level: LevelPublic


class LevelAnswerPublic(BaseModel):
    at: datetime
    building_id: int
    unit: str | None = None
    household_id: int | None = None
    level: LevelPublic | None = Field(description="the winning zone's level; null: in no zone (未划定)")
    zone: ZoneRef | None = Field(description="the winning zone: highest severity, then the latest designated")
    zones: list[ZoneRef] = Field(description="every zone applying")
    units: dict[str, ZoneRef] = Field({}, description="a building's units whose own zone is higher than the "
                                                      "building's")


class LevelCountPublic(BaseModel):
    code: str = Field(description="grid or community code")
    severity: int | None = Field(description="null: in no zone")
    households: int = Field(ge=0)
    persons: int = Field(ge=0)


class ZoneFiguresPublic(BaseModel):
    division: str
    by: Literal["grid", "community"]
    at: datetime
    rows: list[LevelCountPublic]


class CommunityLevelsPublic(BaseModel):
    community_code: str
    severity: int | None = Field(description="the highest severity of any household; null: none in a zone")
    households: dict[str, int] = Field(description="severity ('none': in no zone) → households")
    persons: dict[str, int]
    zones: dict[str, int] = Field(description="severity → zones in force")


class RuleIn(BaseModel):
    indicator: Literal[tuple(rl.INDICATORS)]  # type: ignore[valid-type]
    at_least: int = Field(ge=1, le=100_000_000, description="the count in the area over the window that fires it")
    level: LevelName
    categories: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.]{0,63}$")]] = Field(
        [], max_length=10, description="case categories (a code covers its sub-codes); cases only")


class SuggestIn(BaseModel):
    division: DivisionCode
    by: Literal["grid", "community"] = "grid"
    window_days: int = Field(14, ge=1, le=store.MAX_WINDOW_DAYS)
    at: Instant | None = None
    rules: list[RuleIn] | None = Field(None, min_length=1, max_length=20, description="default: the shipped rules")
    rule_scheme: SchemeName = Field(store.DEFAULT_SCHEME, description="the scheme the rules' levels are named in")
    scheme: SchemeName | None = Field(None, description="the scheme of the suggestions; default the setting")


class SuggestionPublic(BaseModel):
    area: str
    status: Literal["suggest", "unknown", "none"] = Field(description="suggest: a rule fired; unknown: none fired "
                                                                      "and data are missing; none: none fired")
    level: LevelPublic | None
    incomplete: bool = Field(description="a rule lacking data could have suggested a higher level")
    reasons: list[dict[str, Any]] = Field(description="every rule: indicator, value (null: unknown), at_least, "
                                                      "level, fired")


class SuggestionsPublic(BaseModel):
    at: datetime
    window_days: int
    suggestions: list[SuggestionPublic]
    note: str = "suggestions only: a person confirms one by designating a zone (POST /api/risk-zones with basis)"


class SheetPublic(BaseModel):
    zone: ZonePublic
    at: datetime
    area_m2: float = Field(ge=0)
    households: int = Field(ge=0, description="in your household scope (0 for roles that read none)")
    residents: int = Field(ge=0)
    grids: list[dict[str, Any]] = Field(description="per grid: grid_code, households, residents, buildings")
    checkpoints: list[dict[str, Any]] = Field(description="checkpoints within 50 m of the boundary (lon, lat in crs)")


# -- shaping --------------------------------------------------------------------------------------------------


def etag(zone_id: int, version: int) -> str:
    return f'"rz{zone_id}.v{version}"'


def parse_if_match(header: str | None, zone_id: int) -> int:
    for part in (header or "").split(","):
        part = part.strip().removeprefix("W/").strip('"')
        name, _, version = part.partition(".v")
        if name == f"rz{zone_id}" and version.isdigit():
            return int(version)
    raise PreconditionRequired(f"send If-Match with the ETag of zone {zone_id} (from GET /api/risk-zones/{zone_id}) "
                               "so that a newer change is never overwritten")


def _level(schemes: dict[str, rl.Scheme], scheme: str, level: str) -> LevelPublic:
    lv = schemes[scheme].level(level)
    return LevelPublic(scheme=lv.scheme, level=lv.level, severity=lv.severity, colour=lv.colour,
                       label_zh=lv.label_zh, label_en=lv.label_en)


def _zone(z: store.Zone, schemes: dict[str, rl.Scheme], coords: CoordSys) -> ZonePublic:
    return ZonePublic(id=z.id, etag=etag(z.id, z.version), name=z.name, target_kind=z.target_kind,
                      target_ref=z.target_ref, building_id=z.building_id, unit=z.unit, community_code=z.community_code,
                      scope_code=z.scope_code, version=z.version, level=_level(schemes, z.scheme, z.level),
                      valid_from=z.valid_from, valid_to=z.valid_to, change=z.change, author=z.author, reason=z.reason,
                      basis=z.basis, in_force=z.in_force, geometry=mapping(from_wgs84(z.boundary, coords)))


def _ref(z: rl.ZoneLevel, schemes: dict[str, rl.Scheme]) -> ZoneRef:
    return ZoneRef(zone_id=z.zone_id, version=z.version, name=z.name, target_kind=z.target_kind, unit=z.unit,
                   level=_level(schemes, z.scheme, z.level))


def _answer(a: store.LevelAnswer, schemes: dict[str, rl.Scheme]) -> LevelAnswerPublic:
    win = a.winner
    return LevelAnswerPublic(at=a.at, building_id=a.building_id, unit=a.unit, household_id=a.household_id,
                             level=_level(schemes, win.scheme, win.level) if win else None,
                             zone=_ref(win, schemes) if win else None, zones=[_ref(z, schemes) for z in a.zones],
                             units={u: _ref(z, schemes) for u, z in a.units.items()})


def _polygon(geometry: dict | None, crs: str | None):
    return None if geometry is None else polygon_from_geojson(geometry, parse_crs(crs))


# -- endpoints ------------------------------------------------------------------------------------------------


@router.get("/schemes", response_model=list[SchemePublic], summary="Level schemes (风险等级方案)")
def list_schemes(session: SessionDep, settings: SettingsDep, _: CurrentUser) -> list[SchemePublic]:
    return [SchemePublic(name=s.name, label_zh=s.label_zh, label_en=s.label_en, default=s.name == settings.risk_scheme,
                         levels=[_level({s.name: s}, s.name, lv.level) for lv in s.levels])
            for s in store.schemes(session).values()]


@router.get("", response_model=list[ZonePublic], summary="Risk zones in my area (风险区域列表)")
def list_zones(session: SessionDep, who: CurrentUser, coords: CrsDep,
               division: Annotated[DivisionCode | None, Query(description="within this division")] = None,
               in_force: Annotated[bool | None, Query(description="true: in force now; false: not")] = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 1000) -> list[ZonePublic]:
    schemes = store.schemes(session)
    return [_zone(z, schemes, coords) for z in store.list_zones(session, who, division_code=division,
                                                                in_force=in_force, limit=limit)]


@router.post("", response_model=ZonePublic, status_code=201, summary="Designate a zone (划定风险区域)",
             description="On a division, enclosure, grid, building, unit of a building or a drawn polygon; audited.")
def designate(body: ZoneCreate, response: Response, session: SessionDep, who: CurrentUser,
              settings: SettingsDep) -> ZonePublic:
    zone = store.designate(session, who, target_kind=body.target_kind, target_ref=body.target_ref, unit=body.unit,
                           polygon=_polygon(body.geometry, body.crs), level=body.level,
                           scheme_name=body.scheme or settings.risk_scheme, name=body.name,
                           valid_from=body.valid_from, valid_to=body.valid_to, reason=body.reason,
                           basis=body.basis.model_dump() if body.basis else None, roles=settings.risk_zone_roles)
    response.headers["ETag"] = etag(zone.id, zone.version)
    return _zone(zone, store.schemes(session), parse_crs(body.crs))


@router.get("/levels/buildings/{building_id}", response_model=LevelAnswerPublic,
            summary="A building's level at a time (楼栋风险等级)",
            description="The building's area and building zones (the highest wins); `unit`: that unit's level.")
def building_level(building_id: BigId, session: SessionDep, who: CurrentUser, at: At = None,
                   unit: Annotated[str | None, Query(max_length=20)] = None) -> LevelAnswerPublic:
    store.visible_building(session, who, building_id)
    return _answer(store.building_level(session, building_id, at, unit=unit), store.schemes(session))


@router.get("/levels/households/{household_id}", response_model=LevelAnswerPublic,
            summary="A household's level at a time (住户风险等级)", description="Household data: in your scope, audited.")
def household_level(household_id: BigId, session: SessionDep, who: CurrentUser, at: At = None) -> LevelAnswerPublic:
    return _answer(store.household_level(session, who, household_id, at), store.schemes(session))


@router.get("/levels/persons/{person_id}", response_model=LevelAnswerPublic,
            summary="A person's level at a time (人员风险等级)",
            description="The level of the household the person lived in at that time; in your scope, audited.")
def person_level(person_id: BigId, session: SessionDep, who: CurrentUser, at: At = None) -> LevelAnswerPublic:
    return _answer(store.person_level(session, who, person_id, at), store.schemes(session))


@router.get("/figures", response_model=ZoneFiguresPublic, summary="Households and persons per level (分级户数人数)",
            description="Per grid (or community) of a subdistrict or community in your area, at a time.")
def figures(session: ReadSessionDep, who: CurrentUser, division: Annotated[DivisionCode, Query()], at: At = None,
            by: Annotated[Literal["grid", "community"], Query()] = "grid") -> ZoneFiguresPublic:
    when, rows = store.per_level(session, who, division, at=at, by=by)
    return ZoneFiguresPublic(division=division, by=by, at=when,
                         rows=[LevelCountPublic(code=r.code, severity=r.severity, households=r.households,
                                                persons=r.persons) for r in rows])


@router.get("/communities", response_model=list[CommunityLevelsPublic],
            summary="Levels per community (社区风险等级)",
            description="Per community of a division (default your own area): the highest level of any household, "
                        "households and persons per severity and zones in force per severity — the screen's colours.")
def communities(session: SessionDep, who: CurrentUser, at: At = None,
                division: Annotated[DivisionCode | None, Query()] = None) -> list[CommunityLevelsPublic]:
    return [CommunityLevelsPublic(**c) for c in store.levels_per_community(session, who, division, at=at)]


@router.post("/suggestions", response_model=SuggestionsPublic, summary="Suggested levels (风险等级建议)",
             description="Rules over each area's cases, positive screening results and home isolations in a window "
                         "suggest a level, with their reasons; missing data are unknown, not zero. Nothing is "
                         "designated: a person confirms a suggestion by designating a zone. Household roles only.")
def suggest(body: SuggestIn, session: SessionDep, who: CurrentUser, settings: SettingsDep) -> SuggestionsPublic:
    who.require_household_read()
    try:
        rules = tuple(rl.Rule(r.indicator, r.at_least, r.level, tuple(r.categories)) for r in body.rules) \
            if body.rules else rl.DEFAULT_RULES
    except ValueError as exc:
        raise InvalidInput(str(exc), code="risk_zones.rule", problem=str(exc)) from None
    scheme = body.scheme or settings.risk_scheme
    when, found = store.suggestions(session, who, body.division, rules=rules, rule_scheme=body.rule_scheme,
                                    scheme_name=scheme, at=body.at, window_days=body.window_days, by=body.by)
    schemes = store.schemes(session)
    return SuggestionsPublic(at=when, window_days=body.window_days, suggestions=[
        SuggestionPublic(area=s.area, status=s.status, incomplete=s.incomplete,
                         level=_level(schemes, s.level.scheme, s.level.level) if s.level else None,
                         reasons=[r.to_dict() for r in s.reasons]) for s in found])


@router.get("/{zone_id}", response_model=ZonePublic, summary="One zone with its ETag (风险区域详情)")
def read_zone(zone_id: Id, response: Response, session: SessionDep, who: CurrentUser, coords: CrsDep) -> ZonePublic:
    zone = store.get_zone(session, who, zone_id)
    response.headers["ETag"] = etag(zone.id, zone.version)
    return _zone(zone, store.schemes(session), coords)


@router.get("/{zone_id}/history", response_model=list[VersionPublic], summary="A zone's versions (历史)")
def zone_history(zone_id: Id, session: SessionDep, who: CurrentUser) -> list[VersionPublic]:
    return [VersionPublic(**v) for v in store.history(session, who, zone_id)]


@router.patch("/{zone_id}", response_model=ZonePublic, summary="Change a zone (调整风险区域)",
              description="A new level, planned end or (drawn polygons) boundary, as of `at`; If-Match required.")
def change_zone(zone_id: Id, body: ZoneChange, response: Response, session: SessionDep, who: CurrentUser,
                settings: SettingsDep, if_match: IfMatch = None) -> ZonePublic:
    expected = parse_if_match(if_match, zone_id)
    extra = {"valid_to": body.valid_to} if "valid_to" in body.model_fields_set else {}
    zone = store.change(session, who, zone_id, expected, reason=body.reason, level=body.level,
                        scheme_name=body.scheme, polygon=_polygon(body.geometry, body.crs), at=body.at,
                        basis=body.basis.model_dump() if body.basis else None, roles=settings.risk_zone_roles,
                        **extra)
    response.headers["ETag"] = etag(zone.id, zone.version)
    return _zone(zone, store.schemes(session), parse_crs(body.crs))


@router.post("/{zone_id}/lift", response_model=ZonePublic, summary="Lift a zone (解除风险区域)",
             description="The zone ends at `at` (default now); If-Match required.")
def lift_zone(zone_id: Id, body: ZoneLift, response: Response, session: SessionDep, who: CurrentUser,
              settings: SettingsDep, coords: CrsDep, if_match: IfMatch = None) -> ZonePublic:
    zone = store.lift(session, who, zone_id, parse_if_match(if_match, zone_id), reason=body.reason, at=body.at,
                      roles=settings.risk_zone_roles)
    response.headers["ETag"] = etag(zone.id, zone.version)
    return _zone(zone, store.schemes(session), coords)


@router.get("/{zone_id}/households", response_model=list[HouseholdPublic],
            summary="The households of a zone (区域内住户)",
            description="At `at` (default now), in your household scope: masked, audited. For screening and siting.")
def zone_households(zone_id: Id, session: SessionDep, who: CurrentUser, coords: CrsDep, at: At = None,
                    limit: Annotated[int, Query(ge=1, le=store.MAX_HOUSEHOLDS)] = store.MAX_HOUSEHOLDS,
                    purpose: Annotated[str | None, Query(max_length=200)] = None) -> list[dict[str, Any]]:
    return _households(store.zone_households(session, who, zone_id, at=at, limit=limit, purpose=purpose), coords)


@router.get("/{zone_id}/sheet", response_model=SheetPublic, summary="What the printable zone sheet shows (区域清单)",
            description="The zone, its households per grid (counts, your household scope), nearby checkpoints.")
def zone_sheet(zone_id: Id, session: SessionDep, who: CurrentUser, settings: SettingsDep,
               coords: CrsDep) -> SheetPublic:
    sheet = store.zone_sheet(session, who, zone_id, metric_srid=settings.metric_srid)
    checkpoints = []
    for c in sheet["checkpoints"]:
        x, y = from_wgs84(Point(c["lon"], c["lat"]), coords).coords[0]
        checkpoints.append({**{k: v for k, v in c.items() if k not in ("lon", "lat")}, "location": [x, y]})
    return SheetPublic(zone=_zone(sheet["zone"], store.schemes(session), coords), at=sheet["at"],
                       area_m2=sheet["area_m2"], households=sum(g["households"] for g in sheet["grids"]),
                       residents=sum(int(g["residents"]) for g in sheet["grids"]),
                       grids=[{**g, "residents": int(g["residents"])} for g in sheet["grids"]],
                       checkpoints=checkpoints)

