"""OGC API – Features (Part 1 core + GeoJSON, Part 2 CRS, Part 3 filtering with CQL2 text) under ``/ogc``.

For QGIS ("WFS / OGC API – Features" connection) and GDAL (``ogrinfo OAPIF:http://host/ogc``). The landing
page, conformance and API definition are public; collections and features need a bearer token (a header), or
HTTP Basic with a personal access token as the password for clients that cannot send headers, such as QGIS 3.22
(docs/decisions/0006-maps-for-everyone.md, 0012-access-tokens.md). Invalid parameters are 400
with a message, unknown collections and features 404. Features are read from a read replica when one is
configured (``ReadSessionDep``, docs/decisions/0022-read-replicas.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from api.deps import ReaderUser, ReadSessionDep, SettingsDep, public_url, this_url
from api.ogc import documents
from api.geojson import BBOX_PATTERN, CrsName, FastJSONResponse
from api.ogc.crs import ogc_crs
from spatial import cql2
from spatial.errors import InvalidInput, UnknownCRS
from spatial.store import features as store
from spatial.store.layers import LAYERS, layer

router = APIRouter(prefix="/ogc", tags=["OGC API – Features"])
PREFIX = "/ogc"
DEFAULT_LIMIT = 100

CollectionId = Annotated[str, Path(description="collection id, e.g. grids, buildings")]
Crs = Annotated[CrsName | None, Query(description="output CRS URI (default CRS84; EPSG/0/4490 is CGCS2000)")]
_INSTANT = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"},
                      {"type": "null"}]}  # stated only: _instant refuses the rest with its own message (400)
InstantQ = Annotated[str | None, Query(alias="datetime", description="instant (grids): an RFC 3339 date-time, or a "
                                                                    "date (00:00 UTC)", json_schema_extra=_INSTANT)]


@contextmanager
def _bad_request() -> Iterator[None]:
    """Invalid parameters are 400 in OGC API (the rest of gridgov says 422 for invalid input)."""
    try:
        yield
    except UnknownCRS:
        raise
    except InvalidInput as exc:
        raise HTTPException(400, detail=exc.message) from exc


class GeoJSONResponse(FastJSONResponse):
    """Declares application/geo+json as the media type of features in the OpenAPI document."""

    media_type = documents.GEOJSON


class OpenAPIResponse(JSONResponse):
    """The media type OGC API – Features gives its API definition."""

    media_type = documents.OPENAPI


# The schema documents are application/json unless the client asks for application/schema+json.
SCHEMA_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": {documents.SCHEMA: {"schema": {}}}}}


def _base(request: Request) -> str:
    return public_url(request, PREFIX)


def _json(content: Any, media_type: str = documents.JSON, **headers: str) -> FastJSONResponse:
    return FastJSONResponse(content, media_type=media_type, headers=headers or None)


@router.get("", summary="Landing page")
def landing_page(request: Request) -> JSONResponse:
    return _json(documents.landing(_base(request)))


@router.get("/conformance", summary="Conformance classes")
def conformance() -> JSONResponse:
    return _json({"conformsTo": documents.CONFORMANCE})


@router.get("/api", summary="API definition (OpenAPI)", response_class=OpenAPIResponse)
def api_definition(request: Request) -> JSONResponse:
    doc = getattr(request.app.state, "ogc_openapi", None)
    if doc is None:
        doc = get_openapi(title="gridgov OGC API – Features", version="1.0.0", routes=router.routes,
                          description=__doc__)
        doc["paths"] = {(path[len(PREFIX):] or "/"): item for path, item in doc["paths"].items()}
        request.app.state.ogc_openapi = doc
    return _json({**doc, "servers": [{"url": _base(request)}]}, documents.OPENAPI)


@router.get("/collections", summary="The collections")
def collections(request: Request, session: ReadSessionDep, _: ReaderUser) -> JSONResponse:
    base = _base(request)
    return _json({"links": [documents.link(f"{base}/collections", "self", documents.JSON)],
                  "collections": [_collection(session, base, name) for name in LAYERS]})


def _collection(session, base: str, name: str) -> dict:
    spec = layer(name)
    return documents.collection(base, name, spec, store.extent(session, name), store.time_extent(session, name))


@router.get("/collections/{collectionId}", summary="One collection")
def collection(collectionId: CollectionId, request: Request, session: ReadSessionDep, _: ReaderUser) -> JSONResponse:
    return _json(_collection(session, _base(request), collectionId))


@router.get("/collections/{collectionId}/queryables", summary="What a filter may name", responses=SCHEMA_RESPONSES)
def queryables(collectionId: CollectionId, request: Request, session: ReadSessionDep, _: ReaderUser) -> JSONResponse:
    spec = layer(collectionId)
    return _json(documents.queryables(_base(request), collectionId, spec, store.column_kinds(session, collectionId)),
                 _schema_type(request))


@router.get("/collections/{collectionId}/schema", summary="Schema of the features", responses=SCHEMA_RESPONSES)
def schema(collectionId: CollectionId, request: Request, session: ReadSessionDep, _: ReaderUser) -> JSONResponse:
    spec = layer(collectionId)
    return _json(documents.feature_schema(_base(request), collectionId, spec,
                                          store.column_kinds(session, collectionId)), _schema_type(request))


def _schema_type(request: Request) -> str:
    """application/schema+json when the client asks for it, else application/json (GDAL 3.6 accepts only that)."""
    return documents.SCHEMA if documents.SCHEMA in request.headers.get("accept", "") else documents.JSON


def _instant(value: str | None, collectionId: str) -> datetime | None:
    """An RFC 3339 instant or a date (00:00 UTC); intervals are refused with a message."""
    if value is None or value == "":
        return None
    if "/" in value:
        raise InvalidInput(f"datetime {value!r}: collection {collectionId} takes one instant (the plan in force "
                           "then), e.g. datetime=2026-01-01T00:00:00Z")
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"datetime {value!r} is not an RFC 3339 instant such as 2026-01-01T00:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _filter(text: str | None, filter_crs: str | None):
    if text is None or text.strip() == "":
        return None
    crs = ogc_crs(filter_crs)
    return cql2.map_geometries(cql2.parse(text), crs.to_wgs84)


@router.get("/collections/{collectionId}/items", summary="Features of a collection",
            response_class=GeoJSONResponse)
def items(collectionId: CollectionId, request: Request, session: ReadSessionDep, settings: SettingsDep, who: ReaderUser,
          limit: Annotated[int, Query(ge=1, le=store.MAX_LIMIT, description="features per page")] = DEFAULT_LIMIT,
          offset: Annotated[int, Query(ge=0, le=100_000_000, description="features to skip (follow the next link)")] = 0,
          bbox: Annotated[str | None, Query(description="minx,miny,maxx,maxy in bbox-crs",
                                            json_schema_extra={"pattern": BBOX_PATTERN})] = None,
          bbox_crs: Annotated[CrsName | None, Query(alias="bbox-crs")] = None,
          crs: Crs = None,
          datetime_: InstantQ = None,
          filter_: Annotated[str | None, Query(alias="filter", description="CQL2 text")] = None,
          filter_lang: Annotated[Literal["cql2-text", "cql-text"], Query(alias="filter-lang")] = "cql2-text",
          filter_crs: Annotated[CrsName | None, Query(alias="filter-crs")] = None) -> JSONResponse:
    layer(collectionId)
    out = ogc_crs(crs)
    with _bad_request():
        box = ogc_crs(bbox_crs).bbox(bbox) if bbox else None
        page = store.read_items(session, collectionId, scope=who.household_scope, bbox=box,
                                filter=_filter(filter_, filter_crs),
                                at=_instant(datetime_, collectionId), limit=limit, offset=offset,
                                metric_srid=settings.metric_srid)
    links = [documents.link(this_url(request), "self", documents.GEOJSON)]
    if page.has_more:
        following = request.url.include_query_params(offset=offset + limit, limit=limit)
        links.append(documents.link(this_url(request, following), "next", documents.GEOJSON, "next page"))
    if offset > 0:
        preceding = request.url.include_query_params(offset=max(0, offset - limit), limit=limit)
        links.append(documents.link(this_url(request, preceding), "prev", documents.GEOJSON, "previous page"))
    links.append(documents.link(f"{_base(request)}/collections/{collectionId}", "collection", documents.JSON))
    body = documents.feature_collection(page.features, out, matched=page.matched, links=links)
    return _json(body, documents.GEOJSON, **{"Content-Crs": f"<{out.uri}>"})


@router.get("/collections/{collectionId}/items/{featureId}", summary="One feature",
            response_class=GeoJSONResponse)
def item(collectionId: CollectionId, featureId: str, request: Request, session: ReadSessionDep, settings: SettingsDep,
         who: ReaderUser, crs: Crs = None,
         datetime_: InstantQ = None) -> JSONResponse:
    layer(collectionId)
    out = ogc_crs(crs)
    with _bad_request():
        at = _instant(datetime_, collectionId)
    found = store.read_item(session, collectionId, featureId, scope=who.household_scope, at=at,
                            metric_srid=settings.metric_srid)
    return _json(documents.feature(found, out, _base(request), collectionId), documents.GEOJSON,
                 **{"Content-Crs": f"<{out.uri}>"})
