"""The one table that maps domain errors to HTTP statuses, and the handlers that apply it.

Every error body is ``{"error": <kind>, "code": <entry of spatial.messages>, "detail": <message for a person>,
...structured extras}`` (the extras fill the code's placeholders; pages show the catalogue's Chinese or English text
from ``GET /api/messages``, API clients may use ``detail``), FastAPI's
request validation (422, with the list in ``errors``) and Starlette's own 404/405 included; :data:`RESPONSES`
declares it on every operation of the OpenAPI document. A value PostgreSQL refuses (NUL byte, number out of
range) is the input's fault: 422; a change it refuses (duplicate key...) is a 409. Either answers a message chosen
by SQLSTATE (:data:`DATA_MESSAGES`, :data:`INTEGRITY_MESSAGES`) and the SQLSTATE, never PostgreSQL's own text,
which names tables and constraints and echoes values (it is logged). A 500 is always a bug; database outages
are 503 with ``Retry-After`` so clients back off and retry.
"""

from __future__ import annotations

import logging
import math
import re
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from spatial import errors
from spatial.messages import MESSAGES

log = logging.getLogger("gridgov.api")

STATUS = {
    errors.UnknownCRS: 400,
    errors.InvalidInput: 422,
    errors.NotAuthenticated: 401,
    errors.Forbidden: 403,
    errors.OutOfScope: 404,  # answered as NotFound (KIND_SHOWN): whether the object exists stays unsaid
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.StaleEdit: 412,
    errors.PreconditionRequired: 428,
    errors.PayloadTooLarge: 413,
    errors.TooManyRequests: 429,
    errors.DatabaseUnavailable: 503,
    errors.SetupError: 503,
    errors.UpstreamFailed: 502,
    errors.UpstreamTimeout: 504,
}
RETRY_AFTER_S = "5"
KIND_SHOWN = {errors.OutOfScope: "NotFound"}
"""The ``error`` kind a client sees, where it is not the class name."""


_ISSUE = {"type": "object", "required": ["loc", "msg", "type"], "properties": {
    "loc": {"type": "array", "items": {"type": "string"}, "description": "where: body, query, path or header, "
                                                                         "then the member's path"},
    "msg": {"type": "string", "description": "what is wrong (English)"},
    "type": {"type": "string", "description": "pydantic's error type, e.g. string_too_long"}}}


class ErrorBody(BaseModel):
    """The body of every error response (4xx and 503)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": True})
    error: str = Field(description="kind of error, e.g. InvalidInput, NotFound, StaleEdit")
    code: str = Field(description="stable message code: its Chinese and English texts are GET /api/messages, with "
                                  "{placeholders} filled from the other fields of this body; the kind where the "
                                  "error has no code of its own")
    detail: str = Field(description="what is wrong, for a person (English)")
    field: str = Field(default=None, description="invalid input: the parameter or body member at fault (the last "
                                                 "part of its location); absent where no one value is")
    errors: list[dict[str, Any]] = Field(default=None, description="request validation (422): every problem found",
                                         json_schema_extra={"items": _ISSUE})


_ERROR_JSON = {"application/json": {"schema": ErrorBody.model_json_schema()}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"content": _ERROR_JSON,
            "description": "the request cannot be served as sent (the body says why); 422 for invalid input also "
                           "lists `errors` by location"},
    503: {"content": _ERROR_JSON, "description": "the database is unreachable; retry after `Retry-After` seconds",
          "headers": {"Retry-After": {"description": "seconds", "schema": {"type": "string"}}}},
}
"""Declared on every operation (by the app factory), so the OpenAPI document states what errors look like."""


def status_of(exc: errors.GridgovError) -> int:
    """The status of the most specific class of ``exc`` listed in :data:`STATUS`."""
    return next(STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS)


def _json_safe(value: Any) -> Any:
    """``value`` with NaN and ±infinity (which JSON cannot carry) as strings: an error about a NaN sent
    by a client must not fail to render."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def error_response(status: int, kind: str, message: str, *, challenge: str = "Bearer", code: str | None = None,
                   **extra) -> JSONResponse:
    """The error body; ``code`` its message code (default: ``kind``); a 401 challenges with ``challenge``
    (``WWW-Authenticate``)."""
    headers = {"Retry-After": RETRY_AFTER_S} if status == 503 else {}
    if "retry_after_s" in extra:
        headers["Retry-After"] = str(extra["retry_after_s"])
    if status == 401:
        headers["WWW-Authenticate"] = challenge
    body = {"error": kind, "code": code or kind, "detail": message, **extra}
    return JSONResponse(_json_safe(body), status_code=status, headers=headers)


async def _domain(request: Request, exc: errors.GridgovError) -> JSONResponse:
    """A domain error's answer. A 401 of an endpoint that takes HTTP Basic (``request.state.challenge``, set by
    ``api.deps.TokenBasic``) challenges with Basic, so that GIS clients send their credentials."""
    return error_response(status_of(exc), KIND_SHOWN.get(type(exc), type(exc).__name__), exc.message,
                          challenge=getattr(request.state, "challenge", "Bearer"), code=exc.code, **exc.detail)


# What a planner is told when PostgreSQL refuses a value or a change, by SQLSTATE: PostgreSQL's own message names
# tables, constraints and types, and echoes the value; it is logged (gridgov.api, INFO) instead.
INTEGRITY_MESSAGES = {
    "23505": "this would duplicate a record that already exists (the same code, name or key): choose another",
    "23503": "this refers to a record that does not exist, or removes one that others still refer to",
    "23502": "a required value is missing",
    "23514": "a value is outside what is allowed here",
    "23P01": "this overlaps or collides with a record that already exists",
}
DATA_MESSAGES = {
    "22003": "a number is out of the range that can be stored",
    "22P02": "a value is not of the expected type (for example text where a number is expected)",
    "22007": "a date or time is not valid", "22008": "a date or time is out of range",
    "22001": "a text is longer than can be stored",
    "22021": "a text holds a character that cannot be stored",
    "22012": "a value leads to a division by zero",
}
NUL_MESSAGE = "a text contains a NUL (0x00) character, which cannot be stored"


def _refused_by_database(exc: DBAPIError, table: dict[str, str], default: str) -> tuple[str, str | None]:
    """(message for the client, SQLSTATE) of a value or change PostgreSQL refused; the raw message is logged."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    raw = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    log.info("database refused the request (SQLSTATE %s): %s", sqlstate, raw)
    if sqlstate is None and "NUL" in raw:  # psycopg's own refusal, before the server sees the value
        return NUL_MESSAGE, None
    return table.get(sqlstate or "", default), sqlstate


async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
    message, sqlstate = _refused_by_database(exc, INTEGRITY_MESSAGES, "the change conflicts with stored data")
    return error_response(409, "Conflict", message + "; nothing was changed", sqlstate=sqlstate)


def _location(loc: tuple) -> str:
    return ".".join(str(part) for part in loc)


async def _request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's parameter and body validation, as an InvalidInput: ``detail`` a sentence, ``errors`` the list.

    A request for a concrete path (/api/divisions/import) that only reached a templated route of another method
    (PATCH /api/divisions/{code}) because of the method is a 405 with ``Allow``, not a complaint about the
    path parameter."""
    concrete = _concrete_methods(request)
    if concrete and request.method not in concrete:
        response = error_response(405, "MethodNotAllowed", f"{request.method} is not allowed here; use "
                                  + ", ".join(sorted(concrete)))
        response.headers["Allow"] = ", ".join(allowed_methods(request))
        return response
    found = exc.errors()
    issues = [{"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", "")),
               "type": str(e.get("type", ""))} for e in found]  # not "input": it may be huge, personal or NaN
    message = "; ".join(f"{_location(e.get('loc', ()))}: {e.get('msg', '')}" for e in found[:5])
    return error_response(422, "InvalidInput", message or "invalid request", errors=issues,
                          **_validation_code(found[0] if found else {}))


VALIDATION_CONTEXT = ("ge", "gt", "le", "lt", "max_length", "min_length", "expected", "pattern")
"""The fields of pydantic's error context that the catalogue's validation texts name."""


def _validation_code(first: dict) -> dict[str, Any]:
    """``code`` (``validation.<pydantic type>`` when the catalogue has it) and the fields its text needs: the
    offending parameter or body field's name (``field``) and its limits from pydantic's context."""
    code = f"validation.{first.get('type', '')}"
    if code not in MESSAGES:
        return {}
    loc = [str(part) for part in first.get("loc", ()) if not isinstance(part, int)]
    ctx = first.get("ctx") or {}
    return {"code": code, "field": loc[-1] if loc else "", **{k: f"{ctx[k]:g}" if isinstance(ctx[k], float) else str(ctx[k])
                                                      for k in VALIDATION_CONTEXT if k in ctx}}


_HTTP_KINDS = {400: "InvalidInput", 401: "NotAuthenticated", 403: "Forbidden", 404: "NotFound",
               405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict", 413: "PayloadTooLarge",
               415: "UnsupportedMediaType", 422: "InvalidInput"}


_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _path_methods(app: FastAPI) -> list[tuple[re.Pattern, bool, frozenset[str]]]:
    """(regular expression, is a concrete path, methods) of every path of the app's OpenAPI document."""
    table = []
    for path, item in app.openapi()["paths"].items():
        parts = re.split(r"(\{[^/}]+\})", path)
        regex = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
        methods = frozenset(m.upper() for m in item if m in _HTTP_METHODS)
        table.append((re.compile(regex + "$"), "{" not in path, methods))
    return table


def allowed_methods(request: Request) -> list[str]:
    """The methods the OpenAPI document gives the request's path (HEAD with GET), sorted; a concrete path
    (/api/grids/merge) is matched before templated ones (/api/grids/{code}), as OpenAPI says. Starlette's own
    405 names only the methods of the first route matching the path, while a path such as /api/grids/{code}
    has a route per method. Empty for a path the document does not describe."""
    app = request.app
    table = getattr(app.state, "path_methods", None)
    if table is None:
        table = app.state.path_methods = _path_methods(app)
    matches = [(concrete, methods) for regex, concrete, methods in table if regex.match(request.url.path)]
    chosen = [methods for concrete, methods in matches if concrete] or [methods for _, methods in matches]
    found = set().union(*chosen)
    if "GET" in found:
        found.add("HEAD")
    return sorted(found)


def _concrete_methods(request: Request) -> set[str]:
    """The methods of the concrete (parameter-free) OpenAPI path equal to the request's path, if there is one."""
    allowed_methods(request)  # builds the table
    found = [methods for regex, concrete, methods in request.app.state.path_methods
             if concrete and regex.match(request.url.path)]
    return set().union(*found) if found else set()


async def _http(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own errors (unknown path 404, method 405 with every method of the path in ``Allow``, as RFC
    9110 asks) and HTTPException raised by routers."""
    if exc.status_code < 400:
        return Response(status_code=exc.status_code, headers=exc.headers)
    response = error_response(exc.status_code, _HTTP_KINDS.get(exc.status_code, "HTTPError"), str(exc.detail))
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:
        response.headers["Allow"] = ", ".join(allowed_methods(request)) or response.headers.get("Allow", "")
    return response


async def _data(_: Request, exc: DataError) -> JSONResponse:
    """PostgreSQL refused a value (NUL byte in text, integer out of range, invalid date...): the input's fault."""
    message, sqlstate = _refused_by_database(exc, DATA_MESSAGES, "a value sent is not valid here")
    return error_response(422, "InvalidInput", f"a value cannot be stored or compared: {message}; check the values "
                          "sent", sqlstate=sqlstate)


# SQLSTATE classes of an outage: connection exception, insufficient resources, operator intervention
# (shutdown, statement timeout). Other OperationalErrors (e.g. 54000 program limit exceeded) are bugs.
OUTAGE_SQLSTATE_CLASSES = ("08", "53", "57")


def is_outage(exc: DBAPIError) -> bool:
    """Whether the database is unreachable or refusing work (503, retry), rather than refusing this query."""
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate == "40001" and "conflict with recovery" in str(exc.orig):
        return True  # a read replica cancelled the statement to replay the primary's changes: retry
    return isinstance(exc, OperationalError) and (sqlstate is None or sqlstate[:2] in OUTAGE_SQLSTATE_CLASSES)


class _Throttled:
    """Log a repeated warning at most once per ``every_s`` seconds, with how many were held back (an outage
    answers thousands of requests 503 a minute; one line each would bury the log)."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self.last = float("-inf")
        self.held = 0

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self.last < self.every_s:
            self.held += 1
            return
        suffix = f" ({self.held} more like it not logged)" if self.held else ""
        self.last, self.held = now, 0
        log.warning(message + suffix, *args)


_outage_log = _Throttled()


async def _database(_: Request, exc: DBAPIError) -> JSONResponse:
    if is_outage(exc):
        _outage_log.warning("database unavailable: %s", str(exc.orig).strip().splitlines()[0] if exc.orig else exc)
        return error_response(503, "DatabaseUnavailable", "the database is not reachable; retry shortly")
    log.exception("database error")
    return error_response(500, "InternalError", "unexpected database error (this is a bug; it was logged)")


async def _pool_timeout(_: Request, exc: PoolTimeout) -> JSONResponse:
    """No pooled connection came free within the pool's timeout (overload, or connections stuck while the server
    is unreachable): the client should back off and retry, as for an outage."""
    _outage_log.warning("database connection pool exhausted: %s", exc)
    return error_response(503, "DatabaseUnavailable", "the service is busy (no database connection free); retry shortly")


def _rendered(handler):
    """``handler``, whose error answer the route may render in a format of its own: ``request.state.render_error``
    (set by the route before its endpoint runs), a function of the request and this module's JSON answer
    returning the response to send (e.g. Open311's error list, :mod:`api.routers.open311`). Status, message,
    rollback and audit stay this module's."""
    async def handle(request: Request, exc: Exception) -> Response:
        answer = await handler(request, exc)
        render = getattr(request.state, "render_error", None)
        return render(request, answer) if render is not None and answer.status_code >= 400 else answer

    return handle


def install(app: FastAPI) -> None:
    for kind, handler in ((errors.GridgovError, _domain), (IntegrityError, _integrity), (DataError, _data),
                          (RequestValidationError, _request_validation), (HTTPException, _http),
                          (DBAPIError, _database), (PoolTimeout, _pool_timeout)):
        app.add_exception_handler(kind, _rendered(handler))
