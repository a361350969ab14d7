"""Reading map layers: the non-personal features of each table, filtered by bounding box and attributes.

One table of layer definitions drives every read, so adding a layer is one line. Geometries come back as
Shapely geometries in EPSG:4326 (lon, lat); areas and lengths are computed in SQL in the deployment's
metric CRS (``metric_srid``, metres). Personal fields (household heads, building-head phones) are never
part of a layer.

The ``cases`` layer carries no reporter, description, assignee or tracking code; its ``overdue`` flag is computed
when read, so its tiles are cached for at most a minute (``Layer.tile_window_s``).

Per-building household and resident counts (``Layer.counts``) are household data: they are NULL for a building
outside the caller's household scope (:attr:`spatial.access.Principal.household_scope`; viewers and auditors:
every building), in every read — layers, OGC items and their CQL2 filters (which see the same NULL), tiles and
exports — since each takes its columns from :func:`visible_columns`. Per-grid totals (the grids layer) are
workload figures over 300–500 households and are shown to everyone who sees the grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial import case_flow
from spatial.access import Scope
from spatial.errors import InvalidInput, NotFound
from spatial.store.scope import building_scope
from spatial.vocab import PLACE_KINDS

MAX_LIMIT = 10_000


@dataclass(frozen=True)
class Layer:
    """A readable layer: ``source`` is a table or subquery aliased ``t``; ``columns`` are SQL expressions on t."""

    source: str
    geom: str
    key: str
    columns: dict[str, str]
    filters: tuple[str, ...] = ()
    label_zh: str = ""
    label_en: str = ""
    # How the layer is served as vector tiles (tiles/) and as an OGC API collection (api/routers/ogc.py).
    # Attribute names refer to ``columns``; the feature id of tiles and OGC items is ``key`` (an integer,
    # or a code of digits cast to bigint in tiles).
    geometry_type: str = "Geometry"          # GeoJSON type of the stored geometry (for clients' schemas)
    min_zoom: int = 0                        # tiles below this zoom carry no feature of the layer
    detail_zoom: int = 14                    # from this zoom on tiles carry ``tile_columns``
    tile_columns: tuple[str, ...] = ()       # attributes of tiles at ``detail_zoom`` and above
    overview_columns: tuple[str, ...] = ()   # attributes of tiles below ``detail_zoom``
    history: str | None = None               # versioned (grids): the source as of ``:at`` (OGC ``datetime``, map ``as_of``)
    tile_simplify: bool = True               # simplify below detail zoom (off for small shapes: snapping suffices)
    tile_geom: str | None = None             # a stored EPSG:3857 copy of ``geom`` for tiles (None: transformed per row)
    counts: tuple[str, ...] = ()             # per-building household counts: NULL outside the caller's household scope
    tile_window_s: int = 0                   # attributes change with the clock (overdue): cached tiles at most this old
    history_first: str = "SELECT min(valid_from) FROM grid_versions"  # the first instant of ``history``

    def tile_attributes(self, zoom: int) -> tuple[str, ...]:
        """Attribute names carried by tiles at ``zoom`` (fewer at overview zooms, to keep tiles small)."""
        return self.tile_columns if zoom >= self.detail_zoom else self.overview_columns


# The grids in force at ``:at``, from their version history (one row per grid, with who changed it and why).
GRID_HISTORY = """(SELECT grid_id AS id, code, community_code, name, kind, boundary, version, author, reason,
                          valid_from
                   FROM grid_versions
                   WHERE valid_from <= :at AND (valid_to IS NULL OR valid_to > :at) AND NOT retired) t"""

_GRID_COLUMNS = {
    "id": "t.id", "code": "t.code", "name": "t.name", "kind": "t.kind", "community_code": "t.community_code",
    "version": "t.version", "area_m2": "round(ST_Area(ST_Transform(t.boundary, :srid))::numeric, 1)",
    "buildings": "(SELECT count(*) FROM buildings b WHERE b.grid_id = t.id)",
    "households": "(SELECT coalesce(sum(b.households), 0) FROM buildings b WHERE b.grid_id = t.id)",
    "residents": "(SELECT coalesce(sum(b.residents), 0) FROM buildings b WHERE b.grid_id = t.id)",
}

# Cases without personal data (no reporter, description, assignee or tracking code): what, where, how urgent.
# Merged duplicates are left out. ``open``: not closed, rejected or deferred; ``overdue``: open and past the
# running step's deadline at read time (the transaction's now()), as the supervision list (督办) counts it.
CASE_SOURCE = """(SELECT c.id, c.category_code, k.name AS category, c.state, c.priority, c.deadline, c.reported_at,
                         c.location, g.code AS grid_code, c.community_code,
                         c.state NOT IN ('closed', 'rejected', 'merged', 'deferred') AS open
                  FROM cases c JOIN case_categories k ON k.code = c.category_code
                  LEFT JOIN grids g ON g.id = c.grid_id
                  WHERE c.duplicate_of IS NULL) t"""
_STATE_LABEL = "CASE t.state " + " ".join(f"WHEN '{state}' THEN '{zh}'" for state, (zh, _) in
                                          case_flow.STATES.items()) + " END"
_CASE_COLUMNS = {
    "id": "t.id", "category_code": "t.category_code", "category": "t.category", "state": "t.state",
    "state_label": _STATE_LABEL, "priority": "t.priority", "open": "t.open",
    "overdue": "coalesce(t.open AND t.deadline < now(), false)", "grid_code": "t.grid_code",
    "community_code": "t.community_code", "reported_at": "t.reported_at",
}

# Risk zones in force at ``{at}`` (now() for the current layer, ``:at`` as of a time): one row per zone, the period
# of its history containing that instant (spatial.store.risk_zones), with its level's colour from its scheme.
_RISK_ZONES = """(SELECT v.zone_id AS id, z.name, z.target_kind, z.target_ref, z.community_code, z.scope_code, v.version,
                         v.scheme, v.level, v.severity, v.valid_from, v.valid_to, v.author, v.reason, v.boundary,
                         l.value->>'colour' AS colour, l.value->>'label_zh' AS label_zh,
                         l.value->>'label_en' AS label_en
                  FROM risk_zone_versions v JOIN risk_zones z ON z.id = v.zone_id
                  JOIN risk_schemes s ON s.name = v.scheme
                  CROSS JOIN LATERAL (SELECT value FROM jsonb_array_elements(s.levels) WHERE value->>'level' = v.level
                                      LIMIT 1) l
                  WHERE v.valid_from <= {at} AND (v.valid_to IS NULL OR v.valid_to > {at})) t"""
_RISK_ZONE_COLUMNS = {c: f"t.{c}" for c in (
    "id", "name", "target_kind", "target_ref", "community_code", "scope_code", "version", "scheme", "level",
    "severity", "colour", "label_zh", "label_en", "valid_from", "valid_to", "author", "reason")}
_RISK_ZONE_COLUMNS["area_m2"] = "round(ST_Area(ST_Transform(t.boundary, :srid))::numeric, 1)"

# Places departments inspect (一张网, migration 0024): an organisation's name, kind, credit code, 复工复产; no person.
PLACE_SOURCE = """(SELECT p.id, p.kind, p.name, p.credit_code, p.reopened, p.address, p.building_id, p.community_code,
                          p.location, g.code AS grid_code
                   FROM places p LEFT JOIN grids g ON g.id = p.grid_id) t"""
_PLACE_COLUMNS = {c: f"t.{c}" for c in ("id", "kind", "name", "credit_code", "reopened", "address", "building_id",
                                        "grid_code", "community_code")}
_PLACE_COLUMNS["kind_label"] = "CASE t.kind " + " ".join(f"WHEN '{k}' THEN '{zh}'" for k, (zh, _) in
                                                         PLACE_KINDS.items()) + " END"

LAYERS: dict[str, Layer] = {
    "divisions": Layer("divisions t", "boundary", "code", {
        "code": "t.code", "level": "t.level", "name": "t.name", "name_en": "t.name_en",
        "parent_code": "t.parent_code", "synthetic": "t.synthetic",
        "area_m2": "round(ST_Area(ST_Transform(t.boundary, :srid))::numeric, 1)",
    }, ("level", "parent_code"), "行政区划", "Administrative divisions", geometry_type="MultiPolygon",
       tile_columns=("code", "level", "name", "name_en", "parent_code"), overview_columns=("code", "level", "name"),
       detail_zoom=12),
    "grids": Layer("(SELECT * FROM grids WHERE retired_at IS NULL) t", "boundary", "code", _GRID_COLUMNS,
                   ("community_code", "kind", "code"), "网格", "Grids", geometry_type="MultiPolygon", min_zoom=10,
                   tile_columns=("code", "name", "kind", "community_code", "version", "buildings", "households",
                                 "residents"), overview_columns=("code", "name", "kind"), detail_zoom=14,
                   history=GRID_HISTORY),
    "micro_grids": Layer("micro_grids t", "boundary", "id", {
        "id": "t.id", "grid_id": "t.grid_id", "seq": "t.seq", "name": "t.name",
    }, ("grid_id",), "微网格", "Micro-grids", geometry_type="MultiPolygon", min_zoom=14,
       tile_columns=("grid_id", "seq", "name"), overview_columns=("grid_id", "seq")),
    "buildings": Layer("buildings t", "footprint", "id", {
        "id": "t.id", "code": "t.code", "name": "t.name", "levels": "t.levels", "use": "t.use",
        "urban_village": "t.urban_village", "units": "t.units", "households": "t.households",
        "residents": "t.residents", "occupancy_estimated": "t.occupancy_estimated", "grid_id": "t.grid_id",
        "community_code": "t.community_code", "origin": "t.origin",
    }, ("grid_id", "community_code", "use"), "楼栋", "Buildings", geometry_type="MultiPolygon", min_zoom=12,
       tile_columns=("code", "name", "levels", "use", "urban_village", "households", "residents",
                     "occupancy_estimated", "grid_id"), overview_columns=("use", "levels"), detail_zoom=15,
       tile_simplify=False, tile_geom="footprint_3857", counts=("households", "residents")),
    "streets": Layer("street_edges t", "geom", "id", {
        "id": "t.id", "name": "t.name", "highway": "t.highway", "oneway": "t.oneway", "foot": "t.foot",
        "car": "t.car", "length_m": "round(t.length_m::numeric, 1)", "origin": "t.origin",
    }, ("highway",), "道路与步道", "Streets and footpaths", geometry_type="LineString", min_zoom=13,
       tile_columns=("name", "highway", "oneway", "foot", "car"), overview_columns=("highway",), detail_zoom=15),
    "enclosures": Layer("enclosures t", "boundary", "id", {
        "id": "t.id", "name": "t.name", "kind": "t.kind", "community_code": "t.community_code",
        "perimeter_m": "round(ST_Perimeter(ST_Transform(t.boundary, :srid))::numeric, 1)",
    }, ("kind", "community_code"), "围合区域", "Enclosures", geometry_type="Polygon", min_zoom=12,
       tile_columns=("name", "kind", "community_code"), overview_columns=("name", "kind")),
    "checkpoints": Layer("checkpoints t", "location", "id", {
        "id": "t.id", "name": "t.name", "kind": "t.kind", "status": "t.status", "opening_hours": "t.opening_hours",
        "staff_count": "t.staff_count", "enclosure_id": "t.enclosure_id",
    }, ("status", "kind", "enclosure_id"), "卡口", "Checkpoints", geometry_type="Point", min_zoom=14,
       tile_columns=("name", "kind", "status", "opening_hours", "staff_count", "enclosure_id"),
       overview_columns=("status",)),
    "cases": Layer(CASE_SOURCE, "location", "id", _CASE_COLUMNS,
                   ("state", "category_code", "grid_code", "community_code", "priority", "open"), "事件", "Cases",
                   geometry_type="Point", min_zoom=12, detail_zoom=15,
                   tile_columns=("category_code", "category", "state", "state_label", "priority", "open", "overdue",
                                 "grid_code"), overview_columns=("category_code", "state", "overdue"),
                   tile_window_s=60),
    "risk_zones": Layer(_RISK_ZONES.format(at="now()"), "boundary", "id", _RISK_ZONE_COLUMNS,
                        ("level", "scheme", "severity", "community_code", "target_kind"), "风险区域", "Risk zones",
                        geometry_type="MultiPolygon", min_zoom=10, detail_zoom=14,
                        tile_columns=("name", "level", "severity", "colour", "label_zh", "label_en", "target_kind",
                                      "version", "community_code"),
                        overview_columns=("level", "severity", "colour"),
                        history=_RISK_ZONES.format(at=":at"), tile_window_s=60,
                        history_first="SELECT min(valid_from) FROM risk_zone_versions"),
    "places": Layer(PLACE_SOURCE, "location", "id", _PLACE_COLUMNS, ("kind", "reopened", "grid_code", "community_code"),
                    "场所（三小场所·企业·学校·诊所）", "Places departments inspect", geometry_type="Point", min_zoom=14,
                    detail_zoom=16, tile_columns=("name", "kind", "kind_label", "reopened", "grid_code"),
                    overview_columns=("kind",)),
}


@dataclass(frozen=True)
class Feature:
    id: Any
    properties: dict[str, Any]
    geometry: shapely.Geometry


def layer(name: str) -> Layer:
    if name not in LAYERS:
        raise NotFound(f"no layer {name!r}; layers are {', '.join(LAYERS)}")
    return LAYERS[name]


def read_layer(session: Session, name: str, *, scope: Scope, bbox: tuple[float, float, float, float] | None = None,
               where: dict[str, Any] | None = None, limit: int = 1000, offset: int = 0,
               metric_srid: int = 4547, at: datetime | None = None) -> list[Feature]:
    """Features of layer ``name`` intersecting ``bbox`` (lon/lat, EPSG:4326) and matching ``where``
    (equality on the layer's filter fields), ordered by key, at most ``limit`` (≤ 10,000); counts outside the
    household ``scope`` of the caller NULL (:func:`visible_columns`). ``at``: as in force then, from the layer's
    history (InvalidInput for a layer without one)."""
    spec = layer(name)
    if at is not None and not spec.history:
        raise InvalidInput(f"layer {name} has no history: as_of applies to "
                           f"{', '.join(n for n, s in LAYERS.items() if s.history)}")
    unknown = set(where or {}) - set(spec.filters)
    if unknown:
        raise InvalidInput(f"layer {name} cannot be filtered by {', '.join(sorted(unknown))}; "
                           f"filters are {', '.join(spec.filters) or 'none'}")
    clauses, params = bbox_clauses(spec, bbox)
    for i, (field, value) in enumerate((where or {}).items()):
        clauses.append(f"t.{field} = :w{i}")
        params[f"w{i}"] = value
    source = spec.history if at is not None else spec.source
    return select_features(session, spec, source, clauses, {**params, "srid": metric_srid, "at": at}, scope=scope,
                           limit=limit, offset=offset)


def visible_columns(spec: Layer, scope: Scope) -> tuple[dict[str, str], dict[str, Any]]:
    """The layer's column expressions (alias → SQL on ``t``) for a caller whose household scope is ``scope``:
    the per-building counts (``spec.counts``) are NULL for a building outside it; and the parameters they use."""
    if not spec.counts:
        return spec.columns, {}
    visible, params = building_scope(scope, "t")
    return {alias: f"CASE WHEN {visible} THEN {expr} END" if alias in spec.counts else expr
            for alias, expr in spec.columns.items()}, params


def columns_sql(columns: dict[str, str]) -> str:
    """A select list (``expr AS "alias"``) of columns (:func:`visible_columns`); expressions may use ``:srid``."""
    return ", ".join(f'{expr} AS "{alias}"' for alias, expr in columns.items())


def bbox_clauses(spec: Layer, bbox: tuple[float, float, float, float] | None) -> tuple[list[str], dict[str, Any]]:
    """WHERE clauses (on alias ``t``) keeping features with a geometry that meets ``bbox`` (lon/lat), using
    the GiST index; their parameters."""
    clauses = [f"t.{spec.geom} IS NOT NULL"]
    if bbox is None:
        return clauses, {}
    clauses.append(f"t.{spec.geom} && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)")
    return clauses, {"x0": bbox[0], "y0": bbox[1], "x1": bbox[2], "y1": bbox[3]}


def select_features(session: Session, spec: Layer, source: str, clauses: list[str], params: dict[str, Any], *,
                    scope: Scope, limit: int, offset: int) -> list[Feature]:
    """One page of ``source`` (aliased ``t``) matching every clause, ordered by the layer's key, with the columns
    the household ``scope`` shows (:func:`visible_columns`); the one query every layer read ends in.
    InvalidInput if ``limit`` is outside 1–:data:`MAX_LIMIT`."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT:,}, got {limit:,}")
    columns, scope_params = visible_columns(spec, scope)
    rows = session.execute(text(
        f"SELECT {columns_sql(columns)}, ST_AsBinary(t.{spec.geom}) AS wkb FROM {source} "
        f"WHERE {' AND '.join(clauses)} ORDER BY t.{spec.key} LIMIT :limit OFFSET :offset"),
        {**params, **scope_params, "limit": limit, "offset": offset}).mappings().all()
    return _features(rows, spec.key)


def grid_plan_as_of(session: Session, at: datetime, community_code: str | None = None) -> list[Feature]:
    """The grids in force at time ``at`` (from the version history, :data:`GRID_HISTORY`), one feature per grid."""
    rows = session.execute(text(f"""
        SELECT id, code, name, kind, community_code, version, author, reason, valid_from,
               ST_AsBinary(boundary) AS wkb
        FROM {GRID_HISTORY}
        WHERE CAST(:community AS text) IS NULL OR community_code = :community
        ORDER BY code"""), {"at": at, "community": community_code}).mappings().all()
    return _features(rows, "id")


def _features(rows, key: str) -> list[Feature]:
    geoms = shapely.from_wkb([bytes(r["wkb"]) for r in rows]) if rows else []
    return [
        Feature(id=r[key], properties={k: _plain(v) for k, v in r.items() if k != "wkb"}, geometry=g)
        for r, g in zip(rows, geoms, strict=True)
    ]


def _plain(value: Any) -> Any:
    """JSON-friendly scalars: Decimal → float, datetime → ISO 8601 string."""
    if hasattr(value, "is_finite"):  # Decimal
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value
