"""Basemaps (底图): the list the map pages offer, administrators' changes, and the tile proxy.

Basemaps come from the settings (``GRIDGOV_BASEMAPS``, read-only here) and from the database (added by admins).
Every page loads tiles from ``/api/basemaps/{name}/tiles/{z}/{x}/{y}``: gridgov fetches them from the tile server,
filling ``{key}`` from the ``basemap_keys`` setting, so no key reaches a browser and the pages' images stay
same-origin under the Content-Security-Policy (docs/decisions/0013-basemaps.md). Listing and tiles: any logged-in
caller; adding, changing and deleting: admins.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

import shapely
from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field

from api.deps import CurrentUser, RefusalsAudited, SessionDep, in_transaction
from spatial.settings import Settings
from spatial import basemaps
from spatial.basemaps import Basemap
from spatial.geometry.china import mainland_polygon
from spatial.io.basemap_tiles import IMAGE_TYPES, TileFetcher
from spatial.store import basemaps as store

router = APIRouter(prefix="/api/basemaps", tags=["basemaps · 底图"])

NameP = Annotated[str, Path(max_length=40, description="the basemap's name, e.g. tianditu-img",
                            json_schema_extra={"pattern": basemaps.NAME_PATTERN})]
TILE_PATH = "/api/basemaps/{name}/tiles/{{z}}/{{x}}/{{y}}"


class BasemapIn(BaseModel):
    """A basemap as an admin adds or replaces it. The rules (:mod:`spatial.basemaps`) are checked with messages
    that say what to change (422)."""

    name: str = Field(max_length=40, json_schema_extra={"pattern": basemaps.NAME_PATTERN},
                      description="part of the tile URL: lower-case letters, digits, '-', '_'")
    name_zh: str = Field(min_length=1, max_length=basemaps.MAX_LABEL_LENGTH, examples=["天地图影像"])
    name_en: str = Field(min_length=1, max_length=basemaps.MAX_LABEL_LENGTH, examples=["Tianditu imagery"])
    url_template: str = Field(
        max_length=basemaps.MAX_TEMPLATE_LENGTH, json_schema_extra={"pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"},
        description="http(s) URL with {z}, {x} and {y} (or {-y}); optional {s} (one of subdomains) and {key} (the "
                    "secret named by key); no user:password@, no #fragment",
        examples=["https://t{s}.tianditu.gov.cn/img_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=img"
                  "&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk={key}"])
    subdomains: list[Annotated[str, Field(max_length=20, json_schema_extra={"pattern": basemaps.SUBDOMAIN_PATTERN})]] \
        = Field(default=[], max_length=basemaps.MAX_SUBDOMAINS, examples=[["0", "1", "2", "3", "4", "5", "6", "7"]])
    datum: Literal["wgs84", "gcj02"] = Field(description="what the tiles are drawn in: wgs84 (WGS 84 / CGCS2000, "
                                             "e.g. Tianditu) or gcj02 (GCJ-02, e.g. Amap): gridgov's layers are "
                                             "then drawn shifted to match")
    attribution: str = Field(min_length=1, max_length=basemaps.MAX_ATTRIBUTION_LENGTH,
                             examples=["© 天地图 国家地理信息公共服务平台"])
    max_zoom: int = Field(default=18, ge=1, le=basemaps.MAX_ZOOM_LIMIT)
    key: str | None = Field(default=None, max_length=40, json_schema_extra={"pattern": basemaps.NAME_PATTERN},
                            description="name of the basemap_keys setting entry that fills {key}, never the key")


class BasemapPublic(BaseModel):
    """A basemap as the pages see it; ``url_template``, ``subdomains``, ``key`` and ``key_configured`` for admins
    only. ``tiles`` is gridgov's own tile URL (the proxy), the only one pages use."""

    name: str
    name_zh: str
    name_en: str
    datum: Literal["wgs84", "gcj02"]
    datum_zh: str
    datum_en: str
    attribution: str
    max_zoom: int
    tiles: str = Field(description="tile URL template on this server, {z}/{x}/{y} to fill; needs the bearer token")
    source: Literal["settings", "database"]
    url_template: str | None = None
    subdomains: list[str] | None = None
    key: str | None = None
    key_configured: bool | None = None


class BasemapListPublic(BaseModel):
    basemaps: list[BasemapPublic]
    mainland: dict | None = Field(
        default=None, description="where GCJ-02 differs from WGS 84 (mainland China without Hong Kong, Macau and "
        "Taiwan; WGS 84 lon/lat GeoJSON MultiPolygon), given when a gcj02 basemap is listed, for the pages' shift")


def configured(request: Request) -> tuple[Basemap, ...]:
    """The settings' basemaps, checked once per settings object (the app factory checks them at start)."""
    settings: Settings = request.app.state.settings
    cached = getattr(request.app.state, "basemaps_configured", None)
    if cached is None or cached[0] is not settings:
        cached = (settings, basemaps.from_settings(settings.basemaps, settings.basemap_keys))
        request.app.state.basemaps_configured = cached
    return cached[1]


def _public(request: Request, basemap: Basemap, admin: bool) -> BasemapPublic:
    label_zh, label_en = basemaps.DATUMS[basemap.datum]
    extra = {}
    if admin:
        extra = {"url_template": basemap.url_template, "subdomains": list(basemap.subdomains), "key": basemap.key,
                 "key_configured": not basemap.key or basemap.key in request.app.state.settings.basemap_keys}
    return BasemapPublic(name=basemap.name, name_zh=basemap.name_zh, name_en=basemap.name_en, datum=basemap.datum,
                         datum_zh=label_zh, datum_en=label_en, attribution=basemap.attribution,
                         max_zoom=basemap.max_zoom, tiles=TILE_PATH.format(name=basemap.name),
                         source=basemap.source, **extra)


def _checked(request: Request, body: BasemapIn, name: str | None = None) -> Basemap:
    return basemaps.make_basemap(body.model_dump(), name=name, known_keys=request.app.state.settings.basemap_keys)


@router.get("", response_model=BasemapListPublic, response_model_exclude_none=True,
            summary="Basemaps the map pages offer (底图列表)")
def list_basemaps(request: Request, session: SessionDep, who: CurrentUser) -> BasemapListPublic:
    """Settings basemaps first, then those admins added. Any logged-in caller."""
    found = store.list_basemaps(session, configured(request))
    mainland = json.loads(shapely.to_geojson(mainland_polygon())) if any(b.datum == "gcj02" for b in found) else None
    return BasemapListPublic(basemaps=[_public(request, b, who.role == "admin") for b in found], mainland=mainland)


@router.get("/{name}", response_model=BasemapPublic, response_model_exclude_none=True,
            summary="One basemap (底图)")
def get_basemap(request: Request, session: SessionDep, who: CurrentUser, name: NameP) -> BasemapPublic:
    return _public(request, store.get_basemap(session, name, configured(request)), who.role == "admin")


@router.post("", response_model=BasemapPublic, status_code=201, summary="Add a basemap (新增底图), admins only")
def add_basemap(request: Request, session: SessionDep, who: CurrentUser, body: BasemapIn) -> BasemapPublic:
    who.require_role()
    basemap = store.add_basemap(session, who, _checked(request, body), configured(request))
    return _public(request, basemap, True)


@router.put("/{name}", response_model=BasemapPublic, summary="Replace a stored basemap (修改底图), admins only")
def replace_basemap(request: Request, session: SessionDep, who: CurrentUser, name: NameP,
                    body: BasemapIn) -> BasemapPublic:
    """The body's ``name`` is ignored: the path names the basemap (renaming is delete and add)."""
    who.require_role()
    basemap = store.replace_basemap(session, who, _checked(request, body, name=name), configured(request))
    return _public(request, basemap, True)


@router.delete("/{name}", status_code=204, summary="Delete a stored basemap (删除底图), admins only")
def delete_basemap(request: Request, session: SessionDep, who: CurrentUser, name: NameP) -> Response:
    who.require_role()
    store.delete_basemap(session, who, name, configured(request))
    return Response(status_code=204)


def _fetcher(request: Request) -> TileFetcher:
    fetcher = getattr(request.app.state, "basemap_fetcher", None)
    if fetcher is None:
        fetcher = request.app.state.basemap_fetcher = TileFetcher()
    return fetcher


Coordinate = Annotated[int, Path(ge=0, le=2 ** basemaps.MAX_ZOOM_LIMIT - 1)]


@router.get("/{name}/tiles/{z}/{x}/{y}", dependencies=[RefusalsAudited], summary="A basemap tile (底图瓦片)",
            response_class=Response,
            responses={200: {"content": {t: {"schema": {"type": "string", "format": "binary"}} for t in IMAGE_TYPES},
                             "description": "the tile image, as the tile server sent it"},
                       502: {"description": "the tile server failed or answered no image (the body says which host)"},
                       504: {"description": "the tile server did not answer in time"}})
async def basemap_tile(request: Request, who: CurrentUser, name: NameP,
                       z: Annotated[int, Path(ge=0, le=basemaps.MAX_ZOOM_LIMIT)], x: Coordinate,
                       y: Coordinate) -> Response:
    """Fetched from the basemap's tile server with ``{key}`` filled in on the server; the browser may keep it a day
    (``Cache-Control: private``). Any logged-in caller."""
    settings_maps = configured(request)
    basemap = next((b for b in settings_maps if b.name == name), None)
    if basemap is None:
        basemap = await in_transaction(request, store.get_basemap, name, settings_maps)
    secret = request.app.state.settings.basemap_keys.get(basemap.key) if basemap.key else None
    url = basemaps.tile_url(basemap, z, x, y, secret.get_secret_value() if secret else None)
    body, kind = await _fetcher(request).fetch(url)
    return Response(body, media_type=kind, headers={"Cache-Control": "private, max-age=86400"})
