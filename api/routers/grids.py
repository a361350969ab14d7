"""Planners edit grids: create, redraw, rename, split, merge, retire, revert; preview; history.

Writes need the planner (or admin) role, a community in the caller's area, a reason, and ``If-Match`` with
the ETag of every grid they edit (412 if stale, 428 if missing). ``preview: true`` returns the report
without writing. Geometries in and out are in ``crs`` (default EPSG:4326; GCJ-02/BD-09 accepted).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, Field
from shapely.geometry import mapping

from api.deps import CrsDep, CurrentUser, SessionDep, SettingsDep
from api.geojson import CrsName
from api.types import DivisionCode, GridCode, Id, LineGeoJSON, Name, OneOf, PolygonGeoJSON
from spatial.access import Principal
from spatial.errors import InvalidInput, PreconditionRequired
from spatial.geometry.crs import CoordSys, from_wgs84, parse_crs
from spatial.geometry.validate import line_from_geojson, polygon_from_geojson
from spatial.settings import Settings
from spatial.store import grids as store
from spatial.vocab import GRID_KINDS

router = APIRouter(prefix="/api/grids", tags=["grids · 网格编辑"])

IfMatch = Annotated[str | None, Header(description='ETag(s) of the grid(s) edited, e.g. "44030409600101.v3"')]


class Edit(BaseModel):
    reason: str = Field("", description="why (recorded in the history; required unless preview)")
    crs: CrsName | None = Field(None, description="CRS of the geometry sent and of geometries returned")
    preview: bool = Field(False, description="check and report only; nothing is written")


class BoundaryEdit(Edit):
    geometry: PolygonGeoJSON = Field(description="GeoJSON Polygon or MultiPolygon")
    move_shared_boundary: bool = Field(False, description="neighbours give up the land claimed and take the land "
                                                          "released (else an overlap is refused with 409)")


class GridCreate(BoundaryEdit):
    community_code: DivisionCode
    name: Name
    kind: OneOf(GRID_KINDS) = Field("comprehensive", description=" / ".join(GRID_KINDS))


class GridRename(Edit):
    name: Name
    preview: bool = Field(False, description="ignored: a rename has nothing to preview")


class GridSplit(Edit):
    line: LineGeoJSON = Field(description="GeoJSON LineString crossing the grid from side to side")
    new_name: Name


class GridMerge(Edit):
    codes: list[GridCode] = Field(min_length=2, description="the first grid keeps its code; the others retire")


class GridRevert(Edit):
    version: Id
    move_shared_boundary: bool = False


def etag(code: str, version: int) -> str:
    return f'"{code}.v{version}"'


def parse_if_match(header: str | None, codes: list[str], preview: bool) -> dict[str, int]:
    """``{"code": version}`` from an If-Match header naming every grid in ``codes``."""
    tags = {}
    for part in (header or "").split(","):
        part = part.strip().removeprefix("W/").strip('"')
        code, _, version = part.partition(".v")
        if code and version.isdigit():
            tags[code] = int(version)
    missing = [c for c in codes if c not in tags]
    if missing and not preview:
        raise PreconditionRequired(f"send If-Match with the ETag of grid {', '.join(missing)} (from GET "
                                   f"/api/grids/{missing[0]}) so that a newer change is never overwritten")
    return {c: tags[c] for c in codes if c in tags}


def _settings(settings: Settings, crs: CoordSys | str | None) -> store.PlanSettings:
    return store.PlanSettings(settings.metric_srid, settings.sliver_tolerance_m2,
                              (settings.grid_households_min, settings.grid_households_max), parse_crs(crs).name)


def _may_edit(who: Principal, community_code: str) -> None:
    who.require_role("planner")
    who.require_scope(community_code)


def _result(result: store.EditResult, plan: store.PlanSettings, response: Response) -> dict[str, Any]:
    """The edit's report and touched grids (each with its new ETag); the response's ETag header is the
    edited grid's (the first touched), so a client can chain edits."""
    for g in result.grids:
        g["etag"] = etag(g["code"], g["version"]) if g["version"] is not None and not g["retired"] else None
    features = [{"type": "Feature", "id": g["code"], "geometry": plan.geojson(g["geometry"]),
                 "properties": {k: v for k, v in g.items() if k != "geometry"}} for g in result.grids]
    if result.grids and result.grids[0]["etag"]:
        response.headers["ETag"] = result.grids[0]["etag"]
    return {"preview": result.preview, "community_code": result.community_code,
            "grids": {"type": "FeatureCollection", "crs": plan.output_crs, "features": features},
            "report": result.report.to_dict(plan.geojson), "assignments": result.assignments}


@router.get("/{code}", summary="One grid with its ETag (网格详情)")
def read_grid(code: str, response: Response, session: SessionDep, _: CurrentUser, coords: CrsDep
              ) -> dict[str, Any]:
    grid = store.grid_row(session, code)
    response.headers["ETag"] = etag(code, grid["version"])
    properties = {k: v for k, v in grid.items() if k != "boundary"}
    return {"type": "Feature", "id": code, "properties": properties,
            "geometry": mapping(from_wgs84(grid["boundary"], coords))}


def _edit(who: Principal, codes: list[str], if_match: str | None, body: Edit, settings: Settings, *,
          versioned: bool = True) -> store.Edit:
    """Check the caller may edit these grids (or, unversioned, create in this community) and build the
    store's edit, with the edited versions from If-Match."""
    for code in codes:
        _may_edit(who, code[:12])
    expected = parse_if_match(if_match, codes, body.preview) if versioned else {}
    return store.Edit(who.username, body.reason, expected, body.preview, _settings(settings, body.crs))


@router.post("", status_code=201, summary="Create a grid (新建网格)")
def create(body: GridCreate, response: Response, session: SessionDep, settings: SettingsDep, who: CurrentUser
           ) -> dict[str, Any]:
    if body.kind not in GRID_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(GRID_KINDS)}")
    edit = _edit(who, [body.community_code], None, body, settings, versioned=False)
    geom = polygon_from_geojson(body.geometry, parse_crs(body.crs))
    result = store.create_grid(session, body.community_code, body.name, body.kind, geom, edit,
                               move_shared_boundary=body.move_shared_boundary)
    if body.preview:
        response.status_code = 200
    return _result(result, edit.settings, response)


@router.put("/{code}/boundary", summary="Redraw a grid's boundary, or preview it (重绘网格边界)")
def redraw(code: str, body: BoundaryEdit, response: Response, session: SessionDep, settings: SettingsDep,
           who: CurrentUser, if_match: IfMatch = None) -> dict[str, Any]:
    edit = _edit(who, [code], if_match, body, settings)
    geom = polygon_from_geojson(body.geometry, parse_crs(body.crs))
    result = store.redraw_grid(session, code, geom, edit, move_shared_boundary=body.move_shared_boundary)
    return _result(result, edit.settings, response)


@router.patch("/{code}", summary="Rename a grid (重命名网格)")
def rename(code: str, body: GridRename, response: Response, session: SessionDep, settings: SettingsDep,
           who: CurrentUser, if_match: IfMatch = None) -> dict[str, Any]:
    edit = _edit(who, [code], if_match, body, settings)
    return _result(store.rename_grid(session, code, body.name, edit), edit.settings, response)


@router.post("/{code}/split", summary="Split a grid along a line (拆分网格)")
def split(code: str, body: GridSplit, response: Response, session: SessionDep, settings: SettingsDep,
          who: CurrentUser, if_match: IfMatch = None) -> dict[str, Any]:
    edit = _edit(who, [code], if_match, body, settings)
    line = line_from_geojson(body.line, parse_crs(body.crs))
    return _result(store.split_grid(session, code, line, body.new_name, edit), edit.settings, response)


@router.post("/merge", summary="Merge adjacent grids (合并网格)")
def merge(body: GridMerge, response: Response, session: SessionDep, settings: SettingsDep, who: CurrentUser,
          if_match: IfMatch = None) -> dict[str, Any]:
    edit = _edit(who, body.codes, if_match, body, settings)
    return _result(store.merge_grids(session, body.codes, edit), edit.settings, response)


@router.post("/{code}/retire", summary="Retire a grid (撤销网格)")
def retire(code: str, body: Edit, response: Response, session: SessionDep, settings: SettingsDep,
           who: CurrentUser, if_match: IfMatch = None) -> dict[str, Any]:
    edit = _edit(who, [code], if_match, body, settings)
    return _result(store.retire_grid(session, code, edit), edit.settings, response)


@router.post("/{code}/revert", summary="Revert a grid to an earlier version, as a new version (回退版本)")
def revert(code: str, body: GridRevert, response: Response, session: SessionDep, settings: SettingsDep,
           who: CurrentUser, if_match: IfMatch = None) -> dict[str, Any]:
    edit = _edit(who, [code], if_match, body, settings)
    result = store.revert_grid(session, code, body.version, edit, move_shared_boundary=body.move_shared_boundary)
    return _result(result, edit.settings, response)


@router.get("/{code}/versions", summary="Every version of a grid: who, when, why (历史版本)")
def history(code: str, session: SessionDep, settings: SettingsDep, _: CurrentUser) -> list[dict[str, Any]]:
    return store.versions(session, code, settings.metric_srid)


@router.get("/{code}/diff", summary="What changed between two versions (版本对比)")
def diff(code: str, session: SessionDep, settings: SettingsDep, _: CurrentUser,
         from_version: Annotated[Id, Query(alias="from")], to_version: Annotated[Id, Query(alias="to")],
         coords: CrsDep) -> dict[str, Any]:
    plan = _settings(settings, coords)
    result = store.version_diff(session, code, from_version, to_version, settings.metric_srid)
    return {**result, "added": plan.geojson(result["added"]), "removed": plan.geojson(result["removed"])}
