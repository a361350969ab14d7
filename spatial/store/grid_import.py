"""Checking and writing grids and enclosures drawn elsewhere (QGIS, CAD exports), as a planner's edit would be.

Candidates are passed as arrays (WKB in EPSG:4326, codes, community codes); areas are m² in the deployment's
metric CRS (``metric_srid``); differences under ``tolerance_m2`` are floating-point slivers and ignored.
Writing happens inside :func:`spatial.store.engine.acting_as`, so the grid history (``grid_versions``) records
the author and the reason of the import.

Grids are checked by the rules of a planner's edit (:func:`spatial.store.grids.check_replacement`), the report
turned into findings per imported feature; enclosures by their own two queries here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.errors import NotFound
from spatial.store import grids
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


@dataclass
class GridCheck:
    """What :func:`check_grids` found: findings per candidate, m² without a grid per community, buildings that
    would change grid, and the workload (households, residents, workers) of each imported grid."""

    findings: list[Finding]
    uncovered_m2: dict[str, float]
    buildings_moved: int
    workload: list[dict]


def check_grids(session: Session, wkbs: Sequence[bytes], codes: Sequence[str], communities: Sequence[str],
                *, metric_srid: int = 4547, tolerance_m2: float = 1.0) -> GridCheck:
    """Grid candidates (WKB in EPSG:4326), each replacing the stored grid of its code or joining its community,
    checked community by community as a planner's edit is (:func:`spatial.store.grids.check_replacement`).

    Findings per candidate: land outside the community and overlaps with a stored or another imported grid
    (errors); buildings its boundary cuts (warnings: an import is settled afterwards, each building going to
    the grid that holds most of it). Also, per community, the m² left without a grid, and what the import does
    to buildings and workload."""
    result = GridCheck([], {}, 0, [])
    for community in sorted(set(communities)):
        mine = {codes[i]: i for i, c in enumerate(communities) if c == community}
        try:
            checked = grids.check_replacement(
                session, community, {code: shapely.from_wkb(wkbs[i]) for code, i in mine.items()},
                metric_srid=metric_srid, tolerance_m2=tolerance_m2)
        except NotFound:
            result.findings += [Finding(i, "error", f"community {community} has no boundary to check grids against")
                                for i in mine.values()]
            continue
        result.findings += _grid_findings(checked, mine, community)
        result.uncovered_m2[community] = sum(p.area_m2 for p in checked.report.gaps)
        result.buildings_moved += len(checked.report.moved_buildings)
        result.workload += [vars(w) for w in checked.report.workload if w.grid in mine]
    result.findings.sort(key=lambda f: f.index)
    return result


def _grid_findings(checked: grids.Replacement, feature: dict[str, int], community: str) -> list[Finding]:
    """The report of one community's check, as findings on the imported features (``feature``: code → index)."""
    report, found = checked.report, []
    outside: dict[str, float] = {}
    for piece in report.outside:
        outside[piece.grids[0]] = outside.get(piece.grids[0], 0.0) + piece.area_m2
    found += [Finding(feature[code], "error", f"{area:,.0f} m² lie outside community {community}")
              for code, area in outside.items() if code in feature]
    overlaps: dict[tuple[str, str], float] = {}
    for piece in report.overlaps:
        overlaps[piece.grids] = overlaps.get(piece.grids, 0.0) + piece.area_m2
    for (a, b), area in overlaps.items():
        if a in feature and b in feature:
            first, other = sorted((feature[a], feature[b]))
            found.append(Finding(first, "error", f"overlaps imported feature {other} by {area:,.0f} m²"))
        elif a in feature or b in feature:
            mine, stored = (a, b) if a in feature else (b, a)
            found.append(Finding(feature[mine], "error", f"overlaps stored grid {stored} by {area:,.0f} m²"))
    cut_ids = {building for building, _ in report.cut_buildings}
    buildings = checked.community.buildings
    cut = buildings.footprints[np.isin(buildings.ids, list(cut_ids))] if cut_ids else np.array([], dtype=object)
    for code, i in feature.items():
        crossed = int(shapely.intersects(cut, shapely.boundary(checked.plan[checked.plan_id(code)])).sum())
        if crossed:
            found.append(Finding(i, "warning", f"its boundary cuts {crossed} building(s)"))
    return found


def next_grid_numbers(session: Session, community: str, count: int) -> list[int]:
    """The ``count`` lowest unused 2-digit grid numbers of a community (retired grids keep theirs)."""
    used = set(session.execute(text("SELECT CAST(substr(code, 13) AS int) FROM grids WHERE community_code = :c"),
                               {"c": community}).scalars())
    free = [n for n in range(1, 100) if n not in used]
    return free[:count]


def write_grids(session: Session, rows: Sequence[dict], *, actor: str, reason: str) -> tuple[int, int]:
    """Insert or update grids by code (rows: code, community_code, name, kind, wkb). Returns (inserted,
    updated). Map tiles of the old and new boundaries are invalidated by the database on commit."""
    inserted = updated = 0
    with acting_as(session, actor, reason):
        for row in rows:
            existed = session.execute(text("SELECT true FROM grids WHERE code = :code FOR UPDATE"),
                                      {"code": row["code"]}).scalar()
            session.execute(text("""
                INSERT INTO grids (code, community_code, name, kind, boundary)
                VALUES (:code, :community_code, :name, :kind, ST_Multi(ST_GeomFromWKB(:wkb, 4326)))
                ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind,
                    boundary = EXCLUDED.boundary, retired_at = NULL"""), row)
            inserted += not existed
            updated += bool(existed)
    return inserted, updated


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


def write_enclosures(session: Session, rows: Sequence[dict], *, actor: str, reason: str) -> tuple[int, int]:
    """Insert enclosures, or update the one of the same name in the same community (rows: name, kind,
    community_code, wkb of a Polygon). Returns (inserted, updated); tiles are invalidated by the database."""
    inserted = updated = 0
    with acting_as(session, actor, reason):
        for row in rows:
            old = session.execute(text("""
                SELECT id FROM enclosures WHERE name = :name AND community_code IS NOT DISTINCT FROM :community_code
                ORDER BY id LIMIT 1 FOR UPDATE"""), row).scalar()
            if old is None:
                session.execute(text("""
                    INSERT INTO enclosures (name, kind, community_code, boundary)
                    VALUES (:name, :kind, :community_code, ST_GeomFromWKB(:wkb, 4326))"""), row)
                inserted += 1
            else:
                session.execute(text("UPDATE enclosures SET kind = :kind, boundary = ST_GeomFromWKB(:wkb, 4326) "
                                     "WHERE id = :id"), {**row, "id": old})
                updated += 1
    return inserted, updated
