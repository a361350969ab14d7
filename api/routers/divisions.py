"""Administrative divisions (subdistricts 街道, communities 社区): import, create, rename, redraw, history.

Reading a division needs a login and the division in the caller's area. Every change needs the **admin**
role and a reason; renames and redraws need ``If-Match`` with the division's ETag (``"<code>.v<version>"``,
from GET), 412 when it changed meanwhile, 428 without it. An import answers a dry run with the ``basis`` (also
its ETag) of the divisions it checked against: send it as ``If-Match`` with the import (412 if they changed).
Geometries in and out are in ``crs`` (EPSG:4326 by default; CGCS2000, GCJ-02, BD-09 and EPSG codes accepted).
The checks and the tolerance are those of :mod:`spatial.store.divisions`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Header, Path, Request, Response, UploadFile
from pydantic import BaseModel, Field
from shapely.geometry import mapping

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.geojson import CrsName, CrsParam
from api.uploads import UploadImport, run_upload, upload_limits
from spatial.access import Principal
from spatial.errors import Forbidden, InvalidInput, OutOfScope, PreconditionRequired
from spatial.geometry.codes import DIVISION_CODE_PATTERN
from spatial.geometry.crs import from_wgs84, parse_crs
from spatial.geometry.validate import polygon_from_geojson
from spatial.io.division_files import import_division_file
from spatial.store import divisions as store

router = APIRouter(prefix="/api/divisions", tags=["divisions · 行政区划"])

Code = Annotated[str, Path(pattern=DIVISION_CODE_PATTERN, description="12-digit division code",
                           examples=["440304096001"])]
IfMatch = Annotated[str | None, Header(description='the ETag of the division edited, e.g. "440304096001.v3"')]
Name = Annotated[str, Field(min_length=1, max_length=store.NAME_MAX_LENGTH, examples=["沙嘴社区"])]
NameEn = Annotated[str | None, Field(None, max_length=store.NAME_MAX_LENGTH)]
Reason = Annotated[str, Field(min_length=2, max_length=500, description="why (recorded in the history)")]


class DivisionCreate(BaseModel):
    code: str = Field(pattern=DIVISION_CODE_PATTERN, description="12 digits: county (6) + subdistrict (3) + "
                      "community (3); a subdistrict's ends in 000, a community's begins with its subdistrict's "
                      "first 9 digits", examples=["440304096001"])
    level: Literal["district", "subdistrict", "community"] | None = Field(
        None, description="optional: the code tells; if given it must agree")
    name: Name
    name_en: NameEn = None
    geometry: dict[str, Any] | None = Field(None, description="GeoJSON Polygon or MultiPolygon (required except "
                                                              "for a district)")
    crs: CrsName | None = Field(None, description="CRS of the geometry sent and of geometries returned")
    reason: Reason


class DivisionRename(BaseModel):
    name: Name
    name_en: NameEn = None
    reason: Reason
    crs: CrsName | None = Field(None, description="CRS of the geometry returned")


class DivisionRedraw(BaseModel):
    geometry: dict[str, Any] = Field(description="GeoJSON Polygon or MultiPolygon")
    crs: CrsName | None = Field(None, description="CRS of the geometry sent and of geometries returned")
    reason: Reason


def etag(code: str, version: int) -> str:
    return f'"{code}.v{version}"'


def _expected(code: str, if_match: str | None) -> int:
    """The version named by If-Match for ``code``; 428 without one."""
    for part in (if_match or "").split(","):
        tag_code, _, version = part.strip().removeprefix("W/").strip('"').partition(".v")
        if tag_code == code and version.isdigit():
            return int(version)
    raise PreconditionRequired(f"send If-Match with the ETag of division {code} (from GET /api/divisions/{code}) "
                               "so that a newer change is never overwritten")


def _admin(who: Principal) -> None:
    if who.role != "admin":
        raise Forbidden(f"creating and changing divisions needs the admin role; you are {who.role}")


def _feature(division: dict[str, Any], crs: str | None) -> dict[str, Any]:
    boundary = division["boundary"]
    return {"type": "Feature", "id": division["code"],
            "properties": {k: v for k, v in division.items() if k != "boundary"} | {
                "etag": etag(division["code"], division["version"])},
            "geometry": mapping(from_wgs84(boundary, parse_crs(crs))) if boundary is not None else None}


def _edit(who: Principal, reason: str, settings, expected: int | None = None) -> store.DivisionEdit:
    return store.DivisionEdit(who.username, reason, expected, settings.metric_srid)


def _result(result: store.EditResult, crs: str | None, response: Response) -> dict[str, Any]:
    response.headers["ETag"] = etag(result.division["code"], result.division["version"])
    checked = result.checked
    return {"division": _feature(result.division, crs),
            "findings": [{"feature": f.code, "severity": f.severity, "message": f.message} for f in checked.findings],
            "uncovered_m2": {k: round(v, 1) for k, v in checked.uncovered_m2.items()}, "left_out": checked.left_out,
            "tolerance_m": store.TOLERANCE_M}


@router.post("/import", summary="Import subdistricts and communities (导入街道/社区) with a validation report",
             description="A GeoPackage, GeoJSON or zipped Shapefile of division polygons with a 12-digit code "
                         "(field 代码/编码/code) and a name (名称/name, 1–100 characters); the level (级别/level) may "
                         "be absent: a subdistrict's code ends in 000, a community's begins with its subdistrict's "
                         "first 9 digits. Checks: code structure, each community inside its subdistrict and no "
                         f"overlap between siblings (tolerance {store.TOLERANCE_M:g} m), land in no community "
                         "(m²), valid polygons (repaired ones reported), grids and buildings a redrawn community "
                         "leaves out. With any error nothing is written (422, the report lists each feature). A "
                         "dry run answers the `basis` (also its ETag): send it as `If-Match` with the import (412 "
                         "if the divisions changed meanwhile). Admins only; every import is audited.")
def import_divisions(request: Request, session: SessionDep, settings: SettingsDep, who: CurrentUser,
                     response: Response,
                     file: Annotated[UploadFile, File(description=".gpkg, .geojson or a .zip")],
                     reason: Annotated[str, Form(min_length=2, max_length=500,
                                                 description="recorded in the history")],
                     layer: Annotated[str | None, Form(max_length=200)] = None,
                     crs: Annotated[str | None, Form(max_length=20, description="GCJ-02 or BD-09 if the file's "
                                                     "lon/lat come from a Chinese web map")] = None,
                     code_field: Annotated[str | None, Form(max_length=100)] = None,
                     name_field: Annotated[str | None, Form(max_length=100)] = None,
                     level_field: Annotated[str | None, Form(max_length=100)] = None,
                     district_name: Annotated[str | None, Form(max_length=store.NAME_MAX_LENGTH)] = None,
                     dry_run: Annotated[bool, Form()] = False,
                     if_match: Annotated[str | None, Header(description="the `basis` of the dry run")] = None,
                     ) -> dict:
    fields = {role: name for role, name in (("code", code_field), ("name", name_field), ("level", level_field))
              if name}
    options = dict(layer=layer, fields=fields, crs=crs, district_name=district_name, actor=who.username,
                   reason=reason, metric_srid=settings.metric_srid, limits=upload_limits(settings),
                   name=file.filename)
    job = UploadImport(
        "divisions", _admin,
        check=lambda path: import_division_file(session, path, dry_run=True, **options),
        write=lambda path: import_division_file(session, path, dry_run=False, **options),
        body=lambda report: report.as_dict(),
        refusal=lambda report: InvalidInput(f"{len(report.errors)} finding(s) are errors; nothing was written")
        if report.errors else None,
        result=lambda report: f"{report.inserted} inserted, {report.updated} updated, {report.unchanged} unchanged",
        basis=lambda report: store.import_basis(session, report.divisions),
        require_basis=lambda report, basis: store.require_import_basis(session, report.divisions, basis))
    return run_upload(request, session, who, response, file, job, reason=reason, dry_run=dry_run, if_match=if_match)


@router.post("", status_code=201, summary="Create a division (新建街道/社区)")
def create(body: DivisionCreate, response: Response, session: SessionDep, settings: SettingsDep,
           who: CurrentUser) -> dict[str, Any]:
    _admin(who)
    geom = polygon_from_geojson(body.geometry, parse_crs(body.crs)) if body.geometry is not None else None
    result = store.create_division(session, body.code, body.name, geom, _edit(who, body.reason, settings),
                                   level=body.level, name_en=body.name_en)
    return _result(result, body.crs, response)


@router.get("/{code}", summary="One division with its ETag (行政区划详情)")
def read(code: Code, response: Response, session: SessionDep, who: CurrentUser, crs: CrsParam = None
         ) -> dict[str, Any]:
    if not who.may_see_code(code):
        raise OutOfScope(f"no division with code {code}")
    division = store.division_row(session, code)
    response.headers["ETag"] = etag(code, division["version"])
    return _feature(division, crs)


@router.get("/{code}/versions", summary="Every version of a division: who, when, why (历史版本)")
def history(code: Code, session: SessionDep, settings: SettingsDep, who: CurrentUser) -> list[dict[str, Any]]:
    if not who.may_see_code(code):
        raise OutOfScope(f"no division with code {code}")
    return store.versions(session, code, settings.metric_srid)


@router.patch("/{code}", summary="Rename a division (重命名)")
def rename(code: Code, body: DivisionRename, response: Response, session: SessionDep, settings: SettingsDep,
           who: CurrentUser, if_match: IfMatch = None) -> dict[str, Any]:
    _admin(who)
    edit = _edit(who, body.reason, settings, _expected(code, if_match))
    return _result(store.rename_division(session, code, body.name, edit, name_en=body.name_en), body.crs, response)


@router.put("/{code}/boundary", summary="Redraw a division's boundary (重绘边界)",
            description="Checked as an import is (inside the parent, no overlap with siblings); the answer lists "
                        "the grids and buildings of the division the new boundary leaves out (`left_out`).")
def redraw(code: Code, body: DivisionRedraw, response: Response, session: SessionDep, settings: SettingsDep,
           who: CurrentUser, if_match: IfMatch = None) -> dict[str, Any]:
    _admin(who)
    edit = _edit(who, body.reason, settings, _expected(code, if_match))
    geom = polygon_from_geojson(body.geometry, parse_crs(body.crs))
    return _result(store.redraw_division(session, code, geom, edit), body.crs, response)
