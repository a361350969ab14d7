"""Uploaded files on their way to an importer: the accepted names, the limits, a private temporary copy, and the
one way every upload import runs (:func:`run_upload`: check, report, then import with the check's basis).

An importer vets the copy itself (:mod:`spatial.io.safe_files`: its content must be the format its name says);
this only refuses a name that is no accepted format and states the limits of an upload.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from fastapi import Request, Response, UploadFile

from api.deps import audit_refusals_as
from api.limits import ARCHIVE_INFLATION
from spatial.access import Principal
from spatial.settings import Settings
from spatial.errors import GridgovError, InvalidInput, PreconditionRequired
from spatial.io.safe_files import UPLOAD_FORMATS, ReadLimits
from spatial.store import audit

UPLOAD_SUFFIXES = (".gpkg", ".geojson", ".json", ".zip")
R = TypeVar("R")


def upload_limits(settings: Settings) -> ReadLimits:
    """What an upload may hold: the upload formats, ``import_max_features`` per layer, and
    :data:`~api.limits.ARCHIVE_INFLATION` times the body limit unpacked from a zip."""
    return ReadLimits(formats=UPLOAD_FORMATS, max_features=settings.import_max_features,
                      max_unpacked_bytes=ARCHIVE_INFLATION * settings.max_body_bytes)


@contextmanager
def saved_upload(file: UploadFile, suffixes: tuple[str, ...] = UPLOAD_SUFFIXES) -> Iterator[Path]:
    """The upload copied to a private temporary folder as ``upload<suffix>`` (removed afterwards); InvalidInput
    for a name whose suffix is not one of ``suffixes`` (default .gpkg, .geojson/.json or .zip of a shapefile)."""
    suffix = Path(file.filename or "").suffix.lower()
    if suffix not in suffixes:
        raise InvalidInput(f"upload a file ending in {', '.join(suffixes)}, not {file.filename!r}")
    with tempfile.TemporaryDirectory(prefix="gridgov-import-") as folder:
        path = Path(folder) / f"upload{suffix}"
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out)
        yield path


def upload_name(file: UploadFile) -> str:
    """How reports and origins name an upload: the sender's file name without folders, at most 200 characters."""
    return Path(file.filename or "upload").name[:200] or "upload"


@dataclass(frozen=True)
class UploadImport(Generic[R]):
    """One kind of upload import, for :func:`run_upload`. ``check(path)`` runs the import without writing (the
    dry run) and ``write(path)`` writes it, both returning the importer's report ``R``; ``body`` shapes a report
    as the answer; ``refusal`` is the error saying why nothing may be written (None: it may; the report is added to
    its body); ``result`` is the audit's line for
    a written import; ``basis`` the ETag of what a report was checked against (None: no basis) and
    ``require_basis(report, if_match)`` raises StaleEdit when it changed. ``authorize`` raises Forbidden for a
    caller who may not import this."""

    kind: str
    authorize: Callable[[Principal], None]
    check: Callable[[Path], R]
    write: Callable[[Path], R]
    body: Callable[[R], dict[str, Any]]
    refusal: Callable[[R], GridgovError | None]
    result: Callable[[R], str]
    basis: Callable[[R], str | None] = lambda report: None
    require_basis: Callable[[R, str], None] | None = None
    suffixes: tuple[str, ...] = UPLOAD_SUFFIXES
    if_match_required: bool = False


def run_upload(request: Request, session, who: Principal, response: Response, file: UploadFile, job: UploadImport,
               *, reason: str | None, dry_run: bool, if_match: str | None) -> dict[str, Any]:
    """An upload import, as every import endpoint runs it: audited (refusals too, as action ``import``), the
    caller authorised, the file saved privately and checked (the dry run); for the import, ``If-Match`` compared
    with the basis of what the check saw (412 if it changed; 428 without one when ``job.if_match_required``), then
    written unless the check refuses it. The answer is the report with its ``basis`` (also the ETag); a refusal
    is a 422 whose body carries the report (nothing written)."""
    audit_refusals_as(request, "import", object_type=job.kind, object_id=file.filename, purpose=reason)
    job.authorize(who)
    if not dry_run and not if_match and job.if_match_required:
        raise PreconditionRequired("check the file first (dry run) and send its basis as If-Match with the import, "
                                   "so that what is written is what the report showed", code="import.basis_required")
    with saved_upload(file, job.suffixes) as path:
        report = job.check(path)
        if not dry_run and if_match and job.require_basis is not None:
            job.require_basis(report, if_match)
        refusal = job.refusal(report)
        if not dry_run and refusal is None:
            report = job.write(path)
    body = job.body(report)
    basis = job.basis(report)
    if basis is not None:
        body["basis"] = response.headers["ETag"] = basis
    if refusal is not None:
        refusal.detail["report"] = body
        raise refusal
    audit.record(session, who, "import", object_type=job.kind, object_id=file.filename, purpose=reason,
                 result="checked" if dry_run else job.result(report))
    return body
