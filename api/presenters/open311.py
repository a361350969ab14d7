"""Open311 GeoReport v2 answers (http://wiki.open311.org/GeoReport_v2): services, service requests, errors, as
JSON or XML.

The JSON shapes are the response models below; the XML is the same tree, each list an element named as the
specification names it (``<services><service>…``, ``<service_requests><request>…``, ``<errors><error>…``),
``null`` an empty element, booleans ``true``/``false``. Datetimes are ISO 8601 in China Standard Time with their
offset (``2026-12-02T16:00:00+08:00``); positions WGS 84 (EPSG:4326, the same as CGCS2000 here), 7 decimals.

What a request shows is :class:`spatial.store.cases.PublicCase`: no description (a resident's text may name
people), no reporter, no assignee. ``status`` is ``closed`` for the two finished states (结案, 不予立案), ``open``
for the seven others; ``status_notes`` the Chinese label of the state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from xml.etree import ElementTree

from pydantic import BaseModel, Field

from spatial.store.cases import Category, PublicCase
from spatial.worktime import LOCAL

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = datetime(2026, 12, 2, tzinfo=LOCAL)  # when this implementation last changed what it answers
FORMATS = {"json": "application/json", "xml": "application/xml"}
ITEM_TAGS = {"services": "service", "service_requests": "request", "errors": "error", "endpoints": "endpoint",
             "formats": "format", "attributes": "attribute"}


class Service(BaseModel):
    service_code: str = Field(description="the case category's code, e.g. environment.garbage")
    service_name: str = Field(description="the category's Chinese name")
    description: str
    metadata: bool = Field(description="always false: a report needs no attribute beyond the standard ones")
    type: Literal["realtime"]
    keywords: str
    group: str = Field(description="the parent category's name (a top-level category's own)")


class ServiceDefinition(BaseModel):
    service_code: str
    attributes: list[dict[str, Any]] = Field(description="always empty")


class Endpoint(BaseModel):
    specification: str
    url: str
    changeset: datetime
    type: Literal["production"]
    formats: list[str]


class Discovery(BaseModel):
    changeset: datetime
    contact: str
    key_service: str
    endpoints: list[Endpoint]


class Created(BaseModel):
    service_request_id: str = Field(description="the tracking code (跟踪码), to follow the case")
    service_notice: str
    account_id: None = None


class ServiceRequest(BaseModel):
    service_request_id: str
    status: Literal["open", "closed"]
    status_notes: str = Field(description="the case's state, in Chinese (e.g. 处置中)")
    service_name: str
    service_code: str
    description: None = Field(None, description="never shown: a resident's text may name people")
    agency_responsible: str
    service_notice: str
    requested_datetime: datetime
    updated_datetime: datetime
    expected_datetime: datetime | None = Field(description="the running step's deadline (working time)")
    address: str | None = Field(description="community · grid")
    address_id: None = None
    zipcode: None = None
    lat: float
    long: float
    media_url: str | None = Field(None, description="the first photo staff took while handling the case (a "
                                                    "resident's photo is never published)")


class Open311Error(BaseModel):
    code: int = Field(description="the HTTP status")
    description: str


def instant(value: datetime | None) -> str | None:
    """ISO 8601 in China Standard Time, whole seconds, with the offset (+08:00)."""
    return None if value is None else value.astimezone(LOCAL).isoformat(timespec="seconds")


def service(category: Category, parent_name: str | None) -> Service:
    return Service(service_code=category.code, service_name=category.name,
                   description=f"{category.name_en} ({category.department})", metadata=False, type="realtime",
                   keywords=", ".join(dict.fromkeys([category.name, category.name_en, *category.code.split(".")])),
                   group=parent_name or category.name)


def notice(case: PublicCase) -> str:
    """What the reporter is told: who handles the case and how to follow it."""
    return (f"{case.department}负责办理。请保存跟踪码 {case.tracking_code} 查询进度 "
            f"(keep the tracking code to follow the case).")


MEDIA_PATH = "api/public/media/{key}.jpg"


def service_request(case: PublicCase, base_url: str = "/") -> ServiceRequest:
    """The Open311 view of ``case``; ``base_url`` (ending in '/') makes its ``media_url`` absolute."""
    return ServiceRequest(
        media_url=base_url + MEDIA_PATH.format(key=case.media_key) if case.media_key else None,
        service_request_id=case.tracking_code, status="closed" if case.closed else "open",
        status_notes=case.state_label, service_name=case.category, service_code=case.category_code,
        agency_responsible=case.department, service_notice=notice(case), requested_datetime=case.reported_at,
        updated_datetime=case.updated_at, expected_datetime=case.deadline, address=case.place,
        lat=round(case.lat, 7), long=round(case.lon, 7))


def plain(value: Any) -> Any:
    """``value`` (models, lists, dicts) as JSON-ready data, datetimes by :func:`instant`."""
    if isinstance(value, BaseModel):
        value = {name: getattr(value, name) for name in type(value).model_fields}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return instant(value)
    return value


def xml(root: str, value: Any) -> bytes:
    """The XML document ``<root>`` of :func:`plain` data: a dict's members are child elements, a list's items
    elements named by :data:`ITEM_TAGS` from the list's own name."""
    element = ElementTree.Element(root)
    _fill(element, plain(value))
    return ElementTree.tostring(element, encoding="utf-8", xml_declaration=True)


def _fill(element: ElementTree.Element, value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _fill(ElementTree.SubElement(element, key), item)
    elif isinstance(value, list):
        for item in value:
            _fill(ElementTree.SubElement(element, ITEM_TAGS.get(element.tag, "item")), item)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = str(value)
