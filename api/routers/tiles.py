"""Vector tiles (Mapbox Vector Tile), TileJSON and a MapLibre style. Building the tiles is :mod:`tiles`.

Tiles need a logged-in caller (``Authorization: Bearer <token>``; MapLibre and newer QGIS send headers) or HTTP
Basic with a personal access token (QGIS 3.22), ``api.deps.ReaderUser``: cached per token, so a cached tile needs
no database round trip.
A tile not yet cached is rendered on the event loop (``TileService.tile_async``, :mod:`spatial.store.aio`), on a
read replica when one is configured and has replayed the caller's last write (``api.replicas.lagging_reads``).
A refused tile (the households layer for a viewer) is audited like every refusal (:func:`_audited`: no
dependency, so a served tile costs nothing more).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated

import anyio
from fastapi import APIRouter, Query, Request, Response

from api.deps import ReaderUser, audit_refused, public_url
from api.replicas import lagging_reads
from tiles import TileResult, TileService
from tiles.sql import tile_layer, tile_layers
from tiles.style import style, tilejson

router = APIRouter(prefix="/tiles", tags=["tiles · 矢量瓦片"])

MVT = "application/vnd.mapbox-vector-tile"
LAYERS_MAX_LENGTH = len(",".join(tile_layers()))
"""The longest ``layers`` list of a combined tile: every tile layer once."""
ATTRIBUTION = "gridgov · map data © OpenStreetMap contributors (ODbL) where imported from OpenStreetMap"


def _service(request: Request) -> TileService:
    service = getattr(request.app.state, "tile_service", None)
    if service is None:
        service = TileService(request.app.state.sessions, metric_srid=request.app.state.settings.metric_srid)
        request.app.state.tile_service = service
    return service


def _respond(request: Request, result: TileResult) -> Response:
    headers = {"ETag": result.etag, "Cache-Control": "private, no-cache", "Vary": "Authorization, Accept-Encoding",
               "X-Tile-Cache": "hit" if result.cached else "miss"}
    if request.headers.get("if-none-match") == result.etag:
        return Response(status_code=304, headers=headers)
    if not result.data:
        return Response(status_code=204, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(result.data, media_type=MVT, headers={**headers, "Content-Encoding": "gzip"})
    return Response(result.plain(), media_type=MVT, headers=headers)


async def _audited(request: Request, work: Awaitable[TileResult]) -> TileResult:
    """``work``'s tile; a refusal (403) is written to the audit log before it is answered."""
    try:
        return await work
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await audit_refused(request, exc)
        raise


def _base(request: Request) -> str:
    return public_url(request)


@router.get("/style.json", summary="MapLibre style of every layer (地图样式)")
def map_style(request: Request) -> dict:
    return style(f"{_base(request)}/tiles/tiles.json")


@router.get("/tiles.json", summary="TileJSON of the combined tiles (全部图层)")
def combined_tilejson(request: Request) -> dict:
    return tilejson(list(tile_layers().values()), f"{_base(request)}/tiles/{{z}}/{{x}}/{{y}}.mvt",
                    name="gridgov", attribution=ATTRIBUTION)


@router.get("/{layer}.json", summary="TileJSON of one layer (单图层)")
def layer_tilejson(layer: str, request: Request) -> dict:
    spec = tile_layer(layer)
    return tilejson([spec], f"{_base(request)}/tiles/{layer}/{{z}}/{{x}}/{{y}}.mvt", name=layer,
                    attribution=ATTRIBUTION)


@router.get("/{z}/{x}/{y}.mvt", summary="Several layers in one tile (组合瓦片)",
            response_class=Response, responses={200: {"content": {MVT: {}}}, 204: {"description": "empty tile"}})
async def combined_tile(request: Request, who: ReaderUser, z: int, x: int, y: int,
                        layers: Annotated[str | None, Query(description="comma-separated, each at most once; "
                                                            "default: all you may see", max_length=LAYERS_MAX_LENGTH)]
                        = None) -> Response:
    names = layers.split(",") if layers is not None else None
    return _respond(request, await _audited(request, _service(request).combined_async(lagging_reads(request), names,
                                                                                    z, x, y, who)))


@router.get("/{layer}/{z}/{x}/{y}.mvt", summary="One layer's tile (单图层瓦片)",
            response_class=Response, responses={200: {"content": {MVT: {}}}, 204: {"description": "empty tile"}})
async def layer_tile(request: Request, who: ReaderUser, layer: str, z: int, x: int, y: int) -> Response:
    return _respond(request, await _audited(request, _service(request).tile_async(lagging_reads(request), layer,
                                                                                z, x, y, who)))
