"""The one table that maps domain errors to HTTP statuses, and the handlers that apply it.

Every error body is ``{"error": <kind>, "detail": <message for a person>, ...structured extras}``.
A 500 is always a bug; database outages are 503 with ``Retry-After`` so clients back off and retry.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from spatial import errors

log = logging.getLogger("gridgov.api")

STATUS = {
    errors.UnknownCRS: 400,
    errors.InvalidInput: 422,
    errors.NotAuthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.StaleEdit: 412,
    errors.PreconditionRequired: 428,
    errors.PayloadTooLarge: 413,
    errors.DatabaseUnavailable: 503,
    errors.SetupError: 503,
}
RETRY_AFTER_S = "5"


def status_of(exc: errors.GridgovError) -> int:
    """The status of the most specific class of ``exc`` listed in :data:`STATUS`."""
    return next(STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS)


def error_response(status: int, kind: str, message: str, **extra) -> JSONResponse:
    headers = {"Retry-After": RETRY_AFTER_S} if status == 503 else {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error": kind, "detail": message, **extra}, status_code=status, headers=headers)


async def _domain(_: Request, exc: errors.GridgovError) -> JSONResponse:
    return error_response(status_of(exc), type(exc).__name__, exc.message, **exc.detail)


async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
    diag = getattr(exc.orig, "diag", None)
    message = getattr(diag, "message_primary", None) or "the change conflicts with stored data"
    return error_response(409, "Conflict", message, constraint=getattr(diag, "constraint_name", None))


async def _database(_: Request, exc: DBAPIError) -> JSONResponse:
    if isinstance(exc, OperationalError) or exc.connection_invalidated:
        log.warning("database unavailable: %s", exc.orig)
        return error_response(503, "DatabaseUnavailable", "the database is not reachable; retry shortly")
    log.exception("database error")
    return error_response(500, "InternalError", "unexpected database error (this is a bug; it was logged)")


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.GridgovError, _domain)
    app.add_exception_handler(IntegrityError, _integrity)
    app.add_exception_handler(DBAPIError, _database)
