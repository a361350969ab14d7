"""Export (GeoJSON, GeoPackage, Shapefile) and import (grids, enclosures) over HTTP.

Exports: any layer to any logged-in user (non-personal fields only, per-building counts in the caller's
household scope only, like the map API); a community bundle
to planners, inspectors and admins whose scope holds the community, with households **masked by default**
(``reveal=true`` needs an admin, logged in, not by an access token, and a ``purpose``; both are audited). Both
exports take HTTP Basic with a personal access token too (``api.deps.ReaderUser``). Imports: planners and admins,
for communities in their scope; the report lists every finding; with an error nothing is written (422).
An upload is vetted before GDAL reads it (:mod:`spatial.io.safe_files`: its content must be the format
its name says, within the upload limits), and every import is audited, refused ones included.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse

from api.downloads import attachment, scratch
from api.uploads import UploadImport, run_upload, upload_limits
from api.deps import CurrentUser, ReaderUser, ReadSessionDep, SessionDep, SettingsDep
from api.geojson import CrsParam
from api.types import DivisionCode, OneOf
from spatial.personal_keys import personal_keys
from spatial.errors import Forbidden, InvalidInput
from spatial.io.export import export_community, export_layer
from spatial.io.grid_files import import_grid_file
from spatial.store import audit, plans, tokens
from spatial.store.layers import LAYERS

router = APIRouter(prefix="/api", tags=["import · export 导入导出"])

Format = Literal["gpkg", "geojson", "shp"]
_MEDIA = {".gpkg": "application/geopackage+sqlite3", ".geojson": "application/geo+json", ".zip": "application/zip"}


def _download(folder: Path, path: Path) -> FileResponse:
    """The file as an attachment; the temporary folder goes once it is sent."""
    return attachment(folder, path, _MEDIA.get(path.suffix, "application/octet-stream"))


def _zip_shapefile(folder: Path, shp: Path) -> Path:
    archive = shutil.make_archive(str(folder / "bundle" / shp.stem), "zip", root_dir=shp.parent)
    return Path(archive)


@router.get("/export/layers/{layer}", summary="Download a layer (导出图层): gpkg, geojson or shp (zipped)",
            response_class=FileResponse)
def export_one_layer(layer: OneOf(LAYERS), session: ReadSessionDep, settings: SettingsDep, who: ReaderUser,
                     format: Format = "gpkg", crs: CrsParam = None,
                     community: Annotated[DivisionCode | None,
                                          Query(description="only this community (12 digits)")] = None,
                     ) -> FileResponse:
    with scratch("gridgov-export-") as folder:
        (folder / "files").mkdir()
        path = folder / "files" / f"{layer}.{format}"
        count = export_layer(session, who, layer, path, crs=crs, metric_srid=settings.metric_srid,
                             community=community)
        audit.record(session, who, "export", object_type="layer", object_id=layer, result=f"{count} features")
        return _download(folder, _zip_shapefile(folder, path) if format == "shp" else path)


@router.get("/export/communities/{code}", summary="Download a community bundle (导出社区数据包)",
            response_class=FileResponse)
def export_community_bundle(code: DivisionCode, session: SessionDep, settings: SettingsDep, who: ReaderUser,
                            format: Format = "gpkg", crs: CrsParam = None,
                            households: bool = True, reveal: bool = False,
                            purpose: Annotated[str | None, Query(description="why (needed with reveal)")] = None,
                            ) -> FileResponse:
    if reveal:
        tokens.refuse_token(who, "revealing households")
    with scratch("gridgov-export-") as folder:
        path = folder / (f"{code}.gpkg" if format == "gpkg" else f"{code}-{format}.zip")
        export_community(session, who, code, path, crs=crs, fmt=None if format == "gpkg" else format,
                         households=households, reveal=reveal, purpose=purpose, metric_srid=settings.metric_srid,
                         reveals_per_hour=settings.reveal_exports_max_per_hour, keys=lambda: personal_keys(settings))
        return _download(folder, path)


@router.post("/import/{kind}", summary="Import grids or enclosures (导入网格/围合) with a validation report",
             description="For grids, a dry run answers with the `basis` (also its ETag) of the grids it checked "
                         "against: send it as `If-Match` with the import, so that grids a colleague changed "
                         "meanwhile are never overwritten unseen (412). The file's content must be the format its "
                         "name says (a GeoPackage of tables only, a GeoJSON FeatureCollection, or a zip of one "
                         "Shapefile's .shp/.shx/.dbf/.prj/.cpg); OGR VRT, GDALG and other formats are refused (422). "
                         "At most `import_max_features` features (100,000 by default) per layer and 20 times the "
                         "body limit unpacked from a zip (413). Every import is audited, refused ones included.")
def import_plan_file(request: Request, kind: Literal["grids", "enclosures"], session: SessionDep,
                     settings: SettingsDep, who: CurrentUser, response: Response,
                     file: Annotated[UploadFile, File(description=".gpkg, .geojson or a .zip")],
                     reason: Annotated[str, Form(min_length=2, description="recorded in the history")],
                     layer: Annotated[str | None, Form()] = None,
                     community: Annotated[str | None, Form()] = None,
                     dry_run: Annotated[bool, Form()] = False,
                     if_match: Annotated[str | None, Header(description="grids: the `basis` of the dry run")] = None,
                     ) -> dict:
    limits = upload_limits(settings)

    def run(path: Path, dry_run: bool):
        return import_grid_file(session, path, kind, layer=layer, community=community, actor=who.username,
                                reason=reason, dry_run=dry_run, metric_srid=settings.metric_srid, limits=limits)

    def check(path: Path):
        report = run(path, True)
        outside = [c or "(no community)" for c in report.communities if not who.may_see_code(c or "(none)")]
        if outside:
            raise Forbidden(f"the file touches communities outside your scope: {', '.join(outside)}")
        return report

    def communities(report) -> list[str]:
        return [c for c in report.communities if c]

    job = UploadImport(
        kind, lambda caller: caller.require_role("planner"), check=check, write=lambda path: run(path, False),
        body=lambda report: report.as_dict() | {"file": file.filename},
        refusal=lambda report: InvalidInput(f"{len(report.errors)} feature(s) failed the checks; nothing was written")
        if report.errors else None,
        result=lambda report: f"{report.inserted} inserted, {report.updated} updated",
        basis=lambda report: plans.plans_basis(session, communities(report))
        if kind == "grids" and communities(report) else None,
        require_basis=lambda report, basis: plans.require_basis(session, communities(report), basis, "the dry run")
        if kind == "grids" else None)
    return run_upload(request, session, who, response, file, job, reason=reason, dry_run=dry_run, if_match=if_match)
