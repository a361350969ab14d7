"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2) over cases, so that Open311 clients and dashboards
work with gridgov: services are the case categories, service requests the cases, ``service_request_id`` the
tracking code. Answers are :mod:`api.presenters.open311`; the rules are :mod:`spatial.store.cases`.

No account and no API key: residents post as on ``POST /api/public/cases``, under the same rate limit
(``api_key`` and ``jurisdiction_id`` are accepted and ignored). A request needs ``lat`` and ``long`` (WGS 84):
an ``address_string`` alone is refused (400), gridgov does not geocode. ``email`` and a posted ``media_url`` are
not stored as such: a media URL is appended to the description, for the dispatchers (gridgov never fetches it).
A request's ``media_url`` is the first photo staff took while handling the case (``/api/public/media/…``); a
resident's photo is never published.

Errors are Open311's (``[{"code": 400, "description": "…"}]``, ``<errors><error>…``) in the format the path asks
for: the application's error handlers decide status and message (and roll back, and audit) as everywhere, and
this router's route class renders their answer; a refused request is 400 (not 422), an unknown service code
or request 404, too many reports 429 with ``Retry-After``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from api.deps import SessionDep, client_address, public_url
from api.presenters import open311 as present
from api.types import Instant
from spatial.errors import InvalidInput, NotFound
from spatial.store import cases as store

Format = Literal["json", "xml"]
FormatPath = Annotated[Format, Path(description="json or xml")]
Jurisdiction = Annotated[str | None, Query(max_length=200, description="ignored: one jurisdiction")]
CHINESE_PHONE = r"^(\+?86[- ]?)?(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$"
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)


def _render(fmt: str, root: str, value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    if fmt == "xml":
        return Response(present.xml(root, value), status_code=status, media_type=present.FORMATS["xml"],
                        headers=headers)
    return JSONResponse(present.plain(value), status_code=status, headers=headers)


def _as_open311(request: Request, answer: Response) -> Response:
    """An error answer of the application's handlers (``{"error", "detail"}``) as Open311's error list, 400 for
    invalid input (Open311 has no 422); ``Retry-After`` kept."""
    try:
        detail = str(json.loads(answer.body).get("detail", ""))
    except (ValueError, AttributeError):
        detail = answer.body.decode("utf-8", "replace")[:500] if answer.body else ""
    status = 400 if answer.status_code == 422 else answer.status_code
    headers = {k: v for k, v in answer.headers.items() if k.lower() in ("retry-after", "allow")}
    fmt = request.path_params.get("format")
    return _render(fmt if fmt in present.FORMATS else "json", "errors",
                   [present.Open311Error(code=status, description=detail or "error")], status, headers)


class Open311Route(APIRoute):
    """A route whose errors go out as Open311 errors: the application's handlers answer as everywhere (status,
    message, rollback, audit) and render through :func:`_as_open311` (``request.state.render_error``)."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            request.state.render_error = _as_open311
            return await handler(request)

        return route


_XML = {"content": {"application/xml": {"schema": {"type": "string", "description": "the same tree as XML"}}}}
_ERRORS = {"content": {"application/json": {"schema": {"type": "array", "items":
                                                        present.Open311Error.model_json_schema()}},
                       "application/xml": {"schema": {"type": "string"}}},
           "description": "Open311 errors: 400 invalid request, 404 unknown service or request, 429 too many "
                          "reports (Retry-After)"}
router = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"], route_class=Open311Route,
                   responses={"4XX": _ERRORS, 503: {**_ERRORS, "description": "the database is unreachable"}})


@router.get("/discovery.{format}", response_model=present.Discovery, responses={200: _XML},
            summary="Open311 discovery")
def discovery(format: FormatPath, request: Request) -> Response:
    endpoint = present.Endpoint(specification=present.SPECIFICATION, url=public_url(request, "/open311/v2"),
                                changeset=present.CHANGESET, type="production",
                                formats=list(present.FORMATS.values()))
    return _render(format, "discovery", present.Discovery(
        changeset=present.CHANGESET, contact="所在社区工作站 (the community office)",
        key_service="No key needed: post without an account (at most 10 reports an hour from one address)",
        endpoints=[endpoint]))


@router.get("/services.{format}", response_model=list[present.Service], responses={200: _XML},
            summary="Open311 services: the case categories")
def services(format: FormatPath, session: SessionDep,
             jurisdiction_id: Jurisdiction = None) -> Response:
    found = store.categories(session)
    names = {c.code: c.name for c in found}
    return _render(format, "services", [present.service(c, names.get(c.parent_code or "")) for c in found])


@router.get("/services/{service_code}.{format}", response_model=present.ServiceDefinition,
            responses={200: _XML}, summary="Open311 service definition (no attributes)")
def service_definition(service_code: Annotated[str, Path(max_length=64)], format: FormatPath,
                       session: SessionDep,
                       jurisdiction_id: Jurisdiction = None
                       ) -> Response:
    if service_code not in {c.code for c in store.categories(session)}:
        raise NotFound(f"no service has the code {service_code!r}: see services.{format}")
    return _render(format, "service_definition", present.ServiceDefinition(service_code=service_code, attributes=[]))


@router.post("/requests.{format}", status_code=201, response_model=list[present.Created],
             responses={201: _XML}, summary="Open311: post a service request (居民上报)",
             description="Form-encoded. No account needed; at most 10 reports an hour from one client address and "
                         "5 under one phone number (429 beyond). lat and long (WGS 84) are required: an "
                         "address_string alone is refused (400).")
def post_request(  # optional members are typed without None: a form has no null, the schema offers none
        format: FormatPath, request: Request, session: SessionDep,
        service_code: Annotated[str, Form(min_length=1, max_length=64)],
        lat: Annotated[float, Form(ge=-90, le=90, description="WGS 84")] = None,
        long: Annotated[float, Form(ge=-180, le=180, description="WGS 84")] = None,
        address_string: Annotated[str, Form(max_length=500)] = None,
        address_id: Annotated[str, Form(max_length=200, description="ignored")] = None,
        description: Annotated[str, Form(max_length=1800, description="default: the service's name")] = None,
        first_name: Annotated[str, Form(max_length=20)] = None,
        last_name: Annotated[str, Form(max_length=20)] = None,
        phone: Annotated[str, Form(pattern=CHINESE_PHONE, description="mainland mobile or landline")] = None,
        email: Annotated[str, Form(max_length=254, description="not stored")] = None,
        device_id: Annotated[str, Form(max_length=200, description="ignored")] = None,
        account_id: Annotated[str, Form(max_length=200, description="ignored")] = None,
        media_url: Annotated[str, Form(max_length=150, pattern=r"^https?://\S+$")] = None,
        api_key: Annotated[str, Form(max_length=200, description="ignored: no key needed")] = None,
        jurisdiction_id: Annotated[str, Form(max_length=200, description="ignored")] = None) -> Response:
    if lat is None or long is None:
        raise InvalidInput("a location is required: send lat and long (WGS 84)"
                           + ("; an address_string alone cannot be placed, gridgov does not geocode addresses"
                              if address_string else ""), field="lat")
    category = next((c for c in store.categories(session) if c.code == service_code), None)
    if category is None:
        raise NotFound(f"no service has the code {service_code!r}: see services.{format}")
    phone = phone and phone.removeprefix("+").removeprefix("86").lstrip("- ")
    store.require_report_allowance(session, address=client_address(request), phone=phone)
    text = (description or "").strip() or category.name
    if media_url:
        text += f"\n[media_url] {media_url}"
    name = _name(first_name, last_name)
    view = store.report_case(session, None, category=service_code, lon=long, lat=lat, description=text,
                             reporter_kind="resident", reporter_name=name, reporter_phone=phone,
                             client_addr=client_address(request))
    case = store.public_cases(session, tracking_codes=[view.tracking_code])[0]
    return _render(format, "service_requests",
                   [present.Created(service_request_id=case.tracking_code, service_notice=present.notice(case))], 201)


@router.get("/requests.{format}", response_model=list[present.ServiceRequest],
            responses={200: _XML}, summary="Open311: service requests (public view)",
            description="Newest first, at most 1000. Without dates: the last 90 days. service_request_id (tracking "
                        "codes) overrides every other filter. No personal data.")
def get_requests(
        format: FormatPath, request: Request, session: SessionDep,
        service_request_id: Annotated[str | None, Query(max_length=2200, description="comma-separated")] = None,
        service_code: Annotated[str | None, Query(max_length=2000, description="comma-separated")] = None,
        start_date: Annotated[Instant | None, Query()] = None,
        end_date: Annotated[Instant | None, Query()] = None,
        status: Annotated[str | None, Query(pattern=r"^(open|closed)(,(open|closed))*$")] = None,
        jurisdiction_id: Jurisdiction = None) -> Response:
    statuses = set(status.split(",")) if status else {"open", "closed"}
    found = store.public_cases(
        session, tracking_codes=_list(service_request_id), category_codes=_list(service_code),
        start=_instant(start_date), end=_instant(end_date),
        closed=None if len(statuses) == 2 else statuses == {"closed"})
    return _render(format, "service_requests", [present.service_request(c, str(request.base_url)) for c in found])


@router.get("/requests/{service_request_id}.{format}", response_model=list[present.ServiceRequest],
            responses={200: _XML}, summary="Open311: one service request")
def get_request(service_request_id: Annotated[str, Path(max_length=64)], format: FormatPath,
                request: Request, session: SessionDep,
                jurisdiction_id: Jurisdiction = None
                ) -> Response:
    found = store.public_cases(session, tracking_codes=[service_request_id])
    if not found:
        raise NotFound("no request has this id: check it (10 letters and digits, no 0, O, 1 or I)")
    return _render(format, "service_requests", [present.service_request(found[0], str(request.base_url))])


def _list(value: str | None) -> list[str] | None:
    items = [item.strip() for item in (value or "").split(",") if item.strip()]
    return items or None


def _instant(value: datetime | None) -> datetime | None:
    """``value`` (aware) held between 2000 and 2200, where every case lies, in UTC."""
    if value is None:
        return None
    try:
        value = value.astimezone(timezone.utc)
    except OverflowError:  # year 1 or 9999 pushed over the edge by its offset
        return EARLIEST if value.year < 5000 else LATEST
    return min(max(value, EARLIEST), LATEST)


def _name(first: str | None, last: str | None) -> str | None:
    """The reporter's name: family name first without a space for Chinese names (张 + 三 = 张三), "first last"
    otherwise; None when neither is given."""
    first, last = (first or "").strip(), (last or "").strip()
    if not (first or last):
        return None
    if any("\u4e00" <= ch <= "\u9fff" for ch in first + last):
        return last + first
    return " ".join(part for part in (first, last) if part)
