"""Onboarding uploads (新街道上线): buildings, streets and the residents' ledger, as the command line imports them.

Each is checked first (``dry_run=true``: the whole import runs and is rolled back; the report says what would be
inserted, already present, skipped or rejected) and answers a ``basis`` (also its ETag); the import then needs
``If-Match`` with that basis (428 without, 412 when the stored rows changed since the check). **Admins only**:
these are subdistrict-wide layers and the ledger of every resident; every import is audited, refusals included.

Limits of an upload (see ``/docs``): the request body at most ``GRIDGOV_MAX_BODY_BYTES`` (5 MB by default; 413),
at most ``GRIDGOV_IMPORT_MAX_FEATURES`` features per layer or rows of a ledger (100,000 by default; 413), and a zip
or workbook at most 20 times the body limit unpacked. Bigger files (a city's buildings) go through the command line
(``gridgov import buildings|streets|residents``), which has no caps. A check and its import each read the file
whole in the request: about 1 s per 10,000 buildings or ledger rows on a small server.

``POST /api/buildings/estimate`` fills the household counts of buildings that have none (``gridgov estimate``), for
balanced grids before the ledger is in.

This module's name sorts before ``transfer`` (:func:`api.app.discover_routers` includes routers in module-name
order): its paths must be matched before ``/api/import/{kind}`` (grids, enclosures).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Header, Request, Response, UploadFile
from pydantic import BaseModel, Field

from api.deps import CurrentUser, SessionDep, SettingsDep, audit_refusals_as
from api.presenters.imports import LayerImportPublic, ResidentsImportPublic, layer_import, residents_import
from api.uploads import UploadImport, run_upload, upload_limits, upload_name
from spatial.access import Principal
from spatial.io import import_buildings, import_streets
from spatial.io.lines import DEFAULT_SNAP_M, MAX_SNAP_M
from spatial.io.residents import DEFAULT_MAX_DISTANCE_M, import_residents
from spatial.io.safe_files import CSV, LEDGER_UPLOAD_SUFFIXES, XLSX, ReadLimits
from spatial.personal_keys import personal_keys
from spatial.errors import InvalidInput
from spatial.store import audit, import_bases
from spatial.store.occupancy import estimate_occupancy

router = APIRouter(prefix="/api", tags=["import · export 导入导出"])

File_ = Annotated[UploadFile, File(description=".gpkg, .geojson or a .zip of a Shapefile")]
Reason = Annotated[str, Form(min_length=2, max_length=500, description="recorded in the audit log")]
Layer = Annotated[str | None, Form(max_length=200, description="the layer (default: the file's only one, or the "
                                                               "one named as the kind)")]
DryRun = Annotated[bool, Form(description="check and report only; nothing is written")]
IfMatch = Annotated[str | None, Header(description="the `basis` of the dry run (required with the import)")]
Crs = Annotated[str | None, Form(max_length=30, description="what the coordinates really are, whatever the file "
                                                            "declares: GCJ-02, BD-09, EPSG:4547 …")]
LIMITS = ("At most `GRIDGOV_IMPORT_MAX_FEATURES` features per layer (100,000 by default) and 20 times the body "
          "limit (`GRIDGOV_MAX_BODY_BYTES`, 5 MB by default) unpacked from a zip (413); bigger files go through the "
          "command line. ")
FLOW = ("Check first (`dry_run=true`: the import runs and is rolled back) and send the answer's `basis` as "
        "`If-Match` with the import (428 without, 412 if the stored rows changed meanwhile). Admins only; audited.")


def _admin(who: Principal) -> None:
    who.require_role("admin")


def _checked(session, run):
    """``run()`` inside a SAVEPOINT rolled back afterwards: the dry run of an importer that writes as it goes."""
    with session.begin_nested() as savepoint:
        report = run()
        savepoint.rollback()
    return report


def _layer_job(kind: str, session, run, dry_run: bool) -> UploadImport:
    """Buildings or streets: ``run(path)`` imports the file; its dry run is the same rolled back."""
    return UploadImport(
        kind, _admin, check=lambda path: _checked(session, lambda: run(path)), write=run,
        body=lambda report: layer_import(kind, report, dry_run=dry_run), refusal=lambda report: None,
        result=lambda report: f"{report.inserted} inserted, {report.already_present} already present, "
                              f"{report.issue_count} skipped",
        basis=lambda report: import_bases.layer_basis(session, kind, report.origin),
        require_basis=lambda report, basis: import_bases.require_basis(
            session, f"{kind}:{report.origin}", basis, lambda: import_bases.layer_basis(session, kind, report.origin)),
        if_match_required=True)


@router.post("/import/buildings", response_model=LayerImportPublic,
             summary="Import buildings (导入楼栋) with a report, checked first",
             description="Building footprints (Polygon/MultiPolygon) from a GeoPackage, GeoJSON or zipped "
                         "Shapefile; fields building/type/use, levels/floors, height, name (see `gridgov import "
                         "buildings`). Rows are keyed on (origin, origin_ref): importing the same file again inserts "
                         "nothing. `on_invalid`: fail (a broken polygon refuses the file, 422), skip or repair. "
                         + LIMITS + FLOW)
def import_building_file(request: Request, session: SessionDep, settings: SettingsDep, who: CurrentUser,
                         response: Response, file: File_, reason: Reason, layer: Layer = None,
                         on_invalid: Annotated[Literal["fail", "skip", "repair"], Form()] = "fail",
                         dry_run: DryRun = False, if_match: IfMatch = None) -> dict:
    name = upload_name(file)

    def run(path: Path):
        return import_buildings(session, path, layer=layer, on_invalid=on_invalid, limits=upload_limits(settings),
                                name=name)

    return run_upload(request, session, who, response, file, _layer_job("buildings", session, run, dry_run),
                      reason=reason, dry_run=dry_run, if_match=if_match)


@router.post("/import/streets", response_model=LayerImportPublic,
             summary="Import streets (导入道路) with a report, checked first",
             description="A street network from one line layer: a plain road-centreline layer (LineString or "
                         "MultiLineString; fields highway/fclass/道路等级, oneway, name, bridge, tunnel, layer), noded "
                         "from its geometry, the report giving its connected pieces; or an OpenStreetMap edge list "
                         "as osmnx writes it (u, v, osmid, highway … and a `street_nodes` layer). An .osm.pbf "
                         "extract goes through the command line (`gridgov import osm`). " + LIMITS + FLOW)
def import_street_file(request: Request, session: SessionDep, settings: SettingsDep, who: CurrentUser,
                       response: Response, file: File_, reason: Reason, layer: Layer = None,
                       nodes_layer: Annotated[str | None, Form(max_length=200, description="nodes of an edge list "
                                                               "(default street_nodes when present)")] = None,
                       crs: Crs = None,
                       snap_m: Annotated[float, Form(gt=0, le=MAX_SNAP_M, description="line layers: ends this "
                                                     "close (metres) are joined")] = DEFAULT_SNAP_M,
                       dry_run: DryRun = False, if_match: IfMatch = None) -> dict:
    name = upload_name(file)

    def run(path: Path):
        return import_streets(session, path, layer=layer, nodes_layer=nodes_layer, crs=crs, snap_m=snap_m,
                              limits=upload_limits(settings), name=name)

    return run_upload(request, session, who, response, file, _layer_job("streets", session, run, dry_run),
                      reason=reason, dry_run=dry_run, if_match=if_match)


@router.post("/import/residents", response_model=ResidentsImportPublic,
             summary="Import the residents' ledger (导入实有人口) with every rejected row, checked first",
             description="One row per person, Chinese headers (姓名, 身份证号, 联系电话, 与户主关系, 楼栋编码, 单元, "
                         "楼层, 房号, 人员类型, 标签, 经度, 纬度 …; see `gridgov import residents`), as an .xlsx "
                         "workbook (an Office Open XML workbook: no links to other files, data connections or "
                         "macros) or a .csv (UTF-8 or GB18030). Every rejected row is listed with its line, column "
                         "and reason; with any, nothing is written (422, the report in the body) unless "
                         "`skip_errors`. ID and phone numbers are sealed before they reach the database and masked "
                         "in every message. At most `GRIDGOV_IMPORT_MAX_FEATURES` rows (100,000 by default). "
                         + FLOW)
def import_residents_file(request: Request, session: SessionDep, settings: SettingsDep, who: CurrentUser,
                          response: Response,
                          file: Annotated[UploadFile, File(description=".xlsx or .csv")], reason: Reason,
                          crs: Annotated[str | None, Form(max_length=30, description="of the 经度/纬度 columns "
                                                          "(default EPSG:4326; GCJ-02, BD-09 …)")] = None,
                          max_distance_m: Annotated[float, Form(gt=0, le=500, description="placing by position: "
                                                                "nearest building within this many metres")
                                                    ] = DEFAULT_MAX_DISTANCE_M,
                          skip_errors: Annotated[bool, Form(description="write the accepted rows even when some "
                                                            "are rejected")] = False,
                          area: Annotated[Literal["buildings", "communities"],
                                          Form(description="who is marked moved out when absent: residents of the "
                                                           "ledger's buildings, or of its communities")] = "buildings",
                          dry_run: DryRun = False, if_match: IfMatch = None) -> dict:
    name = upload_name(file)
    body_limit = upload_limits(settings)
    limits = ReadLimits(formats=frozenset({XLSX, CSV}), max_features=settings.import_max_features,
                        max_unpacked_bytes=body_limit.max_unpacked_bytes)

    def run(path: Path, dry: bool):
        return import_residents(session, path, personal_keys(settings), crs=crs, skip_errors=skip_errors,
                                dry_run=dry, area=area, max_distance_m=max_distance_m, name=name,
                                actor=who.username, limits=limits)

    job = UploadImport(
        "residents", _admin, check=lambda path: run(path, True), write=lambda path: run(path, False),
        body=lambda report: residents_import(report, skip_errors=skip_errors, dry_run=dry_run),
        refusal=lambda report: InvalidInput(f"{report.issue_count} row(s) rejected; nothing was written (fix them, "
                                            "or import with skip_errors)", code="import.rows_rejected",
                                            count=report.issue_count)
        if report.issue_count and not skip_errors else None,
        result=lambda report: f"{report.counts.inserted if report.counts else 0} persons new, "
                              f"{report.issue_count} rows rejected",
        basis=lambda report: import_bases.residents_basis(session),
        require_basis=lambda report, basis: import_bases.require_basis(
            session, "residents", basis, lambda: import_bases.residents_basis(session)),
        suffixes=LEDGER_UPLOAD_SUFFIXES, if_match_required=True)
    return run_upload(request, session, who, response, file, job, reason=reason, dry_run=dry_run, if_match=if_match)


class EstimatePublic(BaseModel):
    estimated: int = Field(ge=0, description="buildings given estimated households and residents")


@router.post("/buildings/estimate", response_model=EstimatePublic,
             summary="Estimate households of buildings without counts (户数估算)",
             description="What `gridgov estimate` does: buildings with no household count get one estimated from "
                         "their footprint, storeys and use (marked `occupancy_estimated`), so that balanced grids "
                         "can be proposed before the residents' ledger is in. Counts already there are kept. "
                         "Admins only; audited.")
def estimate(request: Request, session: SessionDep, who: CurrentUser) -> EstimatePublic:
    audit_refusals_as(request, "estimate", object_type="buildings")
    _admin(who)
    count = estimate_occupancy(session)
    audit.record(session, who, "estimate", object_type="buildings", result=f"{count} buildings estimated")
    return EstimatePublic(estimated=count)
