"""Features of the map layers as OGC API – Features serves them: paging, bbox, CQL2 filters, ``datetime``.

The layers are those of :data:`spatial.store.layers.LAYERS` (no personal field is part of any; per-building
household counts are NULL outside the caller's household scope, in the properties and in filters alike,
:func:`spatial.store.layers.visible_columns`). Geometries
come back in EPSG:4326 (lon, lat); the caller converts them to the requested CRS. Paging is by ``offset``
over the layer's key, so pages are stable while the data do not change.

``datetime`` applies to layers with history (grids, risk zones): it reads the plan in force at that instant from
``grid_versions`` — the same rows as :func:`spatial.store.layers.grid_plan_as_of` — with the layer's usual
columns (the building and household counts are today's, computed for the grid as it was drawn then); for risk
zones, the period of each zone's history containing that instant (``risk_zone_versions``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial import cql2
from spatial.access import NOTHING, Scope
from spatial.errors import InvalidInput, NotFound
from spatial.store.cql2_sql import compile_filter
from spatial.store.layers import (LAYERS, MAX_LIMIT, Feature, Layer, bbox_clauses, columns_sql, layer,  # noqa: F401
                                  select_features, visible_columns)

_KINDS = {"int2": "integer", "int4": "integer", "int8": "integer", "numeric": "number", "float4": "number",
          "float8": "number", "bool": "boolean", "text": "string", "varchar": "string", "bpchar": "string",
          "date": "date", "timestamptz": "date-time", "timestamp": "date-time"}
_TYPE_CACHE: dict[str, dict[str, str]] = {}


@dataclass(frozen=True)
class Page:
    features: list[Feature]
    matched: int
    offset: int
    limit: int

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.features) < self.matched


def column_kinds(session: Session, name: str) -> dict[str, str]:
    """JSON-schema kinds ('integer', 'number', 'boolean', 'string', 'date', 'date-time') of the layer's
    columns, read once from the database's description of the layer query (cached per layer)."""
    if name not in _TYPE_CACHE:
        spec = layer(name)
        columns, params = visible_columns(spec, NOTHING)  # the types do not depend on the scope
        result = session.execute(text(f"SELECT {columns_sql(columns)} FROM {spec.source} LIMIT 0"),
                                 {**params, "srid": 4547})
        types = session.connection().connection.dbapi_connection.adapters.types
        kinds = {}
        for column in result.cursor.description:
            info = types.get(column.type_code)
            kinds[column.name] = _KINDS.get(info.name if info else "", "string")
        _TYPE_CACHE[name] = kinds
    return _TYPE_CACHE[name]


def _source(name: str, spec: Layer, at: datetime | None) -> str:
    if at is None:
        return spec.source
    if not spec.history:
        raise InvalidInput(f"collection {name} has no history: datetime applies to "
                           f"{', '.join(n for n, s in LAYERS.items() if s.history)}", collection=name)
    return spec.history


def _where(session: Session, name: str, spec: Layer, bbox, node, scope: Scope) -> tuple[list[str], dict[str, Any]]:
    """The clauses of a read; a filter sees the columns as the caller does (counts outside ``scope`` NULL)."""
    clauses, params = bbox_clauses(spec, bbox)
    if node is not None:
        kinds = column_kinds(session, name)
        visible, scope_params = visible_columns(spec, scope)
        columns = {alias: (expr, kinds[alias]) for alias, expr in visible.items()}
        sql, filter_params = compile_filter(node, columns, f"t.{spec.geom}")
        clauses.append(sql)
        params.update(filter_params)
        params.update(scope_params)
    return clauses, params


def read_items(session: Session, name: str, *, scope: Scope, bbox: tuple[float, float, float, float] | None = None,
               filter: Any = None, at: datetime | None = None, limit: int = 100, offset: int = 0,
               metric_srid: int = 4547) -> Page:
    """A page of the layer's features matching ``bbox`` (lon/lat), the parsed CQL2 ``filter`` (geometry
    literals in EPSG:4326) and ``at`` (history layers), ordered by key; ``matched`` counts them all. ``scope`` is
    the caller's household scope (per-building counts outside it are NULL, for the filter too)."""
    spec = layer(name)
    if offset < 0:
        raise InvalidInput("offset must not be negative")
    source = _source(name, spec, at)
    clauses, params = _where(session, name, spec, bbox, filter, scope)
    params.update(srid=metric_srid, at=at)
    features = select_features(session, spec, source, clauses, params, scope=scope, limit=limit, offset=offset)
    matched = session.execute(text(f"SELECT count(*) FROM {source} WHERE {' AND '.join(clauses)}"),
                              params).scalar_one()
    return Page(features, matched, offset, limit)


def read_item(session: Session, name: str, feature_id: str, *, scope: Scope, at: datetime | None = None,
              metric_srid: int = 4547) -> Feature:
    """One feature by its id (the layer's key); NotFound if there is none (or the id cannot be one)."""
    spec = layer(name)
    kind = column_kinds(session, name).get(spec.key, "string")
    node = cql2.Compare("=", cql2.Prop(spec.key), cql2.Lit(feature_id))
    try:
        page = read_items(session, name, scope=scope, filter=node, at=at, limit=1, metric_srid=metric_srid)
    except InvalidInput:
        page = None
    if page is None or not page.features:
        raise NotFound(f"collection {name} has no feature {feature_id!r} (ids are {kind}s)",
                       collection=name, id=feature_id)
    return page.features[0]


def extent(session: Session, name: str) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) of the layer's features in degrees, or None when it is empty."""
    spec = layer(name)
    row = session.execute(text(
        f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
        f"(SELECT ST_Extent(t.{spec.geom}) AS e FROM {spec.source}) x")).one()
    return None if row[0] is None else tuple(float(v) for v in row)


def time_extent(session: Session, name: str) -> tuple[str | None, str | None] | None:
    """[first, last] instants of the layer's history (ISO 8601; None = open), for layers with history."""
    spec = layer(name)
    if not spec.history:
        return None
    first = session.execute(text(spec.history_first)).scalar_one()
    return (first.isoformat() if first else None, None)
