"""One network (一张网, issue 16 §2): departments' grids as named layers, their crosswalk with the comprehensive grids,
who handles a point, and the places departments inspect. The rules are :mod:`spatial.store.one_network` and
:mod:`spatial.store.places`; the file checks :mod:`spatial.io.department_grids` and :mod:`spatial.io.places`.

Imports: admin, or a planner whose area holds what the file touches; each is checked first (``dry_run``) and
audited, refusals included; with an error nothing is written (422 with the report). Who handles a point: any
logged-in role (workers' and contacts' names and phones masked). Crosswalk: admin, planner or inspector in scope.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi import Path as FastPath
from pydantic import BaseModel, Field

from api.deps import CrsDep, CurrentUser, SessionDep, SettingsDep
from api.types import Id, Text
from api.uploads import UploadImport, run_upload, upload_limits, upload_name
from spatial.errors import InvalidInput
from spatial.geometry.codes import CREDIT_CODE_PATTERN
from spatial.geometry.crs import WGS84, transform_xy
from spatial.geometry.validate import position_from_xy
from spatial.io.department_grids import import_department_grids
from spatial.io.places import DEFAULT_MAX_DISTANCE_M, import_places
from spatial.io.safe_files import CSV, LEDGER_UPLOAD_SUFFIXES, XLSX, ReadLimits
from spatial.store import one_network as store
from spatial.store import places as places_store
from spatial.vocab import PLACE_KINDS

router = APIRouter(prefix="/api/one-network", tags=["one network · 一张网"])

SUBDISTRICT = r"^[0-9]{6}(00[1-9]|0[1-9][0-9]|[1-9][0-9]{2})000$"  # codes.SUBDISTRICT_CODE_PATTERN without look-ahead
Reason = Annotated[str, Form(min_length=2, max_length=500, description="recorded in the audit log and history")]
DryRun = Annotated[bool, Form(description="check and report only; nothing is written")]


class FindingPublic(BaseModel):
    feature: str
    severity: Literal["error", "warning"]
    message: str


class LayerImportPublic(BaseModel):
    file: str
    layer: str
    read: int = Field(ge=0)
    inserted: int = Field(ge=0)
    written: bool
    dry_run: bool
    errors: int = Field(ge=0)
    warnings: int = Field(ge=0)
    findings: list[FindingPublic]
    communities: list[str | None] = Field(description="communities the layer touches")
    notes: list[str]
    basis: str | None = Field(None, description="the department's current layer when checked (also the ETag)")


@router.post("/departments/{credit_code}/grids", response_model=LayerImportPublic,
             summary="Import a department's grids as its layer (导入部门网格)",
             description="The department's own grids (GeoPackage, GeoJSON or zipped Shapefile; fields code, name, "
                         "contact, phone) replace its current layer; the old one is kept as history. Checks: a valid "
                         "polygon in some community, no overlap within the layer (errors: nothing written, 422 with "
                         "the report); buildings cut, land outside every community, several communities (warnings). "
                         "The credit code's check character is verified (GB 32100). Admin, or a planner whose area "
                         "holds every community the layer touches (old and new). Audited.")
def import_layer(request: Request, session: SessionDep, settings: SettingsDep, who: CurrentUser, response: Response,
                 credit_code: Annotated[str, FastPath(pattern=CREDIT_CODE_PATTERN, description="the department's "
                                                      "unified social credit code (GB 32100)")],
                 file: Annotated[UploadFile, File(description=".gpkg, .geojson or a .zip of a Shapefile")],
                 department_name: Annotated[str, Form(min_length=1, max_length=100, description="e.g. 市场监督管理局")],
                 layer_name: Annotated[str, Form(min_length=1, max_length=100, description="e.g. 市场监管网格")],
                 reason: Reason,
                 office_phone: Annotated[str | None, Form(max_length=30, description="the department's office line")
                                         ] = None,
                 file_layer: Annotated[str | None, Form(max_length=200, description="the file's layer")] = None,
                 dry_run: DryRun = False) -> dict:
    code = store.credit_code(credit_code)
    name = upload_name(file)

    def run(path, dry: bool):
        return import_department_grids(session, path, who, credit_code=code, department_name=department_name,
                                       layer_name=layer_name, office_phone=office_phone, file_layer=file_layer,
                                       reason=reason, dry_run=dry, metric_srid=settings.metric_srid,
                                       limits=upload_limits(settings), name=name)

    job = UploadImport(
        "department_grids", lambda caller: caller.require_role(*store.IMPORT_ROLES),
        check=lambda path: run(path, True), write=lambda path: run(path, False),
        body=lambda report: {**report.as_dict(), "inserted": report.inserted},
        refusal=lambda report: InvalidInput(f"{len(report.errors)} feature(s) failed the checks; nothing was written",
                                            code="one_network.rejected", count=len(report.errors))
        if report.errors else None,
        result=lambda report: f"{report.inserted} department grids in force",
        basis=lambda report: store.layer_basis(session, code))
    return run_upload(request, session, who, response, file, job, reason=reason, dry_run=dry_run, if_match=None)


class LayerPublic(BaseModel):
    department: str = Field(description="credit code")
    department_name: str
    office_phone: str | None
    layer: str
    grids: int = Field(ge=0)
    area_m2: float = Field(ge=0)


@router.get("/layers", response_model=list[LayerPublic], summary="Departments' current layers (部门网格图层)")
def list_layers(session: SessionDep, who: CurrentUser) -> list[LayerPublic]:
    return [LayerPublic(department=s.department, department_name=s.department_name, office_phone=s.office_phone,
                        layer=s.layer, grids=s.grids, area_m2=round(s.area_m2, 1)) for s in store.layers(session, who)]


class PiecePublic(BaseModel):
    grid_code: str | None = Field(description="the comprehensive grid; null: land in no grid")
    community_code: str | None
    land_m2: float = Field(ge=0)
    land_share: float = Field(ge=0, le=1.000001)
    building_m2: float = Field(ge=0, description="footprint m² of its buildings inside the department grid")
    building_share: float | None = Field(ge=0, le=1.000001, description="null: no building in the department grid")
    buildings: int = Field(ge=0, description="buildings mostly inside the department grid")
    proposed: Literal["keep", "move", "outside"]
    to_department_grid: str = Field(description="code of the department grid that covers it in the one network")


class CrosswalkGridPublic(BaseModel):
    department: str
    department_name: str
    layer: str
    code: str
    name: str
    area_m2: float
    communities: dict[str, float] = Field(description="land share per community (0–1)")
    pieces: list[PiecePublic]


class CutPublic(BaseModel):
    department: str
    department_grid: str
    building_id: int
    building_code: str | None
    grid_code: str | None
    inside_share: float = Field(ge=0, le=1)


class CrosswalkPublic(BaseModel):
    subdistrict: str
    grids: list[CrosswalkGridPublic]
    cut_buildings: list[CutPublic]
    multi_community: list[str] = Field(description="department grids (department:code) over several communities")


@router.get("/crosswalk", response_model=CrosswalkPublic, summary="Crosswalk of department grids (一张网对照)",
            description="For every department grid touching the subdistrict, the share (0–1) of its land and of its "
                        "buildings' footprint in each comprehensive grid (each department grid's land shares sum to "
                        "1: land in no grid has grid_code null), the buildings its boundary cuts, the grids over "
                        "several communities, and the proposal: per department and comprehensive grid, the "
                        "department grid holding most of it takes all of it. Areas m² in the metric CRS. Admin, "
                        "planner or inspector with the subdistrict in their area.")
def get_crosswalk(session: SessionDep, settings: SettingsDep, who: CurrentUser,
                  subdistrict: Annotated[str, Query(pattern=SUBDISTRICT, description="a subdistrict's code")]) -> CrosswalkPublic:
    cw = store.crosswalk(session, who, subdistrict, metric_srid=settings.metric_srid)
    proposal = {(a.department_grid, a.grid_id): a for a in cw.proposal}
    multi = {m["department_grid"]: m["communities"] for m in cw.multi_community}
    out = []
    for dg_id, g in cw.grids.items():
        pieces = [p for p in cw.pieces if p.department_grid == dg_id]
        shares: dict[str, float] = {}
        for p in pieces:
            if p.community_code:
                shares[p.community_code] = shares.get(p.community_code, 0.0) + p.land_share
        out.append(CrosswalkGridPublic(
            department=g["department"], department_name=g["department_name"], layer=g["layer"], code=g["code"],
            name=g["name"], area_m2=round(g["area_m2"], 1), communities={c: round(s, 6) for c, s in shares.items()},
            pieces=[PiecePublic(grid_code=p.grid_code, community_code=p.community_code, land_m2=round(p.land_m2, 2),
                                land_share=p.land_share, building_m2=round(p.building_m2, 2),
                                building_share=p.building_share, buildings=p.buildings,
                                proposed=proposal[(dg_id, p.grid_id)].action,
                                to_department_grid=cw.grids[proposal[(dg_id, p.grid_id)].to_department_grid]["code"])
                    for p in pieces]))
    return CrosswalkPublic(
        subdistrict=subdistrict, grids=out,
        cut_buildings=[CutPublic(department=cw.grids[c["department_grid"]]["department"],
                                 department_grid=cw.grids[c["department_grid"]]["code"], building_id=c["building_id"],
                                 building_code=c["building_code"], grid_code=c["grid_code"],
                                 inside_share=min(max(c["inside_share"], 0.0), 1.0)) for c in cw.cut],
        multi_community=[f"{cw.grids[d]['department']}:{cw.grids[d]['code']}" for d in multi])


class WorkerPublic(BaseModel):
    name: str | None = Field(description="masked: surname + *")
    duty: Literal["leader", "worker"]


class DepartmentGridPublic(BaseModel):
    department: str = Field(description="credit code")
    department_name: str
    office_phone: str | None = Field(description="the department's office line (an organisation's, shown whole)")
    layer: str
    code: str
    name: str
    contact_name: str | None = Field(description="masked: surname + *")
    contact_phone: str | None = Field(description="masked: 3 + 4 digits")


class GridPublic(BaseModel):
    code: str
    name: str
    kind: str
    community_code: str
    community_name: str | None


class HandlerPublic(BaseModel):
    crs: str
    position: list[float] = Field(min_length=2, max_length=2, description="[x, y] in crs")
    grid: GridPublic | None = Field(description="the comprehensive (or dedicated) grid; null outside every grid")
    workers: list[WorkerPublic]
    departments: list[DepartmentGridPublic]


@router.get("/who-handles", response_model=HandlerPublic, summary="Who handles this point (谁来管)",
            description="The grid covering a position in `crs` (WGS 84 by default; GCJ-02, BD-09, EPSG:4547 …), its "
                        "workers, and every department grid in force there with its department and contact. Any "
                        "logged-in role; names and phones of people masked.")
def who_handles(session: SessionDep, who: CurrentUser, coords: CrsDep,
                x: Annotated[float, Query(description="x in crs (longitude for geographic systems)")],
                y: Annotated[float, Query(description="y in crs (latitude for geographic systems)")]) -> HandlerPublic:
    lon, lat = position_from_xy(x, y, coords)
    found = store.who_handles(session, lon, lat)
    px, py = transform_xy(np.array([lon]), np.array([lat]), WGS84, coords)
    digits = 7 if coords.is_geographic else 2
    return HandlerPublic(crs=coords.name, position=[round(float(px[0]), digits), round(float(py[0]), digits)],
                         grid=GridPublic(**{k: found.grid[k] for k in GridPublic.model_fields}) if found.grid else None,
                         workers=[WorkerPublic(**w) for w in found.workers],
                         departments=[DepartmentGridPublic(**_fields(d, DepartmentGridPublic))
                                      for d in found.departments])


def _fields(row: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    return {k: row[k] for k in model.model_fields}


@router.get("/cases/{case_id}/departments", response_model=list[DepartmentGridPublic],
            summary="A case's department grids (事件所属部门网格)",
            description="The department grids in force where the case lay when it was reported or moved, as recorded "
                        "on the case; for those who see the case.")
def case_departments(session: SessionDep, who: CurrentUser, case_id: Id) -> list[DepartmentGridPublic]:
    return [DepartmentGridPublic(**_fields(d, DepartmentGridPublic))
            for d in store.case_departments(session, who, case_id)]


class RowErrorPublic(BaseModel):
    line: int = Field(ge=1)
    column: str
    letter: str | None
    reason: str


class PlacesImportPublic(BaseModel):
    file: str
    read: int = Field(ge=0)
    inserted: int = Field(ge=0)
    updated: int = Field(ge=0)
    rejected: int = Field(ge=0)
    written: bool
    dry_run: bool
    rows: list[RowErrorPublic] = Field(description="rejected rows (at most 1,000 listed)")


@router.post("/places/import", response_model=PlacesImportPublic, summary="Import places (导入三小场所·企业·学校·诊所)",
             description="One row per place: 名称, 类型 (小商店/小餐饮/小旅馆/企业/学校/诊所), 统一社会信用代码 (required for "
                         "an enterprise; check character verified), 复工复产 (是/否, enterprises), 地址, 楼栋编码 or "
                         "经度 + 纬度 (in `crs`). Every rejected row is listed with line, column and reason; with any, "
                         "nothing is written (422) unless `skip_errors`. Admin, or a planner: each place in their area. "
                         "Audited.")
def import_places_file(request: Request, session: SessionDep, settings: SettingsDep, who: CurrentUser,
                       response: Response, file: Annotated[UploadFile, File(description=".xlsx or .csv")],
                       reason: Reason,
                       crs: Annotated[str | None, Form(max_length=30, description="of 经度/纬度 (default EPSG:4326)")
                                      ] = None,
                       max_distance_m: Annotated[float, Form(gt=0, le=500)] = DEFAULT_MAX_DISTANCE_M,
                       skip_errors: Annotated[bool, Form()] = False, dry_run: DryRun = False) -> dict:
    name = upload_name(file)
    limits = ReadLimits(formats=frozenset({XLSX, CSV}), max_features=settings.import_max_features,
                        max_unpacked_bytes=upload_limits(settings).max_unpacked_bytes)

    def run(path, dry: bool):
        return import_places(session, path, who, crs=crs, skip_errors=skip_errors, dry_run=dry,
                             max_distance_m=max_distance_m, name=name, limits=limits)

    job = UploadImport(
        "places", lambda caller: caller.require_role("planner"), check=lambda path: run(path, True),
        write=lambda path: run(path, False), body=lambda report: report.as_dict(),
        refusal=lambda report: InvalidInput(f"{report.issue_count} row(s) rejected; nothing was written (fix them, "
                                            "or import with skip_errors)", code="import.rows_rejected",
                                            count=report.issue_count)
        if report.issue_count and not skip_errors else None,
        result=lambda report: f"{report.inserted} new, {report.updated} updated, {report.issue_count} rejected",
        suffixes=LEDGER_UPLOAD_SUFFIXES)
    return run_upload(request, session, who, response, file, job, reason=reason, dry_run=dry_run, if_match=None)


class PlacePublic(BaseModel):
    id: int
    kind: Literal[tuple(PLACE_KINDS)]  # type: ignore[valid-type]
    name: str
    credit_code: str | None
    reopened: bool | None = Field(description="复工复产 (enterprises; null unknown)")
    address: str | None
    building_code: str | None
    grid_code: str | None
    community_code: str | None
    position: list[float] = Field(min_length=2, max_length=2, description="[x, y] in crs")


@router.get("/places", response_model=list[PlacePublic], summary="Places in your area (场所)")
def list_places(session: SessionDep, who: CurrentUser, coords: CrsDep,
                kind: Annotated[Literal[tuple(PLACE_KINDS)] | None, Query()] = None,  # type: ignore[valid-type]
                grid_code: Annotated[Text(14) | None, Query()] = None,
                reopened: Annotated[bool | None, Query(description="复工复产")] = None,
                limit: Annotated[int, Query(ge=1, le=places_store.MAX_LIMIT)] = 1000,
                offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> list[PlacePublic]:
    rows = places_store.list_places(session, who, kind=kind, grid_code=grid_code, reopened=reopened, limit=limit,
                                    offset=offset)
    if not rows:
        return []
    xs, ys = transform_xy(np.array([r["lon"] for r in rows]), np.array([r["lat"] for r in rows]), WGS84,
                          coords)
    digits = 7 if coords.is_geographic else 2
    return [PlacePublic(**{k: r[k] for k in PlacePublic.model_fields if k != "position"},
                        position=[round(float(x), digits), round(float(y), digits)])
            for r, x, y in zip(rows, xs, ys, strict=True)]
