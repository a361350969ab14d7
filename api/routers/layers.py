"""Map layers as GeoJSON, in any supported CRS. No personal data is ever part of a layer; per-building household
counts are null outside the caller's household scope (:func:`spatial.store.layers.visible_columns`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from api.deps import CrsDep, CurrentUser, SessionDep, SettingsDep, public_url
from api.geojson import BboxParam, CrsName, feature_collection, parse_bbox
from api.schemas import LayerPublic
from spatial.geometry.crs import parse_crs
from spatial.store import layers

router = APIRouter(prefix="/api/layers", tags=["layers · 图层"])


@router.get("", response_model=list[LayerPublic], summary="The map layers (图层列表)")
def list_layers(request: Request, _: CurrentUser) -> list[LayerPublic]:
    return [LayerPublic(name=name, label_zh=spec.label_zh, label_en=spec.label_en, filters=list(spec.filters),
                        url=public_url(request, request.app.url_path_for("read_layer", name=name)))
            for name, spec in layers.LAYERS.items()]


@router.get("/{name}", summary="Features of a layer as GeoJSON (图层要素)",
            description="Filter by bbox and by the layer's filter fields (e.g. `community_code=440304096001`). "
                        "`as_of` (grids, risk_zones) reads the layer as in force at that time from its history.")
def read_layer(name: str, request: Request, session: SessionDep, settings: SettingsDep, who: CurrentUser,
               out_crs: CrsDep, bbox: BboxParam = None,
               bbox_crs: Annotated[CrsName | None, Query(alias="bbox-crs")] = None,
               limit: Annotated[int, Query(ge=1, le=layers.MAX_LIMIT)] = 1000,
               offset: Annotated[int, Query(ge=0, le=100_000_000)] = 0,
               as_of: Annotated[datetime | None, Query(description="ISO 8601 time (grids, risk_zones)")] = None,
               ) -> dict[str, Any]:
    spec = layers.layer(name)
    where = {k: v for k, v in request.query_params.items() if k in spec.filters}
    box = parse_bbox(bbox, parse_crs(bbox_crs) if bbox_crs else out_crs)
    if as_of is not None and name == "grids":
        features = layers.grid_plan_as_of(session, as_of, where.get("community_code"))
    else:
        features = layers.read_layer(session, name, scope=who.household_scope, bbox=box, where=where, limit=limit,
                                     offset=offset, metric_srid=settings.metric_srid, at=as_of)
    return feature_collection(features, out_crs, layer=name, limit=limit, offset=offset,
                              numberReturned=len(features))
