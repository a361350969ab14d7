"""Places departments inspect (一张网): 三小场所 (small shops, restaurants, hotels), enterprises, schools, clinics.

A place is a point (EPSG:4326) tied to a building and a grid (migration 0024, table ``places``). :func:`place_rows`
places candidate rows in one query: by building code (19 digits), else by position (the building whose footprint
covers the point, else the nearest within ``max_distance_m`` metres, else none); the grid is the building's, else
the current grid covering the point; the location the given point, else a point on the building's footprint.
:func:`write_places` upserts by (origin, origin_ref), so a sheet imported again updates its places.

Reads (:func:`list_places`) follow the caller's area (a grid worker: their grids); places hold no personal data (an
enterprise's credit code and a shop's name are an organisation's), so every role with an area reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.access import Principal
from spatial.store.scope import scope_sql

MAX_LIMIT = 10_000


@dataclass(frozen=True)
class Placed:
    """Where a candidate row landed: ``building_id`` (None: no building), ``grid_id`` and ``community_code``
    (None: in no grid), and the point (lon, lat in EPSG:4326; None: neither a point nor a building)."""

    line: int
    building_id: int | None
    grid_id: int | None
    community_code: str | None
    lon: float | None
    lat: float | None
    building_missing: bool


def place_rows(session: Session, lines: Sequence[int], codes: Sequence[str | None], lons: Sequence[float | None],
               lats: Sequence[float | None], *, max_distance_m: float = 30.0) -> list[Placed]:
    """Place candidate rows (module docstring); ``building_missing`` when a building code matches no building."""
    rows = session.execute(text("""
        WITH r AS (SELECT line, code, CASE WHEN lon IS NULL THEN NULL
                                          ELSE ST_SetSRID(ST_MakePoint(lon, lat), 4326) END AS pt
                   FROM unnest(CAST(:lines AS int[]), CAST(:codes AS text[]), CAST(:lons AS float8[]),
                               CAST(:lats AS float8[])) AS v (line, code, lon, lat))
        SELECT r.line, b.id AS building_id, coalesce(b.grid_id, g.id) AS grid_id,
               coalesce(bg.community_code, g.community_code, b.community_code) AS community_code,
               ST_X(coalesce(r.pt, b.pos)) AS lon, ST_Y(coalesce(r.pt, b.pos)) AS lat,
               (r.code IS NOT NULL AND b.id IS NULL) AS building_missing
        FROM r
        LEFT JOIN LATERAL (
            SELECT b.id, b.grid_id, b.community_code, ST_PointOnSurface(b.footprint) AS pos FROM buildings b
            WHERE (r.code IS NOT NULL AND b.code = r.code)
               OR (r.code IS NULL AND r.pt IS NOT NULL AND b.footprint && ST_Expand(r.pt, :deg)
                   AND ST_DWithin(b.footprint::geography, r.pt::geography, :max_m))
            ORDER BY CASE WHEN r.pt IS NULL THEN 0 ELSE ST_Distance(b.footprint::geography, r.pt::geography) END
            LIMIT 1) b ON true
        LEFT JOIN grids bg ON bg.id = b.grid_id
        LEFT JOIN LATERAL (
            SELECT g.id, g.community_code FROM grids g
            WHERE b.grid_id IS NULL AND coalesce(r.pt, b.pos) IS NOT NULL AND g.retired_at IS NULL
              AND g.boundary && coalesce(r.pt, b.pos) AND ST_Covers(g.boundary, coalesce(r.pt, b.pos))
            ORDER BY g.code LIMIT 1) g ON true
        ORDER BY r.line"""),
        {"lines": list(lines), "codes": list(codes), "lons": list(lons), "lats": list(lats),
         "max_m": max_distance_m, "deg": max_distance_m / 100_000 * 1.5}).all()
    return [Placed(r.line, r.building_id, r.grid_id, r.community_code, r.lon, r.lat, r.building_missing)
            for r in rows]


def write_places(session: Session, origin: str, rows: Sequence[dict]) -> tuple[int, int]:
    """Insert or update places by (origin, origin_ref) (rows: origin_ref, kind, name, credit_code, reopened,
    address, building_id, grid_id, community_code, lon, lat). Returns (inserted, updated); tiles are invalidated by
    the database (migration 0024)."""
    if not rows:
        return 0, 0
    keys = ("origin_ref", "kind", "name", "credit_code", "reopened", "address", "building_id", "grid_id",
            "community_code", "lon", "lat")
    params = {k: [r.get(k) for r in rows] for k in keys}
    inserted = session.execute(text("""
        INSERT INTO places AS p (origin, origin_ref, kind, name, credit_code, reopened, address, building_id, grid_id,
                                 community_code, location)
        SELECT :origin, v.origin_ref, v.kind, v.name, v.credit_code, v.reopened, v.address, v.building_id, v.grid_id,
               v.community_code, ST_SetSRID(ST_MakePoint(v.lon, v.lat), 4326)
        FROM unnest(CAST(:origin_ref AS text[]), CAST(:kind AS text[]), CAST(:name AS text[]),
                    CAST(:credit_code AS text[]), CAST(:reopened AS boolean[]), CAST(:address AS text[]),
                    CAST(:building_id AS bigint[]), CAST(:grid_id AS int[]), CAST(:community_code AS text[]),
                    CAST(:lon AS float8[]), CAST(:lat AS float8[]))
             AS v (origin_ref, kind, name, credit_code, reopened, address, building_id, grid_id, community_code,
                   lon, lat)
        ON CONFLICT (origin, origin_ref) DO UPDATE SET kind = EXCLUDED.kind, name = EXCLUDED.name,
            credit_code = EXCLUDED.credit_code, reopened = EXCLUDED.reopened, address = EXCLUDED.address,
            building_id = EXCLUDED.building_id, grid_id = EXCLUDED.grid_id, community_code = EXCLUDED.community_code,
            location = EXCLUDED.location, updated_at = now()
        RETURNING (xmax = 0) AS inserted"""), {"origin": origin, **params}).scalars().all()
    new = sum(bool(x) for x in inserted)
    return new, len(inserted) - new


def list_places(session: Session, who: Principal, *, kind: str | None = None, grid_code: str | None = None,
                reopened: bool | None = None, limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
    """Places in the caller's area (module docstring), by id; filters by kind, grid code and 复工复产."""
    area, params = scope_sql(who.area, grid_col="p.grid_id", community_col="p.community_code")
    clauses = [area]
    if kind is not None:
        clauses.append("p.kind = :kind")
    if grid_code is not None:
        clauses.append("g.code = :grid_code")
    if reopened is not None:
        clauses.append("p.reopened = :reopened")
    rows = session.execute(text(f"""
        SELECT p.id, p.kind, p.name, p.credit_code, p.reopened, p.address, p.building_id, b.code AS building_code,
               g.code AS grid_code, p.community_code, ST_X(p.location) AS lon, ST_Y(p.location) AS lat
        FROM places p LEFT JOIN grids g ON g.id = p.grid_id LEFT JOIN buildings b ON b.id = p.building_id
        WHERE {' AND '.join(clauses)} ORDER BY p.id LIMIT :limit OFFSET :offset"""),
        {**params, "kind": kind, "grid_code": grid_code, "reopened": reopened, "limit": min(limit, MAX_LIMIT),
         "offset": offset}).mappings().all()
    return [dict(r) for r in rows]
