"""Checking and writing grids and enclosures drawn elsewhere (QGIS, CAD exports), as a planner's edit would be.

Candidates are passed as arrays (WKB in EPSG:4326, codes, community codes) and checked in one query each:
areas are m² in the deployment's metric CRS (``metric_srid``); differences under ``tolerance_m2`` are
floating-point slivers and ignored. Writing happens inside :func:`spatial.store.engine.acting_as`, so the
grid history (``grid_versions``) records the author and the reason of the import.

A colleague's ``spatial/store/grids.py`` (grid editing for planners) is to hold the general grid
validation; these checks are kept here until then and should move there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.store.engine import acting_as

_CANDIDATES = """
    WITH c AS (SELECT i, code, community_code, ST_Multi(ST_GeomFromWKB(wkb, 4326)) AS geom
               FROM unnest(CAST(:wkbs AS bytea[]), CAST(:codes AS text[]), CAST(:communities AS text[]))
                    WITH ORDINALITY AS v (wkb, code, community_code, i))
"""


@dataclass(frozen=True)
class Finding:
    index: int        # 0-based position among the candidates
    severity: str     # 'error' (nothing is written) or 'warning'
    message: str


def communities_at(session: Session, wkbs: Sequence[bytes]) -> list[str | None]:
    """For each polygon, the community holding the largest share of it (None when it touches none)."""
    rows = session.execute(text("""
        SELECT i, (SELECT d.code FROM divisions d
                   WHERE d.level = 'community' AND d.boundary && g AND ST_Intersects(d.boundary, g)
                   ORDER BY ST_Area(ST_Intersection(d.boundary, g)) DESC LIMIT 1)
        FROM unnest(CAST(:wkbs AS bytea[])) WITH ORDINALITY AS v (wkb, i), ST_GeomFromWKB(wkb, 4326) AS g
        ORDER BY i"""), {"wkbs": list(wkbs)}).all()
    return [code for _, code in rows]


def known_communities(session: Session, codes: Sequence[str]) -> set[str]:
    rows = session.execute(text("SELECT code FROM divisions WHERE level = 'community' AND code = ANY(:codes)"),
                           {"codes": list(set(codes))}).scalars()
    return set(rows)


def check_grids(session: Session, wkbs: Sequence[bytes], codes: Sequence[str], communities: Sequence[str],
                *, metric_srid: int = 4547, tolerance_m2: float = 1.0) -> list[Finding]:
    """Grid candidates against their community and the stored grids (a candidate replaces the stored grid
    of the same code): outside the community, overlapping a stored or another imported grid (errors);
    buildings cut by the new boundary and land of the community left uncovered (warnings)."""
    params = {"wkbs": list(wkbs), "codes": list(codes), "communities": list(communities),
              "srid": metric_srid, "tol": tolerance_m2}
    findings: list[Finding] = []
    for i, area in session.execute(text(_CANDIDATES + """
            SELECT c.i, ST_Area(ST_Transform(ST_Difference(c.geom, d.boundary), :srid))
            FROM c JOIN divisions d ON d.code = c.community_code AND d.boundary IS NOT NULL
            WHERE ST_Area(ST_Transform(ST_Difference(c.geom, d.boundary), :srid)) > :tol"""), params):
        findings.append(Finding(i - 1, "error", f"{area:,.0f} m² lie outside community {communities[i - 1]}"))
    for i, other, area in session.execute(text(_CANDIDATES + """
            SELECT c.i, g.code, ST_Area(ST_Transform(ST_Intersection(c.geom, g.boundary), :srid))
            FROM c JOIN grids g ON g.retired_at IS NULL AND g.code <> c.code AND g.boundary && c.geom
                 AND g.code <> ALL(CAST(:codes AS text[]))
            WHERE ST_Area(ST_Transform(ST_Intersection(c.geom, g.boundary), :srid)) > :tol ORDER BY 1, 2"""), params):
        findings.append(Finding(i - 1, "error", f"overlaps stored grid {other} by {area:,.0f} m²"))
    for i, j, area in session.execute(text(_CANDIDATES + """
            SELECT a.i, b.i, ST_Area(ST_Transform(ST_Intersection(a.geom, b.geom), :srid))
            FROM c a JOIN c b ON a.i < b.i AND a.geom && b.geom
            WHERE ST_Area(ST_Transform(ST_Intersection(a.geom, b.geom), :srid)) > :tol ORDER BY 1, 2"""), params):
        findings.append(Finding(i - 1, "error", f"overlaps imported feature {j - 1} by {area:,.0f} m²"))
    for i, cut in session.execute(text(_CANDIDATES + """
            SELECT c.i, count(*) FROM c JOIN buildings b ON b.footprint && c.geom
                 AND ST_Intersects(b.footprint, ST_Boundary(c.geom))
            WHERE ST_Area(ST_Transform(ST_Intersection(b.footprint, c.geom), :srid)) > :tol
              AND ST_Area(ST_Transform(ST_Difference(b.footprint, c.geom), :srid)) > :tol
            GROUP BY c.i ORDER BY 1"""), params):
        findings.append(Finding(i - 1, "warning", f"its boundary cuts {cut} building(s)"))
    return findings


def uncovered_m2(session: Session, wkbs: Sequence[bytes], codes: Sequence[str], communities: Sequence[str],
                 *, metric_srid: int = 4547) -> dict[str, float]:
    """Per community touched: m² of its boundary left without a grid once the candidates replace or join the
    stored grids."""
    rows = session.execute(text(_CANDIDATES + """
        SELECT d.code, ST_Area(ST_Transform(ST_Difference(d.boundary, coalesce(ST_Union(u.geom), ST_SetSRID('POLYGON EMPTY'::geometry, 4326))), :srid))
        FROM divisions d
        LEFT JOIN (SELECT community_code, geom FROM c
                   UNION ALL SELECT community_code, boundary FROM grids
                   WHERE retired_at IS NULL AND code <> ALL(CAST(:codes AS text[]))) u ON u.community_code = d.code
        WHERE d.code = ANY(CAST(:communities AS text[])) AND d.boundary IS NOT NULL
        GROUP BY d.code, d.boundary"""),
        {"wkbs": list(wkbs), "codes": list(codes), "communities": list(communities), "srid": metric_srid}).all()
    return {code: float(area) for code, area in rows}


def next_grid_numbers(session: Session, community: str, count: int) -> list[int]:
    """The ``count`` lowest unused 2-digit grid numbers of a community (retired grids keep theirs)."""
    used = set(session.execute(text("SELECT CAST(substr(code, 13) AS int) FROM grids WHERE community_code = :c"),
                               {"c": community}).scalars())
    free = [n for n in range(1, 100) if n not in used]
    return free[:count]


def write_grids(session: Session, rows: Sequence[dict], *, actor: str, reason: str
                ) -> tuple[int, int, list[tuple[tuple | None, tuple]]]:
    """Insert or update grids by code (rows: code, community_code, name, kind, wkb). Returns (inserted,
    updated, [(old bounds or None, new bounds)]) — the bounds are for tile invalidation."""
    inserted = updated = 0
    areas = []
    with acting_as(session, actor, reason):
        for row in rows:
            old = session.execute(text(
                "SELECT ST_XMin(boundary), ST_YMin(boundary), ST_XMax(boundary), ST_YMax(boundary) "
                "FROM grids WHERE code = :code FOR UPDATE"), {"code": row["code"]}).one_or_none()
            new = session.execute(text("""
                INSERT INTO grids (code, community_code, name, kind, boundary)
                VALUES (:code, :community_code, :name, :kind, ST_Multi(ST_GeomFromWKB(:wkb, 4326)))
                ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind,
                    boundary = EXCLUDED.boundary, retired_at = NULL
                RETURNING ST_XMin(boundary), ST_YMin(boundary), ST_XMax(boundary), ST_YMax(boundary)"""),
                row).one()
            inserted += old is None
            updated += old is not None
            areas.append((tuple(old) if old else None, tuple(new)))
    return inserted, updated, areas


def check_enclosures(session: Session, wkbs: Sequence[bytes], communities: Sequence[str | None],
                     *, metric_srid: int = 4547, tolerance_m2: float = 1.0) -> list[Finding]:
    """Enclosure candidates: outside their community (error) and overlapping a stored enclosure (warning:
    estates within an urban village are enclosed twice, which can be intended)."""
    params = {"wkbs": list(wkbs), "codes": [""] * len(wkbs), "communities": [c or "" for c in communities],
              "srid": metric_srid, "tol": tolerance_m2}
    findings = [Finding(i - 1, "error", f"{area:,.0f} m² lie outside community {communities[i - 1]}")
                for i, area in session.execute(text(_CANDIDATES + """
            SELECT c.i, ST_Area(ST_Transform(ST_Difference(c.geom, d.boundary), :srid))
            FROM c JOIN divisions d ON d.code = c.community_code AND d.boundary IS NOT NULL
            WHERE ST_Area(ST_Transform(ST_Difference(c.geom, d.boundary), :srid)) > :tol"""), params)]
    findings += [Finding(i - 1, "warning", f"overlaps stored enclosure {name!r} by {area:,.0f} m²")
                 for i, name, area in session.execute(text(_CANDIDATES + """
            SELECT c.i, e.name, ST_Area(ST_Transform(ST_Intersection(c.geom, e.boundary), :srid))
            FROM c JOIN enclosures e ON e.boundary && c.geom
            WHERE ST_Area(ST_Transform(ST_Intersection(c.geom, e.boundary), :srid)) > :tol ORDER BY 1, 2"""),
                                                           params)]
    return findings


def write_enclosures(session: Session, rows: Sequence[dict], *, actor: str, reason: str
                     ) -> tuple[int, int, list[tuple[tuple | None, tuple]]]:
    """Insert enclosures, or update the one of the same name in the same community (rows: name, kind,
    community_code, wkb of a Polygon). Returns (inserted, updated, [(old bounds, new bounds)])."""
    inserted = updated = 0
    areas = []
    with acting_as(session, actor, reason):
        for row in rows:
            old = session.execute(text("""
                SELECT id, ST_XMin(boundary), ST_YMin(boundary), ST_XMax(boundary), ST_YMax(boundary)
                FROM enclosures WHERE name = :name AND community_code IS NOT DISTINCT FROM :community_code
                ORDER BY id LIMIT 1 FOR UPDATE"""), row).one_or_none()
            if old is None:
                new = session.execute(text("""
                    INSERT INTO enclosures (name, kind, community_code, boundary)
                    VALUES (:name, :kind, :community_code, ST_GeomFromWKB(:wkb, 4326))
                    RETURNING ST_XMin(boundary), ST_YMin(boundary), ST_XMax(boundary), ST_YMax(boundary)"""),
                    row).one()
                inserted += 1
            else:
                new = session.execute(text("""
                    UPDATE enclosures SET kind = :kind, boundary = ST_GeomFromWKB(:wkb, 4326) WHERE id = :id
                    RETURNING ST_XMin(boundary), ST_YMin(boundary), ST_XMax(boundary), ST_YMax(boundary)"""),
                    {**row, "id": old[0]}).one()
                updated += 1
            areas.append((tuple(old[1:]) if old else None, tuple(new)))
    return inserted, updated, areas
