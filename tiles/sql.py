"""Vector tiles built in PostGIS: one ``ST_AsMVT`` query per layer and tile.

Every map layer of :data:`spatial.store.layers.LAYERS` is a tile layer of the same name, with the
attributes its definition lists for the zoom (``Layer.tile_attributes``), and one more, scoped, layer:

* ``households`` — per building, the number of registered households and their residents (counts only;
  no name, ID number, phone or tag ever enters a tile), at a point on the building's footprint, and only
  for the buildings in the caller's household scope (:attr:`spatial.access.Principal.household_scope`: admin
  all; grid worker the assigned grids; planners and inspectors the subtree of their scope code; viewers and
  auditors none, as for household data elsewhere).

The per-building counts of the ``buildings`` layer (``Layer.counts``, detail zooms) follow the same rule: NULL
(absent from the feature) outside the caller's household scope, so those tiles are cached per household scope
('counts:<scope>'); overview tiles, which carry no count, stay shared.

How the query is shaped, and why (measured on 200,000 buildings, see ``benchmarks/tiles.py``):

* rows are selected with ``geom && <tile box in EPSG:4326>`` so the GiST index on the stored geometry is
  used (transforming the stored column instead would scan the table); the box includes the tile buffer;
* ``ST_AsMVTGeom(ST_Transform(geom, 3857), ST_TileEnvelope(z, x, y), 4096, 64, true)`` — SRIDs are integers
  (a text SRID such as 'EPSG:3857' makes PostGIS look the CRS up per row, a thousand times slower); buildings,
  the most numerous features, keep a stored EPSG:3857 copy (``footprint_3857``, migration 0008) instead: the
  transformation per row was a quarter to a third of a building tile's time;
* below a layer's ``detail_zoom`` lines and polygons are simplified to one tile unit (not buildings: their few
  vertices are already snapped to the tile grid by ``ST_AsMVTGeom``; simplifying them cost 30%) and features smaller
  than a pixel (8 tile units, on a 512-pixel display tile) are left out: invisible at that zoom, and
  they would make overview tiles large and slow;
* no ``WHERE geom IS NOT NULL`` around ``ST_AsMVTGeom``: PostgreSQL would evaluate it twice per row (once in
  the pushed-down filter, once in the output), and ``ST_AsMVT`` skips rows whose geometry is NULL anyway;
* no parallel workers (``SET LOCAL max_parallel_workers_per_gather = 0``): starting them costs more than a
  tile's work, and a tile server already runs many tiles at once;
* the feature id is the layer's key as a bigint (codes are digits), so QGIS Identify and MapLibre
  ``feature-state`` work and the id matches the OGC API item of the same feature.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.access import NOTHING, Principal, Scope
from spatial.errors import Forbidden, NotFound
from spatial.store.layers import LAYERS, Layer, visible_columns
from spatial.store.scope import building_scope
from tiles.grid import BUFFER, EXTENT, Tile

PIXEL_UNITS = 8  # tile units per display pixel (4096 units on a 512-pixel tile)


@dataclass(frozen=True)
class TileLayer:
    """A layer as tiles serve it. ``scoped`` layers depend on the caller (cached per scope)."""

    name: str
    label_zh: str
    label_en: str
    geometry_type: str
    min_zoom: int
    attributes: tuple[str, ...]
    scoped: bool = False


HOUSEHOLDS = TileLayer("households", "住户统计", "Household counts", "Point", 14,
                       ("building_code", "households", "residents"), scoped=True)


@functools.cache
def tile_layers() -> dict[str, TileLayer]:
    """Every tile layer by name, in drawing order (areas first, points last)."""
    layers = {name: TileLayer(name, spec.label_zh, spec.label_en, spec.geometry_type, spec.min_zoom,
                              spec.tile_columns)
              for name, spec in LAYERS.items() if spec.tile_columns}
    layers[HOUSEHOLDS.name] = HOUSEHOLDS
    order = {"MultiPolygon": 0, "Polygon": 0, "LineString": 1, "MultiLineString": 1, "Point": 2}
    return dict(sorted(layers.items(), key=lambda item: order.get(item[1].geometry_type, 1)))


def tile_layer(name: str) -> TileLayer:
    layers = tile_layers()
    if name not in layers:
        raise NotFound(f"no tile layer {name!r}; layers are {', '.join(layers)}", layer=name)
    return layers[name]


def _box_params(tile: Tile) -> dict[str, float | int]:
    west, south, east, north = tile.bounds(BUFFER)
    return {"z": tile.z, "x": tile.x, "y": tile.y, "w": west, "s": south, "e": east, "n": north}


_ENVELOPE_4326 = "ST_MakeEnvelope(:w, :s, :e, :n, 4326)"
_MVT_GEOM = f"ST_AsMVTGeom({{geom}}, ST_TileEnvelope(:z, :x, :y), {EXTENT}, {BUFFER}, true)"


def layer_sql(name: str, spec: Layer, zoom: int, scope: Scope = NOTHING) -> str:
    """The ``ST_AsMVT`` query of a map layer at ``zoom`` for a caller of household ``scope`` (parameters: z, x, y,
    w, s, e, n, srid, tol, min_deg, and those of :func:`spatial.store.layers.visible_columns`)."""
    columns = visible_columns(spec, scope)[0]
    attributes = ", ".join(f'{columns[a]} AS "{a}"' for a in spec.tile_attributes(zoom))
    geom = f"t.{spec.tile_geom}" if spec.tile_geom else f"ST_Transform(t.{spec.geom}, 3857)"
    clauses = [f"t.{spec.geom} && {_ENVELOPE_4326}"]
    if zoom < spec.detail_zoom and spec.geometry_type != "Point":
        if spec.tile_simplify:
            geom = f"ST_Simplify({geom}, :tol, true)"
        clauses.append(f"greatest(ST_XMax(t.{spec.geom}) - ST_XMin(t.{spec.geom}), "
                       f"ST_YMax(t.{spec.geom}) - ST_YMin(t.{spec.geom})) >= :min_deg")
    return (f"SELECT ST_AsMVT(q, '{name}', {EXTENT}, 'geom', 'fid') FROM ("
            f"SELECT CAST(t.{spec.key} AS bigint) AS fid{', ' if attributes else ''}{attributes}, "
            f"{_MVT_GEOM.format(geom=geom)} AS geom "
            f"FROM {spec.source} WHERE {' AND '.join(clauses)}) q")


_HOUSEHOLDS_SQL = f"""
SELECT ST_AsMVT(q, 'households', {EXTENT}, 'geom', 'fid') FROM (
    SELECT b.id AS fid, b.code AS building_code, h.households, h.residents,
           {_MVT_GEOM.format(geom="ST_Transform(ST_PointOnSurface(b.footprint), 3857)")} AS geom
    FROM buildings b
    JOIN LATERAL (SELECT count(*) AS households, coalesce(sum(residents), 0)::int AS residents
                  FROM households WHERE building_id = b.id) h ON h.households > 0
    WHERE b.footprint && {_ENVELOPE_4326} AND {{scope}}
) q"""


_SERIAL = text("SET LOCAL max_parallel_workers_per_gather = 0")


COUNTS = "counts:"
WINDOW = "window:"  # tiles of a layer whose attributes change with the clock: one cache entry per time window


def scope_key(layer: TileLayer, who: Principal | None, zoom: int | None = None) -> str:
    """The part of the cache key that depends on the caller: '' for shared tiles; for the households layer the
    caller's household scope (:attr:`spatial.access.Scope.key`: 'all', 'prefix:<code prefix>' or 'grids:<ids>'),
    Forbidden when it is empty; for tiles carrying per-building counts (the buildings layer at ``zoom``, any zoom
    if None) 'counts:' and that scope ('counts:none' for viewers and auditors); for a layer with attributes that
    change with the clock (``Layer.tile_window_s``: the cases' overdue flag) 'window:' and the number of the
    current window, so a cached tile is at most one window old."""
    if layer.scoped:
        if who is None:
            raise Forbidden(f"the {layer.name} layer needs a logged-in user")
        scope = who.require_household_read()
        if scope.nothing:
            raise Forbidden("your account has no area (no scope code, or no grid assigned), so no household "
                            "counts are visible to you")
        return scope.key
    spec = LAYERS[layer.name]
    attributes = spec.tile_columns if zoom is None else spec.tile_attributes(zoom)
    if set(spec.counts) & set(attributes):
        return COUNTS + (who.household_scope.key if who is not None else NOTHING.key)
    if spec.tile_window_s:
        return WINDOW + str(int(time.time() // spec.tile_window_s))
    return ""


def _households_query(key: str) -> tuple[str, dict]:
    """The households layer's query for the household scope named by ``key`` (:func:`scope_key`)."""
    predicate, params = building_scope(Scope.from_key(key))
    return _HOUSEHOLDS_SQL.format(scope=predicate), params


def render_statement(name: str, tile: Tile, *, scope: str = "", metric_srid: int = 4547
                     ) -> tuple[str, dict] | None:
    """The ``ST_AsMVT`` statement of one layer and tile and its parameters; None below the layer's ``min_zoom``
    (an empty tile, no database needed). ``scope`` is :func:`scope_key` of the caller (scoped layers only).
    Run it without parallel workers (:func:`render` does; :mod:`spatial.store.aio` connections have none)."""
    layer = tile_layer(name)
    if tile.z < layer.min_zoom:
        return None
    params = _box_params(tile)
    if layer.scoped:
        sql, extra = _households_query(scope)
        params.update(extra)
    else:
        counts_scope = Scope.from_key(scope.removeprefix(COUNTS)) if scope.startswith(COUNTS) else NOTHING
        sql = layer_sql(name, LAYERS[name], tile.z, counts_scope)
        params.update(visible_columns(LAYERS[name], counts_scope)[1])
        unit_deg = 360.0 / (EXTENT * 2 ** tile.z)
        params.update(srid=metric_srid, tol=tile.unit_m(), min_deg=PIXEL_UNITS * unit_deg)
    return sql, params


def render(session: Session, name: str, tile: Tile, *, scope: str = "", metric_srid: int = 4547) -> bytes:
    """The uncompressed MVT bytes of one layer and tile (b'' when no feature falls in it); see
    :func:`render_statement`."""
    statement = render_statement(name, tile, scope=scope, metric_srid=metric_srid)
    if statement is None:
        return b""
    session.execute(_SERIAL)
    data = session.execute(text(statement[0]), statement[1]).scalar_one()
    return bytes(data) if data else b""
