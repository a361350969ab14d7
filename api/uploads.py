"""Uploaded GIS files on their way to an importer: the accepted names, the limits, a private temporary copy.

An importer vets the copy itself (:mod:`spatial.io.safe_files`: its content must be the format its name says);
this only refuses a name that is no accepted format and states the limits of an upload.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import UploadFile

from api.limits import ARCHIVE_INFLATION
from spatial.settings import Settings
from spatial.errors import InvalidInput
from spatial.io.safe_files import UPLOAD_FORMATS, ReadLimits

UPLOAD_SUFFIXES = (".gpkg", ".geojson", ".json", ".zip")


def upload_limits(settings: Settings) -> ReadLimits:
    """What an upload may hold: the upload formats, ``import_max_features`` per layer, and
    :data:`~api.limits.ARCHIVE_INFLATION` times the body limit unpacked from a zip."""
    return ReadLimits(formats=UPLOAD_FORMATS, max_features=settings.import_max_features,
                      max_unpacked_bytes=ARCHIVE_INFLATION * settings.max_body_bytes)


@contextmanager
def saved_upload(file: UploadFile) -> Iterator[Path]:
    """The upload copied to a private temporary folder as ``upload<suffix>`` (removed afterwards); InvalidInput
    for a name that is not .gpkg, .geojson/.json or .zip (of a shapefile)."""
    suffix = Path(file.filename or "").suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise InvalidInput(f"upload a .gpkg, .geojson or .zip (of a shapefile), not {file.filename!r}")
    with tempfile.TemporaryDirectory(prefix="gridgov-import-") as folder:
        path = Path(folder) / f"upload{suffix}"
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out)
        yield path
